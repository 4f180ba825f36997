"""One place that decides where the course's code runs, and in which precision."""

from __future__ import annotations

import contextlib
import os
import time

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preferred: str | torch.device | None = "auto") -> torch.device:
    """The device to run on: CUDA if there is a GPU, else Apple's MPS, else the CPU.

    `preferred` overrides the choice ("cpu", "cuda", "cuda:1", "mps"); asking for a device
    this machine does not have is an error, not a silent fall-back.
    """
    if preferred is None or str(preferred) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError):
        raise ValueError(f"Unknown device {preferred!r}; use one of {', '.join(DEVICES)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError("device 'mps' was asked for, but MPS is not available here; use 'auto' or 'cpu'")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {preferred!r}; use one of {', '.join(DEVICES)}")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the device computes it fast (CUDA GPUs that support it); None = plain fp32."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def use_tf32(device: torch.device) -> None:
    """On a CUDA GPU, let float32 matrix multiplies use TF32 tensor cores (10-bit mantissa
    inputs, float32 accumulation): several times faster, and harmless to training. A no-op
    elsewhere. It is a process-wide PyTorch setting."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device, dtype: torch.dtype | None):
    """A context that runs the forward pass in `dtype` (mixed precision), or does nothing."""
    device = torch.device(device)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe(device: torch.device) -> str:
    """A short human description of the device, for lessons to print."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def sync(device: torch.device) -> None:
    """Wait for the device to finish its queued work (CUDA runs asynchronously), before timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_PEAK: dict = {}


def measured_peak_flops(device: torch.device, dtype=None, seconds: float = 0.5, trials: int = 5) -> float:
    """The machine's matrix-multiply rate in FLOP/s, measured (once per process and device).

    Model FLOP utilisation (MFU) is reported against this measured peak, not a datasheet. The
    rate is the best of several short trials, so a moment when another program held the CPU
    does not make the peak look low (and the MFU of a later, quieter run look above 100%).
    """
    device = torch.device(device)
    key = (str(device), dtype)
    if key not in _PEAK:
        n = 1024 if device.type == "cpu" else 8192
        # A generator of its own: training must not depend on whether this measurement ran.
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=dtype or torch.float32, generator=g)
        b = torch.randn(n, n, device=device, dtype=dtype or torch.float32, generator=g)
        a @ b  # warm up
        sync(device)
        best = 0.0
        for _ in range(trials):
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / trials or reps < 2:
                a @ b
                reps += 1
                if reps % 4 == 0:
                    sync(device)
            sync(device)
            best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
        _PEAK[key] = best
    return _PEAK[key]


def check_compiler(device: torch.device) -> None:
    """torch.compile writes C++ for a CPU: without a compiler it fails at the first step with
    a page of InductorError. Say so in one line before training instead."""
    import shutil

    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++", "cl")):
        raise ValueError("TrainConfig.compile='on' needs a C++ compiler on a CPU (torch.compile "
                         "generates C++) and none was found (g++, c++, clang++ or cl): install "
                         "one, or train without compiling (compile='off', --compile off)")


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size): (0, 1) in a plain process; under `torchrun`, joins the process
    group (NCCL on GPUs, gloo on CPUs) once, and returns this process's place in it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()
