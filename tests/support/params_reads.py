"""Which params.yaml keys a stage's code reads, found from the types mypy infers.

Every attribute read `x.f` in src/aver whose `x` mypy types as a config section class (a
pydantic model reachable from `aver.config.Params`) is a read of `<path of the class>.f`. A
stage reads what the modules it imports read (stages/<name>.py, then every module of aver it
imports at module level or inside functions, transitively). This is static, so it also sees
code run in worker processes and Ray trials, which a recording proxy would miss, and it needs no
data. It over-approximates (a module's reads count even when the stage does not call that
function); `aver.config` itself is left out (its validators cross-check sections but do not
shape any stage's output). A section's property or method (`download.transfer_kwargs`) counts
as a read of the fields its body reads on `self`; pydantic's own methods (`model_dump()`) are
not reads of a particular key and are not counted.
"""

from __future__ import annotations

import ast
import inspect
import shutil
import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from aver.config import Params
from tests.support.structure import import_graph

if TYPE_CHECKING:
    from mypy.types import Instance

NOT_READING = {"aver.config"}


def section_paths(model: type[BaseModel] = Params, prefix: str = "") -> dict[str, set[str]]:
    """Config class (module.QualName) -> its dotted paths in params.yaml ('' for Params)."""
    out: dict[str, set[str]] = {_fullname(model): {prefix}}
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        for cls in _models_in(field.annotation):
            for k, v in section_paths(cls, path).items():
                out.setdefault(k, set()).update(v)
    return out


def _all_models(model: type[BaseModel] = Params) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        for cls in _models_in(field.annotation):
            yield from _all_models(cls)


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _models_in(typing.get_args(annotation)[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def _fullname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def field_reads(src: Path, cache_dir: Path) -> dict[str, set[str]]:
    """Module -> params paths it reads (leaf fields, not whole sections), via mypy's types.

    `cache_dir` keeps mypy's cache of the libraries between runs (torch alone takes a minute);
    aver's own entries are deleted first so that its modules are checked afresh, with types.
    """
    from mypy import build
    from mypy.main import process_options
    from mypy.options import Options
    from mypy.traverser import NameAndMemberCollector

    paths = section_paths()
    classes = {_fullname(c): c for c in _all_models()}

    def options_for(preserve: bool) -> tuple[list, Options]:
        sources, options = process_options([str(src / "aver")])
        options.cache_dir = str(cache_dir)
        options.sqlite_cache = False  # files, so that aver's entries can be deleted
        options.export_types = options.preserve_asts = preserve
        return sources, options

    # First the libraries into the cache as a plain run does (keeping every library's function
    # bodies trips mypy on some), then aver afresh with its types and bodies kept.
    build.build(*options_for(False))
    for old in cache_dir.glob("*/aver"):
        shutil.rmtree(old)
    result = build.build(*options_for(True))
    errors = [e for e in result.errors if ": error:" in e]
    if errors:
        raise AssertionError("mypy errors:\n" + "\n".join(errors))
    reads: dict[str, set[str]] = {}
    for name, state in result.graph.items():
        if not name.startswith("aver") or name in NOT_READING or state.tree is None:
            continue
        collector = NameAndMemberCollector()  # a mypyc class: used, not subclassed
        state.tree.accept(collector)
        found = reads[name] = set()
        for expr in collector.member_exprs:
            owner = _instance(result.types.get(expr.expr))
            if owner is None or owner.type.fullname not in paths:
                continue
            value = _instance(result.types.get(expr))
            if value is not None and value.type.fullname in paths:
                continue  # a section: its reads are counted where its fields are read
            cls = classes[owner.type.fullname]
            if expr.name in cls.model_fields:
                key = expr.name  # a field
            elif hasattr(BaseModel, expr.name):
                continue  # pydantic's own (model_dump, model_copy): no particular key
            else:  # a property or method of the section: the fields it reads
                for base in paths[owner.type.fullname]:
                    found.update(f"{base}.{f}" if base else f for f in _self_reads(cls, expr.name))
                continue
            for base in paths[owner.type.fullname]:
                found.add(f"{base}.{key}" if base else key)
    return reads


def _self_reads(cls: type[BaseModel], name: str) -> set[str]:
    """Fields a section's method or property reads on `self` (all of them if unparsable)."""
    member = inspect.getattr_static(cls, name, None)
    func = member.fget if isinstance(member, property) else member
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return set(cls.model_fields)
    return {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and isinstance(n.value, ast.Name)
        and n.value.id == "self"
        and n.attr in cls.model_fields
    }


def _instance(typ: object) -> Instance | None:
    from mypy.types import Instance, Type, get_proper_type

    proper = get_proper_type(typ) if isinstance(typ, Type) else None
    return proper if isinstance(proper, Instance) else None


def stage_modules(repo: Path, stage: str) -> set[str]:
    """The aver modules stages/<stage>.py runs: its imports, transitively."""
    graph = import_graph(repo / "src")
    tree = ast.parse((repo / "stages" / f"{stage}.py").read_text())
    todo = [
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("aver")
    ]
    seen: set[str] = set()
    while todo:
        mod = todo.pop()
        if mod in seen or mod not in graph:
            continue
        seen.add(mod)
        todo.extend(graph[mod])
    return seen


def covered(path: str, declared: set[str]) -> bool:
    """`path` is declared itself or under a declared section (`train` covers `train.lr`)."""
    return any(path == d or path.startswith(d + ".") for d in declared)
