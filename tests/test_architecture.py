"""The package's layers as DESIGN.md's architecture table states them: no circles, no import up."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "modelarts_cleanup"
SOURCE = ROOT / "src" / PACKAGE
DESIGN = ROOT / "DESIGN.md"

Graph = Mapping[str, set[str]]


def module_name(path: Path, source: Path = SOURCE) -> str:
    """`events/payload.py` -> `modelarts_cleanup.events.payload`; a package is its `__init__`."""
    parts = [PACKAGE, *path.relative_to(source).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(text: str, name: str, *, is_package: bool, known: Iterable[str]) -> set[str]:
    """Every module of ours that `text` imports, wherever the import stands (lazy ones too)."""
    modules = set(known)
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # `from . import x` and `from .cloud import client` import modules by name.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph(source: Path = SOURCE) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, for every module under `source`."""
    paths = sorted(source.rglob("*.py"))
    names = {module_name(p, source): p for p in paths}
    return {
        name: imports_of(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            known=names,
        )
        for name, path in names.items()
    }


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def read_layers(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """From DESIGN.md's table: (module or folder -> wing, wing -> the wings it may import)."""
    section = text.split("## Architecture", 1)[1]
    owners: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in {"wing", "---"}:
            continue
        wing, members, may = cells
        for member in re.findall(r"`([^`]+)`", members):
            owners[member] = wing
        allowed[wing] = {w.strip() for w in may.split(",")}
    return owners, allowed


def wing_of(module: str, owners: Mapping[str, str]) -> str | None:
    """The wing a module belongs to: its folder's (`cloud/`), else its own name's (`entry`)."""
    parts = module.split(".")[1:] or ["__init__"]
    if f"{parts[0]}/" in owners:  # the folder's own `__init__` too
        return owners[f"{parts[0]}/"]
    return owners.get(parts[0]) if len(parts) == 1 else None


def violations(
    graph: Graph, owners: Mapping[str, str], allowed: Mapping[str, set[str]]
) -> list[str]:
    """Every import from a wing to one its row does not name, and every module of no wing."""
    problems = []
    for module, imported in sorted(graph.items()):
        wing = wing_of(module, owners)
        if wing is None:
            problems.append(f"{module}: in no wing of DESIGN.md's table")
            continue
        for target in sorted(imported):
            other = wing_of(target, owners)
            if other is not None and other not in allowed[wing]:
                problems.append(f"{module} ({wing}) imports {target} ({other})")
    return problems


# The package as it is.


def test_the_table_names_every_wing_it_allows() -> None:
    owners, allowed = read_layers(DESIGN.read_text(encoding="utf-8"))
    assert {"base", "cloud", "events", "cleanup", "top", "testing"} <= set(allowed)
    assert set().union(*allowed.values()) <= set(allowed)
    assert owners["cloud/"] == "cloud"
    assert owners["entry"] == "top"


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert circles(import_graph()) == []


def test_every_import_goes_down_the_layers_of_design_md() -> None:
    owners, allowed = read_layers(DESIGN.read_text(encoding="utf-8"))
    assert violations(import_graph(), owners, allowed) == []


def test_every_wing_says_what_belongs_there_and_what_it_may_import() -> None:
    for wing in ("events", "cloud", "cleanup"):
        doc = ast.get_docstring(ast.parse((SOURCE / wing / "__init__.py").read_text()))
        assert doc is not None
        assert "import" in doc


# The checks themselves: each one sees what it is for.

_OWNERS, _ALLOWED = read_layers(
    """## Architecture
| wing | modules | may import |
| --- | --- | --- |
| base | `exceptions` | base |
| cloud | `cloud/` | base, cloud |
| events | `events/` | base, events |
| cleanup | `cleanup/` | base, cloud, events, cleanup |
"""
)


def test_a_lazy_import_inside_a_function_counts() -> None:
    text = "def f():\n    from ..cleanup.report import Result\n"
    known = {"modelarts_cleanup.cleanup.report", "modelarts_cleanup.cloud.transport"}
    found = imports_of(text, "modelarts_cleanup.cloud.transport", is_package=False, known=known)
    assert found == {"modelarts_cleanup.cleanup.report"}


def test_an_import_under_type_checking_counts() -> None:
    text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import client\n"
    known = {"modelarts_cleanup.cloud", "modelarts_cleanup.cloud.client"}
    found = imports_of(text, "modelarts_cleanup.cloud.interface", is_package=False, known=known)
    assert found == {"modelarts_cleanup.cloud", "modelarts_cleanup.cloud.client"}


def test_an_import_from_a_lower_wing_to_a_higher_one_is_a_violation() -> None:
    graph = {
        "modelarts_cleanup.cloud.transport": {"modelarts_cleanup.cleanup.report"},
        "modelarts_cleanup.cleanup.report": {"modelarts_cleanup.exceptions"},
        "modelarts_cleanup.exceptions": set(),
    }
    assert violations(graph, _OWNERS, _ALLOWED) == [
        "modelarts_cleanup.cloud.transport (cloud) imports modelarts_cleanup.cleanup.report "
        "(cleanup)"
    ]


def test_sibling_wings_may_not_import_each_other() -> None:
    graph = {"modelarts_cleanup.events.rules": {"modelarts_cleanup.cloud.client"}}
    assert violations(graph, _OWNERS, _ALLOWED) == [
        "modelarts_cleanup.events.rules (events) imports modelarts_cleanup.cloud.client (cloud)"
    ]


def test_a_module_the_table_does_not_place_is_a_violation() -> None:
    graph = {"modelarts_cleanup.helpers": set()}
    assert violations(graph, _OWNERS, _ALLOWED) == [
        "modelarts_cleanup.helpers: in no wing of DESIGN.md's table"
    ]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_circles_are_found_whatever_their_length(graph: Graph, expected: list[list[str]]) -> None:
    assert circles(graph) == expected


def test_adding_a_forbidden_import_to_a_real_module_fails(tmp_path: Path) -> None:
    """The whole check on a copy of the package with one import added where it may not be."""
    copy = tmp_path / PACKAGE
    for path in SOURCE.rglob("*.py"):
        target = copy / path.relative_to(SOURCE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    answers = copy / "cloud" / "answers.py"
    answers.write_text(
        answers.read_text() + "\n\ndef _late():\n    from ..cleanup.report import Reason\n"
    )
    owners, allowed = read_layers(DESIGN.read_text(encoding="utf-8"))
    assert violations(import_graph(copy), owners, allowed) == [
        "modelarts_cleanup.cloud.answers (cloud) imports modelarts_cleanup.cleanup.report (cleanup)"
    ]
