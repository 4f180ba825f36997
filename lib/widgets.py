"""Interactive elements of the lessons that need no kernel: HTML and a little JavaScript that
run in the static book, in Jupyter and in Colab.

- `model_calculator`: the size of a GPT from its shape (lesson 3). The page computes with the
  same formulas as `lib.model`; the browser test sets many shapes and compares what the page
  shows with `GPT.parameter_breakdown`, `GPT.training_memory_bytes` and `GPT.flops_per_token`.
- `sampling_explorer`: a temperature slider and a filter menu (lesson 7). Every setting's
  distribution and text were computed by lib when the page was built; the page only shows them.

Each returns (html, script); `show` displays both. The controls are labelled form elements, so
a keyboard (Tab, the arrow keys) and a screen reader can use them; results are announced from
an `aria-live` region.
"""

from __future__ import annotations

import hashlib
import html
import json

# The course's figure colours (lib.plotting.TRAIN), and text dark enough for WCAG AA on the
# white of the light theme and on the light grey (#ced6dd) that the dark theme gives outputs.
_BAR = "#1f77b4"
_TEXT = "#1d2430"
_MUTED = "#3d4654"


def _uid(kind: str, data) -> str:
    """A stable id: the same data gives the same page (builds are reproducible)."""
    digest = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return f"course-{kind}-{digest}"


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
    uid = _uid("calc", shapes)
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
    markup = f"""
<div class="course-widget course-calc" id="{uid}" style="color:{_TEXT}">
<form class="course-calc-form" aria-describedby="{uid}-help" onsubmit="return false">
<div class="course-calc-field"><label for="{uid}-preset">start from</label>
<select id="{uid}-preset">{options}<option value="">(your own)</option></select></div>
{inputs}
<div class="course-calc-field"><label for="{uid}-bias">biases (GPT-2 has them)</label>
<input type="checkbox" id="{uid}-bias" {"checked" if first["bias"] else ""}></div>
</form>
<p id="{uid}-help" class="course-calc-help" style="color:{_MUTED}">Change a number (or use the
arrow keys in a field); the results follow at once.</p>
<div class="course-calc-results" aria-live="polite">
<p class="course-calc-error" role="alert" data-out="error" hidden></p>
<table class="course-calc-table">
<caption>Parameters: <strong data-out="total"></strong> (head tied to the token embedding)</caption>
<thead><tr><th scope="col">part</th><th scope="col">parameters</th><th scope="col">share</th></tr></thead>
<tbody>{rows}</tbody></table>
<table class="course-calc-table">
<caption>Training memory before activations (float32, AdamW): <strong data-out="memory"></strong></caption>
<tbody>
<tr><th scope="row">weights</th><td data-mem="weights"></td></tr>
<tr><th scope="row">gradients</th><td data-mem="gradients"></td></tr>
<tr><th scope="row">AdamW moments</th><td data-mem="AdamW moments"></td></tr>
</tbody></table>
<p>Training FLOPs per token (6N + 12LTd, as in the next section): <strong data-out="flops"></strong>,
or <span data-out="flops_step"></span> for a batch of one full context.</p>
</div></div>"""
    script = """
(function () {
  const root = document.getElementById(%(uid)s);
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const presets = %(presets)s;
  const fields = %(fields)s;
  const $ = (sel) => root.querySelector(sel);
  const input = (f) => document.getElementById(%(uid)s + "-" + f);
  const fmt = (n) => n.toLocaleString("en-US");
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(v < 10 ? 2 : 1) : v) + " " + units[i];
  }
  function flopsText(n) {
    const units = [[1e12, "TFLOP"], [1e9, "GFLOP"], [1e6, "MFLOP"], [1e3, "kFLOP"]];
    for (const [s, u] of units) if (n >= s) return (n / s).toPrecision(3) + " " + u;
    return n + " FLOP";
  }
  // The formulas of lib.model.GPT: estimate_parameters_unchecked, parameter_breakdown,
  // training_memory_bytes and flops_per_token.
  function sizes(c) {
    const d = c.n_embd, L = c.n_layer, b = c.bias ? 1 : 0, T = c.block_size, V = c.vocab_size;
    const parts = {
      "token embedding": V * d,
      "position embedding": T * d,
      "attention": L * (d * 3 * d + b * 3 * d + d * d + b * d),
      "MLP": L * (d * 4 * d + b * 4 * d + 4 * d * d + b * d),
      "layer norms": L * 2 * (d + b * d) + (d + b * d),
    };
    const total = Object.values(parts).reduce((a, x) => a + x, 0);
    const memory = {"weights": 4 * total, "gradients": 4 * total, "AdamW moments": 8 * total};
    const flops = 6 * (total - parts["position embedding"]) + 12 * L * T * d;
    return {parts, total, memory, flops};
  }
  function read() {
    const c = {bias: input("bias").checked};
    for (const [f, lo, hi] of fields) {
      const raw = input(f).value.trim();
      const v = Number(raw);
      if (raw === "" || !Number.isInteger(v) || v < lo || v > hi)
        return {error: f + " must be a whole number from " + fmt(lo) + " to " + fmt(hi) +
                       (raw === "" ? " (the field is empty)" : ", not " + raw)};
      c[f] = v;
    }
    if (c.n_embd %% c.n_head !== 0) {
      const fix = c.n_head * Math.max(1, Math.round(c.n_embd / c.n_head));
      return {error: "n_embd (" + c.n_embd + ") must be divisible by n_head (" + c.n_head +
                     "): each head gets n_embd / n_head dimensions. Try n_embd = " + fix + "."};
    }
    return c;
  }
  function update() {
    const c = read();
    const error = $("[data-out=error]");
    root.querySelectorAll("table, p:not([data-out=error]):not(.course-calc-help)")
      .forEach(el => { el.hidden = !!c.error; });
    if (c.error) { error.textContent = c.error; error.hidden = false; return; }
    error.hidden = true;
    const s = sizes(c);
    $("[data-out=total]").textContent = fmt(s.total);
    $("[data-out=total]").dataset.value = s.total;
    for (const [part, n] of Object.entries(s.parts)) {
      const cell = root.querySelector('[data-part="' + part + '"]');
      cell.textContent = fmt(n); cell.dataset.value = n;
      root.querySelector('[data-share="' + part + '"]').textContent =
        (100 * n / s.total).toFixed(1) + "%%";
    }
    for (const [part, n] of Object.entries(s.memory)) {
      const cell = root.querySelector('[data-mem="' + part + '"]');
      cell.textContent = bytes(n); cell.dataset.value = n;
    }
    const mem = s.memory["weights"] + s.memory["gradients"] + s.memory["AdamW moments"];
    $("[data-out=memory]").textContent = bytes(mem);
    $("[data-out=memory]").dataset.value = mem;
    $("[data-out=flops]").textContent = fmt(s.flops) + " (" + flopsText(s.flops) + ")";
    $("[data-out=flops]").dataset.value = s.flops;
    $("[data-out=flops_step]").textContent = flopsText(s.flops * c.block_size);
  }
  function usePreset(name) {
    const p = presets[name];
    if (!p) return;
    for (const [f] of fields) input(f).value = p[f];
    input("bias").checked = p.bias;
    update();
  }
  input("preset").addEventListener("change", e => usePreset(e.target.value));
  for (const [f] of fields) input(f).addEventListener("input", () => {
    input("preset").value = ""; update(); });
  input("bias").addEventListener("change", () => { input("preset").value = ""; update(); });
  usePreset(Object.keys(presets)[0]);
})();
""" % {"uid": json.dumps(uid), "presets": json.dumps(shapes),
       "fields": json.dumps([[f, lo, hi] for f, _, lo, hi in _FIELDS])}
    return markup, script


