/*
 * admin_assets.h — the admin web page (broker/admin/: HTML, CSS, JavaScript),
 * embedded into the binary and served under /admin/ (docs/admin.md).
 */
#ifndef DTMQ_ADMIN_ASSETS_H
#define DTMQ_ADMIN_ASSETS_H

#include "api_internal.h"

/* GET /admin/ (index.html) and /admin/<file>; a redirect for /admin, 404
 * for a file the page does not have. The route table guards it with the
 * admin token, so the browser asks for the login before the page loads. */
void api_admin_asset(broker *b, const http_request *req, http_response *resp);

/* The embedded text of an asset by its file name ("index.html", "admin.js"),
 * with its Content-Type in *content_type; NULL when there is none. */
const char *admin_asset_find(const char *name, const char **content_type);

#endif
