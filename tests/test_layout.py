"""The house rules of the source tree, checked on the installed package.

* no import cycles between any two modules (imports inside functions count too);
* the core never imports the command line, the widgets, napari or Qt;
* the command line and the widgets never import each other;
* no source file over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_segqc

PACKAGE = Path(napari_segqc.__file__).resolve().parent
MAX_LINES = 400
GUI = {"napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2", "magicgui", "superqt", "vispy"}


def _modules() -> dict[str, Path]:
    root = PACKAGE.parent
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _imports(name: str, path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (absolute names)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _internal(target: str) -> str | None:
    """The package module an imported name belongs to (the longest known prefix)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    """Module -> modules it imports; a package's ``__init__`` is not a module of its own here
    (edges into bare packages are dropped), as in ``shared/tools/import_cycles.py``."""
    graph = {}
    for name, path in MODULES.items():
        if name in PACKAGES:
            continue
        targets = {_internal(t) for t in _imports(name, path)}
        graph[name] = {
            t for t in targets if t and t != name and t not in PACKAGES and not name.startswith(t)
        }
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_lazy_imports():
    graph = _graph()
    # module level, relative: segment -> decoding
    assert "napari_segqc.core.instances.decoding" in graph["napari_segqc.core.predict.segmentation"]
    # inside a function: the qc command imports the QC run on use
    assert "napari_segqc.core.qc.run" in graph["napari_segqc.cli.qc"]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def _imported_by(prefix: str) -> dict[str, set[str]]:
    return {
        name: _imports(name, path)
        for name, path in MODULES.items()
        if name == prefix or name.startswith(prefix + ".")
    }


def test_core_imports_no_cli_widgets_or_gui():
    for name, imported in _imported_by("napari_segqc.core").items():
        bad = {
            t
            for t in imported
            if t.split(".")[0] in GUI
            or t.startswith(("napari_segqc.cli", "napari_segqc._widgets", "napari_segqc._app"))
        }
        assert not bad, f"{name} imports {sorted(bad)}"


def test_cli_and_widgets_do_not_import_each_other():
    for name, imported in _imported_by("napari_segqc.cli").items():
        bad = {t for t in imported if t.startswith("napari_segqc._widgets")}
        assert not bad, f"{name} imports {sorted(bad)}"
    for name, imported in _imported_by("napari_segqc._widgets").items():
        bad = {t for t in imported if t.startswith("napari_segqc.cli")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_decoding_imports_neither_training_nor_prediction():
    for name, imported in _imported_by("napari_segqc.core.instances").items():
        bad = {
            t
            for t in imported
            if t.startswith(("napari_segqc.core.train", "napari_segqc.core.predict"))
        }
        assert not bad, f"{name} imports {sorted(bad)}"


def test_no_source_file_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"
