"""Deployment: template.yaml and the agency policy agree with the code; the code package builds,
reproducibly, holds what FunctionGraph needs and nothing else, and runs on its own."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from modelarts_cleanup.entry import run_function
from modelarts_cleanup.events.envelopes import parse_event
from modelarts_cleanup.settings import ENV_NAMES, load_settings
from modelarts_cleanup.testing import FakeModelArts
from tests.support import endpoint_environ, local_endpoint

ROOT = Path(__file__).resolve().parent.parent
DEPLOYING = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
CP310_PLATFORM = "manylinux2014_x86_64"
CREDENTIAL_ENV_NAMES = frozenset(
    {
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        "MODELARTS_CLEANUP_AUTH_TOKEN",
    }
)
# Installed for the tests, linting or benchmarks; none of them may reach the function.
TEST_ONLY_TOP_LEVEL = frozenset(
    {
        "pytest",
        "_pytest",
        "pluggy",
        "iniconfig",
        "responses",
        "hypothesis",
        "yaml",
        "_yaml",
        "huaweicloudsdkcore",
        "huaweicloudsdkmodelarts",
        "ruff",
        "mypy",
        "mypyc",
    }
)
# importlib.util.MAGIC_NUMBER of CPython 3.10 (3439, Lib/importlib/_bootstrap_external.py).
CP310_MAGIC = (3439).to_bytes(2, "little") + b"\r\n"
# FunctionGraph's Python runtimes (Huawei "Supported Runtimes", functiongraph_01_0151).
FUNCTIONGRAPH_PYTHON_RUNTIMES = frozenset({"Python3.9", "Python3.10", "Python3.12"})


def _load_package_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_package", ROOT / "deploy" / "package.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve their annotations through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


package = _load_package_tool()


# --- template.yaml -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "template.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def props(template: dict[str, Any]) -> dict[str, Any]:
    (service,) = template["services"].values()
    assert service["component"] == "fgs"
    return dict(service["props"])


def _resolve_vars(value: str, template: dict[str, Any]) -> str:
    """Substitute `${vars.name}` as Serverless Devs does."""
    return re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(template["vars"][m.group(1)]), value)


def test_template_is_a_serverless_devs_description_for_the_fgs_component(
    template: dict[str, Any], props: dict[str, Any]
) -> None:
    assert template["edition"] == "1.0.0"
    assert template["name"] == "modelarts-cleanup"
    assert isinstance(template["access"], str)
    assert _resolve_vars(props["region"], template) == template["vars"]["region"]
    function = props["function"]
    for field in ("functionName", "handler", "runtime", "memorySize", "timeout", "codeType"):
        assert function[field], field
    assert function["codeType"] == "zip"
    assert 128 <= function["memorySize"] <= 4096
    assert 3 <= function["timeout"] <= 900


def test_template_handler_names_a_function_of_event_and_context(props: dict[str, Any]) -> None:
    module_name, function_name = props["function"]["handler"].split(".")
    tree = ast.parse((ROOT / f"{module_name}.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function_name in functions
    assert len(functions[function_name].args.args) == 2


def test_template_runtime_is_the_python_the_package_is_built_for(props: dict[str, Any]) -> None:
    runtime = props["function"]["runtime"]
    assert runtime in FUNCTIONGRAPH_PYTHON_RUNTIMES
    assert runtime == f"Python{package.DEFAULT_PYTHON_VERSION}"
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', text)
    assert floor is not None
    major, minor = (int(part) for part in package.DEFAULT_PYTHON_VERSION.split("."))
    assert (major, minor) >= (int(floor.group(1)), int(floor.group(2)))


def test_template_code_uri_is_the_tree_the_package_tool_writes(props: dict[str, Any]) -> None:
    project = package.read_project(ROOT / "pyproject.toml")
    assert Path(props["function"]["code"]["codeUri"]) == Path("dist") / project.name


def test_template_sets_only_known_settings_as_strings(props: dict[str, Any]) -> None:
    variables = props["function"]["environmentVariables"]
    assert set(variables) <= ENV_NAMES
    assert all(isinstance(value, str) for value in variables.values())


def test_template_holds_no_credentials(props: dict[str, Any]) -> None:
    assert not set(props["function"]["environmentVariables"]) & CREDENTIAL_ENV_NAMES


def test_template_documents_every_setting(props: dict[str, Any]) -> None:
    # Each setting is either set or named in a comment (credentials: where they go instead).
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    missing = sorted(name for name in ENV_NAMES if name not in text)
    assert missing == []


def test_template_settings_load_and_keep_the_function_in_dry_run(
    template: dict[str, Any], props: dict[str, Any]
) -> None:
    settings = load_settings(_template_settings(template, props))
    assert settings.dry_run is True
    assert settings.region == template["vars"]["region"]
    assert settings.base_url.startswith("https://")


def test_timer_trigger_ships_disabled(props: dict[str, Any]) -> None:
    trigger = props["trigger"]
    assert trigger["triggerTypeCode"] == "TIMER"
    assert trigger["status"] == "DISABLED"
    assert trigger["eventData"]["scheduleType"] in {"Rate", "Cron"}
    assert trigger["eventData"]["schedule"]


def test_timer_carries_no_payload_so_the_settings_say_what_it_deletes(
    template: dict[str, Any], props: dict[str, Any]
) -> None:
    """`s deploy` never updates an existing trigger's payload; it does update the settings."""
    event_data = props["trigger"]["eventData"]
    assert event_data["userEvent"] == ""
    settings = load_settings(_template_settings(template, props))
    payload = parse_event(
        _timer_event(event_data["userEvent"], event_data["name"]),
        default_targets=settings.targets,
        default_selectors=settings.selectors,
    )
    assert payload.targets == [] and len(payload.selectors) == 1
    (rule,) = payload.selectors
    assert rule.project_id == template["vars"]["projectId"]
    assert rule.grace_hours is not None  # the default rule warns before it deletes
    other = template["vars"]["otherProjectId"]
    assert settings.allowed_projects == {template["vars"]["projectId"], other}
    # The allowlist spans two regions; the other project's is known without asking IAM.
    assert settings.project_regions == {other: template["vars"]["otherRegion"]}
    assert template["vars"]["otherRegion"] != template["vars"]["region"]


