"""lib.pretrained: GPT-2's published weights in the course's GPT, offline. A GPT2LMHeadModel with
random weights and a byte-level BPE tokenizer are saved with `save_pretrained` and
`save_model`, the file layout of the hub's gpt2 folder, and loaded back."""

import math

import pytest
import torch

from lib import pretrained
from lib.model import lm_loss

from helpers import make_text, run

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

VOCAB = 300


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """A folder like the hub's gpt2 one: config.json, model.safetensors, vocab.json, merges.txt."""
    folder = tmp_path_factory.mktemp("gpt2-random")
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator([make_text(2000)], vocab_size=VOCAB, min_frequency=1, show_progress=False,
                            special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)  # <|endoftext|>, as in GPT-2
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_gpt2_loads_into_the_course_model_with_the_same_logits(snapshot):
    model, tokenizer = pretrained.load_gpt2(snapshot)
    hf = transformers.GPT2LMHeadModel.from_pretrained(snapshot).eval()
    ids = torch.tensor([tokenizer.encode("The king and queen of love shall speak")])
    assert ids.shape[1] > 3 and tokenizer.decode(ids[0]) == "The king and queen of love shall speak"
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max().item() <= 1e-5
    assert not model.training and model.config.block_size == 32


def test_bits_per_character_is_the_loss_over_the_characters(snapshot):
    model, tokenizer = pretrained.load_gpt2(snapshot)
    text = make_text(8, seed=3)  # fewer tokens than one context: one window, every token scored
    ids = torch.tensor([tokenizer.encode(text)])
    assert ids.shape[1] <= 33
    with torch.no_grad():
        nats = lm_loss(model(ids[:, :-1]), ids[:, 1:]).item() * (ids.shape[1] - 1)
    assert pretrained.bits_per_character(model, tokenizer, text) == pytest.approx(
        nats / math.log(2) / len(text), rel=1e-5)
    long = make_text(200, seed=4)  # many windows: every token scored once, with overlap
    bpc = pretrained.bits_per_character(model, tokenizer, long, stride=8)
    assert 0 < bpc < math.log2(VOCAB) * len(tokenizer.encode(long)) / len(long) * 1.5


def test_sample_writes_with_gpt2(snapshot):
    res = run("lib.sample", "--pretrained", str(snapshot), "--prompt", "The king", "--tokens", "12",
              "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("The king") and len(res.stdout) > len("The king\n")


def test_what_is_missing_is_said_in_one_line(snapshot, tmp_path):
    no_tokenizer = tmp_path / "weights-only"
    transformers.GPT2LMHeadModel.from_pretrained(snapshot).save_pretrained(no_tokenizer)
    cases = [
        (tmp_path / "nope", "no such folder, and not a GPT-2 name"),
        (tmp_path, "holds no config.json"),
        (no_tokenizer, "not its tokenizer"),
    ]
    for source, message in cases:
        with pytest.raises(ValueError, match=message):
            pretrained.load_gpt2(source)
    res = run("lib.sample", "--pretrained", str(no_tokenizer), "--tokens", "3")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "vocab.json" in res.stderr
    res = run("lib.sample", "--checkpoint", str(tmp_path), "--pretrained", "gpt2")
    assert res.returncode == 2 and "not allowed with" in res.stderr


def test_a_hub_name_offline_and_not_cached_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    res = run("lib.sample", "--pretrained", "gpt2-xl", "--tokens", "3")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "hf download gpt2-xl" in res.stderr
