"""Shared fixtures: a small corpus, an empty run cache that counts trainings. Helpers that
tests import are in helpers.py."""

import os

import pytest
import torch

from lib.data import CharCorpus, CharTokenizer, train_val_split

from helpers import make_text


@pytest.fixture(scope="session")
def small_text() -> str:
    return make_text()


@pytest.fixture(scope="session")
def small_corpus(small_text) -> CharCorpus:
    tok = CharTokenizer.from_text(small_text)
    ids = torch.tensor(tok.encode(small_text), dtype=torch.long)
    train, val = train_val_split(ids, 0.1)
    return CharCorpus(small_text, tok, train, val, "test-corpus")


@pytest.fixture
def counted_runs(monkeypatch, tmp_path):
    """An empty run cache, and a list that grows by one each time a run really trains."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    runs = []
    from lib.trainer import Trainer

    original = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self, **kw: (runs.append(1), original(self, **kw))[1])
    return runs


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
