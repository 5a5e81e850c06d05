/*
 * test_config.c — unit tests of broker/config.c: defaults, the YAML file, the
 * DTMQ_* environment and flags, their precedence, the Store and Kafka forms,
 * every kind of error message (with file:line), help/version, and that
 * config_free is safe after every outcome (ASan/LSan watch for leaks).
 *
 * Check forks every test, so setenv/unsetenv inside a test do not leak into
 * the next one. Each test gets a fresh mkdtemp directory for its YAML files.
 * Run from the repository root (docs/conf.sample.yml is read by path).
 */
#include <check.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"

/* ------------------------------------------------------------------------ */
/* Fixture and helpers                                                      */
/* ------------------------------------------------------------------------ */

static char test_dir[512];
static char test_yaml_path[600];

static const char *const all_env_names[] = {
    "DTMQ_HTTP_HOST", "DTMQ_HTTP_PORT", "DTMQ_STORE", "DTMQ_KAFKA", "DTMQ_KAFKA_TOPIC_PREFIX",
    "DTMQ_TIMEOUT_TO_FAIL", "DTMQ_RETRY_INTERVAL", "DTMQ_RETRY_INTERVAL_MAX",
    "DTMQ_REQUEST_TIMEOUT", "DTMQ_TRANS_CRON_INTERVAL", "DTMQ_ALERT_RETRY_LIMIT",
    "DTMQ_ALERT_WEB_HOOK", "DTMQ_MAX_BODY_BYTES", "DTMQ_LOG_LEVEL", "DTMQ_LOG_FORMAT", NULL,
};

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(test_dir, sizeof test_dir, "%s/dtmq-test-config-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(test_dir));
    /* Whatever the caller's shell exported must not change the results. */
    for (size_t i = 0; all_env_names[i] != NULL; i++)
        unsetenv(all_env_names[i]);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(test_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes text to <test dir>/<name> and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text)
{
    snprintf(test_yaml_path, sizeof test_yaml_path, "%s/%s", test_dir, name);
    FILE *f = fopen(test_yaml_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return test_yaml_path;
}

static const char *write_yaml(const char *text)
{
    return write_file("conf.yml", text);
}

/* Runs config_load on "dtmq" followed by the NULL-terminated arguments. */
static config_status load_args(dtmq_config *cfg, char *err, size_t errlen, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"dtmq";
    va_list ap;
    va_start(ap, errlen);
    for (const char *arg = va_arg(ap, const char *); arg != NULL; arg = va_arg(ap, const char *)) {
        ck_assert_int_lt(argc, 63);
        argv[argc++] = (char *)arg;
    }
    va_end(ap);
    argv[argc] = NULL;
    return config_load(cfg, argc, argv, err, errlen);
}

/* Formats an expected message (for ones that contain the temp path). */
__attribute__((format(printf, 1, 2)))
static const char *fmt(const char *format, ...)
{
    static char buf[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(buf, sizeof buf, format, ap);
    va_end(ap);
    return buf;
}

/* Loads `yaml` as the config file and expects exactly `expected` with the
 * file's path in front of it ("<path>" + expected). */
static void expect_yaml_error(const char *yaml, const char *expected_after_path)
{
    dtmq_config cfg;
    char err[512];
    const char *path = write_yaml(yaml);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, fmt("%s%s", path, expected_after_path));
    config_free(&cfg);
}

/* Loads `yaml` as the config file and expects it to succeed; cfg is the caller's to free. */
static void load_yaml_ok(dtmq_config *cfg, const char *yaml)
{
    char err[512] = "";
    const char *path = write_yaml(yaml);
    config_status status = load_args(cfg, err, sizeof err, "-c", path, NULL);
    ck_assert_msg(status == CONFIG_OK, "load failed: %s", err);
}

static void assert_defaults(const dtmq_config *cfg)
{
    ck_assert_str_eq(cfg->http_host, "0.0.0.0");
    ck_assert_int_eq(cfg->http_port, 36789);
    ck_assert_str_eq(cfg->store_uri, "sqlite:./dtmq.db");
    ck_assert_str_eq(cfg->kafka, "embedded");
    ck_assert_str_eq(cfg->kafka_topic_prefix, "dtm.");
    ck_assert_int_eq(cfg->timeout_to_fail, 35);
    ck_assert_int_eq(cfg->retry_interval, 10);
    ck_assert_int_eq(cfg->retry_interval_max, 600);
    ck_assert_int_eq(cfg->request_timeout, 3);
    ck_assert_int_eq(cfg->trans_cron_interval, 3);
    ck_assert_int_eq(cfg->alert_retry_limit, 3);
    ck_assert_str_eq(cfg->alert_web_hook, "");
    ck_assert_int_eq(cfg->max_body_bytes, 1048576);
    ck_assert_str_eq(cfg->log_level, "info");
    ck_assert_str_eq(cfg->log_format, "text");
}

/* Values different from every default, as YAML, env and flags set them. */
static const char *const yaml_all_keys =
    "# every key, none at its default\n"
    "HttpHost: 127.0.0.1\n"
    "HttpPort: 8080\n"
    "Store: mongodb://db1:27017/trans\n"
    "Kafka: k1:9092,k2:9093\n"
    "KafkaTopicPrefix: prod.dtm-\n"
    "TimeoutToFail: 5\n"
    "RetryInterval: 2\n"
    "RetryIntervalMax: 60\n"
    "RequestTimeout: 7\n"
    "TransCronInterval: 1\n"
    "AlertRetryLimit: 0\n"
    "AlertWebHook: https://alerts.example.com/hook\n"
    "MaxBodyBytes: 4096\n"
    "LogLevel: debug\n"
    "LogFormat: json\n";

static void assert_all_changed(const dtmq_config *cfg)
{
    ck_assert_str_eq(cfg->http_host, "127.0.0.1");
    ck_assert_int_eq(cfg->http_port, 8080);
    ck_assert_str_eq(cfg->store_uri, "mongodb://db1:27017/trans");
    ck_assert_str_eq(cfg->kafka, "k1:9092,k2:9093");
    ck_assert_str_eq(cfg->kafka_topic_prefix, "prod.dtm-");
    ck_assert_int_eq(cfg->timeout_to_fail, 5);
    ck_assert_int_eq(cfg->retry_interval, 2);
    ck_assert_int_eq(cfg->retry_interval_max, 60);
    ck_assert_int_eq(cfg->request_timeout, 7);
    ck_assert_int_eq(cfg->trans_cron_interval, 1);
    ck_assert_int_eq(cfg->alert_retry_limit, 0);
    ck_assert_str_eq(cfg->alert_web_hook, "https://alerts.example.com/hook");
    ck_assert_int_eq(cfg->max_body_bytes, 4096);
    ck_assert_str_eq(cfg->log_level, "debug");
    ck_assert_str_eq(cfg->log_format, "json");
}

/* ------------------------------------------------------------------------ */
/* Defaults and each layer on its own                                       */
/* ------------------------------------------------------------------------ */

START_TEST(test_defaults)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, NULL), CONFIG_OK);
    assert_defaults(&cfg);
    ck_assert_ptr_null(cfg.config_file);
    ck_assert_str_eq(err, "");
    config_free(&cfg);
}
END_TEST

