/*
 * conformance.c — the store conformance suite: the same cases, run against
 * whichever backend DTMQ_TEST_STORE names, check the contract of store.h.
 *
 *   DTMQ_TEST_STORE=sqlite:/tmp/x.db ./build/asan/tests/store/conformance
 *   DTMQ_TEST_STORE=mongodb://127.0.0.1:27018/dtmq_test ./build/asan/tests/store/conformance
 *
 * Without DTMQ_TEST_STORE it uses an SQLite file in a fresh mkdtemp directory
 * (removed at the end). If the store cannot be opened the suite fails at once;
 * it never skips. Every test starts from store_drop_all() on its own handle.
 *
 * Times in the cases are fixed values around T0 (not the clock), so the cron
 * cases are deterministic; only KV times are stamped by the store itself.
 */
#include <check.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/store/store.h"
#include "testlib.h"

#define T0 INT64_C(1700000000000)

static char g_uri[4096];      /* the store under test */
static char g_tmpdir[256];    /* our mkdtemp directory, "" when not ours */
static store *S;              /* this test's handle (setup/teardown) */

/* ---- assertion helpers ------------------------------------------------------ */

#define ASSERT_RESULT(call, want)                                                        \
    do {                                                                                 \
        store_result r_ = (call);                                                        \
        ck_assert_msg(r_ == (want), "%s: got %s, want %s (%s)", #call,                   \
                      store_result_name(r_), store_result_name(want), store_last_error()); \
    } while (0)

#define ASSERT_OK(call) ASSERT_RESULT(call, STORE_OK)

static int str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void expect_str(const char *what, const char *field, const char *want, const char *got)
{
    ck_assert_msg(str_same(want, got), "%s.%s: want %s%s%s, got %s%s%s", what, field,
                  want ? "\"" : "", want ? want : "NULL", want ? "\"" : "", got ? "\"" : "",
                  got ? got : "NULL", got ? "\"" : "");
}

static void expect_int(const char *what, const char *field, int64_t want, int64_t got)
{
    ck_assert_msg(want == got, "%s.%s: want %lld, got %lld", what, field, (long long)want,
                  (long long)got);
}

#define EXPECT_STR(w, g, f) expect_str(what, #f, (w)->f, (g)->f)
#define EXPECT_INT(w, g, f) expect_int(what, #f, (w)->f, (g)->f)

static void assert_branch_eq(const char *what, const trans_branch *want, const trans_branch *got)
{
    EXPECT_STR(want, got, branch_id);
    EXPECT_STR(want, got, op);
    EXPECT_STR(want, got, url);
    EXPECT_STR(want, got, status);
    EXPECT_INT(want, got, create_time);
    EXPECT_INT(want, got, update_time);
    EXPECT_INT(want, got, finish_time);
    EXPECT_INT(want, got, rollback_time);
    ck_assert_msg(want->data_len == got->data_len, "%s: data_len want %zu got %zu", what,
                  want->data_len, got->data_len);
    /* trans.h: data is NULL when empty. */
    ck_assert_msg((got->data == NULL) == (got->data_len == 0), "%s: data %p with data_len %zu",
                  what, (void *)got->data, got->data_len);
    if (want->data_len > 0)
        ck_assert_msg(memcmp(want->data, got->data, want->data_len) == 0, "%s: data differs",
                      what);
}

/* Compares every field; branches too when with_branches. */
static void assert_trans_eq(const trans_global *want, const trans_global *got, int with_branches)
{
    ck_assert_ptr_nonnull(got);
    char what[160];
    snprintf(what, sizeof(what), "trans %s", want->gid);
    EXPECT_STR(want, got, gid);
    EXPECT_STR(want, got, trans_type);
    EXPECT_STR(want, got, status);
    EXPECT_STR(want, got, query_prepared);
    EXPECT_STR(want, got, protocol);
    EXPECT_STR(want, got, custom_data);
    EXPECT_STR(want, got, options);
    EXPECT_STR(want, got, steps);
    EXPECT_STR(want, got, payloads);
    EXPECT_STR(want, got, ext_data);
    EXPECT_STR(want, got, result);
    EXPECT_STR(want, got, rollback_reason);
    EXPECT_STR(want, got, owner);
    EXPECT_INT(want, got, create_time);
    EXPECT_INT(want, got, update_time);
    EXPECT_INT(want, got, finish_time);
    EXPECT_INT(want, got, rollback_time);
    EXPECT_INT(want, got, next_cron_time);
    EXPECT_INT(want, got, next_cron_interval);
    if (!with_branches)
        return;
    ck_assert_msg(want->branch_count == got->branch_count, "%s: %zu branches, want %zu", what,
                  got->branch_count, want->branch_count);
    for (size_t i = 0; i < want->branch_count; i++) {
        snprintf(what, sizeof(what), "trans %s branch %zu", want->gid, i);
        assert_branch_eq(what, &want->branches[i], &got->branches[i]);
    }
}

/* ---- builders --------------------------------------------------------------- */

/* A branch pointing at the caller's strings/bytes (for add or for the
 * append/update calls, which copy). */
static trans_branch branch_of(const char *id, const char *op, const char *url, const void *data,
                              size_t len, const char *status, int64_t time)
{
    trans_branch b;
    memset(&b, 0, sizeof(b));
    b.branch_id = (char *)id;
    b.op = (char *)op;
    b.url = (char *)url;
    b.data = (unsigned char *)data;
    b.data_len = len;
    b.status = (char *)status;
    b.create_time = time;
    b.update_time = time + 1;
    return b;
}

static void add_branch(trans_global *t, const char *id, const char *op, const char *url,
                       const void *data, size_t len, const char *status, int64_t time)
{
    trans_branch b = branch_of(id, op, url, data, len, status, time);
    ck_assert_int_eq(trans_add_branch(t, &b), 0);
}

static void set_str(char **field, const char *value)
{
    ck_assert_int_eq(trans_set_str(field, value), 0);
}

/* A minimal global: the required strings, protocol, times and cron. */
static trans_global *make_trans(const char *gid, const char *type, const char *status,
                                int64_t create_time, int64_t next_cron_time)
{
    trans_global *t = trans_new();
    ck_assert_ptr_nonnull(t);
    set_str(&t->gid, gid);
    set_str(&t->trans_type, type);
    set_str(&t->status, status);
    set_str(&t->protocol, "http");
    t->create_time = create_time;
    t->update_time = create_time;
    t->next_cron_time = next_cron_time;
    t->next_cron_interval = 10;
    return t;
}

/* A global with every field set to a distinct value and four branches: data
 * with embedded NULs, no data, a NULL url, and all 256 byte values. */
static unsigned char all_bytes[256];

static trans_global *make_full_trans(const char *gid)
{
    static const char nul_data[] = {'a', '\0', 'b', '\0', '\0', 'c'};
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (unsigned char)i;
    trans_global *t = make_trans(gid, "saga", TRANS_PREPARED, T0 + 1, T0 + 10000);
    set_str(&t->query_prepared, "http://svc/query?x=1&y='2'");
    set_str(&t->custom_data, "{\"concurrent\":false,\"delay\":3}");
    set_str(&t->options, "{\"timeout_to_fail\":60,\"retry_interval\":5}");
    set_str(&t->steps, "[{\"action\":\"http://svc/a\",\"compensate\":\"http://svc/c\"}]");
    set_str(&t->payloads, "[\"{\\\"amount\\\":30}\"]");
    set_str(&t->ext_data, "{\"k\":\"v \\u00e9 \xc3\xa9\"}");
    set_str(&t->result, "ok \"quoted\"");
    set_str(&t->rollback_reason, "reason; DROP TABLE trans_global; --");
    set_str(&t->owner, "node-a");
    t->update_time = T0 + 2;
    t->finish_time = T0 + 3;
    t->rollback_time = T0 + 4;
    t->next_cron_interval = 17;
    add_branch(t, "01", "action", "http://svc/a", nul_data, sizeof(nul_data), "prepared", T0 + 5);
    add_branch(t, "01", "compensate", "", NULL, 0, "prepared", T0 + 6);
    add_branch(t, "02", "action", NULL, "x", 1, "succeed", T0 + 7);
    add_branch(t, "02", "compensate", "kafka://topic-1", all_bytes, sizeof(all_bytes), "failed",
               T0 + 8);
    t->branches[2].finish_time = T0 + 9;
    t->branches[3].rollback_time = T0 + 10;
    return t;
}

static void create_ok(const trans_global *t)
{
    ASSERT_OK(store_create_trans(S, t));
}

/* Creates a minimal transaction (one branch) and frees the builder. */
static void create_simple(const char *gid, const char *type, const char *status,
                          int64_t create_time, int64_t next_cron_time)
{
    trans_global *t = make_trans(gid, type, status, create_time, next_cron_time);
    add_branch(t, "01", "action", "http://svc/a", "{}", 2, "prepared", create_time);
    create_ok(t);
    trans_free(t);
}

