"""Test doubles: the local ModelArts-compatible endpoint and the demo that runs against it.

Used by `make demo`, the end-to-end tests and the benchmarks; never part of the deployed package
(`deploy/package.py` leaves this subpackage out, and nothing on the handler's path imports it).
"""

from __future__ import annotations

from .faults import Fault, FaultKind
from .iam import FakeIam
from .recording import REDACTED, RecordedRequest
from .regions import LocalCloud
from .server import FakeModelArts
from .state import CALLER, DEFAULT_WORKSPACE, DEVENVIRON, NOTEBOOK, User

__all__ = [
    "CALLER",
    "DEFAULT_WORKSPACE",
    "DEVENVIRON",
    "NOTEBOOK",
    "REDACTED",
    "FakeIam",
    "FakeModelArts",
    "Fault",
    "FaultKind",
    "LocalCloud",
    "RecordedRequest",
    "User",
]
