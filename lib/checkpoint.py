"""Checkpoints: written atomically, loaded safely; and the key maker of the run cache (lib.course).

A checkpoint is one file of plain tensors and plain data (dicts, lists, numbers, strings), so
it loads with `torch.load(..., weights_only=True)`: loading never runs code from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import torch

CHECKPOINT_FILE = "ckpt.pt"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, unsafe or from another model."""


def checkpoint_file(path: str | os.PathLike) -> Path:
    """A checkpoint's file: `path` itself, or `path/ckpt.pt` when `path` is a folder."""
    path = Path(path)
    return path / CHECKPOINT_FILE if path.is_dir() or path.suffix == "" else path


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` (a file, or a folder that gets `ckpt.pt`) atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk, and only then
    renamed over the old checkpoint; the folder is flushed too, so the rename survives a power
    cut. A crash at any moment leaves either the old checkpoint or the new one, never half of one.
    """
    target = checkpoint_file(path)
    if target.is_dir():
        raise CheckpointError(f"Cannot save the checkpoint: {target} is a folder.")
    if target.exists() and not _looks_like_a_checkpoint(target):
        raise CheckpointError(  # never overwrite a learner's file with a checkpoint
            f"Refusing to overwrite {target}: it exists and is not a PyTorch checkpoint. "
            "Save into a new folder instead.")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic on POSIX and Windows
        _fsync_folder(target.parent)  # the rename itself reaches the disk before we return
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk, so a power cut after a rename keeps the new name.

    POSIX only: Windows cannot open a folder as a file, and its rename is already durable.
    """
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _looks_like_a_checkpoint(path: Path) -> bool:
    """torch.save writes a zip archive; anything else at the target is somebody's file."""
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04" or path.stat().st_size == 0


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`, safely (`weights_only=True`)."""
    target = checkpoint_file(path)
    if not target.exists():
        where = f"{path} has no {CHECKPOINT_FILE}" if Path(path).is_dir() else f"{target} does not exist"
        raise CheckpointError(f"No checkpoint: {where}. Train one first, or check the path.")
    if target.stat().st_size == 0:
        raise CheckpointError(f"{target} is empty (0 bytes): it is not a usable checkpoint.")
    try:
        state = torch.load(target, map_location=map_location, weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{target} is damaged or is not a PyTorch checkpoint (truncated or overwritten?): "
            f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        ) from err
    except Exception as err:  # pickle.UnpicklingError, raised by weights_only's restricted unpickler
        # torch's message suggests weights_only=False; we never do. Keep its one useful line.
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or ln.startswith("Unsupported")),
                      type(err).__name__)
        if "GLOBAL" in str(err):
            raise CheckpointError(
                f"{target} holds Python objects other than tensors and plain data, so it was not "
                f"loaded: unpickling them could run arbitrary code. Only load checkpoints you "
                f"trust, and save plain state dicts. ({detail})"
            ) from err
        raise CheckpointError(
            f"{target} is damaged or is not a PyTorch checkpoint (truncated or overwritten?): "
            f"{detail}"
        ) from err
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{target} is a PyTorch file but not a checkpoint of this course.")
    return state


# --------------------------------------------------------------------------- the run cache


def run_key(*parts) -> str:
    """A short stable key for a run from plain-data parts (configs, checksums)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
