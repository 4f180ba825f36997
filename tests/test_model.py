"""lib.model: the GPT-2 architecture, checked against first principles and against Hugging Face."""

import math

import pytest
import torch

from lib.model import GPT, GPTConfig, lm_loss

TINY = dict(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32)


def tiny(**overrides):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**TINY, **overrides}))


def test_logits_shape_in_every_mode():
    model = tiny()
    idx = torch.randint(50, (3, 10))
    assert model(idx).shape == (3, 10, 50)
    model.eval()
    assert model(idx).shape == (3, 10, 50)


def test_sequence_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size 16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        tiny()(torch.zeros(17, dtype=torch.long))


def test_causality():
    """Changing token t+1 never changes the logits at positions <= t."""
    model = tiny().eval()
    idx = torch.randint(50, (1, 16))
    base = model(idx)
    for t in range(15):
        changed = idx.clone()
        changed[0, t + 1] = (changed[0, t + 1] + 1) % 50
        out = model(changed)
        assert torch.equal(out[0, : t + 1], base[0, : t + 1])
        assert not torch.allclose(out[0, t + 1], base[0, t + 1])


def test_head_is_tied_to_token_embedding():
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" not in dict(model.named_parameters())


def test_gpt2_parameter_names():
    names = set(tiny().state_dict())
    for n in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.1.ln_1.weight",
              "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.bias",
              "transformer.h.0.ln_2.bias", "transformer.h.0.mlp.c_fc.weight",
              "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"]:
        assert n in names


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_matches_formula(bias):
    c = GPTConfig(**{**TINY, "bias": bias})
    V, T, L, d = c.vocab_size, c.block_size, c.n_layer, c.n_embd
    b = 1 if bias else 0
    per_layer = 12 * d * d + b * 9 * d + (2 + 2 * b) * d  # c_attn, c_proj, c_fc, c_proj (+ biases); 2 LayerNorms
    expected = V * d + T * d + L * per_layer + (1 + b) * d
    model = GPT(c)
    assert model.num_parameters() == expected
    parts = model.parameter_breakdown()
    assert sum(parts.values()) == expected
    assert parts["token embedding"] == V * d and parts["position embedding"] == T * d
    assert parts["attention"] == L * (4 * d * d + b * 4 * d)
    assert parts["MLP"] == L * (8 * d * d + b * 5 * d)
    assert parts["head (tied)"] == 0


def test_flops_per_token():
    model = tiny()
    c = model.config
    n = model.num_parameters() - c.block_size * c.n_embd
    assert model.flops_per_token() == 6 * n + 12 * c.n_layer * c.block_size * c.n_embd
    assert model.flops_per_token(8) < model.flops_per_token()


def test_gpt2_initialisation():
    torch.manual_seed(0)
    c = GPTConfig(vocab_size=64, block_size=64, n_layer=4, n_head=4, n_embd=256)
    model = GPT(c)
    sd = model.state_dict()
    assert abs(sd["transformer.wte.weight"].std().item() - 0.02) < 0.002
    assert abs(sd["transformer.h.0.mlp.c_fc.weight"].std().item() - 0.02) < 0.001
    scaled = 0.02 / math.sqrt(2 * c.n_layer)
    for k in ("transformer.h.0.attn.c_proj.weight", "transformer.h.3.mlp.c_proj.weight"):
        assert abs(sd[k].std().item() - scaled) < 0.1 * scaled
    assert torch.all(sd["transformer.h.0.attn.c_attn.bias"] == 0)
    assert torch.all(sd["transformer.h.0.ln_1.weight"] == 1)


def test_initial_loss_is_close_to_uniform():
    model = tiny(vocab_size=65, block_size=64)
    idx = torch.randint(65, (8, 64), generator=torch.Generator().manual_seed(1))
    tgt = torch.randint(65, (8, 64), generator=torch.Generator().manual_seed(2))
    loss = lm_loss(model(idx), tgt).item()
    assert abs(loss - math.log(65)) / math.log(65) < 0.02


def test_lm_loss_is_mean_cross_entropy():
    logits = torch.randn(2, 3, 5)
    tgt = torch.randint(5, (2, 3))
    manual = -torch.log_softmax(logits, -1).gather(-1, tgt[..., None]).mean()
    assert torch.allclose(lm_loss(logits, tgt), manual, atol=1e-6)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = tiny()
    idx = torch.randint(50, (4, 16))
    tgt = torch.randint(50, (4, 16))
    opt = torch.optim.AdamW(model.optimizer_groups(0.0), lr=3e-3)
    for _ in range(300):
        loss = lm_loss(model(idx), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.1:
            break
    assert loss.item() < 0.1


def test_optimizer_groups_decay_matrices_only():
    model = tiny()
    decay, no_decay = model.optimizer_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    # 2 embeddings + 4 matrices per layer; the tied head is the token embedding
    assert len(decay["params"]) == 2 + 4 * model.config.n_layer


def test_hidden_matrices_are_the_blocks_matrices_and_nothing_else():
    model = tiny()
    hidden, rest = model.hidden_matrices()
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(hidden) == 4 * model.config.n_layer  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    assert all(p.dim() == 2 and names[id(p)].startswith("transformer.h.") for p in hidden)
    assert {names[id(p)] for p in rest if p.dim() == 2} == {"transformer.wte.weight",
                                                            "transformer.wpe.weight"}
    ids = [id(p) for p in hidden + rest]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_dropout_only_in_training():
    model = tiny(dropout=0.5)
    idx = torch.randint(50, (2, 8))
    model.train()
    assert not torch.equal(model(idx), model(idx))
    model.eval()
    assert torch.equal(model(idx), model(idx))


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("n_embd", 33, "n_embd .*divisible by n_head"),
        ("vocab_size", 0, "vocab_size must be an integer >= 1"),
        ("block_size", -1, "block_size must be an integer >= 1"),
        ("n_layer", 0, "n_layer must be an integer >= 1"),
        ("n_head", 0, "n_head must be an integer >= 1"),
        ("dropout", 1.0, r"dropout must be a finite number in \[0, 1\)"),
        ("dropout", -0.1, r"dropout must be a finite number in \[0, 1\)"),
        ("layer_norm_eps", 0.0, "layer_norm_eps"),
    ],
)
def test_config_errors_name_the_field(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        GPTConfig(**{**TINY, field: value})


@pytest.mark.parametrize("field, value", [("n_layer", 2.0), ("n_head", True), ("bias", 1), ("dropout", "0.1")])
def test_config_type_errors_name_the_field(field, value):
    with pytest.raises(TypeError, match=field):
        GPTConfig(**{**TINY, field: value})


def test_config_round_trip_and_unknown_fields():
    c = GPTConfig(**TINY)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="n_embed"):
        GPTConfig.from_dict({**c.to_dict(), "n_embed": 3})


