"""dtmq_worker — Python workers for dtmq's Kafka branches, DTM's barrier on
PostgreSQL, and a client that submits transactions over Kafka.

    from dtmq_worker import Worker, SUCCESS, FAILURE, ONGOING

    def handle(branch):              # a Branch: gid, trans_type, branch_id, op, payload, headers
        ...                          # the business step, idempotent
        return SUCCESS               # or FAILURE("insufficient funds"), or ONGOING

    with Worker(bootstrap="127.0.0.1:9092", group="bank2", topics=["bank2.transin"],
                handler=handle) as w:
        w.run()

The contract it keeps is docs/kafka.md ("The worker contract") of dtmq;
the modules: results (the three answers), branch (what a handler gets),
worker (the consumer loop), barrier (psycopg 3), submit (the client).
The barrier needs psycopg (``import dtmq_worker.barrier``); the rest needs
only confluent-kafka.
"""
from .branch import Branch
from .results import FAILURE, ONGOING, SUCCESS, Result
from .submit import Reply, ReplyTimeout, SubmitClient, SubmitError
from .worker import Worker, WorkerError

__all__ = ["Branch", "Result", "SUCCESS", "FAILURE", "ONGOING", "Worker", "WorkerError",
           "SubmitClient", "Reply", "ReplyTimeout", "SubmitError"]
__version__ = "0.1.0"
