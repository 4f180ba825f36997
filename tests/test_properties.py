"""Bad input, tried systematically: property-based tests with hypothesis.

The property, for every public entry point that takes settings from a learner: any input
either works (and then the result is sound) or raises a ValueError/TypeError whose message
names the setting and says what is allowed. Never an error from deep inside torch, never a
hang, never a silently wrong result.

Each test tries `EXAMPLES` inputs; hypothesis keeps the failing ones in `.hypothesis/` and
shrinks them to the smallest example, which is what a failure prints.
"""

import dataclasses
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.data import CharTokenizer
from lib.device import memory_budget_bytes
from lib.model import GPT, GPTConfig
from lib.sampling import check_sampling_args, filter_probs, generate, sample_next
from lib.schedules import SCHEDULES, get_schedule
from lib.trainer import TrainConfig, Trainer

from helpers import tiny_model_config

EXAMPLES = 300
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Anything a learner might type or a program might pass: wrong types, edge numbers, NaN, inf.
ANYTHING = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6),
    st.integers(-3, 3), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0), st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1e-300, 1e300, 2**63, -1]),
    st.lists(st.integers(), max_size=2),
)


def says_what_is_allowed(message: str) -> bool:
    return any(word in message for word in ("must", "choose one of", "use one of", "Unknown"))


# --------------------------------------------------------------------------- GPTConfig

@st.composite
def small_gpt_kwargs(draw):
    n_head = draw(st.integers(1, 4))
    return dict(
        vocab_size=draw(st.integers(1, 80)),
        block_size=draw(st.integers(1, 24)),
        n_layer=draw(st.integers(1, 2)),
        n_head=n_head,
        n_embd=n_head * draw(st.integers(1, 8)),
        dropout=draw(st.floats(0.0, 0.95)),
        bias=draw(st.booleans()),
        layer_norm_eps=draw(st.floats(1e-8, 0.5)),
    )


GPT_FIELDS = [f.name for f in dataclasses.fields(GPTConfig)]


def check_small_model_runs(config: GPTConfig) -> None:
    model = GPT(config)
    T = min(config.block_size, 8)
    idx = torch.randint(config.vocab_size, (2, T), generator=torch.Generator().manual_seed(0))
    logits = model(idx)
    assert logits.shape == (2, T, config.vocab_size)
    assert torch.isfinite(logits).all()


@PROPERTY
@given(base=small_gpt_kwargs(), field=st.sampled_from(GPT_FIELDS), value=ANYTHING)
def test_gpt_config_one_bad_field_is_named(base, field, value):
    try:
        config = GPTConfig(**{**base, field: value})
    except (ValueError, TypeError) as err:
        named = {field} | ({"n_embd", "n_head"} if field in ("n_embd", "n_head") else set())
        assert any(f"GPTConfig.{name}" in str(err) or f"{name} (" in str(err) for name in named), err
        assert says_what_is_allowed(str(err)), err
        return
    if GPT.estimate_parameters_unchecked(config) <= 200_000:
        check_small_model_runs(config)


@PROPERTY
@given(kwargs=st.fixed_dictionaries({}, optional={name: ANYTHING for name in GPT_FIELDS}))
def test_gpt_config_any_input_works_or_is_refused_clearly(kwargs):
    try:
        config = GPTConfig(**kwargs)
    except (ValueError, TypeError) as err:
        assert "GPTConfig." in str(err) and says_what_is_allowed(str(err)), err
        return
    assert config == GPTConfig.from_dict(config.to_dict())


@PROPERTY
@given(n_embd=st.integers(1, 10**7), n_layer=st.integers(1, 10**4), vocab=st.integers(1, 10**7),
       block=st.integers(1, 10**7))
def test_a_model_too_big_for_memory_is_refused_before_allocating(n_embd, n_layer, vocab, block):
    config = GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=1, n_embd=n_embd)
    n = GPT.estimate_parameters_unchecked(config)
    if n * 16 > memory_budget_bytes(torch.device("cpu")):  # refused before the model is built
        with pytest.raises(ValueError, match="parameters needs about"):
            Trainer(config, TrainConfig(device="cpu", progress=False), torch.zeros(10**4, dtype=torch.long),
                    torch.zeros(10**4, dtype=torch.long))


