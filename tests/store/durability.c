/*
 * durability.c — the store's durability contract under group commit (store.h,
 * "durability"), run against whichever backend DTMQ_TEST_STORE names, like
 * conformance.c:
 *   - every change acknowledged with STORE_OK survives the process being
 *     killed (SIGKILL) the next moment, with many threads writing at once;
 *   - a thread that defers durability gets its changes durable at store_sync,
 *     or at the store_when_durable callback, and only then acknowledges them;
 *   - a change that fails its guard inside a shared batch is undone alone:
 *     the other changes of the batch stay, and no half of it remains.
 * A power cut is not simulated (no VM here): what is checked is that an
 * acknowledgement is never given before the change reached the backend's
 * commit (SQLite: the fsynced WAL; MongoDB: the acknowledged write).
 *
 *   DTMQ_TEST_STORE=sqlite:/tmp/d.db ./build/asan/tests/store/durability
 */
#include <check.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "daemon/store/store.h"

#define WRITER_THREADS 4
#define KILL_AFTER_ACKS 300

static char g_uri[4096];

#define ASSERT_OK(call)                                                                   \
    do {                                                                                  \
        store_result r_ = (call);                                                         \
        ck_assert_msg(r_ == STORE_OK, "%s: %s (%s)", #call, store_result_name(r_),        \
                      store_last_error());                                                \
    } while (0)

static store *open_store(void)
{
    char err[512] = "";
    store *s = store_open(g_uri, err, sizeof(err));
    ck_assert_msg(s != NULL, "cannot open %s: %s", g_uri, err);
    return s;
}

static store *open_empty(void)
{
    store *s = open_store();
    ASSERT_OK(store_drop_all(s));
    return s;
}

/* A one-branch saga named gid. */
static trans_global *make_trans(const char *gid)
{
    trans_global *t = trans_new();
    ck_assert_ptr_nonnull(t);
    t->gid = strdup(gid);
    t->trans_type = strdup("saga");
    t->status = strdup(TRANS_SUBMITTED);
    t->protocol = strdup("http");
    t->create_time = t->update_time = 1700000000000;
    t->next_cron_time = 1700000010000;
    t->branches = calloc(1, sizeof(trans_branch));
    t->branch_count = 1;
    t->branches[0].branch_id = strdup("01");
    t->branches[0].op = strdup("action");
    t->branches[0].url = strdup("http://svc/a");
    t->branches[0].status = strdup(TRANS_PREPARED);
    return t;
}

static store_result create(store *s, const char *gid)
{
    trans_global *t = make_trans(gid);
    store_result r = store_create_trans(s, t);
    trans_free(t);
    return r;
}

static int exists(store *s, const char *gid)
{
    trans_global *t = NULL;
    store_result r = store_find_trans(s, gid, &t);
    trans_free(t);
    ck_assert_msg(r == STORE_OK || r == STORE_NOT_FOUND, "find %s: %s", gid, store_last_error());
    return r == STORE_OK;
}

/* ---- acknowledged changes survive SIGKILL -------------------------------- */

typedef struct writer {
    store *s;
    int id;
    int ack_fd;   /* one line "gid\n" per acknowledged change */
    int deferred; /* acknowledge after store_sync, not per call */
} writer;

static void ack(int fd, const char *gid)
{
    char line[96];
    int n = snprintf(line, sizeof(line), "%s\n", gid);
    if (write(fd, line, (size_t)n) != n)
        _exit(3);
}

/* Writes until killed; acknowledges each change only once the store says it
 * is durable (per call, or per store_sync for a deferring thread). */
static void *writer_main(void *p)
{
    writer *w = p;
    store_defer_durability(w->deferred);
    char gids[8][64];
    for (long i = 0;; i++) {
        int k = (int)(i % 8);
        snprintf(gids[k], sizeof(gids[k]), "dur-%d-%d-%ld", w->deferred, w->id, i);
        if (create(w->s, gids[k]) != STORE_OK)
            _exit(4);
        if (!w->deferred)
            ack(w->ack_fd, gids[k]);
        else if (k == 7) { /* every 8 changes: sync, then acknowledge them */
            if (store_sync(w->s) != STORE_OK)
                _exit(5);
            for (int j = 0; j < 8; j++)
                ack(w->ack_fd, gids[j]);
        }
    }
    return NULL;
}

static void writer_child(int ack_fd, int deferred)
{
    char err[512];
    store *s = store_open(g_uri, err, sizeof(err));
    if (s == NULL)
        _exit(2);
    pthread_t th[WRITER_THREADS];
    writer w[WRITER_THREADS];
    for (int i = 0; i < WRITER_THREADS; i++) {
        w[i] = (writer){.s = s, .id = i, .ack_fd = ack_fd, .deferred = deferred};
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    }
    pthread_join(th[0], NULL); /* never returns: the parent kills us */
    _exit(0);
}

/* Reads acknowledged gids from fd; kills pid once `enough` have come. */
static char **collect_acks(int fd, pid_t pid, int enough, int *count)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int lines = 0, killed = 0;
    for (;;) {
        if (len + 256 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[len + (size_t)i] == '\n';
        len += (size_t)n;
        if (!killed && lines >= enough) {
            kill(pid, SIGKILL); /* the acks already in the pipe still count */
            killed = 1;
        }
    }
    buf[len] = '\0';
    char **gids = calloc((size_t)lines + 1, sizeof(char *));
    int k = 0;
    for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line && k < lines;
         line = strtok_r(NULL, "\n", &save))
        gids[k++] = strdup(line);
    free(buf);
    *count = k;
    return gids;
}

