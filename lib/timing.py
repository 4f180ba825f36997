"""Timings that stay true on a busy machine.

A learner's laptop runs a browser and more, and a build machine is shared: at some moments
another program holds a core, and whatever runs then is slower. Three habits keep what the
lessons say about speed true anyway:

- Two things that are compared (the machine's matrix-multiply rate and a training step) are
  measured in alternating rounds, and their medians compared: a busy moment slows both.
- A run's speed is the median of the rates it logged; its clock (the time its steps really
  took) says whether stalls slowed part of it, and the text says so instead of blaming a cause.
- Durations derived for the reader come from the median rate, not from a clock that includes
  stalls (`seconds_at_median_rate`).

The explanation of a measured speed is chosen by the case the measurement is in
(`step_phrase`, `run_phrase`), never fixed text beside a number that can move.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from time import perf_counter, process_time
from typing import Callable

import torch

from . import checks
from .device import matmul_rate, sync  # noqa: F401 - matmul_rate: time_step alternates it

# Rounds whose slowest is this many times slower than their fastest were not measured on a
# quiet machine: quiet, 5-step rounds on a CPU agree to some percent; another program that
# takes a core for a moment slows a round by far more.
BUSY_SPREAD = 1.5
# Other programs that used, on average, more than half a core while a measurement ran made it
# on a busy machine: PyTorch runs a step on as many threads as there are cores, and each of its
# many small operations waits for the slowest thread, so a step suffers far more from a
# competing program than one large matrix multiply does.
OTHERS_BUSY = 0.5
# A run whose steps took this many times longer, on the clock, than its median rate says was
# slowed by stalls for part of its time (a quiet run's mean step is within some percent of it).
SLOWED = 1.5
# Up to this ratio, the clock and the median agree (the mean of quiet steps sits a little
# above their median).
QUIET = 1.15
# The first tenth of a run's logged rates is left out of its median (warm-up: allocator,
# kernels, the optimizer's state).
WARMUP_SHARE = 0.1


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has spent working, CPU seconds this process has), for
    telling how much of the machine other programs used over an interval; None where the
    machine's total is unknown (it is read from /proc/stat on Linux, else with psutil if it
    is installed)."""
    try:
        ours = {f"cpu{i}" for i in _our_cpus()}
        machine = 0.0
        with open("/proc/stat") as f:
            for line in f:
                name, *values = line.split()
                if name in ours:  # the cores this process may run on (a container's, say)
                    # user nice system idle iowait irq softirq steal (guest is within user)
                    ticks = [int(v) for v in values[:8]]
                    machine += sum(ticks) - ticks[3] - ticks[4]
        machine /= os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        try:
            import psutil
        except ImportError:
            return None
        t = psutil.cpu_times()._asdict()
        machine = sum(v for k, v in t.items() if k not in ("idle", "iowait", "guest", "guest_nice"))
    return machine, process_time()


def _our_cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def others_cores(before, after, seconds: float) -> float | None:
    """How many cores other programs kept busy on average between two `cpu_seconds()`."""
    if before is None or after is None or not seconds > 0:
        return None
    machine, own = after[0] - before[0], after[1] - before[1]
    return max(0.0, (machine - own) / seconds)


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """A training step's time against the machine's matrix-multiply rate, measured in
    alternating rounds (`time_step`)."""

    flops_per_step: float
    peak_rounds: tuple[float, ...]  # FLOP/s of the matrix multiply, one per round
    step_rounds: tuple[float, ...]  # seconds per step, one per round (the same rounds)
    others: float | None = None  # cores that other programs kept busy meanwhile (None: unknown)
    cores: int = 1  # the machine's cores

    @property
    def peak(self) -> float:
        """The median matrix-multiply rate, FLOP/s."""
        return statistics.median(self.peak_rounds)

    @property
    def step(self) -> float:
        """The median step time, seconds."""
        return statistics.median(self.step_rounds)

    @property
    def predicted(self) -> float:
        """The step time the FLOPs predict at the median rate, seconds."""
        return self.flops_per_step / self.peak

    @property
    def mfu(self) -> float:
        """Model FLOP utilisation: the predicted step time over the measured one."""
        return self.predicted / self.step

    @property
    def spread(self) -> float:
        """How far the rounds moved: the larger of slowest / fastest for the two measures."""
        return max(max(r) / min(r) for r in (self.peak_rounds, self.step_rounds))

    @property
    def busy(self) -> bool:
        """Whether the machine was busy during the measurement: other programs used its cores,
        its rounds moved far, or the step beat the matrix multiply, which only a rate measured
        at a busy moment allows."""
        return (self.others is not None and self.others > OTHERS_BUSY
                or self.spread > BUSY_SPREAD or self.mfu > 1)


def time_step(step: Callable[[], object], flops_per_step: float, device, dtype=None,
              rounds: int = 5, steps: int = 5, warmup: int = 3,
              peak_seconds: float = 0.1) -> StepTiming:
    """Time `step()` (one training step) against the matrix-multiply rate: `warmup` steps,
    then `rounds` rounds, each a short measurement of the rate followed by `steps` steps.
    Alternating the two, round by round, means that a moment when the machine is busy slows
    both, and their medians compare like with like."""
    checks.integer("rounds", rounds, 1)
    checks.integer("steps", steps, 1)
    checks.number("flops_per_step", flops_per_step, 0, low_open=True)
    device = torch.device(device)
    for _ in range(warmup):
        step()
    peaks, times = [], []
    start, cpu_before = perf_counter(), cpu_seconds()
    for _ in range(rounds):
        peaks.append(matmul_rate(device, dtype, peak_seconds))
        sync(device)
        t0 = perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        times.append((perf_counter() - t0) / steps)
    others = others_cores(cpu_before, cpu_seconds(), perf_counter() - start)
    return StepTiming(float(flops_per_step), tuple(peaks), tuple(times), others,
                      len(_our_cpus()))


