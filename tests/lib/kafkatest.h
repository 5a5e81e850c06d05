/*
 * kafkatest.h — a Kafka client for tests: produce a message and wait for the
 * acknowledgement, and read everything a topic holds (all partitions, from
 * the beginning, no consumer group) until enough messages arrived.
 */
#ifndef DTMQ_KAFKATEST_H
#define DTMQ_KAFKATEST_H

#include <stddef.h>

typedef struct kt_msg {
    char *key;      /* "" when none */
    char *value;    /* NUL-terminated copy */
    size_t len;
    int partition;
    long long offset;
    char *headers;  /* "name=value\n" lines */
} kt_msg;

/* Produces value (len bytes) to topic with key; headers "name=value" strings,
 * NULL-terminated (may be NULL). Returns 0 once acknowledged (10 s at most). */
int kt_produce(const char *bootstrap, const char *topic, const char *key, const char *value,
               size_t len, const char *const *headers);

/* Reads topic from the beginning until at least n messages arrived or
 * timeout_ms passed; *out gets them (free with kt_free). Returns the count. */
size_t kt_read(const char *bootstrap, const char *topic, size_t n, int timeout_ms, kt_msg **out);
void kt_free(kt_msg *msgs, size_t n);
/* The value of header name in m, or NULL (points into m->headers, up to '\n'; copied to buf). */
const char *kt_header(const kt_msg *m, const char *name, char *buf, size_t len);

#endif
