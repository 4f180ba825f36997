"""The architecture switches (RoPE, RMSNorm, SwiGLU, QK-norm, bias) and the KV cache: every
combination builds, counts its parameters exactly, is causal, and generates the same tokens with
and without the cache; checkpoints record the architecture."""

import itertools

import pytest
import torch

from lib import checkpoint as ckpt
from lib.blocks import KVCache, apply_rope, rope_tables, swiglu_width
from lib.model import ARCHS, GPT, GPTConfig
from lib.sampling import generate

TINY = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)
SWITCHES = [dict(zip(("position", "norm", "mlp", "qk_norm", "bias"), values)) for values in
            itertools.product(("learned", "rope"), ("layernorm", "rmsnorm"), ("gelu", "swiglu"),
                              (False, True), (True, False))]


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**TINY, **overrides}))


def test_the_defaults_are_gpt2_and_modern_is_one_word():
    assert GPTConfig().arch == "gpt2"
    modern = GPTConfig(**TINY).with_arch("modern")
    assert modern.arch == "modern" and modern.n_embd == 32
    assert (modern.position, modern.norm, modern.mlp, modern.qk_norm, modern.bias) == (
        "rope", "rmsnorm", "swiglu", True, False)
    assert modern.with_arch("gpt2") == GPTConfig(**TINY)
    assert GPTConfig(position="rope").arch == "position=rope, norm=layernorm, mlp=gelu, qk_norm=False, bias=True"
    with pytest.raises(ValueError, match="arch must be one of gpt2, modern"):
        GPTConfig().with_arch("llama")


@pytest.mark.parametrize("field, value, pattern", [
    ("position", "alibi", "GPTConfig.position must be one of learned, rope"),
    ("norm", "batchnorm", "GPTConfig.norm must be one of layernorm, rmsnorm"),
    ("mlp", "relu", "GPTConfig.mlp must be one of gelu, swiglu"),
])
def test_switch_errors_name_the_field(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        GPTConfig(**{field: value})
    with pytest.raises(TypeError, match="GPTConfig.qk_norm must be True or False"):
        GPTConfig(qk_norm=1)


def test_rope_needs_an_even_head_width():
    with pytest.raises(ValueError, match="even width; n_embd // n_head is 3"):
        GPTConfig(n_embd=6, n_head=2, position="rope")


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "-".join(map(str, s.values())))
def test_every_combination_counts_its_parameters_exactly_and_is_causal(switches):
    model = tiny(**switches).eval()
    c = model.config
    assert model.num_parameters() == GPT.estimate_parameters_unchecked(c)
    assert sum(model.parameter_breakdown().values()) == model.num_parameters()
    assert ("transformer.wpe.weight" in model.state_dict()) == (c.position == "learned")
    assert not any(n.endswith(".bias") for n in model.state_dict()) or c.bias
    hidden, rest = model.hidden_matrices()
    assert len(hidden) == c.n_layer * (4 + (c.mlp == "swiglu"))
    idx = torch.randint(50, (1, 16))
    base = model(idx)
    changed = idx.clone()
    changed[0, 9] = (changed[0, 9] + 1) % 50
    out = model(changed)
    assert torch.equal(out[0, :9], base[0, :9]) and not torch.allclose(out[0, 9], base[0, 9])


def test_swiglu_keeps_the_parameter_count_within_one_percent_at_the_presets_widths():
    for d in (96, 128, 384, 768):  # the widths of the course's presets and of GPT-2
        gelu = GPT.estimate_parameters_unchecked(GPTConfig(n_embd=d, n_head=4))
        swiglu = GPT.estimate_parameters_unchecked(GPTConfig(n_embd=d, n_head=4, mlp="swiglu"))
        assert abs(swiglu / gelu - 1) < 0.01, d
    for d in range(1, 300):  # 8d/3 rounded to the nearest multiple of 8
        assert swiglu_width(d) % 8 == 0 and abs(swiglu_width(d) - 8 * d / 3) <= 4 + 8 * (d < 2)


def test_rope_scores_depend_on_the_distance_only():
    """q at position m and k at position n, rotated: their dot product is that of q at m + s and
    k at n + s for every shift s, and differs at another distance."""
    torch.manual_seed(0)
    cos, sin = rope_tables(8, 40)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        return (apply_rope(q, cos[m:m + 1], sin[m:m + 1]) * apply_rope(k, cos[n:n + 1], sin[n:n + 1])).sum()

    assert torch.allclose(score(5, 2), score(35, 32), atol=1e-5)
    assert torch.allclose(score(7, 7), (q * k).sum(), atol=1e-5)  # distance 0: no rotation
    assert not torch.allclose(score(5, 2), score(5, 1), atol=1e-3)


def test_rmsnorm_is_layernorm_without_the_mean():
    x = torch.randn(4, 32) + 3.0
    rms = torch.nn.RMSNorm(32, eps=1e-5)
    ln = torch.nn.LayerNorm(32, eps=1e-5)
    assert torch.allclose(rms(x - x.mean(-1, keepdim=True)), ln(x), atol=1e-5)
    assert not torch.allclose(rms(x), ln(x), atol=1e-2)


@pytest.mark.parametrize("switches", [ARCHS["gpt2"], ARCHS["modern"], *SWITCHES[1::5]],
                         ids=lambda s: "-".join(map(str, s.values())))
