"""The format of a prepared corpus (see lib.prepare), and reading one back.

A prepared folder holds `train.bin` and `val.bin` (token ids, raw, in `meta.json`'s dtype),
`tokenizer.json` and `meta.json`. `load_prepared` checks the files against the metadata and
returns the splits as tensors that view the memory-mapped files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .tokenizer import tokenizer_from_dict

FORMAT_VERSION = 1
SPLITS = ("train", "val")


class PrepareError(ValueError):
    """A corpus that cannot be prepared or read back; the message says what to do."""


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every token id."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise PrepareError(f"a vocabulary of {vocab_size:,} tokens is too large")


def read_meta(folder: Path) -> dict:
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise PrepareError(f"{folder} is not a prepared corpus (no meta.json): prepare it with "
                           f"python -m lib.prepare --data SOURCE --out {folder}")
    try:
        meta = json.loads(path.read_text())
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise PrepareError(f"{path} is damaged (not the course's metadata): prepare the corpus "
                           "again into a new folder") from None
    if version != FORMAT_VERSION:
        raise PrepareError(f"{folder} was prepared in format version {version}; this course reads "
                           f"version {FORMAT_VERSION}: prepare it again into a new folder")
    return meta


@dataclass
class Prepared:
    """A prepared corpus, read back: its tokenizer, and its splits as tensors viewing the files."""

    folder: Path
    meta: dict
    tokenizer: object
    train: torch.Tensor
    val: torch.Tensor

    @property
    def sha256(self) -> str:
        return self.meta["source"]["sha256"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _view(path: Path, dtype: np.dtype, digest: str) -> torch.Tensor:
    if path.stat().st_size == 0:
        t = torch.empty(0, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype)
    else:  # copy-on-write: pages come from the file, and nothing is ever written back to it
        t = torch.from_numpy(np.memmap(path, dtype=dtype, mode="c"))
    t._sha256 = digest  # read by the run cache instead of hashing the tensor
    return t


def load_prepared(folder: str | os.PathLike) -> Prepared:
    """A prepared corpus, checked against its metadata: each token file's size, and its sha256
    again when its size or modification time differs from what preparing recorded."""
    folder = Path(folder).expanduser().resolve()
    meta = read_meta(folder)
    again = f"prepare it again (python -m lib.prepare --data {meta.get('source', {}).get('path')})"
    try:
        dtype = np.dtype(meta["dtype"])
        tok = tokenizer_from_dict(json.loads((folder / "tokenizer.json").read_text()))
        files = {s: meta["files"][s] for s in SPLITS}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PrepareError(f"{folder}: its tokenizer or metadata is damaged ({err}); {again}") from None
    if tok.vocab_size != meta.get("vocab_size") or dtype != dtype_for(tok.vocab_size):
        raise PrepareError(f"{folder}: its metadata disagrees with its tokenizer; {again}")
    views = {}
    for split, rec in files.items():
        path = folder / f"{split}.bin"
        if not path.is_file():
            raise PrepareError(f"{path} is missing; {again}")
        st = path.stat()
        if st.st_size != rec["tokens"] * dtype.itemsize:
            raise PrepareError(f"{path} holds {st.st_size:,} bytes where its metadata says "
                               f"{rec['tokens']:,} tokens of {dtype.itemsize} bytes: it is "
                               f"truncated or damaged; {again}")
        if st.st_mtime_ns != rec.get("mtime_ns") and file_sha256(path) != rec["sha256"]:
            raise PrepareError(f"{path} changed since it was prepared (its sha256 differs); {again}")
        views[split] = _view(path, dtype, rec["sha256"])
    return Prepared(folder, meta, tok, views["train"], views["val"])


def is_prepared(path: str | os.PathLike) -> bool:
    return (Path(path).expanduser() / "meta.json").is_file()
