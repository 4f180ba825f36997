"""Checkpoints: written atomically, loaded safely, and a trained model loaded from one.

A checkpoint is one file of plain tensors and plain data (dicts, lists, numbers, strings), so
it loads with `torch.load(..., weights_only=True)`: loading never runs code from the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from . import checks
from .tokenizer import tokenizer_from_dict
from .device import check_memory, pick_device
from .model import ARCHS, GPT, GPTConfig

CHECKPOINT_FILE = "ckpt.pt"
FORMAT_VERSION = 2  # 2: a sha256 of the tensors ("checksum"); version 1 had none, and still loads


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, damaged, unsafe or from another model."""


def checkpoint_file(path: str | os.PathLike) -> Path:
    """A checkpoint's file: `path` itself when it is a file (whatever its name), `path/ckpt.pt`
    when it is a folder; a path that does not exist yet is a file if it has a suffix
    (`run.pt`), else a folder."""
    path = Path(path)
    if path.is_file():
        return path
    return path / CHECKPOINT_FILE if path.is_dir() or path.suffix == "" else path


def _tmp_prefix(target: Path, pid: int | None = None) -> str:
    """Temporary files of a save are named `ckpt.pt.<pid>.<random>.tmp`: the pid says whose."""
    return f"{target.name}.{os.getpid() if pid is None else pid}."


def remove_stale_temporary_files(target: Path) -> list[Path]:
    """Delete the temporary files that saves of `target` left behind when their process was
    killed mid-write; keep those of a process still writing (two processes may train the same
    cached run at once). Returns what was removed."""
    removed = []
    for tmp in target.parent.glob(f"{target.name}.*.tmp"):
        pid = tmp.name[len(target.name) + 1:].split(".", 1)[0]
        try:
            if pid.isdigit() and int(pid) == os.getpid():
                stale = True  # ours: our saves never overlap (each is one call), so it was cut short
            elif pid.isdigit() and os.name == "posix":
                stale = not _alive(int(pid))
            else:  # no pid in the name, or no cheap check of one: only once surely abandoned
                stale = time.time() - tmp.stat().st_mtime > 600
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass  # read-only, or gone already: nothing to clean, nothing lost
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (POSIX)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def check_writable(path: str | os.PathLike) -> Path:
    """Before any training: make sure a checkpoint can be saved at `path` (a folder gets
    ckpt.pt), so that an unwritable folder fails in one line at once, not after the run.
    Creates the folder; returns the checkpoint file's path."""
    target = checkpoint_file(path)
    if target.exists() and not target.is_file():
        raise CheckpointError(f"Cannot save a checkpoint at {target}: it exists and is not a "
                              "regular file. Choose another folder.")
    if target.is_file() and not _looks_like_a_checkpoint(target):
        raise CheckpointError(f"Refusing to overwrite {target}: it exists and is not a PyTorch "
                              "checkpoint. Save into a new folder instead.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CheckpointError(f"Cannot write a checkpoint in {target.parent}: "
                              f"{err.strerror or err}. Choose a folder you can write to.") from None
    return target


