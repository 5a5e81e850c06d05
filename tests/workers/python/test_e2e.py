"""End to end: a real dtmq on real Kafka publishes kafka:// branches, Python
workers (dtmq_worker.Worker) handle them inside the barrier on real
PostgreSQL (bank.py) and reply; transactions go in through the submit
client on PREFIXsubmit. The contract cases of
tests/integration/test_worker.c's e2e group, plus duplicates through the
barrier, a worker killed before its reply, and a late reply."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bank import Bank
from conftest import WAIT_S, BranchProducer, WorkerThread, fresh, fresh_gid, read_topic
from dtmq_worker import FAILURE, SUCCESS
from dtmq_worker.submit import msg, saga

HERE = Path(__file__).resolve().parent


def bank_topics():
    a, b = fresh("a"), fresh("b")
    return a, b, a + "-revert", b + "-revert"


def warm_up(producer: BranchProducer, bank: Bank, topics) -> None:
    """The worker has its partitions before dtmq publishes: one warm-up
    message per topic, waited for (as test_worker.c does)."""
    before = len(bank.calls)
    for t in topics:
        producer.branch(t, "warmup", "msg", "00", "warmup", "", b"")
    assert bank.wait(before + len(topics), 2 * WAIT_S) >= before + len(topics), "no warm-up"


@pytest.fixture
def bank_worker(pg, make_worker, producer):
    """start(accounts) -> (bank, worker thread): a worker in a fresh group
    on the accounts' topics, warmed up."""
    started = []

    def start(accounts, **bank_kw):
        bank = Bank(pg.conninfo, pg.schema, accounts)
        for k, v in bank_kw.items():
            setattr(bank, k, v)
        w = make_worker(fresh("busi"), list(accounts), bank)
        t = WorkerThread(w)
        started.append((bank, t))
        warm_up(producer, bank, list(accounts))
        return bank, t
    yield start
    for bank, t in started:
        if t.t.is_alive():
            t.stop()
        bank.close()


def test_saga_succeeds_through_two_python_workers(dtmq, pg, bank_worker, submit_client):
    a, b, a_rev, b_rev = bank_topics()
    bank, t = bank_worker({a: ("a", -1), a_rev: ("a", +1), b: ("b", +1), b_rev: ("b", -1)})
    gid = fresh_gid("saga-ok")
    body = saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 30}),
                      (f"kafka://{b}", f"kafka://{b_rev}", {"amount": 30})])
    r = submit_client.submit(body, wait_result=True, timeout=WAIT_S)
    assert (r.phase, r.status, r.dtm_result) == ("finished", 200, "SUCCESS"), r
    assert dtmq.status(gid) == "succeed"
    t.stop()
    assert [c[:5] for c in bank.business_calls()] == [
        (a, gid, "01", "action", "DONE"), (b, gid, "02", "action", "DONE")]
    assert (pg.balance("a"), pg.balance("b")) == (70, 130)


def test_saga_failure_compensates_in_reverse_order(dtmq, pg, bank_worker, submit_client):
    a, b, a_rev, b_rev = bank_topics()
    bank, t = bank_worker({a: ("a", -1), a_rev: ("a", +1), b: ("b", +1), b_rev: ("b", -1)},
                          refuse={(b, "action"): "B refuses"})
    gid = fresh_gid("saga-fail")
    body = saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 10}),
                      (f"kafka://{b}", f"kafka://{b_rev}", {"amount": 20})])
    r = submit_client.submit(body, wait_result=True, timeout=WAIT_S)
    assert (r.phase, r.status, r.dtm_result) == ("finished", 409, "FAILURE"), r
    assert "branch 02 action failed: B refuses" in r.message
    assert dtmq.status(gid) == "failed"
    assert bank.wait_business(4, WAIT_S) >= 4
    t.stop()
    assert bank.business_calls() == [
        (a, gid, "01", "action", "DONE"),
        (b, gid, "02", "action", "BUSINESS_ERROR"),
        # reverse order; 02's action was rolled back, so its compensation is a null one
        (b_rev, gid, "02", "compensate", "SKIPPED_NULL_COMPENSATION"),
        (a_rev, gid, "01", "compensate", "DONE")]
    assert (pg.balance("a"), pg.balance("b")) == (100, 100)


