"""lib.course: the presets, the course's preset per device, and the run cache's key."""

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

import lib
from lib import course
from lib.course import PRESETS, VAL_LOSS_BOUND, course_config, course_preset, train_or_load
from lib.data import CharCorpus

from helpers import tiny_model_config, tiny_train_config


def test_train_or_load_caches_and_never_serves_stale_runs(small_corpus, counted_runs, monkeypatch):
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    a = train_or_load(mc, tiny_train_config(max_steps=5), small_corpus, verbose=False)
    b = train_or_load(mc, tiny_train_config(max_steps=5), small_corpus, verbose=False)
    assert len(counted_runs) == 1  # the second call was served from the cache
    assert [r["loss"] for r in a.history["train"]] == [r["loss"] for r in b.history["train"]]
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    train_or_load(mc, tiny_train_config(max_steps=6), small_corpus, verbose=False)
    assert len(counted_runs) == 2  # another config: trained
    train_or_load(mc, tiny_train_config(max_steps=5, progress=True), small_corpus, verbose=False)
    assert len(counted_runs) == 2  # the progress bar does not change what training computes
    monkeypatch.setattr(course, "source_fingerprint", lambda: "the model's source changed")
    train_or_load(mc, tiny_train_config(max_steps=5), small_corpus, verbose=False)
    assert len(counted_runs) == 3  # the source changed: trained again


def test_two_corpora_that_differ_only_in_their_data_get_different_runs(small_corpus, counted_runs):
    """Same tokenizer, same text attribute and label, one training token changed: not the same run."""
    train = small_corpus.train.clone()
    train[100] = (train[100] + 1) % small_corpus.tokenizer.vocab_size
    other = CharCorpus(small_corpus.text, small_corpus.tokenizer, train, small_corpus.val,
                       small_corpus.sha256)
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    a = train_or_load(mc, tiny_train_config(max_steps=5), small_corpus, verbose=False)
    b = train_or_load(mc, tiny_train_config(max_steps=5), other, verbose=False)
    assert len(counted_runs) == 2
    # a validation split that differs gets its own run too (its losses are in the history)
    val = small_corpus.val[:-1]
    train_or_load(mc, tiny_train_config(max_steps=5),
                  CharCorpus(small_corpus.text, small_corpus.tokenizer, small_corpus.train, val,
                             small_corpus.sha256), verbose=False)
    assert len(counted_runs) == 3
    assert a.history["eval"][0]["val_loss"] == b.history["eval"][0]["val_loss"]  # same val split


