/*
 * base64.c — standard, padded base64 (RFC 4648), as DTM uses for bin_data,
 * workflow data and Basic logins. Shared by the broker and libdtmq.
 */
#include "base64.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *dtmq_base64_encode(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* True when text is d alphabet characters then the padding their count
 * needs (or none) and nothing else; *d gets the count. */
static int b64_shape_ok(const char *text, size_t len, size_t *d)
{
    size_t n = 0;
    while (n < len && b64_value(text[n]) >= 0)
        n++;
    size_t pad = 0;
    while (n + pad < len && text[n + pad] == '=')
        pad++;
    *d = n;
    if (n + pad != len || n % 4 == 1) /* a bad character, or 6 bits alone */
        return 0;
    return pad == 0 || (n % 4 != 0 && n % 4 + pad == 4);
}

unsigned char *dtmq_base64_decode(const char *text, size_t *out_len)
{
    size_t len = strlen(text), d = 0;
    if (!b64_shape_ok(text, len, &d))
        return NULL;
    unsigned char *out = malloc(d / 4 * 3 + 3);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < d; i++) {
        acc = (acc << 6) | (uint32_t)b64_value(text[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    assert(o == d / 4 * 3 + (d % 4 ? d % 4 - 1 : 0));
    out[o] = '\0';
    *out_len = o;
    return out;
}
