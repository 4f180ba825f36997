"""lib.trainer: the loop, gradient accumulation, evaluation, history, hooks, determinism, resume."""

import dataclasses
import math

import pytest
import torch

from lib import checkpoint as ckpt
from lib.evaluation import estimate_loss
from lib.trainer import Trainer, TrainingDiverged

from helpers import tiny_model_config, tiny_train_config


def trainer(corpus, model_overrides=None, **overrides):
    return Trainer(tiny_model_config(corpus.tokenizer.vocab_size, **(model_overrides or {})),
                   tiny_train_config(**overrides), corpus.train, corpus.val, corpus.tokenizer)


def losses(history):
    return [row["loss"] for row in history["train"]]


@pytest.mark.parametrize(
    "field, value, exc, pattern",
    [
        ("max_steps", 0, ValueError, r"max_steps must be an integer in \[1, 1000000000\]"),
        ("max_steps", 10**23, ValueError, r"max_steps must be an integer in \[1, 1000000000\]"),
        ("batch_size", 0, ValueError, "batch_size must be an integer >= 1"),
        ("grad_accum_steps", 0, ValueError, "grad_accum_steps"),
        ("lr", 0.0, ValueError, "lr must be a finite number > 0"),
        ("lr", float("nan"), ValueError, "lr"),
        ("beta2", 1.0, ValueError, r"beta2 must be a finite number in \[0, 1\)"),
        ("weight_decay", -0.1, ValueError, "weight_decay"),
        ("grad_clip", -1.0, ValueError, "grad_clip"),
        ("max_time", -5.0, ValueError, "max_time"),
        ("max_time", 1e15, ValueError, r"max_time must be a finite number in \[0, 31622400\]"),
        ("eval_batches", 0, ValueError, "eval_batches"),
        ("checkpoint_interval", -1, ValueError, "checkpoint_interval"),
        ("dtype", "fp16", ValueError, "dtype must be one of"),
        ("device", "gpu", ValueError, "device must be"),
        ("schedule", "cosin", ValueError, "TrainConfig.schedule must be one of"),
        ("warmup_steps", 31, ValueError, "warmup_steps"),
        ("min_lr_ratio", 2.0, ValueError, r"min_lr_ratio must be a finite number in \[0, 1\] \(the final LR"),
        ("seed", -1, ValueError, r"seed must be an integer in \[0, 4294967295\]"),
        ("eval_batches", 10**9, ValueError, r"eval_batches must be an integer in \[1, 10000\]"),
        ("max_steps", 10.5, TypeError, "max_steps must be an integer"),
        ("lr", "0.1", TypeError, "lr must be a finite number"),
        ("progress", "yes", TypeError, "progress must be True or False"),
        ("compile", "yes", ValueError, "compile must be one of auto, on, off"),
        ("optimizer", "lion", ValueError, "optimizer must be one of adamw, adam, sgd, muon"),
        ("momentum", 1.0, ValueError, r"momentum must be a finite number in \[0, 1\)"),
        ("muon_lr", 0.0, ValueError, "muon_lr must be a finite number > 0"),
        ("muon_ns_steps", 0, ValueError, "muon_ns_steps must be an integer >= 1"),
    ],
)
def test_train_config_errors_name_the_field(field, value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        tiny_train_config(**{field: value})


def test_gradient_accumulation_equals_one_big_batch(small_corpus):
    t = trainer(small_corpus)
    g = torch.Generator().manual_seed(0)
    from lib.data import get_batch

    x, y = get_batch(small_corpus.train, 8, 16, g)
    t.model.zero_grad()
    big_loss = t.accumulate_gradients([(x, y)])
    big = [p.grad.clone() for p in t.model.parameters()]
    t.model.zero_grad()
    small_loss = t.accumulate_gradients([(x[i:i + 2], y[i:i + 2]) for i in range(0, 8, 2)])
    small = [p.grad.clone() for p in t.model.parameters()]
    assert abs(big_loss.item() - small_loss.item()) < 1e-6
    assert max((a - b).abs().max().item() for a, b in zip(big, small)) <= 1e-6


def test_training_lowers_the_loss_and_records_history(small_corpus):
    t = trainer(small_corpus, max_steps=60, lr=1e-2)
    history = t.run()
    evals = history["eval"]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 60
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5
    row = history["train"][-1]
    assert set(row) == {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_sec", "elapsed", "mfu"}
    assert row["tokens"] == 60 * 8 * 16
    assert [r["step"] for r in history["train"]] == list(range(5, 61, 5))
    assert all(r["tokens_per_sec"] > 0 and 0 < r["mfu"] < 1.5 for r in history["train"])
    assert history["train"][0]["lr"] == pytest.approx(1e-2)  # logged at step 5: the lr of step 4, end of warmup


def test_same_seed_same_trajectory_bit_for_bit(small_corpus):
    a = trainer(small_corpus, model_overrides={"dropout": 0.1}).run()
    b = trainer(small_corpus, model_overrides={"dropout": 0.1}).run()
    assert losses(a) == losses(b)
    assert [r["val_loss"] for r in a["eval"]] == [r["val_loss"] for r in b["eval"]]
    c = trainer(small_corpus, model_overrides={"dropout": 0.1}, seed=1).run()
    assert losses(a) != losses(c)


def test_evaluation_is_in_eval_mode_and_restores_train_mode(small_corpus):
    t = trainer(small_corpus, model_overrides={"dropout": 0.5})
    t.model.train()
    batches = t.eval_sets["val"]
    first = estimate_loss(t.model, batches, t.device)
    assert t.model.training
    assert estimate_loss(t.model, batches, t.device) == first  # no dropout: deterministic
    t.model.eval()
    estimate_loss(t.model, batches, t.device)
    assert not t.model.training


def test_callback_every_n_steps(small_corpus):
    seen = []
    trainer(small_corpus, max_steps=20).run(callback=lambda tr: seen.append(tr.step), callback_interval=7)
    assert seen == [0, 7, 14]  # once before the first step, then every 7 steps


def test_time_budget_stops_training(small_corpus):
    t = trainer(small_corpus, max_steps=100_000, warmup_steps=0, max_time=1.0, eval_interval=1000)
    history = t.run()
    assert 0 < t.step < 100_000 and t.elapsed >= 1.0
    assert history["eval"][-1]["step"] == t.step  # evaluated where it stopped


def test_time_budget_ends_the_schedule_when_time_runs_out(small_corpus):
    """With max_time, the LR schedule runs on time as well as steps: a run that can take only
    a fraction of its max_steps still decays to the schedule's floor by the deadline."""
    t = trainer(small_corpus, max_steps=100_000, warmup_steps=10, max_time=1.5, eval_interval=1000,
                log_interval=1, schedule="cosine", min_lr_ratio=0.1, lr=1e-2)
    t.run()
    rows = t.history["train"]
    lrs = [r["lr"] for r in rows]
    assert t.step < 10_000 and t.elapsed >= 1.5  # stopped by time, far from max_steps
    assert lrs[len(lrs) // 4] > 0.5e-2  # still high a quarter of the way through the time
    # The last step's LR is the schedule's at the share of the time spent before that step,
    # at least rows[-2]["elapsed"]: whatever the machine's speed, the LR follows the clock.
    assert lrs[-1] <= t.lr_at(t.config.max_steps * rows[-2]["elapsed"] / 1.5) + 1e-12
    assert lrs[-1] < t.lr_at(t.config.max_steps * 0.5)  # past the middle of the decay
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # and decaying all along, after warmup


def test_without_a_time_budget_the_schedule_follows_the_steps(small_corpus):
    t = trainer(small_corpus, max_steps=20, warmup_steps=0, schedule="linear", min_lr_ratio=0.0,
                log_interval=1)
    t.run()
    assert [r["lr"] for r in t.history["train"]] == pytest.approx([3e-3 * (1 - s / 20) for s in range(20)])


def test_compiled_model_trains_like_the_eager_one(small_corpus):
    """compile="on" (the default on CUDA) runs the same model through torch.compile: same
    parameters, same losses up to float rounding; the saved weights are the plain model's."""
    eager = trainer(small_corpus, max_steps=4, warmup_steps=0, log_interval=1, compile="off")
    compiled = trainer(small_corpus, max_steps=4, warmup_steps=0, log_interval=1, compile="on")
    assert compiled.compiled is not compiled.model and eager.compiled is eager.model
    assert losses(compiled.run()) == pytest.approx(losses(eager.run()), abs=1e-4)
    assert compiled.history["eval"][-1]["val_loss"] == pytest.approx(
        eager.history["eval"][-1]["val_loss"], abs=1e-4)
    assert all(not k.startswith("_orig_mod") for k in compiled.state_dict()["model"])


def test_gradient_clipping_caps_the_update(small_corpus):
    t = trainer(small_corpus, grad_clip=1e-3, max_steps=3, warmup_steps=0)
    t.run()
    assert all(r["grad_norm"] > 1e-3 for r in t.history["train"])  # norms are logged before clipping


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(small_corpus, tmp_path):
    def poison(tr):
        if tr.step != 3:
            return
        with torch.no_grad():
            tr.model.transformer.wte.weight.fill_(float("nan"))

    t = trainer(small_corpus, checkpoint_interval=2, out_dir=str(tmp_path), lr=1e-3)
    with pytest.raises(TrainingDiverged, match=r"step 3 \(lr [0-9.e-]+\).*lower peak lr"):
        t.run(callback=poison, callback_interval=3)
    state = ckpt.load_checkpoint(tmp_path)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_interrupted_and_resumed_run_is_identical(small_corpus, tmp_path, optimizer):
    full = trainer(small_corpus, model_overrides={"dropout": 0.1}, optimizer=optimizer).run()

    class Stop(Exception):
        pass

    def stop(tr):
        if tr.step == 15:
            raise Stop

    t = trainer(small_corpus, model_overrides={"dropout": 0.1}, checkpoint_interval=10,
                out_dir=str(tmp_path), optimizer=optimizer)
    with pytest.raises(Stop):
        t.run(callback=stop, callback_interval=15)  # dies at step 15, after the checkpoint of step 10
    resumed = Trainer.resume(tmp_path, small_corpus.train, small_corpus.val)
    assert resumed.step == 10
    history = resumed.run()
    assert losses(history) == losses(full)
    assert [r["val_loss"] for r in history["eval"]] == [r["val_loss"] for r in full["eval"]]
    assert resumed.tokenizer.chars == small_corpus.tokenizer.chars


@pytest.mark.parametrize("optimizer, lr", [("adamw", 3e-3), ("adam", 3e-3), ("sgd", 0.3),
                                           ("muon", 3e-3)])
def test_every_optimizer_lowers_the_loss(small_corpus, optimizer, lr):
    t = trainer(small_corpus, optimizer=optimizer, lr=lr, max_steps=60)
    history = t.run()
    first, last = history["eval"][0]["val_loss"], history["eval"][-1]["val_loss"]
    assert last < first - 0.3, (optimizer, first, last)


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest(small_corpus):
    t = trainer(small_corpus, optimizer="muon", lr=2e-3, muon_lr=2e-2, max_steps=30)
    muon, adamw = t.optimizer.parts["muon"], t.optimizer.parts["adamw"]
    hidden, rest = t.model.hidden_matrices()
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    assert [id(p) for g in muon.param_groups for p in g["params"]] == [id(p) for p in hidden]
    assert {id(p) for g in adamw.param_groups for p in g["params"]} == {id(p) for p in rest}
    assert {id(p) for p in t.model.transformer.wte.parameters()} <= {id(p) for p in rest}
    for _ in range(10):  # in warmup: both parts scaled by the same factor of their own peak
        t.train_step()
        lrs = [g["lr"] for g in t.optimizer.param_groups]
        assert lrs[0] / lrs[-1] == pytest.approx(10.0)
        assert lrs[-1] == pytest.approx(t.lr_at(t.step - 1))


def test_resume_with_another_optimizer_is_refused(small_corpus, tmp_path):
    trainer(small_corpus, max_steps=2, warmup_steps=0, out_dir=str(tmp_path), optimizer="muon").run()
    with pytest.raises(ckpt.CheckpointError, match="optimizer='muon'.*--optimizer muon"):
        Trainer.resume(tmp_path, small_corpus.train, small_corpus.val, optimizer="adamw")


def test_resume_can_extend_a_finished_run(small_corpus, tmp_path):
    t = trainer(small_corpus, max_steps=10, warmup_steps=0, out_dir=str(tmp_path))
    t.run()
    more = Trainer.resume(tmp_path, small_corpus.train, small_corpus.val, max_steps=20)
    more.run()
    assert more.step == 20 and more.history["eval"][-1]["step"] == 20


def test_checkpoint_of_another_model_is_refused(small_corpus, tmp_path):
    trainer(small_corpus, max_steps=2, warmup_steps=0, out_dir=str(tmp_path)).run()
    other = trainer(small_corpus, model_overrides={"n_embd": 64})
    with pytest.raises(ckpt.CheckpointError, match="different model"):
        other.load_state_dict(ckpt.load_checkpoint(tmp_path))


def test_too_small_corpus_is_refused(small_corpus):
    with pytest.raises(ValueError, match="fewer than one window"):
        Trainer(tiny_model_config(small_corpus.tokenizer.vocab_size), tiny_train_config(),
                small_corpus.train, small_corpus.val[:10])


def test_vocab_smaller_than_tokenizer_is_refused(small_corpus):
    with pytest.raises(ValueError, match="vocab_size"):
        Trainer(tiny_model_config(5), tiny_train_config(), small_corpus.train, small_corpus.val,
                small_corpus.tokenizer)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda_in_bf16(small_corpus):
    t = trainer(small_corpus, device="cuda", max_steps=30, lr=1e-2)
    assert t.dtype == torch.bfloat16
    history = t.run()
    assert history["eval"][-1]["val_loss"] < history["eval"][0]["val_loss"]
    assert all(math.isfinite(r["loss"]) for r in history["train"])


def test_split_loss_covers_the_whole_split(small_corpus):
    from lib.evaluation import split_loss
    from lib.data import WindowDataset
    from lib.model import lm_loss

    t = trainer(small_corpus)
    data = small_corpus.val
    windows = WindowDataset(data, 16)
    manual = sum(lm_loss(t.model.eval()(x[None]), y[None]).item() for x, y in windows) / len(windows)
    assert split_loss(t.model, data, batch_size=7) == pytest.approx(manual, rel=1e-5)


def test_sample_recorder_leaves_the_trajectory_alone(small_corpus):
    from lib.sampling import sample_recorder

    plain = trainer(small_corpus, model_overrides={"dropout": 0.1}).run()
    t = trainer(small_corpus, model_overrides={"dropout": 0.1})
    recorded = t.run(callback=sample_recorder(small_corpus.tokenizer, "The ", 20), callback_interval=10)
    assert losses(plain) == losses(recorded)
    assert [s["step"] for s in recorded["samples"]] == [0, 10, 20, 30]
    assert all(len(s["text"]) == 20 for s in recorded["samples"])


def test_measuring_the_peak_leaves_the_random_state_alone(small_corpus):
    """The first run in a process measures the machine's peak; that must not change its losses."""
    import lib.device as lt

    lt._PEAK.clear()
    first = trainer(small_corpus, model_overrides={"dropout": 0.1}).run()  # measures the peak
    second = trainer(small_corpus, model_overrides={"dropout": 0.1}).run()  # uses the cached peak
    assert losses(first) == losses(second)


def test_two_trainers_loaded_from_one_state_do_not_share_history(small_corpus, tmp_path):
    trainer(small_corpus, max_steps=4, warmup_steps=0, out_dir=str(tmp_path)).run()
    state = ckpt.load_checkpoint(tmp_path)
    a = trainer(small_corpus, max_steps=8, warmup_steps=0)
    b = trainer(small_corpus, max_steps=8, warmup_steps=0)
    a.load_state_dict(state)
    b.load_state_dict(state)
    before = len(state["history"]["train"])
    a.run()
    assert len(a.history["train"]) > before
    assert len(b.history["train"]) == len(state["history"]["train"]) == before


def test_measured_peak_is_positive_and_cached():
    import lib.device as lt

    lt._PEAK.clear()
    peak = lt.measured_peak_flops(torch.device("cpu"), seconds=0.05, trials=2)
    assert peak > 1e8  # any CPU multiplies faster than 0.1 GFLOP/s
    assert lt.measured_peak_flops(torch.device("cpu")) == peak  # measured once per process


def test_steps_in_time_counts_the_steps_and_evaluations_that_fit(monkeypatch):
    """With a step that takes 10 ms and an evaluation that takes 50 ms, one second every 10
    steps holds 11 evaluations (0.55 s) and 45 steps; max_steps is a quarter more."""
    import time as clock

    from lib.course import PRESETS
    from lib.trainer import STEP_MARGIN, Trainer, steps_in_time

    monkeypatch.setattr(Trainer, "train_step", lambda self: clock.sleep(0.01))
    monkeypatch.setattr(Trainer, "evaluate", lambda self: clock.sleep(0.05))
    model_config, config = PRESETS["shakespeare-char-mini"]
    config = dataclasses.replace(config, eval_interval=10, warmup_steps=5, device="cpu")
    data = torch.randint(model_config.vocab_size, (10_000,))
    steps = steps_in_time(model_config, config, data, data[:2_000], 1.0)
    assert steps == pytest.approx(STEP_MARGIN * 45, rel=0.25)  # sleep overshoots a little
    # A budget too short for its evaluations still leaves the warmup and a step after it.
    assert steps_in_time(model_config, config, data, data[:2_000], 0.01) == 6
    with pytest.raises(ValueError, match="seconds must be a finite number > 0"):
        steps_in_time(model_config, config, data, data[:2_000], 0.0)


def test_float16_trains_with_a_gradient_scaler_that_is_saved_and_resumed_exactly(small_corpus,
                                                                                 tmp_path):
    """float16 autocast (what older GPUs such as Colab's T4 get) scales the loss; the scale is
    part of the checkpoint, so a resumed run continues bit for bit (on the CPU)."""
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    config = tiny_train_config(max_steps=12, warmup_steps=2, dtype="float16")
    full = Trainer(mc, config, small_corpus.train, small_corpus.val)
    full.run()
    assert full.scaler.is_enabled() and full.dtype == torch.float16
    stopped = Trainer(mc, dataclasses.replace(config, out_dir=str(tmp_path)), small_corpus.train,
                      small_corpus.val)
    stopped.run(callback=lambda t: t.step == 5 and t.request_stop("a test"), callback_interval=1)
    assert ckpt.load_checkpoint(tmp_path)["scaler"]["scale"] == stopped.scaler.get_scale() > 0
    resumed = Trainer.resume(tmp_path, small_corpus.train, small_corpus.val)
    resumed.run()
    assert [r["loss"] for r in resumed.history["train"]] == [r["loss"] for r in full.history["train"]]
    assert resumed.scaler.get_scale() == full.scaler.get_scale()
    plain = Trainer(mc, tiny_train_config(max_steps=2, warmup_steps=1), small_corpus.train,
                    small_corpus.val)
    assert not plain.scaler.is_enabled() and plain.state_dict()["scaler"] == {}


def test_a_float16_overflow_skips_the_step_and_lowers_the_scale(small_corpus):
    """An inf gradient under a loss scale is the scale's overflow, not a diverged run."""
    mc = tiny_model_config(small_corpus.tokenizer.vocab_size)
    trainer = Trainer(mc, tiny_train_config(max_steps=3, warmup_steps=1, dtype="float16"), small_corpus.train,
                      small_corpus.val)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)  # float16 overflows at 65504
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step()
    assert trainer.scaler.get_scale() < 2.0**120  # lowered ...
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # ... step skipped


def test_a_long_run_saves_every_few_minutes_of_training(tmp_path, monkeypatch):
    """checkpoint_minutes (5 by default): a run saves when that much training time has passed
    since its last save, so SIGKILL or the out-of-memory killer loses at most that much."""
    import dataclasses as dc

    from lib.data import CharTokenizer
    from lib.model import GPTConfig
    from lib.trainer import TrainConfig, Trainer

    tok = CharTokenizer.from_text("abcdefgh")
    ids = torch.tensor(tok.encode("abcdefgh" * 50))
    config = TrainConfig(max_steps=6, batch_size=2, warmup_steps=0, eval_interval=100,
                         eval_batches=1, out_dir=str(tmp_path), progress=False, device="cpu")
    assert config.checkpoint_minutes == 5.0
    model = GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=1, n_embd=8)
    trainer = Trainer(model, dc.replace(config, checkpoint_minutes=0.5), ids, ids, tok)
    saves = []
    monkeypatch.setattr(trainer, "save", lambda path: saves.append(trainer.step))
    inner = trainer.train_step

    def slow_step():  # each step "takes" 20 s of training time
        out = inner()
        trainer.elapsed += 20.0
        return out
    monkeypatch.setattr(trainer, "train_step", slow_step)
    trainer.run()
    assert saves == [2, 4, 6, 6]  # every 30 s of training (steps 2, 4, 6), then the final save
