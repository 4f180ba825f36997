"""The course around the engine: its presets, its main model, and the cache of trained runs.

The lessons train many runs (the course's model, and small runs that show one effect each).
Every one goes through `train_or_load`, which trains a run once and serves it from the cache
after that. A run's key is made of what decides its result, never of a label a caller passes:

- the model and train configs (the progress bar and the output folder excepted),
- the bytes of the training and validation tokens, and the tokenizer,
- the device type,
- the source of the modules that change what training computes (`COMPUTE_MODULES`).

Editing a plotting or book helper therefore keeps the cache; editing the model retrains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch

from . import budget, checkpoint as ckpt
from .data import cache_dir, load_char_corpus
from .device import describe, pick_device
from .model import GPTConfig
from .sampling import sample_recorder
from .evaluation import split_loss
from .trainer import TrainConfig, Trainer

PRESETS: dict[str, tuple[GPTConfig, TrainConfig]] = {
    # Tuned for the lowest validation loss in two minutes on a 2-core CPU (the Performance
    # appendix shows what was tried, with several seeds where it mattered:
    # benchmarks/tune_cpu_preset.py). In so short a budget a small model that takes many steps
    # beats a bigger one that takes few, and Muon for the blocks' matrices beats AdamW for all
    # (lesson 10). 2,000 steps: about what fitted in 120 s on the tuning's machine.
    "shakespeare-char-cpu": (
        GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128, dropout=0.0),
        TrainConfig(max_steps=2000, batch_size=32, lr=3e-3, warmup_steps=100, min_lr_ratio=0.1,
                    optimizer="muon", muon_lr=1e-2, weight_decay=0.1, beta2=0.99,
                    eval_interval=250, eval_batches=20, log_interval=1),
    ),
    # The classic character-level model: 6 layers, 384 wide, context 256 (nanoGPT reports a
    # validation loss of 1.47 after about 3 minutes on an A100; not yet timed by the course).
    # Evaluation counts against a time budget, so it is kept small: 50 batches of 64 x 256
    # tokens every 500 steps.
    "shakespeare-char-gpu": (
        GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
        TrainConfig(max_steps=5000, batch_size=64, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1,
                    weight_decay=0.1, beta2=0.99, eval_interval=500, eval_batches=50,
                    log_interval=1),
    ),
    # Not tuned for anything: a second, cheaper course model with another context, batch,
    # width, head count and dropout, so that the lessons can be run on a CPU with a course
    # model other than the CPU preset (COURSE_PRESET=shakespeare-char-mini). A claim that
    # holds for one preset only fails there, as it would on a GPU.
    "shakespeare-char-mini": (
        GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=96, dropout=0.1),
        TrainConfig(max_steps=1500, batch_size=24, lr=3e-3, warmup_steps=50, min_lr_ratio=0.1,
                    weight_decay=0.1, beta2=0.99, eval_interval=300, eval_batches=16,
                    log_interval=1),
    ),
}

# An upper bound on each preset's validation loss (whole split) once trained, asserted by
# lesson 2. The CPU preset reached about 1.56 in 120 s on the tuning's machine (1.55 to 1.56
# over four seeds: benchmarks/cpu-preset-tuning.json) and 1.58 to 1.63 over six seeds on a
# slower 2-core AMD EPYC, the higher when it ran slower (benchmarks/muon-variants-amd-epyc.json,
# muon-combinations-amd-epyc.json), and 1.58 to 1.60 over six on one with AVX-512
# (muon-combinations-avx512.json, muon-precision-avx512.json), and 1.55 to 1.56 over three on
# a faster Intel Xeon with AMX (cpu-preset-amx.json); hence the bound. The GPU bound is looser than nanoGPT's 1.47 because the course has not yet
# timed a GPU run.
VAL_LOSS_BOUND = {"shakespeare-char-cpu": 1.65, "shakespeare-char-gpu": 1.60,
                  "shakespeare-char-mini": 2.00}

PRESET_ENV = "COURSE_PRESET"


def course_preset(device) -> str:
    """The preset the course trains on this device: the one named by $COURSE_PRESET when it is
    set, else the GPU preset on CUDA and the CPU preset elsewhere."""
    chosen = os.environ.get(PRESET_ENV, "").strip()
    if chosen:
        if chosen not in PRESETS:
            raise ValueError(f"{PRESET_ENV}={chosen!r} is not a preset; choose one of "
                             f"{', '.join(sorted(PRESETS))}, or unset it")
        return chosen
    return "shakespeare-char-gpu" if torch.device(device).type == "cuda" else "shakespeare-char-cpu"


def course_config(device="auto") -> tuple[str, GPTConfig, TrainConfig]:
    """(preset name, model config, train config) of the course's model on this device, with
    the device filled in: what `course_run` trains, for lessons that show or reuse its sizes."""
    dev = pick_device(device)
    name = course_preset(dev)
    model_config, config = PRESETS[name]
    return name, model_config, dataclasses.replace(config, device=dev.type)


# --------------------------------------------------------------------------- the run cache

# The modules whose source changes what a run computes (its weights, its history, its samples).
COMPUTE_MODULES = ("model", "model_config", "blocks", "trainer", "optim", "evaluation",
                   "schedules", "data", "sampling", "device", "tokenizer", "prepare", "tokenfiles")


def source_fingerprint(modules=COMPUTE_MODULES, root: Path | None = None) -> str:
    """sha256 over the source of the given modules of lib (or of a copy of lib at `root`)."""
    digest = hashlib.sha256()
    root = Path(root) if root is not None else Path(__file__).parent
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update((root / f"{name}.py").read_bytes())
    return digest.hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes: two splits with any token different differ.
    A split read from a prepared corpus carries the sha256 its token file was written with
    (lib.prepare), so it is not hashed again; a slice of it, a new tensor, is."""
    if getattr(t, "_sha256", None):
        return t._sha256
    t = t.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def run_key(model_config: GPTConfig, config: TrainConfig, corpus) -> str:
    """The cache key of a run: a short hash of everything that decides what training computes
    (module doc)."""
    settings = {k: v for k, v in config.to_dict().items()
                if k not in ("progress", "out_dir", "checkpoint_minutes")}  # saving computes nothing
    tokenizer = corpus.tokenizer.to_dict() if corpus.tokenizer is not None else None
    parts = (model_config.to_dict(), settings, tensor_digest(corpus.train),
             tensor_digest(corpus.val), tokenizer, pick_device(config.device).type,
             source_fingerprint())
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_or_load(model_config: GPTConfig, config: TrainConfig, corpus, *,
                  callback=None, callback_interval: int = 0, verbose: bool = True,
                  retrain: bool = False) -> Trainer:
    """The trainer of this exact run, from the cache if it was trained before, else trained now.

    `corpus` has `train` and `val` token tensors and a `tokenizer` (a `data.CharCorpus`). The
    key (`run_key`) covers everything that decides the run, so a cached run is never stale.
    The cache lives in `lib.data.cache_dir() / "runs"`. `retrain=True` trains even when a
    cached run exists, and replaces it.

    Nothing here ends a lesson with a traceback or loses a run: a cache entry that cannot be
    used (damaged, of another run, with weights that are not finite) is said so in one line,
    moved aside (`ckpt.pt.unusable`) and trained again; a cache folder that cannot be written
    is said so before training, and the run is trained and returned without being kept.
    Two processes training the same run at once each train it and save it whole (the save is
    an atomic rename), so no lock is needed: the later save replaces an equal run.
    """
    key = run_key(model_config, config, corpus)
    path = cache_dir() / "runs" / key / ckpt.CHECKPOINT_FILE
    if path.exists() and not retrain:
        try:
            trainer = _load_cached(path, model_config, config, corpus)
            if verbose:
                print(f"Loaded the cached run {key} ({trainer.step} steps, trained on "
                      f"{describe(trainer.device)}).")
            return trainer
        except Exception as err:  # noqa: BLE001 - a cache is disposable: any failure retrains
            aside = _move_aside(path)
            reason = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
            print(f"The cached run {key} could not be used ({reason}); "
                  f"{f'moved it to {aside.name} and ' if aside else ''}training it again.")
    try:
        ckpt.check_writable(path)
        keep = True
    except ckpt.CheckpointError as err:
        keep = False
        print(f"The run cache cannot be written ({err}) This run is trained but not kept; set "
              f"COURSE_CACHE_DIR to a folder you can write to.")
    trainer = Trainer(model_config, config, corpus.train, corpus.val, corpus.tokenizer)
    if verbose:
        print(f"Training on {describe(trainer.device)}: {trainer.model.num_parameters():,} "
              f"parameters, {config.max_steps} steps of {trainer.tokens_per_step:,} tokens.")
    trainer.run(callback=callback, callback_interval=callback_interval)
    val_split_loss(trainer)  # measured once, kept with the run
    if keep:
        try:
            trainer.save(path)
        except ckpt.CheckpointError as err:  # e.g. the disk filled up: the run is still returned
            print(f"{err} The run was not kept in the cache; it is used as it is.")
    return trainer


