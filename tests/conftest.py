"""Shared fixtures: a small corpus the tests make themselves, and tiny configs."""

import os
import random

import pytest
import torch

from lib.data import CharCorpus, CharTokenizer, train_val_split
from lib.model import GPTConfig
from lib.trainer import TrainConfig

WORDS = "the king and queen of love shall speak to me now my lord good night sweet prince".split()


def make_text(n_words: int = 3000, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_words // 8):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(8)).capitalize() + ".")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def small_text() -> str:
    return make_text()


@pytest.fixture(scope="session")
def small_corpus(small_text) -> CharCorpus:
    tok = CharTokenizer.from_text(small_text)
    ids = torch.tensor(tok.encode(small_text), dtype=torch.long)
    train, val = train_val_split(ids, 0.1)
    return CharCorpus(small_text, tok, train, val, "test-corpus")


def tiny_model_config(vocab_size: int, **overrides) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32),
                        **overrides})


def tiny_train_config(**overrides) -> TrainConfig:
    base = dict(max_steps=30, batch_size=8, lr=3e-3, warmup_steps=5, eval_interval=10,
                eval_batches=2, log_interval=5, device="cpu", progress=False, seed=0)
    return TrainConfig(**{**base, **overrides})


def pytest_collection_modifyitems(config, items):
    """The browser tests need a built book: they run only when asked for (`-m browser`).

    COURSE_REQUIRE_GPU=1 (set by `make gpu-test`) makes a missing CUDA GPU an error, so the
    tests marked `gpu` cannot be skipped quietly on the machine meant to run them.
    """
    if os.environ.get("COURSE_REQUIRE_GPU") == "1" and not torch.cuda.is_available():
        raise pytest.UsageError("COURSE_REQUIRE_GPU=1 but PyTorch sees no CUDA GPU, so the tests "
                                "marked gpu would be skipped; install torch's CUDA build")
    if "browser" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="opens the built book in a browser: run `make browser-test`")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
