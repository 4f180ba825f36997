"""The command line: `python -m lib.train` and `python -m lib.sample`.

Every error a user can cause (a bad flag, a bad value, a missing corpus or checkpoint, a
prompt the model cannot read) ends in one line on stderr and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from pathlib import Path

import torch

from . import data
from .checkpoint import CheckpointError, load_checkpoint
from .model import GPTConfig
from .course import PRESETS
from .trainer import MAX_SEED, TrainConfig, Trainer, TrainingDiverged, load_model, split_loss

USER_ERRORS = (ValueError, TypeError, data.CorpusError, CheckpointError, OSError)


def fail(parser: argparse.ArgumentParser, err: BaseException, code: int = 2):
    """Print one line, `PROG: error: ...`, on stderr and exit with `code` (2: a usage error)."""
    print(f"{parser.prog}: error: {err}", file=sys.stderr)
    sys.exit(code)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"--data {path}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"--data {path}: not a UTF-8 text file") from None
    except OSError as err:
        raise ValueError(f"--data {path}: cannot read it ({err.strerror})") from None


def load_corpus(path: str | None) -> data.CharCorpus:
    """Tiny Shakespeare by default, or any UTF-8 text file, character-tokenized and split."""
    if path is None:
        return data.load_char_corpus()
    text = _read_text(path)
    if len(text) < 2:
        raise ValueError(f"--data {path}: the file holds {len(text)} characters; a corpus needs more")
    tok = data.CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train, val = data.train_val_split(ids, 0.1)
    return data.CharCorpus(text, tok, train, val, data.sha256_of(path))


def field_help(cls) -> dict[str, str]:
    """The comment after each field of a config dataclass, as help text for its flag."""
    helps = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.*)", line)
        if m:
            helps[m.group(1)] = m.group(2)
    return helps


def add_config_flags(parser, cls, group_title: str, skip=()) -> None:
    """One --flag per field of a config dataclass, typed, with the field's comment as help."""
    group = parser.add_argument_group(group_title)
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        if kind == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=helps.get(f.name, ""))
        else:
            group.add_argument(flag, dest=f.name, type={"int": int, "float": float}.get(kind, str),
                               default=None, metavar=kind.upper(), help=helps.get(f.name, ""))


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lib.train",
        description="Train the course's GPT on Tiny Shakespeare (or any text file) and save a "
                    "checkpoint. Start from a preset; any field below overrides it.",
        epilog="Example: python -m lib.train --preset shakespeare-char-cpu --max-time 120",
    )
    p.add_argument("--preset", default="shakespeare-char-cpu", choices=sorted(PRESETS),
                   help="the starting configuration (default: %(default)s)")
    p.add_argument("--data", metavar="FILE",
                   help="a UTF-8 text file to train on instead of Tiny Shakespeare")
    p.add_argument("--out", dest="out_dir", metavar="DIR",
                   help="folder for the checkpoint (default: out/PRESET)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose checkpoint is in --out, exactly where it stopped")
    add_config_flags(p, GPTConfig, "model (GPTConfig fields)")
    add_config_flags(p, TrainConfig, "training (TrainConfig fields)", skip={"out_dir"})
    return p


def train_main(argv: list[str] | None = None) -> None:
    parser = train_parser()
    args = vars(parser.parse_args(argv))
    model_fields = {f.name for f in dataclasses.fields(GPTConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_over = {k: v for k, v in args.items() if k in model_fields and v is not None}
    train_over = {k: v for k, v in args.items() if k in train_fields and v is not None}
    train_over.setdefault("out_dir", str(Path("out") / args["preset"]))
    try:
        base_model, base_train = PRESETS[args["preset"]]
        dataclasses.replace(base_model, **model_over)  # bad values fail before any data is read
        dataclasses.replace(base_train, **train_over)
        if args["resume"]:
            load_checkpoint(train_over["out_dir"])  # a missing or damaged one fails here, early
        corpus = load_corpus(args["data"])
        model_config = dataclasses.replace(
            base_model, **{"vocab_size": corpus.tokenizer.vocab_size, **model_over})
        if args["resume"]:
            trainer = Trainer.resume(train_over["out_dir"], corpus.train, corpus.val, **train_over)
            if model_over and dataclasses.replace(trainer.model_config, **model_over) != trainer.model_config:
                raise ValueError("--resume continues the saved model; do not change its model flags")
            if trainer.is_main:
                print(f"Resuming from step {trainer.step} of {trainer.config.max_steps}.")
        else:
            config = dataclasses.replace(base_train, **train_over)
            trainer = Trainer(model_config, config, corpus.train, corpus.val, corpus.tokenizer)
        if trainer.is_main:
            ranks = f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""
            print(f"Training {trainer.model.num_parameters():,} parameters on "
                  f"{trainer.device}{ranks} ({trainer.dtype or torch.float32}), "
                  f"{trainer.tokens_per_step:,} tokens per step.")
        trainer.run()
    except TrainingDiverged as err:
        fail(parser, err, code=1)
    except USER_ERRORS as err:
        fail(parser, err)
    except KeyboardInterrupt:
        print("\nInterrupted; the last checkpoint (if any) is intact.", file=sys.stderr)
        sys.exit(130)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if not trainer.is_main:
        return
    last = trainer.history["eval"][-1]
    print(f"step {last['step']}: train loss {last['train_loss']:.4f}, "
          f"val loss {last['val_loss']:.4f} ({trainer.elapsed:.0f} s of training)")
    full = split_loss(trainer.model, corpus.val, device=trainer.device, dtype=trainer.dtype)
    print(f"val loss on the whole validation split ({len(corpus.val):,} tokens): {full:.4f}")
    print(f"checkpoint: {trainer.checkpoint_path}")


def sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lib.sample",
        description="Write text with a trained checkpoint.",
        epilog='Example: python -m lib.sample --checkpoint out/shakespeare-char-cpu '
               '--prompt "ROMEO:" --temperature 0.8 --top-k 40 --tokens 300 --seed 1',
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a checkpoint file or the folder holding ckpt.pt (the --out of lib.train)")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--tokens", type=int, default=500, help="how many tokens to write (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="0 = greedy; below 1 safer, above 1 wilder (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=None, help="sample only from the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample only from the smallest set of tokens whose probability reaches p")
    p.add_argument("--seed", type=int, default=None, help="make the text reproducible")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default: %(default)s)")
    return p


def sample_main(argv: list[str] | None = None) -> None:
    from .sampling import check_sampling_args, generate

    parser = sample_parser()
    args = parser.parse_args(argv)
    try:
        check_sampling_args(args.temperature, args.top_k, args.top_p)
        if args.tokens < 0:
            raise ValueError(f"--tokens must be >= 0, got {args.tokens}")
        if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
            raise ValueError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
        model, tokenizer, _ = load_model(args.checkpoint, args.device)
        if tokenizer is None:
            raise CheckpointError(f"{args.checkpoint} holds no tokenizer, so text cannot be encoded")
        prompt = args.prompt or "\n"
        try:
            ids = tokenizer.encode(prompt)
        except ValueError as err:
            raise ValueError(f"--prompt: {err}") from None
        device = next(model.parameters()).device
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
        out = generate(model, idx, args.tokens, args.temperature, args.top_k, args.top_p, gen)
    except USER_ERRORS as err:
        fail(parser, err)
    print(tokenizer.decode(out[0]))
