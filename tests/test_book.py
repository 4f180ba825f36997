"""lib.book.glue turns values into what myst-nb can format, and closes glued figures; outside
the book (Jupyter, Colab) it shows them instead."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lib import book, plotting


@pytest.fixture
def captured(monkeypatch):
    import myst_nb

    seen = {}
    monkeypatch.setenv(book.BOOK_BUILD_ENV, "1")
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: seen.update({name: value}))
    return seen


def test_scalars_become_plain_python(captured):
    book.glue("a", np.float64(1.5))
    book.glue("b", torch.tensor(2.5))
    book.glue("c", np.int64(3))
    book.glue("d", "text")
    assert captured == {"a": 1.5, "b": 2.5, "c": 3, "d": "text"}
    assert type(captured["a"]) is float and type(captured["c"]) is int
    assert f"{captured['a']:.2f}" == "1.50"


def test_figures_are_closed_after_gluing(captured):
    fig, _ = plotting.figure("A figure", "x", "y")
    book.glue("fig", fig)
    assert captured["fig"] is fig
    assert not plt.fignum_exists(fig.number)


def test_a_figure_that_breaks_the_rules_is_not_glued(captured):
    fig, _ = plt.subplots(figsize=(12, 3), dpi=72)
    with pytest.raises(ValueError, match="72 dpi.*12.0 inches wide"):
        book.glue("fig", fig)
    assert "fig" not in captured
    plt.close(fig)


def test_outside_the_book_figures_are_shown_and_values_printed(monkeypatch, capsys):
    """In Jupyter or Colab the text's glue references stay unrendered, so the values and the
    figures must appear under the cell (myst-nb's glue would hide them, and may be missing)."""
    import IPython.display

    monkeypatch.delenv(book.BOOK_BUILD_ENV, raising=False)
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    fig, _ = plotting.figure("A figure", "x", "y")
    book.glue("fig", fig)
    book.glue("loss", np.float64(1.25))
    book.glue("name", "cosine" * 30)
    assert shown == [fig] and not plt.fignum_exists(fig.number)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "loss = 1.25" and out[1].startswith("name = 'cosinecosine") and len(out[1]) <= 107


def test_the_book_build_sets_the_switch(monkeypatch):
    monkeypatch.delenv(book.BOOK_BUILD_ENV, raising=False)
    from helpers import load_script

    module = load_script("book/_ext/course_html.py")

    class App:  # what setup() touches of Sphinx's application
        def setup_extension(self, name): pass
        def connect(self, *args, **kwargs): pass
        def add_config_value(self, *args, **kwargs): pass
        def add_css_file(self, *args, **kwargs): pass

    module.setup(App())
    assert book.building_the_book()


@pytest.mark.parametrize("seconds, text", [
    (0, "0 seconds"), (1, "1 second"), (40.4, "40 seconds"), (59.9, "60 seconds"),
    (60, "1 minute"), (280, "4.7 minutes"), (3599, "60 minutes"), (3600, "1 hour"),
    (72_720, "20 hours"), (86_400 * 3.5, "3.5 days"), (86_400 * 400, "400 days"),
])
def test_duration_reads_in_the_unit_that_suits_it(seconds, text):
    assert book.duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_duration_refuses_what_is_not_a_duration(bad):
    with pytest.raises(ValueError, match="seconds"):
        book.duration(bad)


def test_the_book_loads_each_of_its_extensions():
    """_config.yml names each of book/_ext's Sphinx extensions (course_html: the pages' fixes,
    course_mathjax: offline maths, colab) as a module there with a setup()."""
    import yaml
    from helpers import ROOT, load_script

    local = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["local_extensions"]
    assert {"course_html", "course_mathjax", "colab"} <= set(local)
    for name, folder in local.items():
        assert callable(load_script(f"{folder}/{name}.py").setup), name


def test_offline_maths_points_every_page_at_the_book_s_copy():
    """course_mathjax sets mathjax_path to its copy under _static (once MathJax is found) and
    copies MathJax when the HTML builder starts."""
    from helpers import load_script

    module = load_script("book/_ext/course_mathjax.py")

    class App:
        def __init__(self): self.extensions, self.handlers = [], {}
        def setup_extension(self, name): self.extensions.append(name)
        def connect(self, event, handler, priority=500): self.handlers[event] = handler

    app = App()
    module.setup(app)
    assert app.extensions == ["sphinx.ext.mathjax"]
    assert app.handlers["builder-inited"] is module._copy_mathjax

    class Config:
        mathjax_path = "https://cdn.example/mathjax.js"

    config = Config()
    app.handlers["config-inited"](app, config)
    assert config.mathjax_path == "mathjax/tex-mml-chtml.js"
    assert (module.mathjax_source() / "tex-mml-chtml.js").is_file()


@pytest.mark.parametrize("n, text", [
    (175e9, "175B"), (1.4e12, "1.4T"), (15e12, "15T"), (2e12, "2T"), (1.5e9, "1.5B"),
    (124_439_808, "124M"), (3.2e6, "3.2M"), (8_000, "8K"), (12_345, "12K"), (999_999, "1M"),
    (999, "999"), (42, "42"), (0, "0"), (2.5, "2.5"), (99.7e9, "100B"), (1.8e11, "180B"), (5.826e15, "5.8P"),
])
def test_human_count_writes_counts_as_people_do(n, text):
    assert book.human_count(n) == text


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_human_count_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="count"):
        book.human_count(bad)
