"""What the worker and the submit client share: Kafka's topic name rule,
settings merged with the caller's overrides, and creating missing topics.

The topic rule is the one dtmq applies (connectors/libdtmq/common/rules.c):
1 to 249 of [A-Za-z0-9._-], not "." or "..".
"""
from __future__ import annotations

import logging
import re
import time
from typing import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")

CREATE_TOPICS_TIMEOUT_S = 10.0
TOPIC_VISIBLE_TIMEOUT_S = 5.0


def topic_name_ok(name: object) -> bool:
    """Kafka's (and dtmq's) topic name rule."""
    return (isinstance(name, str) and _TOPIC_RE.fullmatch(name) is not None
            and name not in (".", ".."))


def merged(defaults: Mapping[str, object], overrides: Mapping[str, object] | None,
           what: str) -> dict:
    """defaults updated by overrides (a librdkafka property dict)."""
    conf = dict(defaults)
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise TypeError(f"{what}: a dict of librdkafka properties is needed, "
                            f"not {type(overrides).__name__}")
        conf.update(overrides)
    return conf


def create_missing_topics(admin_conf: Mapping[str, object], topics: Iterable[str],
                          log: logging.Logger) -> None:
    """Creates those of topics that do not exist yet, with the cluster's
    default partitions and replication, and waits until the metadata shows
    them. Best effort, as in the C worker: a topic that cannot be created is
    logged and left to whoever creates it later (dtmq's first publish does);
    a consumer notices it at its next metadata refresh. Without this a topic
    created after the subscription is noticed only at that refresh, and on a
    KRaft cluster a subscription does not create topics by itself."""
    names = [t for t in topics if not t.startswith("^")]  # a regex names no topic
    if not names:
        return
    admin = AdminClient(dict(admin_conf))
    try:
        futures = admin.create_topics([NewTopic(t, -1, -1) for t in names],
                                      request_timeout=CREATE_TOPICS_TIMEOUT_S)
    except KafkaException as e:
        log.warning("cannot create missing topics %s: %s", names, e)
        return
    for name, fut in futures.items():
        try:
            fut.result(timeout=CREATE_TOPICS_TIMEOUT_S + 1)
        except KafkaException as e:
            if e.args and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            log.warning("cannot create topic %s: %s", name, e)
        except Exception as e:  # a future that never answered
            log.warning("cannot create topic %s: %s", name, e)
    wait_for_topics(admin, names)


def wait_for_topics(admin: AdminClient, names: list[str]) -> None:
    """Waits (TOPIC_VISIBLE_TIMEOUT_S at most) until every name has partitions."""
    deadline = time.monotonic() + TOPIC_VISIBLE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=2)
        except KafkaException:
            md = None
        if md is not None and all(
                n in md.topics and md.topics[n].error is None and md.topics[n].partitions
                for n in names):
            return
        time.sleep(0.1)
