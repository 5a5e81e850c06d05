/* base64.h — standard, padded base64 (RFC 4648), shared by the broker and libdtmq. */
#ifndef DTMQ_BASE64_H
#define DTMQ_BASE64_H

#include <stddef.h>

/* Encodes len bytes; malloc'd NUL-terminated text, NULL when out of memory. */
char *dtmq_base64_encode(const unsigned char *data, size_t len);
/* Decodes text (padding optional); malloc'd bytes, NUL-terminated for
 * convenience, length in *out_len. NULL when text is not base64 or out of memory. */
unsigned char *dtmq_base64_decode(const char *text, size_t *out_len);

#endif
