"""OpenAI's published GPT-2 in the course's own `GPT`, with its byte-level BPE tokenizer.

The weights come from a Hugging Face snapshot: a folder written by `save_pretrained` (or
`hf download gpt2 --local-dir FOLDER`), or a hub name ("gpt2", "gpt2-medium",
"gpt2-large", "gpt2-xl") that is downloaded once and then read from Hugging Face's cache. Both
need `transformers` (`pip install transformers`, part of the course's `[test]` extra).

    model, tokenizer = load_gpt2("gpt2")       # 124M parameters, about 500 MB
    python -m lib.sample --pretrained gpt2 --prompt "ROMEO:"
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch

from .device import check_memory
from .model import GPT, GPTConfig

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


HUB_TIMEOUT = 10.0  # seconds the hub has to answer before the loader says what to do offline
HUB_FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit on a file's header
FLOATS = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
WIDTHS = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
          "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
GPT2_DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     layer_norm_epsilon=1e-5)  # what transformers' GPT2Config assumes when unsaid
_BUFFERS = (".attn.bias", ".attn.masked_bias")  # old causal-mask buffers, not weights
_TOKENIZER_FIX = "copy vocab.json and merges.txt (or tokenizer.json) from the hub's gpt2 folder"
_WEIGHTS_FIX = "download the weights again (hf download gpt2 --local-dir FOLDER)"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]


def _where(source: str | Path) -> tuple[str, bool]:
    """The path or hub name to load, and whether it is a local folder."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} holds no config.json: it is not a Hugging Face model folder "
                             "(write one with save_pretrained, or hf download gpt2 --local-dir FOLDER)")
        return str(path), True
    if str(source) not in GPT2_NAMES:
        raise ValueError(f"{source}: no such folder, and not a GPT-2 name on the Hugging Face hub "
                         f"({', '.join(GPT2_NAMES)})")
    return str(source), False