def test_ongoing_then_success_calls_the_branch_again(kafka, dtmq, pg, bank_worker, submit_client):
    a, _, a_rev, _ = bank_topics()
    bank, t = bank_worker({a: ("a", -1), a_rev: ("a", +1)}, ongoing={(a, "action"): 1})
    gid = fresh_gid("ongoing")
    r = submit_client.submit(saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 5})]))
    assert (r.phase, r.status) == ("accepted", 200), r
    assert dtmq.wait_status(gid, "succeed") == "succeed"
    t.stop()
    assert bank.business_calls() == [(a, gid, "01", "action", "ONGOING"),
                                      (a, gid, "01", "action", "DONE")]
    assert pg.balance("a") == 95
    replies = [json.loads(m.value) for m in read_topic(kafka, dtmq.reply_topic, timeout=3)
               if m.key == gid]
    assert [r["dtm_result"] for r in replies] == ["ONGOING", "SUCCESS"]


def test_a_duplicate_delivery_is_applied_once_through_the_barrier(kafka, dtmq, pg, bank_worker,
                                                                  submit_client, producer):
    a, _, a_rev, _ = bank_topics()
    bank, t = bank_worker({a: ("a", -1), a_rev: ("a", +1)})
    gid = fresh_gid("dup")
    r = submit_client.submit(saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 7})]),
                             wait_result=True, timeout=WAIT_S)
    assert r.status == 200, r
    # dtmq's own message, copied (partition, key, headers, value) and produced again
    original = [m for m in read_topic(kafka, a, stop_key=gid) if m.key == gid]
    assert len(original) == 1
    m = original[0]
    assert (b"dtm-gid", gid.encode()) in [(k.encode(), v) for k, v in m.headers]
    producer.produce(a, gid, m.value, m.headers, partition=m.partition)
    assert bank.wait_business(2, WAIT_S) >= 2
    t.stop()
    assert bank.business_calls() == [(a, gid, "01", "action", "DONE"),
                                      (a, gid, "01", "action", "SKIPPED_DUPLICATE")]
    assert pg.balance("a") == 93 and pg.effects(gid) == [("01", "action")]
    assert dtmq.status(gid) == "succeed"


def test_a_worker_killed_before_its_reply_is_replaced_and_the_step_applied_once(
        kafka, dtmq, pg, submit_client, producer, tmp_path):
    a, _, a_rev, _ = bank_topics()
    group = fresh("busi")
    marker = tmp_path / "died"

    def start(log_name, die_marker):
        log = open(tmp_path / log_name, "w")
        p = subprocess.Popen([sys.executable, str(HERE / "bank.py"), kafka, group, pg.conninfo,
                              pg.schema, str(die_marker), f"{a}=a:-1", f"{a_rev}=a:1"],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return p, log

    def log_has(name, text, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (tmp_path / name).read_text():
                return True
            time.sleep(0.1)
        return False

    p1, log1 = start("w1.log", marker)
    try:
        producer.branch(a, "warmup", "msg", "00", "warmup", "", b"")
        assert log_has("w1.log", "CALL warmup"), (tmp_path / "w1.log").read_text()
        gid = fresh_gid("killed")
        # request_timeout 3 s: dtmq publishes the branch again 3 s after the first publish
        body = saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 11})],
                    request_timeout=3)
        assert submit_client.submit(body).status == 200
        assert p1.wait(WAIT_S) == -9  # SIGKILL, right after its COMMIT, before the reply
        assert marker.read_text().split() == [gid, "01", "action", "DONE"]
        died = time.monotonic()
        assert pg.balance("a") == 89
        assert dtmq.status(gid) == "submitted"  # no reply: the branch is unanswered

        p2, log2 = start("w2.log", "")  # same group: gets the partition, reads the message again
        try:
            # session.timeout.ms 6 s: the dead worker's partitions move within seconds
            assert dtmq.wait_status(gid, "succeed", 25) == "succeed", dtmq.log_tail()
            assert time.monotonic() - died < 25
            # the dead worker's message itself came again (its offset was never
            # committed; offset 1, after the warm-up at 0), besides dtmq's republished
            # copy; the barrier skips it
            assert log_has("w2.log", f"CALL {gid} 01 action SKIPPED_DUPLICATE @1"), \
                (tmp_path / "w2.log").read_text()
        finally:
            p2.terminate()
            assert p2.wait(WAIT_S) == 0
            log2.close()
    finally:
        if p1.poll() is None:
            p1.kill()
        log1.close()
    w2 = (tmp_path / "w2.log").read_text()
    assert f"CALL {gid} 01 action DONE" not in w2
    assert pg.balance("a") == 89 and pg.effects(gid) == [("01", "action")]
    assert [r[:2] for r in pg.barrier_rows(gid)] == [("01", "action")]


