"""Cold start as FunctionGraph runs it: the code package unpacked where nothing may be written.

`deploy/package.py` builds the zip for the runtime (Python 3.10, manylinux wheels) into a scratch
directory; it is unpacked twice, made read-only: as built (every module with its unchecked-hash
bytecode) and with every `__pycache__` removed (sources only, as before the package carried
bytecode). The floor (`benchmarks/floor.py`) is added to both, compiled the same way, so that it
imports its dependencies from the same files. Each start is a fresh Python of the runtime's
version that writes no bytecode; the kinds alternate, and medians are what the targets use.
"""

from __future__ import annotations

import importlib.util
import shutil
import statistics
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from benchmarks.coldstart import FLOOR, Start, start_unpacked
from benchmarks.fake_process import ROOT, FakeProcess

Kind = Literal["ours", "ours, no bytecode", "floor", "floor, no bytecode"]
KINDS: tuple[Kind, ...] = ("ours", "ours, no bytecode", "floor", "floor, no bytecode")


@dataclass(frozen=True)
class UnpackedStarts:
    """Every start of each kind, and what ran them."""

    python: str  # the runtime's interpreter: "3.10.13 at /path"
    zip_bytes: int
    starts: dict[Kind, list[Start]]

    def median_wall(self, kind: Kind) -> float:
        """Median seconds, spawn to exit."""
        return statistics.median(s.wall for s in self.starts[kind])

    def median_rss_mib(self, kind: Kind) -> float:
        """Median peak RSS, MiB."""
        return statistics.median(s.peak_rss_kib for s in self.starts[kind]) / 1024


def _package_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_package", ROOT / "deploy" / "package.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("deploy/package.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(directory).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
    }


def _set_writable(directory: Path, writable: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755 if writable else 0o555)
        else:
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)


def unpacked_cold_starts(
    fake: FakeProcess, runs: int, python: Path | None = None, wheel_cache: Path | None = None
) -> UnpackedStarts:
    """`runs` starts of each kind from the unpacked package, alternating; raises if any child
    failed to delete its instance or anything was written into the unpacked directories."""
    tool = _package_tool()
    target = tool.Target(tool.DEFAULT_PYTHON_VERSION, tool.DEFAULT_PLATFORM)
    cache = wheel_cache or ROOT / "build" / "wheels" / target.tag
    url = fake.start(latency=0.0)
    with tempfile.TemporaryDirectory(prefix="modelarts-cleanup-bench-") as scratch:
        base = Path(scratch)
        built = tool.build(out=base / "dist", target=target, wheel_cache=cache, python=python)
        interpreter = built.bytecode
        compile_bytecode: Callable[[Mapping[str, bytes], object, str], dict[str, bytes]] = (
            tool.compile_bytecode
        )
        floor = {FLOOR.name: FLOOR.read_bytes()}
        floor.update(compile_bytecode(floor, interpreter, target.python_version))
        trees = {"compiled": base / "compiled", "sources": base / "sources"}
        for name, tree in trees.items():
            with zipfile.ZipFile(built.zip_path) as archive:
                archive.extractall(tree)
            for arcname, data in floor.items():
                (tree / arcname).parent.mkdir(exist_ok=True)
                (tree / arcname).write_bytes(data)
            if name == "sources":
                for cache_dir in sorted(tree.rglob("__pycache__"), reverse=True):
                    shutil.rmtree(cache_dir)
            _set_writable(tree, False)
        before = {name: _snapshot(tree) for name, tree in trees.items()}
        runtime = Path(interpreter.path)

        def one(kind: Kind) -> Start:
            starter: Literal["ours", "floor"] = "ours" if kind.startswith("ours") else "floor"
            tree = trees["sources" if kind.endswith("no bytecode") else "compiled"]
            return start_unpacked(runtime, tree, starter, url, fake.seed(1)[0])

        try:
            for kind in KINDS:  # one discarded start each: the page cache warm for all
                one(kind)
            starts: dict[Kind, list[Start]] = {kind: [] for kind in KINDS}
            fake.served()
            for _ in range(runs):
                for kind in KINDS:
                    starts[kind].append(one(kind))
            served = fake.served()
            after = {name: _snapshot(tree) for name, tree in trees.items()}
        finally:
            for tree in trees.values():
                _set_writable(tree, True)
        if served.statuses != {200: len(KINDS) * runs} or served.remaining != 0:
            raise RuntimeError(f"unpacked cold starts: endpoint answered {served.statuses}")
        if after != before:
            raise RuntimeError("unpacked cold starts: something was written into the package")
        return UnpackedStarts(
            python=f"{interpreter.version} at {interpreter.path}",
            zip_bytes=int(built.size),
            starts=starts,
        )
