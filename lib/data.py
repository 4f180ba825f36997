"""The corpus and how a model sees it: download, the corpus a run trains on, split, batches.

Everything here is plain functions and small classes; importing this module
downloads nothing. The corpus is fetched on the first call to `corpus_path()`. Every corpus,
Tiny Shakespeare included, is prepared once into token files (`lib.prepare`) and read back
through a memory map; the tokenizers live in `lib.tokenizer` (re-exported here).

Where the corpus comes from, in order:
1. `COURSE_DATA_DIR` (environment variable, or the `data_dir` argument): a folder
   that already holds `tinyshakespeare.txt`. Used as it is, with no network access.
2. The course's cache folder (`COURSE_CACHE_DIR`, or the user's cache folder):
   downloaded there once from the canonical URL.
Either way the file's sha256 is checked; a file that does not match is refused.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checks
from .paths import cache_dir  # noqa: F401  (re-exported: lib.data.cache_dir)
from .prepare import prepare
from .tokenfiles import PrepareError, is_prepared, load_prepared, read_meta
from .tokenizer import (BPETokenizer, CharTokenizer, gpt2_tokenizer,  # noqa: F401
                        tokenizer_from_dict, train_bpe)

CORPUS_FILE = "tinyshakespeare.txt"
CORPUS_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


class CorpusError(RuntimeError):
    """The corpus could not be found, downloaded or verified."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, expected: str) -> Path:
    actual = sha256_of(path)
    if actual != expected:
        raise CorpusError(
            f"{path} has sha256 {actual}, but the course expects {expected}. "
            "The file is damaged or is not Tiny Shakespeare: replace it with the file from "
            f"{CORPUS_URL} (or delete it so the course downloads it again)."
        )
    return path


def corpus_path(data_dir: str | os.PathLike | None = None, downloader=None) -> Path:
    """Path of a verified copy of Tiny Shakespeare, downloading it once if needed.

    `downloader` is passed to `pooch.retrieve` (default: pooch's HTTP downloader); tests use
    it to stand in for the network.
    """
    data_dir = data_dir if data_dir is not None else os.environ.get("COURSE_DATA_DIR")
    if data_dir:
        path = Path(data_dir).expanduser() / CORPUS_FILE
        if not path.is_file():
            raise CorpusError(
                f"COURSE_DATA_DIR is {data_dir!s}, but {path} does not exist. Put "
                f"{CORPUS_FILE} there (download it from {CORPUS_URL}), or unset COURSE_DATA_DIR "
                "to let the course download it into its cache."
            )
        return _check(path, CORPUS_SHA256)

    import pooch

    folder = cache_dir()
    path = folder / CORPUS_FILE
    try:
        # pooch checks the hash of a cached file and of every download; a download that
        # does not match is deleted, never cached.
        fetched = pooch.retrieve(
            CORPUS_URL,
            known_hash=f"sha256:{CORPUS_SHA256}",
            fname=CORPUS_FILE,
            path=folder,
            progressbar=False,
            downloader=downloader,
        )
    except ValueError as err:  # pooch's hash mismatch
        raise CorpusError(
            f"The downloaded corpus failed its sha256 check and was not kept ({err}). "
            f"Download {CORPUS_URL} by hand, check it, and set COURSE_DATA_DIR to its folder."
        ) from err
    except Exception as err:  # no network, DNS failure, HTTP error...
        stale = " (a file is there, but its sha256 does not match)" if path.exists() else ""
        raise CorpusError(
            f"Could not download the corpus from {CORPUS_URL}: {type(err).__name__}: {err}. "
            f"Without network access, either put {CORPUS_FILE} at {path}{stale}, or set "
            f"COURSE_DATA_DIR to a folder that holds {CORPUS_FILE}."
        ) from err
    return Path(fetched)


# --------------------------------------------------------------------------- splits


