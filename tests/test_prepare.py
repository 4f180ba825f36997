"""Preparing a corpus into token files, reading it back through a memory map, and every way the
input or the prepared folder can be wrong (lib.prepare, lib.tokenfiles)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lib import data
from lib.prepare import main, prepare
from lib.tokenfiles import PrepareError, dtype_for, load_prepared, read_meta
from lib.tokenizer import EOT_CHAR, EOT_TOKEN, BPETokenizer, CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_is_split_as_before_and_read_back_as_the_same_ids(tmp_path):
    src = write(tmp_path / "a.txt", TEXT)
    out = prepare(src, "char", tmp_path / "p", progress=False)
    got = load_prepared(out)
    tok = CharTokenizer.from_text(TEXT)
    ids = tok.encode_tensor(TEXT)
    n_train = int(len(TEXT) * 0.9)
    assert got.tokenizer.to_dict() == tok.to_dict()
    assert got.train.dtype == torch.uint8 and torch.equal(got.train.long(), ids[:n_train])
    assert torch.equal(got.val.long(), ids[n_train:])
    meta = read_meta(out)
    assert meta["source"]["sha256"] == data.sha256_of(src)  # a file's own sha256
    assert meta["files"]["train"]["tokens"] == n_train
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "tokenizer.json", "train.bin",
                                                    "val.bin"]


def test_the_smallest_unsigned_dtype_holds_the_vocabulary():
    assert [dtype_for(v).name for v in (2, 256, 257, 65536, 65537)] == [
        "uint8", "uint8", "uint16", "uint16", "uint32"]


def test_a_folder_is_documents_with_an_end_mark_and_whole_documents_in_val(tmp_path):
    docs = {f"d{i:02d}.txt": f"document {i}\n" + "word " * (20 + i) for i in range(20)}
    for name, text in docs.items():
        write(tmp_path / "src" / name, text)
    write(tmp_path / "src" / ".hidden.txt", "not read")
    (tmp_path / "src" / "image.bin").write_bytes(b"\x89PNG\0\0binary")
    out = prepare(tmp_path / "src", "char", tmp_path / "p", progress=False)
    got, meta = load_prepared(out), read_meta(out)
    tok = got.tokenizer
    assert EOT_CHAR in tok.chars and meta["source"]["documents"] == 20
    pieces = {split: tok.decode(getattr(got, split)).split(EOT_CHAR) for split in ("train", "val")}
    assert all(p[-1] == "" for p in pieces.values())  # every document ends with the mark
    train_docs, val_docs = set(pieces["train"][:-1]), set(pieces["val"][:-1])
    assert train_docs | val_docs == set(docs.values()) and not train_docs & val_docs
    assert 1 <= len(val_docs) == meta["source"]["val_documents"] < 20
    val_bytes = sum(len(d.encode()) for d in val_docs)
    assert val_bytes >= 0.1 * sum(len(d.encode()) for d in docs.values())


def test_bpe_is_trained_on_the_training_split_and_round_trips(tmp_path):
    for i in range(6):
        write(tmp_path / "src" / f"f{i}.py", f"def f{i}(x):\n    return x + {i}\n" * 30)
    out = prepare(tmp_path / "src", "bpe:300", tmp_path / "p", glob="*.py", progress=False)
    got = load_prepared(out)
    assert isinstance(got.tokenizer, BPETokenizer) and got.tokenizer.vocab_size <= 300
    assert got.train.dtype == torch.uint16
    text = got.tokenizer.decode(got.train)
    assert text.count(EOT_TOKEN) == 6 - read_meta(out)["source"]["val_documents"]
    assert "def f" in text and len(got.train) < len(text) / 2  # merges shorten the text


def test_preparing_again_reuses_the_folder_and_the_cache_keys_by_source_and_tokenizer(tmp_path):
    src = write(tmp_path / "a.txt", TEXT)
    first = prepare(src, "char", cache_root=tmp_path / "cache", progress=False)
    mtime = (first / "train.bin").stat().st_mtime_ns
    assert prepare(src, "char", cache_root=tmp_path / "cache", progress=False) == first
    assert (first / "train.bin").stat().st_mtime_ns == mtime  # not written again
    other = prepare(src, "bpe:260", cache_root=tmp_path / "cache", progress=False)
    assert other != first and data.sha256_of(src)[:20] in first.name


def test_the_run_cache_reads_the_recorded_digest_not_the_tensor(tmp_path):
    from lib.course import tensor_digest

    got = load_prepared(prepare(write(tmp_path / "a.txt", TEXT), "char", tmp_path / "p",
                                progress=False))
    assert tensor_digest(got.train) == read_meta(got.folder)["files"]["train"]["sha256"]
    assert tensor_digest(got.train[:-1]) != tensor_digest(got.train)  # a slice is hashed


def test_batches_and_windows_come_out_as_long_ids(tmp_path):
    got = load_prepared(prepare(write(tmp_path / "a.txt", TEXT), "char", tmp_path / "p",
                                progress=False))
    x, y = data.get_batch(got.train, 4, 8, torch.Generator().manual_seed(0))
    assert x.dtype == y.dtype == torch.long and torch.equal(x[:, 1:], y[:, :-1])
    wx, wy = data.WindowDataset(got.val, 8)[0]
    assert wx.dtype == torch.long and torch.equal(wx, got.val[:8].long())


@pytest.mark.parametrize("make, match", [
    (lambda d: (d / "bad.txt").write_bytes(b"good text\n" * 10 + b"\xff\xfe oops"), "byte 100 "),
    (lambda d: (d / "bad.txt").write_bytes(b""), "holds 0 characters"),
    (lambda d: (d / "bad.txt").write_bytes("hi\0\0\0\0\0".encode() * 100), "control characters"),
    (lambda d: (d / "bad.txt").mkdir(), "no text files"),
    (lambda d: os.mkfifo(d / "bad.txt"), "pipe"),
])
def test_bad_input_is_refused_in_one_line(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(PrepareError, match=match) as err:
        prepare(tmp_path / "bad.txt", "char", tmp_path / "p", progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "p").exists()


def test_a_character_device_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(PrepareError, match="character device"):
        prepare("/dev/zero", "char", tmp_path / "p", progress=False)
    with pytest.raises(PrepareError, match="no such file"):
        prepare(tmp_path / "nope.txt", "char", tmp_path / "p", progress=False)


@pytest.mark.parametrize("spec", ["bpe", "bpe:100", "bpe:x", "word", "bpe:-5"])
def test_a_bad_tokenizer_spec_is_refused(tmp_path, spec):
    with pytest.raises(PrepareError, match="--tokenizer"):
        prepare(write(tmp_path / "a.txt", TEXT), spec, tmp_path / "p", progress=False)


def test_out_inside_the_source_or_holding_another_corpus_is_refused(tmp_path):
    for i in range(3):
        write(tmp_path / "src" / f"{i}.txt", TEXT + str(i))
    with pytest.raises(PrepareError, match="inside the source folder"):
        prepare(tmp_path / "src", "char", tmp_path / "src" / "prepared", progress=False)
    out = prepare(write(tmp_path / "a.txt", TEXT), "char", tmp_path / "p", progress=False)
    with pytest.raises(PrepareError, match="other text or with other settings"):
        prepare(write(tmp_path / "b.txt", TEXT + "more"), "char", out, progress=False)
    with pytest.raises(PrepareError, match="other files"):
        prepare(tmp_path / "a.txt", "char", tmp_path / "src", progress=False)


def damage(folder: Path, how: str) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    if how == "truncated":
        with open(folder / "train.bin", "r+b") as f:
            f.truncate(10)
    elif how == "flipped":
        raw = bytearray((folder / "train.bin").read_bytes())
        raw[5] ^= 1
        (folder / "train.bin").write_bytes(raw)
    elif how == "version":
        meta["format_version"] = 99
    elif how == "meta":
        meta["vocab_size"] = 3
    elif how == "garbage":
        (folder / "meta.json").write_text("{not json")
        return
    elif how == "missing":
        (folder / "val.bin").unlink()
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("how, match", [
    ("truncated", "truncated or damaged"), ("flipped", "changed since it was prepared"),
    ("version", "format version 99"), ("meta", "disagrees"), ("garbage", "damaged"),
    ("missing", "missing"),
])
def test_a_damaged_prepared_folder_is_refused_in_one_line(tmp_path, how, match):
    out = prepare(write(tmp_path / "a.txt", TEXT), "char", tmp_path / "p", progress=False)
    damage(out, how)
    with pytest.raises(PrepareError, match=match) as err:
        load_prepared(out)
    assert "\n" not in str(err.value)


def test_not_a_prepared_folder(tmp_path):
    with pytest.raises(PrepareError, match="not a prepared corpus"):
        load_prepared(tmp_path)


def test_the_command_line_prepares_and_refuses_in_one_line(tmp_path, capsys):
    src = write(tmp_path / "a.txt", TEXT)
    main(["--data", str(src), "--out", str(tmp_path / "p")])
    assert "python -m lib.train --data" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path / "none.txt"), "--out", str(tmp_path / "q")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err


def _has_open(pid: int, path: Path) -> bool:
    """Whether the process holds `path` open (Linux's /proc/PID/fd)."""
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="watches Linux's /proc/PID/fd")
def test_an_interrupted_prepare_leaves_nothing_behind(tmp_path):
    """A real process, interrupted (SIGINT) while it reads a 100 MB corpus: it exits 130 in one
    line, and nothing is left, neither the folder nor a partial one."""
    src = tmp_path / "big.txt"
    with open(src, "w") as f:
        for _ in range(30):
            f.write(TEXT * 1000)  # about 100 MB
    out = tmp_path / "p"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "lib.prepare", "--data", str(src),
                             "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _has_open(proc.pid, src):
        time.sleep(0.01)  # until it reads the corpus (after its imports)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]


