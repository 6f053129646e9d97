"""SMN: each record's message is a payload; the records of one event make one run. Pure.

Imported only when an SMN event arrives. Every message is validated before anything is merged:
one message that is not a valid payload refuses the whole event. Merged, targets are
deduplicated (first mention wins), selectors are kept in order, message by message, so a result
names its rule `selectors[i]` by position in the merged list, and a dry run asked for by any
message makes the whole run a dry run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import PayloadError
from .payload import MAX_SELECTORS, MAX_TARGETS, Payload, decode_json, keys_beside, parse_payload

# SMN delivers one message per record; a handful at most in practice.
MAX_RECORDS = 50


def merged_payload(event: Mapping[str, Any]) -> Payload:
    """The payload of every record's message, merged into one."""
    records = event["record"]
    if len(records) > MAX_RECORDS:
        raise PayloadError([f"record: {len(records)} records, more than the {MAX_RECORDS} allowed"])
    problems = keys_beside(event, "a record's smn.message")
    read = [_read(record["smn"].get("message"), f"record[{i}]") for i, record in enumerate(records)]
    payloads = [r for r in read if isinstance(r, Payload)]
    problems.extend(p for r in read if isinstance(r, PayloadError) for p in r.problems)
    if problems:
        raise PayloadError(problems)
    return _merge(payloads)


def _read(message: object, record: str) -> Payload | PayloadError:
    """One message's payload, or what is wrong with it (each message is checked, then all)."""
    where = f"{record}.smn.message"
    if not isinstance(message, str):
        return PayloadError([f"{where}: must be a string holding the payload as JSON"])
    if not message.strip():
        return PayloadError([f"{where}: empty: nothing says what to delete"])
    try:
        document = decode_json(message, where=where)
    except PayloadError as exc:  # the text itself: not JSON, too large, ...
        return exc
    try:
        return parse_payload(document)
    except PayloadError as exc:
        return PayloadError([f"{where}: {problem}" for problem in exc.problems])


def _merge(payloads: list[Payload]) -> Payload:
    first, *others = payloads
    if not others:
        return first
    targets = list(dict.fromkeys(t for p in payloads for t in p.targets))
    selectors = [s for p in payloads for s in p.selectors]
    problems = []
    if len(targets) > MAX_TARGETS:
        problems.append(f"record: {len(targets)} targets, more than the {MAX_TARGETS} allowed")
    if len(selectors) > MAX_SELECTORS:
        problems.append(
            f"record: {len(selectors)} selectors, more than the {MAX_SELECTORS} allowed"
        )
    if problems:
        raise PayloadError(problems)
    return first.model_copy(
        update={
            "targets": targets,
            "selectors": selectors,
            "dry_run": any(p.dry_run for p in payloads),
        }
    )
