/*
 * config.c — loads dtmq's configuration from defaults, a YAML file, the
 * environment and the command line (see config.h for the contract and
 * docs/configuration.md for the user's view).
 *
 * Everything about an option lives in ONE row of config_options[]: its YAML
 * key, env var, flag, type, where it lands in dtmq_config, its bounds or its
 * checker, its default and its help line. Every layer goes through the same
 * function, config_set(), so a value is parsed and validated the same way
 * whether it came from the file, the environment or a flag, and the default
 * itself is applied through it too.
 *
 * Load order (config_load):
 *   1. defaults from the table;
 *   2. argv is scanned whole: -h/-v return at once, -c names the file, bad or
 *      unknown flags fail here; flag values are only remembered, not applied;
 *   3. the YAML file (libyaml's document loader; its marks give line numbers);
 *   4. DTMQ_* environment variables (empty ones count as unset);
 *   5. the remembered flag values, in argv order (the last one wins);
 *   6. checks across options (RetryIntervalMax >= RetryInterval).
 *
 * Invariants:
 *   - after step 1 every char * field of the struct is non-NULL except
 *     config_file, and stays so: config_set replaces a string only with a
 *     newly allocated valid one, freeing the old;
 *   - loader.source[i] always says where option i's current value came from
 *     ("default", "conf.yml:4", "DTMQ_RETRY_INTERVAL", "--retry-interval"),
 *     so that cross-option errors can name both culprits;
 *   - every error is written once, by config_fail, as one line without a
 *     trailing newline.
 */
#include "config.h"
#include "libdtmq/common/rules.h"
#include "version.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

/* ------------------------------------------------------------------------ */
/* Types                                                                    */
/* ------------------------------------------------------------------------ */

typedef enum { CONFIG_KIND_STRING, CONFIG_KIND_INT, CONFIG_KIND_LONG } config_kind;

/* Validates text. On success stores a newly allocated, normalised copy in
 * *out (caller owns it) and returns true; otherwise writes the reason, e.g.
 * "'x' is not one of text, json", into why and returns false. */
typedef bool (*config_check_fn)(const char *text, char **out, char *why, size_t whylen);

struct config_loader;
/* Turns a YAML mapping given for a scalar option into its value (used by
 * Store: {Driver: ..., ...}). Returns false after config_fail. */
typedef bool (*config_mapping_fn)(struct config_loader *ld, size_t option,
                                  yaml_document_t *doc, yaml_node_t *map);

typedef struct config_option {
    const char *yaml_key;         /* top-level YAML key, case-sensitive */
    const char *env_name;         /* environment variable */
    const char *flag;             /* long flag without the leading "--" */
    const char *metavar;          /* what the flag's value is, for --help */
    config_kind kind;
    size_t offset;                /* of the field in dtmq_config */
    long min, max;                /* numbers: inclusive bounds */
    config_check_fn check;        /* strings: validator and normaliser */
    config_mapping_fn mapping;    /* optional: the option also takes a YAML mapping */
    const char *default_text;     /* default, parsed like any other value */
    const char *help;             /* one line for --help */
} config_option;

/* Seconds whose count of milliseconds still fits in a 32-bit int. */
#define CONFIG_SECONDS_MAX 2147483L
/* Largest HTTP body a user may allow: 1 GiB. */
#define CONFIG_BODY_MAX 1073741824L
/* A config file bigger than this is surely something else. */
#define CONFIG_FILE_MAX (1024 * 1024)

static bool config_check_host(const char *text, char **out, char *why, size_t whylen);
static bool config_check_store_uri(const char *text, char **out, char *why, size_t whylen);
static bool config_check_kafka(const char *text, char **out, char *why, size_t whylen);
static bool config_check_topic_prefix(const char *text, char **out, char *why, size_t whylen);
static bool config_check_url(const char *text, char **out, char *why, size_t whylen);
static bool config_check_log_level(const char *text, char **out, char *why, size_t whylen);
static bool config_check_token(const char *text, char **out, char *why, size_t whylen);
static bool config_check_allowlist(const char *text, char **out, char *why, size_t whylen);
static bool config_check_log_format(const char *text, char **out, char *why, size_t whylen);
static bool config_store_from_mapping(struct config_loader *ld, size_t option,
                                      yaml_document_t *doc, yaml_node_t *map);

#define CONFIG_FIELD(name) offsetof(dtmq_config, name)

