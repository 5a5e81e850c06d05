/*
 * gid.c — random global transaction ids: 128 bits from getrandom(2) written
 * in base 62, fixed width 22 (62^22 > 2^128), so ids are URL- and
 * query-string-safe and never collide in practice.
 */
#include "gid.h"

#include <stdint.h>
#include <sys/random.h>

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int gid_new(char *out)
{
    uint32_t words[4]; /* the 128-bit number, most significant word first */
    if (getrandom(words, sizeof(words), 0) != (ssize_t)sizeof(words))
        return -1;
    for (int pos = GID_LEN - 1; pos >= 0; pos--) {
        uint64_t rem = 0; /* long division of the 128-bit number by 62 */
        for (int i = 0; i < 4; i++) {
            uint64_t cur = (rem << 32) | words[i];
            words[i] = (uint32_t)(cur / 62);
            rem = cur % 62;
        }
        out[pos] = alphabet[rem];
    }
    out[GID_LEN] = '\0';
    return 0;
}
