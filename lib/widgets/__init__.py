"""Interactive elements of the lessons that need no kernel: HTML and a little JavaScript that
run in the static book, in Jupyter and in Colab.

- `model_calculator`: the size of a GPT from its shape (lesson 3). The page computes with the
  same formulas as `lib.model`; the browser test sets many shapes and compares what the page
  shows with `GPT.parameter_breakdown`, `GPT.training_memory_bytes` and `GPT.flops_per_token`.
- `sampling_explorer`: a temperature slider and a filter menu (lesson 7). Every setting's
  distribution and text were computed by lib when the page was built; the page only shows them.

Each returns (html, script); `show` displays both. The markup and the script are this
package's data files (`model_calculator.html` and `.js`, `sampling_explorer.html` and `.js`).
A widget's data goes into its markup as one JSON block, `<script type="application/json"
id="<widget id>-data">`, written by `script_json` so that no text in it (a learner's prompt
holding `</SCRIPT>` or `<!--`) can end the element; the script finds each widget on the page
and reads its block. The controls are labelled form elements, so a keyboard (Tab, the arrow
keys) and a screen reader can use them; results are announced from an `aria-live` region.
"""

from __future__ import annotations

import hashlib
import html
import json
from importlib.resources import files
from string import Template

# The course's figure colours (lib.plotting.TRAIN), and text dark enough for WCAG AA on the
# white of the light theme and on the light grey (#ced6dd) that the dark theme gives outputs.
_BAR = "#1f77b4"
_TEXT = "#1d2430"
_MUTED = "#3d4654"

# In a <script> element only `</script` (any case) and `<!--` can end or derail the element;
# JSON writes <, > and & only inside strings, where \u escapes mean the same characters. U+2028
# and U+2029 are escaped too: older JavaScript engines read them as line ends inside strings.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                              "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(data) -> str:
    """`data` as JSON that can stand inside a <script> element of an HTML page: JSON.parse
    (and json.loads) read back the same data."""
    return json.dumps(data).translate(_SCRIPT_SAFE)


def _asset(name: str) -> str:
    """One of this package's data files (the widgets' HTML and JavaScript)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")


def _uid(kind: str, data) -> str:
    """A stable id: the same data gives the same page (builds are reproducible)."""
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"course-{kind}-{digest}"


def _page(kind: str, uid: str, data, **fields) -> tuple[str, str]:
    """The widget `kind`'s markup (its .html with the id, the JSON block and `fields` filled
    in) and its script (its .js)."""
    markup = Template(_asset(f"{kind}.html")).substitute(
        uid=uid, data=script_json(data), text=_TEXT, muted=_MUTED, **fields)
    return "\n" + markup, _asset(f"{kind}.js")


def show(html_and_script: tuple[str, str]) -> None:
    """Display a widget under the cell: its markup, then the script that brings it to life."""
    from IPython.display import HTML, Javascript, display

    markup, script = html_and_script
    display(HTML(markup))
    display(Javascript(script))


# --------------------------------------------------------------------------- model calculator

_FIELDS = [  # (GPTConfig field, label, min, max)
    ("n_layer", "blocks L (n_layer)", 1, 200),
    ("n_head", "heads (n_head)", 1, 256),
    ("n_embd", "width d (n_embd)", 1, 32768),
    ("block_size", "context T (block_size)", 1, 1_048_576),
    ("vocab_size", "vocabulary V (vocab_size)", 1, 1_048_576),
]


def model_calculator(presets: dict) -> tuple[str, str]:
    """A form for n_layer, n_head, n_embd, block_size and vocab_size (and biases) that shows
    the parameter count with its breakdown, the memory training keeps (weights, gradients,
    AdamW's moments, in float32) and the training FLOPs per token. `presets` maps a name to a
    GPTConfig; the first one is shown first."""
    shapes = {name: {f: getattr(c, f) for f, *_ in _FIELDS} | {"bias": c.bias}
              for name, c in presets.items()}
    data = {"presets": shapes, "fields": [[f, lo, hi] for f, _, lo, hi in _FIELDS]}
    uid = _uid("calc", data)
    first = next(iter(shapes.values()))
    inputs = "\n".join(
        f'<div class="course-calc-field"><label for="{uid}-{f}">{text}</label>'
        f'<input type="number" id="{uid}-{f}" name="{f}" min="{lo}" max="{hi}" step="1" '
        f'value="{first[f]}" inputmode="numeric"></div>'
        for f, text, lo, hi in _FIELDS)
    options = "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in shapes)
    rows = "".join(
        f'<tr><th scope="row">{part}</th><td data-part="{part}"></td><td data-share="{part}"></td></tr>'
        for part in ("token embedding", "position embedding", "attention", "MLP", "layer norms"))
    return _page("model_calculator", uid, data, inputs=inputs, options=options, rows=rows,
                 checked="checked" if first["bias"] else "")


# --------------------------------------------------------------------------- sampling explorer

def sampling_explorer(prompt: str, labels: list[str], temperatures: list[float],
                      filters: list[str], settings: dict) -> tuple[str, str]:
    """A temperature slider and a filter menu over precomputed settings.

    `labels`: the characters whose probabilities are drawn (and "rest", all others summed).
    `settings[(filter, temperature)]` = {"probs": [...] (one per label), "kept": number of
    characters the filter keeps, "text": what the model wrote with that setting}."""
    data = {"prompt": prompt, "labels": labels, "temperatures": temperatures, "filters": filters,
            "colours": {"bar": _BAR, "text": _TEXT, "muted": _MUTED}, "settings": {}}
    # Keyed by the controls' positions ("filter index|temperature index"): the page never has
    # to spell a number as Python did.
    missing = [(f, t) for f in filters for t in temperatures if (f, t) not in settings]
    if missing:
        raise ValueError(f"sampling_explorer: no setting computed for {missing[:3]}")
    for i, f in enumerate(filters):
        for j, t in enumerate(temperatures):
            data["settings"][f"{i}|{j}"] = settings[(f, t)]
    for key, v in data["settings"].items():
        if len(v["probs"]) != len(labels):
            raise ValueError(f"sampling_explorer: {key} has {len(v['probs'])} probabilities "
                             f"for {len(labels)} labels")
    uid = _uid("sampling", data)
    middle = min(range(len(temperatures)), key=lambda i: abs(temperatures[i] - 1.0))
    options = "".join(f'<option value="{html.escape(f)}">{html.escape(f)}</option>' for f in filters)
    return _page("sampling_explorer", uid, data, last=len(temperatures) - 1, middle=middle,
                 options=options, prompt=html.escape(prompt.replace(chr(10), " ")))