def test_a_late_reply_is_recorded_and_the_branch_not_published_again(dtmq, pg, bank_worker,
                                                                    submit_client):
    a, _, a_rev, _ = bank_topics()
    rt = 2
    bank, t = bank_worker({a: ("a", -1), a_rev: ("a", +1)},
                          sleep_first={(a, "action"): rt + 1.5})
    gid = fresh_gid("late")
    # retry_interval 3 s, doubled after the unknown result: dtmq would publish again
    # ~6 s after the deadline, long after the late reply (1.5 s after it)
    body = saga(gid, [(f"kafka://{a}", f"kafka://{a_rev}", {"amount": 3})],
                request_timeout=rt, retry_interval=3)
    sent = time.monotonic()
    assert submit_client.submit(body).status == 200
    assert bank.wait_business(1, WAIT_S) >= 1
    [(started, ended)] = bank.times[(gid, "01", "action")]
    assert ended - sent > rt, "the reply was not late"
    assert dtmq.wait_status(gid, "succeed", WAIT_S) == "succeed"
    time.sleep(1)
    t.stop()
    # one call: the late SUCCESS was recorded, so dtmq did not publish the branch again
    assert bank.business_calls() == [(a, gid, "01", "action", "DONE")]
    assert pg.balance("a") == 97
    branches = {(x["branch_id"], x["op"]): x["status"] for x in dtmq.query(gid)["branches"]}
    assert branches[("01", "action")] == "succeed"


def test_a_msg_branch_is_delivered_without_a_reply_and_held_until_success(
        kafka, dtmq, pg, make_worker, producer, submit_client):
    from dtmq_worker import barrier
    m = fresh("m")
    bank = Bank(pg.conninfo, pg.schema, {m: ("b", +1)})
    first = {"left": 1}

    def handler(b):
        r = bank(b)
        if b.gid != "warmup" and first["left"]:
            first["left"] -= 1
            return FAILURE("not yet")  # after its barrier commit: handled again, a duplicate
        return r
    w = make_worker(fresh("busi"), [m], handler, retry_pause=0.2)
    t = WorkerThread(w)
    try:
        warm_up(producer, bank, [m])
        gid = fresh_gid("msg")
        body = msg(gid, [(f"kafka://{m}", {"amount": 4})],
                   query_prepared="http://127.0.0.1:9/qp")

        def local_transaction():
            r = barrier.call(pg.conn, barrier.msg_branch(gid), lambda cur: cur.execute(
                f"INSERT INTO {pg.schema}.effects (gid, branch_id, op) VALUES (%s, '00', 'msg')",
                (gid,)))
            assert r.outcome is barrier.Outcome.DONE
        r = submit_client.msg_do_and_submit(body, local_transaction, wait_result=True,
                                            timeout=WAIT_S)
        assert (r.phase, r.status) == ("finished", 200), r
        assert dtmq.status(gid) == "succeed"
        assert bank.wait_business(2, WAIT_S) >= 2
    finally:
        t.stop()
        bank.close()
    calls = bank.business_calls()
    assert [c[1:] for c in calls] == [(gid, "01", "action", "DONE"),
                                      (gid, "01", "action", "SKIPPED_DUPLICATE")]
    assert pg.balance("b") == 104
    assert barrier.query_prepared(pg.conn, gid) == 200
    # msg branches get no reply: nothing on dtmq's reply topic for this gid
    assert [x for x in read_topic(kafka, dtmq.reply_topic, timeout=3) if x.key == gid] == []
