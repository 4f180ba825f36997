"""lib.checkpoint: atomic writes, safe loads, clear errors."""

import os

import pytest
import torch

from lib import checkpoint as ckpt
from lib.checkpoint import load_model
from lib.trainer import Trainer

from helpers import tiny_model_config, tiny_train_config


@pytest.fixture
def saved(small_corpus, tmp_path):
    t = Trainer(tiny_model_config(small_corpus.tokenizer.vocab_size),
                tiny_train_config(max_steps=3, warmup_steps=0, out_dir=str(tmp_path)),
                small_corpus.train, small_corpus.val, small_corpus.tokenizer)
    t.run()
    return tmp_path


def test_checkpoint_holds_everything_to_resume(saved):
    state = ckpt.load_checkpoint(saved)
    assert set(state) >= {"model", "optimizer", "step", "model_config", "train_config",
                          "rng", "history", "tokenizer", "elapsed", "format_version"}
    assert state["step"] == 3 and set(state["rng"]) == {"torch", "cuda", "batches"}
    assert not any(k.startswith("_orig_mod") for k in state["model"])


def test_load_model_for_inference(saved):
    model, tok, state = load_model(saved, device="cpu")
    assert not model.training and tok is not None
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, tok.vocab_size)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="has no ckpt.pt"):
        ckpt.load_checkpoint(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nothing.pt")


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "text"])
def test_damaged_checkpoints_give_clear_errors(saved, damage):
    f = saved / "ckpt.pt"
    raw = f.read_bytes()
    f.write_bytes({"empty": b"", "truncated": raw[: len(raw) // 2],
                   "random": os.urandom(4096), "text": b"hello, not a checkpoint"}[damage])
    with pytest.raises(ckpt.CheckpointError, match="empty|damaged|not a"):
        ckpt.load_checkpoint(saved)


def test_plain_tensor_file_is_not_a_course_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint of this course"):
        ckpt.load_checkpoint(tmp_path / "x.pt")


class Payload:
    """Unpickling this object calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": Payload(marker)}, evil)
    with pytest.raises(ckpt.CheckpointError, match="could run arbitrary code"):
        ckpt.load_checkpoint(evil)
    assert not marker.exists()
    # the payload is real: unpickling without weights_only does run it
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_interrupted_save_keeps_the_previous_checkpoint(saved, monkeypatch):
    before = (saved / "ckpt.pt").read_bytes()

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({"step": 99}, saved)
    monkeypatch.undo()
    assert (saved / "ckpt.pt").read_bytes() == before
    assert ckpt.load_checkpoint(saved)["step"] == 3
    assert [p.name for p in saved.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


def test_no_torch_load_without_weights_only():
    import pathlib
    import re

    lib_dir = pathlib.Path(ckpt.__file__).parent
    for path in lib_dir.glob("*.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path.name}: {call}"


def test_save_never_overwrites_a_file_that_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(ckpt.CheckpointError, match="Refusing to overwrite"):
        ckpt.save_checkpoint({"step": 1}, notes)
    assert notes.read_text() == "keep me"
    ckpt.save_checkpoint({"step": 1}, tmp_path / "run.pt")
    ckpt.save_checkpoint({"step": 2}, tmp_path / "run.pt")  # a checkpoint is replaced, as it should
    assert ckpt.load_checkpoint(tmp_path / "run.pt")["step"] == 2


@pytest.mark.skipif(os.name != "posix", reason="a folder is flushed on POSIX only")
def test_save_flushes_the_file_and_then_its_folder(tmp_path, monkeypatch):
    import stat

    flushed = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(stat.S_ISDIR(os.fstat(fd).st_mode)),
                                                 real_fsync(fd))[1])
    ckpt.save_checkpoint({"step": 1}, tmp_path / "run")
    assert flushed == [False, True]  # the temporary file's bytes, then the folder's new entry


# --------------------------------------------------------------------------- damaged bytes (#42)


def _flip_a_byte_inside_a_tensor(path):
    """Flip one byte in the middle of the largest tensor's raw bytes in the checkpoint's zip,
    leaving the archive itself readable (torch.load reads no CRC)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_byte_flipped_inside_a_tensor_is_refused(saved):
    ckpt.load_checkpoint(saved)  # whole, it loads
    _flip_a_byte_inside_a_tensor(saved / "ckpt.pt")
    with pytest.raises(ckpt.CheckpointError, match="is damaged: its tensors") as err:
        ckpt.load_checkpoint(saved)
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ckpt.CheckpointError, match="is damaged"):
        load_model(saved, device="cpu")


