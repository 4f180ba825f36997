"""Maths renders offline.

Sphinx loads MathJax from a CDN by default, so a reader without internet (or a browser test,
which ignores failed external loads) sees raw LaTeX. MathJax 3 comes from the PyPI package
django-static-mathjax (its files are MathJax's own release); its browser build (`es5/`: the
component the pages load and the input, output, font, menu and accessibility parts it loads
later) is copied to `_static/mathjax/` of the HTML output, and `mathjax_path` points every page
at that copy (Sphinx makes the path relative to each page). The MathJax configuration that
myst-parser and Jupyter Book set (`mathjax3_config`) is kept as it is.

The book's other page fixes are in course_html.py.
"""

from __future__ import annotations

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


def setup(app):
    app.setup_extension("sphinx.ext.mathjax")  # defines mathjax_path before config-inited
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("builder-inited", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