START_TEST(test_argc_zero)
{
    dtmq_config cfg;
    char err[256];
    char *argv[] = { NULL };
    ck_assert_int_eq(config_load(&cfg, 0, argv, err, sizeof err), CONFIG_OK);
    assert_defaults(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_every_key)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, yaml_all_keys);
    assert_all_changed(&cfg);
    ck_assert_str_eq(cfg.config_file, test_yaml_path);
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_partial_keeps_defaults)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, "HttpPort: 9000\nLogLevel: warn\n");
    ck_assert_int_eq(cfg.http_port, 9000);
    ck_assert_str_eq(cfg.log_level, "warn");
    ck_assert_str_eq(cfg.http_host, "0.0.0.0");
    ck_assert_int_eq(cfg.retry_interval, 10);
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_quoted_and_flow_styles)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, "{HttpPort: \"9001\", HttpHost: '::1', Kafka: \"off\"}\n");
    ck_assert_int_eq(cfg.http_port, 9001);
    ck_assert_str_eq(cfg.http_host, "::1");
    ck_assert_str_eq(cfg.kafka, "off");
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_null_keeps_lower_layer)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, "HttpPort:\nLogLevel: ~\nLogFormat: null\n");
    assert_defaults(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_empty_and_comment_only_files)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, "");
    assert_defaults(&cfg);
    config_free(&cfg);
    load_yaml_ok(&cfg, "# nothing to see\n\n");
    assert_defaults(&cfg);
    config_free(&cfg);
    load_yaml_ok(&cfg, "---\n...\n");
    assert_defaults(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(test_yaml_anchor_alias)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, "RetryInterval: &t 20\nRetryIntervalMax: *t\n");
    ck_assert_int_eq(cfg.retry_interval, 20);
    ck_assert_int_eq(cfg.retry_interval_max, 20);
    config_free(&cfg);
}
END_TEST

