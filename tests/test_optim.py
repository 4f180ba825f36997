"""lib's Muon: torch.optim.Muon's algorithm, with the Newton-Schulz iterations in a dtype of
its choosing (float32 off CUDA), so that a CPU without bfloat16 instructions trains at speed."""

import pytest
import torch

from lib.optim import Muon, orthogonalise, update_scale

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


@pytest.mark.parametrize("nesterov", [True, False])
def test_lib_muon_takes_torchs_steps(nesterov):
    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(64, 256, generator=gen), torch.randn(256, 64, generator=gen)]
    ours = [torch.nn.Parameter(p.clone()) for p in start]
    torchs = [torch.nn.Parameter(p.clone()) for p in start]
    kw = dict(lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=nesterov,
              adjust_lr_fn="match_rms_adamw")
    a, b = Muon(ours, ns_dtype=torch.float32, **kw), torch.optim.Muon(torchs, **kw)
    for _ in range(5):
        for p, q in zip(ours, torchs):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q, p0 in zip(ours, torchs, start):
        moved = (q - p0).abs().max()
        # torch orthogonalises in bfloat16 (3 significant digits); ours in float32
        assert (p - q).abs().max() < 0.15 * moved
        assert (p - q).abs().max() > 0  # not torch's own code path
    # the same state, so checkpoints load either way
    b.load_state_dict(a.state_dict())
    a.load_state_dict(b.state_dict())
    assert torch.equal(a.state[ours[0]]["momentum_buffer"], b.state[torchs[0]]["momentum_buffer"])


def test_lib_muon_in_bfloat16_is_torchs_precision():
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(64, 128, generator=gen)
    exact = orthogonalise(g.double(), COEFFS, 5, 1e-7, torch.float64)
    f32 = orthogonalise(g, COEFFS, 5, 1e-7, torch.float32)
    bf16 = orthogonalise(g, COEFFS, 5, 1e-7, torch.bfloat16)
    assert f32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert (f32.double() - exact).abs().max() < 1e-4
    assert (bf16.double() - exact).abs().max() > 10 * (f32.double() - exact).abs().max()
