"""GPTConfig: the shape and the architecture of a GPT (lib.model builds it), every field with its
default and meaning, checked when made. The defaults are GPT-2's architecture; `ARCHS` names the
combinations of the architecture switches, and `GPTConfig.with_arch` applies one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from . import checks
from .blocks import swiglu_width

# The architecture switches of each named architecture (GPTConfig.with_arch, `--arch`).
ARCHS = {
    "gpt2": dict(position="learned", norm="layernorm", mlp="gelu", qk_norm=False, bias=True),
    "modern": dict(position="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, bias=False),
}


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are the classic small character-level model."""

    vocab_size: int = 65  # number of distinct tokens (65 characters in Tiny Shakespeare)
    block_size: int = 256  # context length T: the most tokens the model reads at once
    n_layer: int = 6  # number of transformer blocks
    n_head: int = 6  # attention heads per block; each is n_embd // n_head wide
    n_embd: int = 384  # width of the residual stream (embedding size d)
    dropout: float = 0.0  # dropout probability in training (0 = off, best for small data + short runs)
    bias: bool = True  # biases in Linear layers and LayerNorms, as in GPT-2
    layer_norm_eps: float = 1e-5  # LayerNorm (and RMSNorm) epsilon, GPT-2's value
    position: str = "learned"  # learned (GPT-2's position table) or rope (rotary, no table)
    norm: str = "layernorm"  # layernorm (GPT-2) or rmsnorm (no mean subtracted, no bias)
    mlp: str = "gelu"  # gelu (GPT-2, 4d wide) or swiglu (gated, 8d/3 wide: as many parameters)
    qk_norm: bool = False  # RMSNorm on each head's queries and keys before attention

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            checks.integer(f"GPTConfig.{name}", getattr(self, name), 1)
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                f"each head gets n_embd // n_head dimensions. Try n_embd = "
                f"{self.n_head * max(1, round(self.n_embd / self.n_head))}."
            )
        checks.number("GPTConfig.dropout", self.dropout, 0.0, 1.0, high_open=True)
        checks.boolean("GPTConfig.bias", self.bias)
        # smaller epsilons vanish in float32 arithmetic
        checks.number("GPTConfig.layer_norm_eps", self.layer_norm_eps, 1e-12, 1, high_open=True)
        checks.choice("GPTConfig.position", self.position, ("learned", "rope"))
        checks.choice("GPTConfig.norm", self.norm, ("layernorm", "rmsnorm"))
        checks.choice("GPTConfig.mlp", self.mlp, ("gelu", "swiglu"))
        checks.boolean("GPTConfig.qk_norm", self.qk_norm)
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"GPTConfig.position='rope' rotates pairs of dimensions, so each head "
                             f"needs an even width; n_embd // n_head is {self.head_dim}: change "
                             f"n_embd or n_head")

    def with_arch(self, name: str) -> "GPTConfig":
        """A copy of this config with the switches of the named architecture (ARCHS): "gpt2" or
        "modern" (rotary positions, RMSNorm, SwiGLU, QK-norm, no biases)."""
        checks.choice("arch", name, ARCHS)
        return replace(self, **ARCHS[name])

    @property
    def arch(self) -> str:
        """The name of this config's architecture in ARCHS, or its switches where it has none."""
        switches = {k: getattr(self, k) for k in ARCHS["gpt2"]}
        for name, values in ARCHS.items():
            if switches == values:
                return name
        return ", ".join(f"{k}={v}" for k, v in switches.items())

    @property
    def mlp_hidden(self) -> int:
        """The MLP's hidden width: 4d for GELU, about 8d/3 for SwiGLU (lib.blocks.swiglu_width)."""
        return 4 * self.n_embd if self.mlp == "gelu" else swiglu_width(self.n_embd)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown GPTConfig field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