START_TEST(test_env_every_option)
{
    setenv("DTMQ_HTTP_HOST", "127.0.0.1", 1);
    setenv("DTMQ_HTTP_PORT", "8080", 1);
    setenv("DTMQ_STORE", "mongodb://db1:27017/trans", 1);
    setenv("DTMQ_KAFKA", "k1:9092,k2:9093", 1);
    setenv("DTMQ_KAFKA_TOPIC_PREFIX", "prod.dtm-", 1);
    setenv("DTMQ_TIMEOUT_TO_FAIL", "5", 1);
    setenv("DTMQ_RETRY_INTERVAL", "2", 1);
    setenv("DTMQ_RETRY_INTERVAL_MAX", "60", 1);
    setenv("DTMQ_REQUEST_TIMEOUT", "7", 1);
    setenv("DTMQ_TRANS_CRON_INTERVAL", "1", 1);
    setenv("DTMQ_ALERT_RETRY_LIMIT", "0", 1);
    setenv("DTMQ_ALERT_WEB_HOOK", "https://alerts.example.com/hook", 1);
    setenv("DTMQ_MAX_BODY_BYTES", "4096", 1);
    setenv("DTMQ_LOG_LEVEL", "debug", 1);
    setenv("DTMQ_LOG_FORMAT", "json", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, NULL), CONFIG_OK);
    assert_all_changed(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(test_flags_every_option)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err,
                               "--http-host", "127.0.0.1", "--http-port", "8080",
                               "--store", "mongodb://db1:27017/trans", "--kafka", "k1:9092,k2:9093",
                               "--kafka-topic-prefix", "prod.dtm-", "--timeout-to-fail", "5",
                               "--retry-interval", "2", "--retry-interval-max", "60",
                               "--request-timeout", "7", "--trans-cron-interval", "1",
                               "--alert-retry-limit", "0",
                               "--alert-web-hook", "https://alerts.example.com/hook",
                               "--max-body-bytes", "4096", "--log-level", "debug",
                               "--log-format", "json", NULL),
                     CONFIG_OK);
    assert_all_changed(&cfg);
    config_free(&cfg);
}
END_TEST

START_TEST(test_flags_equals_form)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--http-port=8081", "--log-level=error",
                               "--store=sqlite:/var/lib/dtmq/a=b.db", "--alert-web-hook=", NULL),
                     CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 8081);
    ck_assert_str_eq(cfg.log_level, "error");
    /* Only the first '=' splits: the value may hold more. */
    ck_assert_str_eq(cfg.store_uri, "sqlite:/var/lib/dtmq/a=b.db");
    ck_assert_str_eq(cfg.alert_web_hook, "");
    config_free(&cfg);
}
END_TEST

START_TEST(test_config_flag_forms)
{
    const char *path = write_yaml("HttpPort: 9100\n");
    dtmq_config cfg;
    char err[512];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, NULL), CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 9100);
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--config", path, NULL), CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 9100);
    ck_assert_str_eq(cfg.config_file, path);
    config_free(&cfg);
    char eq[700];
    snprintf(eq, sizeof eq, "--config=%s", path);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, eq, NULL), CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 9100);
    config_free(&cfg);
}
END_TEST

START_TEST(test_last_flag_wins)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--http-port", "1", "--http-port=2", NULL),
                     CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 2);
    config_free(&cfg);
}
END_TEST

START_TEST(test_enum_values_normalised)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--log-level", "WARN", "--log-format",
                               "Json", "--kafka", "EMBEDDED", NULL),
                     CONFIG_OK);
    ck_assert_str_eq(cfg.log_level, "warn");
    ck_assert_str_eq(cfg.log_format, "json");
    ck_assert_str_eq(cfg.kafka, "embedded");
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Precedence                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(test_env_overrides_yaml)
{
    setenv("DTMQ_HTTP_PORT", "2000", 1);
    setenv("DTMQ_LOG_FORMAT", "json", 1);
    dtmq_config cfg;
    load_yaml_ok(&cfg, "HttpPort: 1000\nLogFormat: text\nLogLevel: warn\n");
    ck_assert_int_eq(cfg.http_port, 2000);
    ck_assert_str_eq(cfg.log_format, "json");
    ck_assert_str_eq(cfg.log_level, "warn"); /* from YAML, no env for it */
    config_free(&cfg);
}
END_TEST

START_TEST(test_flag_overrides_env)
{
    setenv("DTMQ_HTTP_PORT", "2000", 1);
    setenv("DTMQ_LOG_LEVEL", "error", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--http-port", "3000", NULL), CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 3000);
    ck_assert_str_eq(cfg.log_level, "error");
    config_free(&cfg);
}
END_TEST

START_TEST(test_all_layers)
{
    setenv("DTMQ_HTTP_PORT", "2000", 1);
    setenv("DTMQ_REQUEST_TIMEOUT", "9", 1);
    const char *path = write_yaml("HttpPort: 1000\nRequestTimeout: 8\nTimeoutToFail: 40\n");
    dtmq_config cfg;
    char err[512];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--http-port=3000", "-c", path, NULL),
                     CONFIG_OK);
    ck_assert_int_eq(cfg.http_port, 3000);      /* flag */
    ck_assert_int_eq(cfg.request_timeout, 9);   /* env */
    ck_assert_int_eq(cfg.timeout_to_fail, 40);  /* yaml */
    ck_assert_int_eq(cfg.retry_interval, 10);   /* default */
    config_free(&cfg);
}
END_TEST

