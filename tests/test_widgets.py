"""lib.widgets: the kernel-free calculator and sampling explorer. The browser test drives them
on the built pages; here, their markup and inputs, and the calculator's JavaScript formulas run
by Node (when installed) against lib's for many shapes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import torch

from lib import widgets
from lib.model import GPT, GPTConfig

SHAPES = {"tiny": GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128),
          "gpt2": GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)}


def test_the_calculator_labels_every_control_and_offers_every_preset():
    markup, script = widgets.model_calculator(SHAPES)
    for field in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "preset"):
        ids = re.findall(rf'id="([\w-]+-{field})"', markup)
        assert len(ids) == 1 and f'<label for="{ids[0]}"' in markup, field
    assert '<option value="tiny">' in markup and '<option value="gpt2">' in markup
    assert 'value="2"' in markup  # the first preset's n_layer fills the form
    assert json.dumps(SHAPES["gpt2"].vocab_size) in script
    assert widgets.model_calculator(SHAPES) == (markup, script)  # the same page every build


def _lib(config: GPTConfig) -> dict:
    with torch.device("meta"):
        model = GPT(config)
    parts = {k: v for k, v in model.parameter_breakdown().items() if k != "head (tied)"}
    return {"parts": parts, "total": GPT.estimate_parameters_unchecked(config),
            "memory": GPT.training_memory_bytes(config), "flops": model.flops_per_token()}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_calculator_s_formulas_are_lib_s():
    _, script = widgets.model_calculator(SHAPES)
    sizes = re.search(r"function sizes\(c\) \{.*?\n  \}\n", script, flags=re.S)[0]
    configs = [GPTConfig(vocab_size=v, block_size=t, n_layer=layer, n_head=h, n_embd=d, bias=b)
               for v, t, layer, h, d, b in [(1, 1, 1, 1, 1, True), (65, 64, 2, 4, 128, False),
                                            (50257, 1024, 12, 12, 768, True),
                                            (50257, 2048, 96, 96, 12288, True),
                                            (128256, 8192, 32, 32, 4096, False), (7, 3, 5, 3, 9, True)]]
    shapes = [{f: getattr(c, f) for f in ("vocab_size", "block_size", "n_layer", "n_head",
                                          "n_embd", "bias")} for c in configs]
    program = sizes + f"console.log(JSON.stringify({json.dumps(shapes)}.map(sizes)));"
    out = json.loads(subprocess.run(["node", "-e", program], capture_output=True, text=True,
                                    check=True, timeout=60).stdout)
    for config, got in zip(configs, out):
        assert got == _lib(config), config


def test_the_sampling_explorer_checks_its_settings():
    labels = ["a", "b", "rest"]
    settings = {(f, t): {"probs": [0.5, 0.3, 0.2], "kept": 3, "text": f"{f} {t}"}
                for f in ("none", "top-k") for t in (0.5, 1.0)}
    markup, script = widgets.sampling_explorer("ROMEO:\n", labels, [0.5, 1.0], ["none", "top-k"], settings)
    assert 'type="range"' in markup and 'max="1"' in markup and 'value="1"' in markup  # starts at 1.0
    assert re.search(r'<label for="[\w-]+-t">', markup) and re.search(r'<label for="[\w-]+-f">', markup)
    assert '"0|0": {"probs"' in script and '"1|1": {"probs"' in script  # filter|temperature positions
    del settings[("top-k", 0.5)]
    with pytest.raises(ValueError, match="no setting computed"):
        widgets.sampling_explorer("x", labels, [0.5, 1.0], ["none", "top-k"], settings)
    settings[("top-k", 0.5)] = {"probs": [1.0], "kept": 1, "text": ""}
    with pytest.raises(ValueError, match="1 probabilities for 3 labels"):
        widgets.sampling_explorer("x", labels, [0.5, 1.0], ["none", "top-k"], settings)


def test_training_memory_is_four_float32_numbers_per_parameter():
    config = SHAPES["tiny"]
    n = GPT(config).num_parameters()
    assert GPT.training_memory_bytes(config) == {"weights": 4 * n, "gradients": 4 * n,
                                                 "AdamW moments": 8 * n}
