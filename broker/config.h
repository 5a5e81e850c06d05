/*
 * config.h — dtmq's configuration: what the daemon is told at start-up.
 *
 * One struct, dtmq_config, holds every setting the broker reads. config_load()
 * fills it from four layers, each overriding the one before:
 *
 *     built-in defaults  <  YAML file (-c/--config)  <  DTMQ_* env vars  <  flags
 *
 * (DTM lets its YAML file override the environment; dtmq uses the conventional
 * order instead, so an operator can always override a file from the outside.)
 *
 * The options, their YAML keys, env var names, flags, defaults and bounds are
 * in one table in config.c and documented in docs/configuration.md.
 *
 * Ownership: every char * in dtmq_config is owned by the struct and released by
 * config_free(). Numbers are plain values. Durations are whole seconds.
 */
#ifndef DTMQ_CONFIG_H
#define DTMQ_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct dtmq_config {
    char *http_host;            /* owned */
    int http_port;
    char *store_uri;            /* owned, resolved single URI */
    char *kafka;                /* owned: "embedded", "off" or a bootstrap list */
    char *kafka_topic_prefix;   /* owned */
    char *kafka_group;          /* owned: consumer group of the dtmq processes */
    int kafka_partitions;       /* partitions of topics dtmq creates */
    int kafka_embedded_port;    /* embedded cluster's port; 0 = a free one */
    int kafka_events;           /* 1: publish status changes to PREFIXevents */
    int kafka_ingress_lanes;    /* threads taking submit and reply messages */
    int timeout_to_fail;        /* seconds */
    int retry_interval;
    int retry_interval_max;
    int request_timeout;
    int trans_cron_interval;
    int finished_data_expire;   /* seconds; 0 = keep finished transactions */
    int alert_retry_limit;
    char *alert_web_hook;       /* owned, "" when unset */
    int http_threads;           /* HTTP API threads */
    long max_body_bytes;
    char *admin_token;          /* owned, "" when unset */
    char *branch_allowlist;     /* owned, comma-separated URL prefixes, "" = any */
    char *log_level;            /* owned: debug|info|warn|error */
    char *log_format;           /* owned: text|json */
    char *config_file;          /* owned, NULL when no -c */
} dtmq_config;

typedef enum {
    CONFIG_OK = 0,
    CONFIG_ERROR = -1,
    CONFIG_EXIT_HELP = 1,     /* -h/--help seen: caller prints config_print_usage, exits 0 */
    CONFIG_EXIT_VERSION = 2   /* -v/--version seen: caller prints DTMQ_VERSION (version.h), exits 0 */
} config_status;

/* Fills cfg from defaults, the YAML file named by -c/--config in argv (if any),
 * DTMQ_* environment variables (read with getenv), then argv flags. argv[0] is
 * skipped. On CONFIG_ERROR, err gets ONE line naming what failed and where:
 * "conf.yml:12: HttpPort: 'abc' is not a number", "DTMQ_HTTP_PORT: '70000' is
 * out of range 1..65535", "unknown option '--foo' (see --help)",
 * "conf.yml:3: unknown key 'HttpPrt'", "cannot read conf.yml: No such file or
 * directory", "conf.yml:7:5: YAML syntax error: ...". cfg is always safe to
 * config_free afterwards.
 *
 * cfg is overwritten, not freed: pass a fresh struct (or one already given to
 * config_free). argv is scanned completely before the file is read, so a bad
 * flag is reported even when the file is bad too; -h and -v win over anything
 * after them. Empty DTMQ_* variables count as unset. err may be NULL. */
config_status config_load(dtmq_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Frees every owned string and leaves cfg zeroed. NULL is allowed; calling it
 * twice is harmless. */
void config_free(dtmq_config *cfg);

/* Writes the usage text: every flag with its env var, YAML key and default. */
void config_print_usage(FILE *out, const char *program);

#endif /* DTMQ_CONFIG_H */