START_TEST(test_empty_env_is_unset)
{
    setenv("DTMQ_HTTP_PORT", "", 1);
    setenv("DTMQ_LOG_LEVEL", "", 1);
    dtmq_config cfg;
    load_yaml_ok(&cfg, "HttpPort: 1000\n");
    ck_assert_int_eq(cfg.http_port, 1000);
    ck_assert_str_eq(cfg.log_level, "info");
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

/* Loads yaml and checks the resolved store URI. */
static void expect_store(const char *yaml, const char *uri)
{
    dtmq_config cfg;
    load_yaml_ok(&cfg, yaml);
    ck_assert_str_eq(cfg.store_uri, uri);
    config_free(&cfg);
}

START_TEST(test_store_scalar)
{
    expect_store("Store: sqlite:/var/lib/dtmq/trans.db\n", "sqlite:/var/lib/dtmq/trans.db");
    expect_store("Store: \"mongodb://u:p@h1:27017,h2:27017/dtmq?replicaSet=rs0\"\n",
                 "mongodb://u:p@h1:27017,h2:27017/dtmq?replicaSet=rs0");
    expect_store("Store: mongodb+srv://cluster.example.com/dtmq\n",
                 "mongodb+srv://cluster.example.com/dtmq");
}
END_TEST

START_TEST(test_store_mapping_sqlite)
{
    expect_store("Store:\n  Driver: sqlite\n  Path: /data/dtmq.db\n", "sqlite:/data/dtmq.db");
    expect_store("Store: {Driver: sqlite, Path: ./x.db}\n", "sqlite:./x.db");
    expect_store("Store:\n  Driver: sqlite\n", "sqlite:./dtmq.db");
    expect_store("Store:\n  Driver: SQLite\n  Path: a.db\n", "sqlite:a.db");
}
END_TEST

START_TEST(test_store_mapping_mongodb)
{
    expect_store("Store:\n  Driver: mongodb\n  Uri: \"mongodb://host:27017\"\n  Db: dtmq\n",
                 "mongodb://host:27017/dtmq");
    expect_store("Store: {Driver: mongodb, Uri: \"mongodb://host:27017/\", Db: trans}\n",
                 "mongodb://host:27017/trans");
    expect_store("Store:\n  Driver: mongodb\n  Uri: mongodb://h1,h2/?replicaSet=rs0\n  Db: dtmq\n",
                 "mongodb://h1,h2/dtmq?replicaSet=rs0");
    expect_store("Store:\n  Driver: mongodb\n  Uri: mongodb://h?w=majority\n  Db: dtmq\n",
                 "mongodb://h/dtmq?w=majority");
    /* The Uri's own database agrees with Db: kept as is. */
    expect_store("Store:\n  Driver: mongodb\n  Uri: mongodb://h/dtmq\n  Db: dtmq\n",
                 "mongodb://h/dtmq");
    /* No Db: the Uri is taken unchanged. */
    expect_store("Store:\n  Driver: mongodb\n  Uri: mongodb://h:27017\n", "mongodb://h:27017");
}
END_TEST

START_TEST(test_store_env_and_flag)
{
    setenv("DTMQ_STORE", "mongodb://envhost/dtmq", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, NULL), CONFIG_OK);
    ck_assert_str_eq(cfg.store_uri, "mongodb://envhost/dtmq");
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--store", "sqlite:flag.db", NULL), CONFIG_OK);
    ck_assert_str_eq(cfg.store_uri, "sqlite:flag.db");
    config_free(&cfg);
}
END_TEST

START_TEST(test_store_mapping_errors)
{
    expect_yaml_error("HttpPort: 1\nStore:\n  Driver: mysql\n",
                      ":3: Store.Driver: unknown driver 'mysql' (expected sqlite or mongodb)");
    expect_yaml_error("Store:\n  Path: x.db\n",
                      ":2: Store: Driver is missing (expected sqlite or mongodb)");
    expect_yaml_error("Store:\n  Driver: sqlite\n  Host: localhost\n",
                      ":3: unknown key 'Host' in Store (expected Driver, Path, Uri, Db)");
    expect_yaml_error("Store:\n  Driver: mongodb\n  Path: x.db\n",
                      ":3: Store.Path is not used by driver mongodb (use Uri)");
    expect_yaml_error("Store:\n  Driver: sqlite\n  Uri: mongodb://h\n",
                      ":3: Store.Uri is not used by driver sqlite (use Path)");
    expect_yaml_error("Store:\n  Driver: mongodb\n",
                      ":2: Store: driver mongodb needs Uri (e.g. mongodb://127.0.0.1:27017)");
    expect_yaml_error("Store:\n  Driver: mongodb\n  Uri: http://h\n",
                      ":3: Store.Uri: 'http://h' is not a mongodb:// URI");
    expect_yaml_error("Store:\n  Driver: mongodb\n  Uri: mongodb://h/other\n  Db: dtmq\n",
                      ":4: Store.Db: 'dtmq' disagrees with database 'other' named in Store.Uri");
    expect_yaml_error("Store:\n  Driver: mongodb\n  Uri: mongodb://h\n  Db: a.b\n",
                      ":4: Store.Db: 'a.b' is not a MongoDB database name");
    expect_yaml_error("Store:\n  Driver: [sqlite]\n",
                      ":2: Store.Driver: expected a single value, found a list");
    expect_yaml_error("Store:\n  Driver: sqlite\n  Driver: mongodb\n",
                      ":3: duplicate key 'Driver' in Store (first at line 2)");
    expect_yaml_error("Store: [sqlite]\n", ":1: Store: expected a single value, found a list");
    expect_yaml_error("Store: postgres://h/db\n",
                      ":1: Store: 'postgres://h/db' is not a store URI (expected sqlite:PATH or mongodb://...)");
    expect_yaml_error("Store: \"sqlite:\"\n", ":1: Store: 'sqlite:' names no file (expected sqlite:PATH)");
}
END_TEST