static trans_global *find_ok(const char *gid)
{
    trans_global *t = NULL;
    ASSERT_OK(store_find_trans(S, gid, &t));
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Reads gid back and compares it whole with want. */
static void assert_stored(const trans_global *want)
{
    trans_global *got = find_ok(want->gid);
    assert_trans_eq(want, got, 1);
    trans_free(got);
}

static store *open_store(void)
{
    char err[512] = "";
    store *s = store_open(g_uri, err, sizeof(err));
    ck_assert_msg(s != NULL, "cannot open store %s: %s", g_uri, err);
    return s;
}

static void setup(void)
{
    S = open_store();
    ASSERT_OK(store_drop_all(S));
}

static void teardown(void)
{
    store_close(S);
    S = NULL;
}

/* ---- opening ---------------------------------------------------------------- */

static void expect_open_fails(const char *uri, const char *must_mention)
{
    char err[512] = "";
    store *s = store_open(uri, err, sizeof(err));
    ck_assert_msg(s == NULL, "store_open(%s) succeeded", uri);
    ck_assert_msg(err[0] != '\0', "store_open(%s) failed without a message", uri);
    ck_assert_msg(strchr(err, '\n') == NULL, "message is not one line: %s", err);
    if (must_mention != NULL)
        ck_assert_msg(strstr(err, must_mention) != NULL, "message '%s' lacks '%s'", err,
                      must_mention);
}

START_TEST(test_open_bad_uris)
{
    expect_open_fails("", NULL);
    expect_open_fails("bogus://somewhere", "bogus");
    expect_open_fails("sqlite:", NULL);
    expect_open_fails("sqlite:/nonexistent-dtmq-dir/sub/x.db", "/nonexistent-dtmq-dir/sub/x.db");
    expect_open_fails("sqlite:/nonexistent-dtmq-dir/sub/x.db", "unable to open");

    /* A file that is not a database. */
    char path[] = "/tmp/dtmq-notdb-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char junk[] = "this is not an sqlite database, just some text............";
    char block[4096];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = junk[i % (sizeof(junk) - 1)];
    ck_assert_int_eq(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
    close(fd);
    char uri[64];
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    char err[512] = "";
    store *s = store_open(uri, err, sizeof(err));
    unlink(path);
    ck_assert_msg(s == NULL, "opened a non-database file");
    ck_assert_msg(strstr(err, path) != NULL, "message '%s' lacks the path", err);
}
END_TEST

START_TEST(test_open_driver_and_ping)
{
    const char *want = strncmp(g_uri, "sqlite:", 7) == 0 ? "sqlite" : "mongodb";
    ck_assert_str_eq(store_driver(S), want);
    if (strcmp(want, "sqlite") == 0)
        ck_assert_str_eq(store_display_uri(S), g_uri);
    else
        ck_assert_msg(strncmp(store_display_uri(S), "mongodb", 7) == 0, "display uri %s",
                      store_display_uri(S));
    ASSERT_OK(store_ping(S));
    /* Two handles on the same store at once. */
    store *other = open_store();
    ASSERT_OK(store_ping(other));
    store_close(other);
    store_close(NULL);
}
END_TEST

/* What one handle commits, another sees at once, and it outlives the handle. */
START_TEST(test_visible_across_handles)
{
    trans_global *t = make_full_trans("shared");
    create_ok(t);
    ASSERT_OK(store_kv_create(S, "topics", "shared", "v"));
    store *other = open_store();
    trans_global *got = NULL;
    ASSERT_OK(store_find_trans(other, "shared", &got));
    assert_trans_eq(t, got, 1);
    trans_free(got);
    store_status_change c = {.status = TRANS_SUBMITTED, .update_time = T0 + 1};
    ASSERT_OK(store_change_status(other, "shared", TRANS_PREPARED, &c));
    store_close(other);

    store_close(S);
    S = open_store();
    set_str(&t->status, TRANS_SUBMITTED);
    t->update_time = T0 + 1;
    assert_stored(t);
    store_kv_list l = {0};
    ASSERT_OK(store_kv_get(S, "topics", "shared", &l));
    ck_assert_int_eq(l.count, 1);
    ck_assert_str_eq(l.items[0].value, "v");
    store_kv_list_clear(&l);
    trans_free(t);
}
END_TEST

/* ---- create / find ------------------------------------------------------------ */

START_TEST(test_create_find_roundtrip)
{
    trans_global *full = make_full_trans("rt-full");
    create_ok(full);
    assert_stored(full);

    /* Optional strings absent (NULL) or present but empty must stay so. */
    trans_global *sparse = make_trans("rt-sparse", "msg", TRANS_PREPARED, 0, 0);
    set_str(&sparse->protocol, NULL);
    set_str(&sparse->query_prepared, "");
    set_str(&sparse->result, "");
    set_str(&sparse->custom_data, "");
    sparse->next_cron_interval = 0;
    create_ok(sparse);
    assert_stored(sparse);

    /* The caller's struct stays the caller's: changing it changes nothing. */
    set_str(&full->status, TRANS_FAILED);
    full->branches[0].data[0] = 'Z';
    trans_global *got = find_ok("rt-full");
    ck_assert_str_eq(got->status, TRANS_PREPARED);
    ck_assert_int_eq(got->branches[0].data[0], 'a');
    trans_free(got);

    trans_free(full);
    trans_free(sparse);
}
END_TEST

START_TEST(test_create_duplicate_changes_nothing)
{
    trans_global *orig = make_full_trans("dup-1");
    create_ok(orig);

    trans_global *other = make_trans("dup-1", "tcc", TRANS_SUBMITTED, T0 + 99, T0 + 99);
    set_str(&other->result, "other");
    add_branch(other, "09", "try", "http://other", "zz", 2, "prepared", T0);
    ASSERT_RESULT(store_create_trans(S, other), STORE_DUPLICATE);
    assert_stored(orig);

    /* Without branches too. */
    trans_global *bare = make_trans("dup-1", "saga", TRANS_PREPARED, T0, T0);
    ASSERT_RESULT(store_create_trans(S, bare), STORE_DUPLICATE);
    assert_stored(orig);

    trans_free(orig);
    trans_free(other);
    trans_free(bare);
}
END_TEST

START_TEST(test_find_missing_and_invalid)
{
    trans_global *t = (trans_global *)1;
    ASSERT_RESULT(store_find_trans(S, "no-such-gid", &t), STORE_NOT_FOUND);
    ck_assert_ptr_null(t);

    trans_global *bad = make_trans("x", "saga", TRANS_PREPARED, T0, T0);
    set_str(&bad->gid, "");
    ASSERT_RESULT(store_create_trans(S, bad), STORE_INVALID);
    ck_assert_msg(store_last_error()[0] != '\0', "INVALID without error text");
    trans_free(bad);
}
END_TEST

START_TEST(test_create_many_branches_in_order)
{
    trans_global *t = make_trans("many", "workflow", TRANS_PREPARED, T0, T0);
    char ids[40][8];
    for (int i = 0; i < 40; i++) {
        /* ids not in sorted order, so insertion order is what is checked */
        snprintf(ids[i], sizeof(ids[i]), "%02d", (i * 17) % 40);
        add_branch(t, ids[i], i % 2 ? "compensate" : "action", "http://svc", ids[i], 2,
                   "prepared", T0 + i);
    }
    create_ok(t);
    assert_stored(t);
    trans_free(t);
}
END_TEST

/* ---- change_status -------------------------------------------------------------- */

START_TEST(test_change_status_sets_only_given_fields)
{
    trans_global *want = make_full_trans("cs-1");
    create_ok(want);

    store_status_change c = {.status = TRANS_SUBMITTED, .update_time = T0 + 100};
    ASSERT_OK(store_change_status(S, "cs-1", TRANS_PREPARED, &c));
    set_str(&want->status, TRANS_SUBMITTED);
    want->update_time = T0 + 100;
    assert_stored(want);

    store_status_change all = {
        .status = TRANS_SUCCEED,
        .update_time = T0 + 200,
        .finish_time = T0 + 201,
        .rollback_time = T0 + 202,
        .rollback_reason = "",
        .result = "done",
        .ext_data = "{\"x\":1}",
        .next_cron_time = T0 + 203,
        .next_cron_interval = 99,
        .owner = "node-b",
    };
    ASSERT_OK(store_change_status(S, "cs-1", TRANS_SUBMITTED, &all));
    set_str(&want->owner, "node-b");
    set_str(&want->status, TRANS_SUCCEED);
    set_str(&want->rollback_reason, "");
    set_str(&want->result, "done");
    set_str(&want->ext_data, "{\"x\":1}");
    want->update_time = T0 + 200;
    want->finish_time = T0 + 201;
    want->rollback_time = T0 + 202;
    want->next_cron_time = T0 + 203;
    want->next_cron_interval = 99;
    assert_stored(want);
    trans_free(want);
}
END_TEST

START_TEST(test_change_status_same_status_is_guarded_update)
{
    trans_global *want = make_full_trans("cs-same");
    create_ok(want);
    store_status_change c = {.status = TRANS_PREPARED, .update_time = T0 + 50,
                             .ext_data = "{\"step\":2}"};
    ASSERT_OK(store_change_status(S, "cs-same", TRANS_PREPARED, &c));
    want->update_time = T0 + 50;
    set_str(&want->ext_data, "{\"step\":2}");
    assert_stored(want);
    trans_free(want);
}
END_TEST

START_TEST(test_change_status_conflict_and_not_found)
{
    trans_global *want = make_full_trans("cs-2");
    create_ok(want);
    store_status_change c = {.status = TRANS_FAILED, .update_time = T0 + 9, .result = "x",
                             .finish_time = T0 + 9};
    ASSERT_RESULT(store_change_status(S, "cs-2", TRANS_SUBMITTED, &c), STORE_CONFLICT);
    ASSERT_RESULT(store_change_status(S, "cs-2", TRANS_ABORTING, &c), STORE_CONFLICT);
    assert_stored(want);
    ASSERT_RESULT(store_change_status(S, "cs-missing", TRANS_PREPARED, &c), STORE_NOT_FOUND);
    ASSERT_RESULT(store_change_status(S, "cs-2", "", &c), STORE_INVALID);
    assert_stored(want);
    trans_free(want);
}
END_TEST

/* Many threads race the same compare-and-set, round after round: exactly one
 * wins each round, and the stored document is the winner's. A store (or a
 * server) whose guarded update is a read followed by a write lets several win
 * (FerretDB v1 did in 199 of 200 rounds). */
#define CAS_THREADS 8
#define CAS_ROUNDS 200

typedef struct cas_arg {
    int index;
    const char *gid;
    pthread_barrier_t *start;
    store_result result;
} cas_arg;

static void *cas_worker(void *p)
{
    cas_arg *a = p;
    char ext[32];
    snprintf(ext, sizeof(ext), "{\"winner\":%d}", a->index);
    store_status_change c = {.status = TRANS_SUBMITTED, .update_time = T0 + a->index,
                             .ext_data = ext};
    pthread_barrier_wait(a->start); /* all at once */
    a->result = store_change_status(S, a->gid, TRANS_PREPARED, &c);
    return NULL;
}

/* One round on gid; returns how many threads won. */
static int cas_round(const char *gid)
{
    create_simple(gid, "saga", TRANS_PREPARED, T0, T0);
    pthread_barrier_t start;
    ck_assert_int_eq(pthread_barrier_init(&start, NULL, CAS_THREADS), 0);
    pthread_t th[CAS_THREADS];
    cas_arg args[CAS_THREADS];
    for (int i = 0; i < CAS_THREADS; i++) {
        args[i] = (cas_arg){.index = i, .gid = gid, .start = &start, .result = STORE_UNAVAILABLE};
        ck_assert_int_eq(pthread_create(&th[i], NULL, cas_worker, &args[i]), 0);
    }
    int winners = 0, winner = -1;
    for (int i = 0; i < CAS_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(args[i].result == STORE_OK || args[i].result == STORE_CONFLICT,
                      "%s thread %d: %s", gid, i, store_result_name(args[i].result));
        if (args[i].result == STORE_OK) {
            winners++;
            winner = i;
        }
    }
    pthread_barrier_destroy(&start);
    if (winners == 1) {
        trans_global *t = find_ok(gid);
        char ext[32];
        snprintf(ext, sizeof(ext), "{\"winner\":%d}", winner);
        ck_assert_str_eq(t->status, TRANS_SUBMITTED);
        ck_assert_pstr_eq(t->ext_data, ext);
        ck_assert_int_eq(t->update_time, T0 + winner);
        trans_free(t);
    }
    return winners;
}

START_TEST(test_change_status_race_one_winner)
{
    int bad = 0, first_bad = -1, worst = 1;
    for (int r = 0; r < CAS_ROUNDS; r++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "cas-%03d", r);
        int w = cas_round(gid);
        if (w != 1) {
            bad++;
            if (first_bad < 0)
                first_bad = r;
            if (w > worst || worst == 1)
                worst = w;
        }
    }
    ck_assert_msg(bad == 0, "%d of %d rounds of %d racing writers did not have exactly one "
                            "winner (first: round %d, %d winners)",
                  bad, CAS_ROUNDS, CAS_THREADS, first_bad, worst);
}
END_TEST

/* ---- append_branches -------------------------------------------------------------- */

START_TEST(test_append_branches_in_order)
{
    trans_global *want = make_trans("ap-1", "workflow", TRANS_PREPARED, T0, T0);
    add_branch(want, "01", "action", "http://a", "1", 1, "succeed", T0);
    create_ok(want);

    static const char nul[] = {'\0', 'x', '\0'};
    trans_branch add[] = {
        branch_of("03", "action", "http://c", nul, sizeof(nul), "prepared", T0 + 3),
        branch_of("02", "action", "", NULL, 0, "prepared", T0 + 2),
        branch_of("01", "compensate", "http://a/c", "c", 1, "prepared", T0 + 4),
    };
    ASSERT_OK(store_append_branches(S, "ap-1", TRANS_PREPARED, add, 3));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(trans_add_branch(want, &add[i]), 0);
    assert_stored(want);

    /* A second append goes after the first. */
    trans_branch more = branch_of("04", "action", "http://d", "d", 1, "prepared", T0 + 5);
    ASSERT_OK(store_append_branches(S, "ap-1", TRANS_PREPARED, &more, 1));
    ck_assert_int_eq(trans_add_branch(want, &more), 0);
    assert_stored(want);

    /* Nothing to append is fine while the guard holds. */
    ASSERT_OK(store_append_branches(S, "ap-1", TRANS_PREPARED, NULL, 0));
    assert_stored(want);
    trans_free(want);
}
END_TEST

START_TEST(test_append_branches_guards)
{
    trans_global *want = make_trans("ap-2", "workflow", TRANS_PREPARED, T0, T0);
    add_branch(want, "01", "action", "http://a", "1", 1, "prepared", T0);
    add_branch(want, "02", "action", "http://b", "2", 1, "prepared", T0);
    create_ok(want);

    trans_branch fresh = branch_of("05", "action", "http://e", "e", 1, "prepared", T0 + 1);
    ASSERT_RESULT(store_append_branches(S, "ap-2", TRANS_SUBMITTED, &fresh, 1), STORE_CONFLICT);
    ASSERT_RESULT(store_append_branches(S, "ap-2", TRANS_SUBMITTED, NULL, 0), STORE_CONFLICT);
    ASSERT_RESULT(store_append_branches(S, "ap-none", TRANS_PREPARED, &fresh, 1), STORE_NOT_FOUND);
    assert_stored(want);

    /* One new branch, then one that exists: nothing is appended. */
    trans_branch clash[] = {
        branch_of("06", "action", "http://f", "f", 1, "prepared", T0 + 2),
        branch_of("02", "action", "http://other", "x", 1, "prepared", T0 + 2),
    };
    ASSERT_RESULT(store_append_branches(S, "ap-2", TRANS_PREPARED, clash, 2), STORE_DUPLICATE);
    assert_stored(want);

    /* A pair repeated within the input: nothing is appended. */
    trans_branch repeat[] = {
        branch_of("07", "action", "http://g", "g", 1, "prepared", T0 + 3),
        branch_of("07", "action", "http://g2", "g", 1, "prepared", T0 + 3),
    };
    ASSERT_RESULT(store_append_branches(S, "ap-2", TRANS_PREPARED, repeat, 2), STORE_DUPLICATE);
    assert_stored(want);

    /* Uniqueness is on the (branch_id, op) pair: another op is fine. */
    trans_branch other_op = branch_of("02", "compensate", "http://b/c", "", 0, "prepared", T0 + 4);
    ASSERT_OK(store_append_branches(S, "ap-2", TRANS_PREPARED, &other_op, 1));
    ck_assert_int_eq(trans_add_branch(want, &other_op), 0);
    assert_stored(want);
    trans_free(want);
}
END_TEST

/* ---- update_branches ----------------------------------------------------------------- */

static trans_global *create_three_branches(const char *gid, const char *status)
{
    trans_global *t = make_trans(gid, "saga", status, T0, T0);
    add_branch(t, "01", "action", "http://a", "aa", 2, "prepared", T0);
    add_branch(t, "01", "compensate", "http://ac", "ac", 2, "prepared", T0);
    add_branch(t, "02", "action", "http://b", "bb", 2, "prepared", T0);
    create_ok(t);
    return t;
}

START_TEST(test_update_branches_sets_result_fields_only)
{
    trans_global *want = create_three_branches("ub-1", TRANS_SUBMITTED);
    trans_branch upd[] = {
        branch_of("02", "action", "http://IGNORED", "IGNORED", 7, "succeed", T0 + 10),
        branch_of("01", "action", NULL, NULL, 0, "failed", T0 + 20),
    };
    upd[0].finish_time = T0 + 11;
    upd[1].rollback_time = T0 + 21;
    ASSERT_OK(store_update_branches(S, "ub-1", TRANS_SUBMITTED, upd, 2));

    trans_branch *b2 = &want->branches[2], *b0 = &want->branches[0];
    set_str(&b2->status, "succeed");
    b2->update_time = T0 + 11; /* branch_of sets update_time = time + 1 */
    b2->finish_time = T0 + 11;
    set_str(&b0->status, "failed");
    b0->update_time = T0 + 21;
    b0->rollback_time = T0 + 21;
    assert_stored(want);
    trans_free(want);
}
END_TEST

START_TEST(test_update_branches_guards)
{
    trans_global *want = create_three_branches("ub-2", TRANS_SUBMITTED);

    trans_branch missing[] = {
        branch_of("01", "action", "", NULL, 0, "succeed", T0 + 5),
        branch_of("02", "compensate", "", NULL, 0, "succeed", T0 + 5), /* no such op */
    };
    ASSERT_RESULT(store_update_branches(S, "ub-2", TRANS_SUBMITTED, missing, 2), STORE_NOT_FOUND);
    assert_stored(want);

    trans_branch ok = branch_of("01", "action", "", NULL, 0, "succeed", T0 + 5);
    ASSERT_RESULT(store_update_branches(S, "ub-2", TRANS_ABORTING, &ok, 1), STORE_CONFLICT);
    ASSERT_RESULT(store_update_branches(S, "ub-none", TRANS_SUBMITTED, &ok, 1), STORE_NOT_FOUND);
    assert_stored(want);

    /* A late result for a finished transaction changes nothing. */
    store_status_change fin = {.status = TRANS_SUCCEED, .update_time = T0 + 6,
                               .finish_time = T0 + 6};
    ASSERT_OK(store_change_status(S, "ub-2", TRANS_SUBMITTED, &fin));
    set_str(&want->status, TRANS_SUCCEED);
    want->update_time = T0 + 6;
    want->finish_time = T0 + 6;
    ASSERT_RESULT(store_update_branches(S, "ub-2", TRANS_SUBMITTED, &ok, 1), STORE_CONFLICT);
    assert_stored(want);
    trans_free(want);
}
END_TEST

/* update_branches_if: the branch's own status is a guard too, so a result
 * that races with another writer never overwrites one already recorded. */
START_TEST(test_update_branches_if_guards_the_branch)
{
    trans_global *want = create_three_branches("ubi-1", TRANS_SUBMITTED);
    const char *before = want->branches[0].status;
    trans_branch done = branch_of(want->branches[0].branch_id, want->branches[0].op, "", NULL, 0,
                                  TRANS_SUCCEED, T0 + 5);
    ASSERT_OK(store_update_branches_if(S, "ubi-1", TRANS_SUBMITTED, &done, 1, before));
    /* a second, contradicting result finds the branch no longer as expected */
    trans_branch late = done;
    late.status = TRANS_FAILED;
    ASSERT_RESULT(store_update_branches_if(S, "ubi-1", TRANS_SUBMITTED, &late, 1, before), STORE_CONFLICT);
    trans_global *got = find_ok("ubi-1");
    ck_assert_str_eq(got->branches[0].status, TRANS_SUCCEED);
    trans_free(got);
    trans_branch missing = branch_of("99", "action", "", NULL, 0, TRANS_SUCCEED, T0 + 5);
    ASSERT_RESULT(store_update_branches_if(S, "ubi-1", TRANS_SUBMITTED, &missing, 1, before), STORE_NOT_FOUND);
    ASSERT_RESULT(store_update_branches_if(S, "ubi-1", TRANS_ABORTING, &done, 1, TRANS_SUCCEED), STORE_CONFLICT);
    ASSERT_RESULT(store_update_branches_if(S, "ubi-1", TRANS_SUBMITTED, &done, 1, NULL), STORE_INVALID);
    trans_free(want);
}
END_TEST

/* ---- claim_due ------------------------------------------------------------------------- */

/* Claims and checks the one claimed is want_gid, owned and leased. */
static trans_global *claim_expect(int64_t now, int64_t lease, const char *owner,
                                  const char *want_gid)
{
    trans_global *t = NULL;
    ASSERT_OK(store_claim_due(S, now, lease, owner, &t));
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->gid, want_gid);
    ck_assert_pstr_eq(t->owner, owner);
    ck_assert_int_eq(t->next_cron_time, now + lease);
    return t;
}

