"""lib's Muon: torch.optim.Muon's algorithm, with the Newton-Schulz iterations in a dtype of
its choosing (float32 off CUDA), so that a CPU without fast bfloat16 (no AVX-512) trains at speed."""

import pytest
import torch
import torch.optim._muon as torch_muon

from lib.optim import Muon, ns_dtype, orthogonalise, update_scale

COEFFS = (3.4445, -4.7750, 2.0315)  # torch.optim.Muon's defaults


@pytest.mark.parametrize("shape", [(32, 96), (96, 32)])
def test_orthogonalise_pushes_every_singular_value_near_one(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g[0] *= 100.0  # a badly conditioned gradient: one direction dominates
    s = torch.linalg.svdvals(orthogonalise(g, COEFFS, 5, 1e-7))
    before = torch.linalg.svdvals(g)
    assert before.max() / before.min() > 50
    assert orthogonalise(g, COEFFS, 5, 1e-7).shape == g.shape
    assert 0.5 < s.min() and s.max() < 1.5, s  # the quintic's band, not exactly 1


def test_update_scale_follows_torch():
    assert update_scale("match_rms_adamw", torch.Size([128, 512])) == pytest.approx(0.2 * 512 ** 0.5)
    assert update_scale(None, torch.Size([512, 128])) == pytest.approx(2.0)
    assert update_scale("original", torch.Size([128, 512])) == 1.0


def _torch_in_float32(grad, ns_coefficients, ns_steps, eps):
    """torch's own Newton-Schulz iteration (its code, its checks), in float32 instead of bfloat16."""
    real_bfloat16 = torch.Tensor.bfloat16
    # a copy, as .bfloat16() makes one (torch divides the result in place)
    torch.Tensor.bfloat16 = lambda t: t.to(torch.float32, copy=True)
    try:
        return ORIGINAL_NS(grad, ns_coefficients, ns_steps, eps)
    finally:
        torch.Tensor.bfloat16 = real_bfloat16


# torch's private iteration, to compare with (torch 2.9 to 2.13 have it; a later torch may not,
# and then only these comparisons are skipped, not the file)
ORIGINAL_NS = getattr(torch_muon, "_zeropower_via_newtonschulz", None)
needs_torchs_iteration = pytest.mark.skipif(
    ORIGINAL_NS is None, reason="this torch has no torch.optim._muon._zeropower_via_newtonschulz")


def _train_both(nesterov, ours_dtype, steps=5):
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(64, 256, generator=gen), torch.randn(256, 64, generator=gen)]
    ours = [torch.nn.Parameter(p.clone()) for p in start]
    torchs = [torch.nn.Parameter(p.clone()) for p in start]
    kw = dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=nesterov,
              adjust_lr_fn="match_rms_adamw")
    a, b = Muon(ours, ns_dtype=ours_dtype, **kw), torch.optim.Muon(torchs, **kw)
    for _ in range(steps):
        for p, q in zip(ours, torchs):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    return a, b, ours, torchs, start


@needs_torchs_iteration
@pytest.mark.parametrize("nesterov", [True, False])
def test_lib_muon_takes_torchs_steps(nesterov, monkeypatch):
    # With torch's iteration made to run in float32 too, the two optimizers agree to float32
    # rounding over several steps: momentum, Nesterov, weight decay and LR scale are torch's.
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz", _torch_in_float32)
    a, b, ours, torchs, start = _train_both(nesterov, torch.float32)
    for p, q, p0 in zip(ours, torchs, start):
        assert (q - p0).abs().max() > 1e-2  # they moved
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    # the same state, so checkpoints load either way
    b.load_state_dict(a.state_dict())
    a.load_state_dict(b.state_dict())
    assert torch.equal(a.state[ours[0]]["momentum_buffer"], b.state[torchs[0]]["momentum_buffer"])


def test_lib_muon_in_bfloat16_stays_near_torchs_unpatched_steps():
    # torch's real Muon (bfloat16 iterations) against lib's in bfloat16: the same algorithm,
    # different rounding, so near but not equal.
    a, b, ours, torchs, start = _train_both(True, torch.bfloat16)
    for p, q, p0 in zip(ours, torchs, start):
        moved = (q - p0).abs().max()
        assert 0 < (p - q).abs().max() < 0.05 * moved


def test_bfloat16_orthogonalises_less_precisely_than_float32():
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(64, 128, generator=gen)
    exact = orthogonalise(g.double(), COEFFS, 5, 1e-7, torch.float64)
    f32 = orthogonalise(g, COEFFS, 5, 1e-7, torch.float32)
    bf16 = orthogonalise(g, COEFFS, 5, 1e-7, torch.bfloat16)
    assert f32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert (f32.double() - exact).abs().max() < 1e-4
    assert (bf16.double() - exact).abs().max() > 10 * (f32.double() - exact).abs().max()


@pytest.mark.parametrize("bad, match", [
    (dict(ns_steps=100), "from 0 to 99"),
    (dict(shape=(4, 4, 4)), "2-D matrices"),
    (dict(ns_coefficients=(1.0, 2.0)), "3 numbers"),
])
def test_lib_muon_refuses_what_torchs_refuses(bad, match):
    bad = dict(bad)  # the parametrized dict is shared between runs
    shape = bad.pop("shape", (8, 16))
    p = torch.nn.Parameter(torch.randn(8, 16))
    opt = Muon([p], **bad)
    p.grad = torch.randn(shape) if shape == (8, 16) else None
    if shape != (8, 16):  # a parameter Muon cannot take is refused when it is given
        with pytest.raises(ValueError):
            Muon([torch.nn.Parameter(torch.randn(*shape))])
        with pytest.raises(ValueError, match=match):
            orthogonalise(torch.randn(*shape), COEFFS, 5, 1e-7)
        return
    with pytest.raises(ValueError, match=match):
        opt.step()
    q = torch.nn.Parameter(torch.randn(8, 16))
    q.grad = torch.randn(8, 16)
    with pytest.raises(ValueError):  # torch's own Muon refuses it too
        torch.optim.Muon([q], **bad).step()


def test_lib_muon_refuses_sparse_gradients():
    p = torch.nn.Parameter(torch.randn(8, 16))
    p.grad = torch.randn(8, 16).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        Muon([p]).step()


def test_ns_dtype_is_float32_off_cuda():
    assert ns_dtype(torch.device("cpu")) == torch.float32
    assert ns_dtype(torch.device("meta")) == torch.float32


def test_ns_dtype_on_cuda_follows_native_bfloat16(monkeypatch):
    import contextlib
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert ns_dtype(torch.device("cuda", 0)) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert ns_dtype(torch.device("cuda", 0)) == torch.float32  # e.g. a T4 or V100: float32
