"""lib's house rules, checked: imports run one way (command lines -> course -> engine -> the
ground floor), no import circle, and no module over 450 lines."""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
MAX_LINES = 450

# Each of lib's modules on its floor; a module may import from its own floor or below.
FLOORS = {
    0: {"checks", "paths"},
    1: {"model", "model_config", "blocks", "data", "prepare", "tokenfiles", "tokenizer", "device",
        "schedules", "sampling", "baselines", "stats"},
    2: {"config", "optim", "evaluation", "checkpoint", "trainer", "landscape", "pretrained",
        "timing", "limits", "posttrain", "rewards"},
    3: {"course", "book", "quiz", "plotting", "widgets", "budget", "records", "postruns"},
    4: {"cli", "bench", "train", "sample", "terminal", "__init__"},
}
FLOOR = {name: floor for floor, names in FLOORS.items() for name in names}


def modules() -> dict[str, Path]:
    """lib's modules by name: lib/x.py is x, a package lib/x/ is x."""
    found = {p.stem: p for p in LIB.glob("*.py")}
    found.update({p.parent.name: p for p in LIB.glob("*/__init__.py")})
    return found


def imports(path: Path) -> set[str]:
    """The lib modules that `path` imports (`from . import x`, `from .x import y`, `import lib.x`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.level == 0 and (node.module or "").startswith("lib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lib."))
    return found - {path.stem}


def test_every_module_has_a_floor():
    assert set(modules()) - set(FLOOR) == set(), "give each new module of lib a floor in FLOORS"


def test_imports_run_one_way_down_the_floors():
    upward = [f"{name} (floor {FLOOR[name]}) imports {other} (floor {FLOOR[other]})"
              for name, path in modules().items() for other in imports(path)
              if other in FLOOR and FLOOR[other] > FLOOR[name]]
    assert upward == []


def test_no_import_circle():
    graph = {name: imports(path) & set(FLOOR) for name, path in modules().items()}
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            raise AssertionError("import circle: " + " -> ".join(on_path[on_path.index(name):] + [name]))
        if name in done:
            return
        on_path.append(name)
        for other in sorted(graph.get(name, ())):
            visit(other)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path):
    """The two checks above can fail: a module that imports the course from the engine floor is
    an upward import, and two modules importing each other are found."""
    engine = tmp_path / "trainer.py"
    engine.write_text("from .course import PRESETS\nfrom . import checks\n")
    assert imports(engine) == {"course", "checks"}
    assert FLOOR["course"] > FLOOR["trainer"]


def test_no_module_over_the_house_limit():
    long = {p.relative_to(LIB).as_posix(): n for p in LIB.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"
