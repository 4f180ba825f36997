"""Every lesson as a notebook that Colab (or any hosted Jupyter) can open, and a button to it.

- At the end of every book build, each lesson's MyST source is converted by jupytext into
  `_build/notebooks/lessons/<lesson>.ipynb`, with one set-up cell first (`SETUP_CELL`). The
  notebooks are made from the same sources the build has just executed, so they are never stale
  and never committed: the publishing workflow pushes `_build/notebooks` to the `notebooks`
  branch, where Colab opens them from GitHub. They hold no outputs: Colab runs them.
- Each lesson page gets an "Open in Colab" link to its notebook on that branch.

The set-up cell installs the course where it is missing: it clones the repository (the lessons
read a few files beside them, such as the tuning results in benchmarks/), installs it with pip
(editable: nothing is written over another package named `lib`), and works from its lessons/
folder. Where this course's `lib` imports already (a clone set up with `make`), it does
nothing; another package named `lib` does not count (`lib.COURSE` names the course). Run from
inside a clone (its lessons/ folder) where the course is not installed, it installs that clone
instead of cloning a second copy.
"""

from __future__ import annotations

import html
import re
import textwrap
from pathlib import Path

NOTEBOOK_BRANCH = "notebooks"
LESSONS = "lessons/"

COURSE = "how-a-gpt-learns-to-write"  # lib.COURSE: this course's lib, not another package's

SETUP_CELL = '''\
# Set-up for Colab (or any Jupyter without the course): get the course and install it, once per
# runtime. Where the course is installed already, this cell does nothing.
import importlib, os, subprocess, sys
try:
    import lib
    _installed = getattr(lib, "COURSE", None) == "{course}"  # not another lib
except ImportError:
    _installed = False
if not _installed:
    def _is_clone(folder):  # a clone of the course: its lib says which course it is
        try:
            with open(os.path.join(folder, "lib", "__init__.py"), encoding="utf-8") as init:
                return 'COURSE = "{course}"' in init.read()
        except OSError:
            return False
    here = os.getcwd()  # inside a clone (its lessons/ folder, or the clone itself): use it
    repo = next((d for d in (here, os.path.dirname(here)) if _is_clone(d)),
                os.path.abspath("{name}"))
    if not os.path.isdir(repo):
        subprocess.run(["git", "clone", "--depth", "1", "{url}", repo], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", repo], check=True)
    for _name in [m for m in sys.modules if m == "lib" or m.startswith("lib.")]:
        del sys.modules[_name]  # forget another package named lib, if one was imported
    sys.path.insert(0, repo)  # this course's lib first, before any other
    importlib.invalidate_caches()
    os.chdir(os.path.join(repo, "lessons"))  # the lessons read a few files beside them
'''


def setup_cell(repository_url: str) -> str:
    url = repository_url.rstrip("/")
    return SETUP_CELL.format(url=url, name=url.rsplit("/", 1)[-1], course=COURSE)


def colab_url(repository_url: str, docname: str) -> str:
    """Where Colab opens the notebook of page `docname` (e.g. "lessons/01_next_token_task")."""
    owner_repo = repository_url.rstrip("/").removeprefix("https://github.com/")
    return (f"https://colab.research.google.com/github/{owner_repo}/blob/{NOTEBOOK_BRANCH}/"
            f"{docname}.ipynb")


# The book shows lib's code with `literalinclude` and `:pyobject:`; a notebook cannot, so the
# code itself goes into the markdown, as the book shows it.
INCLUDE = re.compile(r"```\{literalinclude\} (?P<path>\S+)\n:pyobject: (?P<name>\S+)\n```")


def inline_includes(markdown: str, folder: Path) -> str:
    from sphinx.pycode import ModuleAnalyzer

    def code(match) -> str:
        path = (folder / match["path"]).resolve()
        _, start, end = ModuleAnalyzer.for_file(str(path), "").find_tags()[match["name"]]
        lines = path.read_text(encoding="utf-8").splitlines()[start - 1 : end]
        shown = textwrap.dedent("\n".join(lines)).rstrip()
        return f"```python\n{shown}\n```\n*`{match['name']}` in `{match['path'].lstrip('./')}`*"

    return INCLUDE.sub(code, markdown)


def make_notebook(source: Path, repository_url: str):
    """The lesson at `source` (MyST markdown) as an nbformat notebook, set-up cell first."""
    import jupytext
    import nbformat

    nb = jupytext.read(source)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = inline_includes(cell.source, source.parent)
    intro = nbformat.v4.new_markdown_cell(
        "*Running this lesson on Colab or another hosted Jupyter? Run the next cell first: it "
        "installs the course. In Colab, Runtime > Change runtime type > GPU makes training "
        "faster; the lessons run on a CPU too.*")
    cell = nbformat.v4.new_code_cell(setup_cell(repository_url))
    cell.metadata["tags"] = ["colab-setup"]
    nb.cells[:0] = [intro, cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)  # a plain notebook, not paired with a .md
    return nb


def write_notebooks(srcdir: Path, docnames, outdir: Path, repository_url: str) -> list[Path]:
    import nbformat

    written = []
    for docname in sorted(d for d in docnames if d.startswith(LESSONS)):
        target = outdir / f"{docname}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(make_notebook(srcdir / f"{docname}.md", repository_url), target)
        written.append(target)
    return written


def _repository_url(app) -> str:
    return app.config.html_theme_options.get("repository_url", "")


def _add_button(app, pagename, templatename, context, doctree):
    url = _repository_url(app)
    if not (url and pagename.startswith(LESSONS) and "body" in context):
        return
    link = html.escape(colab_url(url, pagename), quote=True)
    style = ("display:inline-block;padding:0.2em 0.7em;border:1px solid currentColor;"
             "border-radius:0.3em;text-decoration:none;font-weight:600")
    button = (f'<p class="colab-link"><a class="reference external colab-button" href="{link}" '
              f'style="{style}" target="_blank" rel="noopener">Open this lesson in Colab</a> '
              '<span class="colab-note">(a notebook of this page; its first cell installs the '
              'course)</span></p>\n')
    context["body"] = button + context["body"]


def _write_notebooks(app, exception):
    if exception is not None or app.builder.format != "html" or not _repository_url(app):
        return
    outdir = Path(app.outdir).parent / "notebooks"
    written = write_notebooks(Path(app.srcdir), app.env.found_docs, outdir, _repository_url(app))
    print(f"colab: wrote {len(written)} lesson notebooks to {outdir}")


def setup(app):
    app.connect("html-page-context", _add_button)
    app.connect("build-finished", _write_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
