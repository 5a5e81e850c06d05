/*
 * test_cli.c — the operator command line (broker/cli.c, docs/cli.md) end to
 * end: a real dtmq server (e2e_start, the store named by DTMQ_TEST_STORE_KIND)
 * and the real binary (test_dtmq_bin(), DTMQ_TEST_BIN) run as a child process
 * per CLI call, its stdout, stderr and exit status captured. Where the test
 * needs to see the HTTP requests themselves (token, method, body) or to
 * script the server's answer (an error, a slow reply), the CLI talks to the
 * recording business service (tests/lib/busi.c) instead of dtmq.
 *
 * Covers query (table, --json, unknown gid → 4), list (rows, filters, paging
 * with --all, --since/--until in both time forms), submit (file, stdin, bad
 * input), force-stop, retry, usage errors (2), an unreachable server and a
 * timeout (3), server errors (1), the environment variables, and --help.
 */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "busi.h"
#include "e2e_env.h"
#include "testlib.h"

extern char **environ;

#define CLI_MAX_ARGS 32
#define CLI_WAIT_S 60

/* ---- running the CLI ------------------------------------------------------ */

typedef struct cli_result {
    int code;  /* exit status; 128+signal when killed; -1 when it hung */
    char *out; /* stdout (malloc'd) */
    char *err; /* stderr (malloc'd) */
} cli_result;

static void cli_result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
}

/* The environment of the child: ours without DTMQ_SERVER/DTMQ_ADMIN_TOKEN,
 * plus extra ("NAME=value", NULL-terminated, may be NULL). Built before fork
 * so the child only calls async-signal-safe functions. */
static char **child_environ(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof(*env));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "DTMQ_SERVER=", 12) != 0 && strncmp(environ[i], "DTMQ_ADMIN_TOKEN=", 17) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

