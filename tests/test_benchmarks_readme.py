"""benchmarks/README.md states what the per-machine sessions found: each number it states is
recomputed here from the JSON file it names, and each comparison it makes is checked, so a
rerun that changes a file fails until the page says what the file says."""

import json
from pathlib import Path

import pytest

from lib.stats import different, spreads

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def readme():
    return " ".join((BENCH / "README.md").read_text(encoding="utf-8").split())


def load(name):
    return json.loads((BENCH / name).read_text())


def variants(name):
    """A results file's runs by variant, and the spread of each variant's losses."""
    runs = {}
    for r in load(name)["runs"]:
        runs.setdefault(r["variant"], []).append(r)
    return runs, spreads({v: [r["val_loss_full_split"] for r in rs] for v, rs in runs.items()})


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


def test_every_script_and_file_in_the_folder_is_described(readme):
    for path in BENCH.iterdir():
        if path.suffix in (".py", ".json"):
            assert f"`{path.name}`" in readme or f"benchmarks/{path.name}" in readme, path.name


def test_muon_precision_on_the_avx2_epyc(readme):
    p = load("muon-precision.json")
    assert not p["fast_cpu_bfloat16"] and "avx2" in p["cpu_flags"] and "avx512f" not in p["cpu_flags"]
    assert f"`lib`'s Muon trained {p['ratio']:.1f} times as fast as PyTorch's (best round of each)" in readme
    runs = {r["muon"]: r for r in p["two_minute_runs"]["runs"]}
    assert len(runs) == 2 and all(r["seed"] == 0 for r in runs.values())  # "(seed 0)"
    torch_run, lib_run = runs["torch (bfloat16)"], runs["lib (float32)"]
    assert (f"the preset took {torch_run['steps']:,} steps with PyTorch's Muon and reached "
            f"{torch_run['val_loss_full_split']:.3f}; with `lib`'s it took {lib_run['steps']:,} steps and "
            f"reached {lib_run['val_loss_full_split']:.3f}") in readme
    assert lib_run["seconds"] < 0.95 * 120 and f"ran out at {lib_run['seconds']:.0f} s" in readme
    assert round(p["ratio"]) == 6  # "the sixfold slowdown"


