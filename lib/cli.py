"""The command line: `python -m lib.train` and `python -m lib.sample`.

Every error a user can cause (a bad flag, a bad value, a missing corpus or checkpoint, a
prompt the model cannot read) ends in one line on stderr and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import signal
import sys
import threading
from pathlib import Path

import torch

from . import checks, data
from .checkpoint import CheckpointError, check_writable, load_checkpoint, load_model, lock_run
from .config import MAX_SEED, MAX_STEPS
from .course import PRESETS
from .data import corpus_record, load_corpus, resume_corpus
from .device import cleanup_runtime, init_runtime
from .evaluation import EVAL_TOKENS, evaluated_tokens, split_loss
from .limits import check_path_name, check_run_fits
from .model import ARCHS, GPTConfig
from .terminal import Unfailing
from .trainer import TrainConfig, Trainer, TrainingDiverged, steps_in_time

USER_ERRORS = (ValueError, TypeError, data.CorpusError, CheckpointError, OSError)


def fail(parser: argparse.ArgumentParser, err: BaseException, code: int = 2):
    """Print one line, `PROG: error: ...`, on stderr and exit with `code` (2: a usage error).
    Control characters (a terminal escape code in a file name or a corpus) are shown escaped,
    never sent to the terminal."""
    print(f"{parser.prog}: error: {printable(str(err))}", file=sys.stderr)
    sys.exit(code)


def printable(text: str) -> str:
    """`text` on one line with its control characters written as escapes (ESC as \\x1b)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


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
                    "checkpoint. Start from a preset; any field below overrides it. Ctrl-C "
                    "stops after the current step and saves it; --resume continues from there.",
        epilog="Example: python -m lib.train --preset shakespeare-char-cpu --max-time 120",
    )
    p.add_argument("--preset", default="shakespeare-char-cpu", choices=sorted(PRESETS),
                   help="the starting configuration (default: %(default)s)")
    p.add_argument("--data", metavar="PATH",
                   help="what to train on instead of Tiny Shakespeare: a folder prepared by "
                        "python -m lib.prepare, or a UTF-8 text file or folder of them, which is "
                        "prepared first into the course's cache (a resumed run reads the corpus "
                        "it was trained on)")
    p.add_argument("--tokenizer", metavar="SPEC",
                   help="with --data text: 'char' (default) or 'bpe:N', a byte-level BPE of N "
                        "tokens trained on that text")
    p.add_argument("--glob", metavar="PATTERN",
                   help="with --data a folder of text: only the files matching PATTERN (e.g. '*.py')")
    p.add_argument("--eval-tokens", type=int, default=EVAL_TOKENS, metavar="N",
                   help="the final whole-split validation loss reads at most N tokens "
                        "(default: %(default)s)")
    p.add_argument("--out", dest="out_dir", metavar="DIR",
                   help="folder for the checkpoint (default: out/PRESET)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run whose checkpoint is in --out, exactly where it "
                            "stopped, with its own settings (flags given here override them)")
    start.add_argument("--overwrite", action="store_true",
                       help="start a new run even if --out holds one (which it replaces)")
    p.add_argument("--arch", choices=sorted(ARCHS),
                   help="the architecture's switches in one word: gpt2 (the preset's) or modern "
                        "(rotary positions, RMSNorm, SwiGLU, QK-norm, no biases); the model "
                        "flags below override single switches")
    add_config_flags(p, GPTConfig, "model (GPTConfig fields)")
    add_config_flags(p, TrainConfig, "training (TrainConfig fields)", skip={"out_dir"})
    return p


