"""lib.sampling: temperature, top-k, top-p and generate."""

import math

import pytest
import torch

from lib.model import GPT, GPTConfig
from lib.sampling import entropy, filter_probs, generate, sample_next

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])


def test_temperature_scales_logits():
    for t in (0.5, 1.0, 2.0):
        assert torch.allclose(filter_probs(LOGITS, temperature=t), torch.softmax(LOGITS / t, -1))
    hot, cold = filter_probs(LOGITS, temperature=5.0), filter_probs(LOGITS, temperature=0.2)
    assert entropy(hot) > entropy(filter_probs(LOGITS)) > entropy(cold)


def test_temperature_zero_is_greedy():
    probs = filter_probs(LOGITS, temperature=0)
    assert probs.tolist() == [1, 0, 0, 0, 0, 0]
    batch = torch.randn(5, 7)
    assert torch.equal(sample_next(batch, temperature=0), batch.argmax(-1))


@pytest.mark.parametrize("k", [1, 2, 4, 6, 10])
def test_top_k_keeps_exactly_k(k):
    probs = filter_probs(LOGITS, top_k=k)
    assert int((probs > 0).sum()) == min(k, 6)
    assert torch.equal((probs > 0)[: min(k, 6)], torch.ones(min(k, 6), dtype=torch.bool))
    assert math.isclose(probs.sum().item(), 1.0, rel_tol=1e-6)


def test_top_k_with_ties_keeps_exactly_k():
    probs = filter_probs(torch.zeros(10), top_k=3)
    assert int((probs > 0).sum()) == 3


def test_top_p_keeps_the_smallest_nucleus():
    p = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    logits = p.log()
    assert (filter_probs(logits, top_p=0.5) > 0).tolist() == [True, False, False, False, False]
    assert (filter_probs(logits, top_p=0.51) > 0).tolist() == [True, True, False, False, False]
    assert (filter_probs(logits, top_p=0.85) > 0).tolist() == [True, True, True, False, False]
    kept = filter_probs(logits, top_p=0.85)
    assert torch.allclose(kept[:3], p[:3] / 0.9, atol=1e-6)
    assert torch.allclose(filter_probs(logits, top_p=1.0), p, atol=1e-6)
    # never empty, even for a tiny p
    assert int((filter_probs(logits, top_p=1e-9) > 0).sum()) == 1


def test_top_p_works_per_row_on_unsorted_logits():
    logits = torch.tensor([[0.0, 5.0, 0.0], [3.0, 3.0, -10.0]])
    probs = filter_probs(logits, top_p=0.9)
    assert (probs > 0).tolist() == [[False, True, False], [True, True, False]]


def test_top_k_then_top_p():
    probs = filter_probs(LOGITS, top_k=3, top_p=0.7)
    top3 = torch.softmax(LOGITS[:3], -1)
    keep = (torch.cumsum(top3, 0) - top3) < 0.7
    assert (probs[:3] > 0).tolist() == keep.tolist() and probs[3:].sum() == 0


def test_empirical_frequencies_match_the_filtered_distribution():
    """20,000 draws: every token's frequency within 4 standard errors of its probability."""
    target = filter_probs(LOGITS, temperature=0.8, top_k=4)
    g = torch.Generator().manual_seed(0)
    n = 20_000
    draws = sample_next(LOGITS.expand(n, -1), temperature=0.8, top_k=4, generator=g)
    freq = torch.bincount(draws, minlength=6).float() / n
    se = (target * (1 - target) / n).sqrt()
    assert torch.all((freq - target).abs() <= 4 * se + 1e-9)
    assert freq[4:].sum() == 0  # filtered tokens are never drawn


def test_entropy_in_nats():
    assert math.isclose(entropy(torch.full((8,), 1 / 8)).item(), math.log(8), rel_tol=1e-6)
    assert entropy(torch.tensor([1.0, 0.0, 0.0])).item() == 0.0


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(temperature=-0.1), ValueError, "temperature must be a finite number in \\[0, 1e\\+300\\]"),
        (dict(temperature=float("nan")), ValueError, "temperature"),
        (dict(temperature=float("inf")), ValueError, "temperature"),
        (dict(temperature="hot"), TypeError, "temperature"),
        (dict(top_k=0), ValueError, "top_k must be an integer >= 1"),
        (dict(top_k=2.5), TypeError, "top_k must be an integer"),
        (dict(top_p=0.0), ValueError, r"top_p must be a finite number in \(0, 1\]"),
        (dict(top_p=1.5), ValueError, r"top_p must be a finite number in \(0, 1\]"),
        (dict(top_p="x"), TypeError, "top_p"),
    ],
)
def test_bad_sampling_values_say_what_is_allowed(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        filter_probs(LOGITS, **kwargs)
    with pytest.raises(exc, match=pattern):
        sample_next(LOGITS, **kwargs)


# --------------------------------------------------------------------------- generate


def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1))


def test_generate_crops_context_and_restores_mode():
    m = model().train()
    out = generate(m, torch.zeros(2, 3, dtype=torch.long), 20, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 23) and m.training  # 23 > block_size 8: the context was cropped
    m.eval()
    generate(m, torch.zeros(1, 1, dtype=torch.long), 2)
    assert not m.training


def test_same_seed_same_text():
    m = model()
    start = torch.zeros(1, 1, dtype=torch.long)
    a = generate(m, start, 30, temperature=1.0, generator=torch.Generator().manual_seed(7))
    b = generate(m, start, 30, temperature=1.0, generator=torch.Generator().manual_seed(7))
    c = generate(m, start, 30, temperature=1.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_greedy_generation_is_deterministic_and_follows_argmax():
    m = model().eval()
    out = generate(m, torch.zeros(1, 1, dtype=torch.long), 5, temperature=0)
    for t in range(1, 6):
        assert out[0, t] == m(out[:, max(0, t - 8):t])[0, -1].argmax()


def test_generate_refuses_bad_input():
    m = model()
    with pytest.raises(ValueError, match="T >= 1"):
        generate(m, torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, torch.zeros(1, 1, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="top_p"):
        generate(m, torch.zeros(1, 1, dtype=torch.long), 1, top_p=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_generate_on_cuda_with_a_cpu_generator_matches_cpu():
    m = model().eval()
    start = torch.zeros(1, 1, dtype=torch.long)
    cpu = generate(m, start, 20, top_k=5, generator=torch.Generator().manual_seed(3))
    gpu = generate(m.cuda(), start.cuda(), 20, top_k=5, generator=torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    # The draws come from the same CPU generator, and the probabilities differ by float noise
    # only, so the same tokens are drawn (a draw landing within ~1e-6 of a boundary would not).
    assert torch.equal(gpu.cpu(), cpu)
