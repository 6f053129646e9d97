"""Build the FunctionGraph code package: a reproducible zip of handler.py, the package and its deps.

    python deploy/package.py [--python-version 3.10] [--platform manylinux2014_x86_64 | --local]
                             [--python PYTHON | --no-bytecode] [--out dist] [--wheel-cache DIR]

FunctionGraph does not install anything: the zip's root must hold `handler.py`, `modelarts_cleanup/`
and every runtime dependency, compiled ones (pydantic-core) built for the runtime's CPython and
platform. Dependencies are the `[project] dependencies` of pyproject.toml, taken as wheels only.

Every shipped `.py` file ships with its bytecode, `__pycache__/<name>.cpython-310.pyc` for the
3.10 runtime, compiled by an interpreter of the runtime's version (found on PATH or under pyenv's
root, or named with --python) in unchecked-hash mode: FunctionGraph unpacks the code where the
function cannot write, so bytecode not shipped is compiled again on every cold start. Unchecked
hash-based files are used whatever the unpacked files' times, and depend only on the source.
`--no-bytecode` builds without them.

The same sources, the same wheels and the same compiling interpreter give a byte-identical zip:
entries sorted, one fixed timestamp, fixed permissions, no console scripts, and each
`*.dist-info/RECORD` cut down to the files actually shipped (pip records `bin/` scripts whose
shebang names the installing interpreter, so RECORD is the one file that differs between two
machines). Downloaded wheels are kept in a cache directory and installed from there with no index,
so a second build neither downloads nor resolves anything new. Besides the zip, the same tree is
written unpacked to `<out>/<name>/`, because the Serverless Devs `fgs` component zips a code
directory itself (`code.codeUri`).

Standard library only: it runs before anything is installed, on Python 3.10 or later.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PYTHON_VERSION = "3.10"
DEFAULT_PLATFORM = "manylinux2014_x86_64"
PACKAGE_NAME = "modelarts_cleanup"
HANDLER_FILE = "handler.py"

# The earliest moment a zip can record; SOURCE_DATE_EPOCH overrides it (reproducible-builds.org).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755  # directories and shared objects
COMPRESS_LEVEL = 9
_UNIX = 3  # ZipInfo.create_system; fixed so a build on another OS writes the same header bytes
_S_IFREG = 0o100000
_S_IFDIR = 0o040000
_MSDOS_DIRECTORY = 0x10

# Never taken from the sources or wheels: bytecode, compiled afresh (compile_bytecode); bin/ holds
# console scripts whose shebang is the build machine's interpreter; direct_url.json would record
# a local path.
_EXCLUDED_TOP_DIRS = frozenset({"bin"})
_EXCLUDED_DIRS = frozenset({"__pycache__"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EXCLUDED_NAMES = frozenset({"direct_url.json"})
# The package's own test doubles (the local endpoint, the demo): what ships is what runs.
TEST_ONLY_SUBPACKAGE = "testing"


class PackagingError(Exception):
    """The package could not be built; the message says why."""


@dataclass(frozen=True)
class Project:
    """What pyproject.toml says about the distribution."""

    name: str
    version: str
    dependencies: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """The interpreter the dependencies are chosen for; `platform` None means this interpreter."""

    python_version: str
    platform: str | None

    @property
    def tag(self) -> str:
        """A short name for the target, used for the wheel cache."""
        cp = "cp" + self.python_version.replace(".", "")
        return f"{cp}-{self.platform}" if self.platform else f"{cp}-local"

    def pip_options(self) -> list[str]:
        """The pip options that select wheels for this target."""
        if self.platform is None:
            return []
        return [
            "--platform",
            self.platform,
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
        ]


@dataclass(frozen=True)
class Entry:
    """One member of the zip: a file (data is bytes) or a directory (data is None)."""

    name: str
    data: bytes | None
    mode: int


def read_project(pyproject: Path) -> Project:
    """Name, version and runtime dependencies from pyproject.toml."""
    text = pyproject.read_text(encoding="utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        table = tomllib.loads(text)["project"]
        return Project(
            name=str(table["name"]),
            version=str(table["version"]),
            dependencies=tuple(str(d) for d in table.get("dependencies", [])),
        )
    return parse_project_fallback(text)


def parse_project_fallback(text: str) -> Project:
    """Read the `[project]` table without tomllib (Python 3.10): enough for this pyproject."""
    section = re.search(r"(?ms)^\[project\][ \t]*$(.*?)(?=^\[)", text + "\n[end]\n")
    if section is None:
        raise PackagingError("pyproject.toml has no [project] table")
    body = section.group(1)

    def string_value(key: str) -> str:
        match = re.search(rf'(?m)^{key}\s*=\s*"([^"]*)"', body)
        if match is None:
            raise PackagingError(f"pyproject.toml: [project] {key} not found")
        return match.group(1)

    deps_match = re.search(r"(?ms)^dependencies\s*=\s*\[(.*?)\]", body)
    dependencies: tuple[str, ...] = ()
    if deps_match is not None:
        without_comments = re.sub(r"(?m)#.*$", "", deps_match.group(1))
        dependencies = tuple(re.findall(r'"([^"]+)"', without_comments))
    return Project(
        name=string_value("name"), version=string_value("version"), dependencies=dependencies
    )


def _pip(args: Sequence[str]) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise PackagingError(
            f"pip failed ({result.returncode}): {' '.join(command)}\n{result.stdout}{result.stderr}"
        )


def install_dependencies(
    requirements: Sequence[str],
    target: Target,
    wheel_cache: Path,
    site: Path,
    constraints: Path | None = None,
) -> None:
    """Install the requirements' wheels for `target` into `site`, downloading through the cache."""
    wheel_cache.mkdir(parents=True, exist_ok=True)
    selection = ["--only-binary=:all:", *target.pip_options()]
    if constraints is not None:
        selection += ["--constraint", str(constraints)]
    # Resolves against the configured index; wheels already in the cache are not fetched again.
    _pip(["download", "--quiet", "--dest", str(wheel_cache), *selection, *requirements])
    # --isolated and --no-index: the install sees the cache and nothing else, so two builds from
    # the same cache pick the same wheels whatever pip's configuration says.
    _pip(
        [
            "install",
            "--quiet",
            "--isolated",
            "--no-index",
            "--find-links",
            str(wheel_cache),
            "--target",
            str(site),
            "--no-compile",
            *selection,
            *requirements,
        ]
    )


