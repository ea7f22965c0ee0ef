"""The shape of src/aver: no import cycles, no long function without a reason.

Both checks parse the source (tests/support/structure.py). The KNOWN_* sets list what other
parts of issue 16 are fixing; an entry that no longer applies fails the test, so the sets only
shrink.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.structure import components, cycle_in, functions, import_graph

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 60

# Modules that import each other, as whole groups (strongly connected components).
KNOWN_CYCLES: set[frozenset[str]] = set()

# `module:function` over MAX_LINES lines without a "Long:" reason.
KNOWN_LONG: set[str] = set()  # empty: every long function is split or gives its reason


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC)


def test_no_import_cycles(graph):
    found = components(graph)
    new = [" -> ".join(cycle_in(graph, c)) for c in found if c not in KNOWN_CYCLES]
    assert not new, "import cycles in src/aver (make the arrow go one way):\n" + "\n".join(new)


def test_known_cycles_still_exist(graph):
    stale = KNOWN_CYCLES - set(components(graph))
    assert not stale, (
        f"KNOWN_CYCLES entries no longer cycles; remove them: {sorted(map(sorted, stale))}"
    )


def test_no_long_function_without_a_reason():
    long = {f.key: f.lines for f in functions(SRC) if f.lines > MAX_LINES and not f.has_reason}
    new = {k: n for k, n in long.items() if k not in KNOWN_LONG}
    assert not new, (
        f"functions over {MAX_LINES} lines: split them, or give the reason in a docstring line "
        f"starting 'Long:': {new}"
    )


def test_known_long_still_long():
    long = {f.key for f in functions(SRC) if f.lines > MAX_LINES and not f.has_reason}
    stale = KNOWN_LONG - long
    assert not stale, (
        f"KNOWN_LONG entries now short, reasoned or gone; remove them: {sorted(stale)}"
    )


def test_graph_sees_lazy_imports_and_packages(tmp_path):
    pkg = tmp_path / "aver"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from aver.sub.b import x\n")
    (pkg / "a.py").write_text("def f():\n    from aver.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aver.a\nx = 1\n"
    )
    (pkg / "c.py").write_text("import aver.d\n")
    (pkg / "d.py").write_text("from . import c\n")
    g = import_graph(tmp_path)
    assert g["aver.a"] == {"aver.sub", "aver.sub.b"}  # lazy import; the package's __init__ runs
    assert g["aver.sub"] == {"aver.sub.b"} and g["aver.sub.b"] == set()  # TYPE_CHECKING: none
    assert [cycle_in(g, c) for c in components(g)] == [["aver.c", "aver.d", "aver.c"]]


def test_long_function_needs_a_long_line(tmp_path):
    (tmp_path / "aver").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "aver" / "m.py").write_text(
        f'def plain():\n{body}\n\n\nclass K:\n    def why(self):\n        """Does it.\n\n'
        f'        Long: a reason.\n        """\n{body}\n'
    )
    found = {f.key: f for f in functions(tmp_path)}
    assert found["aver.m:plain"].lines == MAX_LINES + 1 and not found["aver.m:plain"].has_reason
    assert found["aver.m:K.why"].has_reason
