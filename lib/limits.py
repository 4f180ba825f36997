"""A run's settings against the machine, checked before anything is allocated or written: the
memory its batches and model will hold, and names the file system can take. A setting that
cannot fit fails at once in one line, not as an allocator's traceback after gigabytes are built.

The memory counted here is low on purpose, so that no run that fits is refused: the weights
and optimizer (as the trainer's own check counts them), the fixed evaluation batches exactly,
and fewer of a training step's activations than it keeps.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import TrainConfig
from .device import check_memory, pick_device
from .model import GPT, GPTConfig

INT64 = 8  # bytes of a token id in a batch
FLOAT32 = 4


def run_memory_bytes(model_config: GPTConfig, config: TrainConfig) -> dict[str, int]:
    """The bytes a run holds at least, by what holds them: the weights, gradients and AdamW's
    moments; the fixed evaluation batches (inputs and targets, for both splits, kept for the
    whole run); and one micro-batch's activations, counted as 16 numbers per position and
    channel in each block (the stream, attention's q, k, v and output, the MLP's 4x-wide hidden
    layer before and after GELU, the LayerNorms' inputs) plus the logits and their gradient."""
    B, T = config.batch_size, model_config.block_size
    C, L, V = model_config.n_embd, model_config.n_layer, model_config.vocab_size
    return {
        **GPT.training_memory_bytes(model_config),
        "evaluation batches": 2 * config.eval_batches * 2 * B * T * INT64,
        "activations": FLOAT32 * B * T * (16 * C * L + 2 * V),
    }


def check_run_fits(model_config: GPTConfig, config: TrainConfig) -> None:
    """A ValueError naming the settings to lower when the run cannot fit in the memory of its
    device (lib.device.memory_budget_bytes: the GPU's, or the machine's RAM)."""
    check_memory(run_memory_bytes(model_config, config), pick_device(config.device),
                 f"A run with --batch-size {config.batch_size}, --block-size "
                 f"{model_config.block_size} and --eval-batches {config.eval_batches}",
                 fix="Lower them (or the model's size).")


def name_limits(path: Path) -> tuple[int, int]:
    """The longest file name and path the file system under `path` takes, in bytes, asked of
    the nearest folder that exists (255 and 4096 where it cannot say: Windows, most of Linux)."""
    folder = Path(os.path.abspath(path))
    while not os.path.isdir(folder) and folder != folder.parent:  # never raises
        folder = folder.parent
    limits = []
    for name, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(os.pathconf(folder, name))
        except (AttributeError, ValueError, OSError):  # not POSIX, or not said
            limits.append(default)
    return limits[0], limits[1]


def check_path_name(path: str | os.PathLike, flag: str) -> None:
    """A ValueError when a name in `path`, or the whole of it, is longer than its file system
    takes (the OSError would otherwise come from deep inside the first write)."""
    name_max, path_max = name_limits(Path(path))
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ValueError(f"{flag}: the name {part[:30]}... is {size:,} bytes, longer than the "
                             f"{name_max} this file system takes: choose a shorter name")
    size = len(os.fsencode(os.path.abspath(path)))
    if size >= path_max:
        raise ValueError(f"{flag}: the path is {size:,} bytes, longer than the {path_max:,} this "
                         "file system takes: choose a shorter path")
