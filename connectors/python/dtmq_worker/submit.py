"""The submit client: sends a transaction to dtmq over Kafka (the
``PREFIXsubmit`` topic, schemas/kafka/submit.schema.json) and waits for
dtmq's answer on a reply topic of the caller's (``reply_to``,
schemas/kafka/submit_reply.schema.json).

dtmq answers every message it reads with an ``accepted`` reply (200 once
the command is durable, 400 refused and dead-lettered, 409 a conflict);
with ``wait_result`` a submit or abort also gets a ``finished`` reply when
the transaction's first pass ended (200 succeed, 409 failed with the
rollback reason, 425 still running, 500 a branch error).

The client keeps one producer (idempotent, acks=all) and one reader of the
reply topic. The reader is assigned every partition of the reply topic at
its end offset *before* the first message is sent, so no answer can slip
past it, and routes each reply to the waiting call by (gid, op). Replies
nobody waits for (an answer to another client sharing the topic, a repeat
after dtmq re-read a message) are dropped. Thread-safe: several threads may
submit at once through one client.

gids are the caller's: make them unique (DTM's newGid is not needed).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from confluent_kafka import (OFFSET_END, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from ._kafka import create_missing_topics, merged, topic_name_ok

log = logging.getLogger("dtmq_worker.submit")

OPS = ("prepare", "submit", "abort", "registerBranch")
TRANS_TYPES = ("saga", "tcc", "xa", "msg", "workflow")
GID_MAX = 128
DEFAULT_TIMEOUT_S = 30.0
SEND_ACK_TIMEOUT_S = 10.0

DEFAULT_PRODUCER_CONFIG = {"enable.idempotence": True, "acks": "all", "linger.ms": 1}
DEFAULT_CONSUMER_CONFIG = {"enable.auto.commit": False, "auto.offset.reset": "latest"}


# what a partition of a topic made a moment ago answers until it has a leader
_LEADERLESS = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
               KafkaError.UNKNOWN_TOPIC_OR_PART)


class SubmitError(RuntimeError):
    """The message could not be sent (Kafka refused it or did not acknowledge)."""


class ReplyTimeout(TimeoutError):
    """dtmq's answer did not come in time. The message was sent: whether dtmq
    took it is unknown; ask GET /api/dtmsvr/query?gid=... or send it again
    (the gid makes a repeat harmless)."""


@dataclass(frozen=True)
class Reply:
    """One of dtmq's answers (submit_reply.schema.json)."""

    phase: str         # accepted | finished
    status: int        # the HTTP status the same request would get
    dtm_result: str    # SUCCESS | FAILURE | ONGOING
    gid: str = ""
    op: str = ""
    message: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Waiter:
    gid: str
    op: str
    replies: list = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)


def _payload_text(p: Any, where: str) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, (bytes, bytearray)):
        return bytes(p).decode("utf-8")
    if isinstance(p, (dict, list)):
        return json.dumps(p, separators=(",", ":"))
    raise TypeError(f"{where}: a str, bytes, dict or list is needed, not {type(p).__name__}")


def saga(gid: str, steps: Sequence[tuple[str, str, Any]], **options: Any) -> dict:
    """A saga's body: steps are (action URL, compensate URL, payload); the
    payload is a str, bytes or a JSON-able dict/list. options are the other
    TransGlobal fields (timeout_to_fail, request_timeout, retry_interval,
    branch_headers, custom_data, ...)."""
    return {"gid": gid, "trans_type": "saga",
            "steps": [{"action": a, "compensate": c} for a, c, _ in steps],
            "payloads": [_payload_text(p, f"saga: steps[{i}] payload")
                         for i, (_, _, p) in enumerate(steps)], **options}