def _excluded(relative: Path) -> bool:
    parts = relative.parts
    return (
        (len(parts) > 1 and parts[0] in _EXCLUDED_TOP_DIRS)
        or any(part in _EXCLUDED_DIRS for part in parts[:-1])
        or relative.name in _EXCLUDED_NAMES
        or relative.suffix in _EXCLUDED_SUFFIXES
    )


def _mode_for(name: str) -> int:
    return EXECUTABLE_MODE if name.endswith(".so") or ".so." in name else FILE_MODE


def _walk_files(base: Path) -> Iterator[Path]:
    for path in sorted(base.rglob("*")):
        if path.is_file() and not _excluded(path.relative_to(base)):
            yield path


def filter_record(record: str, shipped: Iterable[str], dist_info: str) -> str:
    """Keep the RECORD rows of files that are shipped, sorted; RECORD's own row stays."""
    keep = set(shipped)
    own = f"{dist_info}/RECORD"
    rows = []
    for line in record.splitlines():
        if not line.strip():
            continue
        path = line.split(",", 1)[0]
        if path == own or path in keep:
            rows.append(line)
    return "".join(f"{row}\n" for row in sorted(rows))


def collect_files(root: Path, site: Path) -> dict[str, bytes]:
    """Every file of the package: arcname -> content, RECORDs normalised."""
    files: dict[str, bytes] = {}

    def add(arcname: str, data: bytes) -> None:
        if arcname in files:
            raise PackagingError(f"{arcname} comes from two places")
        files[arcname] = data

    handler = root / HANDLER_FILE
    if not handler.is_file():
        raise PackagingError(f"{handler} is missing")
    add(HANDLER_FILE, handler.read_bytes())

    package = root / "src" / PACKAGE_NAME
    if not (package / "__init__.py").is_file():
        raise PackagingError(f"{package} is not a package")
    for path in _walk_files(package):
        relative = path.relative_to(package)
        if relative.parts[0] == TEST_ONLY_SUBPACKAGE:
            continue
        add(f"{PACKAGE_NAME}/{relative.as_posix()}", path.read_bytes())

    for path in _walk_files(site):
        add(path.relative_to(site).as_posix(), path.read_bytes())

    for arcname in [n for n in files if n.endswith(".dist-info/RECORD")]:
        dist_info = arcname.rsplit("/", 1)[0]
        files[arcname] = filter_record(files[arcname].decode("utf-8"), files, dist_info).encode(
            "utf-8"
        )
    return files


