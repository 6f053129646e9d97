"""Helpers the test modules share: credentials, local-endpoint settings, context, fake clock,
and API Gateway and SMN events in their documented shapes.

Modules that must recognise their own secrets (the leak tests) keep their own credentials and
pass them in; everything else uses the defaults here. The fixtures built on these are in
`conftest.py`.
"""

from __future__ import annotations

import base64
import json
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
    Deletions are not read again afterwards (MODELARTS_CLEANUP_CONFIRM_SECONDS=0) unless
    `extra` says so: most tests count the requests a run sends for what they test, and the
    tests of confirmation (test_confirmation.py) turn it on.
    """
    environ = {"MODELARTS_CLEANUP_ENDPOINT": url, "MODELARTS_CLEANUP_CONFIRM_SECONDS": "0"}
    if allow_http:
        environ["MODELARTS_CLEANUP_ALLOW_HTTP"] = "true"
    environ["HUAWEICLOUD_SDK_AK"] = access_key
    environ["HUAWEICLOUD_SDK_SK"] = secret_key
    return {**environ, **extra}


def run_command(
    *args: str, stdin: str | None = None, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m modelarts_cleanup ARGS` in a child process, as a user runs it.

    The settings are `env`; the test run's own MODELARTS_/HUAWEICLOUD_ variables are left out.
    Without `stdin`, standard input is empty (not the test run's own).
    """
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_"))
    }
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "modelarts_cleanup", *args],
        input="" if stdin is None else stdin,
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
    return run_command("invoke", *args, stdin=stdin, env=environ)


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


def apig_event(
    body: bytes | str, *, method: str = "POST", base64_encoded: bool = True, **extra: Any
) -> dict[str, Any]:
    """An API Gateway event (the shape of the developer guide's example) carrying `body`.

    With `base64_encoded` the body is Base64-encoded, as APIG does by default; otherwise it is
    passed as text. `extra` adds or replaces top-level keys.
    """
    if base64_encoded:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        text = base64.b64encode(raw).decode("ascii")
    else:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    return {
        "body": text,
        "requestContext": {
            "apiId": "bc1dcffd-aa35-474d-897c-d53425a4c08e",
            "requestId": "11cdcdcf33949dc6d722640a13091c77",
            "stage": "RELEASE",
        },
        "queryStringParameters": {},
        "httpMethod": method,
        "pathParameters": {},
        "headers": {
            "content-type": "application/json",
            "host": "0123456789abcdef.apic.cn-north-4.huaweicloudapis.com",
            "x-forwarded-proto": "https",
        },
        "path": "/modelarts-cleanup",
        "isBase64Encoded": base64_encoded,
        **extra,
    }


def smn_event(*messages: object) -> dict[str, Any]:
    """An SMN event (the shape of the developer guide's example), one record per message."""
    topic = "urn:smn:cn-north-4:0162c0f220284698b77a3d264376343a:modelarts-cleanup"
    return {
        "record": [
            {
                "event_version": "1.0",
                "smn": {
                    "topic_urn": topic,
                    "timestamp": "2026-11-26T02:00:00Z",
                    "message_attributes": None,
                    "message": message,
                    "type": "notification",
                    "message_id": f"{index:032x}",
                    "subject": "modelarts-cleanup",
                },
                "event_subscription_urn": "urn:fss:cn-north-4:0162c0f220284698b77a3d264376343a"
                ":function:default:modelarts-cleanup:latest",
                "event_source": "smn",
            }
            for index, message in enumerate(messages)
        ],
        "functionname": "modelarts-cleanup",
        "requestId": "7c307f6a-cf68-4e65-8be0-4c77405a1b2c",
        "timestamp": "Wed Nov 26 2026 10:00:00 GMT+0800 (CST)",
    }


def answer_body(answer: Mapping[str, Any]) -> Any:
    """The JSON document in an API Gateway answer's body."""
    assert answer["isBase64Encoded"] is False
    return json.loads(answer["body"])
