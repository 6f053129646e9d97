"""FunctionGraph entry point: `handler.handler`."""

from __future__ import annotations

from typing import Any

from modelarts_cleanup.entry import run_function


def handler(event: object, context: object = None) -> dict[str, Any]:
    """Delete the instances the event names; returns the report (for API Gateway, its answer)."""
    return run_function(event, context)
