"""`make demo`: the real function over real HTTP, AK/SK signed, against the local endpoint."""

from __future__ import annotations

import sys
from typing import TextIO

from .entry import run_function
from .fake import FakeModelArts, Fault
from .report import render_table

PROJECT = "ed43aef64dff4e5c81cb84b71adcb3fd"
GONE = "6fa459ea-ee8a-3ca4-894e-db77e160355e"  # the seed page's example: never created here
DEMO_AK, DEMO_SK = "DEMOACCESSKEY0000001", "demo-secret-key-never-logged"


def run_demo(out: TextIO | None = None) -> int:
    """Seed the local endpoint, run the function on it, print logs and a table; 0 if as expected."""
    out = sys.stdout if out is None else out
    with FakeModelArts(access_key=DEMO_AK, secret_key=DEMO_SK) as fake:
        expected: dict[str, str] = {}
        for name in ("idle-training-box", "tmp-experiment-7", "old-course-notebook"):
            expected[fake.add_instance(PROJECT, name=name, status="STOPPED")] = "deleted"
        flaky = fake.add_instance(PROJECT, name="flaky-notebook", status="STOPPED")
        fake.add_fault(
            Fault("status", status=503, error_code="ModelArts.6102", times=2), instance_id=flaky
        )
        expected[flaky] = "deleted"
        locked = fake.add_instance(PROJECT, name="someone-elses-notebook", status="STOPPED")
        fake.add_fault(
            Fault(
                "status",
                status=403,
                error_code="ModelArts.0108",
                error_msg="You are not authorized to perform this operation.",
                times=None,
            ),
            instance_id=locked,
        )
        expected[locked] = "failed"
        expected[GONE] = "already_absent"

        event = {"targets": [{"project_id": PROJECT, "instance_id": i} for i in expected]}
        environ = {
            "MODELARTS_CLEANUP_ENDPOINT": fake.url,
            "MODELARTS_CLEANUP_ALLOW_HTTP": "true",
            "HUAWEICLOUD_SDK_AK": DEMO_AK,
            "HUAWEICLOUD_SDK_SK": DEMO_SK,
        }
        print(f"# local ModelArts endpoint at {fake.url}; JSON log lines follow\n", file=out)
        report = run_function(event, None, environ=environ, log_stream=out)
        served = fake.requests
        remaining = {i for _, i in fake.instance_ids(PROJECT)}

    print(file=out)
    columns = ("instance_id", "outcome", "http_status", "attempts", "error_code", "duration_ms")
    print(render_table(report["results"], columns), file=out)
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
    print(f"\nrun {report['status']} in {report['duration_ms']} ms: {counts}", file=out)
    signed = sum(1 for r in served if r.headers.get("Authorization", "").startswith("SDK-HMAC"))
    print(f"endpoint served {len(served)} requests, {signed} of them AK/SK signed", file=out)

    got = {r["instance_id"]: r["outcome"] for r in report["results"]}
    still_there = {i for i, o in expected.items() if o == "deleted"} & remaining
    if got != expected or still_there:
        print(
            f"demo FAILED: expected {expected}, got {got}; still present: {still_there}", file=out
        )
        return 1
    print("demo OK: every outcome is the expected one", file=out)
    return 0
