/*
 * attempts.c — a bounded record of every call attempt of a transaction, kept
 * in its ext_data so the admin page can draw a timing diagram without a
 * store write of its own: a pass collects its attempts in memory and they
 * ride along with the write that ends the pass (the next-retry write, or the
 * final status change). Beside the attempts, ext_data holds retry_count
 * (passes that ended with an unknown result) and last_error (while a branch
 * keeps failing). ext_data.attempts keeps the last ATTEMPTS_KEPT:
 *   {"branch_id","op","n","start","end","outcome","status","error"}
 * n counts the attempts of that branch op (1 = first call); start/end are ms
 * since the epoch; status is the HTTP status (0: none, e.g. Kafka or no
 * answer); error is what the call said when it did not succeed.
 */
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "engine_internal.h"

#define ATTEMPTS_KEPT 64

static json_t *stored_ext(const active *a)
{
    json_t *ext = a->t->ext_data ? json_loads(a->t->ext_data, 0, NULL) : NULL;
    if (!json_is_object(ext)) {
        json_decref(ext);
        ext = json_object();
    }
    return ext;
}

/* How many attempts of (branch_id, op) are already known. */
static int attempts_of(json_t *list, const char *branch_id, const char *op)
{
    int n = 0;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
        if (strcmp(json_string_value(json_object_get(it, "branch_id")), branch_id) == 0 &&
            strcmp(json_string_value(json_object_get(it, "op")), op) == 0)
            n++;
    return n;
}

void attempts_record(active *a, const event *ev)
{
    if (a->attempts == NULL)
        a->attempts = json_array();
    const char *branch_id = "00", *op = trans_global_mode(a->t) == TRANS_MODE_MSG ? "msg" : "resume";
    if (ev->branch >= 0 && (size_t)ev->branch < a->t->branch_count) {
        branch_id = a->t->branches[ev->branch].branch_id;
        op = a->t->branches[ev->branch].op;
    }
    json_t *ext = stored_ext(a);
    int n = attempts_of(json_object_get(ext, "attempts"), branch_id, op) +
            attempts_of(a->attempts, branch_id, op) + 1;
    json_decref(ext);
    json_t *rec = json_pack("{s:s, s:s, s:i, s:I, s:I, s:s, s:i}", "branch_id", branch_id, "op", op,
                            "n", n, "start", (json_int_t)(ev->started_ms ? ev->started_ms : ev->finished_ms),
                            "end", (json_int_t)ev->finished_ms, "outcome",
                            dispatch_outcome_name(ev->outcome), "status", ev->http_status);
    if (rec && ev->outcome != DISPATCH_SUCCESS && ev->text)
        json_object_set_new(rec, "error", json_string(ev->text));
    if (rec)
        json_array_append_new(a->attempts, rec);
    char labels[256], model[32], bid[48], bop[48];
    snprintf(labels, sizeof(labels), "model=\"%s\",branchid=\"%s\",branchtype=\"%s\",status=\"%s\"",
             metrics_label(a->t->trans_type, model, sizeof(model)), metrics_label(branch_id, bid, sizeof(bid)),
             metrics_label(op, bop, sizeof(bop)), ev->outcome == DISPATCH_SUCCESS ? "OK" : "FAIL");
    metrics_count("dtm_branch_process_total", labels, 1);
}

char *attempts_ext_data(const active *a, int count_retry, const char *last_error,
                        int64_t *retry_count)
{
    json_t *ext = stored_ext(a);
    json_t *rc = json_object_get(ext, "retry_count");
    *retry_count = json_is_integer(rc) ? json_integer_value(rc) : 0;
    if (count_retry)
        (*retry_count)++;
    json_object_set_new(ext, "retry_count", json_integer(*retry_count));
    if (last_error)
        json_object_set_new(ext, "last_error", json_string(last_error));
    else
        json_object_del(ext, "last_error");
    json_t *list = json_object_get(ext, "attempts");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(ext, "attempts", list);
    }
    if (a->attempts)
        json_array_extend(list, a->attempts);
    while (json_array_size(list) > ATTEMPTS_KEPT)
        json_array_remove(list, 0);
    char *text = json_dumps(ext, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ext);
    return text;
}