def _load_cached(path: Path, model_config: GPTConfig, config: TrainConfig, corpus) -> Trainer:
    """A cached run, checked to be the run asked for and finished (else an exception)."""
    trainer = Trainer.resume(path, corpus.train, corpus.val)
    ignore = ("progress", "out_dir")
    asked = {k: v for k, v in config.to_dict().items() if k not in ignore}
    saved = {k: v for k, v in trainer.config.to_dict().items() if k not in ignore}
    if trainer.model_config != model_config or saved != asked:
        raise ckpt.CheckpointError("it holds another run's configs")
    if not 0 < trainer.step <= config.max_steps or (trainer.step < config.max_steps
                                                    and not config.max_time):
        raise ckpt.CheckpointError(f"it stopped at step {trainer.step} of {config.max_steps}")
    tokenizer = corpus.tokenizer.to_dict() if corpus.tokenizer is not None else None
    if (trainer.tokenizer.to_dict() if trainer.tokenizer is not None else None) != tokenizer:
        raise ckpt.CheckpointError("it was trained with another tokenizer")
    trainer.config = dataclasses.replace(trainer.config, progress=config.progress,
                                         out_dir=config.out_dir)
    return trainer


def _move_aside(path: Path) -> Path | None:
    """Rename an unusable cache entry to ckpt.pt.unusable (replacing an older one); None when
    it cannot be moved (then it is left, and the new run's save replaces it if it can)."""
    aside = path.with_name(path.name + ".unusable")
    try:
        if aside.is_dir() and not aside.is_symlink():  # a folder of that name: rename cannot replace it
            import shutil

            shutil.rmtree(aside)
        elif path.is_dir() and aside.exists():  # nor can a folder replace a file
            aside.unlink()
        os.replace(path, aside)
        return aside
    except OSError:
        return None