class _StopOnSignals:
    """While active, SIGINT (Ctrl-C) and SIGTERM ask the trainer to stop after the current step
    (it then saves); a second signal while stopping is acknowledged, not obeyed, so the save
    completes. Outside the main thread (where signals cannot be caught) it does nothing."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # SIGHUP: the terminal was closed (POSIX only)

    def __init__(self, trainer: Trainer):
        self.trainer, self.previous, self.received = trainer, {}, None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGHUP":  # the terminal is gone: writing to it fails, which must not stop the save
            sys.stdout, sys.stderr = Unfailing(sys.stdout), Unfailing(sys.stderr)
        if self.received is None:
            self.received = signum
            self.trainer.request_stop(name)
            if self.trainer.is_main:
                print(f"\n{name}: stopping after this step and saving a checkpoint ...",
                      file=sys.stderr, flush=True)
        elif self.trainer.is_main:
            print(f"{name} again: still saving the checkpoint; it takes a moment.",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                if hasattr(signal, name):
                    sig = getattr(signal, name)
                    if name == "SIGHUP" and signal.getsignal(sig) == signal.SIG_IGN:
                        continue  # started with nohup: the run is meant to outlive the terminal
                    self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _configs_for(args: dict, model_over: dict, train_over: dict):
    """Every flag's value checked before any data is read: against the preset for a new run,
    against the checkpoint's own settings with --resume. Returns that checkpoint's state, or
    None for a new run."""
    base_model, base_train = PRESETS[args["preset"]]
    dataclasses.replace(base_model, **model_over)  # bad values fail before any data is read
    if not args["resume"]:
        dataclasses.replace(base_train, **train_over)
        return None
    state = load_checkpoint(train_over["out_dir"])  # a missing or damaged one fails here, early
    try:
        saved_model = GPTConfig.from_dict(state["model_config"])
        TrainConfig.from_dict({**state["train_config"], **train_over})  # the run's own settings
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{train_over['out_dir']}: not a training checkpoint of this "
                              f"course ({err!r})") from None
    if model_over and dataclasses.replace(saved_model, **model_over) != saved_model:
        raise ValueError(f"--resume continues the saved model (architecture {saved_model.arch}); "
                         "do not change its model flags or --arch")
    step = state.get("step")
    max_steps = train_over.get("max_steps", state["train_config"].get("max_steps"))
    if isinstance(step, int) and isinstance(max_steps, int) and max_steps <= step:
        raise ValueError(f"{train_over['out_dir']} holds a run at step {step}, and --resume trains "
                         f"up to max_steps={max_steps}: nothing to train (the checkpoint is left "
                         f"as it is). Pass --max-steps above {step} to train it further.")
    return state


def _fit_steps_to_time(config: TrainConfig, model_config: GPTConfig, corpus) -> TrainConfig:
    """With --max-time and no --max-steps, the preset's max_steps would cap a fast machine
    before its time is up: set it from a short timing here instead (lib.trainer.steps_in_time),
    so the run uses the whole budget and the schedule ends with the time on any machine. Under
    torchrun the ranks would time themselves apart and disagree, so there it is left as it is."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return config
    steps = min(steps_in_time(model_config, config, corpus.train, corpus.val, config.max_time),
                MAX_STEPS)
    print(f"Timed a few steps: max_steps set to {steps:,} for {config.max_time:g} s on this "
          f"machine (the time ends the run; --max-steps sets it yourself).")
    return dataclasses.replace(config, max_steps=steps)


