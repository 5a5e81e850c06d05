"""The submit client (dtmq_worker.SubmitClient) against a real dtmq on real
Kafka: accepted and finished replies, conflicts, a refusal dtmq
dead-letters, bad input refused before sending, a reply that never comes,
and several threads submitting through one client."""
from __future__ import annotations

import threading
import time

import pytest

from conftest import WAIT_S, fresh, fresh_gid
from confluent_kafka import KafkaError, KafkaException

from dtmq_worker import ReplyTimeout, SubmitClient, SubmitError
from dtmq_worker.submit import msg, saga


def test_submit_is_answered_accepted_then_finished(dtmq, submit_client):
    gid = fresh_gid("empty")
    body = saga(gid, [("", "", "{}"), ("", "", "{}")])  # empty URLs: steps that succeed at once
    r = submit_client.submit(body, wait_result=True, timeout=WAIT_S)
    assert (r.gid, r.op, r.phase, r.status, r.dtm_result) == \
        (gid, "submit", "finished", 200, "SUCCESS")
    assert dtmq.status(gid) == "succeed"
    # without wait_result: the accepted reply; a finished saga cannot be submitted again
    again = submit_client.submit(body)
    assert (again.phase, again.status, again.dtm_result) == ("accepted", 409, "FAILURE")
    assert "succeed" in again.message


def test_prepare_and_abort_a_msg(dtmq, submit_client):
    gid = fresh_gid("abort")
    body = msg(gid, [("kafka://" + fresh("never"), {"n": 1})], query_prepared="http://127.0.0.1:9/q")
    assert submit_client.prepare(body).status == 200
    assert dtmq.status(gid) == "prepared"
    # dtmq fails a prepared msg at once, without a pass: 'finished' repeats the answer
    started = time.monotonic()
    r = submit_client.abort({"gid": gid, "trans_type": "msg"}, wait_result=True)
    assert (r.phase, r.status, r.dtm_result) == ("finished", 200, "SUCCESS"), r
    assert time.monotonic() - started < 10
    assert dtmq.status(gid) == "failed"


def test_a_message_dtmq_dead_letters_is_answered_400_with_the_reason(submit_client):
    gid = fresh_gid("bad")
    body = {"gid": gid, "trans_type": "saga", "steps": [{"action": "", "compensate": ""}],
            "payloads": ["1", "2"]}
    r = submit_client.submit(body, wait_result=True)
    assert (r.phase, r.status, r.dtm_result) == ("accepted", 400, "FAILURE"), r
    assert "payloads: 2 given for 1 steps" in r.message


@pytest.mark.parametrize("op, body, want", [
    ("submit", {"trans_type": "saga"}, "gid is missing"),
    ("submit", {"gid": "x" * 129, "trans_type": "saga"}, "longer than 128"),
    ("submit", {"gid": "g", "trans_type": "sagas"}, "trans_type 'sagas'"),
    ("commit", {"gid": "g"}, "op: 'commit' is not one of"),
    ("registerBranch", {"gid": "g", "trans_type": "tcc", "branch_id": 1}, "branch_id: every value"),
    ("registerBranch", {"gid": "g", "trans_type": "tcc"}, "branch_id is missing"),
    ("prepare", {"gid": "g", "trans_type": "msg", "op": "submit"}, "names op 'submit'"),
])
def test_bad_input_is_refused_before_sending_naming_the_problem(submit_client, op, body, want):
    with pytest.raises(ValueError) as e:
        submit_client.send(op, body)
    assert want in str(e.value)


def test_bad_client_options_are_refused(kafka):
    with pytest.raises(ValueError, match="reply_to"):
        SubmitClient(kafka, reply_to="bad topic!")
    with pytest.raises(ValueError, match="bootstrap"):
        SubmitClient("", reply_to="ok")
    with pytest.raises(ValueError, match="topic_prefix"):
        SubmitClient(kafka, reply_to="ok", topic_prefix="no spaces ")


def test_no_answer_raises_reply_timeout_in_time(kafka):
    # a prefix no dtmq reads: the message is sent, nobody answers
    with SubmitClient(kafka, reply_to=fresh("replies"), topic_prefix=fresh("nobody") + ".") as c:
        started = time.monotonic()
        with pytest.raises(ReplyTimeout, match="no 'accepted' reply"):
            c.submit(saga(fresh_gid("lost"), [("", "", "")]), timeout=2)
        assert 2 <= time.monotonic() - started < 10


def test_several_threads_share_one_client(dtmq, submit_client):
    gids = [fresh_gid(f"thr{i}") for i in range(6)]
    results: dict[str, object] = {}

    def one(gid):
        results[gid] = submit_client.submit(saga(gid, [("", "", "")]), wait_result=True)
    threads = [threading.Thread(target=one, args=(g,)) for g in gids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert {g: (r.gid, r.phase, r.status) for g, r in results.items()} == \
        {g: (g, "finished", 200) for g in gids}


class _LeaderlessThenReady:
    """A consumer whose partition has no leader for its first `misses` reads
    of the end offset (what a topic made a moment ago answers), then has one."""

    def __init__(self, misses: int, code: int) -> None:
        self.misses, self.code, self.calls = misses, code, 0

    def get_watermark_offsets(self, tp, timeout):
        self.calls += 1
        if self.calls <= self.misses:
            raise KafkaException(KafkaError(self.code))
        return 0, 7


def _client_with(consumer) -> SubmitClient:
    c = SubmitClient.__new__(SubmitClient)  # only _end_offset's state
    c.reply_to, c._consumer = "replies", consumer
    return c


def test_the_end_of_a_partition_without_a_leader_yet_is_read_again():
    fake = _LeaderlessThenReady(3, KafkaError.NOT_LEADER_FOR_PARTITION)
    assert _client_with(fake)._end_offset(0, time.monotonic() + 5) == 7
    assert fake.calls == 4


def test_a_partition_that_never_gets_a_leader_fails_at_the_deadline_naming_it():
    fake = _LeaderlessThenReady(10**6, KafkaError.LEADER_NOT_AVAILABLE)
    started = time.monotonic()
    with pytest.raises(SubmitError, match=r"cannot read the end of replies\[0\]"):
        _client_with(fake)._end_offset(0, started + 0.5)
    assert 0.4 < time.monotonic() - started < 3


def test_an_error_that_is_not_about_a_leader_is_not_retried():
    fake = _LeaderlessThenReady(1, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(SubmitError, match="replies"):
        _client_with(fake)._end_offset(0, time.monotonic() + 5)
    assert fake.calls == 1