def val_split_loss(trainer: Trainer) -> float:
    """The trained model's loss on the whole validation split (`split_loss`), computed once
    and kept in the run's history, so a run served from the cache does not measure it again."""
    if "val_split_loss" not in trainer.history:
        trainer.history["val_split_loss"] = split_loss(trainer.model, trainer.val_data,
                                                       device=trainer.device, dtype=trainer.dtype)
    return trainer.history["val_split_loss"]


SEEDS = (0, 1, 2)  # a setting compared with another is trained with each of these seeds


def train_seeds(model_config: GPTConfig, config: TrainConfig, corpus, seeds=SEEDS) -> list[Trainer]:
    """The runs of one setting under several seeds (each from the cache or trained now), so
    that a comparison can show its spread (lib.stats)."""
    return [train_or_load(model_config, dataclasses.replace(config, seed=seed), corpus,
                          verbose=False) for seed in seeds]


def course_run(device: str = "auto", verbose: bool = True, progress: bool = False,
               retrain: bool = False, seed: int | None = None, timing=None,
               capped: bool | None = None) -> tuple[Trainer, "object"]:
    """The course's main model, shared by the lessons: (trainer, corpus).

    The preset of `course_preset` (the CPU preset on a CPU, the GPU preset on CUDA, or the one
    $COURSE_PRESET names), trained on Tiny Shakespeare once and then served from the run cache.
    Before it trains, a few steps are timed and the time it will take is printed; on CUDA
    (`capped`, None: on CUDA only) its steps are cut where the preset would take longer than
    lib.budget's GPU budget. `timing` (seconds per step, per evaluation) replaces the timing:
    a slow device faked. While it trains, a sample is written before the first step and after
    each quarter of the steps, into `trainer.history["samples"]` (rows of step and text).
    `retrain=True` trains it anew. `seed` replaces the preset's seed (benchmarks/record_runs.py
    records several).
    """
    _, model_config, config = course_config(device)
    config = dataclasses.replace(config, progress=progress,
                                 **({} if seed is None else {"seed": seed}))
    corpus = load_char_corpus()
    if capped is None:
        capped = pick_device(config.device).type == "cuda"
    done = [c for c in budget.run_configs(config, capped) if not retrain and _cached(
        model_config, c, corpus)]
    if done:  # trained before on this device, under a plan made then: no timing needed
        config = done[0]
    else:
        plan = budget.plan_run(config, *(timing or budget.time_run(
            model_config, config, corpus.train, corpus.val)), capped=capped)
        config = plan.config
        if verbose:
            print(plan.sentence)
    record = sample_recorder(corpus.tokenizer, prompt="\n", length=200, seed=0)
    trainer = train_or_load(model_config, config, corpus, callback=record,
                            callback_interval=max(1, config.max_steps // 4), verbose=verbose,
                            retrain=retrain)
    return trainer, corpus


def _cached(model_config: GPTConfig, config: TrainConfig, corpus) -> bool:
    """Whether the run cache holds this run (it may still fail to load: train_or_load says)."""
    key = run_key(model_config, config, corpus)
    return (cache_dir() / "runs" / key / ckpt.CHECKPOINT_FILE).exists()


# --------------------------------------------------------------------------- held-out blocks


@dataclasses.dataclass
class HeldOut:
    """A training split with blocks held out of it (`hold_out_blocks`).

    `train` is what a run trains on: the kept pieces of the split joined in order. `held_out`
    are the blocks it never sees (the same plays as the training text), and `seen` a block of
    kept text of the same length right after each one, to score the trained-on text the same
    way. `held_spans` and `kept_spans` are the (start, end) positions of both in the split.
    """

    train: torch.Tensor
    held_out: list[torch.Tensor]
    seen: list[torch.Tensor]
    held_spans: list[tuple[int, int]]
    kept_spans: list[tuple[int, int]]


def hold_out_blocks(split: torch.Tensor, n_blocks: int = 40, block_len: int = 2000,
                    seed: int = 0) -> HeldOut:
    """Hold `n_blocks` blocks of `block_len` tokens out of a training split, one in each of
    `n_blocks` equal stretches of it, at a seeded random place in the stretch.

    The held-out text is cut out, not masked: the kept pieces are joined, so no window a run
    draws from `train` holds a held-out token. A window may span the seam where a block was
    cut (kept text on both sides), about `n_blocks * block_size` of the windows, a tiny share.
    """
    stretch = len(split) // n_blocks
    if n_blocks < 1 or block_len < 1 or stretch < 2 * block_len:
        raise ValueError(f"{n_blocks} blocks of {block_len} tokens, each with a seen block as "
                         f"long beside it, need a split of at least {2 * n_blocks * block_len} "
                         f"tokens; this one has {len(split)}")
    rng = torch.Generator().manual_seed(seed)
    held, kept, start = [], [], 0
    for i in range(n_blocks):
        at = i * stretch + int(torch.randint(stretch - 2 * block_len + 1, (1,), generator=rng))
        held.append((at, at + block_len))
        kept.append((start, at))
        start = at + block_len
    kept.append((start, len(split)))
    kept = [(a, b) for a, b in kept if b > a]
    return HeldOut(train=torch.cat([split[a:b] for a, b in kept]),
                   held_out=[split[a:b] for a, b in held],
                   seen=[split[b:b + block_len] for _, b in held],
                   held_spans=held, kept_spans=kept)


@torch.no_grad()
def blocks_loss(model, blocks: list[torch.Tensor], batch_size: int = 64, device=None,
                dtype=None) -> float:
    """Mean loss over blocks of text, each cut into non-overlapping windows of the model's
    block_size (as `split_loss` cuts a split); no window crosses from one block to another."""
    from .data import WindowDataset
    from .evaluation import estimate_loss

    device = device or next(model.parameters()).device
    windows = torch.utils.data.ConcatDataset(
        [WindowDataset(b, model.config.block_size) for b in blocks])
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size, shuffle=False)
    return estimate_loss(model, loader, device, dtype, weighted=True)


def gap_recorder(held: HeldOut, val: torch.Tensor, at_steps):
    """A callback for `Trainer.run` that scores, at the given steps, the seen blocks, the
    held-out blocks and the whole validation split, into `trainer.history["gap_parts"]` (rows
    of step, seen, held_out, val): seen -> held_out is memorisation, held_out -> val the split."""
    at_steps = set(at_steps)

    def record(trainer) -> None:
        if trainer.step not in at_steps:
            return
        score = lambda blocks: blocks_loss(trainer.model, blocks, device=trainer.device,  # noqa: E731
                                           dtype=trainer.dtype)
        trainer.history.setdefault("gap_parts", []).append(
            {"step": trainer.step, "seen": score(held.seen), "held_out": score(held.held_out),
             "val": score([val])})

    return record
