// A stand-in for the few DOM calls the widgets' scripts make, for tests/test_widgets.py under
// Node: node widgets_stub_dom.js <script.js> <root id> <JSON block text> <kind> [preset or
// "slider|menu"]. It runs the script against one widget whose JSON block holds the given text,
// fires the controls' events as the page would, and prints what the script wrote into the
// page's outputs as JSON. It is no browser: the browser test checks the real pages.
"use strict";
const fs = require("fs");
const [file, rootId, blockText, kind] = process.argv.slice(2);

class Element {
  constructor(id) {
    this.id = id; this.dataset = {}; this.attributes = {}; this.children = [];
    this.listeners = {}; this._text = ""; this.hidden = false; this._value = "";
    this.checked = false; this.selectedIndex = 0;
  }
  get value() { return this._value; }
  set value(v) { this._value = String(v); }  // strings, as in a page
  get textContent() { return this._text; }
  set textContent(v) { this._text = String(v); }
  setAttribute(k, v) { this.attributes[k] = String(v); }
  getAttribute(k) { return this.attributes[k]; }
  addEventListener(type, f) { (this.listeners[type] = this.listeners[type] || []).push(f); }
  fire(type) { for (const f of this.listeners[type] || []) f({target: this}); }
  appendChild(e) { this.children.push(e); return e; }
  removeChild(e) { this.children.splice(this.children.indexOf(e), 1); }
  get firstChild() { return this.children[0] || null; }
}

const byId = {}, bySelector = {};
const get = (map, key) => (map[key] = map[key] || new Element(key));
const root = get(byId, rootId);
root.querySelector = (sel) => get(bySelector, sel);
root.querySelectorAll = () => [];
get(byId, rootId + "-data").textContent = blockText;
global.document = {
  getElementById: (id) => get(byId, id),
  querySelectorAll: (sel) => (sel === "." + kind ? [root] : []),
  createElementNS: () => new Element(null),
};

if (kind === "course-calc") {
  const fields = JSON.parse(blockText).fields.map(f => f[0]);
  require(fs.realpathSync(file));
  const out = {};
  for (const f of fields) out[f] = Number(byId[rootId + "-" + f].value);
  out.bias = byId[rootId + "-bias"].checked;
  out.total = Number(bySelector["[data-out=total]"].dataset.value);
  out.flops = Number(bySelector["[data-out=flops]"].dataset.value);
  console.log(JSON.stringify(out));
} else {
  const [slider, menu] = process.argv[6].split("|").map(Number);
  get(byId, rootId + "-t").value = String(slider);
  const m = get(byId, rootId + "-f");
  m.selectedIndex = menu; m.value = JSON.parse(blockText).filters[menu];
  require(fs.realpathSync(file));
  console.log(JSON.stringify({text: bySelector["[data-out=text]"].textContent,
                              caption: bySelector["[data-out=caption]"].textContent,
                              t: byId[rootId + "-t-out"].textContent,
                              bars: bySelector["[data-out=bars]"].children
                                .filter(e => e.dataset.p !== undefined).map(e => e.dataset.p)}));
}
