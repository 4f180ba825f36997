"""The pieces that language models changed since GPT-2, which `lib.model` switches on by name:

- rotary position embeddings (RoPE, Su et al. 2021): no position table; each query and key is
  rotated by an angle proportional to its position, so that their dot product depends on the
  distance between the two positions only;
- a SwiGLU feed-forward network (Shazeer 2020): a gate, SiLU(x W_gate), multiplies x W_up
  element by element, at 2/3 of GPT-2's width so that the parameter count stays the same;
- a KV cache for generation: the keys and values of the tokens already read are kept, so each
  new token costs one position's computation instead of the whole context's.

RMSNorm (Zhang and Sennrich 2019) and the attention itself are torch's own (`torch.nn.RMSNorm`,
`F.scaled_dot_product_attention`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ROPE_BASE = 10_000.0  # the rotation's slowest wavelength scale, as in RoPE and Llama


def rope_tables(head_dim: int, n_positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, each (n_positions, head_dim // 2).

    Pair i of a head's dimensions turns by angle p * ROPE_BASE^(-2i / head_dim) at position p:
    the first pairs turn fast (one radian per position), the last ones slowly.
    """
    freqs = ROPE_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(n_positions, dtype=torch.float64)[:, None] * freqs  # (P, head_dim/2)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[..., i], x[..., i + head_dim/2]) of x (B, n_head, T, head_dim) by the
    angles of its position; cos and sin are (T, head_dim / 2), the rows of x's positions."""
    x1, x2 = x.chunk(2, dim=-1)  # 2 x (B, n_head, T, head_dim/2)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # bfloat16 under autocast stays bfloat16
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, n_head, T, head_dim)


def swiglu_width(n_embd: int) -> int:
    """The hidden width of a SwiGLU MLP with about GPT-2's parameters: its three matrices of
    d x h match GPT-2's two of d x 4d at h = 8d/3, rounded to a multiple of 8."""
    return 8 * max(1, round(n_embd / 3))


class SwiGLU(nn.Module):
    """Gated feed-forward network: c_proj(SiLU(c_gate(x)) * c_fc(x)), 8d/3 wide."""

    def __init__(self, n_embd: int, bias: bool, dropout: float):
        super().__init__()
        hidden = swiglu_width(n_embd)
        self.c_gate = nn.Linear(n_embd, hidden, bias=bias)  # the gate: how much of each unit passes
        self.c_fc = nn.Linear(n_embd, hidden, bias=bias)  # the values that pass through the gate
        self.c_proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.silu(self.c_gate(x)) * self.c_fc(x)))


class KVCache:
    """The keys and values of every block for the tokens read so far, for generation.

    Room for `capacity` positions (the model's block_size) is allocated at a block's first write,
    in the dtype and on the device of its keys: per token 2 (key and value) x n_layer x n_embd
    numbers. `GPT.forward(idx, cache)` reads positions `length`, `length + 1`, ... and
    appends their keys and values; `reset` empties it (when the context window slides, every
    position changes, and the cache is rebuilt from the new window).
    """

    def __init__(self, n_layer: int, capacity: int):
        self.capacity, self.length = capacity, 0
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def reset(self) -> None:
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the keys and values (B, n_head, T, head_dim) of the T new positions in block
        `layer`; return those of all positions so far, (B, n_head, length + T, head_dim)."""
        B, H, T, D = k.shape
        end = self.length + T
        if end > self.capacity:
            raise ValueError(f"the KV cache holds {self.capacity} positions (block_size), and "
                             f"{self.length} + {T} do not fit: reset it and read the last "
                             f"{self.capacity} tokens")
        if self.k[layer] is None or self.k[layer].shape[0] != B or self.k[layer].dtype != k.dtype:
            self.k[layer] = k.new_zeros(B, H, self.capacity, D)  # (B, n_head, capacity, head_dim)
            self.v[layer] = v.new_zeros(B, H, self.capacity, D)
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Count n more positions as read (GPT.forward calls it once every block has written)."""
        self.length += n

    def nbytes(self) -> int:
        """Bytes the cache's tensors hold (all `capacity` positions, allocated or not yet)."""
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)
