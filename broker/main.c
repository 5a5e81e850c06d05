/*
 * main.c — starts dtmq: loads the configuration, opens the store, Kafka, the
 * engine, the HTTP API and the Kafka ingress in that order, serves until SIGTERM or SIGINT, then stops them
 * in reverse order. Any part that fails to start stops the ones already
 * started and exits with status 1 after one line naming what failed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "broker.h"
#include "cli.h"
#include "config.h"
#include "engine/engine.h"
#include "http_server.h"
#include "kafka_ingress.h"
#include "log.h"
#include "metrics.h"
#include "version.h"


/* Blocks the stop signals in this thread (and so in every thread started
 * after), so that only wait_for_stop_signal() receives them. */
static void block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int wait_for_stop_signal(const sigset_t *set)
{
    int sig = 0;
    sigwait(set, &sig);
    return sig;
}

/* Store latency into dtmq_store_operation_seconds{op}. */
static void observe_store(const char *op, double seconds)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "op=\"%s\"", op);
    metrics_observe("dtmq_store_operation_seconds", labels, seconds);
}

static int start_broker(broker *b, const dtmq_config *cfg, http_server **http)
{
    char err[1024];
    b->cfg = cfg;
    store_set_observer(observe_store);
    b->store = store_open(cfg->store_uri, err, sizeof(err));
    if (b->store == NULL) {
        log_error("%s", err);
        return -1;
    }
    b->kafka = kafka_link_open(cfg, err, sizeof(err));
    if (b->kafka == NULL) {
        log_error("%s", err);
        return -1;
    }
    b->engine = engine_start(b, err, sizeof(err));
    if (b->engine == NULL) {
        log_error("%s", err);
        return -1;
    }
    http_server_options opts = {
        .host = cfg->http_host,
        .port = cfg->http_port,
        .max_body = (size_t)cfg->max_body_bytes,
        .threads = (unsigned)cfg->http_threads,
    };
    *http = http_server_start(&opts, api_handle, b, err, sizeof(err));
    if (*http == NULL) {
        log_error("%s", err);
        return -1;
    }
    b->ingress = kafka_ingress_start(b, err, sizeof(err));
    if (b->ingress == NULL) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

/* Kafka ingress stops first (it feeds the engine). The engine then answers
 * every waiting wait_result request and releases its leases, so the HTTP
 * server can stop with nothing pending. The producer's last delivery reports
 * still reach the engine's queues, which engine_free empties. */
/* A stop that hangs (librdkafka waiting for a cluster that was replaced
 * under it, say) must not keep the process for ever: STOP_TIMEOUT_S after the
 * signal the watchdog names the part being stopped and exits 1. Nothing
 * acknowledged is lost that way: it is in the store, and the leases run out. */
#define STOP_TIMEOUT_S 30
static const char *_Atomic stopping_part = "";

static void *stop_watchdog(void *arg)
{
    (void)arg;
    sleep(STOP_TIMEOUT_S);
    log_error("stop did not finish within %d s (stuck stopping %s); exiting without a clean stop: "
              "nothing acknowledged is lost, another process continues when the leases run out",
              STOP_TIMEOUT_S, atomic_load(&stopping_part));
    _exit(1);
}

static void start_stop_watchdog(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, stop_watchdog, NULL) == 0)
        pthread_detach(t);
}

static void stop_broker(broker *b, http_server *http)
{
    atomic_store(&b->stopping, 1); /* new writes over HTTP get 503 from now on */
    atomic_store(&stopping_part, "the Kafka ingress");
    kafka_ingress_stop(b->ingress);
    atomic_store(&stopping_part, "the engine");
    engine_stop(b->engine);
    atomic_store(&stopping_part, "the HTTP server");
    http_server_stop(http);
    atomic_store(&stopping_part, "the Kafka producer");
    kafka_link_stop_producer(b->kafka);
    engine_free(b->engine);
    atomic_store(&stopping_part, "the Kafka link");
    kafka_link_close(b->kafka);
    atomic_store(&stopping_part, "the store");
    store_close(b->store);
}

static void announce(const broker *b, const dtmq_config *cfg, int port)
{
    const char *bootstrap = kafka_link_bootstrap(b->kafka);
    log_info("dtmq %s serving HTTP on http://%s:%d", DTMQ_VERSION, cfg->http_host, port);
    log_info("store: %s", store_display_uri(b->store));
    if (bootstrap != NULL)
        log_info("kafka (%s): bootstrap %s", kafka_link_mode(b->kafka), bootstrap);
    else
        log_info("kafka: off");
}

int main(int argc, char **argv)
{
    /* `dtmq query GID`, `dtmq list`, ...: the operator's command line (cli.c) */
    if (argc > 1 && argv[1][0] != '-' && strcmp(argv[1], "serve") != 0)
        return cli_main(argc, argv);
    /* `dtmq serve ...` is the same as `dtmq ...` */
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    dtmq_config cfg;
    char err[1024];
    config_status cs = config_load(&cfg, argc, argv, err, sizeof(err));
    if (cs != CONFIG_OK) {
        if (cs == CONFIG_EXIT_HELP)
            config_print_usage(stdout, argv[0]);
        else if (cs == CONFIG_EXIT_VERSION)
            printf("dtmq %s\n", DTMQ_VERSION);
        else
            fprintf(stderr, "dtmq: %s\n", err);
        config_free(&cfg);
        return cs == CONFIG_ERROR ? 2 : 0;
    }
    log_configure(cfg.log_level, cfg.log_format);

    sigset_t stop_signals;
    block_stop_signals(&stop_signals);

    broker b = {0};
    http_server *http = NULL;
    if (start_broker(&b, &cfg, &http) != 0) {
        stop_broker(&b, http);
        config_free(&cfg);
        return 1;
    }
    announce(&b, &cfg, http_server_port(http));
    int sig = wait_for_stop_signal(&stop_signals);
    log_info("received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    start_stop_watchdog();
    stop_broker(&b, http);
    config_free(&cfg);
    metrics_reset();
    log_info("stopped");
    return 0;
}
