/*
 * rules.c — URL kinds and Kafka's topic name rule (rules.h), the one copy of
 * each that the daemon's commands, configuration, topics API, engine and CLI
 * and libdtmq's client use.
 */
#include "rules.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

typedef struct url_scheme {
    const char *prefix;
    size_t len;
    dtmq_url_kind kind;
} url_scheme;

static const url_scheme url_schemes[] = {
    {"http://", 7, DTMQ_URL_HTTP},
    {"https://", 8, DTMQ_URL_HTTP},
    {"kafka://", 8, DTMQ_URL_KAFKA},
    {"topic://", 8, DTMQ_URL_TOPIC},
};

static const char topic_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

/* The scheme url starts with, or NULL. */
static const url_scheme *url_scheme_of(const char *url, unsigned flags)
{
    for (size_t i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++) {
        const url_scheme *s = &url_schemes[i];
        assert(strlen(s->prefix) == s->len);
        int same = (flags & DTMQ_URL_ANY_CASE) ? strncasecmp(url, s->prefix, s->len)
                                               : strncmp(url, s->prefix, s->len);
        if (same == 0)
            return s;
    }
    return NULL;
}

dtmq_url_kind dtmq_url_scheme(const char *url, unsigned flags)
{
    if (url == NULL || url[0] == '\0')
        return DTMQ_URL_NONE;
    const url_scheme *s = url_scheme_of(url, flags);
    return s != NULL ? s->kind : DTMQ_URL_OTHER;
}

dtmq_url_kind dtmq_url_kind_of(const char *url, unsigned flags)
{
    dtmq_url_kind kind = dtmq_url_scheme(url, flags);
    if (kind == DTMQ_URL_NONE || kind == DTMQ_URL_OTHER)
        return kind;
    const char *rest = dtmq_url_rest(url, flags);
    assert(rest != NULL);
    return rest[0] != '\0' ? kind : DTMQ_URL_OTHER; /* a scheme naming nothing */
}

const char *dtmq_url_rest(const char *url, unsigned flags)
{
    const url_scheme *s = url != NULL ? url_scheme_of(url, flags) : NULL;
    return s != NULL ? url + s->len : NULL;
}

const char *dtmq_url_kind_name(dtmq_url_kind kind)
{
    switch (kind) {
    case DTMQ_URL_NONE:
        return "none";
    case DTMQ_URL_HTTP:
        return "http";
    case DTMQ_URL_KAFKA:
        return "kafka";
    case DTMQ_URL_TOPIC:
        return "topic";
    case DTMQ_URL_OTHER:
        return "other";
    }
    return "other";
}

bool dtmq_topic_chars_ok(const char *s)
{
    assert(s != NULL);
    return strspn(s, topic_chars) == strlen(s);
}

bool dtmq_topic_name_ok(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strlen(name);
    return n >= 1 && n <= DTMQ_TOPIC_NAME_MAX && dtmq_topic_chars_ok(name) &&
           strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}
