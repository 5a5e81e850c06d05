"""DTM's subtransaction barrier on PostgreSQL through psycopg 3: the same
table (schemas/barrier/postgres.sql, dtm_barrier.barrier) and the same
algorithm as connectors/libdtmq/barrier/barrier.c + barrier_pg.c, so a
service can mix this, dtmq's C barrier and DTM's SDKs on one table.

One barrier call is one local transaction on the caller's connection:

    BEGIN
    INSERT origin op row ... ON CONFLICT DO NOTHING   (compensating ops only)
    INSERT the op's row  ... ON CONFLICT DO NOTHING
    decide(): run fn, or a skip (SELECT reason tells duplicate from hanging)
    COMMIT                 (ROLLBACK on any error or business failure)

with originOp = {cancel: try, compensate: action, rollback: action}[op]:

    op == "msg" and the op's row existed     -> MSG_DUPLICATE (fn not run)
    compensating op, origin row was new      -> SKIPPED_NULL_COMPENSATION
    the op's row existed                     -> SKIPPED_DUPLICATE, or
                                                SKIPPED_HANGING when the row's
                                                reason is the compensation's
    otherwise                                -> fn, then COMMIT

Invariants, and what keeps them:

- the barrier rows and fn's writes commit together or not at all: one
  transaction (psycopg's conn.transaction(), which forbids fn to COMMIT
  or ROLLBACK it itself);
- fn runs at most once per (gid, branch_id, op, barrier_id) among committed
  transactions: the op's row is inserted before fn, and the UNIQUE
  constraint makes a concurrent insert of the same row wait until this
  transaction ends (READ COMMITTED, PostgreSQL's default, or stronger);
- a try/action arriving after its cancel/compensate never runs: the
  compensation inserted the origin row first, with reason = itself.

Errors: a database error (psycopg.Error) rolls back and propagates, as does
any exception fn raises; fn raises BusinessFailure to refuse (rolled back,
outcome BUSINESS_ERROR). In a worker handler, the propagating exception
means "no reply, dtmq calls again" (worker.Worker) — DTM's 500.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol, Union

import psycopg

from .results import FAILURE, SUCCESS, Result

TABLE = "dtm_barrier.barrier"
FIRST_ID = "01"            # barrier_id of the first barrier call of a handler call
MSG_BRANCH_ID = "00"       # the 2-phase message's own barrier row (DTM's MsgDoBranch0)
MSG_OP = "msg"             # DTM's MsgDoOp
MSG_BARRIER_ID = "01"      # DTM's MsgDoBarrierID
REASON_ROLLBACK = "rollback"
GID_MAX = 128              # the columns of dtm_barrier.barrier
BRANCH_ID_MAX = 128
NAME_MAX = 45              # trans_type, op, barrier_id, reason

_ORIGIN_OP = {"cancel": "try", "compensate": "action", "rollback": "action"}

_INSERT = (f"INSERT INTO {TABLE} (trans_type, gid, branch_id, op, barrier_id, reason)"
           " VALUES (%s, %s, %s, %s, %s, %s)"
           " ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING")
_SELECT_REASON = (f"SELECT reason FROM {TABLE}"
                  " WHERE gid = %s AND branch_id = %s AND op = %s AND barrier_id = %s")


class Outcome(enum.Enum):
    DONE = "DONE"                                            # fn ran, committed
    SKIPPED_DUPLICATE = "SKIPPED_DUPLICATE"                  # done before: fn not run
    SKIPPED_NULL_COMPENSATION = "SKIPPED_NULL_COMPENSATION"  # its op never ran
    SKIPPED_HANGING = "SKIPPED_HANGING"                      # try/action after its compensation
    BUSINESS_ERROR = "BUSINESS_ERROR"                        # fn raised BusinessFailure: rolled back
    MSG_DUPLICATE = "MSG_DUPLICATE"                          # op msg whose row exists: fn not run


class BusinessFailure(Exception):
    """Raised by a barrier's fn when the business refuses for good (no funds):
    the transaction rolls back and the outcome is BUSINESS_ERROR, answered
    FAILURE(message)."""

    def __init__(self, message: str = "the business function failed") -> None:
        super().__init__(message)
        self.message = message


class BranchKey(Protocol):
    """What keys a barrier row: a worker.Branch, a BranchInfo, or any object
    with these four attributes."""

    gid: str
    trans_type: str
    branch_id: str
    op: str


@dataclass(frozen=True)
class BranchInfo:
    gid: str
    trans_type: str
    branch_id: str
    op: str


def msg_branch(gid: str) -> BranchInfo:
    """The barrier key of a 2-phase message's local transaction (DTM's
    {gid, "msg", "00", "msg"}), which query_prepared() checks."""
    return BranchInfo(gid, "msg", MSG_BRANCH_ID, MSG_OP)


@dataclass(frozen=True)
class BarrierResult:
    outcome: Outcome
    message: str = ""   # BusinessFailure's message for BUSINESS_ERROR
    value: Any = None   # what fn returned (DONE only)

    def to_result(self) -> Result:
        """The branch's answer: done or skipped is SUCCESS, the business's
        refusal FAILURE(message)."""
        return FAILURE(self.message) if self.outcome is Outcome.BUSINESS_ERROR else SUCCESS


def decide(op: str, origin_inserted: bool, current_inserted: bool) -> Outcome | None:
    """DTM's decision after the two inserts (barrier.c's dtmq_barrier_decide):
    an outcome for a skip, None to run fn. SKIPPED_DUPLICATE stands for
    "the op's row existed"; the caller reads the reason to tell it from
    hanging."""
    if op == MSG_OP and not current_inserted:
        return Outcome.MSG_DUPLICATE
    if op in _ORIGIN_OP and origin_inserted:
        return Outcome.SKIPPED_NULL_COMPENSATION
    if not current_inserted:
        return Outcome.SKIPPED_DUPLICATE
    return None


def _check_key(b: BranchKey, barrier_id: str) -> None:
    fields = (("gid", GID_MAX), ("trans_type", NAME_MAX), ("branch_id", BRANCH_ID_MAX),
              ("op", NAME_MAX))
    for name, longest in fields:
        value = getattr(b, name, None)
        if not isinstance(value, str) or not value:
            raise ValueError(f"barrier: {name} is missing or empty")
        if len(value) > longest:
            raise ValueError(f"barrier: {name} is longer than {longest} characters")
    if not isinstance(barrier_id, str) or not barrier_id or len(barrier_id) > NAME_MAX:
        raise ValueError(f"barrier: barrier_id must be 1 to {NAME_MAX} characters")


def _check_idle(conn: psycopg.Connection) -> None:
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(f"barrier: a psycopg.Connection is needed, not {type(conn).__name__}")
    if conn.closed:
        raise ValueError("barrier: the connection is closed")
    status = conn.info.transaction_status
    if status != psycopg.pq.TransactionStatus.IDLE:
        raise ValueError(f"barrier: the connection is not idle ({status.name}): the barrier "
                         "runs its own transaction, so none may be open on it")


def _insert(cur: psycopg.Cursor, trans_type: str, gid: str, branch_id: str, op: str,
            barrier_id: str, reason: str) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row is new."""
    cur.execute(_INSERT, (trans_type, gid, branch_id, op, barrier_id, reason))
    if cur.rowcount not in (0, 1):
        raise RuntimeError(f"barrier: INSERT INTO {TABLE} affected {cur.rowcount} rows")
    return cur.rowcount == 1


