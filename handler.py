"""FunctionGraph entry point: `handler.handler`."""

from __future__ import annotations

from typing import Any

from modelarts_cleanup.entry import run_function


def handler(event: object, context: object = None) -> dict[str, Any]:
    """Delete the instances the event names; returns the report (for API Gateway, its answer).

    Raises for an invalid payload or configuration, and for a timer or SMN run whose status is
    in MODELARTS_CLEANUP_FAIL_ON (after its report is logged), so that FunctionGraph counts it.
    """
    return run_function(event, context)
