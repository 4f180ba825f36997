"""The GPT the course trains: by default exactly the GPT-2 architecture, at any size.

Read top to bottom, this file follows the diagram of the model:

    tokens -> token embedding + position embedding -> dropout
           -> n_layer x Block( x + Attention(LayerNorm(x)) ; x + MLP(LayerNorm(x)) )
           -> final LayerNorm -> language-model head (tied to the token embedding) -> logits

Switches in GPTConfig (lib.model_config) swap in what models changed since (`lib.blocks`): rotary positions instead
of the position table, RMSNorm, a SwiGLU MLP, normalised queries and keys, no biases;
`GPTConfig(...).with_arch("modern")` turns them all on. `forward(idx, cache)` reads only new
tokens when handed a `KVCache` holding the keys and values of the earlier ones.

Parameter names are GPT-2's (`transformer.wte`, `transformer.h.0.attn.c_attn`, ...), so weights
move between this model and Hugging Face's `GPT2LMHeadModel` with only the transposes of its
Conv1D layers (see `GPT.from_hf_state_dict` and `GPT.to_hf_state_dict`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import KVCache, SwiGLU, apply_rope, rope_tables
from .model_config import ARCHS, GPTConfig  # noqa: F401 (ARCHS: named here for lib's callers)


def make_norm(config: GPTConfig, dim: int) -> nn.Module:
    """GPT-2's LayerNorm (subtract the mean, divide by the spread, scale, shift) or RMSNorm
    (divide by the root mean square, scale: no mean, no bias)."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(dim, eps=config.layer_norm_eps)
    return nn.LayerNorm(dim, eps=config.layer_norm_eps, bias=config.bias)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends only to positions <= t."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.dropout = config.dropout
        # query, key and value projections for all heads, in one matrix
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # output projection back into the residual stream
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        if config.qk_norm:  # one gain per head dimension, shared by the heads
            self.q_norm = nn.RMSNorm(config.head_dim, eps=config.layer_norm_eps)
            self.k_norm = nn.RMSNorm(config.head_dim, eps=config.layer_norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def qkv(self, x: torch.Tensor, rope=None):
        """Queries, keys and values of x (B, T, C), each (B, n_head, T, head_dim): normalised
        (qk_norm) and rotated by the (cos, sin) of their positions (rope), where switched on."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, n_head, T, head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def forward(self, x: torch.Tensor, rope=None, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x, rope)
        start, mask = 0, None
        if cache is not None:  # earlier positions' keys and values come from the cache
            start = cache.length
            k, v = cache.update(layer, k, v)  # 2 x (B, n_head, start + T, head_dim)
            if start and T > 1:  # new query i (position start + i) sees keys 0 .. start + i
                mask = (torch.arange(start + T, device=x.device)[None, :]
                        <= torch.arange(start, start + T, device=x.device)[:, None])  # (T, start+T)
        # softmax(q k^T / sqrt(head_dim)) v, with the future masked out; one new query after
        # cached keys has no future to mask
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=start == 0 and T > 1,
        )  # (B, n_head, T, head_dim)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

    @torch.no_grad()
    def attention_pattern(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        """The attention weights softmax(q k^T / sqrt(head_dim)) with the causal mask, written out.

        x is the block's input after ln_1, (B, T, C); returns (B, n_head, T, T), each row a
        distribution over the positions <= its own. forward() computes the same thing fused.
        """
        T = x.size(1)
        q, k, _ = self.qkv(x, rope)  # 2 x (B, n_head, T, head_dim)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, n_head, T, T)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


class MLP(nn.Module):
    """Position-wise feed-forward network: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 uses the tanh approximation of GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One transformer block, pre-norm: each sub-layer adds to the residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config, config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config, config.n_embd)
        self.mlp = (MLP(config) if config.mlp == "gelu"
                    else SwiGLU(config.n_embd, config.bias, config.dropout))

    def forward(self, x: torch.Tensor, rope=None, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope, cache, layer)  # tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # each position computes on what it gathered
        return x