def _hub_snapshot(name: str, local_files_only: bool) -> Path:
    """The folder of Hugging Face's cache that holds a hub name's files, downloaded first when
    they are not there. Before downloading, the hub is asked once with a deadline (HUB_TIMEOUT):
    huggingface_hub retries every file on a network that never answers, which waits for ever."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise ValueError("Loading GPT-2 from the hub needs huggingface_hub: pip install "
                         "transformers (or the course's [test] extra)") from None
    offline = (f"download it once where there is a network (hf download {name}, which fills "
               "Hugging Face's cache), or pass a folder holding its files")
    try:
        paths = [hub.hf_hub_download(name, f, local_files_only=True) for f in HUB_FILES]
        return Path(paths[0]).parent
    except OSError:  # LocalEntryNotFoundError: not (wholly) in the cache
        pass
    if local_files_only or hub.constants.HF_HUB_OFFLINE:
        raise ValueError(f"GPT-2 {name} is not in Hugging Face's cache, and downloads are off: "
                         f"{offline}")
    try:
        hub.get_hf_file_metadata(hub.hf_hub_url(name, HUB_FILES[0]), timeout=HUB_TIMEOUT,
                                 retry_on_errors=False)
    except Exception as err:  # httpx's timeouts and network errors, the hub's HTTP errors alike
        raise ValueError(f"The Hugging Face hub did not answer for {name} within {HUB_TIMEOUT:g} s "
                         f"({type(err).__name__}; offline?): {offline}") from None
    try:
        paths = [hub.hf_hub_download(name, f, etag_timeout=HUB_TIMEOUT) for f in HUB_FILES]
    except Exception as err:  # the network went away while downloading, or the disk is full
        raise ValueError(f"Downloading {name} from the Hugging Face hub failed "
                         f"({type(err).__name__}: {_first_line(err)}): try again, or {offline}") from None
    return Path(paths[0]).parent


def _read_json(path: Path, fix: str):
    try:
        return json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: bad JSON
        raise ValueError(f"{path} is not readable JSON ({_first_line(err)}): {fix}") from None


def read_config(folder: Path) -> GPTConfig:
    """The course's GPTConfig of a folder's config.json, which must describe a GPT-2."""
    path, fix = folder / "config.json", "copy config.json from the hub's gpt2 folder"
    raw = _read_json(path, fix)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a JSON object of settings: {fix}")
    kind = raw.get("model_type")
    if kind != "gpt2":
        raise ValueError(f"{path} describes a model of type {kind!r:.40}, not 'gpt2': lib.pretrained "
                         f"loads GPT-2 only ({', '.join(GPT2_NAMES)}, or a folder of one)")
    raw = {**GPT2_DEFAULTS, **raw}
    if (raw.get("n_inner") not in (None, 4 * raw["n_embd"])
            or raw.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh")):
        raise ValueError(f"{path}: a GPT-2 variant (n_inner or activation_function changed) that "
                         "the course's GPT does not build")
    try:
        return GPTConfig(vocab_size=raw["vocab_size"], block_size=raw["n_positions"],
                         n_layer=raw["n_layer"], n_head=raw["n_head"], n_embd=raw["n_embd"],
                         dropout=0.0, bias=True, layer_norm_eps=raw["layer_norm_epsilon"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {_first_line(err)}") from None


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Each tensor's dtype and shape in a safetensors file, read from its header alone, after
    checking that every tensor it declares lies inside the file with the bytes its shape needs
    (a truncated file, or a header that declares a huge tensor, is refused before any read)."""
    def bad(why: str) -> ValueError:
        return ValueError(f"{path} is not a whole safetensors file: {why}; {_WEIGHTS_FIX}")

    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise bad(f"it holds {size} bytes, fewer than a header")
        n = int.from_bytes(prefix, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise bad(f"its header claims {n:,} bytes, and {size - 8:,} follow")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    header.pop("__metadata__", None)
    data, found = size - 8 - n, {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (dtype in WIDTHS and isinstance(shape, list) and len(shape) <= 8
                  and all(type(d) is int and d >= 0 for d in shape + [begin, end]))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise bad(f"the entry {name!r:.60} is not a tensor's dtype, shape and place")
        need = math.prod(shape) * WIDTHS[dtype]
        if not begin <= end <= data or end - begin != need:
            raise bad(f"{name:.60} declares {need:,} bytes at {begin:,} to {end:,}, in "
                      f"{data:,} bytes of tensors")
        found[name] = (dtype, tuple(shape))
    return found


def _hf_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """The shape of each weight of GPT-2 in Hugging Face's layout (its Conv1D matrices stored
    transposed), named as in the course's GPT; found on the meta device, allocating nothing."""
    with torch.device("meta"):
        ours = GPT(config).state_dict()
    return {k: tuple(v.shape[::-1]) if k.endswith(GPT._CONV1D) else tuple(v.shape)
            for k, v in ours.items()}


def _weights_file(folder: Path) -> tuple[Path, dict, object]:
    """The weights file of a folder, each tensor's dtype and shape, and a function that reads
    one tensor. model.safetensors is read lazily; a pytorch_model.bin only as plain tensors."""
    st, pt = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.is_file():
        entries, opened = read_safetensors_header(st), []
        from safetensors import safe_open

        def read(name):
            if not opened:  # opened once, when the first tensor is read
                opened.append(safe_open(st, framework="pt"))
            return opened[0].get_tensor(name)

        return st, entries, read
    if not pt.is_file():
        raise ValueError(f"{folder} holds no model.safetensors (nor a pytorch_model.bin): "
                         f"{_WEIGHTS_FIX}")
    check_memory({"pytorch_model.bin": pt.stat().st_size}, torch.device("cpu"), f"Reading {pt}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle's protocol before refusing it
            warnings.simplefilter("ignore")
            state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever the restricted unpickler raises on a hostile or damaged file
        raise ValueError(f"{pt} is not plain PyTorch weights (torch refused it: {type(err).__name__}; "
                         "a pickle that runs code, or a damaged file): use model.safetensors") from None
    if not (isinstance(state, dict) and all(torch.is_tensor(v) for v in state.values())):
        raise ValueError(f"{pt} is not a dict of tensors: use model.safetensors")
    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    entries = {k: (names.get(v.dtype, str(v.dtype)), tuple(v.shape)) for k, v in state.items()}
    return pt, entries, state.__getitem__


def _load_weights(folder: Path, config: GPTConfig) -> GPT:
    """The course's GPT with a folder's weights, every one checked: none missing (nothing is
    filled in at random), none extra, each of the shape config.json gives, floating-point and
    finite. One tensor is read at a time."""
    path, entries, read = _weights_file(folder)
    expected = _hf_shapes(config)
    theirs = {(k if k.startswith(("transformer.", "lm_head.")) else "transformer." + k): k
              for k in entries if not k.endswith(_BUFFERS)}  # the hub's gpt2 omits "transformer."
    missing = [k for k in expected if k not in theirs and k != "lm_head.weight"]  # the head is tied
    extra = [theirs[k] for k in theirs if k not in expected]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} of GPT-2's {len(expected)} weights "
                         f"({missing[0]}, ...): it is incomplete, and nothing is filled in at "
                         f"random; {_WEIGHTS_FIX}")
    if extra:
        raise ValueError(f"{path} holds weights GPT-2 does not have ({extra[0]:.60}, ...): "
                         "it is another model's")
    for ours, name in theirs.items():
        dtype, shape = entries[name]
        if shape != expected[ours]:
            raise ValueError(f"{path}: {name} has shape {shape}, and config.json's sizes give "
                             f"{expected[ours]}: the weights and config.json are of different models")
        if dtype not in FLOATS:
            raise ValueError(f"{path}: {name} holds {dtype} numbers, not floating-point weights "
                             "(quantised, or not GPT-2's): the course's GPT needs float weights")
    from safetensors import SafetensorError

    model = GPT(config)
    params = model.state_dict()
    try:
        with torch.no_grad():  # the tied head last: it is compared with the embedding read before
            for ours, name in sorted(theirs.items(), key=lambda item: item[0] == "lm_head.weight"):
                t = read(name)
                if not torch.isfinite(t).all():
                    raise ValueError(f"{path}: {name} holds NaN or infinite numbers: the weights "
                                     f"are damaged; {_WEIGHTS_FIX}")
                t = t.t() if ours.endswith(GPT._CONV1D) else t
                if ours == "lm_head.weight" and not torch.equal(t.float(), params[ours]):
                    raise ValueError(f"{path}: lm_head.weight differs from the token embedding, "
                                     "which GPT-2 ties to it: not GPT-2's weights")
                params[ours].copy_(t)
    except (OSError, RuntimeError, SafetensorError) as err:  # safetensors' own checks, a read error
        raise ValueError(f"{path} does not read ({_first_line(err)}): {_WEIGHTS_FIX}") from None
    return model


def load_gpt2(source: str | Path = "gpt2", local_files_only: bool = False,
              device: str | torch.device = "cpu") -> tuple[GPT, BPETokenizer]:
    """GPT-2's weights in a `lib.model.GPT` (eval mode) and its tokenizer, from a local folder or
    a hub name. With `local_files_only`, a hub name is read from Hugging Face's cache only (no
    download). Every failure, of the network or of any file in the folder, is a ValueError of
    one line that says what to install, download or copy; the model's memory is checked against
    the machine's before anything is built."""
    transformers = _transformers()
    where, local = _where(source)
    folder = Path(where) if local else _hub_snapshot(where, local_files_only)
    config = read_config(folder)
    n = GPT.estimate_parameters_unchecked(config)
    for place in {torch.device("cpu"), torch.device(device)}:  # built on the CPU, then moved
        check_memory({"weights": 4 * n}, place, f"{folder}: a GPT-2 with {n:,} parameters")
    tokenizer = BPETokenizer(_load_tokenizer(folder, transformers))
    model = _load_weights(folder, config)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"{where}: the tokenizer has {tokenizer.vocab_size} tokens, more than the "
                         f"model's vocabulary of {model.config.vocab_size}")
    return model.to(device).eval(), tokenizer


