"""The optimizers the trainer can use, built from a TrainConfig (`make_optimizer`).

- adamw (the default): AdamW, weight decay decoupled from the gradient, on matrices only.
- adam: Adam, its weight decay added to the gradient (L2), on matrices only: what AdamW fixed.
- sgd: SGD with momentum (`momentum`), weight decay as L2 on matrices only.
- muon: Muon (`torch.optim.Muon`) for the 2-D matrices inside the blocks, at `muon_lr`, and
  AdamW for everything else (embeddings and head, biases, norms) at `lr`. Muon keeps a
  momentum of the gradient and replaces each matrix's update by the nearest orthogonal matrix
  (a few Newton-Schulz iterations), scaled so that its size matches a typical AdamW update
  (PyTorch's `adjust_lr_fn="match_rms_adamw"`). lib's `Muon` is `torch.optim.Muon` with one
  change: the Newton-Schulz iterations run in float32 except on a CUDA GPU with native bfloat16
  (PyTorch's run them in bfloat16 everywhere, and its fast bfloat16 products on a CPU need its
  oneDNN check, AVX-512 on x86, to pass; on a 2-core AMD EPYC with AVX2 only, torch's Muon
  trained the CPU preset at about a sixth of lib's speed: benchmarks/muon_precision.py).

The learning-rate schedule scales every parameter group's own peak LR by the same factor
(`set_lr_factor`), so with Muon both parts warm up and decay together.
"""

from __future__ import annotations

import torch

OPTIMIZERS = ("adamw", "adam", "sgd", "muon")


class CombinedOptimizer:
    """Several optimizers stepped as one, each over its own parameters (Muon and AdamW).

    It offers what the trainer uses of an optimizer: `param_groups` (all of them, in order),
    `state`, `step`, `zero_grad`, and a `state_dict` keyed by each part's name.
    """

    def __init__(self, **parts: torch.optim.Optimizer):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [group for part in self.parts.values() for group in part.param_groups]

    @property
    def state(self) -> dict:
        return {p: s for part in self.parts.values() for p, s in part.state.items()}

    def step(self) -> None:
        for part in self.parts.values():
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts.values():
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != set(self.parts):
            have = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"the optimizer state has parts {have}, this optimizer has "
                             f"{sorted(self.parts)}")
        for name, part in self.parts.items():
            part.load_state_dict(state[name])

    def __repr__(self) -> str:
        return f"CombinedOptimizer({', '.join(self.parts)})"


class Muon(torch.optim.Muon):
    """`torch.optim.Muon` whose orthogonalisation runs in `ns_dtype` (module doc).

    The same arguments, defaults, checks and state (a `momentum_buffer` per matrix), so its
    state dict and torch's load into each other; only `step` is its own.
    """

    def __init__(self, params, *, ns_dtype: torch.dtype = torch.float32, **kwargs):
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu = float(group["lr"]), group["momentum"]
            params, grads, bufs = [], [], []
            # torch's own bookkeeping: refuses complex parameters and sparse gradients, and
            # makes each matrix's momentum buffer on its first step.
            self._init_group(group, params, grads, bufs)
            for p, grad, buf in zip(params, grads, bufs, strict=True):
                buf.lerp_(grad, 1 - mu)  # an average of the gradients, weight mu on the past
                update = grad.lerp(buf, mu) if group["nesterov"] else buf
                update = orthogonalise(update, group["ns_coefficients"], group["ns_steps"],
                                       group["eps"], self.ns_dtype)
                p.mul_(1 - lr * group["weight_decay"])  # decoupled weight decay
                p.add_(update.to(p.dtype), alpha=-lr * update_scale(group["adjust_lr_fn"], p.shape))
        return loss


def update_scale(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """How much Muon scales its LR for a matrix of this shape: to an RMS like AdamW's update
    ("match_rms_adamw", Liu et al. 2025), or by sqrt(rows / columns) when taller than wide."""
    rows, cols = shape[0], shape[1]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * max(rows, cols) ** 0.5
    if adjust_lr_fn in (None, "original"):
        return max(1.0, rows / cols) ** 0.5
    return 1.0


def orthogonalise(g: torch.Tensor, coefficients, steps: int, eps: float,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """About the orthogonal matrix nearest `g` (its singular values pushed towards 1), by
    `steps` iterations of the quintic X <- aX + b(XX^T)X + c(XX^T)^2 X (Jordan 2024), in `dtype`."""
    if g.dim() != 2:
        raise ValueError(f"Muon orthogonalises 2-D matrices, got a tensor of shape {tuple(g.shape)}: "
                         "give Muon only the blocks' matrices and AdamW the rest")
    if not 0 <= steps < 100:  # PyTorch refuses 100 or more; lib also refuses a negative count
        raise ValueError(f"Muon's Newton-Schulz steps must be from 0 to 99, got {steps}")
    if len(coefficients) != 3:
        raise ValueError(f"Muon's Newton-Schulz coefficients must be 3 numbers (a, b, c), got {coefficients!r}")
    a, b, c = coefficients
    x = g.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:  # work on the wide side: XX^T is the smaller square
        x = x.T
    x = x / x.norm().clamp(min=eps)  # Frobenius norm 1, so every singular value is <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def ns_dtype(device: torch.device) -> torch.dtype:
    """The precision of Muon's Newton-Schulz iterations on `device`: bfloat16 on a CUDA GPU
    that multiplies bfloat16 natively (as PyTorch's Muon does everywhere), float32 elsewhere."""
    if device.type == "cuda":
        with torch.cuda.device(device):  # the GPU asked about, not the current one
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return torch.bfloat16
    return torch.float32


def make_optimizer(model, config, device: torch.device, muon_class=None):
    """The optimizer `config.optimizer` names, over `model`'s parameters (module doc).
    `muon_class` builds the Muon part instead of lib's `Muon` (a benchmark passes PyTorch's)."""
    fused = device.type in ("cuda", "cpu")  # one kernel for all tensors: about 4x faster on a CPU
    groups = model.optimizer_groups(config.weight_decay)  # decay on matrices only
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, fused=fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas, fused=fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "muon":
        hidden, rest = model.hidden_matrices()
        muon = (muon_class or Muon)(hidden, lr=config.muon_lr, weight_decay=config.weight_decay,
                    momentum=config.momentum, nesterov=True, ns_steps=config.muon_ns_steps,
                    adjust_lr_fn="match_rms_adamw",
                    ns_dtype=ns_dtype(device))
        adamw = torch.optim.AdamW(
            [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": config.weight_decay},
             {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}],
            lr=config.lr, betas=betas, fused=fused)
        return CombinedOptimizer(muon=muon, adamw=adamw)
    raise ValueError(f"TrainConfig.optimizer must be one of {', '.join(OPTIMIZERS)}, "
                     f"got {config.optimizer!r}")


def peak_lrs(optimizer) -> list[float]:
    """Each parameter group's peak LR, as the optimizer was built (before any schedule)."""
    return [group["lr"] for group in optimizer.param_groups]


def set_lr_factor(optimizer, peaks: list[float], factor: float) -> None:
    """Every group's LR = its own peak x the schedule's factor."""
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["lr"] = peak * factor