def test_a_prepare_interrupted_while_writing_removes_its_partial_folder(tmp_path, monkeypatch):
    """Ctrl-C while the token files are written: the partial folder goes, and a folder that was
    there before is left as it was."""
    import lib.prepare as prep

    calls = []

    def write(self, ids):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, ids)

    original = prep._Writer.write
    monkeypatch.setattr(prep._Writer, "write", write)
    src = write_text = tmp_path / "a.txt"
    write_text.write_text(TEXT * 2000)
    (tmp_path / "p").mkdir()
    with pytest.raises(KeyboardInterrupt):
        prepare(src, "char", tmp_path / "p", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "p"]
    assert list((tmp_path / "p").iterdir()) == []


def test_lib_train_takes_a_prepared_folder_and_a_text_folder(tmp_path):
    from lib.cli import train_main

    for i in range(4):
        write(tmp_path / "src" / f"{i}.txt", TEXT + f"doc {i}\n")
    out = prepare(tmp_path / "src", "bpe:280", tmp_path / "p", progress=False)
    small = ["--n-layer", "1", "--n-head", "1", "--n-embd", "16", "--block-size", "16",
             "--batch-size", "4", "--max-steps", "3", "--eval-interval", "3", "--eval-batches", "1",
             "--warmup-steps", "0",
             "--device", "cpu"]
    train_main(["--data", str(out), "--out", str(tmp_path / "run"), *small])
    from lib.checkpoint import load_model

    model, tok, state = load_model(tmp_path / "run", "cpu")
    assert isinstance(tok, BPETokenizer) and model.config.vocab_size == tok.vocab_size
    assert state["meta"]["corpus"]["tokenizer"] == "bpe:280"
    train_main(["--data", str(tmp_path / "src"), "--tokenizer", "char", "--out",
                str(tmp_path / "run2"), *small])
    assert np.isfinite(torch.load(tmp_path / "run2" / "ckpt.pt", weights_only=False)["history"]
                       ["eval"][-1]["val_loss"])