def _load_tokenizer(folder: Path, transformers):
    """GPT-2's byte-level BPE tokenizer from a folder, its files checked first: the tokenizers
    library reports a malformed file as a bare Exception, a vocab.json of the wrong shape not at all."""
    whole, vocab, merges = folder / "tokenizer.json", folder / "vocab.json", folder / "merges.txt"
    if not (whole.is_file() or vocab.is_file() and merges.is_file()):
        raise ValueError(f"{folder} has GPT-2's weights but not its tokenizer (vocab.json and "
                         f"merges.txt, or tokenizer.json): {_TOKENIZER_FIX}")
    if whole.is_file() and not isinstance(_read_json(whole, _TOKENIZER_FIX), dict):
        raise ValueError(f"{whole} is not a JSON object: {_TOKENIZER_FIX}")
    if vocab.is_file() and merges.is_file():
        ids = _read_json(vocab, _TOKENIZER_FIX)
        if not (isinstance(ids, dict) and ids
                and all(type(i) is int and i >= 0 for i in ids.values())):
            raise ValueError(f"{vocab} is not a JSON object of tokens and their ids: {_TOKENIZER_FIX}")
        try:
            merges.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{merges} is not UTF-8 text (byte {err.start:,}): "
                             f"{_TOKENIZER_FIX}") from None
    try:
        return transformers.GPT2TokenizerFast.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # the tokenizers library raises a bare Exception on a malformed file
        raise ValueError(f"{folder}: its tokenizer does not load ({_first_line(err)}): "
                         f"{_TOKENIZER_FIX}") from None


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