/* The option table: one row per option. Order = order in --help and docs. */
static const config_option config_options[] = {
/*    YAML key             env var                    flag                   metavar  kind                offset                                min max                 check                      mapping                    default            help */
    { "HttpHost",          "DTMQ_HTTP_HOST",          "http-host",          "HOST",  CONFIG_KIND_STRING, CONFIG_FIELD(http_host),          0, 0,                  config_check_host,         NULL,                      "0.0.0.0",         "address the HTTP API listens on" },
    { "HttpPort",          "DTMQ_HTTP_PORT",          "http-port",          "PORT",  CONFIG_KIND_INT,    CONFIG_FIELD(http_port),          1, 65535,              NULL,                      NULL,                      "36789",           "port the HTTP API listens on" },
    { "Store",             "DTMQ_STORE",              "store",              "URI",   CONFIG_KIND_STRING, CONFIG_FIELD(store_uri),          0, 0,                  config_check_store_uri,    config_store_from_mapping, "sqlite:./dtmq.db", "transaction store: sqlite:PATH or mongodb://HOST[:PORT]/DB" },
    { "Kafka",             "DTMQ_KAFKA",              "kafka",              "LIST",  CONFIG_KIND_STRING, CONFIG_FIELD(kafka),              0, 0,                  config_check_kafka,        NULL,                      "embedded",        "embedded (in-process mock cluster), off, or bootstrap host:port[,host:port...]" },
    { "KafkaTopicPrefix",  "DTMQ_KAFKA_TOPIC_PREFIX", "kafka-topic-prefix", "PREFIX", CONFIG_KIND_STRING, CONFIG_FIELD(kafka_topic_prefix), 0, 0,               config_check_topic_prefix, NULL,                      "dtm.",            "prefix of dtmq's own topics (PREFIXsubmit, PREFIXreply, PREFIXevents)" },
    { "KafkaGroup",        "DTMQ_KAFKA_GROUP",        "kafka-group",        "NAME",  CONFIG_KIND_STRING, CONFIG_FIELD(kafka_group),        0, 0,                  config_check_topic_prefix, NULL,                      "dtmq",            "consumer group the dtmq processes share on PREFIXsubmit and PREFIXreply" },
    { "KafkaPartitions",   "DTMQ_KAFKA_PARTITIONS",   "kafka-partitions",   "N",     CONFIG_KIND_INT,    CONFIG_FIELD(kafka_partitions),   1, 1000,               NULL,                      NULL,                      "4",               "partitions of the topics dtmq creates when they are missing" },
    { "KafkaEmbeddedPort", "DTMQ_KAFKA_EMBEDDED_PORT", "kafka-embedded-port", "PORT", CONFIG_KIND_INT,   CONFIG_FIELD(kafka_embedded_port), 0, 65535,             NULL,                      NULL,                      "0",               "port of the embedded Kafka cluster's broker on 127.0.0.1; 0: a free port at each start" },
    { "KafkaIngressLanes", "DTMQ_KAFKA_INGRESS_LANES", "kafka-ingress-lanes", "N",  CONFIG_KIND_INT,    CONFIG_FIELD(kafka_ingress_lanes), 1, 64,                NULL,                      NULL,                      "4",               "threads taking PREFIXsubmit and PREFIXreply messages; a partition is always taken by the same one, in order" },
    { "KafkaEvents",       "DTMQ_KAFKA_EVENTS",       "kafka-events",       "0|1",   CONFIG_KIND_INT,    CONFIG_FIELD(kafka_events),       0, 1,                  NULL,                      NULL,                      "0",               "1: publish every global status change to PREFIXevents" },
    { "TimeoutToFail",     "DTMQ_TIMEOUT_TO_FAIL",    "timeout-to-fail",    "SECS",  CONFIG_KIND_INT,    CONFIG_FIELD(timeout_to_fail),    1, CONFIG_SECONDS_MAX, NULL,                      NULL,                      "35",              "default timeout of a transaction that sets no timeout_to_fail itself" },
    { "RetryInterval",     "DTMQ_RETRY_INTERVAL",     "retry-interval",     "SECS",  CONFIG_KIND_INT,    CONFIG_FIELD(retry_interval),     1, CONFIG_SECONDS_MAX, NULL,                      NULL,                      "10",              "seconds before a failed branch is retried the first time" },
    { "RetryIntervalMax",  "DTMQ_RETRY_INTERVAL_MAX", "retry-interval-max", "SECS",  CONFIG_KIND_INT,    CONFIG_FIELD(retry_interval_max), 1, CONFIG_SECONDS_MAX, NULL,                      NULL,                      "600",             "cap of the doubling retry interval (>= RetryInterval)" },
    { "RequestTimeout",    "DTMQ_REQUEST_TIMEOUT",    "request-timeout",    "SECS",  CONFIG_KIND_INT,    CONFIG_FIELD(request_timeout),    1, CONFIG_SECONDS_MAX, NULL,                      NULL,                      "3",               "seconds a branch call may take" },
    { "TransCronInterval", "DTMQ_TRANS_CRON_INTERVAL", "trans-cron-interval", "SECS", CONFIG_KIND_INT,    CONFIG_FIELD(trans_cron_interval), 1, CONFIG_SECONDS_MAX, NULL,                     NULL,                      "3",               "seconds the idle cron loop sleeps between scans for due transactions" },
    { "FinishedDataExpire", "DTMQ_FINISHED_DATA_EXPIRE", "finished-data-expire", "SECS", CONFIG_KIND_INT, CONFIG_FIELD(finished_data_expire), 0, CONFIG_SECONDS_MAX, NULL,                  NULL,                      "0",               "seconds a finished transaction is kept before it is deleted; 0: kept for ever" },
    { "AlertRetryLimit",   "DTMQ_ALERT_RETRY_LIMIT",  "alert-retry-limit",  "N",     CONFIG_KIND_INT,    CONFIG_FIELD(alert_retry_limit),  0, 100,                NULL,                      NULL,                      "3",               "alert once a branch's retry interval has doubled N times" },
    { "AlertWebHook",      "DTMQ_ALERT_WEB_HOOK",     "alert-web-hook",     "URL",   CONFIG_KIND_STRING, CONFIG_FIELD(alert_web_hook),     0, 0,                  config_check_url,          NULL,                      "",                "http(s) URL that alerts are POSTed to; empty: no alerts" },
    { "HttpThreads",       "DTMQ_HTTP_THREADS",       "http-threads",       "N",     CONFIG_KIND_INT,    CONFIG_FIELD(http_threads),       1, 256,                NULL,                      NULL,                      "16",              "threads serving the HTTP API (a request waiting for its commit holds one)" },
    { "MaxBodyBytes",      "DTMQ_MAX_BODY_BYTES",     "max-body-bytes",     "BYTES", CONFIG_KIND_LONG,   CONFIG_FIELD(max_body_bytes),     1, CONFIG_BODY_MAX,    NULL,                      NULL,                      "1048576",         "largest HTTP request body accepted" },
    { "AdminToken",        "DTMQ_ADMIN_TOKEN",        "admin-token",        "TOKEN", CONFIG_KIND_STRING, CONFIG_FIELD(admin_token),        0, 0,                  config_check_token,                      NULL,                      "",                "when set, required (Authorization: Bearer TOKEN) by the admin page and the steering routes" },
    { "BranchAllowlist",   "DTMQ_BRANCH_ALLOWLIST",   "branch-allowlist",   "PREFIXES", CONFIG_KIND_STRING, CONFIG_FIELD(branch_allowlist), 0, 0,              config_check_allowlist,                      NULL,                      "",                "comma-separated URL prefixes every branch URL must start with (http://host:port/, kafka://topic-prefix); empty: any" },
    { "LogLevel",          "DTMQ_LOG_LEVEL",          "log-level",          "LEVEL", CONFIG_KIND_STRING, CONFIG_FIELD(log_level),          0, 0,                  config_check_log_level,    NULL,                      "info",            "debug, info, warn or error" },
    { "LogFormat",         "DTMQ_LOG_FORMAT",         "log-format",         "FORMAT", CONFIG_KIND_STRING, CONFIG_FIELD(log_format),        0, 0,                  config_check_log_format,   NULL,                      "text",            "text or json" },
};