def copy_of_lib(tmp_path) -> Path:
    root = tmp_path / "lib"
    shutil.copytree(Path(lib.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_plotting_change_keeps_the_cache_and_a_model_change_does_not(tmp_path):
    root = copy_of_lib(tmp_path)
    before = course.source_fingerprint(root=root)
    assert before == course.source_fingerprint()  # the copy is the real lib
    for helper in ("plotting.py", "book.py", "baselines.py", "course.py", "cli.py"):
        (root / helper).write_text((root / helper).read_text() + "\n# an edit\n")
    assert course.source_fingerprint(root=root) == before
    (root / "model.py").write_text((root / "model.py").read_text() + "\n# an edit\n")
    assert course.source_fingerprint(root=root) != before


def test_every_module_that_changes_training_is_in_the_fingerprint(tmp_path):
    root = copy_of_lib(tmp_path)
    before = course.source_fingerprint(root=root)
    for name in course.COMPUTE_MODULES:
        path = root / f"{name}.py"
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        assert course.source_fingerprint(root=root) != before, name
        path.write_text(original)


def test_the_fingerprint_covers_every_lib_module_that_training_imports():
    """What `Trainer` and the sample recorder import from lib (and what those import, on down)
    is in COMPUTE_MODULES, but for checkpoint files, which store a run and compute nothing, the
    cache folder's name (paths), and
    TrainConfig's module, whose every field is in the run's key already (a new default changes
    the key through the config)."""
    import ast

    root = Path(lib.__file__).parent
    seen, todo = set(), ["trainer", "sampling"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((root / f"{name}.py").read_text())
        todo += [node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module]
    assert seen - {"checkpoint", "config", "paths"} <= set(course.COMPUTE_MODULES), seen - set(course.COMPUTE_MODULES)


def test_course_preset_follows_the_device_and_the_environment(monkeypatch):
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    assert course_preset("cpu") == "shakespeare-char-cpu"
    assert course_preset("cuda") == "shakespeare-char-gpu"
    monkeypatch.setenv("COURSE_PRESET", "shakespeare-char-mini")
    assert course_preset("cpu") == course_preset("cuda") == "shakespeare-char-mini"
    name, model_config, config = course_config("cpu")
    assert (name, model_config, config) == ("shakespeare-char-mini", PRESETS[name][0],
                                            dataclasses.replace(PRESETS[name][1], device="cpu"))
    monkeypatch.setenv("COURSE_PRESET", "shakespeare-char-huge")
    with pytest.raises(ValueError, match="COURSE_PRESET='shakespeare-char-huge'.*shakespeare-char-cpu"):
        course_preset("cpu")


def test_the_swap_preset_differs_from_the_cpu_preset_where_lessons_could_hard_code_it():
    cpu_model, cpu_train = PRESETS["shakespeare-char-cpu"]
    mini_model, mini_train = PRESETS["shakespeare-char-mini"]
    for field in ("block_size", "n_embd", "n_head", "dropout"):
        assert getattr(cpu_model, field) != getattr(mini_model, field), field
    for field in ("batch_size", "max_steps", "eval_interval", "eval_batches"):
        assert getattr(cpu_train, field) != getattr(mini_train, field), field
    assert set(VAL_LOSS_BOUND) == set(PRESETS)


def test_train_seeds_trains_each_seed_once_and_keeps_the_split_loss(small_corpus, counted_runs):
    from lib.course import train_seeds, val_split_loss
    from lib.evaluation import split_loss

    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    runs = train_seeds(mc, tiny_train_config(max_steps=3, warmup_steps=1), small_corpus, seeds=(0, 1))
    assert [t.config.seed for t in runs] == [0, 1] and len(counted_runs) == 2
    again = train_seeds(mc, tiny_train_config(max_steps=3, warmup_steps=1), small_corpus, seeds=(0, 1))
    assert len(counted_runs) == 2  # both from the cache
    for t in again:  # the whole-split loss came back with the cached run
        assert t.history["val_split_loss"] == pytest.approx(split_loss(t.model, small_corpus.val))
        assert val_split_loss(t) == t.history["val_split_loss"]
    assert runs[0].history["val_split_loss"] != runs[1].history["val_split_loss"]


def test_run_key_changes_with_what_decides_the_run_and_only_with_that(small_corpus):
    """One token of the data, one field of a config, the tokenizer or lib's computing source
    each give another key; the progress bar and the output folder do not."""
    from lib.data import CharTokenizer

    mc, tc = tiny_model_config(small_corpus.tokenizer.vocab_size), tiny_train_config()
    key = course.run_key(mc, tc, small_corpus)
    assert course.run_key(mc, dataclasses.replace(tc, progress=not tc.progress, out_dir="x"),
                          small_corpus) == key
    train = small_corpus.train.clone()
    train[len(train) // 2] = (train[len(train) // 2] + 1) % small_corpus.tokenizer.vocab_size
    others = [
        course.run_key(dataclasses.replace(mc, n_layer=mc.n_layer + 1), tc, small_corpus),
        course.run_key(mc, dataclasses.replace(tc, seed=tc.seed + 1), small_corpus),
        course.run_key(mc, tc, CharCorpus(small_corpus.text, small_corpus.tokenizer, train,
                                          small_corpus.val, small_corpus.sha256)),
        course.run_key(mc, tc, CharCorpus(small_corpus.text,
                                          CharTokenizer(small_corpus.tokenizer.chars[::-1]),
                                          small_corpus.train, small_corpus.val,
                                          small_corpus.sha256)),
    ]
    assert len({key, *others}) == 1 + len(others)


# --------------------------------------------------------------------------- held-out blocks


def test_held_out_blocks_cover_the_split_exactly_and_are_never_trained_on():
    split = torch.arange(10_000)  # every token its own position: where each came from is plain
    held = course.hold_out_blocks(split, n_blocks=7, block_len=300, seed=3)
    spans = sorted(held.held_spans + held.kept_spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(split)
    assert all(a < b for a, b in spans) and all(b == c for (_, b), (c, _) in zip(spans, spans[1:]))
    pieces = {a: split[a:b] for a, b in spans}
    assert torch.equal(torch.cat([pieces[a] for a in sorted(pieces)]), split)  # nothing lost
    held_ids = torch.cat(held.held_out)
    assert len(held.held_out) == 7 and all(len(b) == 300 for b in held.held_out)
    assert len(held.train) + len(held_ids) == len(split)
    # No window drawn from the training text holds a held-out token (cut out, not masked).
    T = 16
    windows = held.train.unfold(0, T + 1, 1)
    assert not torch.isin(windows, held_ids).any()
    # The seen blocks are trained-on text of the same length, one after each held-out block.
    assert all(len(b) == 300 and torch.isin(b, held.train).all() for b in held.seen)
    assert [int(b[0]) for b in held.seen] == [end for _, end in held.held_spans]
    again = course.hold_out_blocks(split, n_blocks=7, block_len=300, seed=3)
    assert again.held_spans == held.held_spans  # seeded
    assert course.hold_out_blocks(split, n_blocks=7, block_len=300, seed=4).held_spans != held.held_spans


def test_hold_out_blocks_refuses_a_split_too_short():
    with pytest.raises(ValueError, match="need a split of at least 1200 tokens"):
        course.hold_out_blocks(torch.arange(1000), n_blocks=2, block_len=300)


def test_blocks_loss_scores_windows_inside_each_block(small_corpus):
    from lib.evaluation import split_loss
    from lib.model import GPT

    torch.manual_seed(0)
    model = GPT(tiny_model_config(small_corpus.tokenizer.vocab_size)).eval()
    T = model.config.block_size
    ids = small_corpus.train
    assert course.blocks_loss(model, [ids]) == pytest.approx(split_loss(model, ids))
    a, b = ids[: 5 * T + 1], ids[5 * T + 1: 9 * T + 2]  # 5 and 4 whole windows
    la, lb = split_loss(model, a), split_loss(model, b)
    assert course.blocks_loss(model, [a, b]) == pytest.approx((5 * la + 4 * lb) / 9)


def test_gap_recorder_scores_the_three_texts_at_the_steps_asked(small_corpus):
    held = course.hold_out_blocks(small_corpus.train, n_blocks=2, block_len=100)
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    carved = CharCorpus(small_corpus.text, small_corpus.tokenizer, held.train, small_corpus.val, "t")
    from lib.trainer import Trainer

    trainer = Trainer(mc, tiny_train_config(max_steps=4, warmup_steps=1), carved.train, carved.val, carved.tokenizer)
    trainer.run(callback=course.gap_recorder(held, carved.val, (0, 4)), callback_interval=2)
    rows = trainer.history["gap_parts"]
    assert [r["step"] for r in rows] == [0, 4]
    assert rows[-1]["val"] == pytest.approx(course.blocks_loss(trainer.model, [carved.val]))
