"""dtmq_worker.barrier on real PostgreSQL, on the table of
schemas/barrier/postgres.sql: DTM's algorithm case by case (duplicates,
null compensation, hanging, business failure, msg), atomicity with the
business write, and concurrent duplicates (the cases of
tests/integration/test_barrier.c's table)."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from conftest import fresh_gid
from dtmq_worker import FAILURE, SUCCESS
from dtmq_worker import barrier
from dtmq_worker.barrier import BranchInfo, BusinessFailure, Outcome


def transfer(pg, gid, amount, acct="a"):
    """fn: moves amount off acct and records the effect."""
    def fn(cur):
        cur.execute(f"UPDATE {pg.schema}.accounts SET balance = balance - %s WHERE id = %s",
                    (amount, acct))
        cur.execute(f"INSERT INTO {pg.schema}.effects (gid, branch_id, op) VALUES (%s, '01', 'x')",
                    (gid,))
        return "moved"
    return fn


def test_a_duplicate_call_runs_fn_once(pg):
    gid = fresh_gid("dup")
    b = BranchInfo(gid, "saga", "01", "action")
    r1 = barrier.call(pg.conn, b, transfer(pg, gid, 10))
    r2 = barrier.call(pg.conn, b, transfer(pg, gid, 10))
    assert (r1.outcome, r1.value, r2.outcome) == (Outcome.DONE, "moved", Outcome.SKIPPED_DUPLICATE)
    assert pg.balance("a") == 90
    assert pg.barrier_rows(gid) == [("01", "action", "01", "action")]
    assert (r1.to_result(), r2.to_result()) == (SUCCESS, SUCCESS)


def test_action_then_compensation_both_run(pg):
    gid = fresh_gid("comp")
    assert barrier.call(pg.conn, BranchInfo(gid, "saga", "01", "action"),
                        transfer(pg, gid, 10)).outcome is Outcome.DONE
    assert barrier.call(pg.conn, BranchInfo(gid, "saga", "01", "compensate"),
                        transfer(pg, gid, -10)).outcome is Outcome.DONE
    assert pg.balance("a") == 100
    assert pg.barrier_rows(gid) == [("01", "action", "01", "action"),
                                    ("01", "compensate", "01", "compensate")]


@pytest.mark.parametrize("trans_type, action, compensation", [
    ("saga", "action", "compensate"), ("tcc", "try", "cancel"), ("xa", "action", "rollback")])
def test_null_compensation_is_skipped_and_the_hanging_action_never_runs(pg, trans_type, action,
                                                                         compensation):
    gid = fresh_gid("null")
    comp = barrier.call(pg.conn, BranchInfo(gid, trans_type, "01", compensation),
                        transfer(pg, gid, -10))
    late = barrier.call(pg.conn, BranchInfo(gid, trans_type, "01", action), transfer(pg, gid, 10))
    assert (comp.outcome, late.outcome) == (Outcome.SKIPPED_NULL_COMPENSATION,
                                            Outcome.SKIPPED_HANGING)
    assert pg.balance("a") == 100 and pg.effects(gid) == []
    # the compensation wrote its origin's row first, with itself as reason
    assert pg.barrier_rows(gid) == [("01", action, "01", compensation),
                                    ("01", compensation, "01", compensation)]


def test_a_business_failure_rolls_back_fn_and_the_barrier_rows(pg):
    gid = fresh_gid("fail")
    b = BranchInfo(gid, "saga", "01", "action")

    def refuse(cur):
        transfer(pg, gid, 10)(cur)
        raise BusinessFailure("insufficient funds")
    r = barrier.call(pg.conn, b, refuse)
    assert (r.outcome, r.message) == (Outcome.BUSINESS_ERROR, "insufficient funds")
    assert r.to_result() == FAILURE("insufficient funds")
    assert pg.balance("a") == 100 and pg.barrier_rows(gid) == []
    # nothing was kept, so a retry runs fn
    assert barrier.call(pg.conn, b, transfer(pg, gid, 10)).outcome is Outcome.DONE
    assert pg.balance("a") == 90


def test_a_database_error_in_fn_rolls_back_and_propagates(pg):
    gid = fresh_gid("dberr")
    b = BranchInfo(gid, "saga", "01", "action")

    def broken(cur):
        transfer(pg, gid, 10)(cur)
        cur.execute("SELECT * FROM no_such_table")
    with pytest.raises(psycopg.errors.UndefinedTable):
        barrier.call(pg.conn, b, broken)
    assert pg.balance("a") == 100 and pg.barrier_rows(gid) == []
    assert pg.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_fn_may_not_end_the_barriers_transaction(pg):
    gid = fresh_gid("commit")

    def commits(cur):
        transfer(pg, gid, 10)(cur)
        cur.connection.commit()
    with pytest.raises(psycopg.ProgrammingError):
        barrier.call(pg.conn, BranchInfo(gid, "saga", "01", "action"), commits)
    assert pg.balance("a") == 100 and pg.barrier_rows(gid) == []


def test_concurrent_duplicates_run_fn_once(pg):
    gid = fresh_gid("race")
    b = BranchInfo(gid, "saga", "01", "action")
    outcomes, gate = [], threading.Barrier(4)

    def one():
        with psycopg.connect(pg.conninfo) as conn:  # not autocommit: the barrier begins its own
            gate.wait()
            def slow(cur):
                transfer(pg, gid, 10)(cur)
                time.sleep(0.3)  # the others wait on the row's uniqueness check meanwhile
            outcomes.append(barrier.call(conn, b, slow).outcome)
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.value for o in outcomes) == ["DONE"] + ["SKIPPED_DUPLICATE"] * 3
    assert pg.balance("a") == 90


def test_msg_query_prepared_answers_from_the_local_transaction(pg):
    committed, lost = fresh_gid("msg-ok"), fresh_gid("msg-lost")
    r = barrier.call(pg.conn, barrier.msg_branch(committed), transfer(pg, committed, 10))
    assert r.outcome is Outcome.DONE
    assert barrier.query_prepared(pg.conn, committed) == 200
    assert barrier.query_prepared(pg.conn, committed) == 200
    # never committed: 409, and the row says rollback, so it can never commit later
    assert barrier.query_prepared(pg.conn, lost) == 409
    late = barrier.call(pg.conn, barrier.msg_branch(lost), transfer(pg, lost, 10))
    assert late.outcome is Outcome.MSG_DUPLICATE
    assert pg.balance("a") == 90
    assert pg.barrier_rows(lost) == [("00", "msg", "01", "rollback")]
    assert pg.barrier_rows(committed) == [("00", "msg", "01", "msg")]


def test_query_prepared_waits_for_a_local_transaction_in_progress(pg):
    gid = fresh_gid("msg-wait")
    answers = []
    inside = threading.Event()

    def local():
        with psycopg.connect(pg.conninfo) as conn:
            def fn(cur):
                transfer(pg, gid, 10)(cur)
                inside.set()
                time.sleep(0.5)  # query_prepared comes now and must wait for the commit
            barrier.call(conn, barrier.msg_branch(gid), fn)
    t = threading.Thread(target=local)
    t.start()
    assert inside.wait(10)
    answers.append(barrier.query_prepared(pg.conn, gid))
    t.join(10)
    assert answers == [200]


def test_bad_calls_are_refused_naming_the_problem(pg):
    ok = BranchInfo("g", "saga", "01", "action")
    with pytest.raises(ValueError, match="gid is missing"):
        barrier.call(pg.conn, BranchInfo("", "saga", "01", "action"), lambda c: None)
    with pytest.raises(ValueError, match="op is longer than 45"):
        barrier.call(pg.conn, BranchInfo("g", "saga", "01", "x" * 46), lambda c: None)
    with pytest.raises(ValueError, match="barrier_id"):
        barrier.call(pg.conn, ok, lambda c: None, barrier_id="")
    with pytest.raises(ValueError, match="fn"):
        barrier.call(pg.conn, ok, None)
    with pytest.raises(TypeError, match="psycopg.Connection"):
        barrier.call("not a connection", ok, lambda c: None)
    with psycopg.connect(pg.conninfo) as conn:
        conn.execute("SELECT 1")  # opens a transaction (not autocommit)
        with pytest.raises(ValueError, match="not idle"):
            barrier.call(conn, ok, lambda c: None)
    with pytest.raises(ValueError, match="gid"):
        barrier.query_prepared(pg.conn, "")


def test_the_handler_helper_keys_the_barrier_by_the_branch(pg):
    from dtmq_worker import Branch
    gid = fresh_gid("helper")
    seen = []
    h = barrier.handler(pg.conn, lambda b, cur: (seen.append(b.payload),
                                                 transfer(pg, gid, 10)(cur)))
    b = Branch(gid, "saga", "01", "action", "r", b"p")
    assert (h(b), h(b)) == (SUCCESS, SUCCESS)
    assert seen == [b"p"] and pg.balance("a") == 90
    # with a connection factory (a pool's .connection works the same way)
    h2 = barrier.handler(lambda: psycopg.connect(pg.conninfo),
                         lambda b, cur: (_ for _ in ()).throw(BusinessFailure("no")))
    assert h2(Branch(gid, "saga", "02", "action", "r", b"")) == FAILURE("no")