def train_main(argv: list[str] | None = None) -> None:
    parser = train_parser()
    args = vars(parser.parse_args(argv))
    model_fields = {f.name for f in dataclasses.fields(GPTConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_over = {k: v for k, v in args.items() if k in model_fields and v is not None}
    if args["arch"]:
        model_over = {**ARCHS[args["arch"]], **model_over}
    train_over = {k: v for k, v in args.items() if k in train_fields and v is not None}
    if train_over.get("out_dir") == "":
        fail(parser, ValueError("--out needs a folder to save the checkpoint in"))
    train_over.setdefault("out_dir", str(Path("out") / args["preset"]))
    try:
        check_path_name(train_over["out_dir"], "--out")
    except ValueError as err:
        fail(parser, err)
    if os.path.exists(train_over["out_dir"]) and not os.path.isdir(train_over["out_dir"]):
        fail(parser, ValueError(f"--out {train_over['out_dir']} is a file; --out (TrainConfig."
                                "out_dir) names the folder that holds ckpt.pt: choose a folder"))
    trainer = lock = None
    try:
        checks.integer("--eval-tokens", args["eval_tokens"], 1)
        state = _configs_for(args, model_over, train_over)
        out = train_over["out_dir"]
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 holds it for all
            lock = lock_run(out)  # a second run into the same --out is refused, until this ends
        if state is None and not args["overwrite"]:
            _refuse_to_replace_a_run(out)
        if state is not None:
            check_run_fits(GPTConfig.from_dict(state["model_config"]),
                           TrainConfig.from_dict({**state["train_config"], **train_over}))
            data_path, corpus = resume_corpus(args["data"], state)
            trainer = Trainer.resume(out, corpus.train, corpus.val, **train_over)
            if trainer.is_main:
                print(f"Resuming from step {trainer.step} of {trainer.config.max_steps}"
                      f"{' on ' + data_path if data_path else ''}.")
        else:
            data_path, corpus = args["data"], _corpus(args)
            model_config = dataclasses.replace(
                PRESETS[args["preset"]][0], **{"vocab_size": corpus.tokenizer.vocab_size, **model_over})
            config = dataclasses.replace(PRESETS[args["preset"]][1], **train_over)
            if config.max_time and "max_steps" not in train_over:
                config = _fit_steps_to_time(config, model_config, corpus)
            check_run_fits(model_config, config)  # before the batches are built, from the memory
            trainer = Trainer(model_config, config, corpus.train, corpus.val, corpus.tokenizer)
        trainer.meta["corpus"] = corpus_record(data_path, corpus)
        if trainer.is_main:
            ranks = f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""
            print(f"Training {trainer.model.num_parameters():,} parameters on "
                  f"{trainer.device}{ranks} ({trainer.dtype or torch.float32}), "
                  f"{trainer.tokens_per_step:,} tokens per step.")
        with _StopOnSignals(trainer) as stop:
            trainer.run()
    except TrainingDiverged as err:
        fail(parser, err, code=1)
    except USER_ERRORS as err:
        fail(parser, err)
    except KeyboardInterrupt:
        saved = "" if trainer is None else " (a checkpoint saved earlier in --out is intact)"
        print(f"\nInterrupted before training began; nothing new was saved{saved}.", file=sys.stderr)
        sys.exit(130)
    finally:
        if lock is not None:
            lock.close()  # the checkpoint is final: another run may use the folder
    cleanup_runtime()
    if not trainer.is_main:
        if stop.received:
            sys.exit(128 + stop.received)
        return
    if stop.received:
        print(f"Stopped at step {trainer.step} of {trainer.config.max_steps}; checkpoint saved: "
              f"{trainer.checkpoint_path}. Continue with: python -m lib.train --resume --out "
              f"{trainer.config.out_dir}", file=sys.stderr)
        sys.exit(128 + stop.received)  # 130 for SIGINT, 143 for SIGTERM: the shell's convention
    last = trainer.history["eval"][-1]
    print(f"step {last['step']}: train loss {last['train_loss']:.4f}, "
          f"val loss {last['val_loss']:.4f} ({trainer.elapsed:.0f} s of training)")
    print(f"checkpoint: {trainer.checkpoint_path}", flush=True)
    try:
        full = split_loss(trainer.model, corpus.val, device=trainer.device, dtype=trainer.dtype,
                          progress=trainer.config.progress, max_tokens=args["eval_tokens"])
    except KeyboardInterrupt:
        print("\nInterrupted while measuring the whole validation split; the checkpoint is saved.",
              file=sys.stderr)
        sys.exit(130)
    n, read = len(corpus.val), evaluated_tokens(len(corpus.val), args["eval_tokens"])
    what = (f"the whole validation split ({n:,} tokens)" if read == n else
            f"the first {read:,} of the validation split's {n:,} tokens (--eval-tokens sets it)")
    print(f"val loss on {what}: {full:.4f}")


def _corpus(args: dict):
    """The corpus of a new run: --data (prepared, or text prepared now) or Tiny Shakespeare."""
    if args["data"] is None:
        if args["tokenizer"] not in (None, "char") or args["glob"]:
            raise ValueError("--tokenizer and --glob apply to --data: Tiny Shakespeare is read "
                             "with characters")
        return load_corpus(None)
    if data.is_prepared(args["data"]):
        meta = data.read_meta(Path(args["data"]))
        if args["tokenizer"] not in (None, meta["tokenizer"]) or args["glob"]:
            raise ValueError(f"--data {args['data']} is prepared already (with --tokenizer "
                             f"{meta['tokenizer']}): leave out --tokenizer and --glob, or point "
                             "--data at the text itself")
    if Path(args["data"]).exists() and not data.is_prepared(args["data"]):
        print(f"Preparing {printable(args['data'])} (once; kept in the course's cache) ...",
              file=sys.stderr, flush=True)
    return load_corpus(args["data"], tokenizer_spec=args["tokenizer"] or "char",
                       glob=args["glob"], progress=sys.stderr.isatty())


def _refuse_to_replace_a_run(out: str) -> None:
    """A ValueError when `out` already holds a checkpoint: a new run would replace it."""
    target = check_writable(out)  # a file there that is not a checkpoint is never replaced
    if not target.is_file():
        return
    try:
        step = load_checkpoint(target).get("step")
        what = f"a run stopped at step {step}"
    except CheckpointError:
        what = "a checkpoint that does not load"
    raise ValueError(f"{target} holds {what}. Continue it with --resume, replace it with "
                     "--overwrite, or choose another --out")


def sample_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lib.sample",
        description="Write text with a trained checkpoint (or with OpenAI's GPT-2).",
        epilog='Example: python -m lib.sample --checkpoint out/shakespeare-char-cpu '
               '--prompt "ROMEO:" --temperature 0.8 --top-k 40 --tokens 300 --seed 1',
    )
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="PATH",
                       help="a checkpoint file or the folder holding ckpt.pt (the --out of lib.train)")
    model.add_argument("--pretrained", metavar="NAME_OR_FOLDER",
                       help="OpenAI's GPT-2 instead: gpt2, gpt2-medium, gpt2-large, gpt2-xl (from the "
                            "Hugging Face hub or its cache) or a folder holding a Hugging Face "
                            "snapshot; needs transformers")
    p.add_argument("--arch", choices=sorted(ARCHS),
                   help="refuse a checkpoint of another architecture than this one")
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


