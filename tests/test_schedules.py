"""lib.schedules: values pinned at chosen steps, and equal to PyTorch's own schedulers."""

import math

import pytest
import torch

from lib.schedules import SCHEDULES, get_schedule


def torch_multipliers(make_scheduler, steps):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_pinned_values():
    f = get_schedule("cosine", max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1)  # (0 + 1) / 10
    assert f(9) == pytest.approx(1.0)  # last warmup step
    assert f(10) == pytest.approx(1.0)  # cosine starts at the peak
    assert f(55) == pytest.approx(0.55)  # half way: min_lr_ratio + (1 - min_lr_ratio) / 2
    assert f(100) == pytest.approx(0.1)
    g = get_schedule("wsd", max_steps=100, warmup_steps=10, min_lr_ratio=0.0, decay_fraction=0.2)
    assert [g(s) for s in (5, 10, 79, 80, 90, 100)] == pytest.approx([0.6, 1, 1, 1, 0.5, 0])
    h = get_schedule("inverse_sqrt", max_steps=100, warmup_steps=4)
    assert [h(s) for s in (0, 3, 4, 15)] == pytest.approx([0.25, 1.0, math.sqrt(4 / 5), 0.5])
    lin = get_schedule("linear", max_steps=10, min_lr_ratio=0.5)
    assert [lin(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.75, 0.5])
    assert get_schedule("constant", 10)(7) == 1.0


def test_cosine_equals_torch_cosine_annealing():
    f = get_schedule("cosine", max_steps=50, min_lr_ratio=0.1)
    ref = torch_multipliers(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.1), 51)
    assert [f(s) for s in range(51)] == pytest.approx(ref, abs=1e-12)


def test_linear_equals_torch_linear_lr():
    f = get_schedule("linear", max_steps=40, min_lr_ratio=0.2)
    ref = torch_multipliers(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=40), 45)
    assert [f(s) for s in range(45)] == pytest.approx(ref, abs=1e-12)


def test_warmup_equals_torch_linear_lr():
    f = get_schedule("constant", max_steps=100, warmup_steps=8)
    ref = torch_multipliers(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 8, end_factor=1.0, total_iters=7), 20)
    assert [f(s) for s in range(20)] == pytest.approx(ref, abs=1e-12)


def test_constant_equals_torch_constant():
    f = get_schedule("constant", max_steps=10)
    ref = torch_multipliers(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1.0), 10)
    assert [f(s) for s in range(10)] == ref


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_is_bounded_and_pure(name):
    f = get_schedule(name, max_steps=200, warmup_steps=20, min_lr_ratio=0.1)
    values = [f(s) for s in range(250)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == [f(s) for s in range(250)]  # a pure function of the step


@pytest.mark.parametrize(
    "args, pattern",
    [
        (dict(name="cosin", max_steps=10), "schedule must be one of constant, .*, got 'cosin'"),
        (dict(name="cosine", max_steps=0), "max_steps must be an integer >= 1"),
        (dict(name="cosine", max_steps=10, warmup_steps=11), r"warmup_steps must be an integer in \[0, 10\] \(max_steps = 10\)"),
        (dict(name="cosine", max_steps=10, warmup_steps=-1), "warmup_steps"),
        (dict(name="cosine", max_steps=10, min_lr_ratio=1.5), r"min_lr_ratio must be a finite number in \[0, 1\]"),
        (dict(name="wsd", max_steps=10, decay_fraction=0.0), r"decay_fraction must be a finite number in \(0, 1\]"),
        (dict(name="wsd", max_steps=10, warmup_steps=9, decay_fraction=0.5), "must not exceed max_steps"),
    ],
)
def test_bad_settings_are_named(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        get_schedule(**args)


def test_wrong_types_are_named():
    with pytest.raises(TypeError, match="max_steps"):
        get_schedule("cosine", max_steps=10.0)
    with pytest.raises(TypeError, match="min_lr_ratio"):
        get_schedule("cosine", max_steps=10, min_lr_ratio="0.1")