def msg(gid: str, steps: Sequence[tuple[str, Any]], *, query_prepared: str = "",
        **options: Any) -> dict:
    """A 2-phase message's body: steps are (action URL, payload);
    query_prepared is the HTTP URL dtmq asks when a prepared msg is never
    submitted."""
    body = {"gid": gid, "trans_type": "msg",
            "steps": [{"action": a} for a, _ in steps],
            "payloads": [_payload_text(p, f"msg: steps[{i}] payload")
                         for i, (_, p) in enumerate(steps)], **options}
    if query_prepared:
        body["query_prepared"] = query_prepared
    return body


def check_body(op: str, body: Mapping[str, Any]) -> str:
    """The checks the submit schema makes that name a problem the caller
    can fix before sending; returns the gid. ValueError otherwise."""
    if op not in OPS:
        raise ValueError(f"op: {op!r} is not one of {', '.join(OPS)}")
    if not isinstance(body, Mapping):
        raise TypeError(f"{op}: the body must be a dict, not {type(body).__name__}")
    gid = body.get("gid")
    if not isinstance(gid, str) or not gid:
        raise ValueError(f"{op}: gid is missing (the caller gives every transaction a unique gid)")
    if len(gid) > GID_MAX:
        raise ValueError(f"{op}: gid is longer than {GID_MAX} characters")
    if "op" in body and body["op"] != op:
        raise ValueError(f"{op}: the body names op {body['op']!r}")
    tt = body.get("trans_type")
    if op in ("prepare", "submit") and tt not in TRANS_TYPES:
        raise ValueError(f"{op}: trans_type {tt!r} is not one of {', '.join(TRANS_TYPES)}")
    if op == "registerBranch":
        for k, v in body.items():
            if not isinstance(v, str):
                raise ValueError(f"registerBranch: {k}: every value is a string "
                                 f"(DTM's flat string map), not {type(v).__name__}")
        for k in ("trans_type", "branch_id"):
            if not body.get(k):
                raise ValueError(f"registerBranch: {k} is missing")
    return gid


