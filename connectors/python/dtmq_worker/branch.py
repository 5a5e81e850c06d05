"""One branch call as a handler sees it, read from a Kafka message.

dtmq publishes a kafka://TOPIC branch keyed by gid, the branch payload as
the value, with the headers dtm-gid, dtm-trans-type, dtm-branch-id, dtm-op,
dtm-reply-to (not for msg) and then the transaction's branch_headers
(docs/kafka.md, "Kafka branches"). dtmq writes its own headers first, so
for every name the FIRST header wins: a branch_header cannot pass itself
off as dtm-gid or redirect the reply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

REQUIRED_HEADERS = ("dtm-gid", "dtm-branch-id", "dtm-op")


@dataclass(frozen=True)
class Branch:
    """A branch call. gid, branch_id and op key the barrier (with trans_type)."""

    gid: str
    trans_type: str  # saga, tcc, xa, msg, workflow; "" when the header is absent
    branch_id: str   # "01", "02", ...
    op: str          # action, compensate, try, confirm, cancel, commit, rollback
    reply_to: str    # dtm-reply-to; "" for msg branches (no reply)
    payload: bytes   # the branch body, as dtmq stored it
    headers: Mapping[str, str] = field(default_factory=dict)  # every header, first of each name
    topic: str = ""
    partition: int = -1
    offset: int = -1
    key: bytes | None = None

    def json(self) -> Any:
        """The payload parsed as JSON (ValueError when it is not JSON)."""
        return json.loads(self.payload.decode("utf-8"))


class NotABranch(ValueError):
    """A message without one of the required dtm-* headers."""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", errors="replace")


def first_headers(raw: list[tuple[str, bytes | None]] | None) -> dict[str, bytes | None]:
    """Header name -> the value of its first occurrence (None for a null value)."""
    out: dict[str, bytes | None] = {}
    for name, value in raw or ():
        if name not in out:
            out[name] = value
    return out


def branch_from_message(msg: Any) -> Branch:
    """The Branch a confluent_kafka.Message carries; NotABranch naming the
    first required header that is absent (or whose first value is null)."""
    first = first_headers(msg.headers())
    for name in REQUIRED_HEADERS:
        if first.get(name) is None:
            raise NotABranch(f"no {name} header")
    headers = {name: _text(value) for name, value in first.items()}
    value = msg.value()
    return Branch(
        gid=headers["dtm-gid"], trans_type=headers.get("dtm-trans-type", ""),
        branch_id=headers["dtm-branch-id"], op=headers["dtm-op"],
        reply_to=headers.get("dtm-reply-to", ""), payload=value if value is not None else b"",
        headers=headers, topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
        key=msg.key())
