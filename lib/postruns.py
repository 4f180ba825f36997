"""The post-training runs of the lessons, cached like every run of the course (lib.course):
fine-tuning runs (`fine_tune_or_load`) and runs trained on a reward (`reward_run_or_load`).

A run's key is made of what decides it: the starting weights, the data (pairs, prompts, the
corpus, the reward's vocabulary), the configs and settings, the device type and the source of
the modules that compute it. A cached run is a checkpoint of a plain model (any adapters merged
into its weights) with its history, so `python -m lib.sample --checkpoint` writes with it; an
entry that cannot be used is moved aside and trained again, never a crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import TrainConfig
from .course import COMPUTE_MODULES, _move_aside, source_fingerprint, tensor_digest
from .data import cache_dir
from .device import pick_device
from .model import GPT

POST_MODULES = COMPUTE_MODULES + ("posttrain", "rewards")


def _key(*parts) -> str:
    parts = (*parts, source_fingerprint(POST_MODULES))
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load(path: Path, config, device) -> tuple[GPT, dict] | None:
    """(model, checkpoint state) of a cached run, or None (an unusable entry moved aside)."""
    if not path.exists():
        return None
    try:
        state = ckpt.load_checkpoint(path)
        ckpt.check_training_state(state)
        model = GPT(config)
        model.load_state_dict(state["model"])
        return model.to(device), state
    except Exception as err:  # noqa: BLE001 - a cache is disposable: any failure retrains
        _move_aside(path)
        print(f"The cached run {path.parent.name} could not be used ({str(err)[:200]}); "
              "training it again.")
        return None


def _save(path: Path, model: GPT, tokenizer, history: dict, step: int, elapsed: float,
          **extra) -> None:
    state = {"model": model.state_dict(), "model_config": model.config.to_dict(),
             "tokenizer": tokenizer.to_dict(), "step": step, "elapsed": elapsed,
             "history": history, **extra}
    try:
        ckpt.save_checkpoint(state, path)
    except ckpt.CheckpointError as err:
        print(f"{err} The run was not kept in the cache; it is used as it is.")


# --------------------------------------------------------------------------- fine-tuning


@dataclasses.dataclass
class FineTuned:
    """A fine-tuning run (`fine_tune_or_load`): the model (plain, any adapters merged into its
    weights), the trainer's history, its config, how many parameters it trained, and the
    trained adapters themselves (LoRA's A and B by name; empty without LoRA)."""

    model: GPT
    history: dict
    config: TrainConfig
    trainable: int
    adapters: dict


def fine_tune_or_load(base: GPT, config: TrainConfig, pairs, corpus, *, masked: bool = True,
                      lora_rank: int = 0, lora_alpha: float = 8.0, from_scratch: bool = False,
                      verbose: bool = False) -> FineTuned:
    """`lib.posttrain.fine_tuner`'s run of `base` on `pairs` (on the Trainer), trained once and
    then served from the run cache (module doc)."""
    from .posttrain import fine_tuner, merge_lora, trainable_parameters

    settings = {k: v for k, v in config.to_dict().items() if k not in ("progress", "out_dir")}
    key = _key("fine-tune", base.config.to_dict(), settings, ckpt.tensor_checksum(base.state_dict()),
               [tensor_digest(t) for t in (pairs.x, pairs.y, pairs.y_unmasked, corpus.train,
                                           corpus.val)],
               corpus.tokenizer.to_dict(), masked, lora_rank, lora_alpha, from_scratch,
               pick_device(config.device).type)
    path = cache_dir() / "runs" / f"ft-{key}" / ckpt.CHECKPOINT_FILE
    cached = _load(path, base.config, pick_device(config.device))
    if cached is not None:
        model, state = cached
        return FineTuned(model, state["history"], config, state["meta"]["trainable"],
                         state["adapters"])
    trainer = fine_tuner(base, config, pairs, corpus.train, corpus.val, corpus.tokenizer,
                         masked=masked, lora_rank=lora_rank, lora_alpha=lora_alpha,
                         from_scratch=from_scratch)
    trainable = trainable_parameters(trainer.model)
    if verbose:
        print(f"Fine-tuning {trainable:,} parameters for {config.max_steps} steps.")
    trainer.run()
    adapters = {k: v.clone() for k, v in trainer.model.state_dict().items()
                if k.endswith((".A", ".B"))}
    model = merge_lora(trainer.model)
    _save(path, model, corpus.tokenizer, trainer.history, trainer.step, trainer.elapsed,
          train_config=config.to_dict(), adapters=adapters,
          meta={"trainable": trainable, "masked": masked, "lora_rank": lora_rank,
                "from_scratch": from_scratch})
    return FineTuned(model, trainer.history, config, trainable, adapters)


# --------------------------------------------------------------------------- a reward


@dataclasses.dataclass
class RewardRun:
    """A run trained on the word reward (`reward_run_or_load`): the model and, per step, its
    mean reward, KL to the reference and loss."""

    model: GPT
    history: list[dict]


def reward_run_or_load(start: GPT, prompts: torch.Tensor, vocabulary: set[str], tokenizer, *,
                       steps: int, kl_weight: float, lr: float, seed: int, new_tokens: int,
                       group_size: int = 8, prompts_per_step: int = 2,
                       length_weight: float = 0.0) -> RewardRun:
    """`lib.rewards.train_on_reward` from a copy of `start` (also the frozen reference), with
    `word_reward` over `vocabulary` as the reward; trained once, then served from the cache."""
    import copy

    from .rewards import train_on_reward, word_reward

    settings = dict(steps=steps, kl_weight=kl_weight, lr=lr, seed=seed, new_tokens=new_tokens,
                    group_size=group_size, prompts_per_step=prompts_per_step,
                    length_weight=length_weight)
    device = next(start.parameters()).device
    vocab_digest = hashlib.sha256("\n".join(sorted(vocabulary)).encode()).hexdigest()
    key = _key("reward", start.config.to_dict(), ckpt.tensor_checksum(start.state_dict()),
               tensor_digest(prompts), vocab_digest, tokenizer.to_dict(), settings, device.type)
    path = cache_dir() / "runs" / f"rw-{key}" / ckpt.CHECKPOINT_FILE
    cached = _load(path, start.config, device)
    if cached is not None:
        return RewardRun(cached[0], cached[1]["history"]["reward"])
    policy, reference = copy.deepcopy(start), copy.deepcopy(start).eval()
    end = tokenizer.encode("\n")[0]
    t0 = time.perf_counter()
    history = train_on_reward(
        policy, reference, prompts.to(device),
        lambda text: word_reward(text, vocabulary, length_weight), tokenizer.decode,
        steps=steps, prompts_per_step=prompts_per_step, lr=lr, seed=seed, group_size=group_size,
        new_tokens=new_tokens, end=end, kl_weight=kl_weight)
    _save(path, policy, tokenizer, {"train": [], "eval": [], "reward": history}, steps,
          time.perf_counter() - t0, meta=settings)
    return RewardRun(policy, history)