START_TEST(test_store_env_error)
{
    setenv("DTMQ_STORE", "mongodb://", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, "DTMQ_STORE: 'mongodb://' names no host");
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Kafka and other checked strings                                          */
/* ------------------------------------------------------------------------ */

static void expect_flag_ok(const char *flag, const char *value)
{
    dtmq_config cfg;
    char err[512];
    config_status status = load_args(&cfg, err, sizeof err, flag, value, NULL);
    ck_assert_msg(status == CONFIG_OK, "%s %s: %s", flag, value, err);
    config_free(&cfg);
}

static void expect_flag_error(const char *flag, const char *value, const char *expected)
{
    dtmq_config cfg;
    char err[512];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, flag, value, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, expected);
    config_free(&cfg);
}

START_TEST(test_kafka_forms)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--kafka", "off", NULL), CONFIG_OK);
    ck_assert_str_eq(cfg.kafka, "off");
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--kafka", "broker-1.example.com:9092", NULL),
                     CONFIG_OK);
    ck_assert_str_eq(cfg.kafka, "broker-1.example.com:9092");
    config_free(&cfg);
    expect_flag_ok("--kafka", "10.0.0.1:9092,10.0.0.2:9092,10.0.0.3:9092");
    expect_flag_ok("--kafka", "[::1]:9092");
    expect_flag_ok("--kafka", "localhost:1");
}
END_TEST

START_TEST(test_kafka_errors)
{
    expect_flag_error("--kafka", "localhost",
                      "--kafka: 'localhost' is not embedded, off or a host:port[,host:port...] list (bad element 'localhost')");
    expect_flag_error("--kafka", "a:9092,b:x",
                      "--kafka: 'a:9092,b:x' is not embedded, off or a host:port[,host:port...] list (bad element 'b:x')");
    expect_flag_error("--kafka", "a:9092,",
                      "--kafka: 'a:9092,' is not embedded, off or a host:port[,host:port...] list (bad element '')");
    expect_flag_error("--kafka", "a:70000",
                      "--kafka: 'a:70000' is not embedded, off or a host:port[,host:port...] list (bad element 'a:70000')");
    expect_flag_error("--kafka", ":9092",
                      "--kafka: ':9092' is not embedded, off or a host:port[,host:port...] list (bad element ':9092')");
    expect_flag_error("--kafka", "a:9092, b:9092",
                      "--kafka: 'a:9092, b:9092' is not embedded, off or a host:port[,host:port...] list (bad element ' b:9092')");
    expect_flag_error("--kafka", "PLAINTEXT://a:9092",
                      "--kafka: 'PLAINTEXT://a:9092' is not embedded, off or a host:port[,host:port...] list (bad element 'PLAINTEXT://a:9092')");
}
END_TEST

START_TEST(test_checked_string_errors)
{
    expect_flag_error("--log-level", "verbose",
                      "--log-level: 'verbose' is not one of debug, info, warn, error");
    expect_flag_error("--log-format", "xml", "--log-format: 'xml' is not one of text, json");
    expect_flag_error("--alert-web-hook", "ftp://x",
                      "--alert-web-hook: 'ftp://x' is not an http:// or https:// URL");
    expect_flag_error("--alert-web-hook", "http://",
                      "--alert-web-hook: 'http://' is not an http:// or https:// URL");
    expect_flag_error("--kafka-topic-prefix", "my topic",
                      "--kafka-topic-prefix: 'my topic' may only hold letters, digits, '.', '_' and '-'");
    expect_flag_error("--http-host", "", "--http-host: must not be empty");
    expect_flag_error("--http-host", "a b", "--http-host: 'a b' is not a host name or address");
    expect_flag_ok("--kafka-topic-prefix", "");
    expect_flag_ok("--alert-web-hook", "http://127.0.0.1:8080/alert");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_number_errors)
{
    expect_yaml_error("HttpHost: a\n\n\nHttpPort: abc\n", ":4: HttpPort: 'abc' is not a number");
    expect_yaml_error("HttpPort: 0x10\n", ":1: HttpPort: '0x10' is not a number");
    expect_yaml_error("HttpPort: 1.5\n", ":1: HttpPort: '1.5' is not a number");
    expect_yaml_error("HttpPort: \" 80\"\n", ":1: HttpPort: ' 80' is not a number");
    expect_yaml_error("HttpPort: 0\n", ":1: HttpPort: '0' is out of range 1..65535");
    expect_yaml_error("MaxBodyBytes: 99999999999999999999999\n",
                      ":1: MaxBodyBytes: '99999999999999999999999' is out of range 1..1073741824");
    expect_yaml_error("RetryInterval: -1\n", ":1: RetryInterval: '-1' is out of range 1..2147483");
    expect_flag_error("--timeout-to-fail", "0", "--timeout-to-fail: '0' is out of range 1..2147483");
    expect_flag_error("--alert-retry-limit", "-1", "--alert-retry-limit: '-1' is out of range 0..100");
    expect_flag_error("--http-port", "", "--http-port: '' is not a number");
    expect_flag_error("--request-timeout", "3s", "--request-timeout: '3s' is not a number");
}
END_TEST