static int wait_child(pid_t pid)
{
    for (int i = 0; i < CLI_WAIT_S * 100; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        test_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Runs the binary with args (NULL-terminated), stdin_text on its stdin
 * (NULL: /dev/null) and env added to its environment. */
static cli_result cli_exec(const char *stdin_text, const char *const *env, const char *const *args)
{
    char dir[] = "/tmp/dtmq-cli-XXXXXX", in_path[64], out_path[64], err_path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(in_path, sizeof(in_path), "%s/stdin", dir);
    snprintf(out_path, sizeof(out_path), "%s/stdout", dir);
    snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
    FILE *in = fopen(in_path, "w");
    ck_assert_ptr_nonnull(in);
    fputs(stdin_text ? stdin_text : "", in);
    fclose(in);

    const char *argv[CLI_MAX_ARGS + 2] = {test_dtmq_bin()};
    size_t n = 1;
    for (size_t i = 0; args[i] && n <= CLI_MAX_ARGS; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char **envp = child_environ(env);
    int fd_in = open(stdin_text ? in_path : "/dev/null", O_RDONLY);
    int fd_out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fd_err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert(fd_in >= 0 && fd_out >= 0 && fd_err >= 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd_in, STDIN_FILENO);
        dup2(fd_out, STDOUT_FILENO);
        dup2(fd_err, STDERR_FILENO);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    close(fd_in);
    close(fd_out);
    close(fd_err);
    free(envp);
    cli_result r = {.code = wait_child(pid), .out = read_file(out_path), .err = read_file(err_path)};
    ck_assert_ptr_nonnull(r.out);
    ck_assert_ptr_nonnull(r.err);
    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
    rmdir(dir);
    return r;
}

/* Runs `dtmq ARGS... --server SERVER` (server NULL: no --server). */
static cli_result cli_run(const char *server, const char *stdin_text, ...)
{
    const char *args[CLI_MAX_ARGS + 1];
    size_t n = 0;
    va_list ap;
    va_start(ap, stdin_text);
    for (const char *a = va_arg(ap, const char *); a && n < CLI_MAX_ARGS - 2; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    if (server != NULL) {
        args[n++] = "--server";
        args[n++] = server;
    }
    args[n] = NULL;
    return cli_exec(stdin_text, NULL, args);
}

#define CLI(server, ...) cli_run((server), NULL, __VA_ARGS__, NULL)
#define CLI_STDIN(server, text, ...) cli_run((server), (text), __VA_ARGS__, NULL)

/* Asserts the exit code, showing what the CLI printed when it differs. */
#define ASSERT_EXIT(r, want)                                                                    \
    ck_assert_msg((r).code == (want), "exit %d, want %d; stdout: %s; stderr: %s", (r).code,     \
                  (want), (r).out, (r).err)

/* ---- reading the CLI's output -------------------------------------------- */

/* The value of the "label  value" line of query's output ("" when absent). */
static const char *field_value(const char *out, const char *label, char *buf, size_t len)
{
    buf[0] = '\0';
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, label, strlen(label)) != 0)
            continue;
        const char *v = line + strlen(label);
        v += strspn(v, " ");
        size_t n = strcspn(v, "\n");
        snprintf(buf, len, "%.*s", (int)n, v);
        break;
    }
    return buf;
}

/* Splits the line of out whose first column is key into up to 8 columns;
 * returns the column count, 0 when no line starts with key. */
static int row_columns(const char *out, const char *key, char cols[8][96])
{
    for (const char *line = out; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char copy[1024];
        snprintf(copy, sizeof(copy), "%.*s", (int)strcspn(line, "\n"), line);
        int n = 0;
        char *save = NULL;
        for (char *w = strtok_r(copy, " ", &save); w && n < 8; w = strtok_r(NULL, " ", &save))
            snprintf(cols[n++], 96, "%s", w);
        if (n > 0 && strcmp(cols[0], key) == 0)
            return n;
    }
    return 0;
}

static int count_lines(const char *out)
{
    int n = 0;
    for (const char *p = out; *p; p++)
        n += *p == '\n';
    return n;
}

/* The gids of list's table (after its header), in order, into gids[]. */
static int list_gids(const char *out, char gids[][64], int max)
{
    const char *line = strchr(out, '\n');
    int n = 0;
    ck_assert_msg(strncmp(out, "GID ", 4) == 0, "list output without a header: %s", out);
    for (line = line ? line + 1 : NULL; line && *line && n < max; n++) {
        snprintf(gids[n], 64, "%.*s", (int)strcspn(line, " \n"), line);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return n;
}

static bool has_gid(char gids[][64], int n, const char *gid)
{
    for (int i = 0; i < n; i++)
        if (strcmp(gids[i], gid) == 0)
            return true;
    return false;
}

/* ---- the server side ------------------------------------------------------- */

typedef e2e_env cli_env; /* svc NULL unless the test started it */

/* A saga whose only step has empty URLs: it succeeds at once. */
#define DONE_SAGA_FMT \
    "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}"

static void create_done_saga(const cli_env *env, const char *gid)
{
    char body[256];
    snprintf(body, sizeof(body), DONE_SAGA_FMT, gid);
    e2e_post_expect(&env->dtmq, "submit", body, 200);
    e2e_wait_status(&env->dtmq, gid, "succeed", 10);
}

/* A saga whose action the business service answers 425 forever: it stays
 * submitted (timeout_to_fail 600 s), asked again every retry_interval 60 s.
 * Returns once the first call arrived. */
static void create_stuck_saga(const cli_env *env, const char *gid)
{
    busi_rule(env->svc, "/api/Stuck", gid, NULL, 425, NULL, 0, -1);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"timeout_to_fail\":600,\"retry_interval\":60,"
             "\"steps\":[{\"action\":\"%s/api/Stuck\",\"compensate\":\"\"}]}",
             gid, busi_url(env->svc));
    e2e_post_expect(&env->dtmq, "submit", body, 200);
    ck_assert_int_eq(busi_wait(env->svc, "/api/Stuck", gid, "action", 1, 10000), 1);
}

/* The transaction's field via /query (a string member; "" when absent). */
static const char *trans_field(const cli_env *env, const char *gid, const char *key, char *buf, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, "GET", path, NULL, &status);
    const char *v = json_string_value(json_object_get(json_object_get(j, "transaction"), key));
    snprintf(buf, len, "%s", v ? v : "");
    json_decref(j);
    return buf;
}

/* Waits until no process holds the transaction's lease (its pass ended). */
static void wait_idle(const cli_env *env, const char *gid)
{
    char owner[128] = "?";
    for (int i = 0; i < 200 && trans_field(env, gid, "owner", owner, sizeof(owner))[0] != '\0'; i++)
        test_sleep_ms(50);
    ck_assert_msg(owner[0] == '\0', "%s is still leased by %s", gid, owner);
}

/* ms as RFC 3339 with milliseconds, shifted into the zone offset_min east of UTC. */
static void format_rfc3339(long long ms, int offset_min, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000 + offset_min * 60);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    if (offset_min == 0)
        snprintf(buf, len, "%s.%03lldZ", date, ms % 1000);
    else
        snprintf(buf, len, "%s.%03lld%c%02d:%02d", date, ms % 1000, offset_min < 0 ? '-' : '+',
                 abs(offset_min) / 60, abs(offset_min) % 60);
}

/* ---- query ----------------------------------------------------------------- */

