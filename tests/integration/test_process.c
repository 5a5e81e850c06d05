/*
 * test_process.c — the dtmq process as a user meets it: it starts on each
 * store and each kind of Kafka, answers the foundation routes with DTM's
 * shapes, refuses bad input with a message, fails to start with one clear
 * line when a part is unreachable, and stops cleanly on SIGTERM/SIGINT.
 * Runs the real binary (build/asan/dtmq) against real Kafka and the
 * MongoDB-protocol test server (tests/services/mongo.sh).
 */
#include <check.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* GET/POST path on p; returns the parsed JSON body and the status in *status. */
static json_t *call_json(const dtmq_proc *p, const char *method, const char *path,
                         const char *body, int *status)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    char *text = NULL;
    *status = http_do(method, url, body, &text);
    json_error_t jerr;
    json_t *j = json_loads(text ? text : "", 0, &jerr);
    if (j == NULL)
        fprintf(stderr, "not JSON from %s %s (%d): %s\n", method, path, *status, text);
    free(text);
    return j;
}

static void start_or_fail(dtmq_proc *p, const char *const *args, const char *const *env)
{
    int exit_status = 0;
    if (dtmq_start(p, args, env, &exit_status) != 0) {
        char *log = dtmq_log(p);
        ck_abort_msg("dtmq did not start (exit %d): %s", exit_status, log);
        free(log);
    }
}

static void stop_ok(dtmq_proc *p)
{
    int rc = dtmq_stop(p, SIGTERM, 20);
    if (rc != 0) {
        char *log = dtmq_log(p);
        ck_abort_msg("dtmq exited %d on SIGTERM: %s", rc, log);
        free(log);
    }
}

START_TEST(ping_version_and_new_gid)
{
    dtmq_proc p;
    const char *args[] = {"--kafka", "off", NULL};
    start_or_fail(&p, args, NULL);
    int status;
    json_t *j = call_json(&p, "GET", "/api/ping", NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "pong");
    json_decref(j);
    j = call_json(&p, "POST", "/api/ping", "", &status); /* any method, as DTM */
    ck_assert_int_eq(status, 200);
    json_decref(j);

    j = call_json(&p, "GET", "/api/dtmsvr/version", NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "version")));
    json_decref(j);

    char first[64] = "";
    for (int i = 0; i < 2; i++) {
        j = call_json(&p, "GET", "/api/dtmsvr/newGid", NULL, &status);
        ck_assert_int_eq(status, 200);
        const char *key;
        json_t *value;
        json_object_foreach(j, key, value)
            ck_assert_msg(json_is_string(value), "newGid value '%s' is not a string", key);
        ck_assert_str_eq(json_string_value(json_object_get(j, "dtm_result")), "SUCCESS");
        const char *gid = json_string_value(json_object_get(j, "gid"));
        ck_assert_uint_eq(strlen(gid), 22);
        ck_assert_str_ne(gid, first);
        snprintf(first, sizeof(first), "%s", gid);
        json_decref(j);
    }
    stop_ok(&p);
}
END_TEST

START_TEST(unknown_route_wrong_method_and_oversized_body)
{
    dtmq_proc p;
    const char *args[] = {"--kafka", "off", "--max-body-bytes", "1024", NULL};
    start_or_fail(&p, args, NULL);
    int status;
    json_t *j = call_json(&p, "GET", "/api/nowhere", NULL, &status);
    ck_assert_int_eq(status, 404);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), "/api/nowhere"));
    json_decref(j);
    j = call_json(&p, "DELETE", "/api/dtmsvr/newGid", NULL, &status);
    ck_assert_int_eq(status, 405);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), "DELETE"));
    json_decref(j);

    char *big = malloc(4096);
    memset(big, 'x', 4095);
    big[4095] = '\0';
    j = call_json(&p, "POST", "/api/ping", big, &status);
    ck_assert_int_eq(status, 413);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "message")), "MaxBodyBytes"));
    json_decref(j);
    free(big);
    /* the server is unharmed */
    j = call_json(&p, "GET", "/api/ping", NULL, &status);
    ck_assert_int_eq(status, 200);
    json_decref(j);
    stop_ok(&p);
}
END_TEST

