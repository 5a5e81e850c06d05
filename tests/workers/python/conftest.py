"""Fixtures of the Python worker tests (tests/workers/python/run.sh runs them):
the real services from the environment tests/lib/run_lib.sh's test_env sets
(DTMQ_TEST_KAFKA, DTMQ_TEST_POSTGRES, DTMQ_TEST_BIN), fresh names per
test, a plain Kafka producer and reader that play dtmq's part, the
recording handler, and a real dtmq process.

Every wait is bounded; every topic, group and gid starts with this run's
prefix (py.<run>. for topics, py-<run>- for gids), so runs never see each
other's messages.
"""
from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "connectors" / "python"))

import dtmq_worker  # noqa: E402
from dtmq_worker import SUCCESS, Branch, Result, Worker  # noqa: E402

RUN = f"{int(time.time()) % 100000}{os.getpid() % 1000}"
WAIT_S = 30.0
_seq = itertools.count(1)


def need_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set (tests/workers/python/run.sh sets it from "
                    "tests/lib/run_lib.sh's test_env)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def kafka() -> str:
    return need_env("DTMQ_TEST_KAFKA")


@pytest.fixture(scope="session")
def pg_conninfo() -> str:
    return need_env("DTMQ_TEST_POSTGRES")


def fresh(kind: str) -> str:
    """A name no other test or run uses: py.<run>.<n>.<kind> (also a legal gid)."""
    return f"py.{RUN}.{next(_seq)}.{kind}"


def fresh_gid(kind: str = "gid") -> str:
    return f"py-{RUN}-{next(_seq)}-{kind}"


@dataclass
class Names:
    topic: str = field(default_factory=lambda: fresh("branch"))
    reply: str = field(default_factory=lambda: fresh("reply"))
    group: str = field(default_factory=lambda: fresh("group"))
    gid: str = field(default_factory=fresh_gid)


@pytest.fixture
def names() -> Names:
    return Names()


# ---- playing dtmq's part on Kafka ----------------------------------------------

class BranchProducer:
    """Produces messages and waits for Kafka's acknowledgement."""

    def __init__(self, bootstrap: str) -> None:
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})

    def produce(self, topic: str, key: str | bytes | None, value: bytes | str,
                headers: list[tuple[str, str | bytes]] | None = None, partition: int = -1) -> None:
        errs: list = []
        kw = {"partition": partition} if partition >= 0 else {}
        self.p.produce(topic, value=value, key=key, headers=headers or [],
                       on_delivery=lambda e, m: errs.append(e), **kw)
        deadline = time.monotonic() + WAIT_S
        while not errs and time.monotonic() < deadline:
            self.p.poll(0.05)
        assert errs and errs[0] is None, f"produce to {topic}: {errs}"

    def branch(self, topic: str, gid: str, trans_type: str, branch_id: str, op: str,
               reply_to: str, payload: bytes | str, extra: list | None = None) -> None:
        """A branch message as dtmq's engine publishes it (pass.c, call_kafka_branch)."""
        headers = [("dtm-gid", gid), ("dtm-trans-type", trans_type), ("dtm-branch-id", branch_id),
                   ("dtm-op", op), ("dtm-reply-to", reply_to)] + (extra or [])
        self.produce(topic, gid, payload, headers)

    def close(self) -> None:
        self.p.flush(5)


@pytest.fixture
def producer(kafka):
    p = BranchProducer(kafka)
    yield p
    p.close()


@dataclass
class KMsg:
    key: str
    value: bytes
    partition: int
    offset: int
    headers: list


def read_topic(bootstrap: str, topic: str, want: int | None = None, stop_key: str | None = None,
               timeout: float = WAIT_S) -> list[KMsg]:
    """Reads topic from the beginning (a fresh group) until want messages
    arrived, the one keyed stop_key arrived, or timeout passed."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": fresh("reader"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000})
    c.subscribe([topic])
    out: list[KMsg] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (want is None or len(out) < want):
            m = c.poll(0.1)
            if m is None or m.error() is not None:
                continue
            out.append(KMsg((m.key() or b"").decode(), m.value() or b"", m.partition(),
                            m.offset(), m.headers() or []))
            if stop_key is not None and out[-1].key == stop_key:
                break
    finally:
        c.close()
    return out


def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    """The offset group committed for topic[partition]; negative when none."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=WAIT_S)[0].offset
    finally:
        c.close()