START_TEST(test_env_number_error)
{
    setenv("DTMQ_HTTP_PORT", "70000", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, "DTMQ_HTTP_PORT: '70000' is out of range 1..65535");
    config_free(&cfg);
}
END_TEST

START_TEST(test_retry_interval_max_below_base)
{
    setenv("DTMQ_RETRY_INTERVAL", "30", 1);
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--retry-interval-max=20", NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, "RetryIntervalMax (20, from --retry-interval-max) must be >= RetryInterval (30, from DTMQ_RETRY_INTERVAL)");
    config_free(&cfg);

    const char *path = write_yaml("RetryInterval: 700\n");
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, "--retry-interval", "800", NULL),
                     CONFIG_ERROR);
    ck_assert_str_eq(err, "RetryIntervalMax (600, from default) must be >= RetryInterval (800, from --retry-interval)");
    config_free(&cfg);
}
END_TEST

START_TEST(test_retry_interval_max_source_is_file_line)
{
    dtmq_config cfg;
    char err[1024];
    const char *path = write_yaml("RetryInterval: 5\nRetryIntervalMax: 4\n");
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, fmt("RetryIntervalMax (4, from %s:2) must be >= RetryInterval (5, from %s:1)",
                              path, path));
    config_free(&cfg);
}
END_TEST

START_TEST(test_short_timeouts_allowed)
{
    /* Unlike DTM: RetryInterval may be below 10 and TimeoutToFail below it. */
    dtmq_config cfg;
    load_yaml_ok(&cfg, "RetryInterval: 3\nTimeoutToFail: 1\nRetryIntervalMax: 3\n");
    ck_assert_int_eq(cfg.retry_interval, 3);
    ck_assert_int_eq(cfg.timeout_to_fail, 1);
    ck_assert_int_eq(cfg.retry_interval_max, 3);
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* YAML structure errors                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_yaml_unknown_keys)
{
    expect_yaml_error("HttpPort: 1\nLogLevel: info\nHttpPrt: 2\n",
                      ":3: unknown key 'HttpPrt' (did you mean 'HttpPort'? keys are case-sensitive)");
    expect_yaml_error("httpPort: 1\n",
                      ":1: unknown key 'httpPort' (did you mean 'HttpPort'? keys are case-sensitive)");
    expect_yaml_error("Banana: 1\n", ":1: unknown key 'Banana'");
    expect_yaml_error("GrpcPort: 36790\n",
                      ":1: unknown key 'GrpcPort' (a DTM option that dtmq does not take)");
}
END_TEST

START_TEST(test_yaml_shape_errors)
{
    expect_yaml_error("HttpPort: [1, 2]\n", ":1: HttpPort: expected a single value, found a list");
    expect_yaml_error("LogLevel:\n  a: b\n", ":2: LogLevel: expected a single value, found a mapping");
    expect_yaml_error("HttpPort: 1\nHttpPort: 2\n", ":2: duplicate key 'HttpPort' (first at line 1)");
    expect_yaml_error("just text\n",
                      ":1: expected a mapping of keys to values at the top, found a single value");
    expect_yaml_error("- HttpPort\n",
                      ":1: expected a mapping of keys to values at the top, found a list");
    expect_yaml_error("? [a]\n: 1\n", ":1: a key must be a name, found a list");
    expect_yaml_error("HttpPort: 1\n---\nHttpPort: 2\n",
                      ":2: a second YAML document; the file must hold one");
}
END_TEST

START_TEST(test_yaml_syntax_errors)
{
    expect_yaml_error("HttpPort: 1\nHttpHost: [a, b\n",
                      ":3:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 2)");
    expect_yaml_error("HttpPort: 1\n  HttpHost: x\n",
                      ":2:11: YAML syntax error: mapping values are not allowed in this context");
    expect_yaml_error("HttpPort: 1\n\tHttpHost: x\n",
                      ":2:1: YAML syntax error: found a tab character that violates indentation (while scanning a plain scalar at line 1)");
    expect_yaml_error("HttpPort: *nowhere\n", ":1:11: YAML syntax error: found undefined alias");
    expect_yaml_error("HttpPort: 1\nHttpHost: \"\xff\"\n",
                      ":2: YAML syntax error: invalid leading UTF-8 octet at byte 23");
}
END_TEST

START_TEST(test_missing_file)
{
    dtmq_config cfg;
    char err[512];
    char path[700];
    snprintf(path, sizeof path, "%s/absent.yml", test_dir);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, fmt("cannot read %s: No such file or directory", path));
    config_free(&cfg);

    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--config", test_dir, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, fmt("cannot read %s: Is a directory", test_dir));
    config_free(&cfg);
}
END_TEST