# --------------------------------------------------------------------------- Hugging Face parity


def hf_model():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # make biases and norms non-trivial, so the test sees them
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def test_logits_match_hugging_face_gpt2():
    hf = hf_model()
    ours = GPT.from_hf_state_dict(hf.state_dict(), GPT.config_from_hf(hf.config)).eval()
    idx = torch.randint(50, (2, 16))
    with torch.no_grad():
        diff = (ours(idx) - hf(idx).logits).abs().max().item()
    assert diff <= 1e-5


def test_weights_go_back_to_hugging_face():
    transformers = pytest.importorskip("transformers")
    hf = hf_model()
    ours = tiny()
    target = transformers.GPT2LMHeadModel(hf.config).eval()
    missing, unexpected = target.load_state_dict(ours.to_hf_state_dict(), strict=False)
    assert not unexpected and all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing)
    idx = torch.randint(50, (2, 16))
    with torch.no_grad():
        assert (ours.eval()(idx) - target(idx).logits).abs().max().item() <= 1e-5


def test_wrong_state_dict_is_refused():
    hf = hf_model()
    with pytest.raises(ValueError, match="does not match"):
        GPT.from_hf_state_dict(hf.state_dict(), GPTConfig(**{**TINY, "n_layer": 3}))
    with pytest.raises(ValueError, match="shape"):
        GPT.from_hf_state_dict(hf.state_dict(), GPTConfig(**{**TINY, "n_embd": 64}))


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_forward_on_gpu():
    model = tiny().cuda()
    idx = torch.randint(50, (2, 16), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(idx)
    ref = model(idx)
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - ref).abs().max().item() < 0.05


def test_attention_pattern_is_causal_and_matches_the_fused_attention():
    model = tiny().eval()
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 10, 32)
    pattern = attn.attention_pattern(x)
    assert pattern.shape == (2, 2, 10, 10)
    assert torch.allclose(pattern.sum(-1), torch.ones(2, 2, 10))
    assert torch.all(pattern.triu(diagonal=1) == 0)
    # pattern @ v, through c_proj, is what the fused forward computes
    v = attn.c_attn(x).split(32, dim=2)[2].view(2, 10, 2, 16).transpose(1, 2)
    y = (pattern @ v).transpose(1, 2).reshape(2, 10, 32)
    assert torch.allclose(attn.c_proj(y), attn(x), atol=1e-5)


@pytest.mark.parametrize("layer", [0, 1, -1])
def test_attention_weights_are_those_of_the_block_in_the_forward_pass(layer):
    """GPT.attention_weights(ids, layer) gives the weights block `layer` uses in forward():
    the block's output computed with them equals the block's own output."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.3))
    model.train()  # the method runs in eval mode and gives the mode back
    ids = torch.randint(0, 11, (3, 8))
    w = model.attention_weights(ids, layer)
    assert model.training and w.shape == (3, 2, 8, 8)
    assert torch.allclose(w.sum(-1), torch.ones(3, 2, 8)) and (w.triu(1) == 0).all()
    model.eval()
    with torch.no_grad():
        x = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(8))
        for block in model.transformer.h[: layer % 2]:
            x = block(x)
        attn = model.transformer.h[layer].attn
        v = attn.c_attn(model.transformer.h[layer].ln_1(x)).split(16, dim=2)[2]
        v = v.view(3, 8, 2, 8).transpose(1, 2)
        by_hand = attn.c_proj((w @ v).transpose(1, 2).reshape(3, 8, 16))
        assert torch.allclose(by_hand, attn(model.transformer.h[layer].ln_1(x)), atol=1e-5)
    with pytest.raises(ValueError, match="layer must be in"):
        model.attention_weights(ids, 2)


def test_a_model_too_big_for_this_machine_is_refused_but_can_be_counted_on_meta(monkeypatch):
    """GPT-3's shape: building it would need 650 GiB for the weights, so GPT() refuses with the
    fix; on PyTorch's meta device (shapes only, no memory) it builds, and counts as lib says."""
    from lib import device

    monkeypatch.setattr(device, "memory_budget_bytes", lambda dev: 64 * 2**30)
    config = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)
    n = GPT.estimate_parameters_unchecked(config)
    with pytest.raises(ValueError, match="for the weights alone, more than the 64.0 GiB"):
        device.check_memory({"weights": 4 * n}, torch.device("cpu"), "GPT-3")
    with torch.device("meta"):
        model = GPT(config)
    assert model.num_parameters() == GPT.estimate_parameters_unchecked(config) == 174_604_259_328