START_TEST(query_prints_the_transaction_and_its_branches)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[64], v[256];
    e2e_gid(gid, sizeof(gid), "q");
    create_done_saga(&env, gid);

    cli_result r = CLI(env.dtmq.base_url, "query", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(field_value(r.out, "gid:", v, sizeof(v)), gid);
    ck_assert_str_eq(field_value(r.out, "type:", v, sizeof(v)), "saga");
    ck_assert_str_eq(field_value(r.out, "status:", v, sizeof(v)), "succeed");
    char created[64];
    ck_assert_str_eq(field_value(r.out, "created:", v, sizeof(v)),
                     trans_field(&env, gid, "create_time", created, sizeof(created)));
    ck_assert_str_eq(field_value(r.out, "next cron:", v, sizeof(v)), ""); /* finished */
    ck_assert_ptr_nonnull(strstr(r.out, "BRANCH  OP"));
    char cols[8][96];
    /* two rows for branch 01: compensate (never needed) and action (done) */
    const char *action = strstr(r.out, "\n01      action");
    const char *comp = strstr(r.out, "\n01      compensate");
    ck_assert_msg(action && comp, "branch rows missing: %s", r.out);
    ck_assert_int_eq(row_columns(action + 1, "01", cols), 5);
    ck_assert_str_eq(cols[1], "action");
    ck_assert_str_eq(cols[2], "succeed");
    ck_assert_str_eq(cols[4], "-"); /* empty URL */
    ck_assert_int_eq(row_columns(comp + 1, "01", cols), 5);
    ck_assert_str_eq(cols[1], "compensate");
    ck_assert_str_eq(cols[2], "prepared");
    ck_assert_str_eq(r.err, "");
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(query_json_prints_the_servers_reply)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[64];
    e2e_gid(gid, sizeof(gid), "qj");
    create_done_saga(&env, gid);

    cli_result r = CLI(env.dtmq.base_url, "query", "--json", gid);
    ASSERT_EXIT(r, 0);
    json_error_t err;
    json_t *j = json_loads(r.out, 0, &err);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, r.out);
    json_t *t = json_object_get(j, "transaction");
    ck_assert_str_eq(json_string_value(json_object_get(t, "gid")), gid);
    ck_assert_str_eq(json_string_value(json_object_get(t, "status")), "succeed");
    ck_assert_str_eq(json_string_value(json_object_get(t, "trans_type")), "saga");
    json_t *branches = json_object_get(j, "branches");
    ck_assert_uint_eq(json_array_size(branches), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(branches, 0), "branch_id")), "01");
    json_decref(j);
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(query_of_an_unknown_gid_exits_4)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    cli_result r = CLI(env.dtmq.base_url, "query", "no-such-gid");
    ASSERT_EXIT(r, 4);
    ck_assert_str_eq(r.out, "");
    ck_assert_ptr_nonnull(strstr(r.err, "no transaction with gid 'no-such-gid'"));
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "query", "no-such-gid", "--json");
    ASSERT_EXIT(r, 4);
    json_t *j = json_loads(r.out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert(json_is_null(json_object_get(j, "transaction")));
    json_decref(j);
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(query_of_a_stuck_saga_shows_when_it_runs_next)
{
    cli_env env;
    e2e_env_start(&env, true, NULL, NULL);
    char gid[64], v[256], url[256];
    e2e_gid(gid, sizeof(gid), "qs");
    create_stuck_saga(&env, gid);
    wait_idle(&env, gid);

    cli_result r = CLI(env.dtmq.base_url, "query", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(field_value(r.out, "status:", v, sizeof(v)), "submitted");
    char next[64];
    trans_field(&env, gid, "next_cron_time", next, sizeof(next));
    ck_assert_ptr_nonnull(strstr(field_value(r.out, "next cron:", v, sizeof(v)), next));
    ck_assert_ptr_nonnull(strstr(field_value(r.out, "options:", v, sizeof(v)), "retry_interval=60s"));
    char cols[8][96];
    const char *action = strstr(r.out, "\n01      action");
    ck_assert_ptr_nonnull(action);
    ck_assert_int_eq(row_columns(action + 1, "01", cols), 5);
    ck_assert_str_eq(cols[2], "prepared");
    snprintf(url, sizeof(url), "%s/api/Stuck", busi_url(env.svc));
    ck_assert_str_eq(cols[4], url);
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

/* ---- list ------------------------------------------------------------------ */

START_TEST(list_shows_every_transaction_newest_first)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[3][64];
    for (int i = 0; i < 3; i++) {
        e2e_gid(gid[i], sizeof(gid[i]), "l");
        create_done_saga(&env, gid[i]);
    }
    cli_result r = CLI(env.dtmq.base_url, "list");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(count_lines(r.out), 4); /* header + 3 */
    char got[8][64];
    ck_assert_int_eq(list_gids(r.out, got, 8), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(got[i], gid[2 - i]);
    char cols[8][96], created[64];
    ck_assert_int_eq(row_columns(r.out, gid[0], cols), 5);
    ck_assert_str_eq(cols[1], "saga");
    ck_assert_str_eq(cols[2], "succeed");
    ck_assert_str_eq(cols[3], trans_field(&env, gid[0], "create_time", created, sizeof(created)));
    ck_assert_str_eq(cols[4], "-"); /* finished: no next cron */
    ck_assert_str_eq(r.err, "");
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(list_filters_by_status_type_and_gid)
{
    cli_env env;
    e2e_env_start(&env, true, NULL, NULL);
    char done1[64], done2[64], stuck[64], tcc[64], body[256];
    e2e_gid(done1, sizeof(done1), "d");
    e2e_gid(done2, sizeof(done2), "d");
    e2e_gid(stuck, sizeof(stuck), "s");
    e2e_gid(tcc, sizeof(tcc), "t");
    create_done_saga(&env, done1);
    create_done_saga(&env, done2);
    create_stuck_saga(&env, stuck);
    snprintf(body, sizeof(body), "{\"gid\":\"%s\",\"trans_type\":\"tcc\"}", tcc);
    e2e_post_expect(&env.dtmq, "prepare", body, 200);
    char got[8][64];

    cli_result r = CLI(env.dtmq.base_url, "list", "--status", "submitted");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], stuck);
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--type=tcc");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], tcc);
    char cols[8][96];
    ck_assert_int_eq(row_columns(r.out, tcc, cols), 5);
    ck_assert_str_eq(cols[2], "prepared");
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--gid", done1);
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], done1);
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--status", "succeed", "--type", "saga");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 2);
    ck_assert(has_gid(got, 2, done1) && has_gid(got, 2, done2));
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--status", "failed");
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "no transactions\n");
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(list_all_follows_every_page)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[5][64];
    for (int i = 0; i < 5; i++) {
        e2e_gid(gid[i], sizeof(gid[i]), "p");
        create_done_saga(&env, gid[i]);
    }
    char got[16][64];
    cli_result r = CLI(env.dtmq.base_url, "list", "--limit", "2");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 16), 2);
    ck_assert_str_eq(got[0], gid[4]);
    ck_assert_str_eq(got[1], gid[3]);
    ck_assert_ptr_nonnull(strstr(r.err, "--all"));
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--limit", "2", "--all");
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 16), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(got[i], gid[4 - i]);
    ck_assert_str_eq(r.err, "");
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--limit", "2", "--all", "--json");
    ASSERT_EXIT(r, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %s", r.out);
    json_t *items = json_object_get(j, "transactions");
    ck_assert_uint_eq(json_array_size(items), 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, i), "gid")), gid[4 - i]);
    ck_assert_str_eq(json_string_value(json_object_get(j, "next_position")), "");
    json_decref(j);
    cli_result_free(&r);

    /* without --all, --json is the one page the server sent */
    r = CLI(env.dtmq.base_url, "list", "--limit", "2", "--json");
    ASSERT_EXIT(r, 0);
    j = json_loads(r.out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "transactions")), 2);
    ck_assert_str_ne(json_string_value(json_object_get(j, "next_position")), "");
    json_decref(j);
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(list_since_and_until_filter_by_create_time)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char before[64], after[64], tbuf[64], ms[32], got[8][64];
    e2e_gid(before, sizeof(before), "b");
    e2e_gid(after, sizeof(after), "a");
    create_done_saga(&env, before);
    test_sleep_ms(150);
    long long cut = test_wall_ms();
    test_sleep_ms(150);
    create_done_saga(&env, after);

    format_rfc3339(cut, 0, tbuf, sizeof(tbuf)); /* 2026-11-21T10:00:00.123Z */
    cli_result r = CLI(env.dtmq.base_url, "list", "--since", tbuf);
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], after);
    cli_result_free(&r);

    snprintf(ms, sizeof(ms), "%lld", cut); /* epoch ms */
    r = CLI(env.dtmq.base_url, "list", "--until", ms);
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], before);
    cli_result_free(&r);

    format_rfc3339(cut, 90, tbuf, sizeof(tbuf)); /* the same instant at +01:30 */
    r = CLI(env.dtmq.base_url, "list", "--until", tbuf);
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], before);
    cli_result_free(&r);

    char start[32];
    snprintf(start, sizeof(start), "%lld", cut - 60000);
    r = CLI(env.dtmq.base_url, "list", "--since", start, "--until", ms);
    ASSERT_EXIT(r, 0);
    ck_assert_int_eq(list_gids(r.out, got, 8), 1);
    ck_assert_str_eq(got[0], before);
    cli_result_free(&r);

    r = CLI(env.dtmq.base_url, "list", "--since", ms, "--until", start);
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "--since is later than --until"));
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

