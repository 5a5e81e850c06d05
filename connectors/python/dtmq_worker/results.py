"""What a branch handler returns: SUCCESS, FAILURE(message) or ONGOING.

These are DTM's three result words, sent to dtmq in the reply
(schemas/kafka/reply.schema.json, field ``dtm_result``):

- ``SUCCESS``: the step is done. dtmq goes on with the transaction.
- ``FAILURE(message)``: the business refuses for good (no funds, no stock).
  A saga *action* that answers FAILURE rolls the saga back, and ``message``
  (dtmq keeps its first 200 bytes) becomes the rollback reason, e.g.
  ``branch 02 action failed: insufficient funds``. For every other op
  (compensate, confirm, cancel, ...) dtmq treats FAILURE as "try again",
  as DTM does: a compensation must not refuse.
- ``ONGOING``: not done yet; dtmq publishes the branch again later.

A handler that *raises* gives no result at all; see worker.Worker for what
happens then (no reply: dtmq publishes the branch again after its deadline).
"""
from __future__ import annotations

from dataclasses import dataclass

RESULT_WORDS = ("SUCCESS", "FAILURE", "ONGOING")


@dataclass(frozen=True)
class Result:
    """One handler outcome: a DTM result word and an optional message."""

    dtm_result: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.dtm_result not in RESULT_WORDS:
            raise ValueError(
                f"Result.dtm_result: {self.dtm_result!r} is not one of {', '.join(RESULT_WORDS)}")
        if not isinstance(self.message, str):
            raise TypeError(f"Result.message: a str is needed, not {type(self.message).__name__}")


SUCCESS = Result("SUCCESS")
ONGOING = Result("ONGOING")


def FAILURE(message: str = "") -> Result:  # noqa: N802 (DTM's word, as the other two)
    """The business refuses for good; message says why (the rollback reason)."""
    return Result("FAILURE", message)