def lock_run(path: str | os.PathLike):
    """Take the lock of the run whose checkpoint is at `path` (a folder gets ckpt.pt.lock), for
    as long as the returned file stays open: a second run into the same folder is refused with
    a CheckpointError instead of replacing the first one's checkpoint. The lock is the
    operating system's (flock), so it ends with its process, however that dies: a killed run
    leaves no stale lock. The lock file itself stays (harmless; removing it would race). On a
    system without flock (Windows) nothing is locked and None is returned."""
    try:
        import fcntl
    except ImportError:
        return None
    target = checkpoint_file(path)
    lock_path = target.with_name(target.name + ".lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock_path, "a+")
    except OSError as err:
        raise CheckpointError(f"Cannot write in {target.parent}: {err.strerror or err}. "
                              "Choose a folder you can write to.") from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read(20).strip()
        f.close()
        raise CheckpointError(
            f"{target.parent} is in use by another training run"
            f"{f' (process {holder})' if holder.isdigit() else ''}, which saves its checkpoint "
            "there: wait for it to end, or choose another --out.") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write `state` to `path` (a file, or a folder that gets `ckpt.pt`) atomically.

    The bytes go to a temporary file in the same folder, are flushed to disk, and only then
    renamed over the old checkpoint; the folder is flushed too, so the rename survives a power
    cut. A crash at any moment leaves either the old checkpoint or the new one, never half of one.
    """
    target = checkpoint_file(path)
    if target.is_dir():
        raise CheckpointError(f"Cannot save the checkpoint: {target} is a folder.")
    if target.exists() and not target.is_file():  # a FIFO or a device: opening it could hang
        raise CheckpointError(f"Cannot save the checkpoint at {target}: it exists and is not a "
                              "regular file. Save into a new folder instead.")
    if target.exists() and not _looks_like_a_checkpoint(target):
        raise CheckpointError(  # never overwrite a learner's file with a checkpoint
            f"Refusing to overwrite {target}: it exists and is not a PyTorch checkpoint. "
            "Save into a new folder instead.")
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporary_files(target)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as f:
            state = {**state, "format_version": FORMAT_VERSION}
            state["checksum"] = tensor_checksum(state)  # over the tensors, as they are written
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic on POSIX and Windows
        tmp = None
        _fsync_folder(target.parent)  # the rename itself reaches the disk before we return
    except (OSError, RuntimeError) as err:  # a full disk, a read-only folder: the old one stays
        # torch's zip writer reports a full disk as a RuntimeError, which has no strerror
        cause = getattr(err, "strerror", None) or str(err).splitlines()[0][:200] or repr(err)
        raise CheckpointError(
            f"Could not save the checkpoint {target}: {cause}. The previous checkpoint there, "
            "if any, is unchanged; free some space or choose another folder."
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
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
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04" or path.stat().st_size == 0


def _check_not_a_bomb(target: Path) -> None:
    """torch.save stores its tensors uncompressed, so a checkpoint's data is no bigger than its
    file. An archive that declares far more (compressed entries: a decompression bomb, which
    could fill the memory) is refused before anything is unpacked."""
    try:
        with zipfile.ZipFile(target) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip at all: torch.load says what it is, below
    size = target.stat().st_size
    if declared > 2 * size + 2**20:
        raise CheckpointError(
            f"{target} declares {declared:,} bytes of data in a file of {size:,} bytes: it is "
            "compressed, which torch.save never does (a decompression bomb?), so it was not loaded.")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`, safely (`weights_only=True`)."""
    target = checkpoint_file(path)
    if target.parent.is_dir():
        remove_stale_temporary_files(target)
    if target.exists() and not target.is_file():
        raise CheckpointError(f"{target} is not a regular file, so it is not a checkpoint.")
    if not target.exists():
        where = f"{path} has no {CHECKPOINT_FILE}" if Path(path).is_dir() else f"{target} does not exist"
        raise CheckpointError(f"No checkpoint: {where}. Train one first, or check the path.")
    if target.stat().st_size == 0:
        raise CheckpointError(f"{target} is empty (0 bytes): it is not a usable checkpoint.")
    _check_not_a_bomb(target)
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
    _check_version_and_checksum(state, target)
    return state


def tensor_checksum(state) -> str:
    """A sha256 over every tensor in `state` (nested dicts, lists and tuples), in a fixed
    order: each tensor's place in the state, dtype, shape and raw bytes. The "checksum" entry
    itself is left out. Saved with the checkpoint and compared on loading, it catches a byte
    changed inside a tensor, which torch.load does not notice (nothing reads the zip's CRCs).
    Its cost, measured on the CPU preset's checkpoint (5 MB: weights and AdamW moments) on a
    busy 2-core machine: 18-34 ms per save and per load, about what torch.save itself takes
    (31-55 ms); nothing beside a training run of minutes."""
    digest = hashlib.sha256()
    for where, t in _tensors(state, ""):
        t = t.detach().cpu().contiguous()
        digest.update(f"{where}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return "sha256:" + digest.hexdigest()


def _tensors(obj, where: str):
    """(place, tensor) for every tensor in `obj`, dict keys in sorted order."""
    if torch.is_tensor(obj):
        yield where, obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=repr):
            if not (where == "" and key == "checksum"):
                yield from _tensors(obj[key], f"{where}/{key!r}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{where}/{i}")


def _check_version_and_checksum(state: dict, target: Path) -> None:
    """Refuse a checkpoint of a newer format than this code reads, and one whose tensors are
    not the bytes that were saved. A checkpoint of version 1 (before checksums) still loads."""
    version = state["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{target}: its format version is {version!r:.40}, not a version "
                              "number: the file is damaged.")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{target} was written by a newer version of the course (checkpoint format "
            f"{version}; this code reads up to {FORMAT_VERSION}): update the course (git pull, "
            "then pip install -e .) to load it.")
    if version >= 2 and state.get("checksum") != tensor_checksum(state):
        raise CheckpointError(
            f"{target} is damaged: its tensors are not the bytes that were saved (the checksum "
            "differs). Use another copy of the checkpoint, or train the run again.")


MAX_STEP = 10**12  # no run takes more steps; a larger count in a checkpoint means damage


def check_training_state(state: dict) -> None:
    """A training checkpoint's numbers make sense: a step count, a time, finite weights, a history."""
    step, elapsed, history = state.get("step"), state.get("elapsed"), state.get("history")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise CheckpointError(f"The checkpoint's step is {step!r:.40}, not a step count: "
                                   "the file is damaged.")
    if (isinstance(elapsed, bool) or not isinstance(elapsed, (int, float))
            or not (math.isfinite(elapsed) and elapsed >= 0)):
        raise CheckpointError(f"The checkpoint's training time is {elapsed!r:.40}, not a "
                                   "number of seconds: the file is damaged.")
    if not (isinstance(history, dict) and all(isinstance(history.get(k), list)
                                              for k in ("train", "eval"))):
        raise CheckpointError("The checkpoint's history is not the trainer's: the file is damaged.")
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError("The checkpoint holds no weights: the file is damaged.")
    for name, t in weights.items():
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"The checkpoint's weights are not finite (NaN or inf in "
                                       f"{name}): its run diverged, or the file is damaged.")


