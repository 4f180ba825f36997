"""The GPU check: on a CUDA machine, in under 10 minutes, everything the course claims about a
GPU, measured, into one JSON file the Performance appendix shows.

    python benchmarks/gpu_check.py                  # on a CUDA machine (make gpu-check)
    python benchmarks/gpu_check.py --dry --out /tmp/gpu-check.json   # anywhere, in seconds

It runs, in this order, each part within what is left of `--budget` seconds:
1. the unit tests marked `gpu` (COURSE_REQUIRE_GPU=1, so none is skipped quietly);
2. the course's run, as lesson 2 makes it (`lib.course.course_run`, so the GPU preset within
   lib.budget's GPU budget), timed in a fresh run cache: the plan it printed, its steps,
   seconds, tokens per second, loss on the whole validation split, and where that sits
   against the recorded runs (`lib.records`);
3. each lesson under nbval, in that same cache (so lesson 2 loads the run just timed), timed
   from pytest's own report; a lesson that no longer fits in the budget is listed as not run.
The file says the machine (GPU, compute capability, the precision lib picks, torch, CUDA).

`--dry` checks the script itself on any machine, CI's CPU included: the unit tests marked gpu
are collected (and skipped without a GPU), the course's run is a tiny model for 20 steps, and
the lessons are one tiny notebook written for the purpose (an .ipynb in a temporary folder).
Its file is marked `"dry": true`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "gpu-check.json"
BUDGET = 540.0  # seconds: the whole check stays under 10 minutes

DRY_LESSON = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A tiny notebook for the dry run

```{code-cell} ipython3
import lib.course
x = sum(range(10))
```

```{code-cell} ipython3
assert x == 45
```
"""


def machine() -> dict:
    import torch

    from lib.device import autocast_dtype, machine_label, pick_device

    dev = pick_device("auto")
    info = {"device": dev.type, "machine": machine_label(), "torch": torch.__version__,
            "precision": str(autocast_dtype(dev) or torch.float32)}
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        info.update(gpu=torch.cuda.get_device_name(dev), capability=f"{major}.{minor}",
                    cuda=torch.version.cuda)
    return info


def pytest_run(args: list[str], junit: Path, env: dict, timeout: float) -> dict:
    """Run pytest in a child process; its outcome and seconds from its JUnit report, by file."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={junit}", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=max(1.0, timeout))
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        code, tail = "timeout", f"stopped after {timeout:.0f} s"
    result = {"exit_code": code, "seconds": round(time.perf_counter() - t0, 1), "passed": 0,
              "failed": 0, "skipped": 0}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                       else "skipped" if case.find("skipped") is not None else "passed")
            result[outcome] += 1
    if code not in (0, 5):  # 5: nothing collected
        result["output_tail"] = tail
    return result


def gpu_tests(env: dict, timeout: float) -> dict:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                   if "mark.gpu" in p.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        return {"files": files, **pytest_run(["-m", "gpu", *files], Path(tmp) / "junit.xml",
                                             env, timeout)}


def course_run_timed(dry: bool) -> dict:
    """The course's run as lesson 2 makes it, timed (in the run cache $COURSE_CACHE_DIR names)."""
    import contextlib
    import io

    from lib import course, records
    from lib.timing import median_tokens_per_sec

    device = "cpu" if dry else "cuda"
    name = course.course_preset(device)
    if dry:  # tiny settings: the mechanism, not the preset
        model_config, config = course.PRESETS[name]
        from lib.model import GPTConfig

        course.PRESETS[name] = (GPTConfig(vocab_size=model_config.vocab_size, block_size=16,
                                          n_layer=1, n_head=2, n_embd=32),
                                course.dataclasses.replace(config, max_steps=20, warmup_steps=2,
                                                           eval_interval=10, eval_batches=2))
    said = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(said):
        trainer, _ = course.course_run(device)
    seconds = time.perf_counter() - t0
    verdict = records.run_verdict(trainer, name)
    return {"preset": name, "said": said.getvalue().strip().splitlines(),
            "preset_steps": course.PRESETS[name][1].max_steps, "steps": trainer.step,
            "seconds": round(seconds, 1), "training_seconds": round(trainer.elapsed, 1),
            "tokens_per_sec": round(median_tokens_per_sec(trainer.history), 1),
            "val_loss": round(course.val_split_loss(trainer), 4),
            "verdict": verdict.case, "verdict_text": verdict.text}


def lessons(paths: list[Path], env: dict, deadline: float) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            left = deadline - time.perf_counter()
            if left < 10:
                out[path.name] = {"not_run": "out of time"}
                continue
            out[path.name] = pytest_run(["--nbval", str(path)], Path(tmp) / f"{i}.xml", env, left)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="on any machine, tiny settings")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds for the whole check")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget
    import torch

    if not args.dry and not torch.cuda.is_available():
        parser.error("PyTorch sees no CUDA GPU: run this on a CUDA machine, or with --dry")
    cache = tempfile.mkdtemp(prefix="gpu-check-cache-")  # a cold run cache, as a learner's
    os.environ["COURSE_CACHE_DIR"] = cache
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if not args.dry:
        env["COURSE_REQUIRE_GPU"] = "1"
    result = {"dry": args.dry, "date": datetime.date.today().isoformat(),
              "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              "machine": machine(), "budget_seconds": args.budget}
    result["gpu_tests"] = gpu_tests(env, deadline - time.perf_counter())
    result["course_run"] = course_run_timed(args.dry)
    import gc

    gc.collect()  # the run's model and optimizer: the lessons' processes need the GPU's memory
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if args.dry:
        import jupytext  # as .ipynb: nbval collects it anywhere (the MyST collector only
        # under the repository's conftest.py)

        tiny = Path(cache) / "00_tiny.ipynb"
        jupytext.write(jupytext.reads(DRY_LESSON, fmt="md:myst"), tiny, fmt="ipynb")
        paths = [tiny]
    else:
        paths = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.md"))
    result["lessons"] = lessons(paths, env, deadline)
    result["seconds"] = round(time.perf_counter() - start, 1)
    shutil.rmtree(cache, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, args.out)
    ok = (result["gpu_tests"]["failed"] == 0 and result["gpu_tests"]["exit_code"] in (0, 5)
          and all(r.get("exit_code") == 0 for r in result["lessons"].values() if "not_run" not in r))
    print(f"Wrote {args.out} in {result['seconds']:.0f} s: "
          f"{'all passed' if ok else 'something failed (see the file)'}.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