def test_template_settings_fit_the_functions_limits(props: dict[str, Any]) -> None:
    # fgs component, function.md: at most 20 environment variables, 4 KB in all.
    variables = props["function"]["environmentVariables"]
    assert len(variables) <= 20
    assert sum(len(k) + len(v) for k, v in variables.items()) <= 4096


def test_going_live_as_the_docs_say_changes_what_the_shipped_timer_does(
    template: dict[str, Any], props: dict[str, Any]
) -> None:
    """The template as shipped, then its go-live step: each a settings change, which a redeploy
    does carry, with the trigger's payload left as it was created (empty)."""
    steps = DEPLOYING[
        DEPLOYING.index("## Going live") : DEPLOYING.index("To give the timer a payload")
    ]
    assert "userEvent" not in steps and "eventData" not in steps
    assert '`MODELARTS_CLEANUP_DRY_RUN` to `"false"`' in steps and "`ACTIVE`" in steps
    event_data = props["trigger"]["eventData"]
    timer = _timer_event(event_data["userEvent"], event_data["name"])
    project = template["vars"]["projectId"]
    now_ms = 1_800_000_000_000

    def run(fake: FakeModelArts, **changed: str) -> dict[str, Any]:
        environ = {**_template_settings(template, props), **endpoint_environ(fake.url), **changed}
        return run_function(
            timer, None, environ=environ, log_stream=io.StringIO(), wall_clock=lambda: now_ms / 1000
        )

    with local_endpoint() as fake:
        idle = fake.add_instance(project, status="STOPPED", updated_ms=now_ms - 200 * 3_600_000)
        fresh = fake.add_instance(project, status="STOPPED", updated_ms=now_ms - 3_600_000)

        shipped = run(fake)
        assert [(r["instance_id"], r["outcome"]) for r in shipped["results"]] == [
            (idle, "would_mark")
        ]
        assert not [r for r in fake.requests if r.method != "GET"]

        live = run(fake, MODELARTS_CLEANUP_DRY_RUN="false")
        assert [(r["instance_id"], r["outcome"]) for r in live["results"]] == [(idle, "marked")]
        assert fake.instance(project, fresh) is not None


def _template_settings(template: dict[str, Any], props: dict[str, Any]) -> dict[str, str]:
    return {
        name: _resolve_vars(value, template)
        for name, value in props["function"]["environmentVariables"].items()
    }