def test_parameter_estimate_is_exact():
    for kw in [dict(), dict(bias=False), dict(n_layer=1, n_head=1, n_embd=8, vocab_size=3, block_size=2)]:
        config = GPTConfig(**kw)
        assert GPT.estimate_parameters_unchecked(config) == sum(p.numel() for p in GPT(config).parameters())


# --------------------------------------------------------------------------- TrainConfig

TRAIN_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
SMALL_TRAIN = dict(max_steps=3, batch_size=2, warmup_steps=1, eval_interval=2, eval_batches=1,
                   log_interval=1, device="cpu", progress=False)


@PROPERTY
@given(field=st.sampled_from(TRAIN_FIELDS), value=ANYTHING)
def test_train_config_one_bad_field_is_named(field, value):
    try:
        TrainConfig(**{**SMALL_TRAIN, field: value})
    except (ValueError, TypeError) as err:
        named = {field} | ({"max_steps", "warmup_steps", "decay_fraction"}
                           if field in ("max_steps", "warmup_steps", "decay_fraction") else set())
        assert any(f"TrainConfig.{name}" in str(err) for name in named), err
        assert says_what_is_allowed(str(err)), err


@PROPERTY
@given(kwargs=st.fixed_dictionaries({}, optional={name: ANYTHING for name in TRAIN_FIELDS}))
def test_train_config_any_input_works_or_is_refused_clearly(kwargs):
    try:
        config = TrainConfig(**kwargs)
    except (ValueError, TypeError) as err:
        assert "TrainConfig." in str(err) and says_what_is_allowed(str(err)), err
        return
    assert config == TrainConfig.from_dict(config.to_dict())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    lr=st.floats(1e-6, 1.0), schedule=st.sampled_from(sorted(SCHEDULES)),
    min_lr_ratio=st.floats(0.0, 1.0), beta1=st.floats(0.0, 0.999), beta2=st.floats(0.0, 0.999),
    weight_decay=st.floats(0.0, 1.0), grad_clip=st.floats(0.0, 5.0), seed=st.integers(0, 2**32 - 1),
    grad_accum_steps=st.integers(1, 2), dtype=st.sampled_from(["auto", "float32", "bfloat16"]),
    optimizer=st.sampled_from(["adamw", "adam", "sgd", "muon"]), momentum=st.floats(0.0, 0.999),
    muon_lr=st.floats(1e-6, 1.0), muon_ns_steps=st.integers(1, 6),
)
def test_every_accepted_train_config_trains(small_corpus, **kw):
    """Valid settings, however odd, train for a few steps and evaluate to finite numbers."""
    config = TrainConfig(**{**SMALL_TRAIN, "decay_fraction": 0.5, **kw})
    model_config = tiny_model_config(small_corpus.tokenizer.vocab_size, n_layer=1, n_embd=16)
    trainer = Trainer(model_config, config, small_corpus.train, small_corpus.val, small_corpus.tokenizer)
    history = trainer.run()
    assert trainer.step == 3
    assert all(math.isfinite(row["val_loss"]) for row in history["eval"])


# --------------------------------------------------------------------------- schedules

@PROPERTY
@given(name=st.one_of(st.sampled_from(sorted(SCHEDULES)), ANYTHING),
       total=st.one_of(st.integers(1, 5000), ANYTHING), warmup=st.one_of(st.integers(0, 500), ANYTHING),
       min_lr_ratio=st.one_of(st.floats(0.0, 1.0), ANYTHING), decay=st.one_of(st.floats(0.01, 1.0), ANYTHING))
