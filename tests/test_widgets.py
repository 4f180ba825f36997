"""lib.widgets: the kernel-free calculator and sampling explorer. The browser test drives them
on the built pages; here, their markup and inputs, the JSON block that carries their data (safe
inside a <script> element whatever a prompt holds), and the calculator's JavaScript file run by
Node (when installed) against lib's formulas for many shapes."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
import torch

from lib import widgets
from lib.model import GPT, GPTConfig

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

SHAPES = {"tiny": GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128),
          "gpt2": GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)}


def test_the_calculator_labels_every_control_and_offers_every_preset():
    markup, script = widgets.model_calculator(SHAPES)
    for field in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "bias", "preset"):
        ids = re.findall(rf'id="([\w-]+-{field})"', markup)
        assert len(ids) == 1 and f'<label for="{ids[0]}"' in markup, field
    assert '<option value="tiny">' in markup and '<option value="gpt2">' in markup
    assert 'value="2"' in markup  # the first preset's n_layer fills the form
    data = _data(markup)
    assert data["presets"]["gpt2"]["vocab_size"] == SHAPES["gpt2"].vocab_size
    assert list(data["presets"]) == ["tiny", "gpt2"]  # the first preset is shown first
    assert script == (files("lib.widgets") / "model_calculator.js").read_text(encoding="utf-8")
    assert widgets.model_calculator(SHAPES) == (markup, script)  # the same page every build


def _lib(config: GPTConfig) -> dict:
    with torch.device("meta"):
        model = GPT(config)
    parts = {k: v for k, v in model.parameter_breakdown().items() if k != "head (tied)"}
    return {"parts": parts, "total": GPT.estimate_parameters_unchecked(config),
            "memory": GPT.training_memory_bytes(config), "flops": model.flops_per_token()}


def _block(markup: str) -> tuple[str, str]:
    """The id of the widget's one JSON block and the text inside it."""
    blocks = re.findall(r'<script type="application/json" id="([\w-]+)">(.*?)</script>', markup,
                        flags=re.DOTALL | re.IGNORECASE)
    assert len(blocks) == 1, blocks
    return blocks[0]


def _data(markup: str):
    uid, text = _block(markup)
    assert re.search(rf'class="course-widget [\w-]+" id="{uid.removesuffix("-data")}"', markup)
    return json.loads(text)