def _commented_block(text: str, first: str) -> str:
    """A commented-out block, uncommented: from the line `# <first>` to the next bare `#`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"# {first}")
    prefix = lines[start][: lines[start].index("#")] + "# "
    block = []
    for line in lines[start:]:
        if not line.startswith(prefix):
            break
        block.append(line[len(prefix) :])
    return "\n".join(block)


def test_commented_apig_trigger_is_a_protected_api_for_the_fgs_component() -> None:
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    trigger = yaml.safe_load(_commented_block(text, "trigger:"))["trigger"]
    assert trigger["triggerTypeCode"] == "APIG"
    event_data = trigger["eventData"]
    assert event_data["auth"] in {"IAM", "App"}
    assert event_data["protocol"] == "HTTPS"
    assert 1 <= event_data["timeout"] <= 60_000
    for advice in ("auth IAM or App", "never NONE", "POST"):
        assert advice in text


def test_commented_smn_trigger_says_how_to_create_it_and_who_may_publish() -> None:
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    section = text[text.index("# SMN:") :]
    for words in ('type         = "SMN"', "topic_urn", "limit the topic's", "already_absent"):
        assert words in section


def test_template_names_an_agency_as_xrole(template: dict[str, Any], props: dict[str, Any]) -> None:
    function = props["function"]
    assert _resolve_vars(function["xrole"], template)
    assert "agencyName" not in function  # deprecated in the component


# --- deploy/package.py, pure parts ---------------------------------------------------------------


def test_pyproject_fallback_parser_agrees_with_tomllib() -> None:
    # read_project uses tomllib on 3.11+; the regex fallback is what Python 3.10 tooling gets.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    via_tomllib = package.read_project(ROOT / "pyproject.toml")
    assert package.parse_project_fallback(text) == via_tomllib
    assert via_tomllib.dependencies  # the runtime needs requests and pydantic-settings at least


def test_record_keeps_only_rows_of_shipped_files_sorted() -> None:
    record = (
        "pkg/b.py,sha256=bbb,2\n"
        "../../bin/tool,sha256=varies-with-the-interpreter-path,190\n"
        "pkg/__pycache__/b.cpython-310.pyc,,\n"
        "pkg/a.py,sha256=aaa,1\n"
        "pkg-1.0.dist-info/RECORD,,\n"
    )
    shipped = {"pkg/a.py", "pkg/b.py", "pkg-1.0.dist-info/METADATA"}
    assert package.filter_record(record, shipped, "pkg-1.0.dist-info") == (
        "pkg-1.0.dist-info/RECORD,,\npkg/a.py,sha256=aaa,1\npkg/b.py,sha256=bbb,2\n"
    )


def test_zip_timestamp_is_fixed_unless_source_date_epoch_says_otherwise() -> None:
    assert package.zip_timestamp({}) == (1980, 1, 1, 0, 0, 0)
    assert package.zip_timestamp({"SOURCE_DATE_EPOCH": "1700000000"}) == (2023, 11, 14, 22, 13, 20)
    assert package.zip_timestamp({"SOURCE_DATE_EPOCH": "0"}) == (1980, 1, 1, 0, 0, 0)


# --- the built package ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    zip_path: Path
    tree: Path
    stdout: str


def _package_tool(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "package.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
    )


def _run_package_tool(args: list[str]) -> str:
    result = _package_tool(args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by every build of the session: each platform's wheels are downloaded once.
    return tmp_path_factory.mktemp("wheels")


@pytest.fixture(scope="session")
def cp310_builds(
    tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path
) -> tuple[Build, Build]:
    """The same sources built twice for the FunctionGraph runtime, once through the CLI."""
    first_out = tmp_path_factory.mktemp("cp310-first")
    cache = wheel_cache / "cp310"
    stdout = _run_package_tool(
        [
            "--python-version",
            "3.10",
            "--platform",
            CP310_PLATFORM,
            "--out",
            str(first_out),
            "--wheel-cache",
            str(cache),
        ]
    )
    second_out = tmp_path_factory.mktemp("cp310-second")
    built = package.build(
        out=second_out, target=package.Target("3.10", CP310_PLATFORM), wheel_cache=cache
    )
    project = package.read_project(ROOT / "pyproject.toml")
    zip_name = f"{project.name}-{project.version}.zip"
    first = Build(first_out / zip_name, first_out / project.name, stdout)
    return first, Build(built.zip_path, built.tree, "")


@pytest.fixture(scope="session")
def cp310_zip(cp310_builds: tuple[Build, Build]) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(cp310_builds[0].zip_path) as archive:
        yield archive


@pytest.fixture(scope="session")
def local_build(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> Build:
    """Built for the interpreter running the tests, so it can be run here."""
    out = tmp_path_factory.mktemp("local")
    stdout = _run_package_tool(
        ["--local", "--out", str(out), "--wheel-cache", str(wheel_cache / "local")]
    )
    project = package.read_project(ROOT / "pyproject.toml")
    return Build(out / f"{project.name}-{project.version}.zip", out / project.name, stdout)


def test_second_build_of_the_same_sources_is_byte_identical(
    cp310_builds: tuple[Build, Build],
) -> None:
    first, second = cp310_builds
    assert first.zip_path.name == second.zip_path.name
    assert first.zip_path.read_bytes() == second.zip_path.read_bytes()


def test_package_tool_prints_the_zip_its_size_and_its_bytecode(
    cp310_builds: tuple[Build, Build],
) -> None:
    first = cp310_builds[0]
    size = first.zip_path.stat().st_size
    assert str(first.zip_path) in first.stdout
    assert f"{size:,} bytes" in first.stdout
    assert "with bytecode cpython-310 (unchecked-hash) by Python 3.10." in first.stdout


def test_cp310_package_holds_pydantic_core_built_for_cp310(cp310_zip: zipfile.ZipFile) -> None:
    names = cp310_zip.namelist()
    assert "pydantic_core/_pydantic_core.cpython-310-x86_64-linux-gnu.so" in names
    extensions = [name for name in names if name.endswith(".so")]
    assert extensions
    assert all("cpython-310-x86_64-linux-gnu" in name for name in extensions), extensions


def test_package_root_holds_handler_package_and_runtime_dependencies(
    cp310_zip: zipfile.ZipFile,
) -> None:
    names = set(cp310_zip.namelist())
    for required in (
        "handler.py",
        "modelarts_cleanup/__init__.py",
        "modelarts_cleanup/entry.py",
        "requests/__init__.py",
        "urllib3/__init__.py",
        "pydantic/__init__.py",
        "pydantic_settings/__init__.py",
    ):
        assert required in names, required
    assert cp310_zip.read("handler.py") == (ROOT / "handler.py").read_bytes()


def test_package_holds_no_test_only_package(cp310_zip: zipfile.ZipFile) -> None:
    top_level = {name.split("/", 1)[0] for name in cp310_zip.namelist()}
    modules = {name.split("-", 1)[0].removesuffix(".py").lower() for name in top_level}
    assert not modules & TEST_ONLY_TOP_LEVEL


def test_package_leaves_out_the_local_endpoint_and_signature_checking(
    cp310_zip: zipfile.ZipFile,
) -> None:
    names = cp310_zip.namelist()
    ours = [n for n in names if n.startswith("modelarts_cleanup/")]
    assert "modelarts_cleanup/cloud/client.py" in ours
    assert not [n for n in ours if n.startswith("modelarts_cleanup/testing/")]
    # The server side of signing (checking a signature) lives in testing/ only.
    for name in ours:
        if name.endswith(".py"):
            assert b"def verify(" not in cp310_zip.read(name), name


def test_importing_the_handler_imports_nothing_of_the_test_doubles() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import handler"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    ours = [name for name in imported if name.startswith("modelarts_cleanup")]
    assert "modelarts_cleanup.entry" in ours
    assert not [name for name in ours if name.startswith("modelarts_cleanup.testing")]


def test_package_holds_no_scripts(cp310_zip: zipfile.ZipFile) -> None:
    assert not [n for n in cp310_zip.namelist() if n.startswith("bin/")]


def test_every_shipped_module_has_unchecked_hash_bytecode_for_the_runtime(
    cp310_zip: zipfile.ZipFile,
) -> None:
    names = set(cp310_zip.namelist())
    sources = sorted(n for n in names if n.endswith(".py"))
    assert "handler.py" in sources and "modelarts_cleanup/__init__.py" in sources
    expected = {_cached(source, "cpython-310") for source in sources}
    assert {n for n in names if n.endswith((".pyc", ".pyo"))} == expected
    for name in sorted(expected):
        header = cp310_zip.read(name)[:16]
        assert header[:4] == CP310_MAGIC, name
        # PEP 552: flags bit 0 = hash-based, bit 1 = check the source; unchecked is exactly 1.
        assert int.from_bytes(header[4:8], "little") == 0b01, name


def _cached(source: str, tag: str) -> str:
    directory, _, filename = source.rpartition("/")
    cached = f"__pycache__/{filename[: -len('.py')]}.{tag}.pyc"
    return f"{directory}/{cached}" if directory else cached


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        path.relative_to(directory).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in directory.rglob("*")
    }


def _set_writable(directory: Path, writable: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755 if writable else 0o555)
        else:
            path.chmod(path.stat().st_mode | 0o200 if writable else path.stat().st_mode & ~0o222)


def test_the_shipped_bytecode_is_what_runs_from_a_read_only_copy(
    cp310_builds: tuple[Build, Build], tmp_path: Path
) -> None:
    """As FunctionGraph runs it: unpacked where nothing may be written, by Python 3.10. Every
    source is replaced by a syntax error, yet the handler imports and runs, writing nothing."""
    python = package.find_interpreter(package.DEFAULT_PYTHON_VERSION).path
    code_dir = tmp_path / "code"
    with zipfile.ZipFile(cp310_builds[0].zip_path) as archive:
        archive.extractall(code_dir)
    broken = sorted(code_dir.rglob("*.py"))
    for source in broken:
        source.write_text("def (:\n", encoding="utf-8")
    _set_writable(code_dir, False)
    before = _snapshot(code_dir)
    try:
        outcome, result = _run_dry_run(python, code_dir, tmp_path)
        after = _snapshot(code_dir)
    finally:
        _set_writable(code_dir, True)
    assert result.returncode == 0, result.stderr
    assert after == before  # no new file, nothing rewritten
    assert len(broken) > 100
    for name, file in outcome["modules"].items():
        assert Path(file).is_relative_to(code_dir), name
    assert "modelarts_cleanup.cloud.client" in outcome["ours"]
    assert outcome["report"]["status"] == "succeeded"
    assert [r["outcome"] for r in outcome["report"]["results"]] == ["would_delete"]


def test_a_source_that_does_not_compile_stops_the_build() -> None:
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    interpreter = package.find_interpreter(running)
    files = {"good.py": b"x = 1\n", "pkg/bad.py": b"def (:\n"}
    with pytest.raises(package.PackagingError, match=r"(?s)compiling bytecode.*pkg/bad\.py"):
        package.compile_bytecode(files, interpreter, running)


def test_without_an_interpreter_of_the_runtimes_version_the_build_stops_and_says_how(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    version = "3.9" if sys.version_info[:2] != (3, 9) else "3.12"
    out = tmp_path / "out"
    env = {"PATH": str(empty), "PYENV_ROOT": str(empty), "HOME": str(empty)}
    result = _package_tool(["--python-version", version, "--out", str(out)], env)
    assert result.returncode == 1
    assert f"no Python {version}" in result.stderr
    for advice in (f"pyenv install {version}", "--python", "--no-bytecode"):
        assert advice in result.stderr
    assert not out.exists()  # it stopped before downloading or writing anything


def test_an_interpreter_named_for_another_version_is_refused(tmp_path: Path) -> None:
    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    result = _package_tool(
        ["--python-version", other, "--python", sys.executable, "--out", str(tmp_path)]
    )
    assert result.returncode == 1
    running = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    assert f"is {running}, the runtime needs {package.cache_tag(other)} bytecode" in result.stderr
    missing = _package_tool(["--python", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert missing.returncode == 1
    assert "does not run" in missing.stderr


def test_interpreters_are_looked_for_on_path_then_under_pyenvs_root(tmp_path: Path) -> None:
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "python3.10").touch(mode=0o755)
    root = tmp_path / "pyenv"
    for version in ("3.10.2", "3.10.13", "3.100.0", "3.1.0"):
        found = root / "versions" / version / "bin" / "python3.10"
        found.parent.mkdir(parents=True)
        found.touch(mode=0o755)
    candidates = package.interpreter_candidates(
        "3.10", {"PATH": str(on_path), "PYENV_ROOT": str(root)}
    )
    assert candidates == [
        on_path / "python3.10",
        root / "versions" / "3.10.13" / "bin" / "python3.10",
        root / "versions" / "3.10.2" / "bin" / "python3.10",
    ]
    home = package.interpreter_candidates("3.10", {"PATH": "", "HOME": str(tmp_path)})
    assert home == []  # no ~/.pyenv there
    (tmp_path / ".pyenv").symlink_to(root)
    home = package.interpreter_candidates("3.10", {"PATH": "", "HOME": str(tmp_path)})
    assert home == [
        tmp_path / ".pyenv" / "versions" / "3.10.13" / "bin" / "python3.10",
        tmp_path / ".pyenv" / "versions" / "3.10.2" / "bin" / "python3.10",
    ]


def test_no_bytecode_builds_sources_only_and_says_so(tmp_path: Path, wheel_cache: Path) -> None:
    stdout = _run_package_tool(
        [
            "--no-bytecode",
            "--platform",
            CP310_PLATFORM,
            "--out",
            str(tmp_path),
            "--wheel-cache",
            str(wheel_cache / "cp310"),
        ]
    )
    assert "with no bytecode (--no-bytecode" in stdout
    (zip_path,) = tmp_path.glob("*.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    assert "handler.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]


def test_package_entries_are_sorted_with_fixed_time_and_permissions(
    cp310_zip: zipfile.ZipFile,
) -> None:
    infos = cp310_zip.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.create_system for info in infos} == {3}
    modes = {info.filename: (info.external_attr >> 16) & 0o7777 for info in infos}
    for name, mode in modes.items():
        expected = 0o755 if name.endswith(("/", ".so")) else 0o644
        assert mode == expected, name


def test_package_records_list_only_shipped_files(cp310_zip: zipfile.ZipFile) -> None:
    names = set(cp310_zip.namelist())
    records = [n for n in names if n.endswith(".dist-info/RECORD")]
    assert records
    for record in records:
        listed = [
            line.split(",", 1)[0]
            for line in cp310_zip.read(record).decode().splitlines()
            if line.strip()
        ]
        assert set(listed) <= names, record


def test_unpacked_tree_holds_exactly_what_the_zip_holds(
    cp310_builds: tuple[Build, Build], cp310_zip: zipfile.ZipFile
) -> None:
    tree = cp310_builds[0].tree
    on_disk = {p.relative_to(tree).as_posix(): p for p in tree.rglob("*") if p.is_file()}
    in_zip = {n for n in cp310_zip.namelist() if not n.endswith("/")}
    assert set(on_disk) == in_zip
    assert all(on_disk[name].read_bytes() == cp310_zip.read(name) for name in in_zip)


# --- the locally built package, run as FunctionGraph would ---------------------------------------

PROJECT_ID = "0123456789abcdef0123456789abcdef"

# Runs in the child: only the unpacked package (and the standard library) on sys.path.
_RUNNER = '''
import json
import os
import sys

code_dir, event_file, result_file = sys.argv[1:4]
sys.path.insert(0, code_dir)


class Context:
    """What FunctionGraph's Python runtime passes as `context` (no agency configured)."""

    def getRequestID(self):
        return "11111111-2222-3333-4444-555555555555"

    def getRemainingTimeInMilliSeconds(self):
        return 60000

    def getRunningTimeInSeconds(self):
        return 300

    def getFunctionName(self):
        return "modelarts-cleanup"

    def getVersion(self):
        return "latest"

    def getMemorySize(self):
        return 256

    def getProjectID(self):
        return os.environ["TEST_PROJECT_ID"]

    def getPackage(self):
        return "default"

    def getUserData(self, key, default=None):
        return os.environ.get(key, default)

    def getToken(self):
        return ""

    def getSecurityAccessKey(self):
        return ""

    def getSecuritySecretKey(self):
        return ""

    def getSecurityToken(self):
        return ""

    def getLogger(self):
        return None