/* Proves a bootstrap list reaches a Kafka broker that answers metadata. */
static void assert_kafka_answers(const char *bootstrap)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, 10000);
    ck_assert_msg(e == RD_KAFKA_RESP_ERR_NO_ERROR, "metadata from %s: %s", bootstrap,
                  rd_kafka_err2str(e));
    ck_assert_int_ge(md->broker_cnt, 1);
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
}

START_TEST(info_embedded_defaults)
{
    dtmq_proc p;
    start_or_fail(&p, NULL, NULL); /* defaults: sqlite:./dtmq.db, embedded Kafka */
    int status;
    json_t *j = call_json(&p, "GET", "/api/info", NULL, &status);
    ck_assert_int_eq(status, 200);
    json_t *st = json_object_get(j, "store");
    ck_assert_str_eq(json_string_value(json_object_get(st, "driver")), "sqlite");
    ck_assert_str_eq(json_string_value(json_object_get(st, "uri")), "sqlite:./dtmq.db");
    ck_assert_str_eq(json_string_value(json_object_get(j, "kafka_mode")), "embedded");
    const char *bootstrap = json_string_value(json_object_get(j, "kafka_bootstrap"));
    ck_assert_ptr_nonnull(bootstrap);
    ck_assert_msg(strncmp(bootstrap, "127.0.0.1:", 10) == 0, "embedded bootstrap %s", bootstrap);
    assert_kafka_answers(bootstrap);
    /* /api/ping answers as soon as HTTP is up; the start-up lines come after
     * the Kafka ingress started (slow under valgrind): wait for them */
    char *log = NULL;
    for (int i = 0; i < 300; i++) {
        free(log);
        log = dtmq_log(&p);
        if (strstr(log, bootstrap) != NULL)
            break;
        usleep(100000);
    }
    ck_assert_msg(strstr(log, bootstrap) != NULL, "bootstrap not printed at start: %s", log);
    free(log);
    json_decref(j);
    char db[300];
    snprintf(db, sizeof(db), "%s/dtmq.db", p.dir);
    char *file = read_file(db);
    ck_assert_msg(file != NULL, "no sqlite file at %s", db);
    free(file);
    stop_ok(&p);
}
END_TEST

START_TEST(info_real_kafka_and_mongo_store_hides_password)
{
    char store_env[512], kafka_env[256];
    const char *mongo = test_mongo_uri(); /* mongodb://127.0.0.1:PORT/ */
    const char *hostport = mongo + strlen("mongodb://");
    snprintf(store_env, sizeof(store_env), "DTMQ_STORE=mongodb://%.*s/dtmq_test_process",
             (int)strcspn(hostport, "/"), hostport);
    snprintf(kafka_env, sizeof(kafka_env), "DTMQ_KAFKA=%s", test_kafka_bootstrap());
    const char *env[] = {store_env, kafka_env, NULL};
    dtmq_proc p;
    start_or_fail(&p, NULL, env);
    int status;
    json_t *j = call_json(&p, "GET", "/api/info", NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "store"), "driver")),
                     "mongodb");
    ck_assert_str_eq(json_string_value(json_object_get(j, "kafka_mode")), "external");
    ck_assert_str_eq(json_string_value(json_object_get(j, "kafka_bootstrap")), test_kafka_bootstrap());
    json_decref(j);
    stop_ok(&p);

    /* a URI with credentials: a test server without auth may accept or refuse
     * them; either way the password must not appear in /api/info or the log */
    snprintf(store_env, sizeof(store_env),
             "DTMQ_STORE=mongodb://dtmq:s3cr3tpw@%.*s/dtmq_test_process",
             (int)strcspn(hostport, "/"), hostport);
    const char *env2[] = {store_env, "DTMQ_KAFKA=off", NULL};
    int exit_status = 0;
    if (dtmq_start(&p, NULL, env2, &exit_status) == 0) {
        j = call_json(&p, "GET", "/api/info", NULL, &status);
        char *dump = json_dumps(j, 0);
        ck_assert_msg(strstr(dump, "s3cr3tpw") == NULL, "password leaked: %s", dump);
        free(dump);
        json_decref(j);
        stop_ok(&p);
    }
    char *log = dtmq_log(&p);
    ck_assert_msg(strstr(log, "s3cr3tpw") == NULL, "password leaked in log: %s", log);
    free(log);
}
END_TEST

