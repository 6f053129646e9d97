"""Where the settings' values come from: the process environment, then FunctionGraph's user data
(`RUNTIME_USERDATA`, or the context's `getUserData`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from .exceptions import ConfigurationError
from .functiongraph import FunctionContext
from .settings import ENV_NAMES, PREFIX


def function_environment(
    context: object | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the function sees: the environment, then FunctionGraph's user data."""
    merged = dict(os.environ if environ is None else environ)
    user_data = _runtime_user_data(merged.get("RUNTIME_USERDATA"))
    function = FunctionContext(context)
    # Every MODELARTS_CLEANUP_ name in the user data, settings or not: load_settings refuses
    # those that are no setting rather than let a typo pass unseen.
    names = ENV_NAMES | {n for n in user_data if n.startswith(PREFIX)}
    for name in sorted(names):
        if name in merged:
            continue
        if name in user_data:
            merged[name] = user_data[name]
        elif (value := function.user_data(name)) is not None:
            merged[name] = value
    return merged


def _runtime_user_data(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigurationError("RUNTIME_USERDATA: not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError("RUNTIME_USERDATA: must be a JSON object")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, (str, int, float, bool))}