def step_phrase(t: StepTiming) -> str:
    """The explanation of a step's MFU, chosen by the case the measurement is in."""
    if t.busy:
        if t.others is not None and t.others > OTHERS_BUSY:
            what = f"other programs kept {t.others:.1f} of its {t.cores} cores busy on average"
        else:
            lo, hi = min(t.peak_rounds) / 1e9, max(t.peak_rounds) / 1e9
            what = (f"from one round to the next its matrix-multiply rate moved between {lo:.3g} "
                    f"and {hi:.3g} GFLOP/s")
        return (f"This measurement was made while the machine was busy: {what}. So the ratio "
                "says as much about the other programs as about the model; run the cell again "
                "when the machine is quiet.")
    return ("The rest goes to what the FLOP count ignores: the small matrices of a small model "
            "multiply less efficiently than the large square ones of the benchmark, and "
            "LayerNorms, GELUs, the softmax, the optimizer and Python itself all take time "
            "without doing counted FLOPs.")


@dataclasses.dataclass(frozen=True)
class RunSpeed:
    """A training run's speed, read from its history (`run_speed`)."""

    tokens: int  # tokens the run trained on
    tokens_per_sec: float  # the median of its logged rates (warm-up left out)
    mfu: float  # the median of its logged MFUs (warm-up left out)
    step_seconds: float  # what its steps took on the clock (evaluations excluded)
    elapsed: float  # its whole time: steps and evaluations

    @property
    def median_seconds(self) -> float:
        """What its steps take at the median rate."""
        return self.tokens / self.tokens_per_sec

    @property
    def eval_seconds(self) -> float:
        return max(0.0, self.elapsed - self.step_seconds)

    @property
    def slowdown(self) -> float:
        """Its steps' clock time over their time at the median rate (about 1 on a quiet machine)."""
        return self.step_seconds / self.median_seconds

    @property
    def slowed(self) -> bool:
        """Whether stalls slowed part of the run, or its MFU says its rate was measured at a
        busy moment."""
        return self.slowdown > SLOWED or self.mfu > 1


def _rates(history: dict, key: str) -> list[float]:
    rows = history["train"]
    return [r[key] for r in rows[int(len(rows) * WARMUP_SHARE):]]


def median_tokens_per_sec(history: dict) -> float:
    """The median of a run's logged tokens per second, the first tenth (warm-up) left out."""
    rates = _rates(history, "tokens_per_sec")
    if not rates:
        raise ValueError("the history has no logged training steps")
    return float(statistics.median(rates))


def seconds_at_median_rate(history: dict, tokens: float) -> float:
    """How long `tokens` tokens take at the run's median rate (training steps only, as the
    machine runs when it is not busy with something else): for durations told to the reader,
    which a run's clock, stalls included, would overstate."""
    return float(tokens) / median_tokens_per_sec(history)


def run_speed(history: dict, elapsed: float) -> RunSpeed:
    """A run's median rate and MFU, and what its steps took on the clock, from its history
    (each logged row's rate covers the steps since the row before) and `elapsed`, the
    trainer's whole time."""
    rows = history["train"]
    if not rows:
        raise ValueError("the history has no logged training steps")
    step_seconds, before = 0.0, 0
    for r in rows:
        step_seconds += (r["tokens"] - before) / r["tokens_per_sec"]
        before = r["tokens"]
    return RunSpeed(tokens=int(rows[-1]["tokens"]), tokens_per_sec=median_tokens_per_sec(history),
                    mfu=float(statistics.median(_rates(history, "mfu"))),
                    step_seconds=step_seconds, elapsed=float(elapsed))


def run_phrase(s: RunSpeed) -> str:
    """The explanation of a run's clock time, chosen by the case the run is in."""
    if s.mfu > 1:
        return ("Its MFU above 100% says the machine was busy when the run measured its "
                "matrix-multiply rate, which made that rate look low; its speed is the machine's "
                "and the other programs' together.")
    if s.slowed:
        return (f"Its steps took {s.slowdown:.1f} times as long on the clock as at their median "
                "rate: for part of the run the machine was busy with other programs, and the "
                "median is the speed it trains at when it is not. Durations the course derives "
                "from this run use the median.")
    if s.slowdown > QUIET:
        return ("The clock is somewhat slower than the median: the slowest steps (another "
                "program taking a core for a moment, Python collecting garbage) pull the mean "
                "below the median, which is the speed to expect.")
    return "The two agree: the steps ran at close to their median rate all through."


def anon_memory(pid: int | None = None) -> int | None:
    """A process's anonymous resident memory in bytes (`RssAnon` in Linux's /proc/PID/status):
    the memory it owns. Pages of a memory-mapped file are not in it (the kernel caches them for
    every process and can drop them), where they are in its total RSS. None off Linux."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