static void claim_expect_none(int64_t now)
{
    trans_global *t = (trans_global *)1;
    ASSERT_RESULT(store_claim_due(S, now, 1000, "nobody", &t), STORE_NOT_FOUND);
    ck_assert_ptr_null(t);
}

START_TEST(test_claim_due_order_and_filter)
{
    create_simple("due-b", "saga", TRANS_SUBMITTED, T0, T0 - 2000);
    trans_global *a = make_full_trans("due-a"); /* prepared, with branches */
    a->next_cron_time = T0 - 3000;
    create_ok(a);
    create_simple("due-c", "tcc", TRANS_ABORTING, T0, T0); /* due exactly now */
    create_simple("later", "saga", TRANS_SUBMITTED, T0, T0 + 1);
    create_simple("done-s", "saga", TRANS_SUCCEED, T0, T0 - 100000);
    create_simple("done-f", "saga", TRANS_FAILED, T0, T0 - 100000);

    /* Earliest first; the returned row is the stored row after the lease. */
    trans_global *got = claim_expect(T0, 1000, "w1", "due-a");
    set_str(&a->owner, "w1");
    a->next_cron_time = T0 + 1000;
    assert_trans_eq(a, got, 1);
    trans_free(got);
    assert_stored(a);

    trans_free(claim_expect(T0, 1000, "w1", "due-b"));
    trans_free(claim_expect(T0, 1000, "w2", "due-c"));
    claim_expect_none(T0); /* "later" not yet due, finished ones never */
    trans_free(claim_expect(T0 + 1, 1000, "w3", "later"));
    claim_expect_none(T0 + 999);

    trans_global *b = find_ok("due-b");
    ck_assert_pstr_eq(b->owner, "w1");
    ck_assert_int_eq(b->next_cron_time, T0 + 1000);
    ck_assert_str_eq(b->status, TRANS_SUBMITTED);
    trans_free(b);
    trans_global *done = find_ok("done-s");
    ck_assert_ptr_null(done->owner);
    ck_assert_int_eq(done->next_cron_time, T0 - 100000);
    trans_free(done);
    trans_free(a);
}
END_TEST