/* Starts dtmq expecting it to fail; asserts a non-zero exit and that its
 * output names the problem. */
static void assert_start_fails(const char *const *args, const char *const *env, const char *needle)
{
    dtmq_proc p;
    ck_assert_int_eq(dtmq_spawn(&p, args, env), 0);
    int rc = dtmq_wait(&p, 30);
    char *log = dtmq_log(&p);
    ck_assert_msg(rc > 0 && rc < 128, "expected a clean non-zero exit, got %d: %s", rc, log);
    ck_assert_msg(strstr(log, needle) != NULL, "output does not name '%s': %s", needle, log);
    free(log);
}

START_TEST(start_failures_name_the_problem)
{
    const char *unknown[] = {"--no-such-option", NULL};
    assert_start_fails(unknown, NULL, "--no-such-option");
    const char *bad_store[] = {"--kafka", "off", "--store", "mongodb://127.0.0.1:1/x", NULL};
    assert_start_fails(bad_store, NULL, "127.0.0.1:1");
    const char *bad_kafka[] = {"--kafka", "127.0.0.1:1", NULL};
    assert_start_fails(bad_kafka, NULL, "kafka");
    const char *bad_dir[] = {"--kafka", "off", "--store", "sqlite:/nonexistent/dir/x.db", NULL};
    assert_start_fails(bad_dir, NULL, "/nonexistent/dir/x.db");
}
END_TEST

START_TEST(port_in_use_and_bad_config_file)
{
    dtmq_proc first;
    const char *args[] = {"--kafka", "off", NULL};
    start_or_fail(&first, args, NULL);
    char port[16];
    snprintf(port, sizeof(port), "%d", first.port);
    /* the second process asks for the first one's port (last flag wins) */
    const char *clash[] = {"--kafka", "off", "--http-port", port, NULL};
    assert_start_fails(clash, NULL, port);
    stop_ok(&first);

    char path[300];
    snprintf(path, sizeof(path), "%s/bad.yml", first.dir);
    FILE *f = fopen(path, "w");
    fputs("HttpPort: 36789\nHttpPrt: 1\n", f);
    fclose(f);
    const char *bad_conf[] = {"-c", path, NULL};
    assert_start_fails(bad_conf, NULL, "bad.yml:2");
}
END_TEST

START_TEST(sigint_also_stops_cleanly)
{
    dtmq_proc p;
    const char *args[] = {"--kafka", "embedded", NULL};
    start_or_fail(&p, args, NULL);
    ck_assert_int_eq(dtmq_stop(&p, SIGINT, 20), 0);
    char *log = dtmq_log(&p);
    ck_assert_ptr_nonnull(strstr(log, "stopped"));
    free(log);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("process");
    test_group g = {.suite = s, .timeout_s = 120};
    test_add(&g, ping_version_and_new_gid);
    test_add(&g, unknown_route_wrong_method_and_oversized_body);
    test_add(&g, info_embedded_defaults);
    test_add(&g, info_real_kafka_and_mongo_store_hides_password);
    test_add(&g, start_failures_name_the_problem);
    test_add(&g, port_in_use_and_bad_config_file);
    test_add(&g, sigint_also_stops_cleanly);
    return run_suite(s);
}