def train_val_split(data: torch.Tensor, val_fraction: float = 0.1):
    """Split a 1-D token tensor into a leading train part and a trailing validation part.

    The split is contiguous on purpose: neighbouring windows of text overlap, so a
    shuffled split would put almost every validation window's text in training too.
    """
    checks.number("val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    n_train = int(len(data) * (1.0 - val_fraction))
    return data[:n_train], data[n_train:]


@dataclass
class CharCorpus:
    """A corpus ready for training: its text (None for a corpus too large to hold), tokenizer,
    the two splits as token tensors, the source's sha256, and the prepared folder it was read
    from (its splits then view memory-mapped token files; see lib.prepare)."""

    text: str | None
    tokenizer: CharTokenizer | BPETokenizer
    train: torch.Tensor
    val: torch.Tensor
    sha256: str
    folder: Path | None = None


Corpus = CharCorpus


def _from_prepared(prepared, text: str | None = None) -> CharCorpus:
    return CharCorpus(text, prepared.tokenizer, prepared.train, prepared.val, prepared.sha256,
                      prepared.folder)


def prepared_root() -> Path:
    """Where corpora named by a text file or folder are prepared: the cache's `prepared/`."""
    return cache_dir() / "prepared"


def load_char_corpus(val_fraction: float = 0.1, data_dir=None) -> CharCorpus:
    """Tiny Shakespeare, character-tokenized and split 90/10 (by default): prepared once into
    the cache (lib.prepare), its splits read through a memory map."""
    path = corpus_path(data_dir)
    checks.number("val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    folder = prepare(path, "char", val_fraction=val_fraction, progress=False,
                     cache_root=prepared_root())
    return _from_prepared(load_prepared(folder), path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- a text file


def load_corpus(path: str | None, tokenizer=None, tokenizer_spec: str = "char",
                glob: str | None = None, progress: bool = False) -> CharCorpus:
    """Tiny Shakespeare by default; else `path`: a prepared folder (lib.prepare), or a text
    file or folder of them, prepared first into the cache with `tokenizer_spec` ('char' or
    'bpe:N'). With `tokenizer` (a resumed run's), the corpus must have been encoded with it."""
    if path is None:
        corpus = load_char_corpus()
    else:
        try:
            folder = Path(path) if is_prepared(path) else prepare(
                path, tokenizer_spec, glob=glob, progress=progress, cache_root=prepared_root())
            corpus = _from_prepared(load_prepared(folder))
        except PrepareError as err:
            raise ValueError(str(err)) from None
    if tokenizer is not None and tokenizer.to_dict() != corpus.tokenizer.to_dict():
        raise ValueError(f"{'--data ' + str(path) if path else 'Tiny Shakespeare'} is encoded "
                         "with another tokenizer than the corpus this run was trained on: resume "
                         "without --data to use that corpus, or start a new run (another --out, "
                         "or --overwrite)")
    return corpus


def corpus_record(path: str | None, corpus: CharCorpus) -> dict:
    """What a checkpoint keeps of its corpus, so that --resume reads the same one: where it was
    read from, the source text's sha256, and how it was prepared."""
    record = {"path": str(Path(path).resolve()) if path else None, "sha256": corpus.sha256}
    if corpus.folder is not None and path is not None:
        meta = read_meta(corpus.folder)
        record.update(tokenizer=meta["tokenizer"], glob=meta.get("glob"))
    return record


def resume_corpus(path: str | None, state: dict) -> tuple[str | None, CharCorpus]:
    """The corpus to resume a run on: the one its checkpoint records (or --data, which must be
    that same text). Returns (path, corpus)."""
    record = (state.get("meta") or {}).get("corpus")
    tokenizer = tokenizer_from_dict(state.get("tokenizer"))
    if record is None:  # a checkpoint from before corpora were recorded: trust --data
        return path, load_corpus(path, tokenizer)
    how = {"tokenizer_spec": record.get("tokenizer", "char"), "glob": record.get("glob")}
    if path is None:
        path = record["path"]
    elif record["path"] is None or Path(path).resolve() != Path(record["path"]):
        where = record["path"] or "Tiny Shakespeare (no --data)"
        corpus = load_corpus(path, **how)
        if corpus.sha256 != record["sha256"]:
            raise ValueError(f"--data {path} is not the corpus this run was trained on ({where}); "
                             "resume without --data, or start a new run (another --out, or --overwrite)")
        return path, load_corpus(path, tokenizer, **how)
    try:
        corpus = load_corpus(path, tokenizer, **how)
    except ValueError as err:
        raise ValueError(f"Cannot read the corpus this run was trained on: {err}") from None
    if corpus.sha256 != record["sha256"]:
        raise ValueError(f"{path or 'Tiny Shakespeare'} changed since this run was trained on it "
                         "(its checksum differs): restore it, or start a new run (another --out, "
                         "or --overwrite)")
    return path, corpus


# --------------------------------------------------------------------------- batches


def _check_window(data: torch.Tensor, block_size: int) -> None:
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if len(data) < block_size + 1:
        raise ValueError(
            f"The data has {len(data)} tokens, fewer than one window of block_size + 1 = "
            f"{block_size + 1} (inputs plus the shifted target). Use more text or a smaller "
            "block_size."
        )


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    block_size: int,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
):
    """A batch of random windows: inputs x and targets y = x shifted left by one.

    Both are (batch_size, block_size) long tensors; y[b, t] is the token after x[b, t].
    """
    _check_window(data, block_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    idx = starts[:, None] + offsets[None, :]  # (B, T)
    x, y = data[idx].long(), data[idx + 1].long()  # token files hold uint8/16/32
    return to_device(x, device), to_device(y, device)


def to_device(t: torch.Tensor, device: str | torch.device | None) -> torch.Tensor:
    """`t` moved to `device` (pinned first, so the copy overlaps with the GPU's work); as it is
    for the CPU or None."""
    if device is None or torch.device(device).type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


class RandomWindows:
    """The Trainer's default batch source: random windows of a token tensor, drawn by a seeded
    generator of its own, so a run's batches depend on its seed alone.

    A batch source is any object with `next(n) -> (x, y)` (n rows of inputs and targets, on the
    CPU), and `state_dict()` / `load_state_dict(state)` that a checkpoint keeps, so that a
    resumed run draws the batches an uninterrupted one would have.
    """

    def __init__(self, data: torch.Tensor, block_size: int, seed: int):
        _check_window(data, block_size)
        self.data, self.block_size = data, block_size
        self.generator = torch.Generator().manual_seed(seed)

    def next(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return get_batch(self.data, n, self.block_size, self.generator)

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class WindowDataset(torch.utils.data.Dataset):
    """Every window of `block_size` tokens, `stride` tokens apart, as a torch Dataset.

    Item i is (x, y) with x = data[i*stride : i*stride + block_size] and y the same
    window shifted by one. With stride = block_size the windows tile the data without
    overlap; with stride = 1 every position starts a window.
    """

    def __init__(self, data: torch.Tensor, block_size: int, stride: int | None = None):
        _check_window(data, block_size)
        stride = block_size if stride is None else stride
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.data, self.block_size, self.stride = data, block_size, stride

    def __len__(self) -> int:
        return (len(self.data) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        start = (i % len(self)) * self.stride
        chunk = self.data[start : start + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]