START_TEST(test_claim_due_lease_expiry)
{
    create_simple("lease", "saga", TRANS_SUBMITTED, T0, T0 - 1);
    trans_free(claim_expect(T0, 5000, "a", "lease"));
    claim_expect_none(T0);
    claim_expect_none(T0 + 4999);
    trans_free(claim_expect(T0 + 5000, 5000, "b", "lease"));
    claim_expect_none(T0 + 9999);

    store_status_change fin = {.status = TRANS_SUCCEED, .update_time = T0 + 1};
    ASSERT_OK(store_change_status(S, "lease", TRANS_SUBMITTED, &fin));
    claim_expect_none(T0 + 10000000);
}
END_TEST

START_TEST(test_claim_due_empty)
{
    claim_expect_none(T0);
    trans_global *t = (trans_global *)1;
    ASSERT_RESULT(store_claim_due(S, T0, 0, "x", &t), STORE_INVALID);
    ck_assert_ptr_null(t);
}
END_TEST

/* The race cases: many due transactions, several claimers at once. */
#define RACE_TRANS 200
#define RACE_LEASE INT64_C(600000)

static void create_race_set(void)
{
    for (int i = 0; i < RACE_TRANS; i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "race-%03d", i);
        trans_global *t = make_trans(gid, "saga", i % 2 ? TRANS_SUBMITTED : TRANS_ABORTING, T0,
                                     T0 - 1000 + i);
        create_ok(t);
        trans_free(t);
    }
}

/* Records that claimer took gid; fails on a gid claimed twice. */
static void record_claim(int *claimer, const char *gid, int who)
{
    int i = -1;
    ck_assert_msg(sscanf(gid, "race-%d", &i) == 1 && i >= 0 && i < RACE_TRANS, "odd gid %s", gid);
    ck_assert_msg(claimer[i] < 0, "%s claimed by %d and by %d", gid, claimer[i], who);
    claimer[i] = who;
}

/* Every race transaction was claimed once, and the store agrees who holds it. */
static void check_race_result(const int *claimer, const char *owner_fmt)
{
    for (int i = 0; i < RACE_TRANS; i++) {
        char gid[32], owner[32];
        snprintf(gid, sizeof(gid), "race-%03d", i);
        ck_assert_msg(claimer[i] >= 0, "%s was never claimed", gid);
        snprintf(owner, sizeof(owner), owner_fmt, claimer[i]);
        trans_global *t = find_ok(gid);
        ck_assert_pstr_eq(t->owner, owner);
        ck_assert_int_eq(t->next_cron_time, T0 + RACE_LEASE);
        trans_free(t);
    }
    claim_expect_none(T0 + RACE_LEASE - 1);
}

#define RACE_PROCS 3

/* Child: own handle, wait for the start signal, claim until nothing is due,
 * one line "who gid" per claim. Exits 0, or nonzero on any store error. No
 * Check assertions here: this is not the test process. */