def _reason(cur: psycopg.Cursor, gid: str, branch_id: str, op: str, barrier_id: str) -> str:
    cur.execute(_SELECT_REASON, (gid, branch_id, op, barrier_id))
    rows = cur.fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"barrier: {len(rows)} rows for {gid}/{branch_id}/{op}/{barrier_id}"
                           " (is the UNIQUE constraint missing, or the row gone?)")
    return rows[0][0]


class _Skip(Exception):
    """Ends the barrier's transaction without fn; carries the outcome and
    whether the rows are committed (skips) or rolled back (MSG_DUPLICATE)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


def call(conn: psycopg.Connection, branch: BranchKey, fn: Callable[[psycopg.Cursor], Any],
         barrier_id: str = FIRST_ID) -> BarrierResult:
    """Runs fn(cursor) inside the barrier of branch on conn, which must be a
    psycopg 3 connection with no transaction open (autocommit or not); see
    the module's docstring. fn does its writes on the cursor it is given (or
    on conn) and must not commit or roll back itself. barrier_id counts the
    barrier calls of one handler call: "01", then "02", ..."""
    _check_key(branch, barrier_id)
    if not callable(fn):
        raise ValueError("barrier: fn: required (a callable taking a cursor)")
    _check_idle(conn)
    b = branch
    origin = _ORIGIN_OP.get(b.op)
    try:
        with conn.transaction():
            with conn.cursor() as cur:
                origin_inserted = origin is not None and _insert(
                    cur, b.trans_type, b.gid, b.branch_id, origin, barrier_id, b.op)
                current_inserted = _insert(cur, b.trans_type, b.gid, b.branch_id, b.op,
                                           barrier_id, b.op)
                skip = decide(b.op, origin_inserted, current_inserted)
                if skip is Outcome.MSG_DUPLICATE:
                    raise _Skip(skip)  # rolled back: nothing of ours to keep
                if skip is Outcome.SKIPPED_DUPLICATE:
                    reason = _reason(cur, b.gid, b.branch_id, b.op, barrier_id)
                    skip = Outcome.SKIPPED_DUPLICATE if reason == b.op else Outcome.SKIPPED_HANGING
                if skip is not None:
                    return BarrierResult(skip)  # commits the rows (null compensation's origin)
                value = fn(cur)
            return BarrierResult(Outcome.DONE, value=value)  # COMMIT at the block's end
    except _Skip as s:
        return BarrierResult(s.outcome)
    except BusinessFailure as f:
        return BarrierResult(Outcome.BUSINESS_ERROR, message=f.message)


def query_prepared(conn: psycopg.Connection, gid: str) -> int:
    """The answer to dtmq's query_prepared for the 2-phase message gid: 200
    when its local transaction (a call() with msg_branch(gid)) committed,
    409 when it did not. In the second case the msg row is inserted now
    with reason "rollback" and committed before this returns, so that local
    transaction can never commit later (its own insert finds the row:
    MSG_DUPLICATE). A local transaction still in progress is waited for (the
    row's uniqueness check)."""
    if not isinstance(gid, str) or not gid:
        raise ValueError("barrier: gid is missing")
    if len(gid) > GID_MAX:
        raise ValueError(f"barrier: gid is longer than {GID_MAX} characters")
    _check_idle(conn)
    with conn.transaction():
        with conn.cursor() as cur:
            _insert(cur, "msg", gid, MSG_BRANCH_ID, MSG_OP, MSG_BARRIER_ID, REASON_ROLLBACK)
            reason = _reason(cur, gid, MSG_BRANCH_ID, MSG_OP, MSG_BARRIER_ID)
    return 409 if reason == REASON_ROLLBACK else 200


ConnectionSource = Union[psycopg.Connection, Callable[[], ContextManager[psycopg.Connection]]]


def handler(conn: ConnectionSource, fn: Callable[[Any, psycopg.Cursor], Any],
            barrier_id: str = FIRST_ID) -> Callable[[Any], Result]:
    """A worker handler that runs fn(branch, cursor) inside the barrier keyed
    by the message's dtm-* headers (gid, trans_type, branch_id, op).

    conn is a psycopg.Connection that only the worker's thread uses, or a
    callable returning a context manager that yields one (a pool's
    ``pool.connection``). The answer: DONE and every skip are SUCCESS (a
    duplicate delivery is answered as the first one was), BusinessFailure
    FAILURE(message); a database error propagates, so the worker sends no
    reply and dtmq calls the branch again."""
    if not callable(fn):
        raise ValueError("barrier.handler: fn: required (a callable taking a branch and a cursor)")

    def handle(branch: Any) -> Result:
        def run(c: psycopg.Connection) -> Result:
            return call(c, branch, lambda cur: fn(branch, cur), barrier_id).to_result()
        if isinstance(conn, psycopg.Connection):
            return run(conn)
        with conn() as c:
            return run(c)
    return handle
