"""Fine-tuning a trained GPT on prompt/response pairs: the pairs and their loss mask, a batch
source the Trainer takes, LoRA adapters and their merge, and a fine-tuning run built on the
engine (lib.trainer), not a second training loop. Rewards and preferences: lib.rewards.

The pairs are "cue -> reply" pairs cut from a play: the last line of a speech (the cue) is the
prompt, the first line of the next speech the response. An example is laid out as

    prompt tail  SEP  response  "\\n"

in one window of at most block_size + 1 tokens; SEP is "$", a character of Tiny Shakespeare's
vocabulary (so the course's tokenizer and model need no change) that the whole corpus holds
once, so it means nothing to the pre-trained model until fine-tuning teaches it "a reply
starts here". The newline after the response is its end, as a line of verse ends.

The loss mask: a target set to IGNORE (-100, the `ignore_index` of torch's cross-entropy, which
`lib.model.lm_loss` uses) is not counted, so its position gets exactly zero gradient. Masked
examples count the response's tokens only; the padding after an example is always ignored.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import checks
from .config import TrainConfig
from .data import CharTokenizer
from .model import GPT
from .optim import make_optimizer
from .trainer import Trainer

IGNORE = -100  # torch's cross_entropy ignores this target (its default ignore_index)
SEP = "$"  # prompt | response: a character of the vocabulary that the corpus holds once


# --------------------------------------------------------------------------- the pairs


def speeches(text: str) -> list[list[str]]:
    """The speeches of a play text, each as its lines without the speaker's name: Tiny
    Shakespeare separates speeches by a blank line and opens each with "NAME:"."""
    out = []
    for block in text.split("\n\n"):
        lines = [ln for ln in block.strip("\n").split("\n") if ln.strip()]
        if len(lines) >= 2 and lines[0].endswith(":"):  # a name line, then the speech
            out.append(lines[1:])
    return out


def cue_reply_pairs(text: str) -> list[tuple[str, str]]:
    """(cue, reply) for each two speeches in a row: the last line of the one, the first line
    of the next."""
    said = speeches(text)
    return [(a[-1], b[0]) for a, b in zip(said, said[1:])]


@dataclasses.dataclass
class Pairs:
    """Prompt/response examples as windows the model trains on.

    x: (N, T) input ids; y: (N, T) targets with the prompt and the padding set to IGNORE;
    y_unmasked: the same with the prompt's targets kept (the padding still ignored);
    texts: the (prompt, response) strings, as laid out (the prompt cut to its tail).
    """

    x: torch.Tensor
    y: torch.Tensor
    y_unmasked: torch.Tensor
    texts: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.texts)


def make_pairs(pairs: list[tuple[str, str]], tokenizer: CharTokenizer, block_size: int,
               prompt_chars: int | None = None) -> Pairs:
    """Lay out (prompt, response) pairs as windows of `block_size` (module doc).

    The prompt keeps its last `prompt_chars` characters (default: a third of the window), the
    end that a reply answers. A response that does not fit the rest of the window with its
    newline is left out, so every example shows where its response ends."""
    checks.integer("block_size", block_size, 4)
    prompt_chars = block_size // 3 if prompt_chars is None else prompt_chars
    checks.integer("prompt_chars", prompt_chars, 1, block_size - 3)
    sep, end = tokenizer.encode(SEP)[0], tokenizer.encode("\n")[0]
    xs, ys, us, kept = [], [], [], []
    for prompt, response in pairs:
        prompt = prompt[-prompt_chars:]
        ids = tokenizer.encode(prompt) + [sep] + tokenizer.encode(response) + [end]
        if len(ids) > block_size + 1:
            continue
        p = len(prompt)  # ids[p] is SEP; the targets y[t] = ids[t + 1] for t >= p are the response
        x = torch.full((block_size,), end, dtype=torch.long)
        y = torch.full((block_size,), IGNORE, dtype=torch.long)
        n = len(ids) - 1
        x[:n], y[:n] = torch.tensor(ids[:-1]), torch.tensor(ids[1:])
        us.append(y.clone())
        y[:p] = IGNORE  # the prompt's tokens and the separator are not the model's to write
        xs.append(x), ys.append(y), kept.append((prompt, response))
    if not kept:
        raise ValueError(f"No pair fits a window of {block_size} tokens: use a longer block_size "
                         "or shorter prompts (prompt_chars)")
    return Pairs(torch.stack(xs), torch.stack(ys), torch.stack(us), kept)


class PairBatches:
    """A batch source for `Trainer(batches=...)` (the protocol of `lib.data.RandomWindows`):
    `next(n)` draws n examples at random, with a seeded generator of its own. `masked=False`
    counts the prompt's tokens in the loss too."""

    def __init__(self, pairs: Pairs, seed: int, masked: bool = True):
        self.x, self.y = pairs.x, pairs.y if masked else pairs.y_unmasked
        self.generator = torch.Generator().manual_seed(seed)

    def next(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(len(self.x), (n,), generator=self.generator)
        return self.x[i], self.y[i]

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


@torch.no_grad()
def response_loss(model: GPT, pairs: Pairs, batch_size: int = 256) -> float:
    """Mean cross-entropy per response token over all the examples (the prompts not counted)."""
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    try:
        total, count = 0.0, 0
        for i in range(0, len(pairs), batch_size):
            x, y = pairs.x[i:i + batch_size].to(device), pairs.y[i:i + batch_size].to(device)
            logits = model(x)
            total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(),
                                     ignore_index=IGNORE, reduction="sum").item()
            count += int((y != IGNORE).sum())
        return total / count
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- LoRA