static void claim_child(int who, int go_fd, int out_fd)
{
    char err[512];
    store *s = store_open(g_uri, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "child %d: %s\n", who, err);
        _exit(2);
    }
    char buf;
    (void)read(go_fd, &buf, 1); /* EOF when the parent says go */
    char owner[32];
    snprintf(owner, sizeof(owner), "proc-%d", who);
    int rc = 0;
    for (;;) {
        trans_global *t = NULL;
        store_result r = store_claim_due(s, T0, RACE_LEASE, owner, &t);
        if (r == STORE_NOT_FOUND)
            break;
        if (r != STORE_OK || t == NULL || !str_same(t->owner, owner)) {
            fprintf(stderr, "child %d: claim_due %s: %s\n", who, store_result_name(r),
                    store_last_error());
            trans_free(t);
            rc = 3;
            break;
        }
        char line[128];
        int n = snprintf(line, sizeof(line), "%d %s\n", who, t->gid);
        trans_free(t);
        /* One write per line, shorter than PIPE_BUF: lines never interleave. */
        if (write(out_fd, line, (size_t)n) != n) {
            rc = 4;
            break;
        }
        /* A breath between claims lets the other processes in (SQLite's
         * busy wait backs off in milliseconds), so claims really interleave. */
        usleep(300);
    }
    store_close(s);
    _exit(rc);
}

/* Reads fd to EOF into a malloc'd string. */
static char *read_all(int fd)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

START_TEST(test_claim_due_two_processes_never_share)
{
    create_race_set();
    /* Our handle is not carried into the children: close it across fork. */
    store_close(S);
    S = NULL;

    int go[2], out[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pids[RACE_PROCS];
    for (int i = 0; i < RACE_PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(go[1]);
            close(out[0]);
            claim_child(i, go[0], out[1]);
        }
    }
    close(go[0]);
    close(out[1]);
    close(go[1]); /* go: every child's read returns EOF now */
    char *lines = read_all(out[0]);
    close(out[0]);
    for (int i = 0; i < RACE_PROCS; i++) {
        int status = 0;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "claimer process %d failed (status 0x%x)", i, status);
    }

    int claimer[RACE_TRANS];
    int per_proc[RACE_PROCS] = {0};
    for (int i = 0; i < RACE_TRANS; i++)
        claimer[i] = -1;
    int claims = 0;
    for (char *save = NULL, *line = strtok_r(lines, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int who = -1;
        char gid[64];
        ck_assert_msg(sscanf(line, "%d %63s", &who, gid) == 2 && who >= 0 && who < RACE_PROCS,
                      "bad line '%s'", line);
        record_claim(claimer, gid, who);
        per_proc[who]++;
        claims++;
    }
    free(lines);
    ck_assert_int_eq(claims, RACE_TRANS);
    fprintf(stderr, "claim race (processes): %d/%d/%d\n", per_proc[0], per_proc[1], per_proc[2]);

    S = open_store();
    check_race_result(claimer, "proc-%d");
}
END_TEST

#define RACE_THREADS 4

typedef struct claim_thread_arg {
    int who;
    int gids[RACE_TRANS]; /* indexes claimed, in order */
    int count;
    store_result error;   /* STORE_OK, or what went wrong */
} claim_thread_arg;

static void *claim_thread(void *p)
{
    claim_thread_arg *a = p;
    char owner[32];
    snprintf(owner, sizeof(owner), "thread-%d", a->who);
    for (;;) {
        trans_global *t = NULL;
        store_result r = store_claim_due(S, T0, RACE_LEASE, owner, &t);
        if (r == STORE_NOT_FOUND)
            break;
        int i = -1;
        if (r != STORE_OK || sscanf(t->gid, "race-%d", &i) != 1 || i < 0 || i >= RACE_TRANS ||
            a->count == RACE_TRANS) {
            a->error = r != STORE_OK ? r : STORE_INVALID;
            trans_free(t);
            break;
        }
        a->gids[a->count++] = i;
        trans_free(t);
        usleep(100); /* let the other threads in, as in the process race */
    }
    return NULL;
}

START_TEST(test_claim_due_threads_never_share)
{
    create_race_set();
    static claim_thread_arg args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].who = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, claim_thread, &args[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);

    int claimer[RACE_TRANS];
    for (int i = 0; i < RACE_TRANS; i++)
        claimer[i] = -1;
    int claims = 0;
    for (int w = 0; w < RACE_THREADS; w++) {
        ck_assert_msg(args[w].error == STORE_OK, "thread %d: %s", w,
                      store_result_name(args[w].error));
        for (int k = 0; k < args[w].count; k++) {
            char gid[32];
            snprintf(gid, sizeof(gid), "race-%03d", args[w].gids[k]);
            record_claim(claimer, gid, w);
            claims++;
        }
    }
    ck_assert_int_eq(claims, RACE_TRANS);
    fprintf(stderr, "claim race (threads): %d/%d/%d/%d\n", args[0].count, args[1].count,
            args[2].count, args[3].count);
    check_race_result(claimer, "thread-%d");
}
END_TEST

/* ---- touch_cron / reset_cron_times ------------------------------------------------------- */

START_TEST(test_touch_cron_owner_guard)
{
    trans_global *want = make_full_trans("touch");
    set_str(&want->owner, NULL);
    want->next_cron_time = T0;
    create_ok(want);

    /* Nobody holds it yet: an owner-guarded touch fails. */
    ASSERT_RESULT(store_touch_cron(S, "touch", "w1", T0 + 1, 0), STORE_CONFLICT);
    assert_stored(want);

    trans_free(claim_expect(T0, 1000, "w1", "touch"));
    set_str(&want->owner, "w1");
    want->next_cron_time = T0 + 1000;

    ASSERT_OK(store_touch_cron(S, "touch", "w1", T0 + 5000, 20));
    want->next_cron_time = T0 + 5000;
    want->next_cron_interval = 20;
    assert_stored(want);

    ASSERT_RESULT(store_touch_cron(S, "touch", "w2", T0 + 6000, 30), STORE_CONFLICT);
    assert_stored(want);

    /* No owner: unconditional; interval 0 keeps the interval. */
    ASSERT_OK(store_touch_cron(S, "touch", NULL, T0 + 7000, 0));
    want->next_cron_time = T0 + 7000;
    assert_stored(want);

    ASSERT_RESULT(store_touch_cron(S, "touch-missing", NULL, T0, 0), STORE_NOT_FOUND);
    ASSERT_RESULT(store_touch_cron(S, "touch-missing", "w1", T0, 0), STORE_NOT_FOUND);

    /* Finished: no longer touched, with or without owner. */
    store_status_change fin = {.status = TRANS_FAILED, .update_time = T0 + 8};
    ASSERT_OK(store_change_status(S, "touch", TRANS_PREPARED, &fin));
    set_str(&want->status, TRANS_FAILED);
    want->update_time = T0 + 8;
    ASSERT_RESULT(store_touch_cron(S, "touch", NULL, T0 + 9000, 0), STORE_CONFLICT);
    ASSERT_RESULT(store_touch_cron(S, "touch", "w1", T0 + 9000, 0), STORE_CONFLICT);
    assert_stored(want);
    trans_free(want);
}
END_TEST

static int64_t cron_of(const char *gid)
{
    trans_global *t = find_ok(gid);
    int64_t v = t->next_cron_time;
    trans_free(t);
    return v;
}

START_TEST(test_reset_cron_times)
{
    /* Six unfinished ones later than now + 1000, of three statuses. */
    const char *late[] = {"late-0", "late-1", "late-2", "late-3", "late-4", "late-5"};
    const char *st[] = {TRANS_SUBMITTED, TRANS_PREPARED, TRANS_ABORTING};
    for (int i = 0; i < 6; i++)
        create_simple(late[i], "saga", st[i % 3], T0, T0 + 100000 + i);
    create_simple("soon", "saga", TRANS_SUBMITTED, T0, T0 + 1000); /* not later than */
    create_simple("past", "saga", TRANS_SUBMITTED, T0, T0 - 5);
    create_simple("fin-s", "saga", TRANS_SUCCEED, T0, T0 + 900000);
    create_simple("fin-f", "saga", TRANS_FAILED, T0, T0 + 900000);

    int moved = -1;
    bool more = false;
    ASSERT_OK(store_reset_cron_times(S, T0, 1000, 4, &moved, &more));
    ck_assert_int_eq(moved, 4);
    ck_assert(more);
    ASSERT_OK(store_reset_cron_times(S, T0, 1000, 4, &moved, &more));
    ck_assert_int_eq(moved, 2);
    ck_assert(!more);
    ASSERT_OK(store_reset_cron_times(S, T0, 1000, 4, &moved, &more));
    ck_assert_int_eq(moved, 0);
    ck_assert(!more);

    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(cron_of(late[i]), T0);
    ck_assert_int_eq(cron_of("soon"), T0 + 1000);
    ck_assert_int_eq(cron_of("past"), T0 - 5);
    ck_assert_int_eq(cron_of("fin-s"), T0 + 900000);
    ck_assert_int_eq(cron_of("fin-f"), T0 + 900000);

    /* Exactly limit qualify: all moved, nothing remains. */
    for (int i = 0; i < 3; i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "exact-%d", i);
        create_simple(gid, "saga", TRANS_SUBMITTED, T0, T0 + 50000);
    }
    ASSERT_OK(store_reset_cron_times(S, T0 + 10, 10000, 3, &moved, &more));
    ck_assert_int_eq(moved, 3);
    ck_assert(!more);
    ck_assert_int_eq(cron_of("exact-2"), T0 + 10);

    ASSERT_RESULT(store_reset_cron_times(S, T0, 0, 0, &moved, &more), STORE_INVALID);
}
END_TEST

