/*
 * fuzz_base64.c — connectors/libdtmq/common/base64.c (bin_data, workflow data, Basic
 * logins). Decodes the input as text (NUL-terminated copy) and checks the
 * result's promises; then encodes the input's bytes and decodes them back,
 * which must give exactly the input (__builtin_trap on any mismatch).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libdtmq/common/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t n = 12345;
    unsigned char *dec = dtmq_base64_decode(text, &n);
    if (dec != NULL) {
        if (n > strlen(text) / 4 * 3 + 2 || dec[n] != '\0')
            __builtin_trap();
        free(dec);
    }
    free(text);

    char *enc = dtmq_base64_encode(data, size);
    if (enc == NULL)
        __builtin_trap();
    if (strlen(enc) != 4 * ((size + 2) / 3) || strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "abcdefghijklmnopqrstuvwxyz"
                                                             "0123456789+/=") != strlen(enc))
        __builtin_trap();
    size_t back_len = 0;
    unsigned char *back = dtmq_base64_decode(enc, &back_len);
    if (back == NULL || back_len != size || memcmp(back, data, size) != 0 || back[size] != '\0')
        __builtin_trap(); /* encode -> decode did not give the input back */
    free(back);
    free(enc);
    return 0;
}
