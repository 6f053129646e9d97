"""API Gateway: the payload in a request's body, and the answer APIG expects back. Pure.

Imported only when an API Gateway event arrives. The function must answer
`{"statusCode", "headers", "body", "isBase64Encoded"}`: anything else, a raised exception
included, makes APIG answer its caller a bare 500. The function cannot see how the API is
protected (IAM or App authentication, never None), so an answer never carries a setting, a
credential or an exception's text: a report, or an error code, a short message and the
payload's problems, which never quote the input.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError, MethodNotAllowed, PayloadError, PayloadTooLarge
from ..vocabulary import RunStatus
from .payload import MAX_PAYLOAD_BYTES, Payload, decode_json, keys_beside, parse_payload
from .problems import printable

# The body's limit is the payload's, decoded; its Base64 text is 4/3 as long.
MAX_BODY_BYTES = MAX_PAYLOAD_BYTES
_MAX_BASE64_CHARS = -(-MAX_BODY_BYTES // 3) * 4

# A run's status as an HTTP status, so that `curl --fail` or a CI step can act on it.
STATUS_CODES: dict[RunStatus, int] = {
    RunStatus.SUCCEEDED: 200,
    RunStatus.PARTIAL: 207,  # some done, some not: the report says which
    RunStatus.FAILED: 502,  # ModelArts accepted none of the deletions
    RunStatus.REFUSED: 409,  # over MODELARTS_CLEANUP_MAX_DELETIONS: nothing was sent
}

# Requests that ran no cleanup: (exception, status, error, message). First match wins.
ERRORS: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (MethodNotAllowed, 405, "method_not_allowed", "only POST runs a cleanup; nothing was sent"),
    (PayloadTooLarge, 413, "payload_too_large", "the body is too large; nothing was sent"),
    (PayloadError, 400, "invalid_payload", "the payload is not valid; nothing was sent"),
    (
        ConfigurationError,
        500,
        "configuration_error",
        "the function is not configured correctly; nothing was sent; its log says why",
    ),
    (Exception, 500, "internal_error", "the function failed unexpectedly; its log says where"),
)

_ENDPOINT = "the ModelArts endpoint"


def request_payload(event: Mapping[str, Any]) -> Payload:
    """The payload in a POST request's body; any other method carries none."""
    method = event["httpMethod"]
    if method != "POST":
        raise MethodNotAllowed([f"httpMethod: only POST runs a cleanup, not {printable(method)!r}"])
    problems = keys_beside(event, "the body")
    query = event.get("queryStringParameters")
    if query is not None and not isinstance(query, Mapping):
        problems.append("queryStringParameters: must be an object")
    elif query:
        # `?dry_run=true` must not be ignored in silence: it is refused, as any unknown key is.
        problems.extend(
            f"queryStringParameters.{printable(str(key))}: not accepted: "
            "the whole payload, dry_run included, goes in the body"
            for key in query
        )
    encoded = event.get("isBase64Encoded")
    if not isinstance(encoded, bool):
        problems.append("isBase64Encoded: must be true or false: it says how the body is encoded")
    body = event.get("body")
    if not isinstance(body, str):
        problems.append("body: must be a string holding the payload as JSON")
    if problems or not isinstance(body, str) or not isinstance(encoded, bool):
        raise PayloadError(problems)
    return parse_payload(decode_json(_body(body, base64_encoded=encoded), where="body"))


def _body(body: str, *, base64_encoded: bool) -> bytes | str:
    """The body's JSON text; its size is checked before anything decodes it."""
    if not base64_encoded:
        _check_size(len(body.encode("utf-8", "surrogatepass")), "bytes")
        return body
    if len(body) > _MAX_BASE64_CHARS:
        _check_size(len(body) * 3 // 4, "bytes once decoded")
    try:
        text = base64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise PayloadError(["body: not valid Base64, though isBase64Encoded is true"]) from None
    _check_size(len(text), "bytes")
    return text


def _check_size(size: int, unit: str) -> None:
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge([f"body: {size} {unit}, more than the {MAX_BODY_BYTES} allowed"])


def report_answer(report: Mapping[str, Any], *, endpoint: str | Sequence[str]) -> dict[str, Any]:
    """A run's answer: its report as the JSON body, with the status code its status calls for.

    Errors that name a ModelArts endpoint (`endpoint`, a setting; one per region, or IAM's)
    name it generically here.
    """
    return _answer(STATUS_CODES[RunStatus(report["status"])], _without_endpoint(report, endpoint))


def error_answer(error: BaseException, request_id: str) -> dict[str, Any]:
    """The answer to a request that ran no cleanup, or failed unexpectedly."""
    status, code, message = next(
        (status, code, message) for kind, status, code, message in ERRORS if isinstance(error, kind)
    )
    body: dict[str, Any] = {"error": code, "message": message, "request_id": request_id}
    if isinstance(error, PayloadError):
        body["problems"] = list(error.problems)
    headers = {"Allow": "POST"} if status == 405 else {}
    return _answer(status, body, headers)


def _answer(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _without_endpoint(report: Mapping[str, Any], endpoint: str | Sequence[str]) -> dict[str, Any]:
    names: list[str] = []
    for url in [endpoint] if isinstance(endpoint, str) else endpoint:
        parts = urlsplit(url)
        # Longest first: the URL holds the host and port, which hold the host name.
        names.extend(name for name in (url, parts.netloc, parts.hostname) if name)
    names.sort(key=len, reverse=True)

    def cleaned(entry: Mapping[str, Any]) -> dict[str, Any]:
        message = entry.get("error_msg")
        if not isinstance(message, str):
            return dict(entry)
        for name in names:
            message = message.replace(name, _ENDPOINT)
        return {**entry, "error_msg": message}

    return {
        **report,
        "results": [cleaned(r) for r in report["results"]],
        "selectors": [cleaned(s) for s in report["selectors"]],
    }
