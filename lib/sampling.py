"""From logits to text: temperature, top-k and top-p, and the generation loop.

Everything turns around `filter_probs`, which maps logits to the distribution a sampler
draws from; `sample_next` draws from it, and `generate` is a short loop around that.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from . import checks


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None) -> None:
    """Raise a ValueError/TypeError that says what is allowed, for any bad sampling setting."""
    checks.number("temperature", temperature, 0, 1e300, hint=" (0 = greedy)")
    if top_k is not None:
        checks.integer("top_k", top_k, 1, hint=" (or None for no top-k filter)")
    if top_p is not None:
        checks.number("top_p", top_p, 0.0, 1.0, low_open=True, hint=" (1 = no filter)")


def _check_logits(logits: torch.Tensor) -> None:
    """Logits may hold -inf (a token ruled out) but not NaN or +inf, and never rule out all."""
    if torch.isnan(logits).any() or torch.isposinf(logits).any():
        raise ValueError("logits must not contain NaN or +inf: the model's output is broken "
                         "(a diverged training run?); retrain it or load a good checkpoint")
    if torch.isneginf(logits).all(-1).any():
        raise ValueError("logits must leave at least one token possible; a row is all -inf")


def filter_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None) -> torch.Tensor:
    """The probability distribution a sampler draws from, over the last dimension of `logits`.

    Applied in this order: temperature (0 puts all the mass on the argmax), then top-k (keep
    the k most probable tokens, exactly k), then top-p (keep the smallest set of the most
    probable tokens whose probability reaches p; never empty). What is kept is renormalised.
    """
    check_sampling_args(temperature, top_k, top_p)
    return _filter(logits, temperature, top_k, top_p)


def _filter(logits, temperature, top_k, top_p) -> torch.Tensor:
    """`filter_probs` for settings already checked (the generation loop checks them once)."""
    _check_logits(logits)
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).to(logits.dtype)
    # Shift so the largest logit is 0 before dividing: the softmax is unchanged, and a tiny
    # temperature sends the others to -inf instead of turning everything into inf and NaN.
    shifted = logits - logits.amax(-1, keepdim=True)
    logits = torch.where(shifted == 0, shifted, shifted / float(temperature))  # 0 / tiny is 0
    if top_k is not None and top_k < logits.size(-1):
        kept = torch.topk(logits, top_k, dim=-1).indices
        mask = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, kept, False)
        logits = logits.masked_fill(mask, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass of the tokens ranked above
        drop_sorted = before >= top_p  # the set reached p already without this token
        drop_sorted[..., 0] = False  # the most probable token always stays (p may round to 0)
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions over the last dimension (0 log 0 taken as 0)."""
    p = probs.float()
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One next token per row of `logits` (..., V) -> (...,) long. Temperature 0 is greedy."""
    check_sampling_args(temperature, top_k, top_p)
    return _sample(logits, temperature, top_k, top_p, generator)


def _sample(logits, temperature, top_k, top_p, generator) -> torch.Tensor:
    """`sample_next` for settings already checked."""
    if temperature == 0:
        _check_logits(logits)
        return logits.argmax(-1)
    probs = _filter(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.size(-1))
    if generator is not None and generator.device != flat.device:
        flat = flat.to(generator.device)  # draw where the generator lives: same seed, same text
    ids = torch.multinomial(flat, 1, generator=generator)
    return ids.to(logits.device).reshape(probs.shape[:-1])


def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
    """Extend each row of `idx` (B, T) by `max_new_tokens` sampled tokens.

    The context is cropped to the model's block_size; the model runs in eval mode and is
    returned to the mode it was in. `stream` gives the same tokens one step at a time.
    With `use_cache` (and a model that has `new_cache`, as lib's GPT) each step reads only
    the new token and reuses the keys and values of the others: the same tokens, faster.
    """
    new = list(stream(model, idx, max_new_tokens, temperature, top_k, top_p, generator, use_cache))
    return torch.cat([idx, *(t[:, None] for t in new)], dim=1)


def stream(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None,
           generator: torch.Generator | None = None, use_cache: bool = True):
    """Yield the next token of each row of `idx` (a (B,) tensor), `max_new_tokens` times: the
    tokens `generate` appends, as they are drawn (to show text while it is written)."""
    check_sampling_args(temperature, top_k, top_p)
    checks.integer("max_new_tokens", max_new_tokens, 0)
    checks.boolean("use_cache", use_cache)
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(
            f"generate needs a prompt of shape (B, T) with T >= 1, got shape {tuple(idx.shape)}; "
            "start from at least one token (for example a newline)"
        )
    cache = model.new_cache() if use_cache and hasattr(model, "new_cache") else None
    return _stream(model, idx, max_new_tokens, temperature, top_k, top_p, generator, cache)


def _stream(model, idx, max_new_tokens, temperature, top_k, top_p, generator, cache=None):
    """The generation loop. With a KV cache, a step reads only the token drawn last, until the
    context fills the window; from then on each new token slides the window, which moves every
    token to another position, so the cache is rebuilt from the window (the no-cache path's
    computation: same logits, same tokens)."""
    was_training = model.training
    model.eval()
    try:
        block_size = model.config.block_size
        context = idx[:, -block_size:]  # (B, <= block_size)
        todo = context  # the tokens the model has not read yet
        for _ in range(max_new_tokens):
            with torch.no_grad():
                if cache is None:
                    logits = model(context)[:, -1, :]  # (B, V): the prediction after the last token
                else:
                    if cache.length + todo.size(1) > block_size:  # the window slid: read it anew
                        cache.reset()
                        todo = context
                    logits = model(todo, cache)[:, -1, :]  # (B, V)
            nxt = _sample(logits, temperature, top_k, top_p, generator)  # (B,); checked once
            yield nxt
            context = torch.cat([context, nxt[:, None]], dim=1)[:, -block_size:]
            todo = nxt[:, None]  # (B, 1)
    finally:
        model.train(was_training)


def sample_recorder(tokenizer, prompt: str = "\n", length: int = 200, seed: int = 0):
    """A callback for `Trainer.run` that appends a sample to `trainer.history["samples"]`.

    Every sample starts from the same prompt with the same seed, so the samples differ only
    because the model changed. The seeded generator leaves the training's random state alone.
    """

    def record(trainer) -> None:
        idx = torch.tensor([tokenizer.encode(prompt)], device=trainer.device)
        out = generate(trainer.model, idx, length, generator=torch.Generator().manual_seed(seed))
        trainer.history.setdefault("samples", []).append(
            {"step": trainer.step, "text": tokenizer.decode(out[0, len(prompt):])})

    return record
