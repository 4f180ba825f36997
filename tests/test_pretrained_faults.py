"""lib.pretrained with a damaged or foreign folder, and a hub that never answers (#42): every
case ends in one ValueError line naming the file and the fix, never a traceback from
safetensors, transformers or tokenizers, and nothing is filled in at random."""

import json
import os
import pickle
import shutil
import socket
import struct
import time
from pathlib import Path

import pytest
import torch

from lib import pretrained

from helpers import make_text, run

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
safetensors_torch = pytest.importorskip("safetensors.torch")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A GPT-2 folder as save_pretrained writes it, with random weights and a small BPE."""
    folder = tmp_path_factory.mktemp("gpt2-good")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([make_text(2000)], vocab_size=300, min_frequency=1,
                            show_progress=False, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    config = transformers.GPT2Config(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def folder(snapshot, tmp_path):
    copy = tmp_path / "gpt2"
    shutil.copytree(snapshot, copy)
    return copy


def _weights(folder: Path) -> dict:
    return safetensors_torch.load_file(folder / "model.safetensors")


def _rewrite(folder: Path, change) -> None:
    weights = _weights(folder)
    change(weights)
    safetensors_torch.save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _huge_tensor_header(folder: Path) -> None:
    header = json.dumps({"transformer.wte.weight": {"dtype": "F32", "shape": [10**12, 32],
                                                    "data_offsets": [0, 4 * 32 * 10**12]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)


class Pickled:
    def __reduce__(self):  # unpickling this would run a command
        return (os.system, ("touch PWNED",))


def _pickle_bin(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"wte.weight": Pickled()}))


SPOILS = [
    (lambda f: (f / "model.safetensors").write_bytes(b""), "fewer than a header"),
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:9000]),
     "declares"),
    (lambda f: (f / "model.safetensors").write_bytes(b"\xff" * 5000), "header claims"),
    (lambda f: (f / "model.safetensors").write_bytes(struct.pack("<Q", 5) + b"{nope"), "not JSON"),
    (_huge_tensor_header, "declares 128,000,000,000,000 bytes"),
    (lambda f: _config(f, n_embd=64), "config.json's sizes give"),
    (lambda f: _config(f, model_type="bert"), "not 'gpt2'"),
    (lambda f: (f / "config.json").write_text("{'not': json}"), "not readable JSON"),
    (lambda f: _config(f, n_layer=True), "n_layer"),
    (lambda f: _rewrite(f, lambda w: [w.pop(k) for k in list(w) if ".h.1." in k]), "lacks 12 of"),
    (lambda f: _rewrite(f, lambda w: w.update(extra=torch.zeros(2))), "does not have"),
    (lambda f: _rewrite(f, lambda w: w.update({"lm_head.weight": torch.zeros(300, 32)})), "ties"),
    (lambda f: _rewrite(f, lambda w: w.update({"transformer.ln_f.weight": torch.ones(32, dtype=torch.int32)})),
     "int32|I32"),
    (lambda f: _rewrite(f, lambda w: w["transformer.h.0.mlp.c_fc.weight"].view(-1).__setitem__(3, float("nan"))),
     "NaN"),
    (lambda f: (f / "vocab.json").write_text("[1, 2, 3]"), "not a JSON object of tokens"),
    (lambda f: (f / "vocab.json").write_text("{\"a\": "), "not readable JSON"),
    (lambda f: (f / "merges.txt").write_bytes(b"#version: 0.2\n\xff\xfe a b\n"), "not UTF-8"),
    (lambda f: (f / "merges.txt").write_text("#version: 0.2\nonly-one-piece\n"), "tokenizer does not load"),
    (_pickle_bin, "not plain PyTorch weights"),
]


@pytest.mark.parametrize("spoil, message", SPOILS)
def test_a_damaged_folder_is_one_line_naming_the_problem(folder, spoil, message, monkeypatch):
    monkeypatch.chdir(folder)  # where a pickle's command would write its file
    spoil(folder)
    with pytest.raises(ValueError, match=message) as caught:
        pretrained.load_gpt2(folder)
    assert "\n" not in str(caught.value) and str(folder) in str(caught.value)
    assert not (folder / "PWNED").exists()


def test_a_config_too_big_for_memory_is_refused_at_once(folder):
    _config(folder, n_layer=10**6, n_embd=4096, n_head=32)
    start = time.monotonic()
    with pytest.raises(ValueError, match="GiB"):
        pretrained.load_gpt2(folder)
    assert time.monotonic() - start < 5


def test_plain_pytorch_weights_load_like_safetensors(folder, snapshot):
    """A pytorch_model.bin of plain tensors (the hub's older layout, without the "transformer."
    prefix and with the causal-mask buffers) loads, to the same logits."""
    weights = {k.removeprefix("transformer."): v for k, v in _weights(folder).items()}
    weights["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))
    weights = {"lm_head.weight": weights["wte.weight"].clone(), **weights}  # the tied head, first
    torch.save(weights, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    model, tok = pretrained.load_gpt2(folder)
    reference, _ = pretrained.load_gpt2(snapshot)
    ids = torch.tensor([tok.encode("The king and queen")])
    with torch.no_grad():
        assert torch.equal(model(ids), reference(ids))


def test_the_command_line_says_it_in_one_line(folder):
    _pickle_bin(folder)
    res = run("lib.sample", "--pretrained", str(folder), "--tokens", "3", cwd=folder)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "not plain PyTorch weights" in res.stderr
    assert not (folder / "PWNED").exists()


def test_a_hub_that_never_answers_is_one_line_within_the_timeout(tmp_path):
    """A server that accepts the connection and never replies: the loader gives up after
    HUB_TIMEOUT (huggingface_hub alone retries each file, for minutes) and says what to do."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP", "http"))}
        env.update(HF_ENDPOINT=f"http://127.0.0.1:{hole.getsockname()[1]}", HF_HOME=str(tmp_path),
                   NO_PROXY="*")
        start = time.monotonic()
        res = run("lib.sample", "--pretrained", "gpt2", "--tokens", "3", env=env)
        took = time.monotonic() - start
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "did not answer" in res.stderr and "hf download gpt2" in res.stderr
    assert took < pretrained.HUB_TIMEOUT + 30


def test_a_hub_name_in_hugging_face_s_cache_loads_without_the_network(snapshot, tmp_path, monkeypatch):
    """The cache's layout (refs/main names a snapshot folder of the files), as a download leaves it."""
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--gpt2"
    shutil.copytree(snapshot, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    model, tok = pretrained.load_gpt2("gpt2", local_files_only=True)
    reference, _ = pretrained.load_gpt2(snapshot)
    ids = torch.tensor([tok.encode("The king")])
    with torch.no_grad():
        assert torch.equal(model(ids), reference(ids))
    (repo / "snapshots" / commit / "vocab.json").unlink()  # a partial download: not in the cache
    with pytest.raises(ValueError, match="not in Hugging Face's cache"):
        pretrained.load_gpt2("gpt2", local_files_only=True)
