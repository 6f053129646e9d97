"""The mutation score per module, after `mutmut run`: what was killed, what survived, and which
survivors are equivalent mutants (recorded in `equivalent.toml`, each with why).

    python -m tests.mutation.score [--min 90]

A mutant is named here by what it changes, not by mutmut's number (which moves whenever the
code above it does): its module, its function, the source lines it replaces and the lines it
puts in their place, each stripped of indentation. The adjusted score of a module is
killed / (mutants - equivalent). Exit status 1 when a module scores below `--min`, or when the
run is incomplete.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
EQUIVALENT = HERE / "equivalent.toml"
PACKAGE = "modelarts_cleanup"
SOURCE = Path("src") / PACKAGE

# mutmut's exit codes (mutmut.stats.status_by_exit_code) folded into what the score needs.
KILLED_CODES = frozenset({1, 3, 24, -24, 152, 255, 36, 37})  # failed, timed out, type error
SURVIVED_CODES = frozenset({0, 5, 33})  # the tests passed, or no test reached it


@dataclass(frozen=True)
class Identity:
    """What a mutant changes: stable while the code it changes stays as it is."""

    module: str
    function: str
    line: str  # the source lines it replaces
    mutant: str  # the lines in their place

    def shown(self) -> str:
        return f"{self.module}.{self.function}:\n      - {self.line}\n      + {self.mutant}"


@dataclass(frozen=True)
class Mutant:
    name: str  # mutmut's, for `mutmut show NAME`
    identity: Identity
    status: str  # killed, survived, or not checked


@dataclass(frozen=True)
class Equivalent:
    identity: Identity
    why: str


@dataclass(frozen=True)
class Row:
    module: str
    mutants: int
    killed: int
    equivalent: int
    survived: int

    @property
    def adjusted(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 if counted == 0 else 100.0 * self.killed / counted


def status_of(exit_code: int | None) -> str:
    if exit_code in KILLED_CODES:
        return "killed"
    if exit_code in SURVIVED_CODES:
        return "survived"
    return "not checked" if exit_code is None else "suspicious"


def function_of(name: str) -> str:
    """`…cloud.answers.xǁReplyǁof__mutmut_3` -> `Reply.of`; `…x_judge__mutmut_1` -> `judge`."""
    mangled = name.rpartition(".")[2].partition("__mutmut_")[0]
    if mangled.startswith("x_"):
        return mangled[2:]
    return ".".join(part for part in mangled.split("ǁ")[1:] if part)


def changed_lines(diff: str) -> tuple[str, str]:
    """(the lines a unified diff takes out, the lines it puts in), stripped and joined."""
    removed, added = [], []
    for line in diff.splitlines():
        if line.startswith(("---", "+++", "@@")):
            continue
        if line.startswith("-"):
            removed.append(line[1:].strip())
        elif line.startswith("+"):
            added.append(line[1:].strip())
    return " / ".join(removed), " / ".join(added)


def read_equivalents(path: Path = EQUIVALENT) -> list[Equivalent]:
    """The recorded equivalent mutants; each entry needs every field, and a reason."""
    entries = tomllib.loads(path.read_text(encoding="utf-8")).get("equivalent", [])
    found = []
    for index, entry in enumerate(entries):
        # Every field but `mutant`, which is empty for a mutant that only takes a line out.
        fields = ("module", "function", "line", "why")
        missing = [f for f in fields if not str(entry.get(f, "")).strip()]
        missing += [] if isinstance(entry.get("mutant"), str) else ["mutant"]
        if missing:
            raise ValueError(f"{path.name}: equivalent[{index}] lacks {', '.join(missing)}")
        identity = Identity(entry["module"], entry["function"], entry["line"], entry["mutant"])
        found.append(Equivalent(identity, entry["why"].strip()))
    return found


def tally(
    mutants: Iterable[Mutant], equivalents: Sequence[Equivalent], modules: Iterable[str]
) -> tuple[list[Row], list[Mutant], list[Mutant], list[Equivalent]]:
    """Rows per module; the survivors that need a test; the equivalent ones; stale records."""
    known = {e.identity for e in equivalents}
    counts: Counter[tuple[str, str]] = Counter()
    survivors, equivalent = [], []
    for mutant in mutants:
        module = mutant.identity.module
        counts[module, "mutants"] += 1
        if mutant.status == "killed":
            counts[module, "killed"] += 1
        elif mutant.status != "survived":
            continue  # not checked: the run is incomplete, and main says so
        elif mutant.identity in known:
            counts[module, "equivalent"] += 1
            equivalent.append(mutant)
        else:
            counts[module, "survived"] += 1
            survivors.append(mutant)
    kinds = ("mutants", "killed", "equivalent", "survived")
    rows = [Row(m, *(counts[m, k] for k in kinds)) for m in modules]
    made = {m.identity for m in equivalent}
    stale = [e for e in equivalents if e.identity not in made]
    return rows, survivors, equivalent, stale


def table_text(rows: Sequence[Row]) -> str:
    """The rows, and their sum, as a Markdown table."""
    kinds = ("mutants", "killed", "equivalent", "survived")
    total = Row("all", *(sum(getattr(r, k) for r in rows) for k in kinds))
    cells = [("module", *kinds, "adjusted score")] + [
        (r.module, *(str(getattr(r, k)) for k in kinds), f"{r.adjusted:.1f}%")
        for r in (*rows, total)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def read_mutants(root: Path, modules: Sequence[str]) -> list[Mutant]:
    """Every mutant of the modules, from mutmut's files under `root`/mutants."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    found = []
    for module in modules:
        source = SOURCE / f"{module}.py"
        stem = Path(module).name  # records name a module by its file's stem, unique in the tree
        meta: Mapping[str, Any] = json.loads((root / "mutants" / f"{source}.meta").read_text())
        for name, exit_code in meta["exit_code_by_key"].items():
            status = status_of(exit_code)
            # Only what was not killed is ever shown or looked up (and reading a diff is slow).
            diff = "" if status == "killed" else get_diff_for_mutant(name, path=source)
            identity = Identity(stem, function_of(name), *changed_lines(diff))
            found.append(Mutant(name, identity, status))
    return found