# ---- a recording handler ------------------------------------------------------------

@dataclass
class Rule:
    topic: str | None
    op: str | None
    result: Result | Exception | object
    times: int = 0  # 0: always
    used: int = 0


class Recorder:
    """A handler that records every call and answers by the first matching
    rule (SUCCESS when none); a rule's result may be an exception to raise."""

    def __init__(self) -> None:
        self.calls: list[Branch] = []
        self.rules: list[Rule] = []
        self.cond = threading.Condition()
        self.stop_worker: Worker | None = None

    def rule(self, result, topic=None, op=None, times=0) -> "Recorder":
        self.rules.append(Rule(topic, op, result, times))
        return self

    def __call__(self, b: Branch):
        with self.cond:
            self.calls.append(b)
            r = next((u for u in self.rules
                      if (u.topic is None or u.topic == b.topic) and (u.op is None or u.op == b.op)
                      and (u.times == 0 or u.used < u.times)), None)
            if r is not None:
                r.used += 1
            if self.stop_worker is not None:
                self.stop_worker.stop()
            self.cond.notify_all()
        result = SUCCESS if r is None else r.result
        if isinstance(result, Exception):
            raise result
        return result

    def wait(self, n: int, timeout: float = WAIT_S) -> int:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < n and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return len(self.calls)


@pytest.fixture
def make_worker(kafka):
    """make_worker(group, topics, handler, **kw): a Worker closed after the test."""
    made: list[Worker] = []

    def make(group, topics, handler, **kw) -> Worker:
        kw.setdefault("poll_timeout", 0.1)
        w = Worker(bootstrap=kafka, group=group, topics=topics, handler=handler, **kw)
        made.append(w)
        return w
    yield make
    for w in made:
        w.close()


class WorkerThread:
    """Runs a worker's run() in a thread until stopped."""

    def __init__(self, w: Worker) -> None:
        self.w = w
        self.result: int | None = None
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._main, daemon=True)
        self.t.start()

    def _main(self) -> None:
        try:
            self.result = self.w.run()
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def stop(self) -> int:
        self.w.stop()
        self.t.join(WAIT_S)
        assert not self.t.is_alive(), "the worker did not stop"
        assert self.error is None, f"run() raised {self.error!r}"
        return self.result


def warm_up(producer: BranchProducer, rec: Recorder, topics: list[str]) -> None:
    """Makes sure the worker has its partitions before dtmq publishes: one
    msg-type warm-up message per topic, waited for (as test_worker.c does)."""
    before = len(rec.calls)
    for t in topics:
        producer.branch(t, "warmup", "msg", "00", "warmup", "", b"")
    assert rec.wait(before + len(topics), 2 * WAIT_S) >= before + len(topics), "warm-up not handled"
    with rec.cond:
        del rec.calls[before:before + len(topics)]


# ---- dtmq -------------------------------------------------------------------------------

def free_port(lo: int = 19500, hi: int = 19599) -> int:
    """A port of this suite's range nothing listens on."""
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail(f"no free port in {lo}..{hi}", pytrace=False)


