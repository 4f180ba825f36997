"""The built book, opened page by page in a real browser (headless Chromium), as a reader does.

Run it after `make book`:  make browser-test  (= pytest -m browser tests)
Another built book (a small one made to try a change, say):  COURSE_BOOK_HTML=path/to/_build/html
pytest -m browser tests -k "maths or figures"  (screenshots then go beside that folder).

It serves `_build/html` on localhost and drives Debian's chromium and chromedriver
(`apt-get install chromium chromium-driver`) through Selenium, given their paths, so nothing
downloads a browser. Without a built book or a browser it is skipped, unless
COURSE_REQUIRE_BROWSER=1 (set by CI), which makes a missing piece a failure.

Checked on every page: no JavaScript error in the console, every image loaded, no cell output
holding a traceback or an error, every link to a local page (and its #anchor) exists. The kernel-free
parts are used as a reader would: each lesson's quiz (a wrong answer, the right one, the
keyboard), lesson 3's model calculator (against lib's own numbers), lesson 7's sampling explorer
(text and picture follow the settings). axe-core checks every page in the light and dark themes,
and no lesson figure may vanish in the dark theme. Every lesson downloads as an
executed .ipynb, and has an "Open in Colab" button to the notebook the build wrote for it. A screenshot of each page is
written to `_build/screenshots/` for review.

Maths renders offline: on every page MathJax comes from the book itself (never a CDN, whose
failed load this test would otherwise ignore as an external one), no text outside code, hidden
or shown, still holds raw TeX delimiters, and every maths element holds MathJax's output.
Figures are not shrunk: at a 1280 x 900 window every figure image in a lesson is shown at 75%
of its natural width or more (the width of the article column is printed, to size figures by:
run with -s).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("COURSE_BOOK_HTML") or ROOT / "_build" / "html").resolve()
SHOTS = HTML.parent / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRED = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"

pytestmark = pytest.mark.browser


def _missing() -> str | None:
    if not (HTML / "index.html").exists():
        return f"no built book at {HTML} (run `make book` first)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements.txt)"
    return None


def pages() -> list[Path]:
    """Every page of the book: the HTML files outside Sphinx's own asset folders."""
    if not HTML.exists():
        return []
    skip = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}
    return sorted(p for p in HTML.rglob("*.html") if not skip & set(p.relative_to(HTML).parts))


@pytest.fixture(scope="module")
def server():
    reason = _missing()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def browser(server):
    from helpers import chromium_driver

    driver = chromium_driver()
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _is_external_load_failure(entry: dict) -> bool:
    """A resource from the internet (a launch button's script, say) that could not load on an
    offline machine: not an error of the book. A failure to load one of the book's own files
    still counts, and so does MathJax from anywhere: the book serves its own copy."""
    message = entry.get("message", "")
    if re.search(r"/favicon\.ico - Failed to load resource", message):
        return True  # the browser's own probe, made for index.html (Jupyter Book's redirect page,
        # which has no icon link) when it loads before the redirect; the book's pages link theirs
    urls = re.findall(r"https?://[^\s\"')]+", message)
    if any("mathjax" in u.lower() for u in urls):
        return False  # maths must render offline (test_maths_renders_from_the_book)
    return bool(urls) and all("127.0.0.1" not in u for u in urls) and (
        "Failed to load resource" in message or "net::ERR_" in message)


def _open(driver, url: str) -> list[dict]:
    """Load a page, let it settle, and return what it wrote to the console at level SEVERE."""
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(url)
    for _ in range(100):
        if driver.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.05)
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")  # lazy content
    time.sleep(0.3)
    driver.execute_script("window.scrollTo(0, 0)")
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _screenshot(driver, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height), 12000)))
    driver.save_screenshot(str(SHOTS / name))
    driver.set_window_size(1280, 900)


