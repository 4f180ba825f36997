"""A corpus prepared once into token files, then read through a memory map.

    python -m lib.prepare --data my_text.txt --tokenizer char --out prepared/mine
    python -m lib.prepare --data my_folder/ --glob "**/*.md" --tokenizer bpe:4096 --out prepared/md

Preparing reads the text as a stream (never whole), checks it, trains the tokenizer, and
writes into the folder `--out`:
- `train.bin`, `val.bin`: the token ids, in the smallest unsigned integer type that holds the
  vocabulary (uint8 up to 256 tokens, uint16 up to 65,536, else uint32), nothing else;
- `tokenizer.json`: the tokenizer (`lib.tokenizer`);
- `meta.json`: the format's version, the tokenizer, the counts, the dtype, the source's sha256,
  and each token file's sha256, size and modification time.
The folder is written whole under a temporary name and renamed into place at the end, so a
Ctrl-C or a crash leaves the previous state or nothing, never half a folder.

A folder of files is a set of documents: each ends with an end-of-text token, and the
validation split takes whole documents (about a tenth of the bytes, picked by a hash of their
names, so no document straddles the split). One file is split as the course always did: its
last tenth of characters is the validation split, whatever the tokenizer, so that tokenizers
are compared on the same text.

`load_prepared(folder)` returns the splits as tensors that view the memory-mapped files: a
batch reads only the pages it slices, and the process's own memory does not grow with the
corpus (the kernel keeps the file's pages in its cache, and can drop them).
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import json
import os
import shutil
import stat
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .tokenfiles import (FORMAT_VERSION, SPLITS, PrepareError, dtype_for, file_sha256,
                         load_prepared, read_meta)
from .tokenizer import EOT_CHAR, EOT_TOKEN, CharTokenizer, gpt2_tokenizer, train_bpe

CHUNK = 4 << 20  # bytes read at a time
VAL_FRACTION = 0.1


# --------------------------------------------------------------------------- the source


@dataclass
class Source:
    """What `--data` names: one file, or the text files of a folder (its documents)."""

    path: Path
    files: list[Path]
    is_folder: bool
    skipped: list[Path] = field(default_factory=list)  # files of a folder that are not text

    def name(self, f: Path) -> str:
        return f.relative_to(self.path).as_posix() if self.is_folder else f.name

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, what in ((stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "special file"


def _looks_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"\0" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def find_source(data: str | os.PathLike, glob: str | None = None) -> Source:
    """The documents `data` names, checked before anything is read: a regular file, or a folder
    whose regular files hold text: all of them, in every subfolder, or those matching `glob`
    (pathlib's patterns: '*.py' in the folder itself, '**/*.py' in every subfolder too).
    Hidden files and folders, links and binary files are left out."""
    path = Path(data).expanduser()
    if not path.exists():
        raise PrepareError(f"--data {data}: no such file or folder")
    kind = _kind(path)
    if kind not in ("file", "folder"):
        raise PrepareError(f"--data {data} is {kind}, not a file: save the text to a file first "
                           "and pass that file")
    if kind == "file":
        if glob:
            raise PrepareError(f"--glob picks files in a folder, but --data {data} is a file")
        return Source(path.resolve(), [path.resolve()], False)
    files, skipped = [], []
    for f in sorted(path.glob(glob or "**/*")):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or f.is_symlink() or not f.is_file():
            continue
        if _kind(f) != "file":
            continue
        (skipped if f.stat().st_size and _looks_binary(f) else files).append(f.resolve())
    files = [f for f in files if f.stat().st_size > 0]
    if not files:
        what = f"files matching {glob!r}" if glob else "text files"
        extra = f" ({len(skipped)} binary files skipped, e.g. {skipped[0].name})" if skipped else ""
        raise PrepareError(f"--data {data}: the folder holds no {what}{extra}; point --data at a "
                           "file or at a folder of UTF-8 text files")
    return Source(path.resolve(), files, True, skipped)


def read_text(path: Path, source: Source, progress=None):
    """The text of one file as a stream of strings (CHUNK bytes at a time), strictly UTF-8: a
    byte that is not is refused with its offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                pending = len(decoder.getstate()[0])
                at = offset - pending + err.start
                raise PrepareError(f"--data {source.path}: {source.name(path) + ' ' if source.is_folder else ''}"
                                   f"is not UTF-8 text (byte {at:,} cannot be decoded); save it "
                                   "as UTF-8" + (", or leave it out with --glob" if source.is_folder else "")
                                   ) from None
            offset += len(raw)
            if progress is not None:
                progress.update(len(raw))
            if text:
                yield text
            if not raw:
                return


def _bar(total: int, desc: str, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                mininterval=0.5, leave=False)


@dataclass
class _Scan:
    sha256: str
    chars: dict  # file -> number of characters
    alphabet: set


def scan(source: Source, progress: bool = False) -> _Scan:
    """First pass: the source's sha256 (a file's own, or over each document's name and sha256),
    its characters,
    and the checks (UTF-8, not binary) before anything is written."""
    digest, counts, alphabet = hashlib.sha256(), {}, set()
    bar = _bar(source.size, "reading", progress)
    try:
        for f in source.files:
            n = control = 0
            if source.is_folder:  # a folder's digest covers its documents' names and bytes
                digest.update(source.name(f).encode() + b"\0" + file_sha256(f).encode())
            else:  # one file's is its plain sha256, as `sha256sum` prints it
                digest = hashlib.sha256()
                with open(f, "rb") as raw:
                    for block in iter(lambda: raw.read(CHUNK), b""):
                        digest.update(block)
            for text in read_text(f, source, bar):
                present = set(text)
                alphabet |= present
                n += len(text)
                control += sum(text.count(c) for c in present if c not in "\n\r\t\f" + EOT_CHAR
                               and unicodedata.category(c) == "Cc")
                if control > 0.01 * n:
                    raise PrepareError(f"--data {source.path}: {source.name(f)}: {control / n:.0%} "
                                       "of its characters are control characters (NUL and the "
                                       "like), so it is not plain text (UTF-16? save it as UTF-8)")
            if not source.is_folder and n < 2:
                raise PrepareError(f"--data {source.path}: the file holds {n} characters; a "
                                   "corpus needs more")
            counts[f] = n
    finally:
        if bar is not None:
            bar.close()
    return _Scan(digest.hexdigest(), counts, alphabet)


# --------------------------------------------------------------------------- preparing


def parse_tokenizer(spec: str) -> tuple[str, int | None]:
    """'char' -> ('char', None); 'bpe:4096' -> ('bpe', 4096); 'gpt2' -> ('gpt2', None)."""
    if spec in ("char", "gpt2"):
        return spec, None
    kind, _, size = str(spec).partition(":")
    if kind == "bpe" and size.isdigit() and 256 < int(size) <= 1 << 20:
        return "bpe", int(size)
    raise PrepareError(f"--tokenizer {spec!r}: use 'char', 'bpe:N' with a vocabulary size N "
                       "from 257 to 1,048,576 (e.g. bpe:4096), or 'gpt2' (GPT-2's own)")


def _split_documents(source: Source, scanned: _Scan, val_fraction: float):
    """{split: [(file, first char, end char)]}: whole documents for a folder, the last
    `val_fraction` of the characters for one file."""
    if not source.is_folder:
        f = source.files[0]
        n = scanned.chars[f]
        cut = int(n * (1.0 - val_fraction))
        return {"train": [(f, 0, cut)], "val": [(f, cut, n)]}
    if len(source.files) < 2:
        raise PrepareError(f"--data {source.path}: the folder holds one text file; a validation "
                           "split needs whole documents apart from training: add files, or pass "
                           "the file itself as --data (its last tenth is then the validation split)")
    by_hash = sorted(source.files, key=lambda f: hashlib.sha256(source.name(f).encode()).digest())
    total, val, size = source.size, set(), 0
    for f in by_hash[:-1]:  # at least one document stays for training
        if size >= val_fraction * total:
            break
        val.add(f)
        size += f.stat().st_size
    return {split: [(f, 0, scanned.chars[f]) for f in source.files if (f in val) == (split == "val")]
            for split in SPLITS}


def _pieces(source: Source, parts, bar=None):
    """The text of the (file, start, end) parts, in pieces that end at a newline where one is
    near (BPE then never cuts a word), with the end-of-text mark after each document."""
    for f, start, end in parts:
        pos, carry = 0, ""
        for text in read_text(f, source, bar):
            lo, hi = max(start - pos, 0), min(end - pos, len(text))
            pos += len(text)
            if hi <= lo:
                continue
            text = carry + text[lo:hi]
            cut = text.rfind("\n", max(0, len(text) - 65536)) + 1 or len(text)
            carry = text[cut:]
            if cut:
                yield text[:cut]
        if carry:
            yield carry
        if source.is_folder:
            yield None  # a document ends here


class _Writer:
    """Token ids appended to a file, hashed as they are written."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.count = path, dtype, 0
        self.file, self.digest = open(path, "wb"), hashlib.sha256()

    def write(self, ids) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        raw = arr.tobytes()
        self.file.write(raw)
        self.digest.update(raw)
        self.count += len(arr)

    def close(self) -> dict:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        st = self.path.stat()
        return {"tokens": self.count, "sha256": self.digest.hexdigest(), "size": st.st_size}


def _encoder(tok, dtype):
    """text piece -> ids (a document's end, None, -> the end-of-text id)."""
    if isinstance(tok, CharTokenizer):
        table = np.full(max(map(ord, tok.chars)) + 2, -1, dtype=np.int64)
        table[[ord(c) for c in tok.chars]] = np.arange(tok.vocab_size)
        eot = tok.stoi.get(EOT_CHAR)

        def encode(text):
            if text is None:
                return [eot]
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            return table[np.minimum(codes, len(table) - 1)]
        return encode
    eot = tok.eot_id

    def encode_bpe(text):  # in parts that end at a newline, encoded in parallel by the library
        if text is None:
            return [eot]
        parts, start = [], 0
        while start < len(text):
            end = text.find("\n", start + 65536) + 1 or len(text)
            parts.append(text[start:end])
            start = end
        return [i for ids in tok.encode_batch(parts) for i in ids]
    return encode_bpe


def prepare(data: str | os.PathLike, tokenizer: str = "char", out: str | os.PathLike | None = None,
            *, glob: str | None = None, val_fraction: float = VAL_FRACTION, progress: bool = True,
            cache_root: Path | None = None) -> Path:
    """Prepare `data` (a text file or a folder of them) into the folder `out` and return it.

    Without `out` the folder is `cache_root / "<sha256>-<tokenizer>"` (the course's cache):
    preparing the same text with the same tokenizer again finds it there. An `out` that already
    holds this preparation is returned as it is; one that holds anything else is refused.
    """
    kind, vocab = parse_tokenizer(tokenizer)
    if not 0.0 < val_fraction < 1.0:
        raise PrepareError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    source = find_source(data, glob)
    scanned = scan(source, progress)
    if out is None:
        if cache_root is None:
            raise PrepareError("prepare() needs out (a folder) or cache_root")
        out = Path(cache_root) / f"{scanned.sha256[:20]}-{tokenizer.replace(':', '')}"
    out = Path(out).expanduser().resolve()
    settings = {"tokenizer": tokenizer, "glob": glob, "val_fraction": val_fraction}
    if _already_there(out, source, scanned, settings):
        return out
    splits = _split_documents(source, scanned, val_fraction)
    if kind == "char":
        alphabet = scanned.alphabet | ({EOT_CHAR} if source.is_folder else set())
        tok = CharTokenizer("".join(sorted(alphabet)))
    elif kind == "gpt2":
        tok = gpt2_tokenizer()
    else:
        tok = train_bpe((p for p in _pieces(source, splits["train"]) if p is not None), vocab,
                        special_tokens=[EOT_TOKEN] if source.is_folder else ())
    dtype = dtype_for(tok.vocab_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        encode, files = _encoder(tok, dtype), {}
        bar = _bar(source.size * (1 if source.is_folder else 2), f"tokenizing ({tokenizer})", progress)
        for split in SPLITS:
            writer = _Writer(tmp / f"{split}.bin", dtype)
            for piece in _pieces(source, splits[split], bar):
                writer.write(encode(piece))
            files[split] = writer.close()
        if bar is not None:
            bar.close()
        (tmp / "tokenizer.json").write_text(json.dumps(tok.to_dict()))
        meta = {"format_version": FORMAT_VERSION, **settings, "vocab_size": tok.vocab_size,
                "dtype": dtype.name, "files": files,
                "source": {"path": str(source.path), "sha256": scanned.sha256,
                           "kind": "folder" if source.is_folder else "file",
                           "documents": len(source.files), "bytes": source.size,
                           "characters": sum(scanned.chars.values()),
                           "val_documents": len(splits["val"]) if source.is_folder else 0}}
        for split in SPLITS:
            meta["files"][split]["mtime_ns"] = (tmp / f"{split}.bin").stat().st_mtime_ns
        _write_json_atomic(tmp / "meta.json", meta)
        if out.is_dir():
            out.rmdir()  # empty (_already_there refused anything else)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_json_atomic(path: Path, obj) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def _already_there(out: Path, source: Source, scanned: _Scan, settings: dict) -> bool:
    """True when `out` holds this very preparation; False when it is free (absent or empty);
    a PrepareError when it holds anything else."""
    if source.is_folder and (out == source.path or source.path in out.parents):
        raise PrepareError(f"--out {out} is inside the source folder {source.path}: it would be "
                           "read as text next time; choose a folder outside it")
    if not out.exists():
        return False
    if not out.is_dir():
        raise PrepareError(f"--out {out} is a file; choose a folder")
    if not (out / "meta.json").exists():
        if any(out.iterdir()):
            raise PrepareError(f"--out {out} holds other files; choose an empty or new folder")
        return False
    meta = read_meta(out)
    same = (meta["source"].get("sha256") == scanned.sha256
            and all(meta.get(k) == v for k, v in settings.items()))
    if not same:
        raise PrepareError(f"--out {out} holds a corpus prepared from other text or with other "
                           "settings; choose another --out, or delete that folder first")
    load_prepared(out)  # checks its files
    return True


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.prepare", description=(
        "Prepare a text file or a folder of text files once into token files that training "
        "reads through a memory map (python -m lib.train --data OUT)."))
    p.add_argument("--data", required=True, metavar="FILE_OR_FOLDER")
    p.add_argument("--tokenizer", default="char",
                   help="char, bpe:N (a byte-level BPE of N tokens trained on this text), or gpt2 "
                        "(GPT-2's tokenizer, downloaded once) (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--glob", help="in a folder, only the files matching this pattern ('*.py': "
                   "the folder's own; '**/*.py': its subfolders' too; default: every text file)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    args = p.parse_args(argv)
    try:
        out = prepare(args.data, args.tokenizer, args.out, glob=args.glob,
                      val_fraction=args.val_fraction, progress=sys.stderr.isatty())
        meta = read_meta(out)
    except (PrepareError, OSError, ValueError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    except KeyboardInterrupt:
        p.exit(130, "\nInterrupted: nothing was written (a folder prepared earlier is intact).\n")
    counts = {s: meta["files"][s]["tokens"] for s in SPLITS}
    print(f"{out}: {counts['train']:,} training and {counts['val']:,} validation tokens "
          f"({meta['dtype']}), vocabulary {meta['vocab_size']:,}, from "
          f"{meta['source']['documents']:,} document(s), {meta['source']['bytes']:,} bytes.")
    print(f"Train on it: python -m lib.train --data {out}")


if __name__ == "__main__":
    main()
