/* base64.h — standard, padded base64 (RFC 4648), shared by the broker and libdtmq. */
#ifndef DTMQ_BASE64_H
#define DTMQ_BASE64_H

#include <stddef.h>

/* Encodes len bytes; malloc'd NUL-terminated text, NULL when out of memory. */
char *dtmq_base64_encode(const unsigned char *data, size_t len);
/* Decodes text: characters of the standard alphabet, then either no padding
 * or exactly the '=' their count needs, then nothing. Unused low bits of the
 * last character are ignored (as Go's base64.StdEncoding does). malloc'd
 * bytes, NUL-terminated for convenience, length in *out_len. NULL when text
 * is not base64 ("QQ==!!", "QQ=", "Q", "QQ=A", a space or line break
 * anywhere) or out of memory. */
unsigned char *dtmq_base64_decode(const char *text, size_t *out_len);

#endif