@dataclass(frozen=True)
class Interpreter:
    """A CPython that compiles bytecode for the runtime: its path and its full version."""

    path: Path
    version: str  # e.g. "3.10.13"


# Run by the compiling interpreter: what it is, as one JSON line.
_DESCRIBE = (
    "import json, platform, sys; "
    "print(json.dumps([sys.implementation.cache_tag, platform.python_version(), sys.executable]))"
)

# Run by the compiling interpreter: compile each (source, pyc, name shown in tracebacks) it is
# given on stdin. The name is the file's path in the zip, not the staging directory's, so that two
# builds write the same bytes; the import system replaces it with the real path when it loads.
_COMPILE = """\
import json, py_compile, sys
for source, target, shown in json.load(sys.stdin):
    py_compile.compile(source, cfile=target, dfile=shown, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def cache_tag(python_version: str) -> str:
    """The bytecode cache tag of CPython `python_version`: "3.10" -> "cpython-310"."""
    return "cpython-" + python_version.replace(".", "")


def describe_interpreter(path: Path) -> tuple[str, Interpreter] | None:
    """The cache tag and identity of the interpreter at `path`, or None if it does not run."""
    try:
        result = subprocess.run(
            [str(path), "-I", "-S", "-c", _DESCRIBE],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        tag, version, executable = json.loads(result.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0 or not isinstance(tag, str):
        return None
    return tag, Interpreter(Path(executable or path), str(version))


def interpreter_candidates(python_version: str, environ: Mapping[str, str]) -> list[Path]:
    """Where a `python<version>` may be: on PATH, then under pyenv's root, newest first."""
    name = f"python{python_version}"
    found: list[Path] = []
    on_path = shutil.which(name, path=environ.get("PATH", os.defpath))
    if on_path is not None:
        found.append(Path(on_path))
    pyenv_root = environ.get("PYENV_ROOT") or str(Path(environ.get("HOME", "~")) / ".pyenv")
    versions = Path(pyenv_root).expanduser() / "versions"
    pattern = str(versions / f"{glob.escape(python_version)}.*" / "bin" / name)
    installed = [Path(p) for p in glob.glob(pattern)]

    def patch(path: Path) -> tuple[int, ...]:
        tail = path.parent.parent.name[len(python_version) + 1 :]
        return tuple(int(part) if part.isdigit() else -1 for part in tail.split("."))

    found += sorted(installed, key=patch, reverse=True)
    return found


def find_interpreter(
    python_version: str,
    environ: Mapping[str, str] | None = None,
    explicit: Path | None = None,
) -> Interpreter:
    """A CPython of `python_version` to compile with: `explicit`, this one, or one found.

    Raises PackagingError saying where it looked and how to get one.
    """
    wanted = cache_tag(python_version)
    if explicit is not None:
        described = describe_interpreter(explicit)
        if described is None:
            raise PackagingError(f"--python {explicit}: does not run")
        if described[0] != wanted:
            raise PackagingError(
                f"--python {explicit} is {described[0]}, the runtime needs {wanted} bytecode"
            )
        return described[1]
    if sys.implementation.cache_tag == wanted:
        return Interpreter(Path(sys.executable), _running_version())
    env = os.environ if environ is None else environ
    for candidate in interpreter_candidates(python_version, env):
        described = describe_interpreter(candidate)
        if described is not None and described[0] == wanted:
            return described[1]
    pyenv_root = env.get("PYENV_ROOT") or "~/.pyenv"
    raise PackagingError(
        f"no Python {python_version} to compile the package's bytecode with (looked for "
        f"python{python_version} on PATH and under {pyenv_root}/versions/{python_version}.*). "
        f"Install one (`pyenv install {python_version}`, or your system's python{python_version} "
        f"package) or name it with --python; or build without bytecode with --no-bytecode "
        "(every cold start then compiles the code from source)"
    )


