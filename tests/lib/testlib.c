/*
 * testlib.c — see testlib.h. Processes are started with fork+exec, stderr
 * redirected to a log file in their own directory, so a failing test can
 * print what dtmq said.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "testlib: %s is not set; run the tests through `make test`\n", name);
        abort();
    }
    return v;
}

const char *test_dtmq_bin(void)
{
    const char *v = getenv("DTMQ_TEST_BIN");
    return v && v[0] ? v : "build/asan/dtmq";
}

const char *test_kafka_bootstrap(void)
{
    return env_or_die("DTMQ_TEST_KAFKA");
}

const char *test_mongo_uri(void)
{
    return env_or_die("DTMQ_TEST_MONGO");
}

int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("testlib: free port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void exec_dtmq(const dtmq_proc *p, const char *const *args, const char *const *env)
{
    int fd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
    }
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    const char *argv[80];
    size_t n = 0;
    /* DTMQ_TEST_WRAPPER: a command to run dtmq under, split on spaces (valgrind) */
    char *wrapper = getenv("DTMQ_TEST_WRAPPER") ? strdup(getenv("DTMQ_TEST_WRAPPER")) : NULL;
    for (char *save = NULL, *w = wrapper ? strtok_r(wrapper, " ", &save) : NULL; w && n < 16;
         w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    char cwd[512], abs_bin[1024];
    const char *bin = test_dtmq_bin();
    if (bin[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL) {
        snprintf(abs_bin, sizeof(abs_bin), "%s/%s", cwd, bin);
        bin = abs_bin;
    }
    const char *fixed[] = {bin, "--http-host", "127.0.0.1", "--http-port", port};
    for (size_t i = 0; i < 5; i++)
        argv[n++] = fixed[i];
    for (size_t i = 0; args && args[i] && n < 79; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (chdir(p->dir) != 0)
        _exit(126);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "testlib: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int dtmq_spawn(dtmq_proc *p, const char *const *args, const char *const *env)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/dtmq-test-XXXXXX");
    if (mkdtemp(p->dir) == NULL)
        return -1;
    snprintf(p->log_path, sizeof(p->log_path), "%s/dtmq.log", p->dir);
    p->port = test_free_port();
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", p->port);
    p->pid = fork();
    if (p->pid < 0)
        return -1;
    if (p->pid == 0)
        exec_dtmq(p, args, env);
    return 0;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int dtmq_wait(dtmq_proc *p, int timeout_s)
{
    for (int waited = 0; waited <= timeout_s * 20; waited++) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            return decode_status(status);
        test_sleep_ms(50);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    return -1;
}

int dtmq_stop(dtmq_proc *p, int sig, int timeout_s)
{
    kill(p->pid, sig);
    return dtmq_wait(p, timeout_s);
}

int dtmq_start(dtmq_proc *p, const char *const *args, const char *const *env, int *exit_status)
{
    if (dtmq_spawn(p, args, env) != 0)
        return -1;
    char url[128];
    snprintf(url, sizeof(url), "%s/api/ping", p->base_url);
    for (int i = 0; i < 1200; i++) {
        char *body = NULL;
        int status = http_do("GET", url, NULL, &body);
        free(body);
        if (status == 200)
            return 0;
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            if (exit_status)
                *exit_status = decode_status(st);
            return -1;
        }
        test_sleep_ms(50);
    }
    dtmq_stop(p, SIGKILL, 5);
    return -1;
}

char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

char *dtmq_log(const dtmq_proc *p)
{
    char *s = read_file(p->log_path);
    return s ? s : strdup("");
}

typedef struct growbuf {
    char *data;
    size_t len;
} growbuf;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    growbuf *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int http_do(const char *method, const char *url, const char *body, char **resp)
{
    return http_do_headers(method, url, body, NULL, resp);
}

int http_do_headers(const char *method, const char *url, const char *body, const char *token,
                    char **resp)
{
    char bearer[512];
    if (token != NULL)
        snprintf(bearer, sizeof(bearer), "Bearer %s", token);
    return http_do_raw_auth(method, url, body, token ? bearer : NULL, resp);
}

int http_do_raw_auth(const char *method, const char *url, const char *body,
                     const char *authorization, char **resp)
{
    CURL *c = curl_easy_init();
    growbuf b = {calloc(1, 1), 0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[600];
    if (authorization != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: %s", authorization);
        headers = curl_slist_append(headers, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    *resp = b.data;
    return (int)status;
}

TCase *test_group_add(const test_group *g, const TTest *test, int start, int end)
{
    return test_group_add_as(g, test->name, test, start, end);
}

TCase *test_group_add_as(const test_group *g, const char *name, const TTest *test, int start,
                         int end)
{
    TCase *tc = tcase_create(name);
    if (g->timeout_s > 0)
        tcase_set_timeout(tc, g->timeout_s);
    if (g->setup != NULL || g->teardown != NULL)
        tcase_add_checked_fixture(tc, g->setup, g->teardown);
    if (g->usetup != NULL || g->uteardown != NULL)
        tcase_add_unchecked_fixture(tc, g->usetup, g->uteardown);
    _tcase_add_test(tc, test, 0, 0, start, end);
    suite_add_tcase(g->suite, tc);
    return tc;
}

int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

void test_store_uri(char *buf, size_t len)
{
    const char *kind = getenv("DTMQ_TEST_STORE_KIND");
    char id[32];
    e2e_gid(id, sizeof(id), "s");
    if (kind != NULL && strcmp(kind, "mongodb") == 0) {
        snprintf(buf, len, "%sdtmq_e2e_%s", test_mongo_uri(), id + 2);
        return;
    }
    char dir[] = "/tmp/dtmq-e2e-XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(buf, len, "sqlite:%s/dtmq.db", dir);
}

void e2e_start(dtmq_proc *p, const char *store_uri, const char *const *extra_args)
{
    const char *args[64] = {"--store", store_uri, "--kafka", "off", "--retry-interval", "1",
                            "--retry-interval-max", "4", "--trans-cron-interval", "1",
                            "--timeout-to-fail", "3", "--request-timeout", "2",
                            "--log-level", "debug"};
    size_t n = 16;
    for (size_t i = 0; extra_args && extra_args[i] && n < 63; i++)
        args[n++] = extra_args[i];
    args[n] = NULL;
    int exit_status = 0;
    if (dtmq_start(p, args, NULL, &exit_status) != 0) {
        char *log = dtmq_log(p);
        ck_abort_msg("dtmq did not start (exit %d): %s", exit_status, log);
        free(log);
    }
}

void e2e_stop(dtmq_proc *p)
{
    int rc = dtmq_stop(p, SIGTERM, 30);
    if (rc != 0) {
        char *log = dtmq_log(p);
        ck_abort_msg("dtmq exited %d on SIGTERM: %s", rc, log);
        free(log);
    }
}

json_t *e2e_call(const dtmq_proc *p, const char *method, const char *path, const char *body,
                 int *status)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    char *text = NULL;
    *status = http_do(method, url, body, &text);
    json_t *j = json_loads(text ? text : "", 0, NULL);
    free(text);
    return j;
}

void e2e_post_expect(const dtmq_proc *p, const char *route, const char *body, int want_status)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    int status = 0;
    json_t *j = e2e_call(p, "POST", path, body, &status);
    char *dump = j ? json_dumps(j, JSON_COMPACT) : strdup("(not JSON)");
    ck_assert_msg(status == want_status, "POST %s %s: want %d, got %d %s", route, body,
                  want_status, status, dump);
    free(dump);
    json_decref(j);
}

const char *e2e_status(const dtmq_proc *p, const char *gid, char *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status = 0;
    json_t *j = e2e_call(p, "GET", path, NULL, &status);
    const char *s = json_string_value(json_object_get(json_object_get(j, "transaction"), "status"));
    snprintf(buf, len, "%s", s ? s : "");
    json_decref(j);
    return buf;
}

void e2e_wait_status(const dtmq_proc *p, const char *gid, const char *want, int timeout_s)
{
    char got[32] = "";
    for (int i = 0; i < timeout_s * 20; i++) {
        if (strcmp(e2e_status(p, gid, got, sizeof(got)), want) == 0)
            return;
        test_sleep_ms(50);
    }
    char *log = dtmq_log(p);
    ck_abort_msg("gid %s: want status %s within %d s, have '%s'; dtmq log tail: %s", gid, want,
                 timeout_s, got, strlen(log) > 3000 ? log + strlen(log) - 3000 : log);
    free(log);
}

void e2e_gid(char *buf, size_t len, const char *prefix)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[10];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(r, 1, sizeof(r), f) != sizeof(r))
        abort();
    fclose(f);
    char tail[11];
    for (size_t i = 0; i < sizeof(r); i++)
        tail[i] = alpha[r[i] % 36];
    tail[10] = '\0';
    snprintf(buf, len, "%s-%s", prefix, tail);
}

/* ---- small helpers the tests share -------------------------------------- */

static long long clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long test_now_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

long long test_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

void test_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int test_env_int(const char *name, int def, int lo, int hi)
{
    const char *v = getenv(name);
    int n = v && v[0] ? atoi(v) : def;
    return n < lo ? lo : n > hi ? hi : n;
}

const char *test_store_kind(void)
{
    const char *k = getenv("DTMQ_TEST_STORE_KIND");
    return k && k[0] ? k : "sqlite";
}
