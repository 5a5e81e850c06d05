/*
 * access.c — the admin token check and the branch URL allowlist (access.h).
 */
#include "access.h"

#include <stdlib.h>
#include <string.h>

#include "trans_json.h"

static int same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) /* no early exit: time does not depend on where they differ */
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* "Basic base64(user:password)": the password is the token, any user name
 * (what a browser sends after its login prompt, for the admin page). */
static int basic_password_ok(const char *encoded, const char *token)
{
    size_t len = 0;
    unsigned char *plain = dtmq_base64_decode(encoded, &len);
    if (plain == NULL)
        return 0;
    const char *colon = memchr(plain, ':', len);
    int ok = colon != NULL && same_secret(colon + 1, token);
    free(plain);
    return ok;
}

int access_token_ok(const dtmq_config *cfg, const char *authorization)
{
    const char *token = cfg->admin_token;
    if (token == NULL || token[0] == '\0')
        return 1;
    if (authorization == NULL)
        return 0;
    if (strncmp(authorization, "Bearer ", 7) == 0)
        return same_secret(authorization + 7, token);
    if (strncmp(authorization, "Basic ", 6) == 0)
        return basic_password_ok(authorization + 6, token);
    return 0;
}

int access_url_allowed(const dtmq_config *cfg, const char *url)
{
    const char *list = cfg->branch_allowlist;
    if (list == NULL || list[0] == '\0' || url == NULL || url[0] == '\0')
        return 1;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && strncmp(url, p, n) == 0)
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}
