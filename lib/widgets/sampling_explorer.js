// The sampling explorer of lib.widgets (lesson 7): a temperature slider and a filter menu over
// settings that lib computed when the page was built. Each explorer on the page (a
// .course-sampling element) reads its data from the JSON block inside it (id: the explorer's
// id + "-data"): the labels, temperatures and filters, the colours, and for each setting (keyed
// "filter index|temperature index") the probabilities, the number of characters kept and the text.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function start(root) {
    if (root.dataset.ready) return;
    const block = document.getElementById(root.id + "-data");
    if (!block) return;
    root.dataset.ready = "1";
    const data = JSON.parse(block.textContent);
    const colour = data.colours;
    const slider = document.getElementById(root.id + "-t");
    const menu = document.getElementById(root.id + "-f");
    const tOut = document.getElementById(root.id + "-t-out");
    const svg = root.querySelector("[data-out=bars]");
    function draw(probs) {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      const n = probs.length, left = 44, bottom = 200, top = 12, width = 640 - left - 8;
      const slot = width / n, h = bottom - top;
      svg.appendChild(el("line", {x1: left, y1: bottom, x2: 640 - 8, y2: bottom,
                                  stroke: colour.muted}));
      for (const tick of [0, 0.5, 1]) {
        const y = bottom - tick * h;
        svg.appendChild(el("text", {x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 12,
                                    fill: colour.text}, tick.toFixed(1)));
        svg.appendChild(el("line", {x1: left, y1: y, x2: left + 4, y2: y, stroke: colour.muted}));
      }
      probs.forEach((p, i) => {
        const x = left + i * slot + slot * 0.15, w = slot * 0.7, bh = p * h;
        const bar = el("rect", {x: x, y: bottom - bh, width: w, height: bh, fill: colour.bar});
        bar.dataset.p = p;
        svg.appendChild(bar);
        svg.appendChild(el("text", {x: x + w / 2, y: bottom - bh - 3, "text-anchor": "middle",
                                    "font-size": 11, fill: colour.text}, p.toFixed(2)));
        svg.appendChild(el("text", {x: x + w / 2, y: bottom + 16, "text-anchor": "middle",
                                    "font-size": 13, fill: colour.text}, data.labels[i]));
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
  }

  if (typeof document !== "undefined")
    document.querySelectorAll(".course-sampling").forEach(start);
})();
