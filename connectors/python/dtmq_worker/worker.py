"""The Kafka branch worker: consumes kafka://TOPIC branch messages that dtmq
publishes, calls the service's handler for each, replies on dtm-reply-to,
and only then lets the message go (docs/kafka.md, "The worker contract").

Per message, in partition order:

1. read the dtm-* headers (branch.py); a message without dtm-gid,
   dtm-branch-id or dtm-op is logged, its offset stored, and skipped;
2. call the handler;
3. saga, tcc, xa (every mode but msg) with a non-empty dtm-reply-to:
   publish the reply keyed by gid, wait for Kafka's acknowledgement
   (delivery report); then
4. store the offset (enable.auto.offset.store=false; the stored offsets
   are committed every 500 ms by auto-commit and by close()).

Invariants, per partition (the same as connectors/libdtmq/worker/dtmq_worker.c):

- an offset is stored only for a finished message: skipped for good (no
  dtm headers), handled with no reply due, or handled with its reply
  acknowledged. Auto-commit commits stored offsets only, so a committed
  offset never passes a message whose reply is missing;
- a message whose reply failed is never followed by a later message of its
  partition: the partition is moved back to it (seek) before the next poll;
  if that seek fails while the partition is still ours, the worker turns
  unusable (WorkerError) instead of going on.

msg branches get no reply: dtmq counted its own acknowledged publish as the
branch's success and never sends the message again. So the worker keeps
the message until the handler returns SUCCESS: any other outcome (FAILURE,
ONGOING, an exception) makes it handle the same message again after
``retry_pause`` seconds, as DTM retries a msg branch "forever". A msg
handler that may refuse for good should record the refusal itself and
return SUCCESS.

Delivery is at least once: after a crash, everything not yet committed is
handled again, and dtmq publishes a branch again when its reply is late.
The handler must be idempotent; barrier.py gives that.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ._kafka import create_missing_topics, merged, topic_name_ok
from .branch import Branch, NotABranch, branch_from_message
from .results import Result

log = logging.getLogger("dtmq_worker")

Handler = Callable[[Branch], Result]

# The consumer settings of the worker contract; any key can be overridden
# through consumer_config except enable.auto.offset.store (see Worker).
DEFAULT_CONSUMER_CONFIG = {
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 500,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    # dtmq's own consumers use 6 s; with the default 45 s a consumer was seen
    # to get no partitions for about 90 s on the embedded cluster, and a
    # worker that dies keeps its partitions that long on any cluster.
    "session.timeout.ms": 6000,
    "allow.auto.create.topics": True,
    "topic.metadata.refresh.interval.ms": 10000,  # notice topics created later
}

# The reply producer: idempotent with acks=all, as dtmq's own producer.
DEFAULT_PRODUCER_CONFIG = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 1,
}

REPLY_ACK_TIMEOUT_S = 10.0   # wait for Kafka's acknowledgement of a reply
RETRY_PAUSE_S = 0.5          # before handling a message again
PRODUCER_FLUSH_S = 5.0       # at close()


class WorkerError(RuntimeError):
    """The worker hit a fatal error and is unusable; close it (a new worker in
    the same group handles every message whose reply is missing again)."""


class ReplyError(RuntimeError):
    """A reply could not be published (or was not acknowledged in time)."""


def reply_value(branch: Branch, result: Result) -> bytes:
    """The reply's value (schemas/kafka/reply.schema.json), keys in the order
    the C worker writes them, compact JSON, UTF-8."""
    return json.dumps({"gid": branch.gid, "branch_id": branch.branch_id, "op": branch.op,
                       "dtm_result": result.dtm_result, "message": result.message},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_options(bootstrap: object, group: object, topics: object, handler: object) -> list[str]:
    if not isinstance(bootstrap, str) or not bootstrap:
        raise ValueError("Worker: bootstrap: required (Kafka bootstrap servers 'host:port[,...]')")
    if not isinstance(group, str) or not group:
        raise ValueError("Worker: group: required (the consumer group)")
    if isinstance(topics, str) or not isinstance(topics, Sequence) or not topics:
        raise ValueError("Worker: topics: a list of at least one topic is required")
    for i, t in enumerate(topics):
        if not (isinstance(t, str) and (t.startswith("^") or topic_name_ok(t))):
            raise ValueError(f"Worker: topics[{i}]: {t!r} is not a Kafka topic name "
                             "(1 to 249 of [A-Za-z0-9._-], or a '^' regex)")
    if not callable(handler):
        raise ValueError("Worker: handler: required (a callable taking a Branch)")
    return list(topics)


class Worker:
    """A consumer in ``group`` subscribed to ``topics`` and a producer for the
    replies, driven by the caller's thread in run().

    ``handler(branch) -> Result`` does the business step and returns
    SUCCESS, FAILURE(message) or ONGOING (results.py). If it RAISES (or
    returns anything but a Result), the outcome is unknown: no reply is sent
    and the message's offset is stored, so dtmq, which waits for the reply
    for the transaction's request_timeout, counts the branch as an unknown
    result and publishes it again later with backoff — exactly what DTM does
    for an HTTP branch that answers 500. That is deliberate: an exception is
    usually a passing fault (the database is down, a deadlock), and
    answering FAILURE would roll a whole saga back for it; FAILURE is for a
    business refusal, which the handler returns explicitly. (A msg branch is
    handled again instead, see the module's docstring.)

    ``consumer_config`` and ``producer_config`` are librdkafka properties
    that override the defaults above (DEFAULT_CONSUMER_CONFIG,
    DEFAULT_PRODUCER_CONFIG), e.g. {"session.timeout.ms": 45000} or
    security settings. ``enable.auto.offset.store`` cannot be turned on: the
    worker stores each offset itself once the reply is acknowledged.

    Topics missing on the cluster are created at start with its default
    partitions (best effort), as the C worker does; create_topics=False
    leaves that to dtmq's first publish.
    """

    def __init__(self, *, bootstrap: str, group: str, topics: Sequence[str], handler: Handler,
                 consumer_config: dict | None = None, producer_config: dict | None = None,
                 poll_timeout: float = 0.2, reply_timeout: float = REPLY_ACK_TIMEOUT_S,
                 retry_pause: float = RETRY_PAUSE_S, create_topics: bool = True) -> None:
        self._topics = _check_options(bootstrap, group, topics, handler)
        cconf = merged(DEFAULT_CONSUMER_CONFIG, consumer_config, "Worker: consumer_config")
        if str(cconf.get("enable.auto.offset.store")).lower() not in ("false", "0"):
            raise ValueError("Worker: consumer_config: enable.auto.offset.store must stay false "
                             "(the worker stores an offset only after its reply is acknowledged)")
        cconf.update({"bootstrap.servers": bootstrap, "group.id": group})
        pconf = merged(DEFAULT_PRODUCER_CONFIG, producer_config, "Worker: producer_config")
        pconf["bootstrap.servers"] = bootstrap
        self._handler = handler
        self._poll_timeout = poll_timeout
        self._reply_timeout = reply_timeout
        self._retry_pause = retry_pause
        self._stop = threading.Event()
        self._broken: str | None = None
        self._running = threading.Lock()
        self._producer = Producer(pconf)
        if create_topics:
            create_missing_topics({"bootstrap.servers": bootstrap}, self._topics, log)
        self._consumer = Consumer(cconf)
        try:
            self._consumer.subscribe(self._topics)
        except KafkaException as e:
            self._consumer.close()
            raise WorkerError(f"Worker: cannot subscribe to {self._topics}: {e}") from e
        self._closed = False

    # ---- the loop ---------------------------------------------------------

    def run(self, max_messages: int | None = None, timeout: float | None = None) -> int:
        """Handles messages until stop() (from another thread or from the
        handler), until the handler was called max_messages times, or until
        timeout seconds passed. Returns the number of handler calls. Raises
        WorkerError when the consumer hit a fatal error (the worker is then
        unusable). Not to be called from two threads at once."""
        if self._closed:
            raise WorkerError("Worker: closed")
        if self._broken is not None:
            raise WorkerError(f"Worker: unusable after an earlier error: {self._broken}")
        if not self._running.acquire(blocking=False):
            raise WorkerError("Worker: run() is already going in another thread")
        try:
            return self._loop(max_messages, timeout)
        finally:
            self._stop.clear()  # a stop ends one run
            self._running.release()

    def _loop(self, max_messages: int | None, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        handled = 0
        while not self._stop.is_set() and (max_messages is None or handled < max_messages):
            if deadline is not None and time.monotonic() >= deadline:
                break
            msg = self._consumer.poll(self._poll_timeout)
            if msg is None:
                continue
            handled += self._take(msg)
        return handled

    def stop(self) -> None:
        """Makes run() return after the message in hand. Thread-safe. A stop
        while no run is going makes the next run return 0 at once."""
        self._stop.set()

    def close(self) -> None:
        """Leaves the group, committing the stored offsets, and flushes the
        reply producer (up to 5 s). Not while run() is going."""
        if self._closed:
            return
        self._closed = True
        try:
            self._consumer.close()
        except KafkaException as e:
            log.warning("closing the consumer: %s", e)
        left = self._producer.flush(PRODUCER_FLUSH_S)
        if left:
            log.warning("%d replies still unacknowledged at close", left)

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one message ------------------------------------------------------

    def _take(self, msg) -> int:
        """Takes one polled event; returns 1 when the handler was called."""
        err = msg.error()
        if err is not None:
            self._take_consumer_error(err)
            return 0
        try:
            branch = branch_from_message(msg)
        except NotABranch as e:
            log.warning("%s[%d]@%d has %s: not a dtmq branch message, skipped",
                        msg.topic(), msg.partition(), msg.offset(), e)
            self._store_offset(msg)
            return 0
        if self._handle(branch):
            self._store_offset(msg)
        else:
            self._seek_back(msg)
            self._stop.wait(self._retry_pause)
        return 1

    def _take_consumer_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            self._broken = f"fatal consumer error: {err.str()}"
            log.error("%s", self._broken)
            raise WorkerError(f"Worker: {self._broken}")
        log.warning("consumer: %s", err.str())

    def _call_handler(self, branch: Branch) -> Result | None:
        """The handler's Result, or None for an unknown outcome (it raised or
        returned something else), logged."""
        try:
            r = self._handler(branch)
        except Exception:
            log.exception("gid %s branch %s %s: the handler raised; no reply (dtmq publishes "
                          "the branch again after its deadline)", branch.gid, branch.branch_id,
                          branch.op)
            return None
        if not isinstance(r, Result):
            log.error("gid %s branch %s %s: the handler returned %r, not a Result (SUCCESS, "
                      "FAILURE(message) or ONGOING); no reply", branch.gid, branch.branch_id,
                      branch.op, r)
            return None
        return r

    def _handle(self, branch: Branch) -> bool:
        """Calls the handler and replies when a reply is due. True when the
        message is finished (store its offset), False to handle it again."""
        r = self._call_handler(branch)
        if branch.trans_type == "msg":
            if r is not None and r.dtm_result == "SUCCESS":
                return True
            log.warning("gid %s branch %s %s: msg branch not done (%s%s); handling %s[%d]@%d "
                        "again", branch.gid, branch.branch_id, branch.op,
                        r.dtm_result if r else "no result", f": {r.message}" if r and r.message
                        else "", branch.topic, branch.partition, branch.offset)
            return False
        if r is None or not branch.reply_to:
            return True
        try:
            self._send_reply(branch, r)
        except ReplyError as e:
            log.warning("gid %s branch %s %s: cannot publish the reply to %r, handling "
                        "%s[%d]@%d again: %s", branch.gid, branch.branch_id, branch.op,
                        branch.reply_to, branch.topic, branch.partition, branch.offset, e)
            return False
        return True

    def _send_reply(self, branch: Branch, result: Result) -> None:
        """Publishes the reply keyed by gid and waits for Kafka's
        acknowledgement; ReplyError when it fails or does not come in time."""
        if not topic_name_ok(branch.reply_to):
            raise ReplyError(f"dtm-reply-to {branch.reply_to!r} is not a Kafka topic name")
        done = threading.Event()
        outcome: list = []

        def delivered(err, _msg) -> None:
            outcome.append(err)
            done.set()

        headers = [("dtm-gid", branch.gid), ("dtm-branch-id", branch.branch_id),
                   ("dtm-op", branch.op)]
        try:
            self._producer.produce(branch.reply_to, value=reply_value(branch, result),
                                   key=branch.gid, headers=headers, on_delivery=delivered)
        except (KafkaException, BufferError, ValueError, TypeError) as e:
            raise ReplyError(str(e)) from e
        deadline = time.monotonic() + self._reply_timeout
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplyError(f"no acknowledgement within {self._reply_timeout:g} s")
            self._producer.poll(min(left, 0.1))
        if outcome[0] is not None:
            raise ReplyError(outcome[0].str())

    # ---- offsets ------------------------------------------------------------

    def _store_offset(self, msg) -> None:
        """Marks msg finished: offset + 1 goes out with the next commit."""
        try:
            self._consumer.store_offsets(message=msg)
        except KafkaException as e:  # e.g. the partition moved to another worker
            log.warning("cannot store the offset of %s[%d]@%d (it will be handled again): %s",
                        msg.topic(), msg.partition(), msg.offset(), e)

    def _seek_back(self, msg) -> None:
        """Moves msg's partition back to msg, so that msg is the next message
        polled from it. A partition that is no longer ours needs nothing: its
        new owner starts at the committed offset, which is not past msg."""
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        try:
            self._consumer.seek(tp)
            return
        except KafkaException as e:
            error = e
        mine = any(a.topic == tp.topic and a.partition == tp.partition
                   for a in self._consumer.assignment())
        if not mine:
            log.info("%s[%d] was revoked; its new owner handles @%d again", tp.topic,
                     tp.partition, tp.offset)
            return
        self._broken = (f"cannot move {tp.topic}[{tp.partition}] back to offset {tp.offset}, "
                        f"whose reply is missing (close this worker; a new one handles it "
                        f"again): {error}")
        log.error("%s", self._broken)
        raise WorkerError(f"Worker: {self._broken}")