def _ids_in(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_page_in_a_browser(browser, server, page):
    rel = page.relative_to(HTML).as_posix()
    url = urljoin(server, rel)
    errors = [e for e in _open(browser, url) if not _is_external_load_failure(e)]
    assert errors == [], f"JavaScript console errors on {rel}: {errors}"

    broken = browser.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120))")
    assert broken == [], f"images that did not load on {rel}: {broken}"

    outputs = browser.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output, .output'))"
        ".map(o => [o.className, o.innerText])")
    bad = [text[:300] for cls, text in outputs
           if "Traceback (most recent call last)" in text or re.search(r"\b(traceback|error)\b", cls)]
    assert bad == [], f"cell outputs with a traceback or an error on {rel}: {bad}"

    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    missing = []
    for link in set(links):
        parsed = urlparse(link)
        if not link.startswith(server):
            continue  # another site, mailto:, javascript: ... not the book's to check
        target = HTML / unquote(parsed.path[1:])
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            missing.append(link)
        elif parsed.fragment and target.suffix == ".html" and unquote(parsed.fragment) not in _ids_in(target):
            missing.append(link)
    assert missing == [], f"links on {rel} to pages or anchors that do not exist: {sorted(missing)}"

    _screenshot(browser, rel.replace("/", "__").replace(".html", ".png"))