def _node(program: str, *args: str) -> str:
    return subprocess.run([NODE, "-e", program, *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


@needs_node
def test_the_calculator_s_formulas_are_lib_s():
    path = files("lib.widgets") / "model_calculator.js"
    configs = [GPTConfig(vocab_size=v, block_size=t, n_layer=layer, n_head=h, n_embd=d, bias=b)
               for v, t, layer, h, d, b in [(1, 1, 1, 1, 1, True), (65, 64, 2, 4, 128, False),
                                            (50257, 1024, 12, 12, 768, True),
                                            (50257, 2048, 96, 96, 12288, True),
                                            (128256, 8192, 32, 32, 4096, False), (7, 3, 5, 3, 9, True)]]
    shapes = [{f: getattr(c, f) for f in ("vocab_size", "block_size", "n_layer", "n_head",
                                          "n_embd", "bias")} for c in configs]
    program = ("const {sizes} = require(process.argv[1]);"
               f"console.log(JSON.stringify({json.dumps(shapes)}.map(sizes)));")
    out = json.loads(_node(program, str(path)))
    for config, got in zip(configs, out):
        assert got == _lib(config), config


def test_the_sampling_explorer_checks_its_settings():
    labels = ["a", "b", "rest"]
    settings = {(f, t): {"probs": [0.5, 0.3, 0.2], "kept": 3, "text": f"{f} {t}"}
                for f in ("none", "top-k") for t in (0.5, 1.0)}
    markup, script = widgets.sampling_explorer("ROMEO:\n", labels, [0.5, 1.0], ["none", "top-k"], settings)
    assert 'type="range"' in markup and 'max="1"' in markup and 'value="1"' in markup  # starts at 1.0
    assert re.search(r'<label for="[\w-]+-t">', markup) and re.search(r'<label for="[\w-]+-f">', markup)
    data = _data(markup)
    assert data["settings"]["0|0"] == settings[("none", 0.5)]  # filter|temperature positions
    assert data["settings"]["1|1"] == settings[("top-k", 1.0)]
    assert data["prompt"] == "ROMEO:\n" and data["labels"] == labels
    assert script == (files("lib.widgets") / "sampling_explorer.js").read_text(encoding="utf-8")
    del settings[("top-k", 0.5)]
    with pytest.raises(ValueError, match="no setting computed"):
        widgets.sampling_explorer("x", labels, [0.5, 1.0], ["none", "top-k"], settings)
    settings[("top-k", 0.5)] = {"probs": [1.0], "kept": 1, "text": ""}
    with pytest.raises(ValueError, match="1 probabilities for 3 labels"):
        widgets.sampling_explorer("x", labels, [0.5, 1.0], ["none", "top-k"], settings)


# A learner's prompt or a model's text may hold anything: upper-case and mixed-case closing
# tags (myst-nb's own escaping catches "</script>" only), a comment opener, &, and the two
# characters that older JavaScript reads as line ends.
HOSTILE = "ROMEO:</SCRIPT><script>alert(1)</script> <!-- </ScRiPt > & \u2028\u2029 é"


def _explorer(prompt: str = HOSTILE) -> tuple[str, str, dict]:
    labels = ["<", "</SCRIPT>", "rest"]
    settings = {(f, t): {"probs": [0.5, 0.3, 0.2], "kept": 3, "text": f"{prompt} {f} {t}"}
                for f in ("none", "<!--") for t in (0.5, 1.0)}
    markup, script = widgets.sampling_explorer(prompt, labels, [0.5, 1.0], ["none", "<!--"],
                                               settings)
    return markup, script, {"prompt": prompt, "labels": labels, "settings": settings}


def test_no_prompt_can_end_the_json_block():
    markup, script, given = _explorer()
    uid, text = _block(markup)
    for bad in ("</script", "<!--", "<script", "<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text.lower(), bad
    # Cut where an HTML parser would end the element: the block is all of the JSON.
    start = markup.index(f'id="{uid}">') + len(f'id="{uid}">')
    assert markup[start:start + re.search(r"</script", markup[start:], re.IGNORECASE).start()] == text
    data = json.loads(text)
    assert data["prompt"] == HOSTILE and data["labels"] == given["labels"]
    assert data["settings"]["1|0"]["text"] == f"{HOSTILE} <!-- 0.5"
    assert data == json.loads(widgets.script_json(data))
    # Elsewhere the prompt is HTML-escaped text, so the markup has the widget's one block only.
    assert len(re.findall(r"<script", markup, re.IGNORECASE)) == 1
    assert html.escape(HOSTILE.replace("\n", " ")) in markup
    # The scripts themselves are safe inside myst-nb's <script> element too.
    for js in (script, widgets.model_calculator(SHAPES)[1]):
        assert "</script" not in js.lower() and "<!--" not in js


@needs_node
def test_javascript_reads_the_json_block_back_as_the_same_data():
    markup, _, _ = _explorer()
    _, text = _block(markup)
    program = "process.stdout.write(JSON.stringify(JSON.parse(process.argv[1])));"
    assert json.loads(_node(program, text)) == json.loads(text)
    assert json.loads(_node(program, text))["prompt"] == HOSTILE


STUB_DOM = Path(__file__).with_name("widgets_stub_dom.js")


def _run_in_stub_dom(markup: str, script: str, kind: str, *args: str) -> dict:
    """The widget's own .js file, run by Node against a stand-in for the page (see the stub's
    header) whose JSON block is the one in `markup`."""
    uid, text = _block(markup)
    path = files("lib.widgets") / f"{script}.js"
    return json.loads(subprocess.run(
        [NODE, str(STUB_DOM), str(path), uid.removesuffix("-data"), text, kind, *args],
        capture_output=True, text=True, check=True, timeout=60).stdout)


@needs_node
def test_the_scripts_read_their_widget_s_json_block():
    markup, _ = widgets.model_calculator(SHAPES)
    shown = _run_in_stub_dom(markup, "model_calculator", "course-calc")
    tiny = SHAPES["tiny"]
    assert {f: shown[f] for f in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")} == \
        {f: getattr(tiny, f) for f in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")}
    assert shown["total"] == GPT.estimate_parameters_unchecked(tiny) and shown["bias"] == tiny.bias
    markup, _, given = _explorer()
    for filt, temp, slider, menu in [("none", 0.5, 0, 0), ("<!--", 1.0, 1, 1)]:
        shown = _run_in_stub_dom(markup, "sampling_explorer", "course-sampling", f"{slider}|{menu}")
        setting = given["settings"][(filt, temp)]
        assert shown["text"] == setting["text"] and shown["t"] == f"{temp:g}"
        assert [float(p) for p in shown["bars"]] == setting["probs"]
        assert shown["caption"].startswith(f"Temperature {temp:g}, {filt}: 3 characters")


def test_training_memory_is_four_float32_numbers_per_parameter():
    config = SHAPES["tiny"]
    n = GPT(config).num_parameters()
    assert GPT.training_memory_bytes(config) == {"weights": 4 * n, "gradients": 4 * n,
                                                 "AdamW moments": 8 * n}