enum { CONFIG_OPTION_COUNT = sizeof config_options / sizeof config_options[0] };

/* State of one config_load call. */
typedef struct config_loader {
    dtmq_config *cfg;
    char *err;                                  /* never NULL (see config_load) */
    size_t errlen;
    const char *file;                           /* YAML file being read, else NULL */
    const char *text;                           /* its contents, text_len bytes */
    size_t text_len;
    char source[CONFIG_OPTION_COUNT][256];      /* where each value came from */
} config_loader;

/* One flag value remembered by the argv scan, applied after the environment. */
typedef struct config_flag_value {
    size_t option;
    const char *flag;    /* as typed, without "=value" (points into argv) */
    size_t flag_len;
    const char *value;   /* points into argv */
} config_flag_value;

/* Top-level keys of DTM's conf.yml that dtmq does not take, for a kinder error. */
static const char *const config_dtm_only_keys[] = {
    "GrpcPort", "JsonRpcPort", "MicroService", "UpdateBranchSync",
    "UpdateBranchAsyncGoroutineNum", "Log", "TimeZoneOffset",
    "ConfigUpdateInterval", "AdminBasePath", NULL,
};

/* Keys of the Store mapping. */
static const char *const config_store_keys[] = { "Driver", "Path", "Uri", "Db", NULL };
enum { CONFIG_STORE_DRIVER, CONFIG_STORE_PATH, CONFIG_STORE_URI, CONFIG_STORE_DB, CONFIG_STORE_KEY_COUNT };

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Writes the one-line error and returns false, so callers can `return config_fail(...)`. */
__attribute__((format(printf, 2, 3)))
static bool config_fail(config_loader *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->errlen, fmt, ap);
    va_end(ap);
    return false;
}

/* Copy of s that the caller owns; NULL only when memory is exhausted. */
static char *config_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

/* Newly allocated lower-case copy of s (caller owns it), NULL on no memory. */
static char *config_strdup_lower(const char *s)
{
    char *copy = config_strdup(s);
    for (char *p = copy; p != NULL && *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return copy;
}

static bool config_copy_out(const char *text, char **out, char *why, size_t whylen)
{
    *out = config_strdup(text);
    if (*out == NULL) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    return true;
}

static bool config_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Case-insensitive edit distance between two short names, for "did you mean". */
static size_t config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            bool same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = diagonal + (same ? 0 : 1);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

/* The name in candidates closest to typed (distance <= 2), else NULL. */
static const char *config_closest(const char *typed, const char *const *candidates, size_t count)
{
    const char *best = NULL;
    size_t best_distance = 3;
    for (size_t i = 0; i < count; i++) {
        size_t d = config_edit_distance(typed, candidates[i]);
        if (d < best_distance) {
            best = candidates[i];
            best_distance = d;
        }
    }
    return best;
}

static void *config_field(dtmq_config *cfg, const config_option *opt)
{
    return (char *)cfg + opt->offset;
}

/* ------------------------------------------------------------------------ */
/* Value checkers (config_check_fn)                                         */
/* ------------------------------------------------------------------------ */

static bool config_check_host(const char *text, char **out, char *why, size_t whylen)
{
    if (text[0] == '\0') {
        snprintf(why, whylen, "must not be empty");
        return false;
    }
    for (const char *p = text; *p != '\0'; p++) {
        if (isspace((unsigned char)*p) || *p == '/') {
            snprintf(why, whylen, "'%s' is not a host name or address", text);
            return false;
        }
    }
    return config_copy_out(text, out, why, whylen);
}

static bool config_check_store_uri(const char *text, char **out, char *why, size_t whylen)
{
    if (config_starts_with(text, "sqlite:")) {
        if (text[7] == '\0') {
            snprintf(why, whylen, "'%s' names no file (expected sqlite:PATH)", text);
            return false;
        }
        return config_copy_out(text, out, why, whylen);
    }
    const char *hosts = NULL;
    if (config_starts_with(text, "mongodb://"))
        hosts = text + 10;
    else if (config_starts_with(text, "mongodb+srv://"))
        hosts = text + 14;
    if (hosts == NULL) {
        snprintf(why, whylen, "'%s' is not a store URI (expected sqlite:PATH or mongodb://...)", text);
        return false;
    }
    if (hosts[0] == '\0' || hosts[0] == '/' || hosts[0] == '?') {
        snprintf(why, whylen, "'%s' names no host", text);
        return false;
    }
    return config_copy_out(text, out, why, whylen);
}

/* True when s[0..len) is a host name, an IPv4 address or a bracketed IPv6 one. */
static bool config_is_host(const char *s, size_t len)
{
    if (len == 0)
        return false;
    if (s[0] == '[')
        return len > 2 && s[len - 1] == ']' && strspn(s + 1, "0123456789abcdefABCDEF:.") == len - 2;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* True when s[0..len) is a decimal port 1..65535. */
static bool config_is_port(const char *s, size_t len)
{
    if (len == 0 || len > 5 || strspn(s, "0123456789") < len)
        return false;
    long port = 0;
    for (size_t i = 0; i < len; i++)
        port = port * 10 + (s[i] - '0');
    return port >= 1 && port <= 65535;
}

static bool config_check_kafka(const char *text, char **out, char *why, size_t whylen)
{
    if (strcasecmp(text, "embedded") == 0 || strcasecmp(text, "off") == 0) {
        *out = config_strdup_lower(text);
        if (*out == NULL)
            snprintf(why, whylen, "out of memory");
        return *out != NULL;
    }
    const char *element = text;
    for (;;) {
        size_t len = strcspn(element, ",");
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (element[i] == ':')
                colon = element + i;
        if (len == 0 || colon == NULL || !config_is_host(element, (size_t)(colon - element)) ||
            !config_is_port(colon + 1, len - (size_t)(colon - element) - 1)) {
            snprintf(why, whylen,
                     "'%s' is not embedded, off or a host:port[,host:port...] list (bad element '%.*s')",
                     text, (int)len, element);
            return false;
        }
        if (element[len] == '\0')
            break;
        element += len + 1;
    }
    return config_copy_out(text, out, why, whylen);
}

static bool config_check_topic_prefix(const char *text, char **out, char *why, size_t whylen)
{
    /* Kafka topic names: [a-zA-Z0-9._-], at most 249 characters. The longest
     * suffix dtmq adds is "events". */
    size_t len = strlen(text);
    if (!dtmq_topic_chars_ok(text)) {
        snprintf(why, whylen, "'%s' may only hold letters, digits, '.', '_' and '-'", text);
        return false;
    }
    if (len > 200) {
        snprintf(why, whylen, "is longer than 200 characters");
        return false;
    }
    return config_copy_out(text, out, why, whylen);
}

static bool config_check_url(const char *text, char **out, char *why, size_t whylen)
{
    if (text[0] != '\0') {
        int http = dtmq_url_kind_of(text, 0) == DTMQ_URL_HTTP;
        if (!http || dtmq_url_rest(text, 0)[0] == '/') { /* a host is required */
            snprintf(why, whylen, "'%s' is not an http:// or https:// URL", text);
            return false;
        }
    }
    return config_copy_out(text, out, why, whylen);
}

/* A token: printable ASCII without spaces (it travels in an HTTP header). */
static bool config_check_token(const char *text, char **out, char *why, size_t whylen)
{
    for (const char *p = text; *p; p++)
        if (*p <= ' ' || *p > '~') {
            snprintf(why, whylen, "the token may only hold printable ASCII without spaces");
            return false;
        }
    return config_copy_out(text, out, why, whylen);
}

/* One allowlist entry, p[0..n): http://, https:// or kafka:// with
 * something after the scheme. */
static bool config_allowlist_entry_ok(const char *p, size_t n)
{
    char entry[512];
    if (n >= sizeof(entry))
        n = sizeof(entry) - 1; /* the scheme is all that is judged */
    memcpy(entry, p, n);
    entry[n] = '\0';
    dtmq_url_kind kind = dtmq_url_kind_of(entry, 0);
    return kind == DTMQ_URL_HTTP || kind == DTMQ_URL_KAFKA;
}

/* Comma-separated URL prefixes, each http://, https:// or kafka:// with
 * something after the scheme. */
static bool config_check_allowlist(const char *text, char **out, char *why, size_t whylen)
{
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (!config_allowlist_entry_ok(p, n)) {
            snprintf(why, whylen, "'%.*s' is not an http://, https:// or kafka:// prefix", (int)n, p);
            return false;
        }
        p += n + (p[n] == ',');
    }
    return config_copy_out(text, out, why, whylen);
}

/* Accepts one of allowed (any case) and stores it in lower case. */
static bool config_check_choice(const char *text, const char *const *allowed, const char *list,
                                char **out, char *why, size_t whylen)
{
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcasecmp(text, allowed[i]) == 0)
            return config_copy_out(allowed[i], out, why, whylen);
    }
    snprintf(why, whylen, "'%s' is not one of %s", text, list);
    return false;
}