/* ---- delete_finished (retention) -------------------------------------------- */

static void create_finished(const char *gid, const char *status, int64_t finish_time)
{
    trans_global *t = make_trans(gid, "saga", status, T0, T0 + 1000);
    t->finish_time = finish_time;
    add_branch(t, "01", "action", "http://svc/a", "{}", 2, "succeed", T0);
    create_ok(t);
    trans_free(t);
}

START_TEST(test_delete_finished)
{
    create_finished("del-old-s", TRANS_SUCCEED, T0 + 1000);
    create_finished("del-old-f", TRANS_FAILED, T0 + 2000);
    create_finished("del-new", TRANS_SUCCEED, T0 + 9000);
    create_finished("del-running", TRANS_SUBMITTED, 0);
    create_finished("del-no-finish-time", TRANS_SUCCEED, 0);
    int n = -1;
    ASSERT_OK(store_delete_finished(S, T0 + 5000, 1, &n));
    ck_assert_int_eq(n, 1); /* the limit holds */
    ASSERT_OK(store_delete_finished(S, T0 + 5000, 100, &n));
    ck_assert_int_eq(n, 1);
    ASSERT_OK(store_delete_finished(S, T0 + 5000, 100, &n));
    ck_assert_int_eq(n, 0);
    const char *gone[] = {"del-old-s", "del-old-f"};
    for (size_t i = 0; i < 2; i++) {
        trans_global *t = NULL;
        ASSERT_RESULT(store_find_trans(S, gone[i], &t), STORE_NOT_FOUND);
    }
    const char *kept[] = {"del-new", "del-running", "del-no-finish-time"};
    for (size_t i = 0; i < 3; i++) {
        trans_global *k = find_ok(kept[i]);
        ck_assert_int_eq((int)k->branch_count, 1);
        trans_free(k);
    }
    /* the branches went with their transaction: the gid is free again */
    create_finished("del-old-s", TRANS_SUCCEED, T0 + 1000);
    trans_global *again = find_ok("del-old-s");
    ck_assert_int_eq((int)again->branch_count, 1);
    trans_free(again);
    ASSERT_RESULT(store_delete_finished(S, T0, 0, &n), STORE_INVALID);
}
END_TEST

/* ---- list_trans ------------------------------------------------------------------------- */

/* Pages through list_trans with filter f and limit; returns the gids in the
 * order returned (malloc'd array of malloc'd strings, *n of them), checking
 * the page invariants on the way. */
static char **list_all(const store_filter *f, int limit, size_t *n)
{
    size_t cap = 64;
    char **gids = malloc(cap * sizeof(*gids));
    ck_assert_ptr_nonnull(gids);
    *n = 0;
    char *cursor = NULL;
    for (int page = 0;; page++) {
        ck_assert_msg(page < 10000, "paging does not end");
        store_trans_list l = {0};
        char *next = NULL;
        ASSERT_OK(store_list_trans(S, f, cursor, limit, &l, &next));
        ck_assert_ptr_nonnull(next);
        ck_assert_msg(l.count <= (size_t)limit, "page of %zu > limit %d", l.count, limit);
        /* A page that is not the last is full; the last may be full too. */
        if (next[0] != '\0')
            ck_assert_msg(l.count == (size_t)limit, "short page (%zu of %d) with a next cursor",
                          l.count, limit);
        for (size_t i = 0; i < l.count; i++) {
            ck_assert_int_eq(l.items[i]->branch_count, 0);
            if (*n == cap) {
                cap *= 2;
                gids = realloc(gids, cap * sizeof(*gids));
                ck_assert_ptr_nonnull(gids);
            }
            gids[(*n)++] = strdup(l.items[i]->gid);
        }
        store_trans_list_clear(&l);
        free(cursor);
        cursor = next;
        if (cursor[0] == '\0')
            break;
    }
    free(cursor);
    return gids;
}

static void free_gids(char **gids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(gids[i]);
    free(gids);
}

/* The filter dataset: LIST_ROWS transactions, created in index order. */
#define LIST_ROWS 21
static const char *const list_types[] = {"saga", "tcc", "msg"};
static const char *const list_statuses[] = {TRANS_PREPARED, TRANS_SUBMITTED, TRANS_SUCCEED,
                                            TRANS_FAILED};

static void list_row(int i, char *gid, size_t len, const char **type, const char **status,
                     int64_t *create_time)
{
    snprintf(gid, len, "list-%02d", i);
    *type = list_types[i % 3];
    *status = list_statuses[i % 4];
    *create_time = T0 + (int64_t)i * 1000;
}

static void create_list_rows(void)
{
    for (int i = 0; i < LIST_ROWS; i++) {
        char gid[32];
        const char *type, *status;
        int64_t ct;
        list_row(i, gid, sizeof(gid), &type, &status, &ct);
        create_simple(gid, type, status, ct, ct);
    }
}

static int row_matches(int i, const store_filter *f)
{
    char gid[32];
    const char *type, *status;
    int64_t ct;
    list_row(i, gid, sizeof(gid), &type, &status, &ct);
    return (f->gid == NULL || strcmp(f->gid, gid) == 0) &&
           (f->status == NULL || strcmp(f->status, status) == 0) &&
           (f->trans_type == NULL || strcmp(f->trans_type, type) == 0) &&
           (f->create_time_start == 0 || ct >= f->create_time_start) &&
           (f->create_time_end == 0 || ct <= f->create_time_end);
}

/* Lists with f at limit and compares with the dataset, newest first. */
static void check_listing(const store_filter *f, int limit, int expect_count)
{
    size_t n = 0;
    char **got = list_all(f, limit, &n);
    size_t k = 0;
    for (int i = LIST_ROWS - 1; i >= 0; i--) {
        if (!row_matches(i, f))
            continue;
        char gid[32];
        snprintf(gid, sizeof(gid), "list-%02d", i);
        ck_assert_msg(k < n, "limit %d: listing ends before %s", limit, gid);
        ck_assert_msg(strcmp(got[k], gid) == 0, "limit %d: item %zu is %s, want %s", limit, k,
                      got[k], gid);
        k++;
    }
    ck_assert_msg(k == n, "limit %d: %zu items, want %zu", limit, n, k);
    if (expect_count >= 0)
        ck_assert_int_eq((int)n, expect_count);
    free_gids(got, n);
}

START_TEST(test_list_paging_newest_first)
{
    /* Empty store: one empty last page. */
    store_trans_list l = {0};
    char *next = NULL;
    ASSERT_OK(store_list_trans(S, NULL, NULL, 10, &l, &next));
    ck_assert_int_eq(l.count, 0);
    ck_assert_str_eq(next, "");
    free(next);
    store_trans_list_clear(&l);

    create_list_rows();
    store_filter all = {0};
    /* 21 rows: 7 divides it, so the third page is full and must be the last. */
    int limits[] = {1, 2, 7, 20, 21, 22, 1000};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        check_listing(&all, limits[i], LIST_ROWS);

    /* Items carry the row's fields (not the branches). */
    ASSERT_OK(store_list_trans(S, NULL, "", 3, &l, &next));
    ck_assert_int_eq(l.count, 3);
    ck_assert_str_ne(next, "");
    ck_assert_str_eq(l.items[0]->gid, "list-20");
    ck_assert_str_eq(l.items[0]->trans_type, list_types[20 % 3]);
    ck_assert_str_eq(l.items[0]->status, list_statuses[20 % 4]);
    ck_assert_pstr_eq(l.items[0]->protocol, "http");
    ck_assert_int_eq(l.items[0]->create_time, T0 + 20000);
    ck_assert_int_eq(l.items[0]->next_cron_time, T0 + 20000);
    ck_assert_int_eq(l.items[0]->next_cron_interval, 10);
    ck_assert_int_eq(l.items[0]->branch_count, 0);
    store_trans_list_clear(&l);
    ck_assert_ptr_null(l.items);
    free(next);
}
END_TEST

START_TEST(test_list_full_row_fields)
{
    trans_global *want = make_full_trans("lf-full");
    create_ok(want);
    store_trans_list l = {0};
    char *next = NULL;
    ASSERT_OK(store_list_trans(S, NULL, NULL, 5, &l, &next));
    ck_assert_int_eq(l.count, 1);
    ck_assert_str_eq(next, "");
    assert_trans_eq(want, l.items[0], 0);
    ck_assert_int_eq(l.items[0]->branch_count, 0);
    store_trans_list_clear(&l);
    free(next);
    trans_free(want);
}
END_TEST