class Dtmq:
    """A dtmq process on real Kafka with a topic prefix and group of its own."""

    def __init__(self, bootstrap: str, binary: str, tmp: Path) -> None:
        self.prefix = f"py.{RUN}.{uuid.uuid4().hex[:6]}."
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/dtmsvr"
        self.log_path = tmp / "dtmq.log"
        args = [binary, "--http-host", "127.0.0.1", "--http-port", str(self.port),
                "--kafka", bootstrap, "--kafka-topic-prefix", self.prefix,
                "--kafka-group", f"py-{RUN}-{uuid.uuid4().hex[:6]}",
                "--retry-interval", "1", "--retry-interval-max", "8", "--trans-cron-interval", "1",
                "--request-timeout", "5", "--timeout-to-fail", "3"]
        env = dict(os.environ, DTMQ_STORE=f"sqlite:{tmp / 'dtmq.db'}", DTMQ_KAFKA=bootstrap)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dtmq exited {self.proc.returncode}: {self.log_tail()}", pytrace=False)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/ping", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"dtmq did not answer on port {self.port} within 60 s: {self.log_tail()}",
                    pytrace=False)

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def post(self, route: str, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(f"{self.api}/{route}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def query(self, gid: str) -> dict:
        return self.get(f"/api/dtmsvr/query?gid={gid}")

    def status(self, gid: str) -> str:
        t = self.query(gid).get("transaction") or {}
        return t.get("status", "")

    def wait_status(self, gid: str, want: str, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        st = self.status(gid)
        while st != want and time.monotonic() < deadline:
            time.sleep(0.2)
            st = self.status(gid)
        return st

    @property
    def reply_topic(self) -> str:
        return self.prefix + "reply"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="session")
def dtmq(kafka):
    """One dtmq for the whole session (gids and topics are fresh per test):
    RetryInterval 1 s (max 8), RequestTimeout 5 s, TimeoutToFail 3 s; tests
    that need other timings set them per transaction."""
    binary = need_env("DTMQ_TEST_BIN")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"DTMQ_TEST_BIN={binary} is not an executable (make check builds it)",
                    pytrace=False)
    tmp = Path(tempfile.mkdtemp(prefix="dtmq-pyworker-"))
    d = Dtmq(kafka, binary, tmp)
    yield d
    d.stop()
    keep = os.environ.get("DTMQ_PY_KEEP_LOGS")
    text = d.log_path.read_text(errors="replace")
    bad = [line for line in text.splitlines()
           if "ERROR: AddressSanitizer" in line or "runtime error:" in line
           or "ERROR: LeakSanitizer" in line]
    if not keep and not bad:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    assert not bad, f"sanitizer report in dtmq's log {d.log_path}: {bad[:3]}"


@pytest.fixture
def submit_client(kafka, dtmq):
    c = dtmq_worker.SubmitClient(kafka, reply_to=fresh("replies"), topic_prefix=dtmq.prefix)
    yield c
    c.close()


# ---- PostgreSQL ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_schema_applied(pg_conninfo) -> str:
    """schemas/barrier/postgres.sql applied once (idempotent), the table the C
    barrier uses too."""
    import psycopg
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute((ROOT / "schemas" / "barrier" / "postgres.sql").read_text())
    return pg_conninfo


@pytest.fixture
def pg(pg_schema_applied):
    """A fresh connection and a fresh schema with an accounts table."""
    import psycopg
    schema = f"py_{RUN}_{next(_seq)}"
    conn = psycopg.connect(pg_schema_applied, autocommit=True)
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"CREATE TABLE {schema}.accounts (id text PRIMARY KEY, balance int NOT NULL)")
    conn.execute(f"CREATE TABLE {schema}.effects (gid text, branch_id text, op text, "
                 "at timestamptz DEFAULT now())")
    conn.execute(f"INSERT INTO {schema}.accounts VALUES ('a', 100), ('b', 100)")
    yield PgEnv(conn, schema, pg_schema_applied)
    conn.close()
    with psycopg.connect(pg_schema_applied, autocommit=True) as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass
class PgEnv:
    conn: object
    schema: str
    conninfo: str

    def balance(self, acct: str) -> int:
        return self.conn.execute(f"SELECT balance FROM {self.schema}.accounts WHERE id = %s",
                                 (acct,)).fetchone()[0]

    def effects(self, gid: str) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.conn.execute(
            f"SELECT branch_id, op FROM {self.schema}.effects WHERE gid = %s ORDER BY at, branch_id",
            (gid,)).fetchall()]

    def barrier_rows(self, gid: str) -> list[tuple[str, str, str, str]]:
        return [tuple(r) for r in self.conn.execute(
            "SELECT branch_id, op, barrier_id, reason FROM dtm_barrier.barrier WHERE gid = %s "
            "ORDER BY id", (gid,)).fetchall()]
