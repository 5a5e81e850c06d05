"""The Worker against real Kafka, with this test playing dtmq's part: branch
messages produced with dtmq's headers, replies read back and compared byte
for byte, committed offsets read from the group coordinator (the same
cases as tests/integration/test_worker.c's Kafka group)."""
from __future__ import annotations

import threading
import time

import pytest

from conftest import WAIT_S, Recorder, committed_offset, read_topic
from dtmq_worker import FAILURE, ONGOING, SUCCESS, Result, Worker


def reply(gid, bid, op, result, message=""):
    return (f'{{"gid":"{gid}","branch_id":"{bid}","op":"{op}","dtm_result":"{result}",'
            f'"message":"{message}"}}').encode()


def test_saga_branch_reaches_the_handler_and_the_reply_is_exact(kafka, names, producer, make_worker):
    payload = b'{"a":1}\x00\xffz'
    producer.branch(names.topic, names.gid, "saga", "01", "action", names.reply, payload,
                    extra=[("X-Trace", "t-1")])
    rec = Recorder().rule(Result("SUCCESS", 'done "ok" é'))
    w = make_worker(names.group, [names.topic], rec)
    assert w.run(max_messages=1, timeout=WAIT_S) == 1

    b = rec.calls[0]
    assert (b.gid, b.trans_type, b.branch_id, b.op, b.reply_to, b.topic) == \
        (names.gid, "saga", "01", "action", names.reply, names.topic)
    assert b.payload == payload
    assert b.offset == 0 and b.partition >= 0
    assert b.headers["X-Trace"] == "t-1"
    assert b.key == names.gid.encode()

    got = read_topic(kafka, names.reply, stop_key=names.gid)
    assert len(got) == 1
    assert got[0].key == names.gid
    assert got[0].value == reply(names.gid, "01", "action", "SUCCESS", 'done \\"ok\\" é')
    assert dict(got[0].headers) == {"dtm-gid": names.gid.encode(), "dtm-branch-id": b"01",
                                    "dtm-op": b"action"}


def test_dtmqs_headers_win_over_branch_headers_of_the_same_name(kafka, names, producer,
                                                                make_worker):
    elsewhere = names.reply + "-elsewhere"
    # dtmq writes its headers first, then the transaction's branch_headers
    producer.produce(names.topic, names.gid, b"v", [
        ("dtm-gid", names.gid), ("dtm-trans-type", "saga"), ("dtm-branch-id", "01"),
        ("dtm-op", "action"), ("dtm-reply-to", names.reply),
        ("dtm-gid", "spoofed"), ("dtm-op", "compensate"), ("dtm-reply-to", elsewhere)])
    rec = Recorder()
    w = make_worker(names.group, [names.topic], rec)
    assert w.run(max_messages=1, timeout=WAIT_S) == 1
    assert (rec.calls[0].gid, rec.calls[0].op, rec.calls[0].reply_to) == \
        (names.gid, "action", names.reply)
    got = read_topic(kafka, names.reply, stop_key=names.gid)
    assert [m.value for m in got] == [reply(names.gid, "01", "action", "SUCCESS")]


def test_failure_and_ongoing_are_replied_as_dtm_results(kafka, names, producer, make_worker):
    for tt, bid, op in (("saga", "01", "action"), ("saga", "02", "compensate"), ("tcc", "03", "try")):
        producer.branch(names.topic, names.gid, tt, bid, op, names.reply, b"{}")
    rec = (Recorder().rule(FAILURE("insufficient balance"), op="action")
           .rule(ONGOING, op="compensate").rule(SUCCESS, op="try"))
    w = make_worker(names.group, [names.topic], rec)
    assert w.run(max_messages=3, timeout=WAIT_S) == 3
    assert rec.calls[2].trans_type == "tcc"
    got = read_topic(kafka, names.reply, want=3)
    assert [m.value for m in got] == [  # one gid: one partition, in order
        reply(names.gid, "01", "action", "FAILURE", "insufficient balance"),
        reply(names.gid, "02", "compensate", "ONGOING"),
        reply(names.gid, "03", "try", "SUCCESS")]
    assert {m.key for m in got} == {names.gid}


