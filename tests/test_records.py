"""lib.records: where a run sits against the recorded runs of its preset, one test per branch,
with records made here (no training)."""

import dataclasses
import json

import pytest

from lib import records
from lib.course import PRESETS
from lib.records import TOLERANCE, band, load_records, where_run_sits

CPU, MINI = "shakespeare-char-cpu", "shakespeare-char-mini"


def record(preset=CPU, device="cpu", losses=(1.55, 1.56, 1.57), steps=2000, rate=30_000.0,
           machine="A test CPU", presets=PRESETS):
    model_config, config = presets[preset]
    return {"preset": preset, "device": device, "dtype": "torch.float32",
            "machine": {"cpu": machine, "machine": "2 CPU cores (x86_64), Linux"},
            "threads": 2, "torch": "2.13.0", "date": "2026-12-06", "command": "record_runs.py",
            "source": "0123456789abcdef", "model": model_config.to_dict(),
            "train": {k: v for k, v in dataclasses.replace(config, device=device).to_dict().items()
                      if k not in ("progress", "out_dir")},
            "runs": [{"seed": s, "steps": steps, "seconds": 120.0, "tokens_per_sec": rate,
                      "val_loss": v} for s, v in zip((1337, 0, 1), losses)]}


RECORDS = [record(), record(MINI, losses=(1.88, 1.90, 1.91), steps=1500, rate=60_000.0)]


def test_the_band_is_the_seeds_range_widened_by_the_tolerance():
    assert band(record()) == pytest.approx((1.55 - TOLERANCE, 1.57 + TOLERANCE))


def test_a_run_inside_the_spread_is_normal_whatever_its_speed():
    v = where_run_sits(1.565, CPU, "cpu", 2000, 15_000.0, RECORDS)
    assert v.case == "inside" and v.normal
    assert "inside the recorded spread" in v.text and "between 1.550 and 1.570" in v.text
    assert "0.5 times the recording machine's 30,000" in v.text  # half as fast, said, and no matter
    assert "about the recording machine's 30,000" in where_run_sits(1.565, CPU, "cpu", 2000, 29_000.0, RECORDS).text
    # the edges of the band are inside, just past them is not
    assert where_run_sits(1.57 + TOLERANCE - 1e-9, CPU, "cpu", 2000, 3e4, RECORDS).normal
    assert not where_run_sits(1.57 + TOLERANCE + 1e-3, CPU, "cpu", 2000, 3e4, RECORDS).normal


def test_no_record_for_the_preset():
    v = where_run_sits(1.50, "shakespeare-char-gpu", "cuda", 5000, 1e6, RECORDS)
    assert v.case == "no-record" and not v.normal
    assert "No run of the shakespeare-char-gpu preset has been recorded" in v.text
    assert f"{CPU}, {MINI}" in v.text
    assert where_run_sits(1.5, CPU, "cpu", 2000, 3e4, []).case == "no-record"


def test_fewer_steps_on_a_slower_machine():
    v = where_run_sits(1.70, CPU, "cpu", 1200, 18_000.0, RECORDS)
    assert v.case == "fewer-steps"
    assert "above the recorded spread" in v.text and "1,200 steps where they trained 2,000" in v.text
    assert "slower than the recording's" in v.text and "0.6 times" in v.text
    # as many steps' worth of speed, but stopped early: not blamed on the machine
    assert "stopped early" in where_run_sits(1.70, CPU, "cpu", 1200, 30_000.0, RECORDS).text


def test_more_steps_lower_the_loss():
    v = where_run_sits(1.45, CPU, "cpu", 3000, 45_000.0, RECORDS)
    assert v.case == "more-steps" and "below the recorded spread" in v.text


def test_another_device():
    v = where_run_sits(1.65, CPU, "mps", 2000, 30_000.0, RECORDS)
    assert v.case == "other-device" and "It ran on mps, the record on cpu" in v.text


def test_a_record_of_the_same_device_is_preferred():
    gpu_like = record(device="cuda", losses=(1.64, 1.65, 1.66), rate=1e6, machine="A GPU")
    v = where_run_sits(1.65, CPU, "cuda", 2000, 9e5, RECORDS + [gpu_like])
    assert v.normal and "on A GPU (cuda)" in v.text


def test_a_loss_where_another_preset_ends():
    v = where_run_sits(1.90, CPU, "cpu", 2000, 30_000.0, RECORDS)
    assert v.case == "other-preset" and f"the {MINI} preset" in v.text and "COURSE_PRESET" in v.text


def test_a_preset_changed_since_its_record():
    model_config, config = PRESETS[CPU]
    changed = {**PRESETS, CPU: (model_config, dataclasses.replace(config, lr=1e-3))}
    v = where_run_sits(1.90, CPU, "cpu", 2000, 30_000.0, RECORDS, presets=changed)
    assert v.case == "preset-changed" and "changed since it was recorded" in v.text
    # a preset changed only in what the device or the seed set is the same preset
    same = {**PRESETS, CPU: (model_config, dataclasses.replace(config, seed=3, device="cuda"))}
    assert where_run_sits(1.90, CPU, "cpu", 2000, 3e4, RECORDS, presets=same).case != "preset-changed"


def test_outside_with_nothing_to_blame():
    v = where_run_sits(1.40, CPU, "cpu", 2000, 30_000.0, RECORDS)
    assert v.case == "unexplained" and "below the recorded spread" in v.text
    assert "01234567" in v.text and "2.13.0" in v.text


def test_load_records_reads_the_file_and_finds_none_without_one(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"records": RECORDS}))
    assert load_records(path) == RECORDS
    assert load_records(tmp_path / "absent.json") == []


def test_the_recorded_file_holds_three_seeds_per_preset_and_the_machine():
    """benchmarks/course-runs.json, as record_runs.py writes it: every record has at least
    three seeds of the preset's own recipe, the machine, and a loss under the preset's bound."""
    from lib.course import VAL_LOSS_BOUND

    found = load_records(records.RECORDS_FILE)
    assert {CPU, MINI} <= {r["preset"] for r in found}
    for r in found:
        assert len({x["seed"] for x in r["runs"]}) >= 3 and r["machine"]["machine"]
        assert all(x["steps"] <= PRESETS[r["preset"]][1].max_steps for x in r["runs"])
        assert max(x["val_loss"] for x in r["runs"]) < VAL_LOSS_BOUND[r["preset"]]
        assert not records._preset_changed(r, PRESETS), "the preset changed: record it again"


def test_run_verdict_reads_a_finished_run(small_corpus, counted_runs, monkeypatch):
    from helpers import tiny_model_config, tiny_train_config
    from lib.course import train_or_load, val_split_loss
    from lib.records import run_verdict

    trainer = train_or_load(tiny_model_config(small_corpus.tokenizer.vocab_size),
                            tiny_train_config(max_steps=6), small_corpus, verbose=False)
    loss = val_split_loss(trainer)
    around = [record(losses=(loss - 0.01, loss, loss + 0.01), steps=6)]
    v = run_verdict(trainer, CPU, around)
    assert v.normal and f"{loss:.3f}" in v.text
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    assert run_verdict(trainer, records=around).normal  # the CPU preset: the run's device is a CPU
    assert run_verdict(trainer, CPU, [record(losses=(loss + 1,) * 3, steps=12)]).case == "fewer-steps"


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(ValueError, match="tokens_per_sec must be a finite number > 0"):
        where_run_sits(1.5, CPU, "cpu", 2000, 0.0, RECORDS)
    with pytest.raises(ValueError, match="val_loss must be a finite number"):
        where_run_sits(float("nan"), CPU, "cpu", 2000, 3e4, RECORDS)
