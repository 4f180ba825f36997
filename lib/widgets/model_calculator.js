// The model calculator of lib.widgets (lesson 3): the size of a GPT from its shape.
// Each calculator on the page (a .course-calc element) reads its presets and fields from the
// JSON block inside it (id: the calculator's id + "-data"). Under Node (the unit test) nothing
// is drawn: the file exports `sizes`, the formulas that the test compares with lib.model's.
(function (exports) {
  "use strict";
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

  function start(root) {
    if (root.dataset.ready) return;
    const block = document.getElementById(root.id + "-data");
    if (!block) return;
    root.dataset.ready = "1";
    const {presets, fields} = JSON.parse(block.textContent);
    const $ = (sel) => root.querySelector(sel);
    const input = (f) => document.getElementById(root.id + "-" + f);
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
      if (c.n_embd % c.n_head !== 0) {
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
          (100 * n / s.total).toFixed(1) + "%";
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
  }

  exports.sizes = sizes;
  if (typeof document !== "undefined")
    document.querySelectorAll(".course-calc").forEach(start);
})(typeof module === "object" && module.exports ? module.exports : {});