import handler

with open(event_file, encoding="utf-8") as f:
    event = json.load(f)
report = handler.handler(event, Context())
modules = {
    name: sys.modules[name].__file__
    for name in ("handler", "modelarts_cleanup", "requests", "pydantic", "pydantic_core",
                 "pydantic_settings")
}
ours = sorted(name for name in sys.modules if name.startswith("modelarts_cleanup"))
with open(result_file, "w", encoding="utf-8") as f:
    json.dump({"report": report, "modules": modules, "path": sys.path, "ours": ours}, f)
'''


def _timer_event(user_event: str, name: str) -> dict[str, str]:
    return {
        "version": "v1.0",
        "time": "2024-06-01T02:00:00+08:00",
        "trigger_type": "TIMER",
        "trigger_name": name,
        "user_event": user_event,
    }


def _run_dry_run(
    python: Path, code_dir: Path, work: Path
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run the unpacked package in `code_dir` alone, as FunctionGraph would: a timer's dry run
    naming one notebook of the local endpoint. Returns what the child saw, and how it ended."""
    runner = work / "runner.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    event_file = work / "event.json"
    result_file = work / "result.json"

    with local_endpoint() as fake:
        instance_id = fake.add_instance(PROJECT_ID, api="notebook", status="STOPPED")
        payload = {
            "targets": [{"project_id": PROJECT_ID, "instance_id": instance_id}],
            "dry_run": True,
        }
        event_file.write_text(json.dumps(_timer_event(json.dumps(payload), "Timer_001")))
        environment = {
            "PATH": "/usr/bin:/bin",
            **endpoint_environ(fake.url),
            "TEST_PROJECT_ID": PROJECT_ID,
        }
        # -I: no PYTHON* variables, no user site, no script directory on the path. -S as well:
        # without it the virtualenv running the tests would put its site-packages on the path.
        result = subprocess.run(
            [
                str(python),
                "-I",
                "-S",
                str(runner),
                str(code_dir),
                str(event_file),
                str(result_file),
            ],
            env=environment,
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        deleted = [r for r in fake.requests if r.method == "DELETE"]
        still_there = fake.instance(PROJECT_ID, instance_id) is not None
    assert not deleted and still_there  # a dry run
    outcome = json.loads(result_file.read_text(encoding="utf-8")) if result.returncode == 0 else {}
    return outcome, result


def test_local_package_runs_a_timer_dry_run_alone_against_the_fake_endpoint(
    local_build: Build, tmp_path: Path
) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    with zipfile.ZipFile(local_build.zip_path) as archive:
        archive.extractall(code_dir)
    outcome, result = _run_dry_run(Path(sys.executable), code_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not [entry for entry in outcome["path"] if "site-packages" in entry]
    for name, file in outcome["modules"].items():
        assert Path(file).is_relative_to(code_dir), name
    assert "modelarts_cleanup.cloud.client" in outcome["ours"]
    assert not [name for name in outcome["ours"] if "testing" in name]
    # A run that names its targets loads none of the rule machinery (cold start); it reads
    # them first (protect tags, and every dry run), so the guard and `instances` are there.
    rule_modules = {"rules", "discovery", "selection", "listing", "stopping"}
    assert {"guard", "instances"} <= {name.rsplit(".", 1)[-1] for name in outcome["ours"]}
    assert not {name.rsplit(".", 1)[-1] for name in outcome["ours"]} & rule_modules
    # ... nor the code of the other envelopes.
    assert not {name.rsplit(".", 1)[-1] for name in outcome["ours"]} & {"apig", "smn"}
    # ... nor, with no topic set, the notification's.
    notifying = {"notify", "digest", "notification"}
    assert not {name.rsplit(".", 1)[-1] for name in outcome["ours"]} & notifying
    report = outcome["report"]
    assert report["status"] == "succeeded"
    assert report["dry_run"] is True
    assert report["request_id"] == "11111111-2222-3333-4444-555555555555"
    assert [r["outcome"] for r in report["results"]] == ["would_delete"]
    assert report["counts"]["would_delete"] == 1
    # The run logged one JSON object per line on stdout, as LTS expects.
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_package_ships_exactly_the_pinned_dependency_versions(cp310_zip: zipfile.ZipFile) -> None:
    pins = {}
    for raw in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "_", name).lower()] = version
    shipped = {}
    for entry in cp310_zip.namelist():
        top = entry.split("/", 1)[0]
        if top.endswith(".dist-info"):
            name, version = top[: -len(".dist-info")].rsplit("-", 1)
            shipped[re.sub(r"[-_.]+", "_", name).lower()] = version
    shipped.pop("modelarts_cleanup", None)
    assert shipped == pins
