"""Training on a reward or on preferences, after fine-tuning (lib.posttrain): a reward that a
program checks, the DPO loss, and one step of a group-relative policy gradient with a KL
penalty to a reference model.

- The reward stands in for the human judgments of RLHF (Ouyang et al. 2022): here the share of
  the words of a reply that are words of the training text (a small character model invents
  words), optionally with a term for length.
- DPO (Rafailov et al. 2023) learns from pairs (chosen, rejected) with no reward model:
      loss = -log sigmoid(beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))])
  where log pi(.) is the log-probability the model gives the whole response.
- GRPO (Shao et al. 2024) samples a group of replies per prompt, scores each by its reward
  relative to its group, (r - mean) / (sd + eps), and raises the log-probability of the replies
  above their group's mean, minus a penalty on the KL divergence from the reference model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import checks
from .posttrain import IGNORE
from .sampling import generate
from .stats import words

# --------------------------------------------------------------------------- the reward


def word_reward(text: str, vocabulary: set[str], length_weight: float = 0.0,
                target_words: int = 4) -> float:
    """The share of the words of `text` that are in `vocabulary` (0 for a text without words),
    plus `length_weight` times the share of `target_words` words it reaches (at most 1)."""
    found = words(text)
    share = sum(w in vocabulary for w in found) / len(found) if found else 0.0
    return share + length_weight * min(1.0, len(found) / target_words)


def corpus_vocabulary(text: str) -> set[str]:
    """The words of a text, as `word_reward` reads them."""
    return set(words(text))


def reply(text: str) -> str:
    """A generated response up to its end (the first newline), without it."""
    return text.split("\n", 1)[0]


# --------------------------------------------------------------------------- log-probabilities


def sequence_logprobs(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B,) the log-probability `model` gives each row's targets `y`, summed over the positions
    whose target is not IGNORE: log pi(response | prompt)."""
    logp = F.log_softmax(model(x).float(), dim=-1)  # (B, T, V)
    keep = y != IGNORE
    picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * keep).sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """DPO's loss (module doc), the mean over the pairs, from sequence log-probabilities."""
    checks.number("beta", beta, 0, low_open=True)
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


# --------------------------------------------------------------------------- a policy-gradient step