def test_schedules_work_or_name_the_bad_setting(name, total, warmup, min_lr_ratio, decay):
    try:
        f = get_schedule(name, total, warmup, min_lr_ratio, decay)
    except (ValueError, TypeError) as err:
        assert any(word in str(err) for word in
                   ("schedule", "max_steps", "warmup_steps", "min_lr_ratio", "decay_fraction")), err
        assert says_what_is_allowed(str(err)), err
        return
    steps = sorted({0, total - 1, warmup, min(warmup + 1, total - 1), total // 2, total, 2 * total})
    values = [f(s) for s in steps]
    assert all(math.isfinite(v) and 0.0 < v <= 1.0 + 1e-12 or (v == 0.0 and min_lr_ratio == 0.0)
               for v in values), (steps, values)
    after = [v for s, v in zip(steps, values) if warmup <= s]
    if name != "constant":  # past warmup, no schedule ever raises the LR again
        assert all(a >= b - 1e-12 for a, b in zip(after, after[1:])), (steps, values)
        assert min(after, default=1.0) >= min_lr_ratio - 1e-12


# --------------------------------------------------------------------------- sampling

SAMPLING_ARGS = dict(
    temperature=st.one_of(st.floats(0.0, 10.0), st.sampled_from([1e-300, 1e-45, 1e-8, 1e30]), ANYTHING),
    top_k=st.one_of(st.none(), st.integers(1, 12), ANYTHING),
    top_p=st.one_of(st.none(), st.floats(1e-9, 1.0), ANYTHING),
)
LOGITS = st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=10).map(
    lambda xs: torch.tensor(xs, dtype=torch.float32))


@PROPERTY
@given(logits=LOGITS, **SAMPLING_ARGS)
def test_sampling_gives_a_distribution_or_names_the_bad_setting(logits, temperature, top_k, top_p):
    try:
        check_sampling_args(temperature, top_k, top_p)
    except (ValueError, TypeError) as err:
        assert any(word in str(err) for word in ("temperature", "top_k", "top_p")), err
        assert says_what_is_allowed(str(err)), err
        return
    probs = filter_probs(logits, temperature, top_k, top_p)
    assert torch.isfinite(probs).all() and (probs >= 0).all(), probs
    assert abs(probs.sum().item() - 1.0) < 1e-5, probs
    before = filter_probs(logits, temperature)  # before top-k and top-p
    assert probs[before == before.max()].sum() > 0  # a most likely token survives the filters
    token = sample_next(logits, temperature, top_k, top_p, torch.Generator().manual_seed(0))
    assert probs[token] > 0


@PROPERTY
@given(logits=st.lists(st.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, 3.0]),
                       min_size=1, max_size=6).map(torch.tensor))
def test_non_finite_logits_are_refused_clearly(logits):
    usable = not torch.isnan(logits).any() and not (logits == float("inf")).any() \
        and torch.isfinite(logits).any()
    if usable:
        assert abs(filter_probs(logits).sum().item() - 1) < 1e-6
    else:
        with pytest.raises(ValueError, match="logits"):
            sample_next(logits)


# --------------------------------------------------------------------------- text in, text out

@PROPERTY
@given(text=st.text(max_size=30))
def test_tokenizer_encodes_what_it_knows_and_names_what_it_does_not(text):
    tok = CharTokenizer.from_text("abc ABC\n.,!")
    try:
        ids = tok.encode(text)
    except ValueError as err:
        unknown = next(ch for ch in text if ch not in tok.stoi)
        assert repr(unknown) in str(err), err
        return
    assert tok.decode(ids) == text


@PROPERTY
@given(ids=st.lists(st.one_of(st.integers(-5, 20), ANYTHING), max_size=5))
def test_decoding_bad_ids_is_refused_clearly(ids):
    tok = CharTokenizer.from_text("abc")
    try:
        text = tok.decode(ids)
    except (ValueError, TypeError) as err:
        assert "token" in str(err) or "id" in str(err), err
        return
    assert len(text) == len(ids)


@settings(max_examples=60, deadline=None)
@given(prompt_len=st.integers(0, 60),  # asking for 2**70 tokens is honoured, slowly: not tried
       new=st.one_of(st.integers(0, 5), ANYTHING.filter(lambda v: not isinstance(v, int) or v < 100)))
def test_generate_with_any_prompt_length(prompt_len, new):
    config = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8)
    model = GPT(config)
    idx = torch.zeros((1, prompt_len), dtype=torch.long)
    try:
        out = generate(model, idx, new, generator=torch.Generator().manual_seed(0))
    except (ValueError, TypeError) as err:  # a wrong type is a TypeError (lib.checks)
        assert "prompt" in str(err) or "max_new_tokens" in str(err), err
        assert prompt_len == 0 or not (isinstance(new, int) and not isinstance(new, bool) and new >= 0)
        return
    assert out.shape == (1, prompt_len + new)  # longer prompts than the context are cropped