static bool config_check_log_level(const char *text, char **out, char *why, size_t whylen)
{
    static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
    return config_check_choice(text, levels, "debug, info, warn, error", out, why, whylen);
}

static bool config_check_log_format(const char *text, char **out, char *why, size_t whylen)
{
    static const char *const formats[] = { "text", "json", NULL };
    return config_check_choice(text, formats, "text, json", out, why, whylen);
}

/* Parses a decimal integer within [min, max]. */
static bool config_parse_number(const char *text, long min, long max, long *out,
                                char *why, size_t whylen)
{
    char *end = NULL;
    errno = 0;
    long value = 0;
    if (text[0] != '\0' && !isspace((unsigned char)text[0]))
        value = strtol(text, &end, 10);
    if (end == NULL || end == text || *end != '\0') {
        snprintf(why, whylen, "'%s' is not a number", text);
        return false;
    }
    if (errno == ERANGE || value < min || value > max) {
        snprintf(why, whylen, "'%s' is out of range %ld..%ld", text, min, max);
        return false;
    }
    *out = value;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Setting one option: the single path every layer goes through             */
/* ------------------------------------------------------------------------ */

/*
 * Parses text for option `index` and stores it in the struct.
 * `where` is a file position ("conf.yml:12") or NULL; `name` is how the user
 * spelled the option there ("HttpPort", "DTMQ_HTTP_PORT", "--http-port").
 * Errors read "<where>: <name>: <reason>" or "<name>: <reason>".
 */
static bool config_set(config_loader *ld, size_t index, const char *text,
                       const char *where, const char *name)
{
    const config_option *opt = &config_options[index];
    char why[512];
    bool ok;

    if (opt->kind == CONFIG_KIND_STRING) {
        char *value = NULL;
        ok = opt->check(text, &value, why, sizeof why);
        if (ok) {
            char **slot = config_field(ld->cfg, opt);
            free(*slot);
            *slot = value;
        }
    } else {
        long value = 0;
        ok = config_parse_number(text, opt->min, opt->max, &value, why, sizeof why);
        if (ok && opt->kind == CONFIG_KIND_INT)
            *(int *)config_field(ld->cfg, opt) = (int)value;
        else if (ok)
            *(long *)config_field(ld->cfg, opt) = value;
    }
    if (!ok) {
        if (where != NULL)
            return config_fail(ld, "%s: %s: %s", where, name, why);
        return config_fail(ld, "%s: %s", name, why);
    }
    snprintf(ld->source[index], sizeof ld->source[index], "%s", where != NULL ? where : name);
    return true;
}

static bool config_apply_defaults(config_loader *ld)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        if (!config_set(ld, i, config_options[i].default_text, NULL, "default"))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* YAML file                                                                */
/* ------------------------------------------------------------------------ */

/* Reads the whole file into *buf (caller frees). */
static bool config_read_file(config_loader *ld, const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return config_fail(ld, "cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return config_fail(ld, "cannot read %s: %s", path, strerror(EISDIR));
    }
    char *data = malloc(CONFIG_FILE_MAX + 1);
    if (data == NULL) {
        fclose(f);
        return config_fail(ld, "cannot read %s: out of memory", path);
    }
    size_t n = fread(data, 1, CONFIG_FILE_MAX + 1, f);
    bool failed = ferror(f) != 0;
    int saved = errno;
    fclose(f);
    if (failed) {
        free(data);
        return config_fail(ld, "cannot read %s: %s", path, strerror(saved));
    }
    if (n > CONFIG_FILE_MAX) {
        free(data);
        return config_fail(ld, "cannot read %s: larger than %d bytes, not a config file", path,
                           CONFIG_FILE_MAX);
    }
    *buf = data;
    *len = n;
    return true;
}

/* "file:line" of a node, for messages and sources. */
static void config_node_where(const config_loader *ld, const yaml_node_t *node,
                              char *where, size_t wherelen)
{
    snprintf(where, wherelen, "%s:%zu", ld->file, node->start_mark.line + 1);
}

static const char *config_node_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE: return "a single value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

/* The text of a scalar node (NUL-terminated by libyaml). */
static const char *config_scalar_text(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

/* A plain ~, null or empty value: YAML's null, meaning "not given here". */
static bool config_scalar_is_null(const yaml_node_t *node)
{
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *t = config_scalar_text(node);
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/*
 * Checks a mapping's key node at position `pair`: it must be a scalar that no
 * earlier pair of the same mapping already used. `what` names the mapping in
 * messages ("" for the top level, " in Store").
 */
static bool config_check_key(config_loader *ld, yaml_document_t *doc, yaml_node_t *map,
                             yaml_node_pair_t *pair, const char *what)
{
    yaml_node_t *key = yaml_document_get_node(doc, pair->key);
    char where[512];
    config_node_where(ld, key, where, sizeof where);
    if (key->type != YAML_SCALAR_NODE)
        return config_fail(ld, "%s: a key%s must be a name, found %s", where, what,
                           config_node_kind(key));
    const char *name = config_scalar_text(key);
    if (memchr(name, '\0', key->data.scalar.length) != NULL)
        return config_fail(ld, "%s: a key%s contains a NUL byte", where, what);
    for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
        yaml_node_t *other = yaml_document_get_node(doc, prev->key);
        if (other->type == YAML_SCALAR_NODE && strcmp(config_scalar_text(other), name) == 0)
            return config_fail(ld, "%s: duplicate key '%s'%s (first at line %zu)", where, name,
                               what, other->start_mark.line + 1);
    }
    return true;
}

/* Error for a top-level key that is not an option. */
static bool config_fail_unknown_key(config_loader *ld, const char *where, const char *name)
{
    for (size_t i = 0; config_dtm_only_keys[i] != NULL; i++) {
        if (strcmp(name, config_dtm_only_keys[i]) == 0)
            return config_fail(ld, "%s: unknown key '%s' (a DTM option that dtmq does not take)",
                               where, name);
    }
    const char *keys[CONFIG_OPTION_COUNT];
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++)
        keys[i] = config_options[i].yaml_key;
    const char *guess = config_closest(name, keys, CONFIG_OPTION_COUNT);
    if (guess != NULL)
        return config_fail(ld, "%s: unknown key '%s' (did you mean '%s'? keys are case-sensitive)",
                           where, name, guess);
    return config_fail(ld, "%s: unknown key '%s'", where, name);
}

/* Checks that a value node is a scalar; text is NULL for YAML null. */
static bool config_scalar_value(config_loader *ld, yaml_node_t *value, const char *name,
                                const char **text)
{
    char where[512];
    config_node_where(ld, value, where, sizeof where);
    *text = NULL;
    if (value->type != YAML_SCALAR_NODE)
        return config_fail(ld, "%s: %s: expected a single value, found %s", where, name,
                           config_node_kind(value));
    if (memchr(config_scalar_text(value), '\0', value->data.scalar.length) != NULL)
        return config_fail(ld, "%s: %s: value contains a NUL byte", where, name);
    if (!config_scalar_is_null(value))
        *text = config_scalar_text(value);
    return true;
}

/* Applies one top-level "Key: value" pair. */
static bool config_apply_yaml_pair(config_loader *ld, yaml_document_t *doc,
                                   yaml_node_t *key, yaml_node_t *value)
{
    const char *name = config_scalar_text(key);
    char where[512];
    config_node_where(ld, key, where, sizeof where);
    size_t index = 0;
    while (index < CONFIG_OPTION_COUNT && strcmp(config_options[index].yaml_key, name) != 0)
        index++;
    if (index == CONFIG_OPTION_COUNT)
        return config_fail_unknown_key(ld, where, name);

    const config_option *opt = &config_options[index];
    if (value->type == YAML_MAPPING_NODE && opt->mapping != NULL)
        return opt->mapping(ld, index, doc, value);
    const char *text = NULL;
    if (!config_scalar_value(ld, value, name, &text))
        return false;
    if (text == NULL)
        return true; /* null: keep the value from the layer below */
    config_node_where(ld, value, where, sizeof where);
    return config_set(ld, index, text, where, name);
}

static bool config_apply_yaml_root(config_loader *ld, yaml_document_t *doc, yaml_node_t *root)
{
    if (root->type == YAML_SCALAR_NODE && config_scalar_is_null(root))
        return true; /* a file holding only comments or "~" */
    if (root->type != YAML_MAPPING_NODE) {
        char where[512];
        config_node_where(ld, root, where, sizeof where);
        return config_fail(ld, "%s: expected a mapping of keys to values at the top, found %s",
                           where, config_node_kind(root));
    }
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        if (!config_check_key(ld, doc, root, pair, ""))
            return false;
        if (!config_apply_yaml_pair(ld, doc, yaml_document_get_node(doc, pair->key),
                                    yaml_document_get_node(doc, pair->value)))
            return false;
    }
    return true;
}