START_TEST(test_list_filters)
{
    create_list_rows();
    const int64_t t5 = T0 + 5000, t12 = T0 + 12000;
    struct {
        store_filter f;
        int count;
    } cases[] = {
        {{.gid = "list-07"}, 1},
        {{.gid = "list-99"}, 0},
        {{.status = TRANS_SUBMITTED}, 5},         /* 1,5,9,13,17 */
        {{.trans_type = "msg"}, 7},               /* 2,5,...,20 */
        {{.create_time_start = t5}, 16},          /* 5..20 */
        {{.create_time_end = t5}, 6},             /* 0..5 */
        {{.create_time_start = t5, .create_time_end = t12}, 8},
        {{.create_time_start = t5, .create_time_end = t5}, 1},
        {{.status = TRANS_PREPARED, .trans_type = "saga"}, 2},        /* 0, 12 */
        {{.trans_type = "tcc", .create_time_start = t5, .create_time_end = t12}, 2}, /* 7, 10 */
        {{.status = TRANS_FAILED, .trans_type = "saga", .create_time_start = T0}, 2}, /* 3, 15 */
        {{.gid = "list-09", .status = TRANS_SUBMITTED, .trans_type = "saga",
          .create_time_start = t5, .create_time_end = t12}, 1},
        {{.gid = "list-09", .status = TRANS_PREPARED}, 0},
        {{.status = "no-such-status"}, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_listing(&cases[i].f, 1000, cases[i].count);
        check_listing(&cases[i].f, 2, cases[i].count);
    }
}
END_TEST

START_TEST(test_list_invalid_arguments)
{
    create_simple("inv", "saga", TRANS_PREPARED, T0, T0);
    int bad_limits[] = {0, -1, 1001};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
        store_trans_list l = {0};
        char *next = (char *)"sentinel";
        ASSERT_RESULT(store_list_trans(S, NULL, NULL, bad_limits[i], &l, &next), STORE_INVALID);
        ck_assert_ptr_null(next);
        ck_assert_int_eq(l.count, 0);
        ck_assert_msg(store_last_error()[0] != '\0', "INVALID without error text");
    }
    /* A cursor this store never produced. */
    store_trans_list l = {0};
    char *next = NULL;
    ASSERT_RESULT(store_list_trans(S, NULL, "not a cursor!", 10, &l, &next), STORE_INVALID);
    ck_assert_ptr_null(next);
    ck_assert_int_eq(l.count, 0);
}
END_TEST

START_TEST(test_list_stable_while_creating)
{
    for (int i = 0; i < 10; i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "st-%02d", i);
        create_simple(gid, "saga", TRANS_SUBMITTED, T0 + i, T0);
    }
    int seen[10] = {0};
    int last_seen = 10; /* originals come newest first: st-09 .. st-00 */
    char *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        store_trans_list l = {0};
        char *next = NULL;
        ASSERT_OK(store_list_trans(S, NULL, cursor, 4, &l, &next));
        for (size_t i = 0; i < l.count; i++) {
            int k = -1;
            if (sscanf(l.items[i]->gid, "st-%d", &k) == 1) {
                ck_assert_msg(k >= 0 && k < 10 && seen[k] == 0, "%s twice", l.items[i]->gid);
                ck_assert_msg(k < last_seen, "%s out of order", l.items[i]->gid);
                seen[k] = 1;
                last_seen = k;
            }
        }
        store_trans_list_clear(&l);
        /* New transactions appear between pages. */
        char gid[32];
        snprintf(gid, sizeof(gid), "new-%02d", page);
        create_simple(gid, "saga", TRANS_SUBMITTED, T0 + 100 + page, T0);
        free(cursor);
        cursor = next;
        if (cursor[0] == '\0')
            break;
    }
    free(cursor);
    for (int k = 0; k < 10; k++)
        ck_assert_msg(seen[k], "st-%02d never listed", k);
}
END_TEST

/* ---- key/value -------------------------------------------------------------------------- */

static store_kv_list kv_get_ok(const char *cat, const char *key)
{
    store_kv_list l = {0};
    ASSERT_OK(store_kv_get(S, cat, key, &l));
    ck_assert_int_eq(l.count, 1);
    ck_assert_str_eq(l.items[0].cat, cat);
    ck_assert_str_eq(l.items[0].key, key);
    return l;
}

START_TEST(test_kv_crud_and_versions)
{
    int64_t before = dtmq_now_ms();
    ASSERT_OK(store_kv_create(S, "topics", "orders", "[{\"url\":\"http://a\",\"remark\":\"\"}]"));
    int64_t after = dtmq_now_ms();
    ASSERT_RESULT(store_kv_create(S, "topics", "orders", "other"), STORE_DUPLICATE);

    store_kv_list l = kv_get_ok("topics", "orders");
    ck_assert_str_eq(l.items[0].value, "[{\"url\":\"http://a\",\"remark\":\"\"}]");
    ck_assert_int_eq(l.items[0].version, 1);
    ck_assert_int_ge(l.items[0].create_time, before);
    ck_assert_int_le(l.items[0].create_time, after);
    ck_assert_int_eq(l.items[0].update_time, l.items[0].create_time);
    int64_t created = l.items[0].create_time;
    store_kv_list_clear(&l);
    ck_assert_ptr_null(l.items);

    /* Same key in another category is another entry. */
    ASSERT_OK(store_kv_create(S, "other", "orders", "x"));

    ASSERT_OK(store_kv_update(S, "topics", "orders", "v2", 1));
    l = kv_get_ok("topics", "orders");
    ck_assert_str_eq(l.items[0].value, "v2");
    ck_assert_int_eq(l.items[0].version, 2);
    ck_assert_int_eq(l.items[0].create_time, created);
    ck_assert_int_ge(l.items[0].update_time, created);
    store_kv_list_clear(&l);

    ASSERT_RESULT(store_kv_update(S, "topics", "orders", "stale", 1), STORE_CONFLICT);
    ASSERT_RESULT(store_kv_update(S, "topics", "orders", "future", 3), STORE_CONFLICT);
    ASSERT_OK(store_kv_update(S, "topics", "orders", NULL, 2)); /* NULL value stores "" */
    l = kv_get_ok("topics", "orders");
    ck_assert_str_eq(l.items[0].value, "");
    ck_assert_int_eq(l.items[0].version, 3);
    store_kv_list_clear(&l);
    ASSERT_RESULT(store_kv_update(S, "topics", "nope", "v", 1), STORE_NOT_FOUND);

    l = kv_get_ok("other", "orders");
    ck_assert_str_eq(l.items[0].value, "x");
    ck_assert_int_eq(l.items[0].version, 1);
    store_kv_list_clear(&l);

    ASSERT_OK(store_kv_delete(S, "topics", "orders"));
    store_kv_list none = {0};
    ASSERT_RESULT(store_kv_get(S, "topics", "orders", &none), STORE_NOT_FOUND);
    ck_assert_int_eq(none.count, 0);
    ASSERT_RESULT(store_kv_delete(S, "topics", "orders"), STORE_NOT_FOUND);
    ASSERT_RESULT(store_kv_update(S, "topics", "orders", "v", 3), STORE_NOT_FOUND);
    /* Deleting one category's key leaves the other's. */
    l = kv_get_ok("other", "orders");
    store_kv_list_clear(&l);

    /* Created again after delete: a fresh entry at version 1. */
    ASSERT_OK(store_kv_create(S, "topics", "orders", "again"));
    l = kv_get_ok("topics", "orders");
    ck_assert_int_eq(l.items[0].version, 1);
    ck_assert_str_eq(l.items[0].value, "again");
    store_kv_list_clear(&l);

    ASSERT_RESULT(store_kv_create(S, "", "k", "v"), STORE_INVALID);
    ASSERT_RESULT(store_kv_create(S, "c", NULL, "v"), STORE_INVALID);
}
END_TEST

#define KV_THREADS 4
#define KV_INCREMENTS 25

/* Each thread adds KV_INCREMENTS to a counter with get + CAS update, retrying
 * on conflict; lost updates would show in the final value. */
static void *kv_counter_thread(void *p)
{
    int *failures = p;
    for (int done = 0; done < KV_INCREMENTS;) {
        store_kv_list l = {0};
        if (store_kv_get(S, "counter", "n", &l) != STORE_OK) {
            (*failures)++;
            return NULL;
        }
        char value[32];
        snprintf(value, sizeof(value), "%ld", strtol(l.items[0].value, NULL, 10) + 1);
        store_result r = store_kv_update(S, "counter", "n", value, l.items[0].version);
        store_kv_list_clear(&l);
        if (r == STORE_OK)
            done++;
        else if (r != STORE_CONFLICT) {
            (*failures)++;
            return NULL;
        }
    }
    return NULL;
}

START_TEST(test_kv_cas_no_lost_updates)
{
    ASSERT_OK(store_kv_create(S, "counter", "n", "0"));
    pthread_t th[KV_THREADS];
    int failures[KV_THREADS] = {0};
    for (int i = 0; i < KV_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, kv_counter_thread, &failures[i]), 0);
    for (int i = 0; i < KV_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(failures[i], 0);
    }
    store_kv_list l = kv_get_ok("counter", "n");
    char want[16];
    snprintf(want, sizeof(want), "%d", KV_THREADS * KV_INCREMENTS);
    ck_assert_str_eq(l.items[0].value, want);
    ck_assert_int_eq(l.items[0].version, 1 + KV_THREADS * KV_INCREMENTS);
    store_kv_list_clear(&l);
}
END_TEST

