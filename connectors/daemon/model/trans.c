/*
 * trans.c — allocation, copying and lookup for the transaction data model
 * declared in trans.h. No I/O here: stores and the engine build on these.
 */
#include "trans.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

trans_global *trans_new(void)
{
    return calloc(1, sizeof(trans_global));
}

static char *dup_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *failed = 1;
    return copy;
}

int trans_set_str(char **field, const char *value)
{
    int failed = 0;
    char *copy = dup_or_null(value, &failed);
    if (failed)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

void trans_branch_clear(trans_branch *b)
{
    free(b->branch_id);
    free(b->op);
    free(b->url);
    free(b->data);
    free(b->status);
    memset(b, 0, sizeof(*b));
}

int trans_branch_copy(trans_branch *dst, const trans_branch *src)
{
    int failed = 0;
    *dst = *src;
    dst->branch_id = dup_or_null(src->branch_id, &failed);
    dst->op = dup_or_null(src->op, &failed);
    dst->url = dup_or_null(src->url, &failed);
    dst->status = dup_or_null(src->status, &failed);
    dst->data = NULL;
    if (src->data != NULL) {
        dst->data = malloc(src->data_len + 1);
        if (dst->data == NULL) {
            failed = 1;
        } else {
            memcpy(dst->data, src->data, src->data_len);
            dst->data[src->data_len] = '\0';
        }
    }
    if (failed) {
        trans_branch_clear(dst);
        return -1;
    }
    return 0;
}

int trans_add_branch(trans_global *t, const trans_branch *b)
{
    if (t->branch_count == t->branch_cap) {
        size_t cap = t->branch_cap ? t->branch_cap * 2 : 4;
        trans_branch *grown = realloc(t->branches, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        t->branches = grown;
        t->branch_cap = cap;
    }
    if (trans_branch_copy(&t->branches[t->branch_count], b) != 0)
        return -1;
    t->branch_count++;
    return 0;
}

void trans_free(trans_global *t)
{
    if (t == NULL)
        return;
    char **fields[] = {&t->gid, &t->trans_type, &t->status, &t->query_prepared,
                       &t->protocol, &t->custom_data, &t->options, &t->steps,
                       &t->payloads, &t->ext_data, &t->result,
                       &t->rollback_reason, &t->owner};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        free(*fields[i]);
    for (size_t i = 0; i < t->branch_count; i++)
        trans_branch_clear(&t->branches[i]);
    free(t->branches);
    free(t);
}

trans_global *trans_clone(const trans_global *t)
{
    trans_global *c = trans_new();
    if (c == NULL)
        return NULL;
    int failed = 0;
    *c = *t;
    c->branches = NULL;
    c->branch_count = c->branch_cap = 0;
    char **dst[] = {&c->gid, &c->trans_type, &c->status, &c->query_prepared,
                    &c->protocol, &c->custom_data, &c->options, &c->steps,
                    &c->payloads, &c->ext_data, &c->result,
                    &c->rollback_reason, &c->owner};
    const char *src[] = {t->gid, t->trans_type, t->status, t->query_prepared,
                         t->protocol, t->custom_data, t->options, t->steps,
                         t->payloads, t->ext_data, t->result,
                         t->rollback_reason, t->owner};
    for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++)
        *dst[i] = dup_or_null(src[i], &failed);
    for (size_t i = 0; !failed && i < t->branch_count; i++)
        failed = trans_add_branch(c, &t->branches[i]) != 0;
    if (failed) {
        trans_free(c);
        return NULL;
    }
    return c;
}

trans_branch *trans_find_branch(const trans_global *t, const char *branch_id, const char *op)
{
    for (size_t i = 0; i < t->branch_count; i++) {
        trans_branch *b = &t->branches[i];
        if (strcmp(b->branch_id, branch_id) == 0 && strcmp(b->op, op) == 0)
            return b;
    }
    return NULL;
}

/* Indexed by trans_mode; [TRANS_MODE_NONE] has no name. */
static const char *const trans_mode_names[] = {
    [TRANS_MODE_NONE] = NULL,        [TRANS_MODE_SAGA] = "saga", [TRANS_MODE_TCC] = "tcc",
    [TRANS_MODE_XA] = "xa",          [TRANS_MODE_MSG] = "msg",
    [TRANS_MODE_WORKFLOW] = "workflow",
};
_Static_assert(sizeof(trans_mode_names) / sizeof(trans_mode_names[0]) == TRANS_MODE_WORKFLOW + 1,
               "one name per trans_mode");

trans_mode trans_mode_of(const char *name)
{
    for (size_t m = TRANS_MODE_SAGA; name != NULL && m <= TRANS_MODE_WORKFLOW; m++)
        if (strcmp(name, trans_mode_names[m]) == 0)
            return (trans_mode)m;
    return TRANS_MODE_NONE;
}

const char *trans_mode_name(trans_mode mode)
{
    assert((unsigned)mode <= TRANS_MODE_WORKFLOW);
    return trans_mode_names[mode];
}

trans_mode trans_global_mode(const trans_global *t)
{
    assert(t != NULL);
    return trans_mode_of(t->trans_type);
}

int trans_status_is_final(const char *status)
{
    return status != NULL &&
           (strcmp(status, TRANS_SUCCEED) == 0 || strcmp(status, TRANS_FAILED) == 0);
}

int64_t dtmq_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