/* Turns a libyaml parser error into our one-line message. */
static bool config_fail_yaml_syntax(config_loader *ld, const yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return config_fail(ld, "%s: out of memory while reading YAML", ld->file);
    if (parser->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark: count the lines. */
        size_t line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < ld->text_len; i++)
            line += ld->text[i] == '\n';
        return config_fail(ld, "%s:%zu: YAML syntax error: %s at byte %zu", ld->file, line,
                           parser->problem ? parser->problem : "unreadable input",
                           parser->problem_offset);
    }
    const char *problem = parser->problem ? parser->problem : "malformed document";
    if (parser->context != NULL)
        return config_fail(ld, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)", ld->file,
                           parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                           problem, parser->context, parser->context_mark.line + 1);
    return config_fail(ld, "%s:%zu:%zu: YAML syntax error: %s", ld->file,
                       parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
}

/* Fails when the stream holds a second document after the first. */
static bool config_check_single_document(config_loader *ld, yaml_parser_t *parser)
{
    yaml_document_t extra;
    if (!yaml_parser_load(parser, &extra))
        return config_fail_yaml_syntax(ld, parser);
    yaml_node_t *root = yaml_document_get_root_node(&extra);
    bool ok = true;
    if (root != NULL)
        ok = config_fail(ld, "%s:%zu: a second YAML document; the file must hold one", ld->file,
                         extra.start_mark.line + 1);
    yaml_document_delete(&extra);
    return ok;
}

