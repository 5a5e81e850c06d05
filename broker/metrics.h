/*
 * metrics.h — dtmq's Prometheus metrics, served at /api/metrics in the text
 * exposition format. DTM's metric names are kept (so DTM dashboards work):
 *   dtm_server_info, dtm_server_process_total{type,api,status},
 *   dtm_server_response_duration{type,api}, dtm_transaction_process_total{model,status},
 *   dtm_transaction_handled_duration{model}, dtm_branch_process_total{model,branchid,branchtype,status}
 * plus dtmq's own (dtmq_*: calls in flight, queue depths, store latency,
 * Kafka consumer lag, transactions by status). docs/operations.md lists them.
 *
 * Recording is thread-safe and cheap (one mutex, a small table); label values
 * must come from small sets (route patterns, modes, ops), never from gids.
 */
#ifndef DTMQ_METRICS_H
#define DTMQ_METRICS_H

#include <stdint.h>

/* Adds v to the counter name{labels}. labels: Prometheus label text such as
 * model="saga",status="OK" (values escaped by the caller via metrics_label). */
void metrics_count(const char *name, const char *labels, double v);
/* Records one observation (seconds) in the histogram name{labels}. */
void metrics_observe(const char *name, const char *labels, double seconds);
/* Sets the gauge name{labels}. */
void metrics_gauge(const char *name, const char *labels, double v);

/* Escapes a label value into buf (backslash, quote, newline). */
const char *metrics_label(const char *value, char *buf, unsigned len);

/* The whole exposition (malloc'd). */
char *metrics_render(void);
/* Forgets every series (tests). */
void metrics_reset(void);

#endif