/* ---- submit ------------------------------------------------------------------ */

static char *saga_json(const char *gid)
{
    char *text = malloc(256);
    snprintf(text, 256, DONE_SAGA_FMT, gid);
    return text;
}

START_TEST(submit_from_a_file_creates_the_transaction)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[64], path[400], v[64];
    e2e_gid(gid, sizeof(gid), "sf");
    snprintf(path, sizeof(path), "%s/trans.json", env.dtmq.dir);
    char *text = saga_json(gid);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);

    cli_result r = CLI(env.dtmq.base_url, "submit", path);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "{\"dtm_result\":\"SUCCESS\"}\n");
    cli_result_free(&r);
    e2e_wait_status(&env.dtmq, gid, "succeed", 10);
    r = CLI(env.dtmq.base_url, "query", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(field_value(r.out, "gid:", v, sizeof(v)), gid);
    ck_assert_str_eq(field_value(r.out, "status:", v, sizeof(v)), "succeed");
    cli_result_free(&r);

    /* the same gid again: the server refuses, the CLI says why */
    r = CLI(env.dtmq.base_url, "submit", path);
    ASSERT_EXIT(r, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "409"));
    ck_assert_ptr_nonnull(strstr(r.err, "current status 'succeed', cannot submit"));
    cli_result_free(&r);
    free(text);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(submit_from_stdin_creates_the_transaction)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[64], v[64];
    e2e_gid(gid, sizeof(gid), "ss");
    char *text = saga_json(gid);
    cli_result r = CLI_STDIN(env.dtmq.base_url, text, "submit", "-");
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "{\"dtm_result\":\"SUCCESS\"}\n");
    cli_result_free(&r);
    e2e_wait_status(&env.dtmq, gid, "succeed", 10);
    r = CLI(env.dtmq.base_url, "query", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(field_value(r.out, "status:", v, sizeof(v)), "succeed");
    cli_result_free(&r);
    free(text);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(submit_of_bad_input_says_what_is_wrong)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    /* the server's 400, quoted */
    const char *bad_url = "{\"gid\":\"bad-url\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"ftp://x\"}]}";
    cli_result r = CLI_STDIN(env.dtmq.base_url, bad_url, "submit", "-");
    ASSERT_EXIT(r, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "400"));
    ck_assert_ptr_nonnull(strstr(r.err, "'ftp://x' is not an http(s)://"));
    cli_result_free(&r);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.dtmq, "bad-url", st, sizeof(st)), "");

    /* local problems: usage errors, nothing sent */
    r = CLI_STDIN(env.dtmq.base_url, "{\"gid\":", "submit", "-");
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "stdin is not JSON"));
    cli_result_free(&r);
    r = CLI_STDIN(env.dtmq.base_url, "[1,2]", "submit", "-");
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "JSON object is expected"));
    cli_result_free(&r);
    r = CLI(env.dtmq.base_url, "submit", "/nonexistent/trans.json");
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "cannot read /nonexistent/trans.json: No such file or directory"));
    cli_result_free(&r);
    r = CLI(env.dtmq.base_url, "submit");
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "missing FILE|-"));
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

