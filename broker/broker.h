/*
 * broker.h — the running broker: the parts main() starts and every request
 * handler reaches. Owned by main(); handlers only borrow it.
 */
#ifndef DTMQ_BROKER_H
#define DTMQ_BROKER_H

#include "daemon/store/store.h"
#include "config.h"
#include "kafka_link.h"

struct engine;
struct kafka_ingress;

typedef struct broker {
    const dtmq_config *cfg;
    store *store;
    kafka_link *kafka;
    struct engine *engine;
    struct kafka_ingress *ingress;
    _Atomic int stopping; /* set when a stop begins: new writes get 503 (api.c) */
} broker;

#endif
