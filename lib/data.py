"""The corpus and how a model sees it: download, tokenizer, split, batches.

Everything here is plain functions and small classes; importing this module
downloads nothing. The corpus is fetched on the first call to `corpus_path()`.

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
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checks
from .device import memory_budget_bytes

CORPUS_FILE = "tinyshakespeare.txt"
CORPUS_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


class CorpusError(RuntimeError):
    """The corpus could not be found, downloaded or verified."""


def cache_dir() -> Path:
    """The course's cache folder: `COURSE_CACHE_DIR`, else the user's cache folder."""
    env = os.environ.get("COURSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch  # imported lazily: importing lib stays cheap

    return Path(pooch.os_cache("gpt-course"))


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


# --------------------------------------------------------------------------- tokenizer


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters seen.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'
    """

    def __init__(self, chars: str):
        if len(chars) == 0:
            raise ValueError("CharTokenizer needs at least one character in its vocabulary")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            where, first = next((i, c) for i, c in enumerate(text) if c not in self.stoi)
            raise ValueError(
                f"Cannot encode {unknown!r}: not in this tokenizer's vocabulary of "
                f"{self.vocab_size} characters (the first, {first!r}, is character {where + 1} "
                "of the text). Remove or replace it."
            ) from None

    def encode_tensor(self, text: str, chunk: int = 1 << 22) -> torch.Tensor:
        """`encode` as a 1-D long tensor, computed in bulk and `chunk` characters at a time:
        a 200 MB text takes seconds, and memory beyond the result (8 bytes a character) stays
        near 20 bytes per chunk character, where a Python list of ids takes minutes and gigabytes."""
        import numpy as np

        table = torch.full((max(map(ord, self.chars)) + 2,), -1, dtype=torch.long)
        table[[ord(c) for c in self.chars]] = torch.arange(self.vocab_size)
        ids = torch.empty(len(text), dtype=torch.long)
        for start in range(0, len(text), chunk):
            piece = text[start : start + chunk]
            codes = torch.from_numpy(np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)
                                     .astype(np.int64))  # one code point per character
            ids[start : start + len(piece)] = table[codes.clamp_(max=len(table) - 1)]
            if (ids[start : start + len(piece)] < 0).any():  # unknown characters map to -1
                self.encode(text)  # raises the error that names the characters
        return ids

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        try:
            return "".join(self.chars[i] for i in ids)
        except (IndexError, TypeError):
            raise ValueError(
                f"Cannot decode {ids!r}: token ids must be integers in [0, {self.vocab_size})."
            ) from None

    def to_dict(self) -> dict:
        """Plain data, so a checkpoint can hold the tokenizer."""
        return {"kind": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        return cls(d["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


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
    """The corpus ready for training: text, tokenizer, and the two splits as token tensors."""

    text: str
    tokenizer: CharTokenizer
    train: torch.Tensor
    val: torch.Tensor
    sha256: str


def load_char_corpus(val_fraction: float = 0.1, data_dir=None) -> CharCorpus:
    """Tiny Shakespeare, character-tokenized and split 90/10 (by default)."""
    path = corpus_path(data_dir)
    text = path.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    train, val = train_val_split(tok.encode_tensor(text), val_fraction)
    return CharCorpus(text, tok, train, val, CORPUS_SHA256)


# --------------------------------------------------------------------------- a text file

def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"--data {path}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"--data {path}: not a UTF-8 text file") from None
    except OSError as err:
        raise ValueError(f"--data {path}: cannot read it ({err.strerror})") from None


def _check_corpus_memory(path: str, text: str) -> None:
    """Training keeps the text and its token ids (8 bytes a character) in memory: refuse, before
    allocating, a corpus that would take more than half of the machine's memory."""
    need = len(text) * 8 + sys.getsizeof(text)
    budget = memory_budget_bytes(torch.device("cpu"))
    if need > budget / 2:
        raise ValueError(f"--data {path}: its {len(text):,} characters need about "
                         f"{need / 2**30:,.1f} GiB in memory as text and token ids, more than half "
                         f"of this machine's {budget / 2**30:,.1f} GiB; train on a part of the file")


def load_corpus(path: str | None, tokenizer: CharTokenizer | None = None) -> CharCorpus:
    """Tiny Shakespeare by default, or any UTF-8 text file, character-tokenized and split.
    With `tokenizer` (a resumed run's), the text is encoded with it, not with its own."""
    if path is None:
        corpus = load_char_corpus()
    else:
        text = _read_text(path)
        if len(text) < 2:
            raise ValueError(f"--data {path}: the file holds {len(text)} characters; a corpus needs more")
        chars = "".join(sorted(set(text)))
        control = sum(text.count(c) for c in chars
                      if unicodedata.category(c) == "Cc" and c not in "\n\r\t\f")
        if control > 0.01 * len(text):
            raise ValueError(f"--data {path}: {control / len(text):.0%} of its characters are "
                             "control characters (NUL and the like), so it is not plain text "
                             "(UTF-16? save it as UTF-8)")
        _check_corpus_memory(path, text)
        tok = CharTokenizer(chars)
        train, val = train_val_split(tok.encode_tensor(text), 0.1)
        corpus = CharCorpus(text, tok, train, val, sha256_of(path))
    if tokenizer is not None and tokenizer.to_dict() != corpus.tokenizer.to_dict():
        raise ValueError(f"{'--data ' + path if path else 'Tiny Shakespeare'} has other characters "
                         "than the corpus this run was trained on: resume without --data to use "
                         "that corpus, or start a new run (another --out, or --overwrite)")
    return corpus


def corpus_record(path: str | None, corpus: CharCorpus) -> dict:
    """What a checkpoint keeps of its corpus, so that --resume reads the same one."""
    return {"path": str(Path(path).resolve()) if path else None, "sha256": corpus.sha256}


def resume_corpus(path: str | None, state: dict) -> tuple[str | None, CharCorpus]:
    """The corpus to resume a run on: the one its checkpoint records (or --data, which must be
    that same text). Returns (path, corpus)."""
    record = (state.get("meta") or {}).get("corpus")
    tokenizer = CharTokenizer.from_dict(state["tokenizer"]) if state.get("tokenizer") else None
    if record is None:  # a checkpoint from before corpora were recorded: trust --data
        return path, load_corpus(path, tokenizer)
    if path is None:
        path = record["path"]
    elif record["path"] is None or Path(path).resolve() != Path(record["path"]):
        where = record["path"] or "Tiny Shakespeare (no --data)"
        corpus = load_corpus(path)
        if corpus.sha256 != record["sha256"]:
            raise ValueError(f"--data {path} is not the corpus this run was trained on ({where}); "
                             "resume without --data, or start a new run (another --out, or --overwrite)")
        return path, load_corpus(path, tokenizer)
    try:
        corpus = load_corpus(path, tokenizer)
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
    x, y = data[idx], data[idx + 1]
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
        chunk = self.data[start : start + self.block_size + 1]
        return chunk[:-1], chunk[1:]


# --------------------------------------------------------------------------- byte-pair encoding


def train_bpe(text: str, vocab_size: int):
    """A byte-level BPE tokenizer (Hugging Face `tokenizers`) trained on `text`.

    Byte-level means the 256 byte values are the starting alphabet, so any text can
    be encoded; training then merges the most frequent adjacent pairs until the
    vocabulary has `vocab_size` entries.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 256:
        raise ValueError(
            f"vocab_size must be >= 256 for byte-level BPE (one token per byte), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer=trainer)
    return tok