/* ---- force-stop, retry --------------------------------------------------------- */

START_TEST(force_stop_fails_a_stuck_saga)
{
    cli_env env;
    e2e_env_start(&env, true, NULL, NULL);
    char gid[64], st[32], v[128];
    e2e_gid(gid, sizeof(gid), "fs");
    create_stuck_saga(&env, gid);
    ck_assert_str_eq(e2e_status(&env.dtmq, gid, st, sizeof(st)), "submitted");

    cli_result r = CLI(env.dtmq.base_url, "force-stop", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "{\"dtm_result\":\"SUCCESS\"}\n");
    cli_result_free(&r);
    ck_assert_str_eq(e2e_status(&env.dtmq, gid, st, sizeof(st)), "failed");
    r = CLI(env.dtmq.base_url, "query", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(field_value(r.out, "status:", v, sizeof(v)), "failed");
    ck_assert_str_eq(field_value(r.out, "rollback reason:", v, sizeof(v)), "force stopped by an operator");
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(force_stop_of_a_finished_transaction_exits_1_with_the_servers_message)
{
    cli_env env;
    e2e_env_start(&env, false, NULL, NULL);
    char gid[64], st[32];
    e2e_gid(gid, sizeof(gid), "ff");
    create_done_saga(&env, gid);
    cli_result r = CLI(env.dtmq.base_url, "force-stop", gid);
    ASSERT_EXIT(r, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_ptr_nonnull(strstr(r.err, "dtmq force-stop: the server answered 409: "
                                        "current status 'succeed', cannot forceStop"));
    cli_result_free(&r);
    ck_assert_str_eq(e2e_status(&env.dtmq, gid, st, sizeof(st)), "succeed");
    e2e_env_stop(&env);
}
END_TEST

START_TEST(retry_calls_a_waiting_branch_now)
{
    cli_env env;
    const char *args[] = {"--retry-interval-max", "600", NULL}; /* keep the saga's 60 s */
    e2e_env_start(&env, true, NULL, args);
    char gid[64], next[64];
    e2e_gid(gid, sizeof(gid), "r");
    create_stuck_saga(&env, gid);
    wait_idle(&env, gid);
    long long due = 0;
    ck_assert_int_eq(cli_parse_time(trans_field(&env, gid, "next_cron_time", next, sizeof(next)), &due), 0);
    ck_assert_int_gt(due, test_wall_ms() + 30000); /* left alone, the next call is far away */
    int calls = busi_count(env.svc, "/api/Stuck", gid, "action");

    cli_result r = CLI(env.dtmq.base_url, "retry", gid);
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "{\"dtm_result\":\"SUCCESS\"}\n");
    cli_result_free(&r);
    ck_assert_int_ge(busi_wait(env.svc, "/api/Stuck", gid, "action", calls + 1, 10000), calls + 1);

    char done[64];
    e2e_gid(done, sizeof(done), "rd");
    create_done_saga(&env, done);
    r = CLI(env.dtmq.base_url, "retry", done);
    ASSERT_EXIT(r, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "409"));
    cli_result_free(&r);
    e2e_env_stop(&env);
}
END_TEST

/* ---- talking to the server: environment, token, errors ------------------------- */

START_TEST(environment_and_token_reach_the_server)
{
    busi *fake = busi_start(); /* stands in for dtmq; answers 200 SUCCESS */
    ck_assert_ptr_nonnull(fake);
    char server_env[300];
    snprintf(server_env, sizeof(server_env), "DTMQ_SERVER=%s/", busi_url(fake));
    const char *env[] = {server_env, "DTMQ_ADMIN_TOKEN=s3cret", NULL};
    const char *args[] = {"retry", "order-9", NULL};
    cli_result r = cli_exec(NULL, env, args);
    ASSERT_EXIT(r, 0);
    cli_result_free(&r);
    const char *flag_args[] = {"force-stop", "order-9", "--token", "other", NULL};
    r = cli_exec(NULL, env, flag_args);
    ASSERT_EXIT(r, 0);
    cli_result_free(&r);

    busi_call *calls;
    size_t n = busi_calls(fake, &calls);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(calls[0].method, "POST");
    ck_assert_str_eq(calls[0].path, "/api/dtmsvr/resetNextCronTime");
    ck_assert_str_eq(calls[0].body, "{\"gid\":\"order-9\"}");
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "Authorization: Bearer s3cret"));
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "Content-Type: application/json"));
    ck_assert_str_eq(calls[1].path, "/api/dtmsvr/forceStop");
    ck_assert_ptr_nonnull(strstr(calls[1].headers, "Authorization: Bearer other"));
    ck_assert_ptr_null(strstr(calls[1].headers, "s3cret"));
    busi_calls_free(calls, n);

    /* no token anywhere: no Authorization header; list's filters as query parameters */
    busi_reset_calls(fake);
    const char *empty_page = "{\"transactions\":[],\"next_position\":\"\"}";
    busi_rule(fake, "/api/dtmsvr/all", NULL, NULL, 200, empty_page, 0, -1);
    r = CLI(busi_url(fake), "list", "--status", "failed", "--gid", "a b&c", "--limit", "7");
    ASSERT_EXIT(r, 0);
    ck_assert_str_eq(r.out, "no transactions\n");
    cli_result_free(&r);
    n = busi_calls(fake, &calls);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(calls[0].method, "GET");
    ck_assert_str_eq(calls[0].path, "/api/dtmsvr/all");
    ck_assert_str_eq(calls[0].gid, "a b&c");
    ck_assert_ptr_null(strstr(calls[0].headers, "Authorization"));
    busi_calls_free(calls, n);
    busi_stop(fake);
}
END_TEST

