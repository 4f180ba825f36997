"""Is my run normal? The course's run recorded per preset, and where a learner's run sits.

benchmarks/record_runs.py trains the course's run of a preset with several seeds on one machine
and keeps, per preset and machine, each seed's loss on the whole validation split, its steps and
its speed (benchmarks/course-runs.json; the wheel carries a copy inside lib).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

from . import checks
from .course import PRESETS, course_preset, val_split_loss
from .timing import median_tokens_per_sec

_HERE = Path(__file__).resolve().parent
# The repository's file, or the wheel's copy inside lib (pyproject.toml's force-include).
RECORDS_FILE = _HERE.parent / "benchmarks" / "course-runs.json"
PACKAGED_RECORDS_FILE = _HERE / "course-runs.json"


def load_records(path: Path | None = None) -> list[dict]:
    """The recorded runs (a list of records, one per preset and machine); [] when none is found."""
    for candidate in ([Path(path)] if path is not None else [RECORDS_FILE, PACKAGED_RECORDS_FILE]):
        if candidate.is_file():
            return json.loads(candidate.read_text())["records"]
    return []


# Three seeds show only part of the spread a fourth can land in: a run is inside the record
# when its loss is within the recorded seeds' range widened by this much on each side (nats).
TOLERANCE = 0.02
# Runs whose steps differ by more than this share did not train the same recipe.
STEP_SHARE = 0.05
# Fields of the train config that the device, a time budget or the seed change, not the preset.
_NOT_THE_PRESET = ("device", "seed", "max_steps", "max_time", "progress", "out_dir",
                   "checkpoint_minutes")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Where a run sits against the record of its preset: `case` names the branch (inside,
    no-record, fewer-steps, more-steps, preset-changed, other-device, other-preset,
    unexplained) and `text` says it in words."""

    case: str
    text: str

    @property
    def normal(self) -> bool:
        return self.case == "inside"


def band(record: dict) -> tuple[float, float]:
    """(low, high): the losses a normal run of this record ends between."""
    losses = [r["val_loss"] for r in record["runs"]]
    return min(losses) - TOLERANCE, max(losses) + TOLERANCE


def _machine(record: dict) -> str:
    m = record["machine"]
    return m.get("gpu") or m.get("cpu") or m.get("machine", "an unnamed machine")


def _pick(records: list[dict], device: str, tokens_per_sec: float) -> dict:
    """The record to compare a run with: one of its device type if any, the one whose speed
    is nearest to the run's (likely the most similar machine)."""
    same = [r for r in records if r["device"] == device] or records
    rate = lambda r: statistics.median([x["tokens_per_sec"] for x in r["runs"]])  # noqa: E731
    return min(same, key=lambda r: abs(math.log(rate(r) / tokens_per_sec)))


def _preset_changed(record: dict, presets: dict) -> bool:
    if record["preset"] not in presets:
        return False
    model_config, config = presets[record["preset"]]
    then_train = type(config).from_dict(record["train"]).to_dict()  # later fields: defaults
    now = {k: v for k, v in config.to_dict().items() if k not in _NOT_THE_PRESET}
    then = {k: v for k, v in then_train.items() if k not in _NOT_THE_PRESET}
    then_model = type(model_config).from_dict(record["model"])  # fields added later take defaults
    return model_config != then_model or now != then


