"""What the local endpoint can answer: the reply type, and the documented codes and messages.

Codes and messages from OTC `api-ref/source/appendix/error_codes.rst` and the APIG error list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelarts_cleanup.vocabulary import IN_TARGET_STATE, STOP_FIRST

PARAMETER_ERROR = ("ModelArts.0104", "Parameter error.")
NO_SORTING = ("ModelArts.6303", "The field does not support sorting.")
STOP_BEFORE_DELETE = (STOP_FIRST, "Please stop the instance before deleting.")
ALREADY_RUNNING = ("ModelArts.6305", "The instance is already running.")
# The operation is refused while another one is under way: a DELETE of a notebook being deleted.
BUSY_WITH_ANOTHER = (
    IN_TARGET_STATE,
    "The operation is not allowed because another operation is being performed on the instance "
    "or the instance is in the target state.",
)
ALREADY_STOPPED = ("ModelArts.6307", "The instance has already been stopped.")
STOPPING = ("ModelArts.6308", "The instance is stopping.")
WORKSPACE_GONE = ("ModelArts.0102", "The workspace does not exist.")
DE_NOT_FOUND = ("ModelArts.6309", "The instance does not exist.")
NOTEBOOK_NOT_FOUND = "ModelArts.6404"
NOT_AUTHORISED = ("ModelArts.0108", "Insufficient permissions: the policy does not allow this.")
PROJECT_MISMATCH = ("ModelArts.0210", "The project ID in the URL does not match the token.")
# Not documented: how the local endpoint answers a project of another region (a misrouted
# request must fail loudly here, never read as "not found").
FOREIGN_PROJECT = ("ModelArts.0210", "The project does not belong to this region.")
BUSY = ("ModelArts.6101", "The system is busy. Please try again later.")
NO_SUCH_API = ("APIGW.0101", "The API does not exist or has not been published in the environment.")
BAD_SIGNATURE = "APIGW.0301"
TOO_MANY_TAGS = ("ModelArts.0104", "A resource can have at most 20 tags.")
TIMED_OUT = ("ModelArts.6100", "Request timed out.")
INTERNAL_ERROR = ("ModelArts.6102", "Internal server error.")


@dataclass(frozen=True)
class Reply:
    """One answer: status, body, its content type and extra headers.

    The headers always go out at once. The body follows after `body_delay` seconds in one piece
    (a stall after the headers) or, with `drip`, a byte at a time spread over `body_delay`.
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    body_delay: float = 0.0
    drip: bool = False

    def paced(self) -> list[tuple[float, bytes]]:
        """The body as it is sent: (seconds to wait first, piece) pairs, in order."""
        if not self.body:
            return []
        if self.body_delay <= 0:
            return [(0.0, self.body)]
        if not self.drip:
            return [(self.body_delay, self.body)]
        pause = self.body_delay / len(self.body)
        return [(pause, self.body[i : i + 1]) for i in range(len(self.body))]


def json_reply(status: int, document: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A JSON answer."""
    return Reply(status, json.dumps(document).encode("utf-8"), headers=headers)


def encoded_reply(status: int, fields: str, key: str, items: list[bytes]) -> Reply:
    """A JSON object of already-encoded `fields` ("..." without braces) and `key`: the items."""
    body = b"{" + fields.encode("utf-8") + b', "' + key.encode("utf-8") + b'": ['
    return Reply(status, body + b", ".join(items) + b"]}")


def error_reply(
    status: int,
    code: str,
    msg: str,
    *,
    msg_key: str = "error_msg",
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """A ModelArts error body; the old API's own examples spell the message `error_message`."""
    return json_reply(status, {"error_code": code, msg_key: msg}, headers)


def gateway_error(status: int, code: str, msg: str, request_id: str) -> Reply:
    """An API gateway error: it carries the request ID in the body as well."""
    return json_reply(status, {"error_code": code, "error_msg": msg, "request_id": request_id})