START_TEST(test_relative_file_name_in_messages)
{
    /* The message names the file as the user typed it. */
    write_yaml("HttpPort: abc\n");
    char cwd[4096];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(test_dir), 0);
    dtmq_config cfg;
    char err[256];
    config_status status = load_args(&cfg, err, sizeof err, "-c", "conf.yml", NULL);
    ck_assert_int_eq(chdir(cwd), 0); /* matters when CK_FORK=no */
    ck_assert_int_eq(status, CONFIG_ERROR);
    ck_assert_str_eq(err, "conf.yml:1: HttpPort: 'abc' is not a number");
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Command-line errors, help and version                                    */
/* ------------------------------------------------------------------------ */

static void expect_args_error(const char *expected, const char *a, const char *b)
{
    dtmq_config cfg;
    char err[512];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, a, b, NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, expected);
    config_free(&cfg);
}

START_TEST(test_flag_errors)
{
    expect_args_error("unknown option '--foo' (see --help)", "--foo", NULL);
    expect_args_error("unknown option '--foo' (see --help)", "--foo=1", NULL);
    expect_args_error("unknown option '--http-prot' (did you mean '--http-port'? see --help)",
                      "--http-prot", "1");
    expect_args_error("unknown option '-x' (see --help)", "-x", NULL);
    expect_args_error("unknown option '--HttpPort' (did you mean '--http-port'? see --help)",
                      "--HttpPort", "1");
    expect_args_error("unexpected argument 'conf.yml' (see --help)", "conf.yml", NULL);
    expect_args_error("option '--http-port' needs a value (see --help)", "--http-port", NULL);
    expect_args_error("option '--http-port' needs a value (see --help)", "--http-port", "--log-level");
    expect_args_error("option '-c' needs a value (see --help)", "-c", NULL);
    expect_args_error("option '--config' needs a file name", "--config=", NULL);
    expect_args_error("option '--help' takes no value", "--help=yes", NULL);
    expect_args_error("option '--version' takes no value", "--version=1", NULL);
}
END_TEST

START_TEST(test_flag_value_may_start_with_single_dash)
{
    /* Only "--..." is refused as a separate value; "-1" reaches the checker. */
    expect_flag_error("--alert-retry-limit", "-1", "--alert-retry-limit: '-1' is out of range 0..100");
}
END_TEST

START_TEST(test_help_and_version)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-h", NULL), CONFIG_EXIT_HELP);
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--help", NULL), CONFIG_EXIT_HELP);
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-v", NULL), CONFIG_EXIT_VERSION);
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--version", NULL), CONFIG_EXIT_VERSION);
    config_free(&cfg);
}
END_TEST

START_TEST(test_help_before_other_problems)
{
    dtmq_config cfg;
    char err[256];
    setenv("DTMQ_HTTP_PORT", "nonsense", 1);
    /* Help wins over a bad environment, a missing file and later bad flags. */
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", "/nonexistent/conf.yml", "--help",
                               "--bogus", NULL),
                     CONFIG_EXIT_HELP);
    assert_defaults(&cfg);
    config_free(&cfg);
    /* ...but an earlier bad flag is reported first. */
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--bogus", "-v", NULL), CONFIG_ERROR);
    ck_assert_str_eq(err, "unknown option '--bogus' (see --help)");
    config_free(&cfg);
}
END_TEST

START_TEST(test_bad_flag_reported_before_bad_file)
{
    dtmq_config cfg;
    char err[256];
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", "/nonexistent/conf.yml", "--nope", NULL),
                     CONFIG_ERROR);
    ck_assert_str_eq(err, "unknown option '--nope' (see --help)");
    config_free(&cfg);
}
END_TEST

START_TEST(test_usage_lists_everything)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    config_print_usage(out, "dtmq");
    fclose(out);
    const char *const expected[] = {
        "Usage: dtmq [options]", "-c, --config FILE", "-h, --help", "-v, --version",
        "--http-host", "DTMQ_HTTP_HOST", "0.0.0.0", "--http-port", "DTMQ_HTTP_PORT", "36789",
        "--store", "DTMQ_STORE", "sqlite:./dtmq.db", "--kafka ", "DTMQ_KAFKA,", "embedded",
        "--kafka-topic-prefix", "DTMQ_KAFKA_TOPIC_PREFIX", "'dtm.'",
        "--timeout-to-fail", "DTMQ_TIMEOUT_TO_FAIL", "'35'",
        "--retry-interval ", "DTMQ_RETRY_INTERVAL,", "'10'",
        "--retry-interval-max", "DTMQ_RETRY_INTERVAL_MAX", "'600'",
        "--request-timeout", "DTMQ_REQUEST_TIMEOUT", "--trans-cron-interval",
        "DTMQ_TRANS_CRON_INTERVAL", "--alert-retry-limit", "DTMQ_ALERT_RETRY_LIMIT",
        "--alert-web-hook", "DTMQ_ALERT_WEB_HOOK", "--max-body-bytes", "DTMQ_MAX_BODY_BYTES",
        "'1048576'", "--log-level", "DTMQ_LOG_LEVEL", "'info'", "--log-format", "DTMQ_LOG_FORMAT",
        "'text'", NULL,
    };
    for (size_t i = 0; expected[i] != NULL; i++)
        ck_assert_msg(strstr(text, expected[i]) != NULL, "usage lacks '%s'", expected[i]);
    free(text);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The shipped sample and freeing                                           */