static bool config_load_yaml(config_loader *ld, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    if (!config_read_file(ld, path, &buf, &len))
        return false;
    ld->file = path;
    ld->text = buf;
    ld->text_len = len;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        free(buf);
        return config_fail(ld, "%s: out of memory while reading YAML", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    yaml_document_t doc;
    bool ok = yaml_parser_load(&parser, &doc) != 0;
    if (!ok) {
        config_fail_yaml_syntax(ld, &parser);
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        ok = root == NULL || (config_apply_yaml_root(ld, &doc, root) &&
                              config_check_single_document(ld, &parser));
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    free(buf);
    ld->file = NULL;
    ld->text = NULL;
    ld->text_len = 0;
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Store: {Driver, Path, Uri, Db}                                           */
/* ------------------------------------------------------------------------ */

/* The Store mapping's values (NULL when absent) and the lines they are on. */
typedef struct config_store_map {
    const char *value[CONFIG_STORE_KEY_COUNT];
    yaml_node_t *node[CONFIG_STORE_KEY_COUNT];
} config_store_map;

static bool config_read_store_map(config_loader *ld, yaml_document_t *doc, yaml_node_t *map,
                                  config_store_map *sm)
{
    memset(sm, 0, sizeof *sm);
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        if (!config_check_key(ld, doc, map, pair, " in Store"))
            return false;
        yaml_node_t *key = yaml_document_get_node(doc, pair->key);
        const char *name = config_scalar_text(key);
        size_t k = 0;
        while (k < CONFIG_STORE_KEY_COUNT && strcmp(config_store_keys[k], name) != 0)
            k++;
        if (k == CONFIG_STORE_KEY_COUNT) {
            char where[512];
            config_node_where(ld, key, where, sizeof where);
            return config_fail(ld, "%s: unknown key '%s' in Store (expected Driver, Path, Uri, Db)",
                               where, name);
        }
        char qualified[32];
        snprintf(qualified, sizeof qualified, "Store.%s", config_store_keys[k]);
        yaml_node_t *value = yaml_document_get_node(doc, pair->value);
        if (!config_scalar_value(ld, value, qualified, &sm->value[k]))
            return false;
        sm->node[k] = value;
    }
    return true;
}

/* Fails when key k is set although `driver` does not use it. */
static bool config_store_reject_key(config_loader *ld, const config_store_map *sm, int k,
                                    const char *driver, const char *instead)
{
    if (sm->value[k] == NULL)
        return true;
    char where[512];
    config_node_where(ld, sm->node[k], where, sizeof where);
    return config_fail(ld, "%s: Store.%s is not used by driver %s (use %s)", where,
                       config_store_keys[k], driver, instead);
}

/* True when db is a valid MongoDB database name. */
static bool config_is_mongo_db_name(const char *db)
{
    return db[0] != '\0' && strlen(db) < 64 && strpbrk(db, "/\\. \"$*<>:|?") == NULL;
}

/*
 * Puts db into uri's path: "mongodb://h:1" + "dtmq" -> "mongodb://h:1/dtmq";
 * the query string is kept after it. When uri names a database already it
 * must be db. *out is owned by the caller.
 */
static bool config_mongo_uri_with_db(const char *uri, const char *db, char **out,
                                     char *why, size_t whylen)
{
    const char *hosts = strstr(uri, "://") + 3; /* uri passed config_check_store_uri */
    size_t hosts_len = strcspn(hosts, "/?");
    const char *rest = hosts + hosts_len;
    const char *query = rest;
    size_t existing_len = 0;
    if (rest[0] == '/') {
        existing_len = strcspn(rest + 1, "?");
        query = rest + 1 + existing_len;
    }
    if (existing_len > 0) {
        if (existing_len == strlen(db) && strncmp(rest + 1, db, existing_len) == 0)
            return config_copy_out(uri, out, why, whylen);
        snprintf(why, whylen, "'%s' disagrees with database '%.*s' named in Store.Uri", db,
                 (int)existing_len, rest + 1);
        return false;
    }
    size_t prefix_len = (size_t)(rest - uri);
    size_t size = prefix_len + 1 + strlen(db) + strlen(query) + 1;
    *out = malloc(size);
    if (*out == NULL) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    snprintf(*out, size, "%.*s/%s%s", (int)prefix_len, uri, db, query);
    return true;
}

/* Resolves {Driver: mongodb, Uri, Db} into *uri (caller owns it). */
static bool config_store_mongodb_uri(config_loader *ld, const config_store_map *sm,
                                     const char *map_where, char **uri)
{
    char where[512];
    char why[512];
    if (!config_store_reject_key(ld, sm, CONFIG_STORE_PATH, "mongodb", "Uri"))
        return false;
    if (sm->value[CONFIG_STORE_URI] == NULL)
        return config_fail(ld, "%s: Store: driver mongodb needs Uri (e.g. mongodb://127.0.0.1:27017)",
                           map_where);
    config_node_where(ld, sm->node[CONFIG_STORE_URI], where, sizeof where);
    const char *given = sm->value[CONFIG_STORE_URI];
    if (!config_starts_with(given, "mongodb://") && !config_starts_with(given, "mongodb+srv://"))
        return config_fail(ld, "%s: Store.Uri: '%s' is not a mongodb:// URI", where, given);
    if (!config_check_store_uri(given, uri, why, sizeof why))
        return config_fail(ld, "%s: Store.Uri: %s", where, why);
    const char *db = sm->value[CONFIG_STORE_DB];
    if (db == NULL)
        return true;
    config_node_where(ld, sm->node[CONFIG_STORE_DB], where, sizeof where);
    if (!config_is_mongo_db_name(db)) {
        free(*uri);
        *uri = NULL;
        return config_fail(ld, "%s: Store.Db: '%s' is not a MongoDB database name", where, db);
    }
    char *with_db = NULL;
    bool ok = config_mongo_uri_with_db(*uri, db, &with_db, why, sizeof why);
    free(*uri);
    *uri = with_db;
    if (!ok)
        return config_fail(ld, "%s: Store.Db: %s", where, why);
    return true;
}

/* Resolves {Driver: sqlite, Path} into *uri (caller owns it). */
static bool config_store_sqlite_uri(config_loader *ld, const config_store_map *sm, char **uri)
{
    if (!config_store_reject_key(ld, sm, CONFIG_STORE_URI, "sqlite", "Path") ||
        !config_store_reject_key(ld, sm, CONFIG_STORE_DB, "sqlite", "Path"))
        return false;
    const char *path = sm->value[CONFIG_STORE_PATH] ? sm->value[CONFIG_STORE_PATH] : "./dtmq.db";
    size_t size = strlen("sqlite:") + strlen(path) + 1;
    *uri = malloc(size);
    if (*uri == NULL)
        return config_fail(ld, "out of memory");
    snprintf(*uri, size, "sqlite:%s", path);
    return true;
}

/* config_mapping_fn for Store. */
static bool config_store_from_mapping(config_loader *ld, size_t option, yaml_document_t *doc,
                                      yaml_node_t *map)
{
    config_store_map sm;
    if (!config_read_store_map(ld, doc, map, &sm))
        return false;
    char map_where[512];
    config_node_where(ld, map, map_where, sizeof map_where);
    const char *driver = sm.value[CONFIG_STORE_DRIVER];
    if (driver == NULL)
        return config_fail(ld, "%s: Store: Driver is missing (expected sqlite or mongodb)",
                           map_where);

    char *uri = NULL;
    bool ok;
    if (strcasecmp(driver, "sqlite") == 0) {
        ok = config_store_sqlite_uri(ld, &sm, &uri);
    } else if (strcasecmp(driver, "mongodb") == 0) {
        ok = config_store_mongodb_uri(ld, &sm, map_where, &uri);
    } else {
        char where[512];
        config_node_where(ld, sm.node[CONFIG_STORE_DRIVER], where, sizeof where);
        return config_fail(ld, "%s: Store.Driver: unknown driver '%s' (expected sqlite or mongodb)",
                           where, driver);
    }
    if (ok)
        ok = config_set(ld, option, uri, map_where, "Store");
    free(uri);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

static bool config_apply_env(config_loader *ld)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const char *value = getenv(config_options[i].env_name);
        if (value != NULL && value[0] != '\0' &&
            !config_set(ld, i, value, NULL, config_options[i].env_name))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

/* Index of the option whose flag is name[0..len), or CONFIG_OPTION_COUNT. */
static size_t config_find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const char *flag = config_options[i].flag;
        if (strlen(flag) == len && strncmp(flag, name, len) == 0)
            return i;
    }
    return CONFIG_OPTION_COUNT;
}

static bool config_fail_unknown_flag(config_loader *ld, const char *arg)
{
    if (arg[0] == '-' && arg[1] == '-') {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
        const char *flags[CONFIG_OPTION_COUNT + 3];
        for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++)
            flags[i] = config_options[i].flag;
        flags[CONFIG_OPTION_COUNT] = "config";
        flags[CONFIG_OPTION_COUNT + 1] = "help";
        flags[CONFIG_OPTION_COUNT + 2] = "version";
        const char *guess = config_closest(name, flags, CONFIG_OPTION_COUNT + 3);
        if (guess != NULL)
            return config_fail(ld, "unknown option '--%s' (did you mean '--%s'? see --help)", name,
                               guess);
        return config_fail(ld, "unknown option '--%s' (see --help)", name);
    }
    return config_fail(ld, "unknown option '%s' (see --help)", arg);
}