MAX_SAMPLE_TOKENS = 1_000_000


def sample_main(argv: list[str] | None = None) -> None:
    from .sampling import check_sampling_args, stream

    parser = sample_parser()
    args = parser.parse_args(argv)
    try:
        check_sampling_args(args.temperature, args.top_k, args.top_p)
        checks.integer("--tokens", args.tokens, 0, MAX_SAMPLE_TOKENS,
                       hint=" (the text is shown as it is written; Ctrl-C stops it)")
        if args.seed is not None:
            checks.integer("--seed", args.seed, 0, MAX_SEED)
        if args.checkpoint:
            check_path_name(args.checkpoint, "--checkpoint")
        runtime = init_runtime(args.device)  # the device, and TF32 on a CUDA GPU
        if args.pretrained:
            from .pretrained import load_gpt2

            model, tokenizer = load_gpt2(args.pretrained, device=runtime.device)
        else:
            model, tokenizer, _ = load_model(args.checkpoint, runtime.device, arch=args.arch)
        if tokenizer is None:
            raise CheckpointError(f"{args.checkpoint} holds no tokenizer, so text cannot be encoded")
        broken = next((n for n, p in model.named_parameters() if not torch.isfinite(p).all()), None)
        if broken:
            raise ValueError(f"{args.checkpoint or args.pretrained}: the weights are not finite (NaN "
                             f"or inf in {broken}): its run diverged, or the file is damaged")
        prompt = args.prompt or "\n"
        try:
            ids = tokenizer.encode(prompt)
        except ValueError as err:
            raise ValueError(f"--prompt: {err}") from None
        device = next(model.parameters()).device
        idx = torch.tensor([ids], dtype=torch.long, device=device)
        gen = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
        tokens = stream(model, idx, args.tokens, args.temperature, args.top_k, args.top_p, gen)
    except USER_ERRORS as err:
        fail(parser, err)
    # A console that cannot show a character (a Windows code page) shows '?' instead of failing.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    try:
        sys.stdout.write(prompt)
        pending = []  # a BPE token can end inside a character: wait for the rest of its bytes
        for token in tokens:  # shown as it is written
            pending += token.tolist()
            piece = tokenizer.decode(pending)
            if not piece.endswith("\ufffd"):
                sys.stdout.write(piece)
                sys.stdout.flush()
                pending = []
        sys.stdout.write(tokenizer.decode(pending) + "\n")
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        print("Interrupted: the text above is what was written so far.", file=sys.stderr)
        sys.exit(130)
    except ValueError as err:  # the logits became NaN while writing (lib.sampling refuses them)
        sys.stdout.write("\n")
        fail(parser, err, code=1)
