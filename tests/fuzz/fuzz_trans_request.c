/*
 * fuzz_trans_request.c — trans_request_parse (broker/trans_json.c) on
 * arbitrary bytes, the body of every HTTP prepare/submit/abort/registerBranch
 * and of every Kafka submit, with require_type 0 and 1. On success the options
 * must survive trans_options_to_text -> trans_options_from_text unchanged
 * (checked with __builtin_trap). The input is also given to
 * trans_options_from_text as stored options text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trans_json.h"

static void check_round_trip(const trans_options *o)
{
    char *text = trans_options_to_text(o);
    if (text == NULL)
        __builtin_trap();
    trans_options back;
    if (trans_options_from_text(text, &back) != 0)
        __builtin_trap(); /* dtmq could not read back what it stored */
    if (back.wait_result != o->wait_result || back.concurrent != o->concurrent ||
        back.timeout_to_fail != o->timeout_to_fail ||
        back.request_timeout != o->request_timeout ||
        back.retry_interval != o->retry_interval || back.retry_limit != o->retry_limit)
        __builtin_trap();
    char *again = trans_options_to_text(&back);
    if (again == NULL || strcmp(text, again) != 0)
        __builtin_trap();
    free(again);
    free(text);
    trans_options_clear(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    for (int require_type = 0; require_type <= 1; require_type++) {
        trans_request r;
        err[0] = '\0';
        if (trans_request_parse((const char *)data, size, require_type, &r, err, sizeof err) == 0) {
            if (r.gid == NULL || r.gid[0] == '\0' || strlen(r.gid) > 128 || r.body == NULL)
                __builtin_trap();
            if (require_type && r.trans_type == NULL)
                __builtin_trap();
            check_round_trip(&r.opts);
            trans_request_clear(&r);
        } else if (err[0] == '\0') {
            __builtin_trap(); /* a refusal must say why */
        }
    }

    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    trans_options o;
    if (trans_options_from_text(text, &o) == 0) {
        check_round_trip(&o);
        trans_options_clear(&o);
    }
    free(text);
    return 0;
}