/*
 * Takes the value of the flag at argv[*i]: after '=' when `eq` is set, else
 * the next argument (which must not look like another long flag).
 */
static bool config_take_flag_value(config_loader *ld, int argc, char **argv, int *i, const char *eq,
                                   const char *flag, size_t flag_len, const char **value)
{
    if (eq != NULL) {
        *value = eq + 1;
        return true;
    }
    if (*i + 1 >= argc || config_starts_with(argv[*i + 1], "--"))
        return config_fail(ld, "option '%.*s' needs a value (see --help)", (int)flag_len, flag);
    *i += 1;
    *value = argv[*i];
    return true;
}

static bool config_set_config_file(config_loader *ld, const char *path)
{
    if (path[0] == '\0')
        return config_fail(ld, "option '--config' needs a file name");
    char *copy = config_strdup(path);
    if (copy == NULL)
        return config_fail(ld, "out of memory");
    free(ld->cfg->config_file);
    ld->cfg->config_file = copy;
    return true;
}

/*
 * Handles argv[*i], which is neither -h nor -v: -c/--config records the file,
 * an option flag is appended to values, anything else fails. Advances *i past
 * a separate value.
 */
static bool config_scan_one(config_loader *ld, int argc, char **argv, int *i,
                            config_flag_value *values, size_t *count)
{
    const char *arg = argv[*i];
    if (arg[0] != '-')
        return config_fail(ld, "unexpected argument '%s' (see --help)", arg);

    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t flag_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const char *value = NULL;
    if (strcmp(arg, "-c") == 0 || (flag_len == 8 && strncmp(arg, "--config", 8) == 0))
        return config_take_flag_value(ld, argc, argv, i, eq, arg, flag_len, &value) &&
               config_set_config_file(ld, value);
    if ((flag_len == 6 && strncmp(arg, "--help", 6) == 0) ||
        (flag_len == 9 && strncmp(arg, "--version", 9) == 0))
        return config_fail(ld, "option '%.*s' takes no value", (int)flag_len, arg);

    size_t option = arg[1] == '-' ? config_find_flag(arg + 2, flag_len - 2) : CONFIG_OPTION_COUNT;
    if (option == CONFIG_OPTION_COUNT)
        return config_fail_unknown_flag(ld, arg);
    if (!config_take_flag_value(ld, argc, argv, i, eq, arg, flag_len, &value))
        return false;
    values[*count] = (config_flag_value){ option, arg, flag_len, value };
    *count += 1;
    return true;
}

