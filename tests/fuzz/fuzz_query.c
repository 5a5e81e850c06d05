/*
 * fuzz_query.c — the query-string helpers of libdtmq's HTTP branch side
 * (connectors/libdtmq/dtmq.c, declared in dtmq.h): dtmq_parse_branch_query and
 * dtmq_query_value on arbitrary NUL-terminated strings, with output buffers of
 * exactly the size passed (heap, so ASan sees one byte too far), both small
 * (1..16 bytes, from the first input bytes) and large (4096).
 * With a '\n' in the input, the part before it is the name dtmq_query_value
 * looks for; otherwise it looks for gid, op and a name from the input's tail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dtmq/dtmq.h>

static void check_out(int rc, const char *buf, size_t len)
{
    if (rc == 0 && strnlen(buf, len) >= len)
        __builtin_trap(); /* not NUL-terminated inside its buffer */
}

static void parse_branch(const char *q, size_t sizes[4])
{
    char *b[4];
    for (int i = 0; i < 4; i++)
        b[i] = malloc(sizes[i]);
    char err[128];
    err[0] = '\0';
    int rc = dtmq_parse_branch_query(q, b[0], sizes[0], b[1], sizes[1], b[2], sizes[2], b[3],
                                     sizes[3], err, sizeof err);
    if (rc == 0) {
        for (int i = 0; i < 4; i++) {
            check_out(rc, b[i], sizes[i]);
            if (b[i][0] == '\0')
                __builtin_trap(); /* an empty field must be refused */
        }
    } else if (rc != -1 || err[0] == '\0') {
        __builtin_trap();
    }
    for (int i = 0; i < 4; i++)
        free(b[i]);
}

static void query_value(const char *q, const char *name, size_t len)
{
    char *out = malloc(len);
    char err[128];
    int rc = dtmq_query_value(q, name, out, len, err, sizeof err);
    if (rc < -1 || rc > 1)
        __builtin_trap();
    check_out(rc, out, len);
    if (rc == 1 && out[0] != '\0')
        __builtin_trap(); /* absent gives "" */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    size_t small[4];
    for (int i = 0; i < 4; i++)
        small[i] = 1 + (size > (size_t)i ? data[i] % 16 : (size_t)i);
    size_t large[4] = {4096, 4096, 4096, 4096};
    parse_branch(s, small);
    parse_branch(s, large);

    char *nl = strchr(s, '\n');
    if (nl != NULL) {
        *nl = '\0';
        query_value(nl + 1, s, small[0]);
        query_value(nl + 1, s, 4096);
        *nl = '\n';
    }
    query_value(s, "gid", small[1]);
    query_value(s, "op", 4096);
    const char *tail = size > 4 ? s + size - 4 : s; /* a short name, maybe a prefix of another */
    query_value(s, tail, small[2]);
    query_value(s, tail, 4096);
    free(s);
    return 0;
}
