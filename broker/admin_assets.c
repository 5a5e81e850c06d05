/*
 * admin_assets.c — puts the admin web page (broker/admin/) into the binary and
 * serves it (admin_assets.h): a single-page app of plain HTML, CSS and
 * JavaScript modules that calls the HTTP API from the browser, so nothing is
 * read from disk or fetched from elsewhere at run time.
 *
 * Each file is pulled in by the assembler's .incbin into .rodata, followed by
 * a NUL byte so the text is a C string, under a global label that C declares
 * as an extern char array (as connectors/daemon/schema/schemas_embedded.c does). The
 * paths are relative to the directory the compiler runs in: the Makefile
 * compiles from the repository root.
 *
 * BUILD DEPENDENCY: gcc's -MMD dependency files do not list files that
 * .incbin reads, so the Makefile names the files of broker/admin/ as
 * prerequisites of this object; without that rule an edited page would not
 * be rebuilt. A new file needs a line here and one in admin_files[].
 */
#include "admin_assets.h"

#include <stdlib.h>
#include <string.h>

/* One .incbin per file: SYMBOL is a global, NUL-terminated char array. */
#define ADMIN_INCBIN(symbol, path)                                                             \
    __asm__(".section .rodata\n"                                                                \
            ".global " #symbol "\n"                                                             \
            ".type " #symbol ", @object\n"                                                      \
            #symbol ":\n"                                                                       \
            ".incbin \"" path "\"\n"                                                            \
            ".byte 0\n"                                                                         \
            ".size " #symbol ", . - " #symbol "\n"                                              \
            ".previous\n")

ADMIN_INCBIN(dtmq_admin_index_html, "broker/admin/index.html");
ADMIN_INCBIN(dtmq_admin_admin_css, "broker/admin/admin.css");
ADMIN_INCBIN(dtmq_admin_admin_js, "broker/admin/admin.js");
ADMIN_INCBIN(dtmq_admin_api_js, "broker/admin/api.js");
ADMIN_INCBIN(dtmq_admin_dom_js, "broker/admin/dom.js");
ADMIN_INCBIN(dtmq_admin_list_js, "broker/admin/list.js");
ADMIN_INCBIN(dtmq_admin_trans_js, "broker/admin/trans.js");
ADMIN_INCBIN(dtmq_admin_diagram_js, "broker/admin/diagram.js");
ADMIN_INCBIN(dtmq_admin_topics_js, "broker/admin/topics.js");

extern const char dtmq_admin_index_html[];
extern const char dtmq_admin_admin_css[];
extern const char dtmq_admin_admin_js[];
extern const char dtmq_admin_api_js[];
extern const char dtmq_admin_dom_js[];
extern const char dtmq_admin_list_js[];
extern const char dtmq_admin_trans_js[];
extern const char dtmq_admin_diagram_js[];
extern const char dtmq_admin_topics_js[];

#define TYPE_HTML "text/html; charset=utf-8"
#define TYPE_CSS "text/css; charset=utf-8"
#define TYPE_JS "text/javascript; charset=utf-8"

static const struct {
    const char *name;
    const char *type;
    const char *text;
} admin_files[] = {
    {"index.html", TYPE_HTML, dtmq_admin_index_html},
    {"admin.css", TYPE_CSS, dtmq_admin_admin_css},
    {"admin.js", TYPE_JS, dtmq_admin_admin_js},
    {"api.js", TYPE_JS, dtmq_admin_api_js},
    {"dom.js", TYPE_JS, dtmq_admin_dom_js},
    {"list.js", TYPE_JS, dtmq_admin_list_js},
    {"trans.js", TYPE_JS, dtmq_admin_trans_js},
    {"diagram.js", TYPE_JS, dtmq_admin_diagram_js},
    {"topics.js", TYPE_JS, dtmq_admin_topics_js},
};

const char *admin_asset_find(const char *name, const char **content_type)
{
    for (size_t i = 0; i < sizeof(admin_files) / sizeof(admin_files[0]); i++)
        if (strcmp(name, admin_files[i].name) == 0) {
            *content_type = admin_files[i].type;
            return admin_files[i].text;
        }
    return NULL;
}

void api_admin_asset(broker *b, const http_request *req, http_response *resp)
{
    const char *path = req->path;
    if (strcmp(path, "/admin") == 0) {
        /* relative, so that the page also works behind a proxy's path prefix */
        resp->status = 308;
        resp->content_type = TYPE_HTML;
        resp->body = strdup("<a href=\"admin/\">admin/</a>\n");
        resp->header_name = "Location";
        resp->header_value = "admin/";
        return;
    }
    if (strncmp(path, "/admin/", 7) != 0) { /* e.g. /adminx: the prefix route matches it too */
        api_reply_message(resp, 404, "%s %.400s: no such route", req->method, req->path);
        return;
    }
    const char *name = path[7] ? path + 7 : "index.html";
    const char *type = NULL;
    const char *text = admin_asset_find(name, &type);
    if (text == NULL) {
        api_reply_message(resp, 404, "%.400s: the admin page has no such file", req->path);
        return;
    }
    resp->status = 200;
    resp->content_type = type;
    resp->body = strdup(text);
    if (resp->body == NULL) {
        api_reply_message(resp, 500, "out of memory");
        return;
    }
    resp->header_name = "Cache-Control"; /* the page changes with the binary */
    resp->header_value = "no-cache";
}
