"""Cold start: a fresh interpreter that imports the code and deletes one instance, then exits.

Both kinds start from bytecode caches (the discarded first start writes ours). Peak RSS is the
child's own `VmHWM`, read from /proc/self/status as its last act. Not `ru_maxrss` (from
`os.wait4` or `RUSAGE_CHILDREN`): Linux carries the high-water mark of the memory a process had
*before* exec into it, so a child forked (or vforked) from this large benchmark process would
report the parent's RSS instead of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.contenders import event_for, function_environment
from benchmarks.fake_process import ACCESS_KEY, PROJECT_ID, ROOT, SECRET_KEY

# The least a process on our two runtime dependencies does: see benchmarks/floor.py.
FLOOR = ROOT / "benchmarks" / "floor.py"

Starter = Literal["ours", "floor", "sdk", "bare"]

# The handler as FunctionGraph loads it: import `handler`, call it with the event and no context.
_OURS = """\
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
report = handler.handler(json.loads(sys.argv[2]), None)
ok = report["counts"]["deleted"] == 1
"""

# The seed's way, as the SDK's own examples write it.
_SDK = """\
import sys
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkmodelarts.v1 import DeleteNotebookRequest, ModelArtsClient
url, ak, sk, project_id, instance_id = sys.argv[1:6]
client = (ModelArtsClient.new_builder()
          .with_credentials(BasicCredentials(ak, sk, project_id))
          .with_endpoints([url])
          .build())
response = client.delete_notebook(DeleteNotebookRequest(id=instance_id))
ok = response.status_code == 200
"""

# benchmarks/floor.py, run as its own script does.
_FLOOR = """\
import sys
sys.path.insert(0, sys.argv[1])
from floor import FloorSettings, delete
ok = delete(FloorSettings(), sys.argv[2], sys.argv[3]) == 200
"""

_BARE = "ok = True\n"

# Appended to every child: its own peak RSS on stderr, then the verdict as the exit status.
_REPORT = """\
import sys as _sys
with open("/proc/self/status") as _status:
    _peak = [line.split()[1] for line in _status if line.startswith("VmHWM:")][0]
print("VmHWM", _peak, file=_sys.stderr, flush=True)
_sys.exit(0 if ok else 3)
"""


@dataclass(frozen=True)
class Start:
    """One child, spawn to exit."""

    wall: float  # seconds
    peak_rss_kib: int  # VmHWM


def start_once(starter: Starter, url: str, instance_id: str) -> Start:
    """Spawn one fresh interpreter that deletes `instance_id` (or does nothing: `bare`)."""
    env = dict(os.environ)
    # Both sides run from bytecode caches, as an installed package does (pip compiles the SDK's
    # at install time); otherwise ours would be compiled from source on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if starter == "ours":
        env.update(function_environment(url, concurrency=8))
        event = json.dumps(event_for([instance_id]))
        argv = [sys.executable, "-c", _OURS + _REPORT, str(ROOT), event]
    elif starter == "floor":
        env.update(FLOOR_ENDPOINT=url, FLOOR_ACCESS_KEY=ACCESS_KEY, FLOOR_SECRET_KEY=SECRET_KEY)
        argv = [sys.executable, "-c", _FLOOR + _REPORT, str(FLOOR.parent), PROJECT_ID, instance_id]
    elif starter == "sdk":
        code = _SDK + _REPORT
        argv = [sys.executable, "-c", code, url, ACCESS_KEY, SECRET_KEY, PROJECT_ID, instance_id]
    else:
        argv = [sys.executable, "-c", _BARE + _REPORT]
    return _spawn(starter, argv, env)


def start_unpacked(
    python: Path, code_dir: Path, starter: Literal["ours", "floor"], url: str, instance_id: str
) -> Start:
    """One fresh `python` that runs ours or the floor from the unpacked package in `code_dir`.

    As FunctionGraph runs it: nothing on the path but the standard library and `code_dir` (-I -S),
    and no bytecode written (-B; the directory is read-only to FunctionGraph's runtime, and a
    read-only mode would not stop root): what is not shipped compiled is compiled every time.
    """
    env = {"PATH": os.defpath}
    if starter == "ours":
        env.update(function_environment(url, concurrency=8))
        event = json.dumps(event_for([instance_id]))
        args = [_OURS + _REPORT, str(code_dir), event]
    else:
        env.update(FLOOR_ENDPOINT=url, FLOOR_ACCESS_KEY=ACCESS_KEY, FLOOR_SECRET_KEY=SECRET_KEY)
        args = [_FLOOR + _REPORT, str(code_dir), PROJECT_ID, instance_id]
    return _spawn(
        f"{starter} from {code_dir.name}", [str(python), "-I", "-S", "-B", "-c", *args], env
    )


def _spawn(who: str, argv: list[str], env: dict[str, str]) -> Start:
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        returncode = subprocess.call(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        wall = time.perf_counter() - started
        errors.seek(0)
        text = errors.read().decode(errors="replace")
    peaks = [line.split()[1] for line in text.splitlines() if line.startswith("VmHWM ")]
    if returncode != 0 or not peaks:
        raise RuntimeError(f"{who} child exited {returncode}:\n{text[-2000:]}")
    return Start(wall, int(peaks[-1]))