START_TEST(server_errors_exit_1_with_the_servers_message)
{
    busi *fake = busi_start();
    ck_assert_ptr_nonnull(fake);
    busi_rule(fake, "/api/dtmsvr/all", NULL, NULL, 500, "{\"message\":\"all: store IO: disk full\"}", 0, -1);
    busi_rule(fake, "/api/dtmsvr/query", NULL, NULL, 502, "<html>Bad Gateway</html>", 0, -1);
    cli_result r = CLI(busi_url(fake), "list");
    ASSERT_EXIT(r, 1);
    ck_assert_str_eq(r.err, "dtmq list: the server answered 500: all: store IO: disk full\n");
    cli_result_free(&r);
    r = CLI(busi_url(fake), "query", "g");
    ASSERT_EXIT(r, 1);
    ck_assert_str_eq(r.err, "dtmq query: the server answered 502: <html>Bad Gateway</html>\n");
    cli_result_free(&r);
    busi_stop(fake);
}
END_TEST

START_TEST(an_unreachable_server_exits_3)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", test_free_port());
    cli_result r = CLI(url, "query", "g1");
    ASSERT_EXIT(r, 3);
    ck_assert_ptr_nonnull(strstr(r.err, url));
    ck_assert_ptr_nonnull(strstr(r.err, "Couldn't connect to server"));
    cli_result_free(&r);

    char server_env[100];
    snprintf(server_env, sizeof(server_env), "DTMQ_SERVER=%s", url);
    const char *env[] = {server_env, NULL};
    const char *args[] = {"list", "--all", NULL};
    r = cli_exec(NULL, env, args);
    ASSERT_EXIT(r, 3);
    ck_assert_ptr_nonnull(strstr(r.err, url));
    cli_result_free(&r);
}
END_TEST