def test_msg_branch_gets_no_reply_and_is_handled_again_until_success(kafka, names, producer,
                                                                     make_worker):
    producer.branch(names.topic, names.gid, "msg", "01", "action", names.reply, b'{"m":1}')
    # a saga branch behind it in the same partition: its reply is the sentinel
    producer.branch(names.topic, names.gid, "saga", "02", "action", names.reply, b"{}")
    rec = (Recorder().rule(FAILURE("not yet"), times=1).rule(RuntimeError("db down"), times=1)
           .rule(SUCCESS, times=1).rule(FAILURE("would be replied if it were not msg")))
    w = make_worker(names.group, [names.topic], rec, retry_pause=0.1)
    assert w.run(max_messages=4, timeout=WAIT_S) == 4
    # FAILURE, an exception, then SUCCESS: the same msg message three times
    assert [(c.trans_type, c.branch_id, c.offset) for c in rec.calls] == \
        [("msg", "01", 0)] * 3 + [("saga", "02", 1)]
    got = read_topic(kafka, names.reply, stop_key=names.gid)
    assert [m.value for m in got] == [
        reply(names.gid, "02", "action", "FAILURE", "would be replied if it were not msg")]


def test_messages_without_dtm_headers_are_skipped_and_committed(kafka, names, producer,
                                                                make_worker):
    producer.produce(names.topic, names.gid, b"no headers at all")
    producer.produce(names.topic, names.gid, b"no dtm-op",
                     [("dtm-gid", names.gid), ("dtm-branch-id", "01"), ("dtm-trans-type", "saga")])
    producer.produce(names.topic, names.gid, b"no dtm-branch-id",
                     [("dtm-gid", names.gid), ("dtm-op", "action")])
    producer.produce(names.topic, names.gid, b"null dtm-gid",
                     [("dtm-gid", None), ("dtm-branch-id", "01"), ("dtm-op", "action")])
    producer.branch(names.topic, names.gid, "saga", "05", "action", "", b"good")
    rec = Recorder()
    w = make_worker(names.group, [names.topic], rec)
    assert w.run(max_messages=1, timeout=WAIT_S) == 1  # skipped ones are not counted
    assert [(c.branch_id, c.reply_to, c.offset) for c in rec.calls] == [("05", "", 4)]
    partition = rec.calls[0].partition
    w.close()  # commits
    assert committed_offset(kafka, names.group, names.topic, partition) == 5


def test_offsets_are_committed_so_the_next_worker_does_not_redeliver(kafka, names, producer,
                                                                     make_worker):
    for bid in ("01", "02", "03"):
        producer.branch(names.topic, names.gid, "saga", bid, "action", names.reply, b"x")
    r1 = Recorder()
    w1 = make_worker(names.group, [names.topic], r1)
    assert w1.run(max_messages=3, timeout=WAIT_S) == 3
    partition = r1.calls[0].partition
    w1.close()
    assert committed_offset(kafka, names.group, names.topic, partition) == 3

    producer.branch(names.topic, names.gid, "saga", "04", "action", names.reply, b"x")
    r2 = Recorder()
    w2 = make_worker(names.group, [names.topic], r2)
    # same key, same partition: a redelivered 01..03 would come before 04
    assert w2.run(max_messages=1, timeout=WAIT_S) == 1
    assert (r2.calls[0].branch_id, r2.calls[0].offset) == ("04", 3)
    w2.close()
    assert committed_offset(kafka, names.group, names.topic, partition) == 4


