/*
 * rules.h — the domain rules on names that the daemon and libdtmq share:
 * which kind of URL a branch (or a server option) names, and Kafka's topic
 * name rule. Pure functions, no allocation; linked into dtmq and libdtmq.a.
 */
#ifndef DTMQ_RULES_H
#define DTMQ_RULES_H

#include <stdbool.h>
#include <stddef.h>

/* The URL kinds dtmq knows, by scheme. */
typedef enum dtmq_url_kind {
    DTMQ_URL_NONE = 0, /* "": a branch with nothing to call */
    DTMQ_URL_HTTP,     /* http://REST or https://REST */
    DTMQ_URL_KAFKA,    /* kafka://TOPIC */
    DTMQ_URL_TOPIC,    /* topic://NAME: a msg step sent to NAME's subscribers */
    DTMQ_URL_OTHER,    /* anything else */
} dtmq_url_kind;

/* Flags for dtmq_url_kind_of. */
enum {
    DTMQ_URL_ANY_CASE = 1u, /* compare the scheme without case (RFC 3986), "HTTP://x" */
};

/*
 * The kind of url (NULL counts as ""). The empty-remainder rule: a scheme
 * with nothing after it ("http://", "kafka://", "topic://") names nothing,
 * so it is DTMQ_URL_OTHER. The scheme is compared case-sensitively unless
 * flags has DTMQ_URL_ANY_CASE. Nothing beyond the scheme is checked: the
 * remainder (dtmq_url_rest) is the caller's to judge.
 */
dtmq_url_kind dtmq_url_kind_of(const char *url, unsigned flags);

/* The kind url's scheme alone names, whatever follows it: "kafka://" is
 * DTMQ_URL_KAFKA here (and DTMQ_URL_OTHER for dtmq_url_kind_of); "" is
 * DTMQ_URL_NONE, an unknown scheme DTMQ_URL_OTHER. */
dtmq_url_kind dtmq_url_scheme(const char *url, unsigned flags);

/* What follows "://" in a url of a known scheme (never empty for a url
 * dtmq_url_kind_of classifies HTTP, KAFKA or TOPIC); NULL for any other
 * url (DTMQ_URL_NONE or DTMQ_URL_OTHER by dtmq_url_scheme). */
const char *dtmq_url_rest(const char *url, unsigned flags);

/* "none", "http", "kafka", "topic", "other". */
const char *dtmq_url_kind_name(dtmq_url_kind kind);

/* Kafka's topic name rule: the longest name Kafka accepts. */
#define DTMQ_TOPIC_NAME_MAX 249

/* True when s holds only the characters Kafka allows in a topic name,
 * [A-Za-z0-9._-] ("" included): the rule for a prefix of names. */
bool dtmq_topic_chars_ok(const char *s);

/* Kafka's topic name rule: 1 to DTMQ_TOPIC_NAME_MAX characters of
 * [A-Za-z0-9._-], and neither "." nor "..". NULL is not a name. */
bool dtmq_topic_name_ok(const char *name);

#endif
