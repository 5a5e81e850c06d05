"""The business of the end-to-end tests: a bank whose Kafka branches move
money inside DTM's barrier (dtmq_worker.barrier) on PostgreSQL. Used in
process by test_e2e.py and as a separate worker process (run as a script)
by the test that kills a worker before it replies.

Each branch topic stands for one account and a direction: the payload
{"amount": N} is added to (sign +1) or taken from (sign -1) the account.
Knobs per (topic, op): refuse (BusinessFailure: FAILURE), ongoing (answer
ONGOING that many times first, without touching anything), sleep_first
(sleep after the first commit, before answering: a late reply).

As a script (the killed worker):
  python bank.py BOOTSTRAP GROUP CONNINFO SCHEMA DIE_MARKER TOPIC=ACCOUNT:SIGN...
runs a Worker until SIGTERM and prints one line per call,
"CALL gid branch_id op outcome @offset", flushed. With DIE_MARKER a path
that does not exist yet, the first non-warm-up call creates it and SIGKILLs
the process 1 s after the barrier's COMMIT, before the reply (1 s: longer
than auto-commit's 500 ms, so an offset stored too early would be committed).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "connectors" / "python"))

import psycopg  # noqa: E402

from dtmq_worker import ONGOING, SUCCESS, Branch, Worker  # noqa: E402
from dtmq_worker import barrier  # noqa: E402
from dtmq_worker.barrier import BusinessFailure  # noqa: E402


class Bank:
    def __init__(self, conninfo: str, schema: str, accounts: dict[str, tuple[str, int]]) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)  # the worker thread's own
        self.schema = schema
        self.accounts = accounts
        self.refuse: dict[tuple[str, str], str] = {}
        self.ongoing: dict[tuple[str, str], int] = {}
        self.sleep_first: dict[tuple[str, str], float] = {}
        self.calls: list[tuple[str, str, str, str, str]] = []  # topic, gid, branch_id, op, outcome
        self.offsets: list[int] = []                            # the message's offset, per call
        self.times: dict[tuple[str, str, str], list] = {}    # (gid, branch_id, op) -> [(start, end)]
        self.cond = threading.Condition()
        self.after_commit = None  # called after a barrier commit, before the answer

    def _record(self, b: Branch, outcome: str, started: float) -> None:
        with self.cond:
            self.calls.append((b.topic, b.gid, b.branch_id, b.op, outcome))
            self.offsets.append(b.offset)
            self.times.setdefault((b.gid, b.branch_id, b.op), []).append(
                (started, time.monotonic()))
            self.cond.notify_all()

    def __call__(self, b: Branch):
        started = time.monotonic()
        key = (b.topic, b.op)
        if b.gid == "warmup":
            self._record(b, "WARMUP", started)
            return SUCCESS
        if self.ongoing.get(key, 0) > 0:
            self.ongoing[key] -= 1
            self._record(b, "ONGOING", started)
            return ONGOING
        account, sign = self.accounts[b.topic]
        amount = int(b.json()["amount"])

        def move(cur):
            if key in self.refuse:
                raise BusinessFailure(self.refuse[key])
            cur.execute(f"UPDATE {self.schema}.accounts SET balance = balance + %s WHERE id = %s",
                        (sign * amount, account))
            cur.execute(f"INSERT INTO {self.schema}.effects (gid, branch_id, op) VALUES (%s, %s, %s)",
                        (b.gid, b.branch_id, b.op))
        r = barrier.call(self.conn, b, move)
        if self.after_commit is not None:
            self.after_commit(b, r)
        pause = self.sleep_first.pop(key, 0)
        if pause:
            time.sleep(pause)
        self._record(b, r.outcome.value, started)
        return r.to_result()

    def wait(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < n and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return len(self.calls)

    def wait_business(self, n: int, timeout: float) -> int:
        """Waits until n calls that are not warm-ups were recorded."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.business_calls()) < n and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return len(self.business_calls())

    def business_calls(self) -> list[tuple[str, str, str, str, str]]:
        with self.cond:  # re-entrant use from wait_business: Condition's RLock
            return [c for c in self.calls if c[1] != "warmup"]

    def close(self) -> None:
        self.conn.close()


def main(argv: list[str]) -> int:
    bootstrap, group, conninfo, schema, marker = argv[:5]
    accounts = {}
    for spec in argv[5:]:
        topic, rest = spec.split("=", 1)
        account, sign = rest.split(":")
        accounts[topic] = (account, int(sign))
    bank = Bank(conninfo, schema, accounts)

    def die_once(b: Branch, r) -> None:
        if marker and not os.path.exists(marker):
            Path(marker).write_text(f"{b.gid} {b.branch_id} {b.op} {r.outcome.value}\n")
            print(f"DYING after the commit of {b.gid} {b.branch_id} {b.op} @{b.offset}", flush=True)
            time.sleep(1)  # a worker that had stored the offset would have committed it by now
            os.kill(os.getpid(), signal.SIGKILL)
    bank.after_commit = die_once
    w = Worker(bootstrap=bootstrap, group=group, topics=list(accounts), handler=bank,
               poll_timeout=0.1)
    stopping = threading.Event()

    def on_term(*_):
        stopping.set()
        w.stop()
    signal.signal(signal.SIGTERM, on_term)
    seen = 0
    print("READY", flush=True)
    while not stopping.is_set():
        w.run(max_messages=1, timeout=0.5)
        with bank.cond:
            for c, offset in zip(bank.calls[seen:], bank.offsets[seen:]):
                print("CALL", *c[1:], f"@{offset}", flush=True)
            seen = len(bank.calls)
    w.close()
    bank.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
