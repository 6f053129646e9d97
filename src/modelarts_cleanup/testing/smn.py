"""The local endpoint's SMN: topics, and PublishMessage with its documented limits.

PublishMessage (SMN API reference): `POST /v2/{project_id}/notifications/topics/{topic_urn}/
publish`, body `subject` (at most 512) and `message` (UTF-8, at most 256 KB), answer
`{"request_id", "message_id"}`. The error codes below are the shape of SMN's errors; our notes
do not record SMN's exact codes, so the function never relies on them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from .replies import Reply, error_reply, json_reply

# The API reference's limits, written here from it and not taken from the function, so that a
# wrong limit in the function meets this one: `subject` at most 512 bytes; `message` at most
# "256 KB", read the conservative way (256,000 bytes).
MAX_SUBJECT_BYTES = 512
MAX_MESSAGE_BYTES = 256_000
# urn:smn:{region}:{project_id}:{topic_name} (smn_pd_28000); a topic name is 1 to 255 letters,
# digits, hyphens and underscores, starting with a letter or a digit.
_URN = re.compile(r"urn:smn:[a-z0-9]+(?:-[a-z0-9]+)*:[0-9a-f]{32}:[A-Za-z0-9][A-Za-z0-9_-]{0,254}")

BAD_REQUEST = "SMN.00010001"
TOPIC_NOT_FOUND = ("SMN.00010008", "Topic not found.")


@dataclass(frozen=True)
class PublishedMessage:
    """One message a topic took."""

    topic: str
    subject: str | None
    message: str
    message_id: str


class Topics:
    """The topics that exist and the messages each took (the endpoint holds its lock)."""

    def __init__(self) -> None:
        self._topics: set[str] = set()
        self.published: list[PublishedMessage] = []

    def add(self, urn: str) -> str:
        """Create a topic; returns its URN."""
        if not _URN.fullmatch(urn):
            raise ValueError(f"not an SMN topic URN: {urn!r}")
        self._topics.add(urn)
        return urn

    def publish(self, project_id: str, urn: str, body: bytes, request_id: str) -> Reply:
        """PublishMessage: checks the topic, the body and its limits; records the message."""
        if urn not in self._topics or urn.split(":")[3:4] != [project_id]:
            return error_reply(404, *TOPIC_NOT_FOUND)
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _invalid("the request body is not JSON")
        if not isinstance(document, dict):
            return _invalid("the request body must be an object")
        subject, message = document.get("subject"), document.get("message")
        if not isinstance(message, str) or not message:
            return _invalid("message is required")
        if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
            return _invalid("message is longer than 256 KB")
        if subject is not None:
            if not isinstance(subject, str):
                return _invalid("subject must be a string")
            if len(subject.encode("utf-8")) > MAX_SUBJECT_BYTES:
                return _invalid("subject is longer than 512 bytes")
        message_id = uuid.uuid4().hex
        self.published.append(PublishedMessage(urn, subject, message, message_id))
        return json_reply(200, {"request_id": request_id, "message_id": message_id})


def _invalid(why: str) -> Reply:
    return error_reply(400, BAD_REQUEST, f"Invalid parameter: {why}.")