# --------------------------------------------------------------------------- sampling explorer

def sampling_explorer(prompt: str, labels: list[str], temperatures: list[float],
                      filters: list[str], settings: dict) -> tuple[str, str]:
    """A temperature slider and a filter menu over precomputed settings.

    `labels`: the characters whose probabilities are drawn (and "rest", all others summed).
    `settings[(filter, temperature)]` = {"probs": [...] (one per label), "kept": number of
    characters the filter keeps, "text": what the model wrote with that setting}."""
    data = {"prompt": prompt, "labels": labels, "temperatures": temperatures, "filters": filters,
            "settings": {}}
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
    markup = f"""
<div class="course-widget course-sampling" id="{uid}" style="color:{_TEXT}">
<div class="course-sampling-controls">
<label for="{uid}-t">temperature τ = <output id="{uid}-t-out" for="{uid}-t"></output></label>
<input type="range" id="{uid}-t" min="0" max="{len(temperatures) - 1}" step="1" value="{middle}">
<label for="{uid}-f">filter</label>
<select id="{uid}-f">{options}</select>
</div>
<div aria-live="polite">
<p class="course-sampling-caption" data-out="caption"></p>
<svg data-out="bars" width="640" height="230" viewBox="0 0 640 230" role="img"
 aria-label="Probabilities of the next character for the chosen setting"></svg>
<p class="course-sampling-label" style="color:{_MUTED}">What the model wrote after
<code>{html.escape(prompt.replace(chr(10), " "))}</code> with this setting:</p>
<pre class="course-sampling-text" data-out="text"></pre>
</div></div>"""
    script = """
(function () {
  const root = document.getElementById(%(uid)s);
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  const data = %(data)s;
  const slider = document.getElementById(%(uid)s + "-t");
  const menu = document.getElementById(%(uid)s + "-f");
  const tOut = document.getElementById(%(uid)s + "-t-out");
  const svg = root.querySelector("[data-out=bars]");
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function draw(probs) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const n = probs.length, left = 44, bottom = 200, top = 12, width = 640 - left - 8;
    const slot = width / n, h = bottom - top;
    svg.appendChild(el("line", {x1: left, y1: bottom, x2: 640 - 8, y2: bottom, stroke: "%(muted)s"}));
    for (const tick of [0, 0.5, 1]) {
      const y = bottom - tick * h;
      svg.appendChild(el("text", {x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 12,
                                  fill: "%(text)s"}, tick.toFixed(1)));
      svg.appendChild(el("line", {x1: left, y1: y, x2: left + 4, y2: y, stroke: "%(muted)s"}));
    }
    probs.forEach((p, i) => {
      const x = left + i * slot + slot * 0.15, w = slot * 0.7, bh = p * h;
      const bar = el("rect", {x: x, y: bottom - bh, width: w, height: bh, fill: "%(bar)s"});
      bar.dataset.p = p;
      svg.appendChild(bar);
      svg.appendChild(el("text", {x: x + w / 2, y: bottom - bh - 3, "text-anchor": "middle",
                                  "font-size": 11, fill: "%(text)s"}, p.toFixed(2)));
      svg.appendChild(el("text", {x: x + w / 2, y: bottom + 16, "text-anchor": "middle",
                                  "font-size": 13, fill: "%(text)s"}, data.labels[i]));
    });
  }
  function update() {
    const t = data.temperatures[Number(slider.value)], f = menu.value;
    const s = data.settings[menu.selectedIndex + "|" + slider.value];
    tOut.textContent = t;
    slider.setAttribute("aria-valuetext", "temperature " + t);
    draw(s.probs);
    const top = data.labels.map((c, i) => [c, s.probs[i]]).filter(e => e[0] !== "rest")
      .sort((a, b) => b[1] - a[1])[0];  // a character, never the others summed
    svg.setAttribute("aria-label", "Probabilities of the next character at temperature " + t +
      ", " + f + ": " + data.labels.map((c, i) => c + " " + s.probs[i].toFixed(2)).join(", "));
    root.querySelector("[data-out=caption]").textContent =
      "Temperature " + t + ", " + f + ": " + s.kept + " characters can be drawn; the most likely, " +
      top[0] + ", has " + top[1].toFixed(2) + ".";
    root.querySelector("[data-out=text]").textContent = s.text;
  }
  slider.addEventListener("input", update);
  menu.addEventListener("change", update);
  update();
})();
""" % {"uid": json.dumps(uid), "data": json.dumps(data), "bar": _BAR, "text": _TEXT,
       "muted": _MUTED}
    return markup, script