def test_the_cache_gives_the_logits_of_the_whole_context(switches):
    model = tiny(**switches).eval()
    idx = torch.randint(50, (2, 16))
    full = model(idx)
    cache = model.new_cache()
    parts = [model(idx[:, :5], cache), model(idx[:, 5:6], cache), model(idx[:, 6:12], cache),
             *(model(idx[:, t:t + 1], cache) for t in range(12, 16))]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="longer than the model's block_size 16"):
        model(idx[:, :1], cache)


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("prompt_len", [1, 7, 16, 23])
def test_generation_with_and_without_the_cache_gives_the_same_tokens(switches, prompt_len):
    """The prompt of 23 is longer than the context (16), and 30 new tokens slide the window of
    every prompt: the cache is rebuilt there, and the tokens stay the same."""
    model = tiny(seed=1, **switches)
    model.train()
    prompt = torch.randint(50, (2, prompt_len), generator=torch.Generator().manual_seed(2))
    outs = [generate(model, prompt, 30, generator=torch.Generator().manual_seed(3), use_cache=c)
            for c in (True, False)]
    assert torch.equal(outs[0], outs[1])
    assert model.training  # the mode it was in, restored
    greedy = [generate(model, prompt, 30, temperature=0, use_cache=c) for c in (True, False)]
    assert torch.equal(greedy[0], greedy[1])


def test_cache_memory_is_two_vectors_per_layer_and_token():
    model = tiny(**ARCHS["modern"]).eval()
    cache = model.new_cache()
    model(torch.randint(50, (3, 5)), cache)
    c = model.config
    per_token = 2 * c.n_layer * c.n_embd * 4  # key and value, every block, float32
    assert cache.nbytes() == per_token * c.block_size * 3
    assert cache.length == 5
    cache.reset()
    assert cache.length == 0 and cache.nbytes() == per_token * c.block_size * 3


def test_a_full_cache_says_what_to_do():
    cache = KVCache(n_layer=1, capacity=4)
    cache.update(0, torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 3, 2))
    cache.advance(3)
    with pytest.raises(ValueError, match="holds 4 positions .* reset it"):
        cache.update(0, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))


def test_attention_weights_follow_the_switches():
    model = tiny(**ARCHS["modern"]).eval()
    idx = torch.randint(50, (1, 12))
    w = model.attention_weights(idx, layer=0)
    assert w.shape == (1, 2, 12, 12)
    assert torch.allclose(w.sum(-1), torch.ones(1, 2, 12))
    # the pattern written out is the one the fused attention applies: recompute block 0's output
    block = model.transformer.h[0]
    x, rope = model._embed(idx)
    _, _, v = block.attn.qkv(block.ln_1(x), rope)
    y = (w @ v).transpose(1, 2).reshape(1, 12, 32)
    assert torch.allclose(block.attn.c_proj(y), block.attn(block.ln_1(x), rope), atol=1e-5)


# ---------------------------------------------------------------------- checkpoints


def _save(tmp_path, config):
    model = GPT(config)
    return ckpt.save_checkpoint({"model": model.state_dict(), "model_config": config.to_dict(),
                                 "step": 0}, tmp_path)


def test_a_checkpoint_records_its_architecture_and_loads_as_it(tmp_path):
    _save(tmp_path, GPTConfig(**TINY).with_arch("modern"))
    model, _, _ = ckpt.load_model(tmp_path, "cpu", arch="modern")
    assert model.config.arch == "modern"
    with pytest.raises(ckpt.CheckpointError, match=r"architecture modern, not gpt2: load it as modern") as err:
        ckpt.load_model(tmp_path, "cpu", arch="gpt2")
    assert "\n" not in str(err.value)


def test_weights_of_another_architecture_are_refused_in_one_line(tmp_path):
    f = _save(tmp_path, GPTConfig(**TINY))
    state = ckpt.load_checkpoint(f)
    state["model_config"] = GPTConfig(**TINY).with_arch("modern").to_dict()  # a config that lies
    ckpt.save_checkpoint(state, f)
    with pytest.raises(ckpt.CheckpointError, match="not of the architecture .* records") as err:
        ckpt.load_model(tmp_path, "cpu")
    assert "\n" not in str(err.value) and "wpe" in str(err.value)


def test_an_old_checkpoint_without_the_switches_loads_as_gpt2(tmp_path):
    f = _save(tmp_path, GPTConfig(**TINY))
    state = ckpt.load_checkpoint(f)
    for name in ("position", "norm", "mlp", "qk_norm"):
        del state["model_config"][name]
    ckpt.save_checkpoint(state, f)
    model, _, _ = ckpt.load_model(tmp_path, "cpu", arch="gpt2")
    assert model.config == GPTConfig(**TINY) and model.config.arch == "gpt2"


def test_train_cli_arch_modern_and_resume_as_another_is_refused(tmp_path):
    from lib.cli import _configs_for, train_parser

    args = vars(train_parser().parse_args(["--arch", "modern", "--n-embd", "64"]))
    assert args["arch"] == "modern"
    _save(tmp_path, GPTConfig(**TINY))
    state = ckpt.load_checkpoint(tmp_path)
    state["train_config"] = {}
    ckpt.save_checkpoint(state, tmp_path)
    with pytest.raises(ValueError, match="architecture gpt2.*--arch"):
        _configs_for({"preset": "shakespeare-char-cpu", "resume": True},
                     dict(ARCHS["modern"]), {"out_dir": str(tmp_path)})


def test_generation_cost_per_token_does_not_grow_with_the_cache():
    """Counted, not timed: with the cache each step feeds the model one token."""
    model = tiny(**ARCHS["modern"])
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].size(1)))
    generate(model, torch.randint(50, (1, 4)), 8)
    assert seen == [4] + [1] * 7
    seen.clear()
    generate(model, torch.randint(50, (1, 4)), 20)  # the window (16) fills after 12 new tokens
    assert seen == [4] + [1] * 12 + [16] * 7  # then every step reads the slid window anew
