"""Publishing one message to an SMN topic (PublishMessage), over the retrying transport.

Not the SMN *trigger* (`events/smn.py`, an event that arrives): this is a message that leaves,
to the people subscribed to a topic. The topic's URN names its region and project, and the
publish goes to that region's SMN endpoint with that project ID.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exceptions import ApiError
from ..vocabulary import is_project_id
from .answers import MALFORMED_RESPONSE
from .transport import Transport

# PublishMessage: "subject ... at most 512 characters", "message ... UTF-8, at most 256 KB".
# Both read as the stricter: bytes, and KB as a thousand.
MAX_SUBJECT_BYTES = 512
MAX_MESSAGE_BYTES = 256 * 1000
# SMN topic names: 1 to 255 letters, digits, hyphens and underscores, starting with a letter or
# a digit (SMN FAQ "What Are the Requirements for an SMN Topic Name?").
_TOPIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# Our own code for a publish that the service answered "not found" without saying more.
TOPIC_NOT_FOUND = "TopicNotFound"


@dataclass(frozen=True)
class TopicUrn:
    """A checked SMN topic URN: `urn:smn:<region>:<project_id>:<name>`."""

    region: str
    project_id: str
    name: str

    def __str__(self) -> str:
        return f"urn:smn:{self.region}:{self.project_id}:{self.name}"


def parse_topic_urn(text: str) -> TopicUrn:
    """The URN's parts; ValueError says which part is wrong."""
    parts = text.strip().split(":")
    if len(parts) != 5 or parts[:2] != ["urn", "smn"]:
        raise ValueError("must be an SMN topic URN: urn:smn:<region>:<project_id>:<topic name>")
    _, _, region, project_id, name = parts
    if not _REGION.fullmatch(region):
        raise ValueError("the URN's region must be lowercase letters, digits and hyphens")
    if not is_project_id(project_id):
        raise ValueError("the URN's project ID must be 32 lowercase hexadecimal characters")
    if not _TOPIC_NAME.fullmatch(name):
        raise ValueError(
            "the URN's topic name must be 1 to 255 letters, digits, hyphens or underscores, "
            "starting with a letter or a digit"
        )
    return TopicUrn(region, project_id, name)


def smn_endpoint_for_region(region: str) -> str:
    """The public SMN endpoint of a Huawei Cloud region."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"invalid region {region!r}")
    return f"https://smn.{region}.myhuaweicloud.com"


@dataclass(frozen=True)
class Published:
    """SMN took the message: its ID, and the request's."""

    message_id: str | None
    request_id: str | None
    attempts: int


class SmnPublisher:
    """Publishes to one topic; every request goes through one retrying transport."""

    def __init__(self, transport: Transport, topic: TopicUrn) -> None:
        self._transport = transport
        self._topic = topic

    @property
    def topic(self) -> TopicUrn:
        """The topic messages go to."""
        return self._topic

    def publish(self, subject: str, message: str, *, deadline: float | None = None) -> Published:
        """Publish one message; ApiError when SMN did not take it (its text names no host)."""
        subject_size, message_size = len(subject.encode()), len(message.encode())
        if subject_size > MAX_SUBJECT_BYTES or "\n" in subject or "\r" in subject:
            raise ValueError(f"subject must be one line of at most {MAX_SUBJECT_BYTES} bytes")
        if message_size > MAX_MESSAGE_BYTES:
            raise ValueError(f"message must be at most {MAX_MESSAGE_BYTES} bytes")
        topic = self._topic
        path = f"/v2/{topic.project_id}/notifications/topics/{topic}/publish"
        try:
            answer = self._transport.send(
                "POST",
                path,
                project_id=topic.project_id,
                json_body={"subject": subject, "message": message},
                deadline=deadline,
            )
        except ApiError as exc:
            raise self._without_host(exc) from None
        reply = answer.reply
        if answer.absent:
            raise ApiError(
                f"POST {path}: HTTP {reply.status}: no such topic",
                http_status=reply.status,
                error_code=TOPIC_NOT_FOUND,
                error_msg="SMN does not know the topic",
                request_id=reply.request_id,
                attempts=answer.attempts,
            )
        body = reply.json_object() or {}
        message_id = body.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            # A 2xx without a message ID does not show that SMN took the message.
            raise ApiError(
                f"POST {path}: HTTP {reply.status} without a message_id",
                http_status=reply.status,
                error_code=MALFORMED_RESPONSE,
                error_msg="a success status without the message_id SMN sends",
                request_id=reply.request_id,
                attempts=answer.attempts,
            )
        request_id = body.get("request_id")
        return Published(
            message_id=message_id,
            request_id=request_id if isinstance(request_id, str) else reply.request_id,
            attempts=answer.attempts,
        )

    def _without_host(self, exc: ApiError) -> ApiError:
        """The error with the endpoint's URL, host and port read as "the SMN endpoint"."""
        base = self._transport.base_url
        parts = urlsplit(base)
        names = [name for name in (base, parts.netloc, parts.hostname) if name]

        def clean(text: str | None) -> str | None:
            if text is None:
                return None
            for name in names:
                text = text.replace(name, "the SMN endpoint")
            return text

        # A copy keeps the kind (a deadline's, an answer lost) that says what happened.
        cleaned = copy.copy(exc)
        cleaned.args = (clean(str(exc)) or "",)
        cleaned.error_msg = clean(exc.error_msg)
        return cleaned