/* Scans cat at limit; checks keys come as want[0..n) in order, pages full
 * except the last, and next_cursor "" only on the last. */
static void check_scan(const char *cat, int limit, const char *const *want, size_t n)
{
    size_t k = 0;
    char *cursor = NULL;
    for (int page = 0;; page++) {
        ck_assert_msg(page < 1000, "scan does not end");
        store_kv_list l = {0};
        char *next = NULL;
        ASSERT_OK(store_kv_scan(S, cat, cursor, limit, &l, &next));
        ck_assert_ptr_nonnull(next);
        ck_assert_msg(l.count <= (size_t)limit, "page larger than limit");
        if (next[0] != '\0')
            ck_assert_msg(l.count == (size_t)limit, "short page with a next cursor");
        for (size_t i = 0; i < l.count; i++, k++) {
            ck_assert_msg(k < n, "limit %d: extra key %s", limit, l.items[i].key);
            ck_assert_str_eq(l.items[i].cat, cat);
            ck_assert_msg(strcmp(l.items[i].key, want[k]) == 0, "limit %d: key %zu is %s, want %s",
                          limit, k, l.items[i].key, want[k]);
            ck_assert_int_eq(l.items[i].version, 1);
        }
        store_kv_list_clear(&l);
        free(cursor);
        cursor = next;
        if (cursor[0] == '\0')
            break;
    }
    free(cursor);
    ck_assert_msg(k == n, "limit %d: %zu keys, want %zu", limit, k, n);
}

START_TEST(test_kv_scan_paging_in_key_order)
{
    static const char *const sorted[] = {"a",     "a-b", "a.b", "b", "k00", "k01", "k02",
                                         "k10",   "k2",  "kA",  "ka", "z",  "zz"};
    size_t n = sizeof(sorted) / sizeof(sorted[0]);
    /* Created in a scrambled order. */
    for (size_t i = 0; i < n; i++) {
        size_t j = (i * 5) % n;
        char value[32];
        snprintf(value, sizeof(value), "v-%s", sorted[j]);
        ASSERT_OK(store_kv_create(S, "topics", sorted[j], value));
    }
    ASSERT_OK(store_kv_create(S, "other", "b0", "x"));
    ASSERT_OK(store_kv_create(S, "topicsX", "a0", "x"));

    int limits[] = {1, 2, 4, 13, 14, 1000};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        check_scan("topics", limits[i], sorted, n);
    check_scan("empty-cat", 5, NULL, 0);

    store_kv_list l = {0};
    char *next = NULL;
    ASSERT_OK(store_kv_scan(S, "topics", NULL, 2, &l, &next));
    ck_assert_str_eq(l.items[0].value, "v-a");
    ck_assert_str_eq(l.items[1].value, "v-a-b");
    store_kv_list_clear(&l);
    free(next);
    ASSERT_RESULT(store_kv_scan(S, "topics", NULL, 0, &l, &next), STORE_INVALID);
    ASSERT_RESULT(store_kv_scan(S, "topics", NULL, 1001, &l, &next), STORE_INVALID);
    ASSERT_RESULT(store_kv_scan(S, "", NULL, 10, &l, &next), STORE_INVALID);
}
END_TEST

/* ---- drop_all ---------------------------------------------------------------------------- */

START_TEST(test_drop_all_empties_everything)
{
    trans_global *t = make_full_trans("drop-me");
    create_ok(t);
    ASSERT_OK(store_kv_create(S, "topics", "t", "v"));
    ASSERT_OK(store_drop_all(S));

    trans_global *got = NULL;
    ASSERT_RESULT(store_find_trans(S, "drop-me", &got), STORE_NOT_FOUND);
    store_kv_list l = {0};
    ASSERT_RESULT(store_kv_get(S, "topics", "t", &l), STORE_NOT_FOUND);
    store_trans_list tl = {0};
    char *next = NULL;
    ASSERT_OK(store_list_trans(S, NULL, NULL, 10, &tl, &next));
    ck_assert_int_eq(tl.count, 0);
    ck_assert_str_eq(next, "");
    store_trans_list_clear(&tl);
    free(next);
    claim_expect_none(T0 + 1000000000);

    /* The same gid can be created again, branches and all. */
    create_ok(t);
    assert_stored(t);
    trans_free(t);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

START_TEST(test_count_by_status)
{
    store_status_counts c;
    ck_assert_int_eq(store_count_by_status(S, &c), STORE_OK);
    ck_assert_int_eq(c.prepared + c.submitted + c.aborting + c.succeed + c.failed, 0);
    const char *statuses[] = {"prepared", "submitted", "submitted", "aborting", "succeed",
                              "succeed", "succeed", "failed"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char gid[32];
        snprintf(gid, sizeof(gid), "count-%zu", i);
        create_simple(gid, "saga", statuses[i], 1000 + (int64_t)i, 0);
    }
    ck_assert_int_eq(store_count_by_status(S, &c), STORE_OK);
    ck_assert_int_eq(c.prepared, 1);
    ck_assert_int_eq(c.submitted, 2);
    ck_assert_int_eq(c.aborting, 1);
    ck_assert_int_eq(c.succeed, 3);
    ck_assert_int_eq(c.failed, 1);
    store_status_change ch = {.status = "failed", .update_time = 5000};
    ck_assert_int_eq(store_change_status(S, "count-1", "submitted", &ch), STORE_OK);
    ck_assert_int_eq(store_count_by_status(S, &c), STORE_OK);
    ck_assert_int_eq(c.submitted, 1);
    ck_assert_int_eq(c.failed, 2);
}
END_TEST


static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    /* every test on a fresh store; generous time for a remote backend */
    test_group g = {.suite = s, .timeout_s = 120, .setup = setup, .teardown = teardown};
    /* open */
    test_add(&g, test_open_bad_uris);
    test_add(&g, test_open_driver_and_ping);
    test_add(&g, test_visible_across_handles);

    /* trans */
    test_add(&g, test_create_find_roundtrip);
    test_add(&g, test_create_duplicate_changes_nothing);
    test_add(&g, test_find_missing_and_invalid);
    test_add(&g, test_create_many_branches_in_order);
    test_add(&g, test_change_status_sets_only_given_fields);
    test_add(&g, test_change_status_same_status_is_guarded_update);
    test_add(&g, test_change_status_conflict_and_not_found);
    test_add(&g, test_change_status_race_one_winner);
    test_add(&g, test_append_branches_in_order);
    test_add(&g, test_append_branches_guards);
    test_add(&g, test_update_branches_sets_result_fields_only);
    test_add(&g, test_update_branches_guards);
    test_add(&g, test_update_branches_if_guards_the_branch);
    test_add(&g, test_drop_all_empties_everything);

    /* cron */
    test_add(&g, test_claim_due_order_and_filter);
    test_add(&g, test_claim_due_lease_expiry);
    test_add(&g, test_claim_due_empty);
    test_add(&g, test_claim_due_two_processes_never_share);
    test_add(&g, test_claim_due_threads_never_share);
    test_add(&g, test_touch_cron_owner_guard);
    test_add(&g, test_reset_cron_times);
    test_add(&g, test_delete_finished);

    /* list */
    test_add(&g, test_list_paging_newest_first);
    test_add(&g, test_list_full_row_fields);
    test_add(&g, test_count_by_status);
    test_add(&g, test_list_filters);
    test_add(&g, test_list_invalid_arguments);
    test_add(&g, test_list_stable_while_creating);

    /* kv */
    test_add(&g, test_kv_crud_and_versions);
    test_add(&g, test_kv_cas_no_lost_updates);
    test_add(&g, test_kv_scan_paging_in_key_order);
    return s;
}

/* DTMQ_TEST_STORE, else an SQLite file in a new temporary directory. */
static int choose_store(void)
{
    const char *env = getenv("DTMQ_TEST_STORE");
    if (env != NULL && env[0] != '\0') {
        snprintf(g_uri, sizeof(g_uri), "%s", env);
        return 0;
    }
    snprintf(g_tmpdir, sizeof(g_tmpdir), "%s/dtmq-store-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(g_tmpdir) == NULL) {
        fprintf(stderr, "conformance: mkdtemp %s: %s\n", g_tmpdir, strerror(errno));
        g_tmpdir[0] = '\0';
        return -1;
    }
    snprintf(g_uri, sizeof(g_uri), "sqlite:%s/conformance.db", g_tmpdir);
    return 0;
}

static void remove_tmpdir(void)
{
    if (g_tmpdir[0] == '\0')
        return;
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/conformance.db%s", g_tmpdir, suffixes[i]);
        unlink(path);
    }
    rmdir(g_tmpdir);
}

int main(void)
{
    if (choose_store() != 0)
        return 1;
    /* Fail loudly, before any case, if the store is not there at all. */
    char err[512] = "";
    store *probe = store_open(g_uri, err, sizeof(err));
    if (probe == NULL) {
        fprintf(stderr, "conformance: FAILED: cannot open store %s: %s\n", g_uri, err);
        remove_tmpdir();
        return 1;
    }
    printf("store conformance: %s (driver %s)\n", store_display_uri(probe), store_driver(probe));
    store_close(probe);

    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tmpdir();
    return failed == 0 ? 0 : 1;
}
