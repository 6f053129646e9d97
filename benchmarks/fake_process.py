"""The local endpoint in a process of its own, so its work never shares a GIL with the client's.

The parent drives it over JSON lines on stdin/stdout; `python -m benchmarks.fake_process` is the
child side. Measuring the client's CPU with `time.process_time()` is only honest this way, and a
2-core machine then gives one core to each side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from modelarts_cleanup.testing import FakeModelArts, LocalCloud, User

ROOT = Path(__file__).resolve().parents[1]
PROJECT_ID = "5c57f2b3a8072a045c57f2b3a8072a04"
ACCESS_KEY = "bench-ak"
SECRET_KEY = "bench-sk-not-a-secret"


@dataclass(frozen=True)
class Served:
    """What the endpoint did since the previous look."""

    statuses: dict[int, int]  # HTTP status -> answers (0: connection reset)
    remaining: int  # instances still present
    cpu_seconds: float  # the endpoint process's CPU time

    @property
    def requests(self) -> int:
        """Requests answered."""
        return sum(self.statuses.values())


class FakeProcess:
    """A `FakeModelArts` in a child process; one endpoint at a time, restartable."""

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_process"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._ask({"op": "ping"})

    def start(
        self, *, latency: float, rate_limit: float | None = None, delete_seconds: float = 0.0
    ) -> str:
        """(Re)start the endpoint; returns its base URL. An accepted deletion takes
        `delete_seconds` (DELETING until then)."""
        command = {
            "op": "start",
            "latency": latency,
            "rate_limit": rate_limit,
            "delete_seconds": delete_seconds,
        }
        return str(self._ask(command)["url"])

    def start_cloud(
        self, regions: dict[str, list[str]], latencies: dict[str, float]
    ) -> dict[str, str]:
        """(Re)start as several regions (each its own endpoint and latency) and IAM; returns
        the settings that point a function at them."""
        command = {"op": "start_cloud", "regions": regions, "latencies": latencies}
        return {str(k): str(v) for k, v in self._ask(command)["environ"].items()}

    def seed_region(self, region: str, project_id: str, count: int) -> list[str]:
        """Create `count` STOPPED notebooks of `project_id` in `region`'s endpoint."""
        command = {"op": "seed_region", "region": region, "project": project_id, "count": count}
        return [str(i) for i in self._ask(command)["ids"]]

    def seed(self, count: int) -> list[str]:
        """Create `count` STOPPED notebook instances; returns their IDs."""
        return [str(i) for i in self._ask({"op": "seed", "count": count})["ids"]]

    def seed_fleet(self, count: int, workspaces: int) -> list[tuple[str, str, int]]:
        """A fleet of `count` notebooks of several users over `workspaces` workspaces (the
        default one included); returns its lists: (workspace, feature, notebooks in it)."""
        reply = self._ask({"op": "seed_fleet", "count": count, "workspaces": workspaces})
        return [(str(w), str(f), int(n)) for w, f, n in reply["lists"]]

    def served(self) -> Served:
        """Answers and CPU since the previous call (the first call counts from the start)."""
        reply = self._ask({"op": "served"})
        statuses = {int(k): int(v) for k, v in reply["statuses"].items()}
        return Served(statuses, int(reply["remaining"]), float(reply["cpu_seconds"]))

    def close(self) -> None:
        """Stop the endpoint and its process."""
        if self._child.poll() is None:
            self._ask({"op": "quit"})
        for pipe in (self._child.stdin, self._child.stdout):
            if pipe is not None:
                pipe.close()
        self._child.wait(timeout=10)

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        self._child.stdin.write(json.dumps(command) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the endpoint process died (exit status {self._child.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the endpoint process refused {command['op']}: {reply['error']}")
        return reply


class _Endpoint:
    """The child side: one FakeModelArts and the bookkeeping the parent asks for."""

    def __init__(self) -> None:
        self._fake: FakeModelArts | None = None
        self._cloud: LocalCloud | None = None
        self._cpu_mark = time.process_time()

    def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "ping":
            return {}
        if op == "start":
            self.stop()
            self._fake = FakeModelArts(
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                latency=float(command["latency"]),
                rate_limit=command["rate_limit"],
                delete_seconds=float(command.get("delete_seconds", 0.0)),
            ).start()
            return {"url": self._fake.url}
        if op == "start_cloud":
            self.stop()
            latencies = {str(r): float(s) for r, s in command["latencies"].items()}
            self._cloud = LocalCloud(
                command["regions"],
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                latency=latencies,
            ).start()
            return {"environ": self._cloud.environ()}
        if op == "seed_region":
            if self._cloud is None:
                return {"error": "no regions started"}
            region, project = self._cloud[command["region"]], command["project"]
            return {"ids": [region.add_instance(project) for _ in range(int(command["count"]))]}
        fake = self._fake
        if fake is None:
            return {"error": "no endpoint started"}
        if op == "seed":
            return {"ids": [fake.add_instance(PROJECT_ID) for _ in range(int(command["count"]))]}
        if op == "seed_fleet":
            names = ["0", *(f"{n:032x}" for n in range(1, int(command["workspaces"])))]
            owners = [User(f"{n:032x}", f"user-{n}") for n in range(1, 6)]
            bodies = fake.seed_fleet(
                PROJECT_ID, int(command["count"]), workspaces=names, owners=owners
            )
            per_list = Counter((b["workspace_id"], b["feature"]) for b in bodies)
            lists = [[w, f, per_list[(w, f)]] for w in names for f in ("NOTEBOOK", "DEFAULT")]
            return {"lists": lists}
        if op == "served":
            counted = Counter(0 if r.status is None else r.status for r in fake.requests)
            fake.clear_requests()
            now = time.process_time()
            cpu, self._cpu_mark = now - self._cpu_mark, now
            return {
                "statuses": {str(k): v for k, v in counted.items()},
                "remaining": len(fake.instance_ids()),
                "cpu_seconds": cpu,
            }
        return {"error": f"unknown op {op!r}"}

    def stop(self) -> None:
        if self._fake is not None:
            self._fake.stop()
            self._fake = None
        if self._cloud is not None:
            self._cloud.stop()
            self._cloud = None


def main() -> None:
    """Serve commands from stdin until `quit` or EOF."""
    endpoint = _Endpoint()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                print(json.dumps({}), flush=True)
                break
            print(json.dumps(endpoint.handle(command)), flush=True)
    finally:
        endpoint.stop()


if __name__ == "__main__":
    main()