class SubmitClient:
    """Sends transactions to dtmq over Kafka and waits for its answers.

    bootstrap: Kafka bootstrap servers. reply_to: the topic dtmq answers on
    (created when missing; one per client or shared: replies are matched by
    gid and op). topic_prefix: dtmq's KafkaTopicPrefix ("dtm."), so the
    messages go to PREFIXsubmit. producer_config / consumer_config:
    librdkafka properties overriding the defaults.
    """

    def __init__(self, bootstrap: str, *, reply_to: str, topic_prefix: str = "dtm.",
                 producer_config: dict | None = None, consumer_config: dict | None = None) -> None:
        if not isinstance(bootstrap, str) or not bootstrap:
            raise ValueError("SubmitClient: bootstrap: required (Kafka bootstrap servers)")
        if not topic_name_ok(reply_to):
            raise ValueError(f"SubmitClient: reply_to: {reply_to!r} is not a Kafka topic name "
                             "(1 to 249 of [A-Za-z0-9._-])")
        if not isinstance(topic_prefix, str) or not topic_name_ok(topic_prefix + "submit"):
            raise ValueError(f"SubmitClient: topic_prefix: {topic_prefix!r} does not make a "
                             "topic name")
        self.reply_to = reply_to
        self.submit_topic = topic_prefix + "submit"
        pconf = merged(DEFAULT_PRODUCER_CONFIG, producer_config, "SubmitClient: producer_config")
        pconf["bootstrap.servers"] = bootstrap
        cconf = merged(DEFAULT_CONSUMER_CONFIG, consumer_config, "SubmitClient: consumer_config")
        cconf.update({"bootstrap.servers": bootstrap,
                      "group.id": f"dtmq-submit-client-{uuid.uuid4().hex}"})  # never commits
        self._producer = Producer(pconf)
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, str], list[_Waiter]] = {}
        self._closing = threading.Event()
        create_missing_topics({"bootstrap.servers": bootstrap}, [reply_to], log)
        self._consumer = Consumer(cconf)
        try:
            self._assign_at_end()
        except Exception:
            self._consumer.close()
            raise
        self._reader = threading.Thread(target=self._read, name="dtmq-submit-replies", daemon=True)
        self._reader.start()

    def _assign_at_end(self) -> None:
        """Assigns every partition of reply_to at its current end, read now
        (not OFFSET_END, which is resolved later, when a fast answer may
        already be there)."""
        md = self._consumer.list_topics(self.reply_to, timeout=10)
        t = md.topics.get(self.reply_to)
        if t is None or t.error is not None or not t.partitions:
            raise SubmitError(f"SubmitClient: reply topic {self.reply_to!r} has no partitions: "
                              f"{t.error if t is not None else 'not found'}")
        deadline = time.monotonic() + 10
        tps = []
        for p in sorted(t.partitions):
            high = self._end_offset(p, deadline)
            tps.append(TopicPartition(self.reply_to, p, high if high >= 0 else OFFSET_END))
        self._consumer.assign(tps)

    def _end_offset(self, partition: int, deadline: float) -> int:
        """The high watermark of reply_to[partition]. A retriable error (a
        topic created a moment ago has no leader yet: NOT_LEADER_FOR_PARTITION,
        LEADER_NOT_AVAILABLE) is retried every 100 ms until the deadline."""
        while True:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.reply_to, partition),
                    timeout=max(0.1, deadline - time.monotonic()))
                return high
            except KafkaException as e:
                err = e.args[0] if e.args else None
                retriable = isinstance(err, KafkaError) and (
                    err.retriable() or err.code() in _LEADERLESS)
                if not retriable or time.monotonic() >= deadline:
                    raise SubmitError(f"SubmitClient: cannot read the end of "
                                      f"{self.reply_to}[{partition}]: {e}") from e
                time.sleep(0.1)

    # ---- the reader thread ---------------------------------------------------

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                m = self._consumer.poll(0.2)
            except (KafkaException, RuntimeError) as e:  # closed under us
                if not self._closing.is_set():
                    log.warning("reply reader: %s", e)
                return
            if m is None:
                continue
            if m.error() is not None:
                log.warning("reply reader: %s", m.error().str())
                continue
            self._route(m)

    def _route(self, m) -> None:
        try:
            body = json.loads(m.value() or b"")
            reply = Reply(phase=body["phase"], status=int(body["status"]),
                          dtm_result=body["dtm_result"], gid=body.get("gid", ""),
                          op=body.get("op", ""), message=body.get("message", ""), raw=body)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("reply reader: %s[%d]@%d is not a submit reply (%s), ignored",
                        m.topic(), m.partition(), m.offset(), e)
            return
        gid = reply.gid or (m.key() or b"").decode("utf-8", "replace")
        with self._lock:
            if reply.op:
                targets = list(self._waiters.get((gid, reply.op), ()))
            else:  # a 400 refusal without a usable op: everyone waiting on the gid
                targets = [w for (g, _), ws in self._waiters.items() if g == gid for w in ws]
        for w in targets:
            with w.cond:
                w.replies.append(reply)
                w.cond.notify_all()

    # ---- sending ---------------------------------------------------------------

    def send(self, op: str, body: Mapping[str, Any], *, wait_result: bool = False,
             timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        """Sends {"op": op, **body, "reply_to": ..., "wait_result": ...} keyed by
        the gid and returns dtmq's answer: the ``accepted`` reply, or, with
        wait_result (submit and abort only), the ``finished`` one — unless
        the accepted reply already refused the command (status not 200). A
        command that ends without a pass (the abort of a prepared msg, the
        submit of a workflow) gets a ``finished`` reply repeating its answer.
        Raises ValueError for a body dtmq would refuse, SubmitError when
        Kafka did not take the message, ReplyTimeout when no answer came
        within timeout seconds."""
        gid = check_body(op, body)
        if wait_result and op not in ("submit", "abort"):
            raise ValueError(f"{op}: wait_result is for submit and abort only")
        value = dict(body)
        value["op"] = op
        value["reply_to"] = self.reply_to
        if wait_result:
            value["wait_result"] = True
        w = _Waiter(gid, op)
        with self._lock:
            self._waiters.setdefault((gid, op), []).append(w)
        try:
            deadline = time.monotonic() + timeout
            self._produce(gid, json.dumps(value, separators=(",", ":")).encode("utf-8"))
            accepted = self._wait(w, "accepted", deadline, timeout)
            if not wait_result or not accepted.ok:
                return accepted
            return self._wait(w, "finished", deadline, timeout)
        finally:
            with self._lock:
                ws = self._waiters.get((gid, op), [])
                if w in ws:
                    ws.remove(w)
                if not ws:
                    self._waiters.pop((gid, op), None)

    def prepare(self, body: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        return self.send("prepare", body, timeout=timeout)

    def submit(self, body: Mapping[str, Any], *, wait_result: bool = False,
               timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        return self.send("submit", body, wait_result=wait_result, timeout=timeout)

    def abort(self, body: Mapping[str, Any], *, wait_result: bool = False,
              timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        return self.send("abort", body, wait_result=wait_result, timeout=timeout)

    def register_branch(self, fields: Mapping[str, str], *,
                        timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        return self.send("registerBranch", fields, timeout=timeout)

    def msg_do_and_submit(self, body: Mapping[str, Any], local_transaction: Callable[[], Any], *,
                          wait_result: bool = False, timeout: float = DEFAULT_TIMEOUT_S) -> Reply:
        """The 2-phase message as DTM's DoAndSubmit: prepare body (a msg with
        query_prepared), run local_transaction() (usually barrier.call with
        barrier.msg_branch(gid), writing the business row and the msg's
        barrier row in one commit), then submit. If local_transaction raises
        barrier.BusinessFailure the msg is aborted and the exception
        re-raised; any other exception leaves the msg prepared (dtmq asks
        query_prepared after its timeout) and is re-raised. A prepare that
        dtmq refuses raises SubmitError naming its answer."""
        from .barrier import BusinessFailure  # psycopg only when used
        prepared = self.prepare(body, timeout=timeout)
        if not prepared.ok:
            raise SubmitError(f"prepare {body.get('gid')}: dtmq answered {prepared.status} "
                              f"{prepared.dtm_result}: {prepared.message}")
        try:
            local_transaction()
        except BusinessFailure as f:
            self.abort({"gid": body["gid"], "trans_type": "msg", "rollback_reason": f.message},
                       timeout=timeout)
            raise
        return self.submit({k: v for k, v in body.items() if k != "query_prepared"},
                           wait_result=wait_result, timeout=timeout)

    def _produce(self, gid: str, value: bytes) -> None:
        done = threading.Event()
        outcome: list = []

        def delivered(err, _m) -> None:
            outcome.append(err)
            done.set()

        try:
            self._producer.produce(self.submit_topic, value=value, key=gid, on_delivery=delivered)
        except (KafkaException, BufferError) as e:
            raise SubmitError(f"cannot send {gid} to {self.submit_topic}: {e}") from e
        deadline = time.monotonic() + SEND_ACK_TIMEOUT_S
        while not done.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if not done.is_set():
            raise SubmitError(f"{gid}: Kafka did not acknowledge the message to "
                              f"{self.submit_topic} within {SEND_ACK_TIMEOUT_S:g} s")
        if outcome[0] is not None:
            raise SubmitError(f"cannot send {gid} to {self.submit_topic}: {outcome[0].str()}")

    def _wait(self, w: _Waiter, phase: str, deadline: float, timeout: float) -> Reply:
        with w.cond:
            while True:
                for r in w.replies:
                    if r.phase == phase or (phase == "finished" and r.phase == "accepted"
                                            and not r.ok):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReplyTimeout(f"{w.op} {w.gid}: no '{phase}' reply on {self.reply_to} "
                                       f"within {timeout:g} s")
                w.cond.wait(left)

    def close(self) -> None:
        """Stops the reply reader and flushes the producer."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._reader.join(timeout=5)
        self._consumer.close()
        self._producer.flush(5)

    def __enter__(self) -> "SubmitClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
