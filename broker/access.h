/*
 * access.h — who may steer dtmq and where dtmq may call: the admin token
 * (AdminToken) guarding the admin page and the steering routes, and the
 * branch URL allowlist (BranchAllowlist) that keeps a client from making
 * dtmq call arbitrary addresses. docs/operations.md describes both.
 */
#ifndef DTMQ_ACCESS_H
#define DTMQ_ACCESS_H

#include "config.h"

/* True when no token is configured, or authorization is "Bearer <token>" or
 * "Basic base64(any-user:<token>)" (a browser's login; compared in constant
 * time). */
int access_token_ok(const dtmq_config *cfg, const char *authorization);

/* True when the allowlist is empty, the URL is empty (a no-op branch), or
 * the URL starts with one of the listed prefixes. */
int access_url_allowed(const dtmq_config *cfg, const char *url);

#endif