static void kill_test(int deferred)
{
    store *s = open_empty();
    store_close(s);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        writer_child(fds[1], deferred);
    }
    close(fds[1]);
    int count = 0;
    char **gids = collect_acks(fds[0], pid, KILL_AFTER_ACKS, &count);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "the writer ended by itself (status %d) instead of being killed", status);
    ck_assert_msg(count >= KILL_AFTER_ACKS, "only %d changes acknowledged", count);
    s = open_store();
    int missing = 0;
    for (int i = 0; i < count; i++) {
        if (!exists(s, gids[i]) && missing++ < 5)
            fprintf(stderr, "durability: acknowledged %s is missing\n", gids[i]);
        free(gids[i]);
    }
    free(gids);
    store_close(s);
    printf("durability[%s, %s]: %d acknowledged before SIGKILL, %d missing\n", g_uri,
           deferred ? "deferred" : "per call", count, missing);
    ck_assert_msg(missing == 0, "%d acknowledged changes lost at SIGKILL", missing);
}

START_TEST(test_acknowledged_survive_sigkill)
{
    kill_test(0);
}
END_TEST

START_TEST(test_synced_survive_sigkill)
{
    kill_test(1);
}
END_TEST

/* ---- deferred durability --------------------------------------------------- */

START_TEST(test_sync_makes_visible_to_another_handle)
{
    store *s = open_empty();
    store_defer_durability(true);
    for (int i = 0; i < 50; i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "sync-%d", i);
        ASSERT_OK(create(s, gid));
    }
    ASSERT_OK(store_sync(s));
    ASSERT_OK(store_sync(s)); /* nothing left: returns at once */
    store_defer_durability(false);
    store *other = open_store();
    for (int i = 0; i < 50; i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "sync-%d", i);
        ck_assert_msg(exists(other, gid), "%s not visible to another handle after store_sync", gid);
    }
    store_close(other);
    store_close(s);
}
END_TEST

typedef struct callback_seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    store_result result;
} callback_seen;

static void on_durable(void *arg, store_result r)
{
    callback_seen *c = arg;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->result = r;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

START_TEST(test_when_durable_calls_back_once)
{
    store *s = open_empty();
    callback_seen seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, STORE_INVALID};
    store_defer_durability(true);
    ck_assert_int_eq(store_when_durable(s, on_durable, &seen), 0); /* nothing pending */
    ASSERT_OK(create(s, "cb-1"));
    int rc = store_when_durable(s, on_durable, &seen);
    ck_assert_msg(rc == 0 || rc == 1, "store_when_durable returned %d (%s)", rc, store_last_error());
    if (rc == 1) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&seen.mu);
        while (seen.calls == 0 && pthread_cond_timedwait(&seen.cv, &seen.mu, &until) == 0)
            ;
        pthread_mutex_unlock(&seen.mu);
        ck_assert_msg(seen.calls == 1, "callback called %d times", seen.calls);
        ck_assert_int_eq(seen.result, STORE_OK);
    } else {
        ck_assert_int_eq(seen.calls, 0); /* durable already: no callback */
    }
    store_defer_durability(false);
    store *other = open_store();
    ck_assert(exists(other, "cb-1"));
    store_close(other);
    store_close(s);
    usleep(100000);
    ck_assert_int_le(seen.calls, 1); /* never twice */
}
END_TEST

/* ---- a failing change inside a shared batch ---------------------------------- */

START_TEST(test_failed_change_undone_alone)
{
    store *s = open_empty();
    store_defer_durability(true);
    ASSERT_OK(create(s, "batch-a"));
    ck_assert_int_eq(create(s, "batch-a"), STORE_DUPLICATE);
    /* a change that fails half-way: the first branch exists and would be
     * updated, the second does not, so nothing of it may remain */
    ASSERT_OK(create(s, "batch-half"));
    trans_branch upd[2] = {{.branch_id = "01", .op = "action", .status = TRANS_SUCCEED},
                           {.branch_id = "99", .op = "action", .status = TRANS_SUCCEED}};
    ck_assert_int_eq(store_update_branches(s, "batch-half", TRANS_SUBMITTED, upd, 2), STORE_NOT_FOUND);
    ASSERT_OK(create(s, "batch-b"));
    ASSERT_OK(store_sync(s));
    store_defer_durability(false);
    store *other = open_store();
    ck_assert(exists(other, "batch-a"));
    ck_assert(exists(other, "batch-b"));
    trans_global *half = NULL;
    ASSERT_OK(store_find_trans(other, "batch-half", &half));
    ck_assert_msg(strcmp(half->branches[0].status, TRANS_PREPARED) == 0,
                  "half of a failed change remained: branch 01 is %s", half->branches[0].status);
    trans_free(half);
    store_close(other);
    store_close(s);
}
END_TEST

static Suite *durability_suite(void)
{
    Suite *s = suite_create("durability");
    test_group g = {.suite = s, .timeout_s = 120};
    test_add(&g, test_acknowledged_survive_sigkill);
    test_add(&g, test_synced_survive_sigkill);
    test_add(&g, test_sync_makes_visible_to_another_handle);
    test_add(&g, test_when_durable_calls_back_once);
    test_add(&g, test_failed_change_undone_alone);
    return s;
}

int main(void)
{
    const char *uri = getenv("DTMQ_TEST_STORE");
    if (uri == NULL || uri[0] == '\0') {
        fprintf(stderr, "durability: set DTMQ_TEST_STORE (sqlite:PATH or mongodb://...)\n");
        return 1;
    }
    snprintf(g_uri, sizeof(g_uri), "%s", uri);
    SRunner *sr = srunner_create(durability_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