/*
 * Walks argv once: returns CONFIG_EXIT_HELP/VERSION when asked, CONFIG_ERROR
 * on a bad argument, else CONFIG_OK with the option flags collected into
 * values[0..*count) (values has room for argc entries) and -c recorded.
 */
static config_status config_scan_argv(config_loader *ld, int argc, char **argv,
                                      config_flag_value *values, size_t *count)
{
    *count = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return CONFIG_EXIT_HELP;
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--version") == 0)
            return CONFIG_EXIT_VERSION;
        if (!config_scan_one(ld, argc, argv, &i, values, count))
            return CONFIG_ERROR;
    }
    return CONFIG_OK;
}

static bool config_apply_flags(config_loader *ld, const config_flag_value *values, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)values[i].flag_len, values[i].flag);
        if (!config_set(ld, values[i].option, values[i].value, NULL, name))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Checks across options                                                    */
/* ------------------------------------------------------------------------ */

static size_t config_option_index(size_t offset)
{
    size_t i = 0;
    while (i < CONFIG_OPTION_COUNT && config_options[i].offset != offset)
        i++;
    return i;
}

static bool config_check_consistency(config_loader *ld)
{
    const dtmq_config *cfg = ld->cfg;
    if (cfg->retry_interval_max < cfg->retry_interval) {
        size_t max_i = config_option_index(CONFIG_FIELD(retry_interval_max));
        size_t base_i = config_option_index(CONFIG_FIELD(retry_interval));
        return config_fail(ld, "RetryIntervalMax (%d, from %s) must be >= RetryInterval (%d, from %s)",
                           cfg->retry_interval_max, ld->source[max_i], cfg->retry_interval,
                           ld->source[base_i]);
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

config_status config_load(dtmq_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    char scratch[1];
    config_loader ld;
    memset(&ld, 0, sizeof ld);
    memset(cfg, 0, sizeof *cfg);
    ld.cfg = cfg;
    ld.err = (err != NULL && errlen > 0) ? err : scratch;
    ld.errlen = (err != NULL && errlen > 0) ? errlen : sizeof scratch;
    ld.err[0] = '\0';

    config_flag_value *values = calloc(argc > 0 ? (size_t)argc : 1, sizeof *values);
    size_t count = 0;
    config_status status = CONFIG_ERROR;
    if (values == NULL)
        config_fail(&ld, "out of memory");
    else if (config_apply_defaults(&ld))
        status = config_scan_argv(&ld, argc, argv, values, &count);

    if (status == CONFIG_OK) {
        bool ok = (cfg->config_file == NULL || config_load_yaml(&ld, cfg->config_file)) &&
                  config_apply_env(&ld) && config_apply_flags(&ld, values, count) &&
                  config_check_consistency(&ld);
        status = ok ? CONFIG_OK : CONFIG_ERROR;
    }
    free(values);
    return status;
}

void config_free(dtmq_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        if (config_options[i].kind == CONFIG_KIND_STRING)
            free(*(char **)config_field(cfg, &config_options[i]));
    }
    free(cfg->config_file);
    memset(cfg, 0, sizeof *cfg);
}

void config_print_usage(FILE *out, const char *program)
{
    fprintf(out,
            "Usage: %s [options]\n"
            "\n"
            "dtmq, a distributed transaction broker that speaks DTM's HTTP protocol.\n"
            "Settings, lowest precedence first: built-in defaults, the YAML file given\n"
            "with -c, DTMQ_* environment variables, these flags. Flags take their value\n"
            "as '--name value' or '--name=value'. See docs/configuration.md.\n"
            "\n"
            "  -c, --config FILE\n"
            "        YAML file with DTM-style keys (HttpPort: 36789, ...)\n"
            "  -h, --help\n"
            "        print this help and exit\n"
            "  -v, --version\n"
            "        print the version (%s) and exit\n",
            program != NULL ? program : "dtmq", DTMQ_VERSION);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const config_option *opt = &config_options[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", opt->flag, opt->metavar);
        fprintf(out, "  %-30s env %s, YAML %s, default '%s'\n        %s\n", flag, opt->env_name,
                opt->yaml_key, opt->default_text, opt->help);
    }
}
