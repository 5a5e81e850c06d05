-- postgres.sql — the table of dtmq's subtransaction barrier on PostgreSQL
-- (connectors/libdtmq/barrier/barrier_pg.c, docs/barrier.md). The same table as DTM's
-- dtm_barrier.barrier, so a service can mix dtmq's C barrier and DTM's SDKs.
--
-- Apply it once to every database whose business tables a barrier protects:
-- the barrier rows must live in the same database as the business writes,
-- because they commit in the same local transaction. Idempotent.
--
--   psql "host=127.0.0.1 port=55432 dbname=dtmq_test user=postgres" -f schemas/barrier/postgres.sql
--
-- One row per (gid, branch_id, op, barrier_id) the barrier has seen:
--   op         the branch op the row stands for (action, compensate, try,
--              confirm, cancel, msg, ...)
--   reason     the op whose call inserted the row: equal to op normally; the
--              compensating op when a compensation arrived first and inserted
--              its origin's row (null compensation / hanging protection);
--              "rollback" for the msg row that query_prepared inserted
--   barrier_id the barrier call's counter within one handler call ("01", "02", ...)
-- The UNIQUE constraint is what makes the barrier work: the barrier inserts
-- with ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING.
-- Rows are never updated or deleted by dtmq; prune old ones by create_time
-- only for transactions that are long finished.

CREATE SCHEMA IF NOT EXISTS dtm_barrier;

CREATE TABLE IF NOT EXISTS dtm_barrier.barrier (
    id          bigserial PRIMARY KEY,
    trans_type  varchar(45)  NOT NULL DEFAULT '',
    gid         varchar(128) NOT NULL DEFAULT '',
    branch_id   varchar(128) NOT NULL DEFAULT '',
    op          varchar(45)  NOT NULL DEFAULT '',
    barrier_id  varchar(45)  NOT NULL DEFAULT '',
    reason      varchar(45)  NOT NULL DEFAULT '',
    create_time timestamptz  NOT NULL DEFAULT now(),
    update_time timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT uniq_barrier UNIQUE (gid, branch_id, op, barrier_id)
);

CREATE INDEX IF NOT EXISTS barrier_create_time ON dtm_barrier.barrier (create_time);