def test_a_message_whose_reply_failed_is_handled_again_in_this_worker_and_the_next(
        kafka, names, producer, make_worker):
    producer.branch(names.topic, names.gid, "saga", "01", "action", "bad topic!", b"x")
    producer.branch(names.topic, names.gid, "saga", "02", "action", names.reply, b"y")
    r1 = Recorder()
    w1 = make_worker(names.group, [names.topic], r1, retry_pause=0.1)
    assert w1.run(max_messages=2, timeout=WAIT_S) == 2
    # the same message twice: the partition never moved past it
    assert [(c.branch_id, c.offset) for c in r1.calls] == [("01", 0), ("01", 0)]
    partition = r1.calls[0].partition
    w1.close()
    assert committed_offset(kafka, names.group, names.topic, partition) in (-1001, 0), \
        "an offset was committed past a message whose reply failed"

    r2 = Recorder()
    w2 = make_worker(names.group, [names.topic], r2, retry_pause=0.1)
    assert w2.run(max_messages=1, timeout=WAIT_S) == 1
    assert (r2.calls[0].branch_id, r2.calls[0].offset) == ("01", 0)
    w2.close()
    # 02 is stuck behind 01, as at-least-once in order requires
    assert read_topic(kafka, names.reply, timeout=2) == []


def test_a_handler_that_raises_or_returns_no_result_gets_no_reply_and_the_worker_goes_on(
        kafka, names, producer, make_worker):
    for bid in ("01", "02", "03"):
        producer.branch(names.topic, names.gid, "saga", bid, "action", names.reply, b"x")
    rec = (Recorder().rule(RuntimeError("database down"), times=1)
           .rule(None, times=1).rule(SUCCESS))
    w = make_worker(names.group, [names.topic], rec)
    assert w.run(max_messages=3, timeout=WAIT_S) == 3
    assert [c.branch_id for c in rec.calls] == ["01", "02", "03"]  # not handled again here
    partition = rec.calls[0].partition
    w.close()
    # only 03 is answered; 01 and 02 are left to dtmq's deadline (it publishes them again)
    got = read_topic(kafka, names.reply, stop_key=names.gid)
    assert [m.value for m in got] == [reply(names.gid, "03", "action", "SUCCESS")]
    assert committed_offset(kafka, names.group, names.topic, partition) == 3


def test_stop_from_the_handler_and_from_another_thread(names, producer, make_worker):
    for bid in ("01", "02"):
        producer.branch(names.topic, names.gid, "saga", bid, "action", "", b"x")
    rec = Recorder()
    w = make_worker(names.group, [names.topic], rec)
    rec.stop_worker = w
    assert w.run(timeout=WAIT_S) == 1  # unlimited, stopped by the handler
    rec.stop_worker = None
    assert w.run(max_messages=1, timeout=WAIT_S) == 1  # a stop ends one run only
    assert [c.branch_id for c in rec.calls] == ["01", "02"]

    result = []
    t = threading.Thread(target=lambda: result.append(w.run()))
    t.start()
    time.sleep(0.3)
    w.stop()
    t.join(WAIT_S)
    assert result == [0]
    w.stop()  # a stop while no run is going: the next run returns 0 at once
    started = time.monotonic()
    assert w.run(timeout=WAIT_S) == 0
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("kw, want", [
    (dict(bootstrap=""), "bootstrap"),
    (dict(group=""), "group"),
    (dict(topics=[]), "topics"),
    (dict(topics="one.topic"), "topics"),
    (dict(topics=["ok", "bad topic!"]), "topics[1]"),
    (dict(handler=None), "handler"),
    (dict(consumer_config={"enable.auto.offset.store": True}), "enable.auto.offset.store"),
    (dict(consumer_config=["not", "a", "dict"]), "consumer_config"),
])
def test_bad_options_are_refused_naming_the_option(kw, want):
    opts = dict(bootstrap="127.0.0.1:1", group="g", topics=["t"], handler=lambda b: SUCCESS)
    opts.update(kw)
    with pytest.raises((ValueError, TypeError)) as e:
        Worker(create_topics=False, **opts)
    assert want in str(e.value)


def test_results_are_dtms_three_words():
    assert (SUCCESS.dtm_result, ONGOING.dtm_result) == ("SUCCESS", "ONGOING")
    assert FAILURE("no funds") == Result("FAILURE", "no funds")
    with pytest.raises(ValueError, match="'DONE' is not one of SUCCESS, FAILURE, ONGOING"):
        Result("DONE")
    with pytest.raises(TypeError, match="message"):
        Result("FAILURE", 42)