/* ------------------------------------------------------------------------ */

START_TEST(test_sample_file_is_the_defaults)
{
    dtmq_config cfg;
    char err[512] = "";
    config_status status = load_args(&cfg, err, sizeof err, "-c", "docs/conf.sample.yml", NULL);
    ck_assert_msg(status == CONFIG_OK, "docs/conf.sample.yml: %s", err);
    assert_defaults(&cfg);
    ck_assert_str_eq(cfg.config_file, "docs/conf.sample.yml");
    config_free(&cfg);
}
END_TEST

START_TEST(test_free_after_every_outcome)
{
    dtmq_config cfg;
    char err[256];
    /* Error in the middle of the file, after earlier keys were set. */
    const char *path = write_yaml("HttpHost: h\nLogLevel: warn\nKafka: bad\n");
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "-c", path, NULL), CONFIG_ERROR);
    config_free(&cfg);
    config_free(&cfg); /* twice is harmless */
    ck_assert_ptr_null(cfg.http_host);
    /* Error in a flag after the file and env applied. */
    setenv("DTMQ_LOG_FORMAT", "json", 1);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--store", "sqlite:a", "--store", "x", NULL),
                     CONFIG_ERROR);
    config_free(&cfg);
    ck_assert_int_eq(load_args(&cfg, err, sizeof err, "--help", NULL), CONFIG_EXIT_HELP);
    config_free(&cfg);
    config_free(NULL);
}
END_TEST

START_TEST(test_null_err_buffer)
{
    dtmq_config cfg;
    char *argv[] = { (char *)"dtmq", (char *)"--foo", NULL };
    ck_assert_int_eq(config_load(&cfg, 2, argv, NULL, 0), CONFIG_ERROR);
    config_free(&cfg);
    char tiny[8];
    ck_assert_int_eq(config_load(&cfg, 2, argv, tiny, sizeof tiny), CONFIG_ERROR);
    ck_assert_str_eq(tiny, "unknown");
    config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    test_group layers = {.suite = s, .setup = setup, .teardown = teardown};
    test_add(&layers, test_defaults);
    test_add(&layers, test_argc_zero);
    test_add(&layers, test_yaml_every_key);
    test_add(&layers, test_yaml_partial_keeps_defaults);
    test_add(&layers, test_yaml_quoted_and_flow_styles);
    test_add(&layers, test_yaml_null_keeps_lower_layer);
    test_add(&layers, test_yaml_empty_and_comment_only_files);
    test_add(&layers, test_yaml_anchor_alias);
    test_add(&layers, test_env_every_option);
    test_add(&layers, test_flags_every_option);
    test_add(&layers, test_flags_equals_form);
    test_add(&layers, test_config_flag_forms);
    test_add(&layers, test_last_flag_wins);
    test_add(&layers, test_enum_values_normalised);
    test_add(&layers, test_env_overrides_yaml);
    test_add(&layers, test_flag_overrides_env);
    test_add(&layers, test_all_layers);
    test_add(&layers, test_empty_env_is_unset);

    test_group values = {.suite = s, .setup = setup, .teardown = teardown};
    test_add(&values, test_store_scalar);
    test_add(&values, test_store_mapping_sqlite);
    test_add(&values, test_store_mapping_mongodb);
    test_add(&values, test_store_env_and_flag);
    test_add(&values, test_store_mapping_errors);
    test_add(&values, test_store_env_error);
    test_add(&values, test_kafka_forms);
    test_add(&values, test_kafka_errors);
    test_add(&values, test_checked_string_errors);
    test_add(&values, test_number_errors);
    test_add(&values, test_env_number_error);
    test_add(&values, test_retry_interval_max_below_base);
    test_add(&values, test_retry_interval_max_source_is_file_line);
    test_add(&values, test_short_timeouts_allowed);

    test_group errors = {.suite = s, .setup = setup, .teardown = teardown};
    test_add(&errors, test_yaml_unknown_keys);
    test_add(&errors, test_yaml_shape_errors);
    test_add(&errors, test_yaml_syntax_errors);
    test_add(&errors, test_missing_file);
    test_add(&errors, test_relative_file_name_in_messages);
    test_add(&errors, test_flag_errors);
    test_add(&errors, test_flag_value_may_start_with_single_dash);
    test_add(&errors, test_help_and_version);
    test_add(&errors, test_help_before_other_problems);
    test_add(&errors, test_bad_flag_reported_before_bad_file);
    test_add(&errors, test_usage_lists_everything);
    test_add(&errors, test_sample_file_is_the_defaults);
    test_add(&errors, test_free_after_every_outcome);
    test_add(&errors, test_null_err_buffer);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(config_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
