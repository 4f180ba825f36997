"""lib.bench: the throughput benchmark runs, reports sound numbers and refuses bad input."""

import ast
import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lib.model import GPTConfig
import torch

from helpers import load_script
from lib import bench
from lib.bench import benchmark, report

LESSON_4 = Path(__file__).resolve().parents[1] / "lessons" / "04_training_loop.md"


def _loop_calls(source: str) -> list[str]:
    """The names called in the first `for` loop of `source`, in the order they are written."""
    loop = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.For))
    calls = sorted((n for stmt in loop.body for n in ast.walk(stmt) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    return [c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id for c in calls]


def test_the_plain_loop_is_lesson_4s_five_steps():
    """The Performance page compares the trainer with lesson 4's loop: bench keeps a copy of
    it (the lesson writes it out to teach it), and this test keeps the two the same."""
    cell = re.search(r"## The five steps.*?```\{code-cell\} ipython3\n(.*?)```", LESSON_4.read_text(),
                     re.S).group(1)
    lesson = [name for name in _loop_calls(cell) if name != "print"]  # the lesson prints every 25
    assert lesson == _loop_calls(textwrap.dedent(inspect.getsource(bench.plain_loop)))
    assert lesson[:6] == ["get_batch", "model", "lm_loss", "zero_grad", "backward", "step"]


def test_benchmark_measures_both_loops():
    r = benchmark("shakespeare-char-cpu", steps=2, rounds=2, device="cpu")
    assert len(r["trainer_rounds"]) == len(r["plain_loop_rounds"]) == 2
    assert r["trainer_tokens_per_sec"] > 0 and r["plain_loop_tokens_per_sec"] > 0
    assert r["trainer_over_plain"] == pytest.approx(
        r["trainer_tokens_per_sec"] / r["plain_loop_tokens_per_sec"])
    assert r["matmul_flops_per_sec"] > 1e8
    assert "tokens/s" in report(r)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(preset="nope"), "Unknown preset"), (dict(steps=0), "steps must be"),
    (dict(rounds=1.5), "rounds must be"), (dict(device="gpu"), "device"),
])
def test_bad_benchmark_settings_are_refused(kwargs, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        benchmark(**{"steps": 1, "rounds": 1, **kwargs})


def test_command_line_writes_labelled_results(tmp_path):
    out = tmp_path / "cpu.json"
    res = subprocess.run([sys.executable, "-m", "lib.bench", "--steps", "1", "--rounds", "1",
                          "--device", "cpu", "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    assert r["command"].startswith("python -m lib.bench --steps 1")
    assert {"machine", "date", "device", "torch"} <= set(r)


@pytest.mark.parametrize("args, pattern", [
    (["--preset", "nope"], "invalid choice"), (["--steps", "x"], "invalid int value"),
    (["--steps", "0"], "steps must be"), (["--device", "bogus"], "Unknown device"),
])
def test_command_line_errors_are_one_line(args, pattern, tmp_path):
    res = subprocess.run([sys.executable, "-m", "lib.bench", *args], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and pattern in res.stderr and "Traceback" not in res.stderr


def _tuning():
    root = Path(__file__).resolve().parents[1]
    return (load_script("benchmarks/tune_cpu_preset.py"),
            json.loads((root / "benchmarks" / "cpu-preset-tuning.json").read_text()))


def test_every_tuning_variant_resolves_to_valid_configs():
    tune, _ = _tuning()
    for name, (_, parent, _, _) in tune.VARIANTS.items():
        assert parent is None or parent in tune.VARIANTS, f"{name}'s parent {parent} is not a variant"
        tune.configs(name)  # a bad field or value raises here


@pytest.mark.parametrize("name", ["cpu-preset-tuning.json", "muon-variants-amd-epyc.json",
                                  "muon-combinations-amd-epyc.json", "muon-combinations-avx512.json"])
def test_recorded_runs_are_of_the_variants_as_defined(name):
    """Every run in a results file the Performance page renders trained the variant that its
    name means today: same model, same training settings but for those the run sets itself
    (steps from the time budget, the seed, the time limit). A field added to TrainConfig after
    a run was recorded is absent there and must have kept its default, so the run still means
    the same."""
    from lib.trainer import TrainConfig

    tune, _ = _tuning()
    results = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / name).read_text())
    defaults = TrainConfig().to_dict()
    per_run = {"max_steps", "seed", "max_time", "progress", "out_dir"}
    for r in results["runs"]:
        model_config, train_config = tune.configs(r["variant"])
        assert GPTConfig.from_dict(r["model"]) == model_config, r["variant"]  # new fields: defaults
        for key, value in train_config.to_dict().items():
            if key not in per_run:
                assert r["train"].get(key, defaults[key]) == value, (r["variant"], r["seed"], key)
        assert r["train"]["max_time"] == results["max_time"], r["variant"]


def test_the_cpu_preset_is_among_the_best_tuned_variants():
    """The tuning results that the Performance page shows are of the preset the course trains:
    among the variants measured with 3 or more seeds, the preset's variant (its model and
    training settings, all but the step count, which the tuning sets from the time budget on
    its machine) shares first place (lib.stats.rank)."""
    from collections import defaultdict

    from lib.course import PRESETS
    from lib.stats import rank

    tune, results = _tuning()
    loss = defaultdict(list)
    for r in results["runs"]:
        model_config, train_config = tune.configs(r["variant"])
        assert GPTConfig.from_dict(r["model"]) == model_config  # the file is of the variants as defined
        loss[r["variant"]].append(r["val_loss_full_split"])
    ignore = {"max_steps", "max_time", "progress", "out_dir", "seed"}
    preset_model, preset_train = PRESETS["shakespeare-char-cpu"]
    preset = {k: v for k, v in preset_train.to_dict().items() if k not in ignore}
    mine = [name for name in tune.VARIANTS
            if tune.configs(name)[0] == preset_model
            and {k: v for k, v in tune.configs(name)[1].to_dict().items() if k not in ignore} == preset]
    assert len(mine) == 1, f"the preset is not one of the tuning's variants: {mine}"
    first = rank({v: values for v, values in loss.items() if len(values) >= 3})[0]
    assert mine[0] in {s.name for s in first}, (mine[0], [str(s) for s in first])


def test_tuning_refuses_to_mix_another_cpus_runs_into_its_file(tmp_path, monkeypatch):
    """A time budget buys each machine its own steps: runs from two CPUs in one file would be
    compared as if they were one machine's, so the tuning refuses (before it trains)."""
    tuning = load_script("benchmarks/tune_cpu_preset.py")
    out = tmp_path / "tuning.json"
    out.write_text(json.dumps({"runs": [], "cpu_model": "Another CPU"}))
    monkeypatch.setattr(sys, "argv", ["tune_cpu_preset.py", "--only", "muon", "--out", str(out)])
    with pytest.raises(SystemExit, match="another machine \\(cpu_model\\).*--out FILE"):
        tuning.main()
    assert json.loads(out.read_text()) == {"runs": [], "cpu_model": "Another CPU"}  # left as it was


def test_muon_precision_benchmark_writes_both_speeds(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "muon.json"
    res = subprocess.run([sys.executable, str(root / "benchmarks" / "muon_precision.py"),
                          "--rounds", "3", "--steps", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text())
    assert set(result["best"]) == {"lib (float32)", "torch (bfloat16)"}
    assert all(len(v) == 3 for v in result["tokens_per_sec"].values())
    assert result["first_each_round"] == ["lib (float32)", "torch (bfloat16)", "lib (float32)"]  # alternating
    assert all(v > 0 for v in result["best"].values())
    assert result["ratio"] == pytest.approx(result["best"]["lib (float32)"] / result["best"]["torch (bfloat16)"])
    assert result["preset"] == "shakespeare-char-cpu" and "--rounds 3" in result["command"]
    assert isinstance(result["fast_cpu_bfloat16"], bool) and result["cpu_capability"]


def test_muon_precision_benchmark_refuses_another_machines_file(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "muon.json"
    kept = {"cpu": "some other CPU", "machine": "64 CPU cores (x86_64), Linux",
            "two_minute_runs": {"measured": "elsewhere"}}
    out.write_text(json.dumps(kept))
    res = subprocess.run([sys.executable, str(root / "benchmarks" / "muon_precision.py"),
                          "--rounds", "1", "--steps", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "another machine" in res.stderr and "--out" in res.stderr
    assert "some other CPU" in res.stderr  # it names what differs
    assert json.loads(out.read_text()) == kept  # left as it was


def test_muon_precision_benchmark_refuses_a_file_from_a_cpu_with_other_instructions(tmp_path):
    """The same CPU name and core count is not the same machine: an AVX-512 EPYC and an AVX2
    one are both "AMD EPYC". A file whose instruction sets differ is refused before timing."""
    mp = load_script("benchmarks/muon_precision.py")
    kept = {**mp.machine_identity(), "two_minute_runs": {"measured": "elsewhere"}}
    kept["cpu_flags"] = sorted(set(kept["cpu_flags"]) ^ {"avx512f"})
    out = tmp_path / "muon.json"
    out.write_text(json.dumps(kept))
    with pytest.raises(SystemExit, match="cpu_flags"):
        mp.main(["--rounds", "1", "--steps", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == kept


def test_muon_precision_benchmark_merges_into_this_machines_file(tmp_path):
    """Rerun on the machine that wrote the file, it replaces the speeds and keeps the rest
    (the two-minute runs recorded beside them)."""
    mp = load_script("benchmarks/muon_precision.py")
    out = tmp_path / "muon.json"
    out.write_text(json.dumps({**mp.machine_identity(), "ratio": -1.0,
                               "two_minute_runs": {"measured": "here"}}))
    mp.main(["--rounds", "1", "--steps", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["two_minute_runs"] == {"measured": "here"}
    assert result["ratio"] > 0 and set(result["best"]) == {"lib (float32)", "torch (bfloat16)"}


def test_muon_precision_two_minute_runs_train_each_muon_in_turn(monkeypatch):
    """`--two-minute-seeds` trains the preset with lib's Muon and then PyTorch's own, per seed."""
    mp = load_script("benchmarks/muon_precision.py")
    import lib.optim
    import lib.trainer

    built = []
    real = lib.trainer.make_optimizer

    def recording(*args, **kwargs):
        optimizer = real(*args, **kwargs)
        built.append(type(optimizer.parts["muon"]))
        return optimizer

    monkeypatch.setattr(lib.trainer, "make_optimizer", recording)  # lib's Muon: the default part
    monkeypatch.setattr(mp, "make_optimizer", recording)  # PyTorch's: the part the script hands in
    result = mp.two_minute_runs([3], max_time=1.0)
    assert [(r["muon"], r["seed"]) for r in result["runs"]] == [("lib (float32)", 3), ("torch (bfloat16)", 3)]
    assert set(built) == {lib.optim.Muon, torch.optim.Muon}  # PyTorch's own, not lib's
    assert all(r["steps"] > 0 and r["val_loss_full_split"] < 5 for r in result["runs"])
    assert "--two-minute-seeds" in result["command"]


def test_readmes_loss_ranges_are_the_recorded_runs():
    """The README's ranges for the CPU preset's Muon runs are those of the results files."""
    root = Path(__file__).resolve().parents[1]
    readme = " ".join((root / "README.md").read_text().split())

    def loss_range(*names, variant="muon"):
        losses = [r["val_loss_full_split"] for name in names
                  for r in json.loads((root / "benchmarks" / name).read_text())["runs"] if r["variant"] == variant]
        return len(losses), f"{min(losses):.2f} to {max(losses):.2f}"

    n, tuned = loss_range("cpu-preset-tuning.json")
    assert n == 4 and f"four 120-second runs ranged from {tuned}" in readme
    n, adamw = loss_range("cpu-preset-tuning.json", variant="2-layers+batch32")  # the preset with AdamW
    assert n == 5 and f"AdamW alone, five runs, {adamw}" in readme
    n, machines = loss_range("cpu-preset-tuning.json", "muon-variants-amd-epyc.json", "muon-combinations-amd-epyc.json",
                             "muon-combinations-avx512.json", "cpu-preset-amx.json")
    assert n == 16 and f"the four kinds of 2-core machine measured so far, the preset's two-minute runs reached {machines}" in readme
    speed = {name: sum(r["tokens_per_sec"] for r in runs) / len(runs)
             for name in ("muon-variants-amd-epyc.json", "cpu-preset-amx.json")
             for runs in [[r for r in json.loads((root / "benchmarks" / name).read_text())["runs"] if r["variant"] == "muon"]]}
    assert speed["cpu-preset-amx.json"] > speed["muon-variants-amd-epyc.json"]  # "a slower machine ... ends higher"
    preset_losses = lambda name: [r["val_loss_full_split"] for r in json.loads((root / "benchmarks" / name).read_text())["runs"]
                                  if r["variant"] == "muon"]
    assert min(preset_losses("muon-variants-amd-epyc.json")) > max(preset_losses("cpu-preset-amx.json"))