START_TEST(a_server_slower_than_timeout_exits_3)
{
    busi *slow = busi_start();
    ck_assert_ptr_nonnull(slow);
    busi_rule(slow, "/api/dtmsvr/query", NULL, NULL, 200, NULL, 5000, -1);
    long long start = test_wall_ms();
    cli_result r = CLI(busi_url(slow), "query", "g1", "--timeout", "1");
    long long took = test_wall_ms() - start;
    ASSERT_EXIT(r, 3);
    ck_assert_ptr_nonnull(strstr(r.err, "Timeout was reached"));
    ck_assert_int_lt(took, 4000);
    cli_result_free(&r);
    busi_stop(slow);
}
END_TEST

/* ---- usage ------------------------------------------------------------------------ */

START_TEST(usage_errors_exit_2_naming_the_problem)
{
    struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{"query", "g1", "--bogus"}, "unknown option '--bogus' (see dtmq query --help)"},
        {{"list", "--json=yes"}, "option '--json' takes no value"},
        {{"query"}, "missing GID"},
        {{"force-stop"}, "missing GID"},
        {{"retry", "a", "b"}, "unexpected argument 'b'"},
        {{"list", "--limit"}, "option '--limit' needs a value"},
        {{"list", "--limit", "1001"}, "--limit: '1001' is not a number in 1..1000"},
        {{"list", "--status", "done"}, "--status: 'done' is not one of"},
        {{"list", "--type", "2pc"}, "--type: '2pc' is not one of"},
        {{"list", "--since", "2026-13-01T00:00:00Z"}, "--since: '2026-13-01T00:00:00Z' is neither"},
        {{"query", "g1", "--timeout", "0"}, "--timeout: '0' is not a number of seconds"},
        {{"query", "g1", "--server", "ftp://x"}, "--server: 'ftp://x' is not an http:// or https:// URL"},
        {{"help", "bogus"}, "unknown subcommand 'bogus'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_result r = cli_exec(NULL, NULL, cases[i].args);
        ck_assert_msg(r.code == 2, "%s: exit %d: %s", cases[i].args[0], r.code, r.err);
        ck_assert_msg(strstr(r.err, cases[i].says) != NULL, "want '%s', got '%s'", cases[i].says, r.err);
        ck_assert_msg(strstr(r.err, "--help") != NULL, "no hint in '%s'", r.err);
        ck_assert_msg(count_lines(r.err) == 1, "%s: want one line, got '%s'", cases[i].args[0], r.err);
        ck_assert_str_eq(r.out, "");
        cli_result_free(&r);
    }
    const char *env[] = {"DTMQ_SERVER=localhost:36789", NULL};
    const char *args[] = {"list", NULL};
    cli_result r = cli_exec(NULL, env, args);
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "DTMQ_SERVER: 'localhost:36789' is not an http"));
    cli_result_free(&r);
    const char *help[] = {"help", NULL}; /* help talks to no server: the variable does not matter */
    r = cli_exec(NULL, env, help);
    ASSERT_EXIT(r, 0);
    cli_result_free(&r);
}
END_TEST

START_TEST(an_unknown_subcommand_exits_2_naming_it)
{
    const char *args[] = {"bogus", "x", NULL};
    cli_result r = cli_exec(NULL, NULL, args);
    ASSERT_EXIT(r, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "'bogus'"));
    ck_assert_ptr_nonnull(strstr(r.err, "help"));
    cli_result_free(&r);
}
END_TEST

