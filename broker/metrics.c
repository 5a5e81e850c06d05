/*
 * metrics.c — the series table behind metrics.h. Each series is (name,
 * labels) with a value, or with histogram buckets; HELP and TYPE come from
 * the descriptor table below, so every metric is documented in one place.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct metric_desc {
    const char *name;
    metric_kind kind;
    const char *help;
} metric_desc;

static const metric_desc descs[] = {
    {"dtm_server_info", KIND_GAUGE, "dtmq's version (DTM's name; always 1)"},
    {"dtm_server_process_total", KIND_COUNTER, "requests served, by type, api and status (OK or FAIL)"},
    {"dtm_server_response_duration", KIND_HISTOGRAM, "seconds to answer a request, by type and api"},
    {"dtm_transaction_process_total", KIND_COUNTER, "transactions finished, by model and status (OK: succeed, FAIL: failed)"},
    {"dtm_transaction_handled_duration", KIND_HISTOGRAM, "seconds from creation to the final status, by model"},
    {"dtm_branch_process_total", KIND_COUNTER, "branch calls, by model, branchid, branchtype (op) and status (OK or FAIL)"},
    {"dtmq_branch_calls_in_flight", KIND_GAUGE, "branch calls queued or waiting for an answer"},
    {"dtmq_engine_queue_depth", KIND_GAUGE, "events waiting for the engine's workers"},
    {"dtmq_store_operation_seconds", KIND_HISTOGRAM, "seconds per store operation, by op"},
    {"dtmq_kafka_consumer_lag", KIND_GAUGE, "messages not yet taken on dtmq's consumed topics, by topic"},
    {"dtmq_transactions", KIND_GAUGE, "transactions in the store, by status"},
};

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct series {
    char *name;
    char *labels;
    double value;             /* counter, gauge; histogram: sum */
    uint64_t count;           /* histogram */
    uint64_t bucket[BUCKETS]; /* histogram, cumulative at render */
    struct series *next;
} series;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static series *all;

/* The series (name, labels), created on first use. Caller holds mu. */
static series *find(const char *name, const char *labels)
{
    series **tail = &all;
    for (series *s = all; s; s = s->next) {
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0)
            return s;
        tail = &s->next;
    }
    series *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->name = strdup(name)) == NULL || (s->labels = strdup(labels)) == NULL) {
        if (s)
            free(s->name);
        free(s);
        return NULL;
    }
    *tail = s;
    return s;
}

void metrics_count(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&mu);
    series *s = find(name, labels ? labels : "");
    if (s)
        s->value += v;
    pthread_mutex_unlock(&mu);
}

void metrics_gauge(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&mu);
    series *s = find(name, labels ? labels : "");
    if (s)
        s->value = v;
    pthread_mutex_unlock(&mu);
}

void metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&mu);
    series *s = find(name, labels ? labels : "");
    if (s) {
        s->value += seconds;
        s->count++;
        for (size_t i = 0; i < BUCKETS; i++)
            if (seconds <= buckets[i]) {
                s->bucket[i]++;
                break;
            }
    }
    pthread_mutex_unlock(&mu);
}

const char *metrics_label(const char *value, char *buf, unsigned len)
{
    unsigned o = 0;
    for (const char *p = value ? value : ""; *p && o + 3 < len; p++) {
        if (*p == '\\' || *p == '"') {
            buf[o++] = '\\';
            buf[o++] = *p;
        } else if (*p == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

typedef struct text {
    char *buf;
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (grown == NULL)
            return;
        t->buf = grown;
        t->cap = cap;
    }
}

/* name{labels,extra} — joins the label sets. */
static void put_name(text *t, const char *name, const char *suffix, const char *labels, const char *extra)
{
    int any = labels[0] || (extra && extra[0]);
    put(t, "%s%s%s%s%s%s%s", name, suffix, any ? "{" : "", labels,
        labels[0] && extra && extra[0] ? "," : "", extra ? extra : "", any ? "}" : "");
}

static void render_series(text *t, const metric_desc *d, const series *s)
{
    if (d->kind != KIND_HISTOGRAM) {
        put_name(t, s->name, "", s->labels, NULL);
        put(t, " %.17g\n", s->value);
        return;
    }
    uint64_t cumulative = 0;
    char le[48];
    for (size_t i = 0; i < BUCKETS; i++) {
        cumulative += s->bucket[i];
        snprintf(le, sizeof(le), "le=\"%g\"", buckets[i]);
        put_name(t, s->name, "_bucket", s->labels, le);
        put(t, " %llu\n", (unsigned long long)cumulative);
    }
    put_name(t, s->name, "_bucket", s->labels, "le=\"+Inf\"");
    put(t, " %llu\n", (unsigned long long)s->count);
    put_name(t, s->name, "_sum", s->labels, NULL);
    put(t, " %.17g\n", s->value);
    put_name(t, s->name, "_count", s->labels, NULL);
    put(t, " %llu\n", (unsigned long long)s->count);
}

char *metrics_render(void)
{
    text t = {0};
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        put(&t, "# HELP %s %s\n# TYPE %s %s\n", descs[i].name, descs[i].help, descs[i].name,
            kinds[descs[i].kind]);
        for (const series *s = all; s; s = s->next)
            if (strcmp(s->name, descs[i].name) == 0)
                render_series(&t, &descs[i], s);
    }
    pthread_mutex_unlock(&mu);
    return t.buf ? t.buf : strdup("");
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    while (all) {
        series *s = all;
        all = s->next;
        free(s->name);
        free(s->labels);
        free(s);
    }
    pthread_mutex_unlock(&mu);
}
