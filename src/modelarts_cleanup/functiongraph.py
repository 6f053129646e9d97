"""The FunctionGraph context, read in one place: whatever is missing or odd reads as absent.

The runtime passes an object with camelCase getters (`getRequestID()`, `getUserData(key)`, ...).
Locally there is none, tests pass partial fakes, and a getter may return something that is not a
string; every read here tolerates all of that, so no other module probes the context itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionContext:
    """Typed, forgiving access to the context object FunctionGraph hands the handler."""

    raw: object | None

    def _text(self, method: str) -> str:
        getter = getattr(self.raw, method, None)
        if not callable(getter):
            return ""
        value = getter()
        return value.strip() if isinstance(value, str) else ""

    def request_id(self) -> str | None:
        """The invocation's request ID."""
        return self._text("getRequestID") or None

    def project_id(self) -> str | None:
        """The project the function runs in (`getProjectID`), when the context says."""
        return self._text("getProjectID") or None

    def remaining_seconds(self) -> float | None:
        """Seconds left before the platform ends the invocation, when it says so."""
        getter = getattr(self.raw, "getRemainingTimeInMilliSeconds", None)
        if not callable(getter):
            return None
        value = getter()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            return None
        return float(value) / 1000

    def user_data(self, name: str) -> str | None:
        """A user variable (environment or encrypted) as `getUserData` gives it."""
        getter = getattr(self.raw, "getUserData", None)
        if not callable(getter):
            return None
        value = getter(name)
        return value if isinstance(value, str) and value else None

    def agency_keys(self) -> tuple[str, str, str]:
        """The agency's temporary (AK, SK, security token); empty strings when there is none."""
        return (
            self._text("getSecurityAccessKey"),
            self._text("getSecuritySecretKey"),
            self._text("getSecurityToken"),
        )

    def token(self) -> str:
        """The IAM token the context carries, or an empty string."""
        return self._text("getToken")
