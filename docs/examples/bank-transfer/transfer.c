/*
 * transfer.c — the client of the bank-transfer example (README.md next to
 * this file): submits one saga through dtmq with the C SDK,
 *
 *   step 1  TransOut(bank1, FROM, AMOUNT)   compensation TransOutRevert
 *   step 2  TransIn (bank2, TO,   AMOUNT)   compensation TransInRevert
 *
 * with wait_result, so dtmq answers once the saga has ended, and says how it
 * ended. Exit status: 0 succeeded, 1 failed (every step that ran was
 * compensated), 2 not known yet (dtmq did not answer, or a step is being
 * retried: dtmq finishes the saga if it got it; `dtmq query GID` tells), 64
 * bad arguments.
 *
 *   transfer --dtm http://127.0.0.1:36789/api/dtmsvr \
 *            --bank1 http://127.0.0.1:8081/api --bank2 http://127.0.0.1:8082/api \
 *            --from A --to B --amount 30 [--gid GID]
 */
#define _POSIX_C_SOURCE 200809L
#include <dtmq/dtmq_client.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example_http.h"

typedef struct args {
    const char *dtm, *bank1, *bank2, *from, *to, *gid;
    long amount;
} args;

static void usage(FILE *to)
{
    fprintf(to, "usage: transfer [--dtm URL] [--bank1 URL] [--bank2 URL] [--from ACCOUNT]\n"
                "                [--to ACCOUNT] [--amount N] [--gid GID]\n"
                "  --dtm URL      dtmq's API (default http://127.0.0.1:36789/api/dtmsvr)\n"
                "  --bank1 URL    the paying bank's API (default http://127.0.0.1:8081/api)\n"
                "  --bank2 URL    the receiving bank's API (default http://127.0.0.1:8082/api)\n"
                "  --from, --to   accounts (default A and B); --amount N (default 30)\n"
                "  --gid GID      the saga's gid (default: a fresh one from dtmq)\n");
}

/* Stores the value v of option a in x: 0, or -1 when a is unknown or v bad. */
static int set_option(args *x, const char *a, const char *v)
{
    struct {
        const char *name;
        const char **field;
    } strs[] = {{"--dtm", &x->dtm},   {"--bank1", &x->bank1}, {"--bank2", &x->bank2},
                {"--from", &x->from}, {"--to", &x->to},       {"--gid", &x->gid}};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strcmp(a, strs[i].name) == 0) {
            *strs[i].field = v;
            return 0;
        }
    }
    if (strcmp(a, "--amount") == 0)
        return ex_parse_long(v, 1, 1000000000, &x->amount);
    return -1;
}

static int parse_args(int argc, char **argv, args *x)
{
    *x = (args){.dtm = "http://127.0.0.1:36789/api/dtmsvr", .bank1 = "http://127.0.0.1:8081/api",
                .bank2 = "http://127.0.0.1:8082/api", .from = "A", .to = "B", .amount = 30};
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc || set_option(x, argv[i], argv[i + 1]) != 0) {
            fprintf(stderr, "transfer: bad option %s\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

/* Adds one saga step: action and compensation at base+path, body for account. */
static void add_step(dtmq_trans *saga, const char *base, const char *action,
                     const char *compensate, const char *account, long amount)
{
    char a[512], c[512], body[256];
    snprintf(a, sizeof(a), "%s/%s", base, action);
    snprintf(c, sizeof(c), "%s/%s", base, compensate);
    json_t *j = json_pack("{s:s,s:I}", "account", account, "amount", (json_int_t)amount);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    snprintf(body, sizeof(body), "%s", text != NULL ? text : "");
    free(text);
    json_decref(j);
    dtmq_saga_add(saga, a, c, body); /* an error is kept in saga, reported by submit */
}

/* The gid to use: --gid, or a fresh one from dtmq. 0, or an SDK error code. */
static int pick_gid(dtmq_client *c, const args *x, char *gid, size_t len, char *err,
                    size_t errlen)
{
    if (x->gid != NULL) {
        snprintf(gid, len, "%s", x->gid);
        return DTMQ_OK;
    }
    return dtmq_new_gid(c, gid, len, err, errlen);
}

/* Prints how it ended and returns the exit status. */
static int report(const char *gid, int rc, const char *err)
{
    if (rc == DTMQ_OK) {
        printf("result: succeeded\n");
        return 0;
    }
    if (rc == DTMQ_ERR_FAILURE) {
        printf("result: failed, every step that ran was compensated (%s)\n", err);
        return 1;
    }
    if (rc == DTMQ_ERR_UNREACHABLE) {
        printf("result: unknown, dtmq did not answer (%s); if dtmq got the saga it "
               "finishes it: dtmq query %s\n", err, gid);
        return 2;
    }
    if (rc == DTMQ_ERR_INVALID) {
        printf("result: not submitted: %s\n", err);
        return 64;
    }
    /* 500 or 425: a step answered an error or did not answer; the saga goes on */
    printf("result: not finished yet (%s: %s); dtmq keeps retrying: dtmq query %s\n",
           dtmq_error_name(rc), err, gid);
    return 2;
}

/* Builds and submits the saga; returns the exit status. */
static int run(dtmq_client *c, const args *x)
{
    char gid[129], err[1024] = "";
    int rc = pick_gid(c, x, gid, sizeof(gid), err, sizeof(err));
    if (rc != DTMQ_OK) {
        fprintf(stderr, "transfer: no gid: %s: %s\n", dtmq_error_name(rc), err);
        return 2;
    }
    printf("gid: %s\n", gid);
    printf("saga: TransOut(bank1, %s, %ld) -> TransIn(bank2, %s, %ld)\n", x->from, x->amount,
           x->to, x->amount);
    dtmq_trans *saga = dtmq_saga_new(gid);
    if (saga == NULL) {
        fprintf(stderr, "transfer: out of memory\n");
        return 2;
    }
    add_step(saga, x->bank1, "TransOut", "TransOutRevert", x->from, x->amount);
    add_step(saga, x->bank2, "TransIn", "TransInRevert", x->to, x->amount);
    dtmq_trans_set_wait_result(saga, 1); /* answer when the saga has ended */
    rc = dtmq_submit(c, saga, err, sizeof(err));
    dtmq_trans_free(saga);
    return report(gid, rc, err);
}

int main(int argc, char **argv)
{
    args x;
    if (parse_args(argc, argv, &x) != 0) {
        usage(stderr);
        return 64;
    }
    char err[512];
    /* wait_result makes submit last as long as the saga: allow 30 s */
    dtmq_client_options o = {.server = x.dtm, .timeout_ms = 30000};
    dtmq_client *c = dtmq_client_new(&o, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "transfer: %s\n", err);
        return 64;
    }
    int status = run(c, &x);
    dtmq_client_free(c);
    return status;
}
