"""Helpers the test modules share: credentials, local-endpoint settings, context, fake clock.

Modules that must recognise their own secrets (the leak tests) keep their own credentials and
pass them in; everything else uses the defaults here. The fixtures built on these are in
`conftest.py`.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from collections.abc import Collection, Mapping
from typing import Any

import hypothesis

from modelarts_cleanup.testing import FakeModelArts

AK, SK = "TESTACCESSKEY", "test-secret-key-never-logged"


def local_endpoint(**options: Any) -> FakeModelArts:
    """The local ModelArts endpoint (not started yet), accepting the AK/SK above."""
    return FakeModelArts(access_key=AK, secret_key=SK, **options)


def endpoint_environ(
    url: str,
    *,
    access_key: str = AK,
    secret_key: str = SK,
    allow_http: bool = True,
    **extra: str,
) -> dict[str, str]:
    """Settings that point the function at `url` with an AK/SK; `extra` adds or overrides.

    `allow_http=False` leaves MODELARTS_CLEANUP_ALLOW_HTTP out, as a real deployment would.
    """
    environ = {"MODELARTS_CLEANUP_ENDPOINT": url}
    if allow_http:
        environ["MODELARTS_CLEANUP_ALLOW_HTTP"] = "true"
    environ["HUAWEICLOUD_SDK_AK"] = access_key
    environ["HUAWEICLOUD_SDK_SK"] = secret_key
    return {**environ, **extra}


def invoke(
    fake: FakeModelArts, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m modelarts_cleanup invoke` as a user runs it, pointed at `fake` (one attempt)."""
    environ = endpoint_environ(fake.url, **{"MODELARTS_CLEANUP_MAX_ATTEMPTS": "1", **env})
    return invoke_with(environ, *args, stdin=stdin)


def invoke_with(
    environ: Mapping[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m modelarts_cleanup invoke` with exactly these settings (none inherited)."""
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_"))
    }
    child_env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "modelarts_cleanup", "invoke", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env,
        timeout=60,
        check=False,
    )


def whole_runs(max_examples: int) -> hypothesis.settings:
    """Hypothesis settings for properties over whole runs: the same examples every time, no
    saved examples, and no time limit on one (a run of a hundred targets takes a while)."""
    return hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.data_too_large,
        ],
    )


def no_sleep(_: float) -> None:
    """Retries in tests need no real back-off."""


class FunctionGraphContext:
    """The methods FunctionGraph's Python runtime gives a handler; any of them can be left out.

    `missing` names getters this context does not have (an older runtime, a partial fake):
    reading one raises AttributeError, as on an object that never had it.
    """

    GETTERS = frozenset(
        {
            "getRequestID",
            "getRemainingTimeInMilliSeconds",
            "getUserData",
            "getSecurityAccessKey",
            "getSecuritySecretKey",
            "getSecurityToken",
            "getToken",
        }
    )
    missing: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        request_id: str = "fg-request-1",
        remaining_ms: int = 60_000,
        user_data: Mapping[str, str] | None = None,
        agency_keys: tuple[str, str, str] = ("", "", ""),
        token: str = "",
        missing: Collection[str] = (),
    ) -> None:
        unknown = set(missing) - self.GETTERS
        if unknown:
            raise ValueError(f"not a context getter: {sorted(unknown)}")
        self.request_id = request_id
        self.remaining_ms = remaining_ms
        self.user_data = dict(user_data or {})
        self.agency_keys = agency_keys
        self.token = token
        self.missing = frozenset(missing)

    def __getattribute__(self, name: str) -> Any:
        if name in object.__getattribute__(self, "missing"):
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def getRequestID(self) -> str:
        return self.request_id

    def getRemainingTimeInMilliSeconds(self) -> int:
        return self.remaining_ms

    def getUserData(self, key: str) -> str:
        return self.user_data.get(key, "")

    def getSecurityAccessKey(self) -> str:
        return self.agency_keys[0]

    def getSecuritySecretKey(self) -> str:
        return self.agency_keys[1]

    def getSecurityToken(self) -> str:
        return self.agency_keys[2]

    def getToken(self) -> str:
        return self.token


class FakeTime:
    """A monotonic clock that moves only when slept on or advanced; sleeps are recorded, not waited.

    Calling it (or `clock`) reads the time. `oversleep` makes every sleep overrun, as real ones
    can; `whole_seconds` rounds every sleep up to whole seconds before the clock moves. Safe to
    share between the threads of a run and of the local endpoint.
    """

    def __init__(
        self, start: float = 1000.0, *, oversleep: float = 0.0, whole_seconds: bool = False
    ) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.oversleep = oversleep
        self.whole_seconds = whole_seconds
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def clock(self) -> float:
        return self()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            moved = math.ceil(seconds) if self.whole_seconds else seconds
            self.now += moved + self.oversleep

    def advance(self, seconds: float) -> None:
        """Let time pass without anyone sleeping."""
        with self._lock:
            self.now += seconds