def mutated_modules(root: Path) -> list[str]:
    """The modules `[tool.mutmut] only_mutate` names (`events/payload`), in its order."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    paths = config["tool"]["mutmut"]["only_mutate"]
    return [str(Path(p).relative_to(SOURCE).with_suffix("")) for p in paths]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min", type=float, default=90.0, help="lowest adjusted score (percent)")
    args = parser.parse_args(argv)
    root = Path.cwd()
    modules = mutated_modules(root)
    mutants = read_mutants(root, modules)
    stems = [Path(m).name for m in modules]
    rows, survivors, equivalent, stale = tally(mutants, read_equivalents(), stems)

    print(table_text(rows))
    print(f"\nEquivalent mutants recorded in {EQUIVALENT.relative_to(root)}: {len(equivalent)}")
    if stale:
        print(f"\nRecorded as equivalent but no longer made ({len(stale)}); remove them:")
        for record in stale:
            print("  " + record.identity.shown())
    unchecked = [m for m in mutants if m.status in ("not checked", "suspicious")]
    if unchecked:
        print(f"\nNot checked or suspicious ({len(unchecked)}): the run did not finish cleanly")
        for mutant in unchecked:
            print(f"  {mutant.name} ({mutant.status})")
    if survivors:
        print(
            f"\nSurvivors ({len(survivors)}): each needs a test, or a record of why it is harmless"
        )
        for mutant in survivors:
            print(f"  {mutant.identity.shown()}\n      (mutmut show {mutant.name})")
    low = [r.module for r in rows if r.adjusted < args.min]
    if low:
        print(f"\nBelow {args.min:g}%: {', '.join(low)}")
    return 1 if low or unchecked else 0


if __name__ == "__main__":
    sys.exit(main())