START_TEST(help_of_every_subcommand_lists_its_options)
{
    struct {
        const char *name;
        const char *mentions[9];
    } cases[] = {
        {"query", {"Usage: dtmq query GID", "--json", "/api/dtmsvr/query"}},
        {"list", {"Usage: dtmq list", "--status S", "--type T", "--gid G", "--since TIME", "--until TIME",
                  "--limit N", "--all", "--json"}},
        {"submit", {"Usage: dtmq submit FILE|-", "/api/dtmsvr/submit"}},
        {"force-stop", {"Usage: dtmq force-stop GID", "/api/dtmsvr/forceStop"}},
        {"retry", {"Usage: dtmq retry GID", "/api/dtmsvr/resetNextCronTime"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *long_args[] = {cases[i].name, "--help", NULL};
        const char *short_args[] = {cases[i].name, "-h", "extra", NULL}; /* -h wins */
        const char *help_args[] = {"help", cases[i].name, NULL};
        cli_result r = cli_exec(NULL, NULL, long_args);
        ASSERT_EXIT(r, 0);
        for (size_t k = 0; k < 9 && cases[i].mentions[k]; k++)
            ck_assert_msg(strstr(r.out, cases[i].mentions[k]), "%s --help: no '%s'", cases[i].name,
                          cases[i].mentions[k]);
        const char *common[] = {"--server URL", "--token TOKEN", "--timeout SECS", "-h, --help",
                                "DTMQ_SERVER", "DTMQ_ADMIN_TOKEN", "Exit codes"};
        for (size_t k = 0; k < sizeof(common) / sizeof(common[0]); k++)
            ck_assert_msg(strstr(r.out, common[k]), "%s --help: no '%s'", cases[i].name, common[k]);
        if (strcmp(cases[i].name, "list") != 0)
            ck_assert_ptr_null(strstr(r.out, "--since")); /* only list's filters on list */
        cli_result s = cli_exec(NULL, NULL, short_args), h = cli_exec(NULL, NULL, help_args);
        ASSERT_EXIT(s, 0);
        ASSERT_EXIT(h, 0);
        ck_assert_str_eq(s.out, r.out);
        ck_assert_str_eq(h.out, r.out);
        cli_result_free(&r);
        cli_result_free(&s);
        cli_result_free(&h);
    }
    const char *overview[] = {"help", NULL};
    cli_result r = cli_exec(NULL, NULL, overview);
    ASSERT_EXIT(r, 0);
    const char *names[] = {"serve", "query", "list", "submit", "force-stop", "retry", "help"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        char line[32];
        snprintf(line, sizeof(line), "\n  %s ", names[k]);
        ck_assert_msg(strstr(r.out, line), "overview: no %s", names[k]);
    }
    cli_result_free(&r);
}
END_TEST

/* ---- times (in process: cli_parse_time is in the core library) -------------- */

START_TEST(times_parse_as_epoch_ms_or_rfc3339)
{
    long long ms = -1;
    ck_assert_int_eq(cli_parse_time("1795255200000", &ms), 0);
    ck_assert_int_eq(ms, 1795255200000LL);
    ck_assert_int_eq(cli_parse_time("2026-11-21T10:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 1795255200000LL);
    ck_assert_int_eq(cli_parse_time("2026-11-21T10:00:00.25Z", &ms), 0);
    ck_assert_int_eq(ms, 1795255200250LL);
    ck_assert_int_eq(cli_parse_time("2026-11-21t11:30:00.123456+01:30", &ms), 0);
    ck_assert_int_eq(ms, 1795255200123LL);
    ck_assert_int_eq(cli_parse_time("2026-11-21 05:00:00-05:00", &ms), 0);
    ck_assert_int_eq(ms, 1795255200000LL);
    ck_assert_int_eq(cli_parse_time("2026-11-21", &ms), 0);
    ck_assert_int_eq(ms, 1795219200000LL);
    ck_assert_int_eq(cli_parse_time("2024-02-29T00:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 1709164800000LL);
    ck_assert_int_eq(cli_parse_time("0", &ms), 0);
    ck_assert_int_eq(ms, 0);
    const char *bad[] = {"", "yesterday", "-5", "2026-11-21T10:00:00", "2026-11-21T10:00Z",
                         "2025-02-29", "2026-04-31", "2026-11-21T24:00:00Z", "2026-11-21T10:00:00+1:00",
                         "1969-12-31T23:59:59Z", "2026-11-21T10:00:00.Z", "1234567890123456",
                         "2026-11-21T10:00:00Zjunk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(cli_parse_time(bad[i], &ms) == -1, "'%s' was accepted", bad[i]);
}
END_TEST

START_TEST(subcommand_names_are_recognised)
{
    const char *yes[] = {"query", "list", "submit", "force-stop", "retry", "help"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(cli_is_subcommand(yes[i]), "%s", yes[i]);
    const char *no[] = {"serve", "", "--help", "-h", "Query", "forcestop", "--http-port"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(!cli_is_subcommand(no[i]), "%s", no[i]);
    ck_assert(!cli_is_subcommand(NULL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, query_prints_the_transaction_and_its_branches);
    test_add(&g, query_json_prints_the_servers_reply);
    test_add(&g, query_of_an_unknown_gid_exits_4);
    test_add(&g, query_of_a_stuck_saga_shows_when_it_runs_next);
    test_add(&g, list_shows_every_transaction_newest_first);
    test_add(&g, list_filters_by_status_type_and_gid);
    test_add(&g, list_all_follows_every_page);
    test_add(&g, list_since_and_until_filter_by_create_time);
    test_add(&g, submit_from_a_file_creates_the_transaction);
    test_add(&g, submit_from_stdin_creates_the_transaction);
    test_add(&g, submit_of_bad_input_says_what_is_wrong);
    test_add(&g, force_stop_fails_a_stuck_saga);
    test_add(&g, force_stop_of_a_finished_transaction_exits_1_with_the_servers_message);
    test_add(&g, retry_calls_a_waiting_branch_now);
    test_add(&g, environment_and_token_reach_the_server);
    test_add(&g, server_errors_exit_1_with_the_servers_message);
    test_add(&g, an_unreachable_server_exits_3);
    test_add(&g, a_server_slower_than_timeout_exits_3);
    test_add(&g, usage_errors_exit_2_naming_the_problem);
    test_add(&g, an_unknown_subcommand_exits_2_naming_it);
    test_add(&g, help_of_every_subcommand_lists_its_options);
    test_add(&g, times_parse_as_epoch_ms_or_rfc3339);
    test_add(&g, subcommand_names_are_recognised);
    return run_suite(s);
}
