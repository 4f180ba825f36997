"""One place that decides where the course's code runs, and in which precision: the device,
the precision the hardware computes natively, TF32, the distributed process group, the memory
there is, and the machine's identity (for benchmarks). `init_runtime` does the set-up once for a
run and `cleanup_runtime` undoes what needs undoing; the Trainer and the command lines use them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checks

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
    """The precision the hardware computes natively, for autocast; None = plain float32.

    - CUDA, compute capability 8.0 or more (A100, H100, RTX 30xx and later): bfloat16, which has
      tensor cores there and float32's range, so training needs no loss scaling.
    - Older CUDA GPUs (Colab's T4 is 7.5, a V100 7.0): float16, their tensor cores' format;
      its narrow range needs a gradient scaler (`needs_grad_scaler`; the Trainer uses one).
      Not `torch.cuda.is_bf16_supported()`: by default it says yes on a T4, where bfloat16
      is emulated, slower than float16 and no faster than float32.
    - CPUs and Apple's MPS: float32. On CPUs the course measured bfloat16 autocast slower for
      its model (book/performance.md); on MPS nothing has been measured, so float32 stays.
    """
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return None


def needs_grad_scaler(dtype: torch.dtype | None) -> bool:
    """float16's smallest normal number is about 6e-5: small gradients underflow to zero unless
    the loss is scaled up before backward and the gradients scaled back before the step."""
    return dtype == torch.float16


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


def matmul_rate(device, dtype=None, seconds: float = 0.1) -> float:
    """One short measurement, now, of the machine's matrix-multiply rate in FLOP/s (square
    matrices, 1024 wide on a CPU and 8192 on a GPU), with no best-of and no cache, so that
    rounds of it can alternate with what it is compared with (lib.timing)."""
    device = torch.device(device)
    n = 1024 if device.type == "cpu" else 8192
    # A generator of its own: training must not depend on whether this measurement ran.
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype or torch.float32, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype or torch.float32, generator=g)
    a @ b  # warm up
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or reps < 2:
        a @ b
        reps += 1
        if reps % 4 == 0:
            sync(device)
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def measured_peak_flops(device: torch.device, dtype=None, seconds: float = 0.5, trials: int = 5) -> float:
    """The machine's matrix-multiply rate in FLOP/s, measured (once per process and device).

    Model FLOP utilisation (MFU) is reported against this measured peak, not a datasheet. The
    rate is the best of several short trials, so a moment when another program held the CPU
    does not make the peak look low (and the MFU of a later, quieter run look above 100%).
    """
    device = torch.device(device)
    key = (str(device), dtype)
    if key not in _PEAK:
        _PEAK[key] = max(matmul_rate(device, dtype, seconds / trials) for _ in range(trials))
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


# --------------------------------------------------------------------------- a run's set-up

COMPILE = ("auto", "on", "off")
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes, decided once by `init_runtime`."""

    device: torch.device
    dtype: torch.dtype | None  # the autocast dtype; None = plain float32
    compile: bool = False  # torch.compile the model
    rank: int = 0  # this process's place among the data-parallel processes
    world_size: int = 1  # how many there are (1 = a plain process)

    @property
    def is_main(self) -> bool:
        """True on the process that logs, evaluates and saves (the only one, unless data-parallel)."""
        return self.rank == 0


def init_runtime(device: str | torch.device = "auto", dtype: str = "auto",
                 compile: str = "off") -> Runtime:
    """Set up a run: pick the device, join the process group under torchrun (each rank on its
    own GPU), choose the autocast dtype (`dtype`: a key of DTYPES), turn TF32 on for CUDA, and
    check that torch.compile can work (`compile`: auto = on CUDA only). Idempotent."""
    checks.choice("dtype", dtype, DTYPES)
    checks.choice("compile", compile, COMPILE)
    dev = pick_device(device)
    rank, world_size = init_distributed(dev)  # (0, 1) unless under torchrun
    if world_size > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    use_tf32(dev)
    compiled = compile == "on" or (compile == "auto" and dev.type == "cuda")
    if compiled:
        check_compiler(dev)
    return Runtime(dev, autocast_dtype(dev) if dtype == "auto" else DTYPES[dtype], compiled,
                   rank, world_size)


def cleanup_runtime() -> None:
    """Leave the process group, if this process joined one (a no-op otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# --------------------------------------------------------------------------- memory

def memory_budget_bytes(device: torch.device) -> int:
    """The memory there is to build a model in: the GPU's memory, or the machine's RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit we can read
        return 2**62


def check_memory(need: dict[str, int], device: torch.device, what: str, fix: str = "") -> None:
    """A ValueError, before anything is allocated, when the bytes in `need` (named by what they
    hold, e.g. the model's `GPT.training_memory_bytes`) are more than `device` has."""
    total, budget = sum(need.values()), memory_budget_bytes(device)
    if total > budget:
        held = ", ".join(need) if len(need) > 1 else f"the {next(iter(need))} alone"
        raise ValueError(f"{what} needs about {total / 2**30:,.1f} GiB for {held}, more than the "
                         f"{budget / 2**30:,.1f} GiB here.{' ' + fix if fix else ''}")


# --------------------------------------------------------------------------- the machine

def cpu_flags() -> list[str]:
    """The CPU's bfloat16-related instruction sets (Linux only, x86 `flags` or ARM `Features`;
    [] elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith(("flags", "Features"))), [])
    return sorted(f for f in set(flags) if "bf16" in f or f in ("avx512f", "avx2"))


def cpu_model() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_label() -> str:
    """'2 CPU cores (x86_64), Linux': the machine in a few words, for benchmark files."""
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.system()}"


def machine_identity() -> dict:
    """The one machine header of benchmark files: the CPU, its instruction sets, the kernels
    torch picked and oneDNN's bfloat16 check (what decides bfloat16's speed). Two benchmark
    files may be merged only when all of it agrees."""
    return {
        "cpu": cpu_model(), "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch picked
        "fast_cpu_bfloat16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "machine": machine_label(),
    }