LORA_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")  # the blocks' matrices


class LoRALinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update (Hu et al. 2021):

        y = W x + b + (alpha / r) B A x,   A: (r, in), B: (out, r)

    A starts random and B at zero, so the layer starts as the frozen one and only B A (r times
    (in + out) numbers instead of in times out) is learnt."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        checks.integer("rank", rank, 1, min(base.in_features, base.out_features))
        checks.number("alpha", alpha, 0, low_open=True)
        self.base, self.rank, self.scale = base, rank, alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # nn.Linear's own initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.t() @ self.B.t()) * self.scale  # (B, T, out)

    def merged(self) -> nn.Linear:
        """A plain Linear computing the same function: W + (alpha / r) B A."""
        out = nn.Linear(self.base.in_features, self.base.out_features,
                        bias=self.base.bias is not None, device=self.base.weight.device)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.B @ self.A))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def _targets(model: nn.Module, kind):
    """(parent module, attribute name, module) for every module of `kind` at a LoRA target."""
    for name, module in list(model.named_modules()):
        if isinstance(module, kind) and name.endswith(LORA_TARGETS) and "transformer.h." in name:
            parent, _, attr = name.rpartition(".")
            yield model.get_submodule(parent), attr, module


def add_lora(model: GPT, rank: int = 4, alpha: float = 8.0) -> list[nn.Parameter]:
    """Freeze every weight of `model` and put a LoRA adapter on each of the blocks' matrices
    (attention's and the MLP's); returns the adapters' parameters, the only ones that train."""
    for p in model.parameters():
        p.requires_grad_(False)
    for parent, attr, linear in _targets(model, nn.Linear):
        setattr(parent, attr, LoRALinear(linear, rank, alpha))
    return [p for p in model.parameters() if p.requires_grad]


def merge_lora(model: GPT) -> GPT:
    """Replace every adapter by the plain Linear it amounts to (in place); all weights trainable
    again. The model is then a plain GPT: its state dict loads into GPT(config)."""
    for parent, attr, lora in _targets(model, LoRALinear):
        setattr(parent, attr, lora.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- a fine-tuning run


def fine_tune_config(pretraining: TrainConfig, steps: int = 60, batch_size: int = 16,
                     lr: float = 1e-3) -> TrainConfig:
    """The lessons' fine-tuning config, from the pre-training's (its device, precision and
    betas): a short run with AdamW at a peak rate below pre-training's, a warmup of a tenth of
    the steps, and evaluations (of the plain text: what is forgotten) at the start and end."""
    return dataclasses.replace(pretraining, max_steps=steps, batch_size=batch_size,
                               optimizer="adamw", lr=lr, warmup_steps=max(1, steps // 10),
                               eval_interval=steps, eval_batches=8, progress=False)


def fine_tuner(base: GPT, config: TrainConfig, pairs: Pairs, train_data: torch.Tensor,
               val_data: torch.Tensor, tokenizer: CharTokenizer | None = None, *,
               masked: bool = True, lora_rank: int = 0, lora_alpha: float = 8.0,
               from_scratch: bool = False) -> Trainer:
    """A Trainer that fine-tunes a copy of `base` on `pairs` (`from_scratch`: a fresh model of
    base's shape instead, trained on the pairs alone, for comparison). It is the ordinary
    Trainer with two of its parts handed in: the batch source (`PairBatches`) and an optimizer
    that first loads `base`'s weights into the trainer's model (and, with `lora_rank`, adds the
    adapters and trains them alone, with AdamW and no weight decay). Its evaluations on
    `train_data` and `val_data` (plain text of the corpus) measure what fine-tuning forgets."""
    checks.integer("lora_rank", lora_rank, 0)
    if from_scratch and lora_rank:
        raise ValueError("LoRA adapts trained weights: use lora_rank=0 with from_scratch=True")

    def build(model: GPT) -> torch.optim.Optimizer:
        if not from_scratch:
            model.load_state_dict(base.state_dict())
        if lora_rank:
            params = add_lora(model, lora_rank, lora_alpha)
            return torch.optim.AdamW(params, lr=config.lr, betas=(config.beta1, config.beta2),
                                     weight_decay=0.0)
        return make_optimizer(model, config, next(model.parameters()).device)

    return Trainer(base.config, config, train_data, val_data, tokenizer,
                   optimizer=build, batches=PairBatches(pairs, config.seed + 1, masked))
