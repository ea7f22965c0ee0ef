"""Static facts about src/aver for tests/test_structure.py: the import graph and long functions.

Both come from parsing the source (ast), not from importing it, so nothing runs and in-function
(lazy) imports count the same as module-level ones.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def module_files(src: Path, package: str = "aver") -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` under `src`."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except under `if TYPE_CHECKING:` (never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(src: Path, package: str = "aver") -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports (module-level and in-function).

    `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b`. Importing
    `a.b.c` also runs the package `a.b` (its __init__), so that is an edge too, except from
    inside the package itself (a package re-exporting its own modules is no cycle worth
    reporting). Imports under `if TYPE_CHECKING:` never run and are left out; a name a package
    exports lazily (its `_EXPORTS`, imported by `__getattr__`) is an edge to that module.
    """
    files = module_files(src, package)
    lazy = {name: _lazy_exports(path) for name, path in files.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                exported = lazy.get(base, {}).get(alias.name)
                if exported:  # a name the package imports on first use (PEP 562 __getattr__)
                    targets.add(f"{base}.{exported}")
                targets.add(sub if sub in files else base)
        edges: set[str] = set()
        for target in targets:
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                mod = ".".join(parts[:i])
                if mod not in files:
                    continue
                if i == len(parts) or not (name == mod or name.startswith(mod + ".")):
                    edges.add(mod)
        edges.discard(name)
        graph[name] = edges
    return graph


def _lazy_exports(path: Path) -> dict[str, str]:
    """A package's `_EXPORTS = {name: submodule}` (names its `__getattr__` imports on first
    use), or {}."""
    for node in ast.parse(path.read_text(), str(path)).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and node.targets else None
        if isinstance(target, ast.Name) and target.id == "_EXPORTS":
            return ast.literal_eval(node.value)  # type: ignore[union-attr]
    return {}


def components(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The modules that import each other (strongly connected components of 2 or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(comps, key=lambda c: (len(c), sorted(c)))


def cycle_in(graph: dict[str, set[str]], comp: frozenset[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first search)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component of size > 1 has one


@dataclass(frozen=True)
class Function:
    """A function of src/aver: `module:Qual.name`, its length in lines and its docstring."""

    key: str
    lines: int
    doc: str

    @property
    def has_reason(self) -> bool:
        """The docstring has a line starting "Long:" (why the function is long)."""
        return any(line.strip().startswith("Long:") for line in self.doc.splitlines())


def functions(src: Path, package: str = "aver") -> list[Function]:
    """Every function and method (nested ones too), length from `def` to its last line."""
    out = []
    for name, path in module_files(src, package).items():

        def walk(node: ast.AST, prefix: str, module: str = name) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    qual = f"{prefix}{child.name}"
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    doc = ast.get_docstring(child) or ""
                    out.append(Function(f"{module}:{qual}", lines, doc))
                    walk(child, f"{qual}.")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")
                else:
                    walk(child, prefix)

        walk(ast.parse(path.read_text(), str(path)), "")
    return out