def _running_version() -> str:
    info = sys.version_info
    return f"{info.major}.{info.minor}.{info.micro}"


def pyc_name(arcname: str, tag: str) -> str:
    """Where the import system looks for `arcname`'s bytecode: `dir/__pycache__/name.<tag>.pyc`."""
    directory, _, filename = arcname.rpartition("/")
    cached = f"__pycache__/{filename.removesuffix('.py')}.{tag}.pyc"
    return f"{directory}/{cached}" if directory else cached


def compile_bytecode(
    files: Mapping[str, bytes], interpreter: Interpreter, python_version: str
) -> dict[str, bytes]:
    """Unchecked-hash bytecode of every `.py` in `files`, compiled by `interpreter`: arcname -> pyc.

    One child compiles them all in sorted order with a fixed hash seed, so that the same files
    and the same interpreter give the same bytes.
    """
    tag = cache_tag(python_version)
    sources = sorted(name for name in files if name.endswith(".py"))
    with tempfile.TemporaryDirectory(prefix="modelarts-cleanup-bytecode-") as staging:
        base = Path(staging)
        jobs = []
        for name in sources:
            source = base / name
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(files[name])
            jobs.append((str(source), str(base / pyc_name(name, tag)), name))
        # Not -I: it would ignore PYTHONHASHSEED, and the order of a frozenset constant's
        # members (`x in {"a", "b"}`) follows the string hashes. The environment is this alone.
        env = {"PATH": os.defpath, "PYTHONHASHSEED": "0"}
        result = subprocess.run(
            [str(interpreter.path), "-s", "-S", "-c", _COMPILE],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise PackagingError(
                f"compiling bytecode with {interpreter.path} failed:\n{result.stderr[-4000:]}"
            )
        return {pyc_name(name, tag): (base / pyc_name(name, tag)).read_bytes() for name in sources}


def entries_for(files: Mapping[str, bytes]) -> list[Entry]:
    """Files plus every parent directory, sorted by name."""
    directories = {
        "/".join(name.split("/")[:depth]) + "/"
        for name in files
        for depth in range(1, name.count("/") + 1)
    }
    entries = [Entry(name, files[name], _mode_for(name)) for name in files]
    entries += [Entry(name, None, EXECUTABLE_MODE) for name in directories]
    return sorted(entries, key=lambda e: e.name)


def zip_timestamp(environ: Mapping[str, str]) -> tuple[int, int, int, int, int, int]:
    """SOURCE_DATE_EPOCH when set (clamped to what a zip can hold), else 1980-01-01 00:00."""
    raw = environ.get("SOURCE_DATE_EPOCH")
    if not raw:
        return ZIP_EPOCH
    t = time.gmtime(int(raw))
    stamp = (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)
    return max(stamp, ZIP_EPOCH)


def write_zip(
    entries: Sequence[Entry], path: Path, date_time: tuple[int, int, int, int, int, int]
) -> None:
    """Write the entries in order with fixed metadata, so equal entries give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=date_time)
            info.create_system = _UNIX
            if entry.data is None:
                info.external_attr = ((_S_IFDIR | entry.mode) << 16) | _MSDOS_DIRECTORY
                info.compress_type = zipfile.ZIP_STORED
                archive.writestr(info, b"")
            else:
                info.external_attr = (_S_IFREG | entry.mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entry.data, compresslevel=COMPRESS_LEVEL)
    partial.replace(path)


def write_tree(entries: Sequence[Entry], directory: Path) -> None:
    """Write the same entries unpacked (the `codeUri` directory for Serverless Devs)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for entry in entries:
        target = directory / entry.name
        if entry.data is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(entry.data)
            target.chmod(entry.mode)


@dataclass(frozen=True)
class Built:
    """What a build produced."""

    zip_path: Path
    tree: Path
    size: int
    entries: int
    bytecode: Interpreter | None  # what compiled the shipped bytecode; None: built without


def bytecode_summary(built: Built, target: Target) -> str:
    """The end of the summary line: which bytecode the package carries, if any."""
    if built.bytecode is None:
        return "no bytecode (--no-bytecode: every cold start compiles from source)"
    return (
        f"bytecode {cache_tag(target.python_version)} (unchecked-hash) by Python "
        f"{built.bytecode.version} at {built.bytecode.path}"
    )


def build(
    *,
    root: Path = ROOT,
    out: Path,
    target: Target,
    wheel_cache: Path,
    environ: Mapping[str, str] | None = None,
    bytecode: bool = True,
    python: Path | None = None,
) -> Built:
    """Build `<out>/<name>-<version>.zip` and its unpacked tree `<out>/<name>/`.

    With `bytecode` (the default) every `.py` ships compiled for `target` by `python`, or by an
    interpreter of the target's version found on this machine (before anything is downloaded).
    """
    env = os.environ if environ is None else environ
    project = read_project(root / "pyproject.toml")
    compiler = find_interpreter(target.python_version, env, python) if bytecode else None
    with tempfile.TemporaryDirectory(prefix="modelarts-cleanup-package-") as staging:
        site = Path(staging) / "site"
        pins = root / "deploy" / "constraints.txt"
        install_dependencies(
            project.dependencies, target, wheel_cache, site, pins if pins.exists() else None
        )
        files = collect_files(root, site)
    if compiler is not None:
        for name, pyc in compile_bytecode(files, compiler, target.python_version).items():
            if name in files:
                raise PackagingError(f"{name} comes from two places")
            files[name] = pyc
    entries = entries_for(files)
    zip_path = out / f"{project.name}-{project.version}.zip"
    write_zip(entries, zip_path, zip_timestamp(env))
    tree = out / project.name
    write_tree(entries, tree)
    return Built(
        zip_path=zip_path,
        tree=tree,
        size=zip_path.stat().st_size,
        entries=len(entries),
        bytecode=compiler,
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--python-version",
        help=f"CPython version of the runtime (default {DEFAULT_PYTHON_VERSION})",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--platform", help=f"wheel platform tag of the runtime (default {DEFAULT_PLATFORM})"
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="choose wheels for this interpreter instead (to run the package here)",
    )
    compiled = parser.add_mutually_exclusive_group()
    compiled.add_argument(
        "--python",
        type=Path,
        help="the interpreter of the runtime's version that compiles the bytecode "
        "(default: python<version> on PATH, then under $PYENV_ROOT or ~/.pyenv)",
    )
    compiled.add_argument(
        "--no-bytecode",
        action="store_true",
        help="ship sources only: every cold start then compiles them",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory")
    parser.add_argument(
        "--wheel-cache",
        type=Path,
        help="where downloaded wheels are kept (default build/wheels/<target>)",
    )
    args = parser.parse_args(argv)
    if args.local and args.python_version:
        parser.error("--local builds for this interpreter; --python-version does not apply")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: build, then print where the zip is and how big."""
    args = _parse_args(argv)
    if args.local:
        target = Target(f"{sys.version_info.major}.{sys.version_info.minor}", None)
    else:
        target = Target(
            args.python_version or DEFAULT_PYTHON_VERSION, args.platform or DEFAULT_PLATFORM
        )
    cache = args.wheel_cache or ROOT / "build" / "wheels" / target.tag
    try:
        built = build(
            out=args.out,
            target=target,
            wheel_cache=cache,
            bytecode=not args.no_bytecode,
            python=args.python,
        )
    except PackagingError as error:
        sys.stderr.write(f"package: {error}\n")
        return 1
    sys.stdout.write(
        f"{built.zip_path}: {built.size:,} bytes ({built.size / 2**20:.1f} MiB), "
        f"{built.entries} entries, for {target.tag}, with {bytecode_summary(built, target)}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
