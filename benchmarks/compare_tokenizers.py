"""Three tokenizers compared fairly: characters, a BPE trained on the corpus, and GPT-2's, each
with the same model shape trained on the same compute budget, scored in bits per byte of the
same validation text (lesson 13 reads the result).

    python benchmarks/compare_tokenizers.py                  # about 8 minutes on 2 cores
    python benchmarks/compare_tokenizers.py --char-steps 20 --seeds 0 --out /tmp/t.json   # a look

The corpus is the top-level modules of the Python standard library of the interpreter that runs
this (`sysconfig`), a few MB of code that every machine has. Each tokenizer prepares it
(lib.prepare; the validation split is the same documents for all three), then the CPU preset's
model shape, with the tokenizer's vocabulary, trains on the same number of training FLOPs
(`GPT.flops_per_token`): `--char-steps` steps of the character model's, fewer steps for a model
whose larger vocabulary costs more per token. A budget of FLOPs, not of seconds, so that the
result does not depend on what else the machine runs; the seconds each run took are recorded
beside it. Each model is scored on the whole validation split (up to
lib.evaluation.EVAL_TOKENS tokens) in bits per byte.
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
from lib.course import PRESETS  # noqa: E402
from lib.device import machine_identity  # noqa: E402
from lib.evaluation import bits_per_byte, split_loss  # noqa: E402
from lib.trainer import Trainer  # noqa: E402

TOKENIZERS = ("char", "bpe:2048", "gpt2")


def stdlib_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def flops_per_step(model_config, config) -> float:
    from lib.model import GPT

    return GPT(model_config).flops_per_token() * config.batch_size * model_config.block_size


def run(spec: str, seeds, budget: float) -> dict:
    corpus = data.load_corpus(str(stdlib_source()), tokenizer_spec=spec, glob="*.py")
    model_config, config = PRESETS["shakespeare-char-cpu"]  # whatever COURSE_PRESET says
    model_config = dataclasses.replace(model_config, vocab_size=corpus.tokenizer.vocab_size)
    steps = max(1, round(budget / flops_per_step(model_config, config)))
    config = dataclasses.replace(config, out_dir="", progress=False, max_time=0.0,
                                 max_steps=steps, eval_interval=10**6, eval_batches=2,
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
            "steps": steps, "flops": steps * flops_per_step(model_config, config), "runs": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--char-steps", type=int, default=600,
                   help="the budget: this many steps of the character model, in FLOPs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tokenizers", nargs="+", default=list(TOKENIZERS))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "tokenizers.json"))
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    result = {"machine": machine_identity(), "date": time.strftime("%Y-%m-%d"),
              "python": sys.version.split()[0], "corpus": "the standard library's top-level *.py",
              "char_steps": args.char_steps, "load_before": round(load, 2)}
    model_config, config = PRESETS["shakespeare-char-cpu"]
    char_vocab = data.load_corpus(str(stdlib_source()), glob="*.py").tokenizer.vocab_size
    budget = args.char_steps * flops_per_step(dataclasses.replace(model_config, vocab_size=char_vocab),
                                              config)
    result["budget_flops"] = budget
    result["tokenizers"] = [run(spec, args.seeds, budget) for spec in args.tokenizers]
    result["load_after"] = round(os.getloadavg()[0], 2)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
