"""Small fixes to the HTML pages of the book, found by its browser test.

- sphinx-thebe adds its inline configuration script once per read of the sources, so a page
  can carry it twice (once with filename None, once with ""); the second copy re-declares `const THEBE_JS_URL` and
  the browser reports a SyntaxError. Each script is kept once, in its first position.
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

Maths rendered offline (MathJax served from the book itself) is course_mathjax.py, beside this.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    app.connect("config-inited", _add_course_static, priority=900)
    app.add_css_file(COURSE_CSS)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("html-page-context", _name_toggles_by_their_text)
    app.connect("doctree-resolved", _alt_text_from_captions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
