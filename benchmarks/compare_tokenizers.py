"""Three tokenizers compared fairly: characters, a BPE trained on the corpus, and GPT-2's, each
with the same model shape trained for the same wall-clock time, scored in bits per byte of the
same validation text (lesson 13 reads the result).

    python benchmarks/compare_tokenizers.py                  # about 8 minutes on 2 cores
    python benchmarks/compare_tokenizers.py --seconds 5 --seeds 0 --out /tmp/t.json   # a quick look

The corpus is the top-level modules of the Python standard library of the interpreter that runs
this (`sysconfig`), a few MB of code that every machine has. Each tokenizer prepares it
(lib.prepare; the validation split is the same documents for all three), then the CPU preset's
model shape, with the tokenizer's vocabulary, trains for `--seconds` seconds per seed (the steps
that fit in that time are measured first, as `lib.train --max-time` does) and is scored on the
whole validation split (up to lib.evaluation.EVAL_TOKENS tokens) in bits per byte.
Run it on an otherwise idle machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib import data  # noqa: E402
from lib.course import course_config  # noqa: E402
from lib.device import machine_identity  # noqa: E402
from lib.evaluation import bits_per_byte, split_loss  # noqa: E402
from lib.trainer import Trainer, steps_in_time  # noqa: E402

TOKENIZERS = ("char", "bpe:2048", "gpt2")


def stdlib_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def run(spec: str, seeds, seconds: float) -> dict:
    corpus = data.load_corpus(str(stdlib_source()), tokenizer_spec=spec, glob="*.py")
    _, model_config, config = course_config("cpu")
    model_config = dataclasses.replace(model_config, vocab_size=corpus.tokenizer.vocab_size)
    config = dataclasses.replace(config, out_dir="", progress=False, max_time=seconds,
                                 eval_interval=10**6, eval_batches=2)  # the budget is for training
    steps = steps_in_time(model_config, config, corpus.train, corpus.val, seconds)
    config = dataclasses.replace(config, max_steps=steps,
                                 warmup_steps=min(config.warmup_steps, steps // 10))
    rows = []
    for seed in seeds:
        trainer = Trainer(model_config, dataclasses.replace(config, seed=seed), corpus.train,
                          corpus.val, corpus.tokenizer)
        trainer.run()
        loss = split_loss(trainer.model, corpus.val, batch_size=16)  # GPT-2's logits are large
        bpb = bits_per_byte(loss, corpus.val, corpus.tokenizer, model_config.block_size)
        rows.append({"seed": seed, "steps": trainer.step, "seconds": round(trainer.elapsed, 1),
                     "val_loss_per_token": round(loss, 4), "bits_per_byte": round(bpb, 4)})
        print(spec, rows[-1], flush=True)
    n_bytes = len(corpus.tokenizer.decode(corpus.val.long()).encode("utf-8"))
    return {"tokenizer": spec, "vocab_size": corpus.tokenizer.vocab_size,
            "parameters": trainer.model.num_parameters(),
            "train_tokens": len(corpus.train), "val_tokens": len(corpus.val),
            "bytes_per_token_val": round(n_bytes / len(corpus.val), 3),
            "planned_steps": steps, "runs": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=45.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tokenizers", nargs="+", default=list(TOKENIZERS))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "tokenizers.json"))
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    result = {"machine": machine_identity(), "date": time.strftime("%Y-%m-%d"),
              "python": sys.version.split()[0], "corpus": "the standard library's top-level *.py",
              "seconds_per_run": args.seconds, "load_before": round(load, 2),
              "tokenizers": [run(spec, args.seeds, args.seconds) for spec in args.tokenizers]}
    result["load_after"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