def test_every_lesson_downloads_as_an_executed_notebook(server):
    """The download button offers each lesson as .ipynb with its outputs, and as .md."""
    import json

    lessons = sorted((HTML / "lessons").glob("*.html"))
    assert lessons
    for page in lessons:
        html = page.read_text(encoding="utf-8")
        for suffix in (".ipynb", ".md"):
            assert f"_sources/lessons/{page.stem}{suffix}" in html, (page.name, suffix)
        nb = json.loads((HTML / "_sources" / "lessons" / f"{page.stem}.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and any(c.get("outputs") for c in code), f"{page.stem}.ipynb has no outputs"
        assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_every_lesson_has_a_colab_button_to_its_published_notebook(browser, server):
    """The button on each lesson page opens, on Colab, the notebook that `make book` wrote for
    that page (the publishing workflow pushes _build/notebooks to the notebooks branch)."""
    import json

    from helpers import load_script

    colab = load_script("book/_ext/colab.py")
    repository = re.search(r"^  url: (\S+)", (ROOT / "_config.yml").read_text(), re.M)[1]
    lessons = sorted((HTML / "lessons").glob("*.html"))
    assert lessons
    for page in lessons:
        _open(browser, urljoin(server, f"lessons/{page.name}"))
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a.colab-button'))"
            ".map(a => [a.href, a.textContent, a.getBoundingClientRect().width > 0])")
        assert links == [[colab.colab_url(repository, f"lessons/{page.stem}"),
                          "Open this lesson in Colab", True]], (page.name, links)
        notebook = HTML.parent / "notebooks" / "lessons" / f"{page.stem}.ipynb"
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        assert "colab-setup" in nb["cells"][1]["metadata"]["tags"], notebook


def test_search_finds_lesson_content(browser, server):
    """The book's search page finds a lesson by a word that appears only in lesson text."""
    _open(browser, urljoin(server, "search.html?q=perplexity"))
    for _ in range(100):  # the index loads and the results fill in asynchronously
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results a')).map(a => a.href)")
        if found:
            break
        time.sleep(0.1)
    assert any("02_cross_entropy_perplexity" in href for href in found), found


@pytest.mark.parametrize("page", sorted((HTML / "lessons").glob("*.html")) if HTML.exists() else [],
                         ids=lambda p: p.stem)
def test_lesson_starts_with_goals_and_links_its_neighbours(browser, server, page):
    _open(browser, urljoin(server, f"lessons/{page.name}"))
    first = browser.execute_script(
        "const a = document.querySelector('article .admonition'); return a ? a.innerText : ''")
    assert "What you will be able to do" in first, page.name
    nav = browser.execute_script(
        "return Array.from(document.querySelectorAll('.prev-next-area a')).map(a => a.className)")
    n = int(page.stem[:2])
    last = max(int(p.stem[:2]) for p in (HTML / "lessons").glob("*.html"))
    assert any("left-prev" in c for c in nav), f"{page.name} has no link to the previous page"
    if n < last:
        assert any("right-next" in c for c in nav), f"{page.name} has no link to the next lesson"


# --------------------------------------------------------------------------- maths and figures

_RAW_TEX = ("\\(", "\\)", "\\[", "\\]", "$$")

# Waits for MathJax to finish typesetting (when it loaded at all), then reports what a reader
# would see: the MathJax scripts and files the page fetched, text outside code that still holds
# TeX delimiters, and maths elements MathJax left without its output.
_MATHS_JS = r"""
const delimiters = arguments[0], done = arguments[arguments.length - 1];
const mj = window.MathJax;
const ready = (mj && mj.startup && mj.startup.promise) ? mj.startup.promise : Promise.resolve();
ready.then(() => report(null), err => report(String(err)));
function report(error) {
  const skip = "pre, code, script, style, noscript, template, textarea, mjx-container";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const text = n.nodeValue;
    if (delimiters.some(d => text.includes(d)))
      raw.push(text.trim().slice(0, 160));
  }
  const maths = Array.from(document.querySelectorAll(".math"));
  done({
    error: error,
    version: (mj && mj.version) || null,
    scripts: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
    fetched: performance.getEntriesByType("resource").map(r => r.name)
      .filter(n => /mathjax/i.test(n)),
    raw: raw,
    maths: maths.length,
    unrendered: maths.filter(m => !m.querySelector("mjx-container"))
      .map(m => m.textContent.trim().slice(0, 120)),
    containers: document.querySelectorAll("mjx-container").length,
  });
}
"""


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_maths_renders_from_the_book(browser, server, page):
    """MathJax comes from the book, not a CDN, and typesets every formula on the page."""
    rel = page.relative_to(HTML).as_posix()
    _open(browser, urljoin(server, rel))
    browser.set_script_timeout(30)
    found = browser.execute_async_script(_MATHS_JS, list(_RAW_TEX))
    foreign = [u for u in found["scripts"] + found["fetched"] if not u.startswith(server)]
    assert foreign == [], f"{rel} loads MathJax from outside the book: {foreign}"
    assert found["raw"] == [], (
        f"{rel} shows raw TeX (one of {' '.join(_RAW_TEX)}) outside code, so MathJax did not "
        f"typeset it (MathJax {found['version'] or 'not loaded'}): {found['raw'][:5]}")
    if found["maths"]:
        assert found["scripts"] and found["version"], (
            f"{rel} has {found['maths']} maths elements but MathJax did not load "
            f"(scripts: {found['scripts']}, error: {found['error']})")
        assert found["containers"] and found["unrendered"] == [], (
            f"{rel}: maths without MathJax output (mjx-container): {found['unrendered'][:5]}")


def test_mathjax_is_served_by_the_book():
    """Every page that loads MathJax names a file of the book itself, and that file is there."""
    if not pages():
        pytest.skip(f"no built book at {HTML}")
    problems = []
    for page in pages():
        html = page.read_text(encoding="utf-8", errors="replace")
        for src in re.findall(r"<script[^>]*\bsrc=\"([^\"]*mathjax[^\"]*)\"", html, flags=re.I):
            target = (page.parent / unquote(urlparse(src).path)).resolve()
            if urlparse(src).scheme or src.startswith("//") or not target.is_file():
                problems.append(f"{page.relative_to(HTML)}: {src}")
    assert problems == [], f"MathJax not served from the book: {problems}"


# Opens every dropdown, then measures each image in the article and the article's content box.
_FIGURES_JS = r"""
document.querySelectorAll("details").forEach(d => { d.open = true; });
const article = document.querySelector("article.bd-article") || document.querySelector("article");
if (!article) return null;
const style = getComputedStyle(article);
const column = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
return {
  window: window.innerWidth,
  column: Math.round(column),
  images: Array.from(article.querySelectorAll("img")).map(i => ({
    alt: i.alt, src: (i.getAttribute("src") || "").slice(0, 100),
    natural: i.naturalWidth, shown: i.clientWidth, visible: i.getClientRects().length > 0,
  })),
};
"""

LESSON_PAGES = [p for p in pages() if p.relative_to(HTML).parts[0] == "lessons"]


@pytest.mark.parametrize("page", LESSON_PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_figures_are_not_shrunk(browser, server, page):
    """At 1280 x 900, every figure of a lesson is shown at 75% of its natural width or more.

    A matplotlib PNG wider than the article column is scaled down to fit, and its text with it;
    the printed column width is the most a figure can take (in CSS pixels, = image pixels at
    the browser's zoom of 100%)."""
    rel = page.relative_to(HTML).as_posix()
    browser.set_window_size(1280, 900)
    _open(browser, urljoin(server, rel))
    found = browser.execute_script(_FIGURES_JS)
    assert found, f"{rel} has no article element"
    print(f"\n{rel}: window {found['window']} px wide, article column {found['column']} px; "
          + "; ".join(f"{i['src'][-40:]} {i['natural']} -> {i['shown']} px"
                      for i in found["images"]))
    shrunk = [f"{i['alt'] or '(no alt)'} [{i['src']}]: natural {i['natural']} px, shown "
              f"{i['shown']} px ({i['shown'] / i['natural']:.0%})"
              for i in found["images"]
              if i["visible"] and i["natural"] and i["shown"] < 0.75 * i["natural"]]
    assert shrunk == [], (
        f"{rel}: figures shown at less than 75% of their natural width in a 1280 px window "
        f"(article column {found['column']} px): {shrunk}")


# --------------------------------------------------------------------------- quizzes

# Every quiz on the page: its questions' texts, and each answer's text and key.
_QUIZ_JS = r"""
return Array.from(document.querySelectorAll("article .Quiz")).map(w => ({
  question: (w.querySelector("[id^=quizQn]") || {}).innerText || "",
  answers: Array.from(w.querySelectorAll("label.MCButton")).map(l => ({
    id: l.id, text: l.innerText.trim(), correct: l.dataset.correct === "true"})),
}));
"""
_FEEDBACK_JS = r"""
const fb = arguments[0].closest(".Quiz").querySelector(".Feedback");
return fb ? {cls: fb.className, text: fb.innerText.trim()} : null;
"""


def _template(text: str) -> re.Pattern:
    """A quiz text with its {placeholders} as wildcards: what the page must show."""
    import string

    parts = [re.escape(" ".join(lit.split(" "))) + ("(.+?)" if field is not None else "")
             for lit, field, _, _ in string.Formatter().parse(text)]
    return re.compile("".join(parts) + "$", re.S)


def _matching(templates: list[str], shown: str) -> int:
    hits = [i for i, t in enumerate(templates) if _template(t).match(" ".join(shown.split()))]
    assert len(hits) == 1, f"{shown!r} matches {len(hits)} of the quiz's texts"
    return hits[0]


@pytest.mark.parametrize("page", LESSON_PAGES, ids=lambda p: p.stem)
def test_the_quiz_tells_a_right_answer_from_a_wrong_one(browser, server, page):
    """Each lesson's quiz is on its page with every question of its answer key, its numbers
    filled in; a wrong answer and then the right one, clicked, each get their own feedback; and
    the keyboard alone can answer (Tab to an answer, Space)."""
    from selenium.webdriver.common.keys import Keys

    from lib import quiz

    key = quiz.load(page.stem)
    _open(browser, urljoin(server, f"lessons/{page.name}"))
    for _ in range(50):
        shown = browser.execute_script(_QUIZ_JS)
        if len(shown) >= len(key):
            break
        time.sleep(0.1)
    assert len(shown) == len(key), f"{page.name}: {len(shown)} quiz questions shown, {len(key)} in the key"
    for q, s in zip(key, shown):
        assert _template(q["question"]).match(" ".join(s["question"].split())), (s["question"], q["question"])
        assert "{" not in s["question"] + "".join(a["text"] for a in s["answers"])
        assert sorted(a["correct"] for a in s["answers"]) == sorted(a["correct"] for a in q["answers"])

    first, answers = key[0], shown[0]["answers"]
    texts = [a["answer"] for a in first["answers"]]
    for want in (False, True):  # a wrong answer, then the right one
        label = next(a for a in answers if a["correct"] is want)
        element = browser.find_element("id", label["id"])
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        feedback = browser.execute_script(_FEEDBACK_JS, element)
        expected = first["answers"][_matching(texts, label["text"])]
        assert expected["correct"] is want
        assert ("correct" if want else "incorrect") in feedback["cls"].split(), (page.name, feedback)
        assert _template(expected["feedback"]).match(" ".join(feedback["text"].split())), (
            f"{page.name}: clicking {label['text']!r} said {feedback['text']!r}")

    # The keyboard: the answers are radio buttons inside their labels.
    second = browser.find_elements("css selector", "article .Quiz")[1]
    radio = second.find_element("css selector", "label.MCButton input[type=radio]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", radio)
    assert browser.execute_script("return document.activeElement === arguments[0]", radio)
    radio.send_keys(Keys.SPACE)
    feedback = browser.execute_script(_FEEDBACK_JS, radio)
    assert feedback and feedback["text"], f"{page.name}: Space on a focused answer gave no feedback"


# --------------------------------------------------------------------------- kernel-free widgets

_CALC_SET_JS = r"""
const [root, shape] = arguments;
const id = root.id;
for (const [f, v] of Object.entries(shape)) {
  if (f === "bias") continue;
  const el = document.getElementById(id + "-" + f);
  el.value = String(v);
  el.dispatchEvent(new Event("input", {bubbles: true}));
}
const box = document.getElementById(id + "-bias");
if (box.checked !== shape.bias) { box.checked = shape.bias; box.dispatchEvent(new Event("change")); }
const value = (sel) => { const e = root.querySelector(sel); return e && !e.closest("[hidden]") ? e.dataset.value : null; };
const parts = {}, memory = {};
root.querySelectorAll("[data-part]").forEach(e => { parts[e.dataset.part] = e.dataset.value; });
root.querySelectorAll("[data-mem]").forEach(e => { memory[e.dataset.mem] = e.dataset.value; });
const error = root.querySelector("[data-out=error]");
return {total: value("[data-out=total]"), memory_total: value("[data-out=memory]"),
        flops: value("[data-out=flops]"), parts: parts, memory: memory,
        shown: root.querySelector("[data-out=total]").textContent,
        error: error.hidden ? null : error.textContent};
"""

# Shapes the calculator must get right: the presets it offers are checked too.
_CALC_SHAPES = [
    dict(n_layer=1, n_head=1, n_embd=1, block_size=1, vocab_size=1, bias=True),
    dict(n_layer=3, n_head=4, n_embd=128, block_size=64, vocab_size=65, bias=False),
    dict(n_layer=8, n_head=8, n_embd=512, block_size=512, vocab_size=50257, bias=True),
    dict(n_layer=2, n_head=3, n_embd=96, block_size=32, vocab_size=65, bias=True),
    dict(n_layer=96, n_head=96, n_embd=12288, block_size=2048, vocab_size=50257, bias=True),  # GPT-3's shape
    dict(n_layer=32, n_head=32, n_embd=4096, block_size=8192, vocab_size=128256, bias=False),
]


def _lib_sizes(shape: dict) -> dict:
    import torch

    from lib.model import GPT, GPTConfig

    config = GPTConfig(**shape)
    with torch.device("meta"):  # shapes only: no memory, even for GPT-3's
        model = GPT(config)
    parts = {k: v for k, v in model.parameter_breakdown().items() if k != "head (tied)"}
    memory = GPT.training_memory_bytes(config)
    return {"total": GPT.estimate_parameters_unchecked(config), "parts": parts,
            "memory": memory, "memory_total": sum(memory.values()),
            "flops": model.flops_per_token()}


def test_the_model_calculator_agrees_with_lib(browser, server):
    """Lesson 3's calculator, set to each of its presets and to other shapes (GPT-3's among
    them), shows lib's parameter count and breakdown, training memory and FLOPs per token;
    a width that the heads do not divide gets an error that names the fix."""
    _open(browser, urljoin(server, "lessons/03_the_model.html"))
    roots = browser.find_elements("css selector", ".course-calc")
    assert len(roots) == 1, "lesson 03 has no model calculator"
    root = roots[0]
    presets = browser.execute_script(
        "return Array.from(arguments[0].querySelectorAll('select option')).map(o => o.value)"
        ".filter(v => v)", root)
    assert any("GPT-2 small" in p for p in presets) and any("course:" in p for p in presets), presets
    shapes = []
    for name in presets:  # each preset, as the menu sets it
        browser.execute_script(
            "const s = document.getElementById(arguments[0].id + '-preset'); s.value = arguments[1];"
            "s.dispatchEvent(new Event('change'));", root, name)
        shapes.append(browser.execute_script(
            "const id = arguments[0].id, out = {bias: document.getElementById(id + '-bias').checked};"
            "for (const f of ['n_layer', 'n_head', 'n_embd', 'block_size', 'vocab_size'])"
            "  out[f] = Number(document.getElementById(id + '-' + f).value); return out;", root))
    shapes += _CALC_SHAPES
    assert len(shapes) >= 10
    for shape in shapes:
        shown = browser.execute_script(_CALC_SET_JS, root, shape)
        want = _lib_sizes(shape)
        assert shown["error"] is None, (shape, shown["error"])
        got = {"total": int(shown["total"]), "memory_total": int(shown["memory_total"]),
               "flops": int(shown["flops"]),
               "parts": {k: int(v) for k, v in shown["parts"].items()},
               "memory": {k: int(v) for k, v in shown["memory"].items()}}
        assert got == want, f"calculator vs lib for {shape}: {got} != {want}"
        assert shown["shown"] == f"{want['total']:,}"
    bad = dict(_CALC_SHAPES[1], n_embd=100, n_head=3)
    shown = browser.execute_script(_CALC_SET_JS, root, bad)
    assert shown["error"] and "divisible by n_head" in shown["error"] and "Try n_embd = 99" in shown["error"]
    assert shown["total"] is None  # the results are hidden, not left stale
    browser.save_screenshot(str(SHOTS / "lessons__03_the_model__calculator.png"))


def test_the_sampling_explorer_shows_text_and_picture_for_each_setting(browser, server):
    """Lesson 7: moving the temperature slider, or choosing another filter, changes both the
    bars and the text the model wrote; the keyboard moves the slider too."""
    from selenium.webdriver.common.keys import Keys

    _open(browser, urljoin(server, "lessons/07_sampling.html"))
    roots = browser.find_elements("css selector", ".course-sampling")
    assert len(roots) == 1, "lesson 07 has no sampling explorer"
    root = roots[0]
    state = ("const r = arguments[0]; return {t: r.querySelector('output').textContent,"
             "text: r.querySelector('[data-out=text]').textContent,"
             "bars: Array.from(r.querySelectorAll('rect')).map(b => b.dataset.p).join(' '),"
             "label: r.querySelector('svg').getAttribute('aria-label')};")
    slider = root.find_element("css selector", "input[type=range]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
    seen = [browser.execute_script(state, root)]
    low, high = int(slider.get_attribute("min")), int(slider.get_attribute("max"))
    assert high - low >= 4
    for value in (low, high):
        browser.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", slider, value)
        seen.append(browser.execute_script(state, root))
    menu = root.find_element("css selector", "select")
    options = browser.execute_script(
        "return Array.from(arguments[0].options).map(o => o.value)", menu)
    assert len(options) >= 2
    browser.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'));",
        menu, options[-1])
    seen.append(browser.execute_script(state, root))
    for a, b in zip(seen, seen[1:]):
        assert a["text"] != b["text"], "the text did not change with the setting"
        assert a["bars"] != b["bars"], "the picture did not change with the setting"
    assert all(s["text"].strip() and s["label"] for s in seen)
    slider.send_keys(Keys.ARROW_LEFT)  # the keyboard alone
    assert browser.execute_script(state, root)["t"] != seen[-1]["t"]
    browser.save_screenshot(str(SHOTS / "lessons__07_sampling__explorer.png"))


# --------------------------------------------------------------------------- accessibility

AXE_JS = Path(os.environ.get("COURSE_AXE_JS") or ROOT / "node_modules" / "axe-core" / "axe.min.js")
AXE_REPORT = HTML.parent / "axe-report.json"

# Violations that come from the theme (sphinx-book-theme and pydata-sphinx-theme, as Jupyter
# Book 1 configures them) and that the course cannot fix by configuration. Each is matched by
# its rule and a pattern searched in the reported element (its CSS selector and its HTML); the
# reason says why it is allowed. Anything else of impact serious or critical fails the test.
AXE_ALLOWED = [
    ("label-content-name-mismatch", r"search-button__button",
     "pydata-sphinx-theme's search button is labelled 'Search' but also shows its shortcut "
     "(Ctrl + K); the button is the theme's template, with no setting for its label"),
    ("label-content-name-mismatch", r"theme-switch-button",
     "pydata-sphinx-theme's colour-mode button is labelled 'Color mode' while its text is the "
     "current mode's name (light, dark, auto); the theme's template, with no setting"),
]

_AXE_RUN_JS = r"""
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(r => done(r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help,
  nodes: v.nodes.map(n => ({target: n.target.join(" "), html: n.html.slice(0, 200),
                            summary: (n.failureSummary || "").slice(0, 300)})),
})))).catch(e => done({error: String(e)}));
"""


def _allowed(rule: str, target: str) -> str | None:
    for allowed_rule, pattern, reason in AXE_ALLOWED:
        if allowed_rule == rule and re.search(pattern, target):
            return reason
    return None


def _axe(browser, server, rel: str, theme: str) -> list[dict]:
    _open(browser, urljoin(server, rel))
    browser.execute_script(
        "document.documentElement.dataset.theme = arguments[0];"
        "document.documentElement.dataset.mode = arguments[0];", theme)
    time.sleep(0.3)  # the quizzes and widgets draw themselves on load
    browser.execute_script(AXE_JS.read_text(encoding="utf-8"))
    browser.set_script_timeout(120)
    found = browser.execute_async_script(_AXE_RUN_JS)
    assert not (isinstance(found, dict) and found.get("error")), found
    return found


def test_every_page_passes_axe_core(browser, server):
    """axe-core (npm's axe-core, injected through the driver: nothing downloads) on every page
    of the book, in the light and the dark theme: no serious or critical violation outside the
    listed exceptions of the theme. The count per rule and impact goes to _build/axe-report.json
    (and is printed: run with -s)."""
    import json
    from collections import Counter

    if not AXE_JS.is_file():
        reason = f"{AXE_JS} not found: run `npm install` in the repository (package.json)"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    counts, failures, exceptions = Counter(), [], Counter()
    for page in pages():
        rel = page.relative_to(HTML).as_posix()
        for theme in ("light", "dark"):
            for v in _axe(browser, server, rel, theme):
                for node in v["nodes"]:
                    counts[(v["id"], v["impact"], theme)] += 1
                    reason = _allowed(v["id"], f"{node['target']} {node['html']}")
                    if reason:
                        exceptions[(v["id"], reason)] += 1
                    elif v["impact"] in ("serious", "critical"):
                        failures.append(f"{rel} ({theme}): {v['id']} [{v['impact']}] {v['help']}: "
                                        f"{node['target']} {node['html'][:120]!r} {node['summary'][:160]}")
    report = {"pages": len(pages()),
              "violations": [{"rule": r, "impact": i, "theme": t, "nodes": n}
                             for (r, i, t), n in sorted(counts.items())],
              "allowed": [{"rule": r, "reason": why, "nodes": n} for (r, why), n in exceptions.items()]}
    AXE_REPORT.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("\naxe-core, nodes per rule:", *(f"  {r} [{i}, {t}]: {n}" for (r, i, t), n in sorted(counts.items())),
          sep="\n")
    assert failures == [], f"{len(failures)} serious or critical accessibility violations:\n" + "\n".join(failures[:40])


# Switches the page to the dark theme, opens every dropdown, and reports each figure of the
# article: shown or not, the alpha of its corners (a transparent figure's black labels would
# vanish on the dark page) and the background the theme paints behind it.
_DARK_FIGURES_JS = r"""
document.documentElement.dataset.theme = "dark";
document.documentElement.dataset.mode = "dark";
document.querySelectorAll("details").forEach(d => { d.open = true; });
const article = document.querySelector("article.bd-article") || document.querySelector("article");
return Array.from(article.querySelectorAll("img")).filter(i => i.getClientRects().length > 0).map(i => {
  const c = document.createElement("canvas");
  c.width = i.naturalWidth; c.height = i.naturalHeight;
  const g = c.getContext("2d");
  g.drawImage(i, 0, 0);
  const corners = [[0, 0], [c.width - 1, 0], [0, c.height - 1], [c.width - 1, c.height - 1]]
    .map(([x, y]) => g.getImageData(x, y, 1, 1).data[3]);
  return {src: (i.getAttribute("src") || "").slice(-60), alt: i.alt, shown: i.clientWidth,
          natural: i.naturalWidth, alpha: Math.min(...corners),
          background: getComputedStyle(i).backgroundColor};
});
"""


@pytest.mark.parametrize("page", LESSON_PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_figures_read_in_the_dark_theme(browser, server, page):
    """Every figure has alternative text (its caption, book/_ext/course_html.py).
    The book follows the reader's light or dark setting. In the dark theme every figure is
    still shown at its size and is opaque (or the theme paints it a light background), so no
    axis, label or curve drawn in black disappears into the page. A screenshot of each lesson
    in the dark theme goes to _build/screenshots/dark__*.png for review."""
    rel = page.relative_to(HTML).as_posix()
    _open(browser, urljoin(server, rel))
    figures = browser.execute_script(_DARK_FIGURES_JS)
    time.sleep(0.2)
    _screenshot(browser, "dark__" + rel.replace("/", "__").replace(".html", ".png"))
    unnamed = [f["src"] for f in figures if not f["alt"].strip() or f["alt"].endswith(".png")]
    assert unnamed == [], f"{rel}: figures without alternative text (the caption): {unnamed}"
    lost = [f for f in figures if f["natural"] and (
        f["shown"] < 0.75 * f["natural"]
        or (f["alpha"] < 255 and f["background"] in ("rgba(0, 0, 0, 0)", "transparent")))]
    assert lost == [], f"{rel}: figures that vanish or lose their labels in the dark theme: {lost}"