class GPT(nn.Module):
    """The GPT language model: token ids (B, T) in, next-token logits (B, T, vocab_size) out."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config  # (too big for the machine? lib.device.check_model_memory, first)
        parts = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embedding
        if config.position == "learned":
            parts["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # position embedding
        else:  # rotary: the rotation tables, computed (not learned, not saved)
            cos, sin = rope_tables(config.head_dim, config.block_size)  # 2 x (block_size, head_dim/2)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        parts.update(drop=nn.Dropout(config.dropout),
                     h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                     ln_f=make_norm(config, config.n_embd))
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one matrix, used twice
        self.apply(self._init_weights)
        self._scale_residual_projections()

    # ------------------------------------------------------------------ size, before building

    @staticmethod
    def estimate_parameters_unchecked(config: GPTConfig) -> int:
        """The parameter count of GPT(config), from the config alone (exact; tested), without
        building it: `lib.device.check_model_memory` uses it to refuse a model too big for the
        machine before any memory is allocated."""
        d, L, b, h = config.n_embd, config.n_layer, int(config.bias), config.mlp_hidden
        norm = d if config.norm == "rmsnorm" else d + b * d  # gain (and LayerNorm's bias)
        mlp = (d * h + b * h + h * d + b * d  # MLP: c_fc, c_proj
               + (d * h + b * h if config.mlp == "swiglu" else 0))  # SwiGLU's c_gate
        per_block = (
            2 * norm  # two norms
            + d * 3 * d + b * 3 * d + d * d + b * d  # attention: c_attn, c_proj
            + 2 * config.head_dim * config.qk_norm  # q_norm, k_norm
            + mlp
        )
        positions = config.block_size * d if config.position == "learned" else 0
        return config.vocab_size * d + positions + L * per_block + norm

    @classmethod
    def training_memory_bytes(cls, config: GPTConfig) -> dict[str, int]:
        """The bytes that training with AdamW in float32 keeps for the whole run, before any
        activations: four numbers per parameter (weight, gradient, AdamW's two moments)."""
        n = cls.estimate_parameters_unchecked(config)
        return {"weights": 4 * n, "gradients": 4 * n, "AdamW moments": 8 * n}

    # ------------------------------------------------------------------ initialisation

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2's initialisation, applied to every module.

        - Linear and Embedding weights: N(0, 0.02); biases zero. The tied head shares the token
          embedding's matrix, so that matrix is drawn twice, first as the embedding and then as
          the head's Linear (module order); the second draw, from the same N(0, 0.02), is kept.
        - LayerNorm and RMSNorm: weight one, bias zero (PyTorch's default, left as it is).
        - The special case, `_scale_residual_projections`: the two projections that write into
          the residual stream in each block (attn.c_proj, mlp.c_proj) get std 0.02 / sqrt(2 *
          n_layer), so the stream's variance does not grow with depth (2 writes per block).
        """
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def _scale_residual_projections(self) -> None:
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=std)

    # ------------------------------------------------------------------ forward

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits for the next token at every position: (B, T) ids -> (B, T, vocab_size).

        With a `cache` (from `new_cache`), idx holds the tokens at positions cache.length,
        cache.length + 1, ...: they attend to the cached keys and values of the earlier ones,
        and their own are added to the cache.
        """
        if idx.dim() != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got shape {tuple(idx.shape)}")
        B, T = idx.shape
        idx = idx.long()  # a prepared corpus's splits are uint8/16/32 (lib.tokenfiles)
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(
                f"Sequence of {start + T} tokens is longer than the model's block_size "
                f"{self.config.block_size}: crop it to the last {self.config.block_size} tokens."
            )
        x, rope = self._embed(idx, start)  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope, cache, i)  # (B, T, C)
        if cache is not None:
            cache.advance(T)
        x = self.transformer.ln_f(x)
        return self.lm_head(x)  # (B, T, vocab_size)

    def _embed(self, idx: torch.Tensor, start: int = 0):
        """The residual stream entering the first block for the tokens idx (B, T) at positions
        start, start + 1, ...; and the rotation tables of those positions (None without RoPE)."""
        T = idx.size(1)
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.position == "learned":
            pos = torch.arange(start, start + T, device=idx.device)  # (T,)
            x = x + self.transformer.wpe(pos)  # (B, T, C) + (T, C)
        else:
            rope = (self.rope_cos[start:start + T], self.rope_sin[start:start + T])  # 2 x (T, head_dim/2)
        return self.transformer.drop(x), rope

    def new_cache(self) -> KVCache:
        """An empty KV cache for this model, with room for block_size positions."""
        return KVCache(self.config.n_layer, self.config.block_size)

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """The attention weights of block `layer` (negative counts from the end) for the ids
        `idx` (B, T): (B, n_head, T, T), each row a distribution over the positions <= its own.
        Runs in eval mode (no dropout) and restores the mode it found."""
        if not -self.config.n_layer <= layer < self.config.n_layer:
            raise ValueError(f"layer must be in [{-self.config.n_layer}, {self.config.n_layer}), got {layer}")
        was_training = self.training
        self.eval()
        try:
            x, rope = self._embed(idx)  # as in forward
            blocks = self.transformer.h
            for block in blocks[: layer % len(blocks)]:
                x = block(x, rope)  # the residual stream entering block `layer`
            block = blocks[layer]
            return block.attn.attention_pattern(block.ln_1(x), rope)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ counting

    def num_parameters(self) -> int:
        """Number of parameters, the tied head/embedding matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters by component. The head is tied to `wte`, so it adds none of its own."""
        parts = {"token embedding": 0, "position embedding": 0, "attention": 0, "MLP": 0,
                 "layer norms": 0, "head (tied)": 0}
        for name, p in self.named_parameters():  # tied parameters are listed once
            if name.startswith("transformer.wte"):
                parts["token embedding"] += p.numel()
            elif name.startswith("transformer.wpe"):
                parts["position embedding"] += p.numel()
            elif ".attn." in name:
                parts["attention"] += p.numel()
            elif ".mlp." in name:
                parts["MLP"] += p.numel()
            elif ".ln_" in name:
                parts["layer norms"] += p.numel()
            else:  # an untied lm_head, if someone unties it
                parts["head (tied)"] += p.numel()
        return parts

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), for model FLOP utilisation.

        6 N for the matrix multiplies by the weights (2 per multiply-add forward, twice that
        backward), where N counts every parameter a token is multiplied by: all except the
        position embedding, which is only added (the tied head counts, as the output layer).
        Plus the attention scores and their weighted sum, which have no weights:
        2 * 2 * n_layer * T * d forward per token, times 3 for training = 12 n_layer T d.
        The causal mask halves the useful part of the latter; like most reports we do not.
        """
        c = self.config
        T = c.block_size if seq_len is None else seq_len
        n = self.num_parameters() - (c.block_size * c.n_embd if c.position == "learned" else 0)
        return 6 * n + 12 * c.n_layer * T * c.n_embd

    # ------------------------------------------------------------------ optimisation

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: weight decay on matrices (2-D) only, never on biases or norms.

        Every parameter lands in exactly one group (checked).
        """
        params = dict(self.named_parameters())
        decay = [p for n, p in params.items() if p.dim() >= 2]
        no_decay = [p for n, p in params.items() if p.dim() < 2]
        assert len(decay) + len(no_decay) == len(params)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def hidden_matrices(self) -> tuple[list, list]:
        """(the 2-D weight matrices inside the blocks, every other parameter).

        Muon orthogonalises the update of a matrix that maps one hidden vector to another; the
        embeddings (a lookup table, and through the tied head the output layer), the biases and
        the norms' gains are not such matrices and stay with AdamW. Every parameter lands in
        exactly one list (checked).
        """
        params = dict(self.named_parameters())  # the tied head is listed once, as wte
        hidden = [p for n, p in params.items() if n.startswith("transformer.h.") and p.dim() == 2]
        rest = [p for n, p in params.items() if not (n.startswith("transformer.h.") and p.dim() == 2)]
        assert len(hidden) + len(rest) == len(params)
        return hidden, rest

    # ------------------------------------------------------------------ Hugging Face GPT-2

    # Hugging Face's GPT-2 stores these as Conv1D weights of shape (in, out): transpose them.
    _CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

    @classmethod
    def config_from_hf(cls, hf_config, dropout: float = 0.0) -> GPTConfig:
        """The GPTConfig of a `transformers.GPT2Config`."""
        return GPTConfig(
            vocab_size=hf_config.vocab_size,
            block_size=hf_config.n_positions,
            n_layer=hf_config.n_layer,
            n_head=hf_config.n_head,
            n_embd=hf_config.n_embd,
            dropout=dropout,
            bias=True,
            layer_norm_eps=hf_config.layer_norm_epsilon,
        )

    @classmethod
    def from_hf_state_dict(cls, state_dict: dict, config: GPTConfig) -> "GPT":
        """A GPT holding the weights of a Hugging Face `GPT2LMHeadModel` state dict."""
        model = cls(config)
        ours = model.state_dict()
        theirs = {k: v for k, v in state_dict.items()
                  if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # old causal-mask buffers
        missing = set(ours) - set(theirs)
        unexpected = set(theirs) - set(ours)
        if missing or unexpected:
            raise ValueError(
                f"State dict does not match GPTConfig {config}: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        with torch.no_grad():
            for k, v in theirs.items():
                v = v.t() if k.endswith(cls._CONV1D) else v
                if v.shape != ours[k].shape:
                    raise ValueError(f"{k}: shape {tuple(v.shape)} does not fit {tuple(ours[k].shape)}")
                ours[k].copy_(v)
        return model

    def to_hf_state_dict(self) -> dict:
        """This model's weights as a Hugging Face `GPT2LMHeadModel` state dict."""
        return {k: (v.t().contiguous() if k.endswith(self._CONV1D) else v.clone())
                for k, v in self.state_dict().items()}


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The language-modelling loss: mean cross-entropy of the next token over all positions.

    logits (B, T, V) and targets (B, T) are flattened to B*T independent predictions.
    """
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T))