def test_muon_precision_on_the_avx512_epyc(readme):
    f = load("muon-precision-avx512.json")
    assert f["fast_cpu_bfloat16"] and {"avx512f", "avx512_bf16"} <= set(f["cpu_flags"])  # "the check passes"
    paired = sorted(t / l for l, t in zip(f["tokens_per_sec"]["lib (float32)"], f["tokens_per_sec"]["torch (bfloat16)"]))
    n = len(paired)
    median = (paired[(n - 1) // 2] + paired[n // 2]) / 2
    runs = f["two_minute_runs"]["runs"]
    by = {m: [r for r in runs if r["muon"] == m] for m in ("lib (float32)", "torch (bfloat16)")}
    assert all(len(rs) == 3 for rs in by.values())  # "three two-minute runs each"
    run_ratio = mean(r["tokens_per_sec"] for r in by["torch (bfloat16)"]) / mean(r["tokens_per_sec"] for r in by["lib (float32)"])
    measures = (1 / f["ratio"], median, run_ratio)
    assert all(m > 1 for m in measures)  # "the faster by each of three measures"
    assert (f"{1 / f['ratio']:.2f} times `lib`'s in the best round of each, {median:.2f} times in the "
            f"median of {n} rounds paired one by one") in readme
    assert f["first_each_round"] == ["lib (float32)", "torch (bfloat16)"] * (n // 2)  # "first in every other round"
    assert f"{run_ratio:.2f} times in three two-minute runs each" in readme
    assert f"Single rounds ranged from {paired[0]:.2f} to {paired[-1]:.2f} times" in readme
    loss = spreads({m: [r["val_loss_full_split"] for r in rs] for m, rs in by.items()})
    assert f"PyTorch's reached {loss['torch (bfloat16)']} against `lib`'s {loss['lib (float32)']}" in readme
    seeds = {r["seed"] for r in runs}
    assert all(next(r for r in by["torch (bfloat16)"] if r["seed"] == s)["val_loss_full_split"]
               < next(r for r in by["lib (float32)"] if r["seed"] == s)["val_loss_full_split"] for s in seeds)  # "every seed"
    assert not different(loss["torch (bfloat16)"], loss["lib (float32)"])  # "inside the spread"
    assert "lib's Muon then PyTorch's" in f["two_minute_runs"]["command"]  # "`lib`'s always ran first"


def test_muon_settings_on_the_epycs(readme):
    runs, loss = variants("muon-variants-amd-epyc.json")
    others = [v for v in runs if v != "muon"]
    assert len(others) == 12 and len(runs["muon"]) == 3  # "twelve settings", "three seeds"
    assert not any(loss[v].mean < loss["muon"].mean and different(loss[v], loss["muon"]) for v in others)
    order = sorted(others, key=lambda v: loss[v].mean)
    assert order[0] == "muon+linear0" and order[1] == "muon+warmup20" and order[4] == "muon+momentum0.9"
    assert not different(loss["muon+linear0"], loss["muon"])  # "inside it"
    assert f"than the preset ({loss['muon']}, three seeds)" in readme
    assert f"a linear decay to 0 ({loss['muon+linear0']}), is inside it" in readme
    assert min(r["val_loss_full_split"] for rs in runs.values() for r in rs) > 1.55  # "no run reached 1.55"

    combo, combo_loss = variants("muon-combinations-amd-epyc.json")
    low = "muon+linear0+warmup20+momentum0.9"
    assert set(combo) == {"muon", "muon+linear0+warmup20", low} and all(len(rs) == 3 for rs in combo.values())
    slower = 1 - mean(r["tokens_per_sec"] for r in combo["muon"]) / mean(r["tokens_per_sec"] for r in runs["muon"])
    assert slower > 0 and f"the preset's runs {slower:.0%} slower on average" in readme
    change = combo_loss["muon"].mean - loss["muon"].mean
    assert change > 0 and f"the preset's mean rose to {combo_loss['muon']}" in readme
    gains = {v: combo_loss["muon"].mean - combo_loss[v].mean for v in combo if v != "muon"}
    assert min(gains.values()) > 0 and max(gains, key=gains.get) == low  # "both lower", "the lower, with momentum 0.9"
    assert f"with momentum 0.9, at {combo_loss[low]}), inside the spread" in readme
    assert not any(different(combo_loss["muon"], combo_loss[v]) for v in gains)
    assert change > max(gains.values())  # "moved by more than either combination gained"

    fast, fast_loss = variants("muon-combinations-avx512.json")
    assert set(fast) == {"muon", low} and all(len(rs) == 3 for rs in fast.values())
    assert f"(`muon-combinations-avx512.json`): {fast_loss[low]} against the preset's {fast_loss['muon']}" in readme
    assert fast_loss[low].mean < fast_loss["muon"].mean and not different(fast_loss[low], fast_loss["muon"])


def test_the_amx_xeon(readme):
    runs, loss = variants("cpu-preset-amx.json")
    low = "muon+linear0+warmup20+momentum0.9"
    assert set(runs) == {"muon", low} and all(len(rs) == 3 for rs in runs.values())
    assert f"The preset reached {loss['muon']} and the combination {loss[low]}, inside the spread" in readme
    assert not different(loss["muon"], loss[low])
    pairs = sorted(((a, b) for a in runs["muon"] for b in runs[low] if a["seed"] == b["seed"]),
                   key=lambda ab: ab[0]["seed"])
    more = [b["steps"] / a["steps"] - 1 for a, b in pairs]
    assert len(pairs) == 3 and min(more) > 0
    assert f"the combination took {min(more):.0%} to {max(more):.0%} more steps than the preset in each pair" in readme
    speeds = [a["tokens_per_sec"] + b["tokens_per_sec"] for a, b in pairs]
    assert speeds[-1] > speeds[0]  # "while the machine sped up"
    others = [r["tokens_per_sec"] for name in ("cpu-preset-tuning.json", "muon-variants-amd-epyc.json",
                                               "muon-combinations-amd-epyc.json", "muon-combinations-avx512.json")
              for r in load(name)["runs"] if r["variant"] == "muon"]
    assert min(r["tokens_per_sec"] for rs in runs.values() for r in rs) > max(others)  # "faster than both EPYCs and the tuning's"
    from lib.course import PRESETS
    assert min(r["steps"] for rs in runs.values() for r in rs) > PRESETS["shakespeare-char-cpu"][1].max_steps


def test_the_combination_came_out_lower_on_every_machine_it_ran_on():
    low = "muon+linear0+warmup20+momentum0.9"
    for name in ("muon-combinations-amd-epyc.json", "muon-combinations-avx512.json", "cpu-preset-amx.json"):
        _, loss = variants(name)
        assert loss[low].mean < loss["muon"].mean and not different(loss[low], loss["muon"]), name