def test_the_checksum_covers_every_tensor_and_nothing_else(saved):
    state = ckpt.load_checkpoint(saved)
    assert state["checksum"] == ckpt.tensor_checksum(state)
    state["optimizer"]["state"][0]["exp_avg"][0, 0] += 1  # deep inside the optimizer's state
    assert state["checksum"] != ckpt.tensor_checksum(state)
    assert ckpt.tensor_checksum({"a": torch.zeros(2)}) != ckpt.tensor_checksum({"b": torch.zeros(2)})
    assert ckpt.tensor_checksum({"a": torch.zeros(2)}) != ckpt.tensor_checksum({"a": torch.zeros(1, 2)})
    assert ckpt.tensor_checksum({"a": torch.zeros(2), "step": 1}) == \
        ckpt.tensor_checksum({"a": torch.zeros(2), "step": 2, "checksum": "x"})


def test_a_checkpoint_of_a_newer_format_is_refused(saved):
    state = ckpt.load_checkpoint(saved)
    torch.save({**state, "format_version": ckpt.FORMAT_VERSION + 1}, saved / "ckpt.pt")
    with pytest.raises(ckpt.CheckpointError, match="newer version of the course.*update"):
        ckpt.load_checkpoint(saved)
    torch.save({**state, "format_version": "2"}, saved / "ckpt.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a version number"):
        ckpt.load_checkpoint(saved)


def test_a_checkpoint_of_version_1_without_a_checksum_still_loads_and_resumes(saved, small_corpus):
    state = ckpt.load_checkpoint(saved)
    del state["checksum"]
    torch.save({**state, "format_version": 1}, saved / "ckpt.pt")
    assert ckpt.load_checkpoint(saved)["step"] == 3
    t = Trainer.resume(saved, small_corpus.train, small_corpus.val, max_steps=5)
    t.run()
    assert ckpt.load_checkpoint(saved)["format_version"] == ckpt.FORMAT_VERSION  # saved anew
    state = ckpt.load_checkpoint(saved)  # a version 2 file whose checksum is lost is damaged
    del state["checksum"]
    torch.save(state, saved / "ckpt.pt")
    with pytest.raises(ckpt.CheckpointError, match="is damaged"):
        ckpt.load_checkpoint(saved)


# --------------------------------------------------------------------------- full disks (#42)


def test_torch_failing_to_write_is_one_clear_error_and_keeps_the_previous_checkpoint(saved,
                                                                                    monkeypatch):
    before = (saved / "ckpt.pt").read_bytes()

    def full_disk(obj, f, *a, **k):  # what torch's zip writer raises on a full disk
        f.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.save_checkpoint({"step": 99}, saved)
    monkeypatch.undo()
    message = str(err.value)
    assert str(saved / "ckpt.pt") in message and "unexpected pos" in message
    assert "unchanged" in message and len(message.splitlines()) == 1
    assert (saved / "ckpt.pt").read_bytes() == before
    assert [p.name for p in saved.iterdir()] == ["ckpt.pt"]  # no temporary file left behind


@pytest.fixture
def tiny_disk(tmp_path):
    """A real file system of 1 MB (tmpfs), or a skip where mounting one is not permitted."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.name != "posix" or not shutil.which("mount"):
        pytest.skip("no mount here")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_real_full_disk_is_one_clear_error_and_keeps_the_previous_checkpoint(tiny_disk):
    ckpt.save_checkpoint({"step": 1, "w": torch.zeros(1000)}, tiny_disk)
    before = (tiny_disk / "ckpt.pt").read_bytes()
    with pytest.raises(ckpt.CheckpointError, match="Could not save the checkpoint .*ckpt.pt") as err:
        ckpt.save_checkpoint({"step": 2, "w": torch.zeros(1_000_000)}, tiny_disk)  # 4 MB
    assert len(str(err.value).splitlines()) == 1
    assert (tiny_disk / "ckpt.pt").read_bytes() == before
    assert ckpt.load_checkpoint(tiny_disk)["step"] == 1
    assert [p.name for p in tiny_disk.iterdir()] == ["ckpt.pt"]