# --------------------------------------------------------------------------- a model to use


def load_model(path, device: str = "auto", arch: str | None = None):
    """A trained model for inference: (model in eval mode, tokenizer or None, the checkpoint's
    dict). A model too big for the device is refused before it is built. The architecture is
    the one the checkpoint records (an old checkpoint without the switches is GPT-2); `arch`
    ("gpt2", "modern") asks for one, and a checkpoint of another is refused."""
    state = load_checkpoint(path)
    dev = pick_device(device)
    try:
        config = GPTConfig.from_dict(state["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its model config is not a GPTConfig: {err}") from err
    if arch is not None and config.arch != checks.choice("arch", arch, ARCHS):
        raise CheckpointError(f"{path} holds a model of architecture {config.arch}, not {arch}: "
                              f"load it as {config.arch}, or train a {arch} model")
    n = GPT.estimate_parameters_unchecked(config)
    check_memory({"weights": 4 * n}, dev, f"{path}: a GPT with {n:,} parameters")
    model = GPT(config)
    _check_weight_names(path, state.get("model"), model, config)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(f"{path}: the weights do not fit their model config: "
                              f"{' '.join(line.strip() for line in first)[:300]}") from err
    tokenizer = tokenizer_from_dict(state.get("tokenizer"))
    return model.to(dev).eval(), tokenizer, state


def _check_weight_names(path, weights, model, config) -> None:
    """One line when the weights are of another architecture than the config says (a table of
    positions where RoPE needs none, a SwiGLU gate where GELU has none, ...)."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: the checkpoint holds no model weights")
    def names(keys):  # the model's own (a position table) before the blocks' (any of L)
        return sorted(keys, key=lambda k: (".h." in k, k))

    missing = names(set(model.state_dict()) - set(weights))
    unexpected = names(set(weights) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: the weights are not of the architecture its model config records "
            f"({config.arch}): missing {missing[:3]}, unexpected {unexpected[:3]}")
