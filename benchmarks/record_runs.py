"""Record the course's run per preset, over several seeds, on this machine: what "a normal run"
is, for `lib.records.where_run_sits` (lessons 2 and 5 call it after the course's run).

    python benchmarks/record_runs.py                                  # the CPU and mini presets
    python benchmarks/record_runs.py --presets shakespeare-char-gpu   # on a CUDA machine
    python benchmarks/record_runs.py --seeds 1337 0 1 2 --out /tmp/runs.json

Each run is the course's run as lesson 2 makes it (`lib.course.course_run`, the preset chosen
as $COURSE_PRESET chooses it), with the preset's own seed first and then others, trained here
(not served from the cache unless `--reuse`, so its speed is this machine's) and then kept in
the run cache, so the lessons that follow load the first. A run is scored as lesson 2 scores it: the loss on
the whole validation split. Per preset and machine the file keeps one record: the machine
(`lib.device.machine_identity`, and the GPU's name on CUDA), device, precision, PyTorch's
threads, torch, date, command, the preset's configs, the fingerprint of the code that trains
(`source`), and per seed the steps, seconds, median tokens per second and the loss. A new
recording of the same preset on the same machine replaces the old one; other machines' records
are kept.

Run it on an otherwise idle machine: a busy one records a slower speed than the machine has.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch

from lib.course import PRESET_ENV, PRESETS, course_config, course_run, source_fingerprint, \
    val_split_loss
from lib.device import machine_identity
from lib.records import RECORDS_FILE
from lib.timing import median_tokens_per_sec

DEFAULT_PRESETS = ("shakespeare-char-cpu", "shakespeare-char-mini")


def record_preset(preset: str, seeds: list[int], device: str = "auto", reuse: bool = False) -> dict:
    """Train the course's run of `preset` once per seed (or, with `reuse`, load the runs the
    cache holds) and return its record."""
    os.environ[PRESET_ENV] = preset
    name, model_config, config = course_config(device)
    runs = []
    for seed in [config.seed] + [s for s in seeds if s != config.seed]:
        print(f"{preset}, seed {seed}:", flush=True)
        trainer, _ = course_run(device, retrain=not reuse, seed=seed)
        runs.append({"seed": seed, "steps": trainer.step, "seconds": round(trainer.elapsed, 2),
                     "tokens_per_sec": round(median_tokens_per_sec(trainer.history), 1),
                     "val_loss": round(val_split_loss(trainer), 5)})
        print(f"  {runs[-1]}", flush=True)
    dev = torch.device(config.device)
    machine = machine_identity()
    if dev.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(dev)
    return {"preset": name, "device": dev.type, "dtype": str(trainer.dtype or torch.float32),
            "machine": machine, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "source": source_fingerprint(), "model": model_config.to_dict(),
            "train": {k: v for k, v in config.to_dict().items() if k not in ("progress", "out_dir")},
            "runs": runs}


def merge(records: list[dict], new: dict) -> list[dict]:
    """The records with `new` in place of the one of its preset, device and machine."""
    same = lambda r: (r["preset"], r["device"], r["machine"]) == (new["preset"], new["device"],  # noqa: E731
                                                                  new["machine"])
    return [r for r in records if not same(r)] + [new]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1337, 0, 1],
                        help="seeds (the preset's own first; at least 3, for a spread)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reuse", action="store_true",
                        help="use runs the run cache holds (their speed is that of the machine "
                             "that trained them: use only a cache this machine filled)")
    parser.add_argument("--out", type=Path, default=RECORDS_FILE)
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 3:
        parser.error("--seeds: give at least 3 different seeds, so that the record has a spread")
    data = json.loads(args.out.read_text()) if args.out.exists() else {"records": []}
    for preset in args.presets:
        data["records"] = merge(data["records"], record_preset(preset, args.seeds, args.device, args.reuse))
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, args.out)  # after each preset: a stopped recording keeps what it made
        print(f"Wrote {args.out}.")


if __name__ == "__main__":
    main()
