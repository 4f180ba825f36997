"""lib.budget: the course's run within a time budget. A slow or fast device is faked by the
step time handed to the plan, and to course_run, never by patching torch."""

import dataclasses

import pytest

from lib import budget, course
from lib.budget import FRACTIONS, GPU_BUDGET, plan_run, predicted_seconds, run_configs
from lib.course import PRESETS

from helpers import tiny_model_config, tiny_train_config

GPU = PRESETS["shakespeare-char-gpu"][1]


def test_a_fast_gpu_keeps_the_preset_recipe():
    plan = plan_run(GPU, 0.02, 0.5, capped=True)  # an A100-like step: 5,000 steps in ~100 s
    assert plan.config == GPU and not plan.capped and plan.seconds <= GPU_BUDGET
    assert plan.sentence.startswith(f"The course's run: {GPU.max_steps:,} steps, about 1.8 minutes")


def test_a_slow_gpu_gets_its_steps_cut_to_fit_the_budget():
    plan = plan_run(GPU, 0.09, 1.0, capped=True)  # a T4-like step: the whole recipe ~7.7 min
    assert plan.capped and plan.config.max_steps == GPU.max_steps // 2
    assert plan.seconds <= GPU_BUDGET < plan.full_seconds
    assert dataclasses.replace(plan.config, max_steps=GPU.max_steps) == GPU  # nothing else moved
    assert "would take about 7.7 minutes" in plan.sentence
    assert f"the run takes {GPU.max_steps // 2:,} of them, about 3.9 minutes." in plan.sentence


def test_a_very_slow_device_gets_the_fewest_steps_and_is_told_it_is_over():
    plan = plan_run(GPU, 1.0, 5.0, capped=True)
    assert plan.config.max_steps == GPU.max_steps // FRACTIONS[-1]
    assert plan.seconds > GPU_BUDGET and plan.sentence.endswith("still more than the budget.")


def test_a_cpu_is_never_capped_and_is_told_how_long_it_takes():
    cpu = PRESETS["shakespeare-char-cpu"][1]
    plan = plan_run(cpu, 0.06, 0.3, capped=False)
    assert plan.config == cpu and plan.budget is None
    assert plan.seconds == pytest.approx(predicted_seconds(cpu.max_steps, cpu, 0.06, 0.3))
    assert plan.sentence == (f"The course's run: {cpu.max_steps:,} steps, about 2 minutes on this "
                             f"device (a step timed at 60 ms).")


def test_predicted_seconds_counts_the_evaluations():
    cfg = tiny_train_config(max_steps=100, eval_interval=25)
    assert predicted_seconds(100, cfg, 0.1, 1.0) == pytest.approx(10 + 6)  # start, 4, end


def test_bad_timings_are_refused():
    with pytest.raises(ValueError, match="step_seconds > 0"):
        plan_run(GPU, 0.0, 1.0, capped=True)


def test_run_configs_are_every_plan_the_preset_can_get():
    configs = run_configs(GPU, capped=True)
    assert [c.max_steps for c in configs] == [GPU.max_steps // f for f in FRACTIONS]
    for step in (0.001, 0.05, 0.09, 0.2, 10.0):
        assert plan_run(GPU, step, 1.0, capped=True).config in configs
    assert run_configs(GPU, capped=False) == [GPU]


def test_time_run_times_a_step_and_an_evaluation(small_corpus):
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    step, evaluation = budget.time_run(mc, tiny_train_config(), small_corpus.train, small_corpus.val)
    assert 0 < step < 5 and 0 < evaluation < 5


def test_course_run_caps_a_faked_slow_device_and_serves_it_from_the_cache(
        small_corpus, counted_runs, monkeypatch, capsys):
    """course_run on a tiny preset: capped, a slow step gets half the steps (said before it
    trains); the next call finds that run in the cache without timing anything."""
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    cfg = tiny_train_config(max_steps=8, warmup_steps=1, eval_interval=4)
    monkeypatch.setitem(course.PRESETS, "shakespeare-char-cpu", (mc, cfg))
    monkeypatch.setattr(course, "load_char_corpus", lambda: small_corpus)
    monkeypatch.delenv(course.PRESET_ENV, raising=False)
    slow = (GPU_BUDGET / 6, 0.0)  # 8 steps would take 320 s, 4 steps 160 s
    trainer, _ = course.course_run("cpu", capped=True, timing=slow)
    assert trainer.step == 4 and len(counted_runs) == 1
    assert "the run takes 4 of them" in capsys.readouterr().out
    assert "4 of the shakespeare-char-cpu preset's 8 steps" in budget.what_the_device_got(trainer, "shakespeare-char-cpu", 8)
    monkeypatch.setattr(budget, "time_run", lambda *a, **k: pytest.fail("timed a cached run"))
    again, _ = course.course_run("cpu", capped=True)
    assert again.step == 4 and len(counted_runs) == 1
    fast, _ = course.course_run("cpu", capped=False, timing=(0.01, 0.0))  # a CPU: the recipe
    assert fast.step == 8 and "whole recipe: 8" in budget.what_the_device_got(fast, "shakespeare-char-cpu", 8)


def test_the_readme_states_the_budget_and_the_recipe_as_lib_has_them():
    from pathlib import Path

    from lib.book import duration

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert f"recipe would take more than {duration(GPU_BUDGET)}" in readme
    assert f"GPU preset's recipe ({GPU.max_steps:,} steps" in readme
    assert FRACTIONS == (1, 2, 4) and "a half or a quarter of the steps" in readme