def where_run_sits(val_loss: float, preset: str, device: str, steps: int, tokens_per_sec: float,
                   records: list[dict] | None = None, presets: dict | None = None) -> Verdict:
    """Where a finished run sits against the recorded runs of its preset, in words: inside the
    recorded spread, or outside it and the likely reason (another number of steps, as when a
    time budget ran out on a slower machine; the preset's settings changed since the record;
    another device; a loss where another preset's runs end), or no record to compare with.

    `val_loss` is the loss on the whole validation split (`course.val_split_loss`), `device` a
    device type ('cpu', 'cuda', 'mps'), `tokens_per_sec` the run's median speed
    (`timing.median_tokens_per_sec`). `records` defaults to the recorded file, `presets` to
    the course's presets."""
    checks.number("val_loss", val_loss, 0)
    checks.integer("steps", steps, 0)
    checks.number("tokens_per_sec", tokens_per_sec, 0, low_open=True)
    records = load_records() if records is None else records
    presets = PRESETS if presets is None else presets
    mine = [r for r in records if r["preset"] == preset]
    if not mine:
        have = sorted({r["preset"] for r in records})
        return Verdict("no-record", (
            f"No run of the {preset} preset has been recorded, so there is nothing to compare "
            f"this run's loss of {val_loss:.3f} with (recorded: {', '.join(have) or 'none'})."))
    rec = _pick(mine, device, tokens_per_sec)
    low, high = band(rec)
    losses = [r["val_loss"] for r in rec["runs"]]
    rate = statistics.median([r["tokens_per_sec"] for r in rec["runs"]])
    rec_steps = statistics.median([r["steps"] for r in rec["runs"]])
    speed = tokens_per_sec / rate
    where = (f"the {len(losses)} recorded runs of {preset} on {_machine(rec)} "
             f"({rec['device']}) ended between {min(losses):.3f} and {max(losses):.3f}")
    pace = (f"this run trained at {tokens_per_sec:,.0f} tokens per second, "
            + (f"about the recording machine's {rate:,.0f}" if abs(speed - 1) < 0.05 else
               f"{speed:.2g} times the recording machine's {rate:,.0f}"))
    if low <= val_loss <= high:
        return Verdict("inside", (
            f"This run is normal: its loss of {val_loss:.3f} is inside the recorded spread "
            f"({where}). Speed does not change the loss of a run of fixed steps: {pace}."))
    side = "above" if val_loss > high else "below"
    head = f"This run's loss of {val_loss:.3f} is {side} the recorded spread ({where})."
    if abs(steps - rec_steps) > STEP_SHARE * rec_steps:
        if steps < rec_steps:
            why = (f"a time budget ran out sooner on a machine slower than the recording's "
                   f"({pace})" if speed < 1 else "it was stopped early")
            return Verdict("fewer-steps", (
                f"{head} It trained {steps:,} steps where they trained {rec_steps:,.0f}: "
                f"{why}, and fewer steps leave a higher loss."))
        return Verdict("more-steps", (
            f"{head} It trained {steps:,} steps where they trained {rec_steps:,.0f}: more "
            f"steps lower the loss."))
    if _preset_changed(rec, presets):
        return Verdict("preset-changed", (
            f"{head} The {preset} preset's settings have changed since it was recorded "
            f"({rec['date']}): the record is of another recipe, and needs recording again "
            f"(benchmarks/record_runs.py)."))
    if rec["device"] != device:
        return Verdict("other-device", (
            f"{head} It ran on {device}, the record on {rec['device']}: another device computes "
            f"in another precision with other kernels, and no {device} run of this preset has "
            f"been recorded to compare it with."))
    others = [r for r in records if r["preset"] != preset and band(r)[0] <= val_loss <= band(r)[1]]
    if others:
        return Verdict("other-preset", (
            f"{head} It ends where the recorded runs of the {others[0]['preset']} preset end: "
            f"was the run trained with that preset (check $COURSE_PRESET)?"))
    return Verdict("unexplained", (
        f"{head} It trained as many steps on the same kind of device with the same settings, "
        f"so something the record does not show differs: the code (the record's fingerprint "
        f"is {rec['source'][:8]}), the data, or PyTorch ({rec['torch']} in the record)."))


def run_verdict(trainer, preset: str | None = None, records: list[dict] | None = None) -> Verdict:
    """`where_run_sits` for a finished run of the course (its trainer); `preset` defaults to
    the course's preset on the run's device (`course.course_preset`)."""
    preset = course_preset(trainer.device) if preset is None else preset
    return where_run_sits(val_split_loss(trainer), preset, trainer.device.type, trainer.step,
                          median_tokens_per_sec(trainer.history), records)
