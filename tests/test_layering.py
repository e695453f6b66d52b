"""The library's modules import one way: no import circle, no private name taken from another module.

Every module of ``ntkdepth/`` is parsed (``ast``), imports inside functions included, into a
graph of which module imports which; a circle in that graph, or a private name (``_x``) imported
from another module or read off an imported module (``storage._x``), fails. Names of modules, functions, classes and constants say what they are, not which
numbered result of the paper they come from: the numbering lives in docstrings and in the
table of docs/README.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "ntkdepth"

def _module_files(root: Path, package: str) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of ``root / package``."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imported_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module named by ``from ... import`` in ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def import_graph(root: Path, package: str = PACKAGE) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """``(edges, private)``: the modules each module imports (within ``package``), and every
    ``(module, other module, private name)`` taken from another module of ``package``."""
    modules = _module_files(root, package)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private: list[tuple[str, str, str]] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bound: dict[str, str] = {}  # local name -> imported module of the package
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        target = alias.name
                        edges[module].add(target)
                        bound[alias.asname or alias.name.split(".")[0]] = (
                            target if alias.asname else package)
                        for part in target.split(".")[1:]:
                            if _is_private(part):
                                private.append((module, target, part))
            elif isinstance(node, ast.ImportFrom):
                source = _imported_from(module, path.name == "__init__.py", node)
                if not (source == package or source.startswith(package + ".")):
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    target = full if full in modules else source
                    edges[module].add(target)
                    if full in modules:
                        bound[alias.asname or alias.name] = full
                    if _is_private(alias.name) and source != module:
                        private.append((module, source, alias.name))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and _is_private(node.attr) and bound[node.value.id] != module):
                private.append((module, bound[node.value.id], node.attr))
    return {m: {t for t in targets if t in modules and t != m} for m, targets in edges.items()}, private


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each an import circle), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        # Tarjan's algorithm, iteratively: (node, iterator over its successors).
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return sorted(cycles)


def test_no_module_of_ntkdepth_imports_itself_through_others():
    edges, _ = import_graph(ROOT)
    cycles = import_cycles(edges)
    assert not cycles, "import circles (a module below must not need one above it): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_no_module_of_ntkdepth_takes_a_private_name_from_another():
    _, private = import_graph(ROOT)
    bad = sorted({f"{m} takes {name} from {source}" for m, source, name in private})
    assert not bad, "private names used across modules (make them public where they are defined): " + "; ".join(bad)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_find_a_circle_through_a_function_and_private_names(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "from pkg.sub import high\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/high.py": "def f():\n    from ..low import _helper\n    return _helper\n",
        "pkg/other.py": "import pkg.low as low\nfrom . import low as again\nx = low._secret + again._other\n"
                        "from pkg.sub.high import __doc__\n",
        "pkg/alone.py": "import json\nfrom pkg import other\n",
    })
    edges, private = import_graph(tmp_path, "pkg")
    assert edges["pkg.alone"] == {"pkg.other"} and edges["pkg.other"] == {"pkg.low", "pkg.sub.high"}
    assert import_cycles(edges) == [["pkg.low", "pkg.sub.high"]]
    assert sorted(private) == [("pkg.other", "pkg.low", "_other"), ("pkg.other", "pkg.low", "_secret"),
                               ("pkg.sub.high", "pkg.low", "_helper")]


# A name made of a numbered result of the paper: theorem3, lemma1_ratio, proposition_5, Corollary1.
_NUMBERED = re.compile(r"(^|_)(theorem|lemma|corollary|proposition|definition|remark|prop|thm)_?\d",
                       re.IGNORECASE)


def _defined_names(path: Path) -> list[str]:
    """The module's own name, and those of its functions, classes, arguments and module constants."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [path.stem]
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names += [a.arg for a in node.args.args + node.args.kwonlyargs]
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


@pytest.mark.parametrize("name, numbered", [("theorem3", True), ("lemma1_ratio", True), ("LEMMA1_CONSTANT", True),
                                            ("corollary1_profile", True), ("t_theorem_3", True),
                                            ("continuum_profile", False), ("depth_scan", False)])
def test_a_name_made_of_the_papers_numbering_is_recognized(name, numbered):
    assert bool(_NUMBERED.search(name)) is numbered


def test_library_names_say_what_they_are_not_the_papers_numbering():
    bad = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / PACKAGE).rglob("*.py"))
           for name in _defined_names(path) if _NUMBERED.search(name)]
    assert not bad, ("names after the paper's numbering (name the concept; the number goes in the docstring "
                     "and in the table of docs/README.md): " + ", ".join(bad))
