"""Small fixes to the HTML pages of the book, found by its browser test.

- sphinx-thebe adds its inline configuration script once per read of the sources, so a page
  can carry it twice (once with filename None, once with ""); the second copy re-declares `const THEBE_JS_URL` and
  the browser reports a SyntaxError. Each script is kept once, in its first position.
- Maths renders offline. Sphinx loads MathJax from a CDN by default, so a reader without
  internet (or a browser test, which ignores failed external loads) sees raw LaTeX. MathJax 3
  comes from the PyPI package django-static-mathjax (its files are MathJax's own release);
  its browser build (`es5/`: the component the pages load and the input, output, font, menu
  and accessibility parts it loads later) is copied to `_static/mathjax/` of the HTML output,
  and `mathjax_path` points every page at that copy (Sphinx makes the path relative to each
  page). The MathJax configuration that myst-parser and Jupyter Book set (`mathjax3_config`)
  is kept as it is.
- The course's own stylesheet, `book/_static/course.css` (the quizzes' and the interactive
  figures' colours in the dark theme, a visible keyboard focus), is added to every page.
- A hidden code cell's toggle (myst-nb's `<summary aria-label="Toggle hidden content">`) is
  named by its visible text ("Show code cell source"): an aria-label that differs from the
  visible text fails WCAG 2.5.3 (axe-core's label-content-name-mismatch), and a screen reader
  would announce something other than what a sighted reader sees.
- A figure's image gets its caption as alternative text. Without it Sphinx writes the file's
  path (`../_images/3a6c....png`) as the alt, which is what a screen reader would read out.
- Glued values reach the pages: `lib.book.glue` hands them to myst-nb only when
  COURSE_BOOK_BUILD=1 (elsewhere it shows them under the cell), and this extension sets it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_PACKAGE = "django-static-mathjax"
MATHJAX_COMPONENT = "tex-mml-chtml.js"  # the component Sphinx loads by default, from its CDN
MATHJAX_DIR = "mathjax"                 # under the HTML output's _static
# What the component loads lazily, relative to es5/: TeX extensions (input/), the CommonHTML
# output and its fonts and the SVG output the menu can switch to (output/), the menu (ui/), and
# the accessibility features and speech rules it can turn on (a11y/, sre/, adaptors/).
MATHJAX_FOLDERS = ("input", "output", "ui", "a11y", "sre", "adaptors")


def mathjax_source() -> Path:
    """The `es5/` folder of MathJax 3 as django-static-mathjax installs it."""
    try:
        from importlib.resources import files

        es5 = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    except (ImportError, ModuleNotFoundError, TypeError):
        es5 = None
    if es5 is None or not (es5 / MATHJAX_COMPONENT).is_file():
        raise ExtensionError(
            f"MathJax for offline maths is missing: pip install {MATHJAX_PACKAGE} "
            "(it is in requirements.txt)")
    return es5


def _use_local_mathjax(app, config) -> None:
    mathjax_source()  # fail early, before any notebook runs, when the package is missing
    # A path under _static: Sphinx makes it relative to each page (../_static/... in lessons/).
    config.mathjax_path = f"{MATHJAX_DIR}/{MATHJAX_COMPONENT}"


def _copy_mathjax(app) -> None:
    if app.builder.format != "html":
        return
    es5 = mathjax_source()
    target = Path(app.outdir) / "_static" / MATHJAX_DIR
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / MATHJAX_COMPONENT, target / MATHJAX_COMPONENT)
    for folder in MATHJAX_FOLDERS:
        shutil.copytree(es5 / folder, target / folder, dirs_exist_ok=True)
    licence = es5.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, target / "LICENSE")
    logger.info(f"MathJax copied from {es5} to {target}")


STATIC = Path(__file__).resolve().parents[1] / "_static"  # book/_static
COURSE_CSS = "course.css"


def _add_course_static(app, config) -> None:
    if str(STATIC) not in map(str, config.html_static_path):
        config.html_static_path.append(str(STATIC))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        # The same script may come with another priority, or a filename of None instead of "".
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "",
               tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


_HIDDEN_CELL_SUMMARY = '<summary aria-label="Toggle hidden content">'


# Sphinx writes the bibliography as <div role="list" class="citation-list"> whose children are
# anchors and citations, not list items: axe-core's aria-required-children (critical). A plain
# div is what it is.
_CITATION_LIST = '<div role="list" class="citation-list">'


def _name_toggles_by_their_text(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and _HIDDEN_CELL_SUMMARY in body:
        body = context["body"] = body.replace(_HIDDEN_CELL_SUMMARY, "<summary>")
    if body and _CITATION_LIST in body:
        context["body"] = body.replace(_CITATION_LIST, '<div class="citation-list">')


def _alt_text_from_captions(app, doctree, docname) -> None:
    from docutils import nodes

    for figure in doctree.findall(nodes.figure):
        caption = next(iter(figure.findall(nodes.caption)), None)
        if caption is None:
            continue
        text = " ".join(caption.astext().replace("$", "").split())
        for image in figure.findall(nodes.image):
            alt = image.get("alt", "")
            if not alt or alt == image.get("uri") or alt.lower().endswith((".png", ".svg", ".jpg")):
                image["alt"] = text


def setup(app):
    # lib.book.glue hands values to myst-nb only in a book build; the kernels that execute the
    # lessons are started after this and inherit the switch.
    os.environ["COURSE_BOOK_BUILD"] = "1"
    app.setup_extension("sphinx.ext.mathjax")  # defines mathjax_path before config-inited
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("config-inited", _add_course_static, priority=900)
    app.add_css_file(COURSE_CSS)
    app.connect("builder-inited", _copy_mathjax)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _name_toggles_by_their_text)
    app.connect("doctree-resolved", _alt_text_from_captions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
