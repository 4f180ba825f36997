"""OpenAI's published GPT-2 in the course's own `GPT`, with its byte-level BPE tokenizer.

The weights come from a Hugging Face snapshot: a folder written by `save_pretrained` (or
`huggingface-cli download gpt2 --local-dir FOLDER`), or a hub name ("gpt2", "gpt2-medium",
"gpt2-large", "gpt2-xl") that is downloaded once and then read from Hugging Face's cache. Both
need `transformers` (`pip install transformers`, part of the course's `[test]` extra).

    model, tokenizer = load_gpt2("gpt2")       # 124M parameters, about 500 MB
    python -m lib.sample --pretrained gpt2 --prompt "ROMEO:"
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .model import GPT

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


class BPETokenizer:
    """A Hugging Face tokenizer with the interface of the course's CharTokenizer (encode to a
    list of ids, decode a list of ids), so the course's sampling code can use either."""

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text)

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.hf.decode(ids)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError("Loading GPT-2's weights needs the transformers package: "
                         "pip install transformers (or the course's [test] extra)") from None
    return transformers


def _where(source: str | Path) -> tuple[str, bool]:
    """The path or hub name to give `from_pretrained`, and whether it is a local folder."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} holds no config.json: it is not a Hugging Face model folder "
                             "(write one with save_pretrained, or huggingface-cli download gpt2 "
                             "--local-dir FOLDER)")
        return str(path), True
    if str(source) not in GPT2_NAMES:
        raise ValueError(f"{source}: no such folder, and not a GPT-2 name on the Hugging Face hub "
                         f"({', '.join(GPT2_NAMES)})")
    return str(source), False


def load_gpt2(source: str | Path = "gpt2", local_files_only: bool = False,
              device: str | torch.device = "cpu") -> tuple[GPT, BPETokenizer]:
    """GPT-2's weights in a `lib.model.GPT` (eval mode) and its tokenizer, from a local folder or
    a hub name. With `local_files_only`, a hub name is read from Hugging Face's cache only (no
    download). Every failure is a ValueError that says what to install or download."""
    transformers = _transformers()
    where, local = _where(source)
    try:
        hf = transformers.GPT2LMHeadModel.from_pretrained(where, local_files_only=local_files_only)
    except OSError as err:
        how = ("it has no readable weights (model.safetensors or pytorch_model.bin)" if local else
               "it is not in Hugging Face's cache and could not be downloaded (offline?): "
               f"download it once with `huggingface-cli download {where}`, or pass a folder")
        raise ValueError(f"Cannot load GPT-2 from {where}: {how} ({type(err).__name__})") from None
    missing = ValueError(f"{where} has GPT-2's weights but not its tokenizer (vocab.json and "
                         "merges.txt, or tokenizer.json): copy them from the hub's gpt2 folder")
    folder = Path(where)
    if local and not ((folder / "tokenizer.json").is_file()
                      or (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        raise missing  # transformers would build an empty tokenizer instead of failing
    try:
        hf_tok = transformers.AutoTokenizer.from_pretrained(where, local_files_only=local_files_only)
    except (OSError, ValueError, TypeError):
        raise missing from None
    model = GPT.from_hf_state_dict(hf.state_dict(), GPT.config_from_hf(hf.config))
    tokenizer = BPETokenizer(hf_tok)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"{where}: the tokenizer has {tokenizer.vocab_size} tokens, more than the "
                         f"model's vocabulary of {model.config.vocab_size}")
    return model.to(device).eval(), tokenizer


@torch.no_grad()
def bits_per_character(model: GPT, tokenizer, text: str, device: str | torch.device = "cpu",
                       stride: int | None = None) -> float:
    """The model's cross-entropy on `text` in bits per character of the text, so that models
    with different tokenizers (characters, BPE) can be compared: the sum over every token of
    -log2 p(token | the tokens before it, up to the context), divided by the characters.

    Windows of the model's context overlap by half (`stride`), and only each window's new
    tokens are scored, so every token but the first is predicted with at least half a context."""
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) < 2 or not text:
        raise ValueError("bits_per_character needs a text of at least two tokens")
    context = model.config.block_size
    stride = stride or max(1, context // 2)
    model.eval()
    total, scored, start = 0.0, 0, 0
    while scored < len(ids) - 1:
        window = ids[start : start + context + 1]
        x, y = window[:-1].to(device)[None], window[1:].to(device)[None]
        logp = torch.log_softmax(model(x).float(), dim=-1)[0]
        nll = -logp.gather(1, y[0][:, None])[:, 0]
        new = start + len(y[0]) - scored  # targets of this window not scored before
        total += nll[len(nll) - new :].sum().item()
        scored += new
        start += stride
    return total / math.log(2) / len(text)