def completion_mask(tokens: torch.Tensor, end: int) -> torch.Tensor:
    """(B, N) True for each generated token up to and including the first `end` token."""
    is_end = (tokens == end).long()
    before = is_end.cumsum(-1) - is_end  # how many ends came strictly before each position
    return before == 0


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(P, G) rewards -> each reward relative to its group: (r - mean) / (sd + eps)."""
    return (rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + eps)


def grpo_step(policy, reference, prompt: torch.Tensor, reward_fn, decode, optimizer, *,
              group_size: int = 8, new_tokens: int = 20, end: int, kl_weight: float = 0.05,
              temperature: float = 1.0, generator: torch.Generator | None = None,
              grad_clip: float = 1.0) -> dict:
    """One step of group-relative policy gradient with a KL penalty (module doc).

    `prompt` (P, T0) ids, all of one length; each prompt gets `group_size` replies of at most
    `new_tokens` tokens, cut after the first `end` token. `reward_fn(text) -> float` scores a
    reply's text (`decode(ids) -> str`). The KL to `reference` per token is the estimator
    exp(q - p) - (q - p) - 1 (>= 0, unbiased), with p and q the policy's and the reference's
    log-probabilities of the sampled token. Returns the step's mean reward, KL and loss.
    """
    checks.integer("group_size", group_size, 2)
    checks.number("kl_weight", kl_weight, 0)
    P, T0 = prompt.shape
    if T0 + new_tokens > policy.config.block_size:
        raise ValueError(f"prompt ({T0}) + new_tokens ({new_tokens}) must fit the model's "
                         f"block_size {policy.config.block_size}: ask for fewer new tokens")
    seqs = generate(policy, prompt.repeat_interleave(group_size, 0), new_tokens,
                    temperature=temperature, generator=generator)  # (P*G, T0 + N)
    new = seqs[:, T0:]
    keep = completion_mask(new, end)  # (P*G, N)
    texts = [reply(decode(row)) for row in new.tolist()]
    rewards = torch.tensor([reward_fn(t) for t in texts], dtype=torch.float32)
    adv = group_advantages(rewards.view(P, group_size)).flatten().to(seqs.device)
    x, y = seqs[:, :-1], seqs[:, 1:]
    was_training = policy.training
    policy.eval()  # no dropout: the log-probabilities of the distribution the replies came from
    logp = F.log_softmax(policy(x).float(), -1).gather(-1, y[..., None]).squeeze(-1)[:, T0 - 1:]
    with torch.no_grad():
        ref = F.log_softmax(reference(x).float(), -1).gather(-1, y[..., None]).squeeze(-1)[:, T0 - 1:]
    d = ref - logp
    kl = torch.exp(d) - d - 1  # (P*G, N)
    per_token = -adv[:, None] * logp + kl_weight * kl
    mask = keep.float()
    loss = ((per_token * mask).sum(-1) / mask.sum(-1)).mean()  # each reply's mean, then the mean
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad],
                                       grad_clip)
    optimizer.step()
    policy.train(was_training)
    return {"reward": rewards.mean().item(), "loss": loss.item(),
            "kl": ((kl * mask).sum() / mask.sum()).item(), "texts": texts}


def train_on_reward(policy, reference, prompts: torch.Tensor, reward_fn, decode, *, steps: int,
                    prompts_per_step: int = 4, lr: float = 1e-4, seed: int = 0,
                    **step_kw) -> list[dict]:
    """`steps` GRPO steps (`grpo_step`) of `policy` (trained in place, with AdamW) against the
    frozen `reference`, each on `prompts_per_step` prompts drawn from the rows of `prompts`
    by a generator seeded with `seed`. Returns a history: per step, its reward, KL and loss."""
    checks.integer("steps", steps, 1)
    for p in reference.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=0.0)
    rng = torch.Generator().manual_seed(seed)
    history = []
    for step in range(1, steps + 1):
        rows = torch.randint(len(prompts), (prompts_per_step,), generator=rng)
        stats = grpo_step(policy, reference, prompts[rows], reward_fn, decode, optimizer,
                          generator=rng, **step_kw)
        history.append({"step": step, **{k: v for k, v in stats.items() if k != "texts"}})
    return history


@torch.no_grad()
def evaluate_replies(policy, reference, prompts: torch.Tensor, vocabulary: set[str], decode, *,
                     new_tokens: int, end: int, samples: int = 2, seed: int = 0,
                     temperature: float = 1.0) -> dict:
    """What a policy writes after `prompts` (P, T0), `samples` replies each, seeded: the mean
    reward (`word_reward`, no length term), the KL to `reference` per reply token (the mean of
    log p - log q over the sampled tokens, an estimate of KL(policy || reference)), the
    share of distinct words among all the replies' words, their mean length in characters, and
    the replies."""
    T0, prompts = prompts.size(1), prompts.to(next(policy.parameters()).device)
    seqs = generate(policy, prompts.repeat(samples, 1), new_tokens, temperature=temperature,
                    generator=torch.Generator().manual_seed(seed))
    keep = completion_mask(seqs[:, T0:], end).float()
    x, y = seqs[:, :-1], seqs[:, 1:]
    was = (policy.training, reference.training)
    policy.eval(), reference.eval()
    logp = F.log_softmax(policy(x).float(), -1).gather(-1, y[..., None]).squeeze(-1)[:, T0 - 1:]
    ref = F.log_softmax(reference(x).float(), -1).gather(-1, y[..., None]).squeeze(-1)[:, T0 - 1:]
    policy.train(was[0]), reference.train(was[1])
    texts = [reply(decode(row)) for row in seqs[:, T0:].tolist()]
    found = [w for t in texts for w in words(t)]
    return {"reward": sum(word_reward(t, vocabulary) for t in texts) / len(texts),
            "kl": (((logp - ref) * keep).sum() / keep.sum()).item(),
            "distinct": len(set(found)) / len(found) if found else 0.0,
            "length": sum(map(len, texts)) / len(texts), "texts": texts}