def test_bits_per_byte_counts_the_bytes_of_the_predicted_tokens(tmp_path):
    import math

    from lib.evaluation import bits_per_byte

    ascii_text = write(tmp_path / "a.txt", TEXT)
    char = load_prepared(prepare(ascii_text, "char", tmp_path / "c", progress=False))
    # one byte per character: bits per byte is the loss in bits
    assert bits_per_byte(1.0, char.val, char.tokenizer, 8) == pytest.approx(1 / math.log(2))
    bpe = load_prepared(prepare(ascii_text, "bpe:300", tmp_path / "b", progress=False))
    windows = (len(bpe.val) - 8 - 1) // 8 + 1
    targets = bpe.val[1 : 1 + windows * 8].long()
    n_bytes = len(bpe.tokenizer.decode(targets).encode())
    assert n_bytes > len(targets)  # a BPE token holds several bytes
    assert bits_per_byte(2.0, bpe.val, bpe.tokenizer, 8) == pytest.approx(
        2.0 * len(targets) / n_bytes / math.log(2))


def test_the_model_reads_a_prepared_split_as_it_is(tmp_path):
    """A slice of a prepared split (uint8 here) goes into the model as it is, as long ids do."""
    from lib.model import GPT, GPTConfig

    got = load_prepared(prepare(write(tmp_path / "a.txt", TEXT), "char", tmp_path / "p",
                                progress=False))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=got.tokenizer.vocab_size, block_size=16, n_layer=1,
                          n_head=1, n_embd=8)).eval()
    window = got.val[:16][None]
    assert window.dtype == torch.uint8
    assert torch.equal(model(window), model(window.long()))
