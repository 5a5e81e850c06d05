/*
 * cli.c — dtmq's operator subcommands (cli.h, docs/cli.md): the subcommand
 * and option tables, argument parsing, help texts, the HTTP calls to a
 * running dtmq (libcurl easy interface, one request at a time) and what each
 * subcommand does with the reply. Printing replies as tables and parsing
 * times live in cli_format.c.
 *
 * Ownership: cli_args only borrows (argv, the environment); every buffer a
 * function allocates is freed by that same function, or handed to its caller
 * through an out-parameter documented as owned.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "config.h"
#include "libdtmq/common/rules.h"
#include "version.h"

#define CLI_DEFAULT_SERVER "http://127.0.0.1:36789"
#define CLI_DEFAULT_TIMEOUT_S 10L
#define CLI_TIMEOUT_MAX_S 86400L
#define CLI_LIMIT_MAX 1000L /* the server's cap on /api/dtmsvr/all's limit */

/* ---- options and subcommands -------------------------------------------- */

typedef enum {
    CLI_OPT_HELP,
    CLI_OPT_SERVER,
    CLI_OPT_TOKEN,
    CLI_OPT_TIMEOUT,
    CLI_OPT_JSON,
    CLI_OPT_STATUS,
    CLI_OPT_TYPE,
    CLI_OPT_GID,
    CLI_OPT_SINCE,
    CLI_OPT_UNTIL,
    CLI_OPT_LIMIT,
    CLI_OPT_ALL
} cli_opt_id;

#define CLI_BIT(id) (1u << (id))
#define CLI_COMMON \
    (CLI_BIT(CLI_OPT_HELP) | CLI_BIT(CLI_OPT_SERVER) | CLI_BIT(CLI_OPT_TOKEN) | CLI_BIT(CLI_OPT_TIMEOUT))
#define CLI_LIST_FILTERS                                                                       \
    (CLI_BIT(CLI_OPT_STATUS) | CLI_BIT(CLI_OPT_TYPE) | CLI_BIT(CLI_OPT_GID) |                  \
     CLI_BIT(CLI_OPT_SINCE) | CLI_BIT(CLI_OPT_UNTIL) | CLI_BIT(CLI_OPT_LIMIT) | CLI_BIT(CLI_OPT_ALL))

typedef struct cli_option {
    cli_opt_id id;
    const char *name;       /* "--server" */
    const char *short_name; /* "-h", or NULL */
    const char *metavar;    /* "URL"; NULL for a flag */
    const char *help;
} cli_option;

/* In the order help lists them. */
static const cli_option cli_options[] = {
    {CLI_OPT_STATUS, "--status", NULL, "S", "only status S: prepared, submitted, aborting, succeed, failed"},
    {CLI_OPT_TYPE, "--type", NULL, "T", "only type T: saga, tcc, xa, msg, workflow"},
    {CLI_OPT_GID, "--gid", NULL, "G", "only the transaction with gid G"},
    {CLI_OPT_SINCE, "--since", NULL, "TIME", "only those created at or after TIME (epoch ms or RFC 3339)"},
    {CLI_OPT_UNTIL, "--until", NULL, "TIME", "only those created at or before TIME"},
    {CLI_OPT_LIMIT, "--limit", NULL, "N", "at most N transactions, 1..1000 (with --all: per page)"},
    {CLI_OPT_ALL, "--all", NULL, NULL, "follow next_position through every page"},
    {CLI_OPT_JSON, "--json", NULL, NULL, "print the server's raw JSON reply"},
    {CLI_OPT_SERVER, "--server", NULL, "URL",
     "dtmq to talk to (env DTMQ_SERVER, default " CLI_DEFAULT_SERVER ")"},
    {CLI_OPT_TOKEN, "--token", NULL, "TOKEN", "sent as 'Authorization: Bearer TOKEN' (env DTMQ_ADMIN_TOKEN)"},
    {CLI_OPT_TIMEOUT, "--timeout", NULL, "SECS", "give up on the server after SECS seconds (default 10)"},
    {CLI_OPT_HELP, "--help", "-h", NULL, "print this help and exit"},
};

#define CLI_OPTION_COUNT (sizeof(cli_options) / sizeof(cli_options[0]))

typedef struct cli_command cli_command;

/* What one run of a subcommand was told. Strings are borrowed from argv or
 * the environment, never freed. */
typedef struct cli_args {
    const char *prog;         /* basename of argv[0] */
    const cli_command *cmd;
    const char *server;       /* http(s):// base URL */
    const char *token;        /* NULL or "": no Authorization header */
    long timeout_s;
    bool help, json, all;
    const char *status, *type, *gid;
    long long since_ms, until_ms; /* -1: unset */
    long limit;                   /* 0: the server's default */
    const char *operand;          /* GID, FILE or SUBCOMMAND; NULL when absent */
} cli_args;

struct cli_command {
    const char *name;
    const char *operand;   /* "GID", "FILE|-", "[SUBCOMMAND]"; NULL: takes none */
    bool operand_required;
    unsigned options;      /* CLI_BIT of every option it accepts */
    const char *route;     /* the HTTP route it calls; NULL for help */
    const char *summary;   /* one line for `dtmq help` */
    const char *details;   /* paragraph(s) under Usage */
    const char *examples;  /* lines under Examples */
    int (*run)(const cli_args *a);
};

static int cli_run_query(const cli_args *a);
static int cli_run_list(const cli_args *a);
static int cli_run_submit(const cli_args *a);
static int cli_run_gid_post(const cli_args *a);
static int cli_run_help(const cli_args *a);

static const cli_command cli_commands[] = {
    {"query", "GID", true, CLI_COMMON | CLI_BIT(CLI_OPT_JSON), "/api/dtmsvr/query",
     "print a transaction and its branches",
     "Prints the transaction GID and its branches (GET /api/dtmsvr/query?gid=GID).\n"
     "Exits 4 when the server knows no transaction with that gid.\n",
     "  dtmq query order-1001\n"
     "  dtmq query order-1001 --json | jq -r .transaction.status\n",
     cli_run_query},
    {"list", NULL, false, CLI_COMMON | CLI_LIST_FILTERS | CLI_BIT(CLI_OPT_JSON), "/api/dtmsvr/all",
     "list transactions, newest first",
     "Lists transactions, newest first, one line each: gid, type, status, create\n"
     "time, next cron time (GET /api/dtmsvr/all). Without --all it prints one page\n"
     "(the server's default is 100) and says on stderr when there are more; --all\n"
     "follows next_position to the end. TIME is epoch milliseconds or RFC 3339\n"
     "(2026-11-21T10:00:00Z, 2026-11-21T11:00:00+01:00, 2026-11-21). --json prints\n"
     "the server's reply; with --all, one reply holding every page's transactions.\n",
     "  dtmq list --status submitted\n"
     "  dtmq list --type saga --since 2026-11-21T10:00:00Z --until 2026-11-21T11:00:00Z\n"
     "  dtmq list --status failed --all --json | jq -r '.transactions[].gid'\n",
     cli_run_list},
    {"submit", "FILE|-", true, CLI_COMMON, "/api/dtmsvr/submit",
     "submit a transaction from a JSON file or stdin",
     "POSTs the TransGlobal JSON object in FILE (- for stdin) to /api/dtmsvr/submit\n"
     "as it is, and prints the server's reply. A FILE that cannot be read or is not\n"
     "a JSON object is a usage error (2).\n",
     "  dtmq submit order-1001.json\n"
     "  echo '{\"gid\":\"g1\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\"}]}' | dtmq submit -\n",
     cli_run_submit},
    {"force-stop", "GID", true, CLI_COMMON, "/api/dtmsvr/forceStop",
     "make an unfinished transaction failed at once, without compensation",
     "Makes the unfinished transaction GID failed at once, without running any\n"
     "compensation (POST /api/dtmsvr/forceStop), and prints the server's reply.\n"
     "A finished transaction is refused (exit 1, with the server's message).\n",
     "  dtmq force-stop order-1001\n",
     cli_run_gid_post},
    {"retry", "GID", true, CLI_COMMON, "/api/dtmsvr/resetNextCronTime",
     "retry an unfinished transaction's pending branches now",
     "Makes the unfinished transaction GID due now, so its pending branches are\n"
     "called again without waiting for the retry interval (POST\n"
     "/api/dtmsvr/resetNextCronTime), and prints the server's reply.\n",
     "  dtmq retry order-1001\n",
     cli_run_gid_post},
    {"help", "[SUBCOMMAND]", false, CLI_BIT(CLI_OPT_HELP), NULL,
     "this overview, or the help of one subcommand",
     "Without SUBCOMMAND: the overview. With one: the same as dtmq SUBCOMMAND --help\n"
     "(dtmq help serve: the server's options).\n",
     "  dtmq help list\n",
     cli_run_help},
};

#define CLI_COMMAND_COUNT (sizeof(cli_commands) / sizeof(cli_commands[0]))

static const char *const cli_statuses[] = {"prepared", "submitted", "aborting", "succeed", "failed", NULL};
static const char *const cli_types[] = {"saga", "tcc", "xa", "msg", "workflow", NULL};

static const char cli_exit_codes_text[] =
    "Exit codes: 0 success, 1 the server answered with an error, 2 usage error,\n"
    "3 the server could not be reached, 4 not found (query of an unknown gid).\n";

static const cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; name != NULL && i < CLI_COMMAND_COUNT; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

int cli_is_subcommand(const char *arg)
{
    return cli_find_command(arg) != NULL;
}

/* ---- help ---------------------------------------------------------------- */

/* "--server URL" or "-h, --help" into buf. */
static const char *cli_option_synopsis(const cli_option *o, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s%s", o->short_name ? o->short_name : "", o->short_name ? ", " : "",
             o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    return buf;
}

static void cli_print_options_of(FILE *out, unsigned mask)
{
    char buf[64];
    int width = 0;
    for (size_t i = 0; i < CLI_OPTION_COUNT; i++) {
        int w = (int)strlen(cli_option_synopsis(&cli_options[i], buf, sizeof(buf)));
        if ((mask & CLI_BIT(cli_options[i].id)) && w > width)
            width = w;
    }
    fprintf(out, "Options:\n");
    for (size_t i = 0; i < CLI_OPTION_COUNT; i++)
        if (mask & CLI_BIT(cli_options[i].id))
            fprintf(out, "  %-*s  %s\n", width, cli_option_synopsis(&cli_options[i], buf, sizeof(buf)),
                    cli_options[i].help);
}

static void cli_print_command_help(FILE *out, const char *prog, const cli_command *cmd)
{
    fprintf(out, "Usage: %s %s%s%s [options]\n\n", prog, cmd->name, cmd->operand ? " " : "",
            cmd->operand ? cmd->operand : "");
    fprintf(out, "%s\n", cmd->details);
    cli_print_options_of(out, cmd->options);
    if (cmd->options & CLI_BIT(CLI_OPT_SERVER))
        fprintf(out, "\nEnvironment: DTMQ_SERVER (--server), DTMQ_ADMIN_TOKEN (--token).\n");
    fprintf(out, "\nExamples:\n%s\n%s", cmd->examples, cli_exit_codes_text);
}

static void cli_print_overview(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [serve] [server options]   run the server (%s --help: its options)\n"
            "       %s SUBCOMMAND [options]       talk to a running dtmq over HTTP\n\n"
            "Subcommands:\n"
            "  %-11s %s\n",
            prog, prog, prog, "serve", "run the server (the default when no subcommand is given)");
    for (size_t i = 0; i < CLI_COMMAND_COUNT; i++)
        fprintf(out, "  %-11s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(out,
            "\nEvery subcommand but help takes --server URL (env DTMQ_SERVER, default\n"
            "%s), --token TOKEN (env DTMQ_ADMIN_TOKEN) and --timeout SECS\n"
            "(default 10). Options may come before or after the operand.\n"
            "%s help SUBCOMMAND or %s SUBCOMMAND --help: one subcommand's options.\n\n%s",
            CLI_DEFAULT_SERVER, prog, prog, cli_exit_codes_text);
}

/* ---- argument parsing ---------------------------------------------------- */

/* Prints "dtmq list: <message> (see dtmq list --help)" and returns CLI_EXIT_USAGE. */
static int cli_usage_error(const cli_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cli_usage_error(const cli_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s %s: ", a->prog, a->cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see %s %s --help)\n", a->prog, a->cmd->name);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* The option named by arg's first len characters ("--limit" of "--limit=5"). */
static const cli_option *cli_find_option(const char *arg, size_t len)
{
    for (size_t i = 0; i < CLI_OPTION_COUNT; i++) {
        const cli_option *o = &cli_options[i];
        if ((strlen(o->name) == len && strncmp(o->name, arg, len) == 0) ||
            (o->short_name && strlen(o->short_name) == len && strncmp(o->short_name, arg, len) == 0))
            return o;
    }
    return NULL;
}

/* A whole decimal number in min..max into *out; false otherwise. */
static bool cli_parse_long(const char *text, long min, long max, long *out)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool cli_is_one_of(const char *value, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; i++)
        if (strcmp(value, allowed[i]) == 0)
            return true;
    return false;
}

/* --server and DTMQ_SERVER: http(s)://..., the scheme in any case (curl's rule). */
static bool cli_is_http_url(const char *url)
{
    return dtmq_url_kind_of(url, DTMQ_URL_ANY_CASE) == DTMQ_URL_HTTP;
}

static int cli_set_time(cli_args *a, const cli_option *o, const char *value, long long *out)
{
    if (cli_parse_time(value, out) != 0)
        return cli_usage_error(a, "%s: '%s' is neither epoch milliseconds nor an RFC 3339 time "
                               "like 2026-11-21T10:00:00Z", o->name, value);
    return CLI_EXIT_OK;
}

static int cli_set_choice(cli_args *a, const cli_option *o, const char *value,
                          const char *const *allowed, const char **out)
{
    if (!cli_is_one_of(value, allowed)) {
        char list[128] = "";
        for (size_t i = 0, len = 0; allowed[i] != NULL && len < sizeof(list); i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", allowed[i]);
        return cli_usage_error(a, "%s: '%s' is not one of %s", o->name, value, list);
    }
    *out = value;
    return CLI_EXIT_OK;
}

/* Applies one option (value NULL for a flag); CLI_EXIT_USAGE on a bad value. */
static int cli_set_option(cli_args *a, const cli_option *o, const char *value)
{
    switch (o->id) {
    case CLI_OPT_HELP: a->help = true; return CLI_EXIT_OK;
    case CLI_OPT_JSON: a->json = true; return CLI_EXIT_OK;
    case CLI_OPT_ALL: a->all = true; return CLI_EXIT_OK;
    case CLI_OPT_TOKEN: a->token = value; return CLI_EXIT_OK;
    case CLI_OPT_STATUS: return cli_set_choice(a, o, value, cli_statuses, &a->status);
    case CLI_OPT_TYPE: return cli_set_choice(a, o, value, cli_types, &a->type);
    case CLI_OPT_SINCE: return cli_set_time(a, o, value, &a->since_ms);
    case CLI_OPT_UNTIL: return cli_set_time(a, o, value, &a->until_ms);
    case CLI_OPT_SERVER:
        if (!cli_is_http_url(value))
            return cli_usage_error(a, "--server: '%s' is not an http:// or https:// URL", value);
        a->server = value;
        return CLI_EXIT_OK;
    case CLI_OPT_GID:
        if (value[0] == '\0')
            return cli_usage_error(a, "--gid: empty");
        a->gid = value;
        return CLI_EXIT_OK;
    case CLI_OPT_TIMEOUT:
        if (!cli_parse_long(value, 1, CLI_TIMEOUT_MAX_S, &a->timeout_s))
            return cli_usage_error(a, "--timeout: '%s' is not a number of seconds in 1..%ld", value,
                                   CLI_TIMEOUT_MAX_S);
        return CLI_EXIT_OK;
    case CLI_OPT_LIMIT:
        if (!cli_parse_long(value, 1, CLI_LIMIT_MAX, &a->limit))
            return cli_usage_error(a, "--limit: '%s' is not a number in 1..%ld", value, CLI_LIMIT_MAX);
        return CLI_EXIT_OK;
    }
    return CLI_EXIT_OK;
}

static int cli_take_operand(cli_args *a, const char *arg)
{
    if (a->cmd->operand == NULL || a->operand != NULL)
        return cli_usage_error(a, "unexpected argument '%s'", arg);
    a->operand = arg;
    return CLI_EXIT_OK;
}

/* One option argument at argv[*i] ("--limit 5", "--limit=5", "--all", "-h");
 * advances *i past its value. */
static int cli_take_option(cli_args *a, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_option *o = cli_find_option(arg, len);
    if (o == NULL || !(a->cmd->options & CLI_BIT(o->id)))
        return cli_usage_error(a, "unknown option '%.*s'", (int)len, arg);
    if (o->metavar == NULL) {
        if (eq != NULL)
            return cli_usage_error(a, "option '%s' takes no value", o->name);
        return cli_set_option(a, o, NULL);
    }
    if (eq != NULL)
        return cli_set_option(a, o, eq + 1);
    if (*i + 1 >= argc)
        return cli_usage_error(a, "option '%s' needs a value (%s)", o->name, o->metavar);
    (*i)++;
    return cli_set_option(a, o, argv[*i]);
}

/* Parses argv[2..]: options anywhere, "--" ends them, "-" is an operand.
 * Stops at -h/--help (a->help set). */
static int cli_parse_argv(cli_args *a, int argc, char **argv)
{
    bool options_done = false;
    for (int i = 2; i < argc && !a->help; i++) {
        const char *arg = argv[i];
        int rc;
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (options_done || arg[0] != '-' || arg[1] == '\0')
            rc = cli_take_operand(a, arg);
        else
            rc = cli_take_option(a, argc, argv, &i);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    return CLI_EXIT_OK;
}

/* What the command line left unset comes from the environment; then the
 * checks that need every option. */
static int cli_complete_args(cli_args *a)
{
    if (a->cmd->options & CLI_BIT(CLI_OPT_SERVER)) { /* every subcommand but help */
        const char *env_server = getenv("DTMQ_SERVER");
        if (a->server == NULL && env_server != NULL && env_server[0] != '\0') {
            if (!cli_is_http_url(env_server))
                return cli_usage_error(a, "DTMQ_SERVER: '%s' is not an http:// or https:// URL", env_server);
            a->server = env_server;
        }
        if (a->server == NULL)
            a->server = CLI_DEFAULT_SERVER;
        if (a->token == NULL)
            a->token = getenv("DTMQ_ADMIN_TOKEN");
    }
    if (a->cmd->operand_required && a->operand == NULL)
        return cli_usage_error(a, "missing %s", a->cmd->operand);
    if (a->since_ms >= 0 && a->until_ms >= 0 && a->since_ms > a->until_ms)
        return cli_usage_error(a, "--since is later than --until");
    return CLI_EXIT_OK;
}

static const char *cli_basename(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return "dtmq";
    const char *slash = strrchr(path, '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* ---- growing strings ----------------------------------------------------- */

/* A NUL-terminated string that grows; data owned. After an allocation
 * failure, failed is set and further appends do nothing. */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
    bool failed;
} cli_buf;

static void cli_buf_add(cli_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void cli_buf_str(cli_buf *b, const char *s)
{
    cli_buf_add(b, s, strlen(s));
}

/* Appends s percent-encoded (RFC 3986 unreserved characters kept). */
static void cli_buf_escaped(cli_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p) != NULL) {
            cli_buf_add(b, (const char *)p, 1);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            cli_buf_add(b, enc, 3);
        }
    }
}

/* Appends "?name=value" or "&name=value"; nothing when value is NULL. */
static void cli_buf_param(cli_buf *b, const char *name, const char *value)
{
    if (value == NULL)
        return;
    cli_buf_str(b, b->data != NULL && strchr(b->data, '?') != NULL ? "&" : "?");
    cli_buf_str(b, name);
    cli_buf_str(b, "=");
    cli_buf_escaped(b, value);
}

static void cli_buf_param_num(cli_buf *b, const char *name, long long value)
{
    char text[32];
    snprintf(text, sizeof(text), "%lld", value);
    cli_buf_param(b, name, text);
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct cli_reply {
    long status; /* HTTP status */
    char *body;  /* owned, NUL-terminated */
} cli_reply;

static size_t cli_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cli_buf *b = userdata;
    cli_buf_add(b, ptr, size * nmemb);
    return b->failed ? 0 : size * nmemb;
}

static struct curl_slist *cli_headers(const cli_args *a, bool has_body)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (has_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (a->token != NULL && a->token[0] != '\0') {
        cli_buf auth = {0};
        cli_buf_str(&auth, "Authorization: Bearer ");
        cli_buf_str(&auth, a->token);
        if (!auth.failed)
            h = curl_slist_append(h, auth.data);
        free(auth.data);
    }
    return h;
}

/* The server's base URL without trailing slashes, then path. Owned. */
static char *cli_url(const cli_args *a, const char *path)
{
    size_t n = strlen(a->server);
    while (n > 0 && a->server[n - 1] == '/')
        n--;
    cli_buf url = {0};
    cli_buf_add(&url, a->server, n);
    cli_buf_str(&url, path);
    if (url.failed) {
        free(url.data);
        return NULL;
    }
    return url.data;
}

static void cli_print_unreachable(const cli_args *a, const char *url, CURLcode rc, const char *detail)
{
    const char *what = curl_easy_strerror(rc);
    if (detail[0] != '\0' && strcmp(detail, what) != 0)
        fprintf(stderr, "%s %s: cannot reach %s: %s (%s)\n", a->prog, a->cmd->name, url, what, detail);
    else
        fprintf(stderr, "%s %s: cannot reach %s: %s\n", a->prog, a->cmd->name, url, what);
}

/* One HTTP request to the server: method on path (which carries its query
 * string), with body (NULL: none). CLI_EXIT_OK with *reply filled (the
 * caller frees reply->body), or CLI_EXIT_UNREACHABLE after printing the URL
 * and curl's error. */
static int cli_http(const cli_args *a, const char *method, const char *path, const char *body,
                    cli_reply *reply)
{
    memset(reply, 0, sizeof(*reply));
    char *url = cli_url(a, path);
    CURL *c = url != NULL ? curl_easy_init() : NULL;
    if (c == NULL) {
        fprintf(stderr, "%s %s: out of memory\n", a->prog, a->cmd->name);
        free(url);
        return CLI_EXIT_SERVER_ERROR;
    }
    char detail[CURL_ERROR_SIZE] = "";
    cli_buf got = {0};
    struct curl_slist *headers = cli_headers(a, body != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dtmq-cli/" DTMQ_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, a->timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode rc = curl_easy_perform(c);
    int exit_code = CLI_EXIT_OK;
    if (rc == CURLE_OK && !got.failed) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
        reply->body = got.data != NULL ? got.data : strdup("");
        got.data = NULL;
    } else {
        cli_print_unreachable(a, url, rc, detail);
        exit_code = CLI_EXIT_UNREACHABLE;
    }
    free(got.data);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    free(url);
    return exit_code;
}

/* Whether the reply is a success: a 2xx status and a JSON body whose
 * dtm_result, if any, is not FAILURE. CLI_EXIT_OK with *json owned by the
 * caller; else CLI_EXIT_SERVER_ERROR after printing the server's message. */
static int cli_check_reply(const cli_args *a, const cli_reply *r, json_t **json)
{
    *json = NULL;
    json_t *j = json_loads(r->body, JSON_DECODE_ANY, NULL);
    const char *result = json_string_value(json_object_get(j, "dtm_result"));
    bool failed = r->status < 200 || r->status > 299 || (result && strcmp(result, "FAILURE") == 0);
    if (failed || !json_is_object(j)) {
        char *msg = cli_reply_message(r->body);
        if (failed)
            fprintf(stderr, "%s %s: the server answered %ld: %s\n", a->prog, a->cmd->name, r->status,
                    msg ? msg : "?");
        else
            fprintf(stderr, "%s %s: the server's reply is not a JSON object: %s\n", a->prog,
                    a->cmd->name, msg ? msg : "?");
        free(msg);
        json_decref(j);
        return CLI_EXIT_SERVER_ERROR;
    }
    *json = j;
    return CLI_EXIT_OK;
}

/* cli_http + cli_check_reply: CLI_EXIT_OK with *json and *raw (the body)
 * owned by the caller, or the exit code after the error was printed. */
static int cli_call(const cli_args *a, const char *method, const char *path, const char *body,
                    json_t **json, char **raw)
{
    cli_reply r;
    *json = NULL;
    *raw = NULL;
    int rc = cli_http(a, method, path, body, &r);
    if (rc == CLI_EXIT_OK)
        rc = cli_check_reply(a, &r, json);
    if (rc == CLI_EXIT_OK)
        *raw = r.body;
    else
        free(r.body);
    return rc;
}

/* Prints text, then a newline unless it ends with one. */
static void cli_print_raw(const char *text)
{
    size_t n = strlen(text);
    fputs(text, stdout);
    if (n == 0 || text[n - 1] != '\n')
        fputc('\n', stdout);
}

/* POSTs body to the command's route; on success prints the reply. */
static int cli_post_and_print(const cli_args *a, const char *body)
{
    json_t *json;
    char *raw;
    int rc = cli_call(a, "POST", a->cmd->route, body, &json, &raw);
    if (rc == CLI_EXIT_OK)
        cli_print_raw(raw);
    json_decref(json);
    free(raw);
    return rc;
}

/* ---- query --------------------------------------------------------------- */

static int cli_run_query(const cli_args *a)
{
    cli_buf path = {0};
    cli_buf_str(&path, a->cmd->route);
    cli_buf_param(&path, "gid", a->operand);
    json_t *json = NULL;
    char *raw = NULL;
    int rc = path.failed ? CLI_EXIT_SERVER_ERROR : cli_call(a, "GET", path.data, NULL, &json, &raw);
    free(path.data);
    if (rc != CLI_EXIT_OK)
        return rc;
    bool found = json_is_object(json_object_get(json, "transaction"));
    if (a->json)
        cli_print_raw(raw);
    else if (found)
        cli_print_transaction(stdout, json);
    if (!found) {
        fprintf(stderr, "%s %s: no transaction with gid '%s'\n", a->prog, a->cmd->name, a->operand);
        rc = CLI_EXIT_NOT_FOUND;
    }
    json_decref(json);
    free(raw);
    return rc;
}

/* ---- list ---------------------------------------------------------------- */

/* The /all path for one page, after position (NULL: the first). Owned. */
static char *cli_list_path(const cli_args *a, const char *position)
{
    cli_buf p = {0};
    cli_buf_str(&p, a->cmd->route);
    cli_buf_param(&p, "status", a->status);
    cli_buf_param(&p, "transType", a->type);
    cli_buf_param(&p, "gid", a->gid);
    if (a->since_ms >= 0)
        cli_buf_param_num(&p, "createTimeStart", a->since_ms);
    if (a->until_ms >= 0)
        cli_buf_param_num(&p, "createTimeEnd", a->until_ms);
    if (a->limit > 0)
        cli_buf_param_num(&p, "limit", a->limit);
    cli_buf_param(&p, "position", position);
    if (p.failed) {
        free(p.data);
        return NULL;
    }
    return p.data;
}

/* The pages read so far. */
typedef struct cli_list_state {
    json_t *transactions; /* owned: every page's transactions, in order */
    char *next;           /* owned: next_position of the last page, "" at the end */
    char *first_raw;      /* owned: the first page's body as received */
} cli_list_state;

static void cli_list_state_free(cli_list_state *s)
{
    json_decref(s->transactions);
    free(s->next);
    free(s->first_raw);
}

/* Reads the page after s->next (the first when s->next is NULL). */
static int cli_list_fetch(const cli_args *a, cli_list_state *s)
{
    char *path = cli_list_path(a, s->next);
    json_t *page = NULL;
    char *raw = NULL;
    int rc = path ? cli_call(a, "GET", path, NULL, &page, &raw) : CLI_EXIT_SERVER_ERROR;
    free(path);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *items = json_object_get(page, "transactions");
    const char *next = json_string_value(json_object_get(page, "next_position"));
    if (!json_is_array(items)) {
        fprintf(stderr, "%s %s: the server's reply has no transactions array\n", a->prog, a->cmd->name);
        rc = CLI_EXIT_SERVER_ERROR;
    } else if (next != NULL && next[0] != '\0' && s->next != NULL && strcmp(next, s->next) == 0) {
        fprintf(stderr, "%s %s: the server repeated next_position '%s'\n", a->prog, a->cmd->name, next);
        rc = CLI_EXIT_SERVER_ERROR;
    } else {
        json_array_extend(s->transactions, items);
        free(s->next);
        s->next = strdup(next ? next : "");
        if (s->first_raw == NULL) {
            s->first_raw = raw;
            raw = NULL;
        }
    }
    json_decref(page);
    free(raw);
    return rc;
}

static void cli_list_print(const cli_args *a, const cli_list_state *s)
{
    if (a->json && !a->all) {
        cli_print_raw(s->first_raw);
        return;
    }
    if (a->json) {
        json_t *merged = json_pack("{s:O, s:s}", "transactions", s->transactions, "next_position", "");
        char *text = json_dumps(merged, JSON_COMPACT);
        if (text != NULL)
            cli_print_raw(text);
        free(text);
        json_decref(merged);
        return;
    }
    if (json_array_size(s->transactions) == 0)
        printf("no transactions\n");
    else
        cli_print_transaction_list(stdout, s->transactions);
    if (!a->all && s->next != NULL && s->next[0] != '\0')
        fprintf(stderr, "%s %s: more transactions follow; --all lists them all\n", a->prog, a->cmd->name);
}

static int cli_run_list(const cli_args *a)
{
    cli_list_state s = {.transactions = json_array()};
    int rc;
    do {
        rc = cli_list_fetch(a, &s);
    } while (rc == CLI_EXIT_OK && a->all && s.next[0] != '\0');
    if (rc == CLI_EXIT_OK)
        cli_list_print(a, &s);
    cli_list_state_free(&s);
    return rc;
}

/* ---- submit -------------------------------------------------------------- */

/* The whole of f, NUL-terminated (owned), or NULL on a read error. */
static char *cli_read_stream(FILE *f)
{
    cli_buf b = {0};
    cli_buf_str(&b, "");
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        cli_buf_add(&b, chunk, n);
    if (ferror(f) || b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* The contents of FILE, or stdin for "-", into *text (owned). */
static int cli_read_input(const cli_args *a, const char *name, char **text)
{
    bool is_stdin = strcmp(name, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(name, "rb");
    *text = f != NULL ? cli_read_stream(f) : NULL;
    int saved = errno;
    if (f != NULL && !is_stdin)
        fclose(f);
    if (*text == NULL)
        return cli_usage_error(a, "cannot read %s: %s", is_stdin ? "stdin" : name, strerror(saved));
    return CLI_EXIT_OK;
}

static int cli_check_trans_json(const cli_args *a, const char *name, const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    const char *shown = strcmp(name, "-") == 0 ? "stdin" : name;
    int rc = CLI_EXIT_OK;
    if (j == NULL)
        rc = cli_usage_error(a, "%s is not JSON: line %d, column %d: %s", shown, err.line, err.column,
                             err.text);
    else if (!json_is_object(j))
        rc = cli_usage_error(a, "%s: a TransGlobal JSON object is expected", shown);
    json_decref(j);
    return rc;
}

static int cli_run_submit(const cli_args *a)
{
    char *text = NULL;
    int rc = cli_read_input(a, a->operand, &text);
    if (rc == CLI_EXIT_OK)
        rc = cli_check_trans_json(a, a->operand, text);
    if (rc == CLI_EXIT_OK)
        rc = cli_post_and_print(a, text);
    free(text);
    return rc;
}

/* ---- force-stop, retry ---------------------------------------------------- */

/* POSTs {"gid": GID} to the command's route. */
static int cli_run_gid_post(const cli_args *a)
{
    json_t *body = json_pack("{s:s}", "gid", a->operand);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        fprintf(stderr, "%s %s: the gid is not valid UTF-8\n", a->prog, a->cmd->name);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_post_and_print(a, text);
    free(text);
    return rc;
}

/* ---- help ---------------------------------------------------------------- */

static int cli_run_help(const cli_args *a)
{
    if (a->operand == NULL) {
        cli_print_overview(stdout, a->prog);
        return CLI_EXIT_OK;
    }
    if (strcmp(a->operand, "serve") == 0) {
        config_print_usage(stdout, a->prog);
        return CLI_EXIT_OK;
    }
    const cli_command *cmd = cli_find_command(a->operand);
    if (cmd == NULL)
        return cli_usage_error(a, "unknown subcommand '%s'", a->operand);
    cli_print_command_help(stdout, a->prog, cmd);
    return CLI_EXIT_OK;
}

/* ---- entry --------------------------------------------------------------- */

int cli_main(int argc, char **argv)
{
    const char *prog = cli_basename(argc > 0 ? argv[0] : NULL);
    if (argc < 2) {
        cli_print_overview(stderr, prog);
        return CLI_EXIT_USAGE;
    }
    const cli_command *cmd = cli_find_command(argv[1]);
    if (cmd == NULL) {
        fprintf(stderr, "%s: unknown subcommand '%s' (see %s help)\n", prog, argv[1], prog);
        return CLI_EXIT_USAGE;
    }
    cli_args a = {.prog = prog, .cmd = cmd, .timeout_s = CLI_DEFAULT_TIMEOUT_S,
                  .since_ms = -1, .until_ms = -1};
    int rc = cli_parse_argv(&a, argc, argv);
    if (rc == CLI_EXIT_OK && a.help) {
        cli_print_command_help(stdout, prog, cmd);
        return CLI_EXIT_OK;
    }
    if (rc == CLI_EXIT_OK)
        rc = cli_complete_args(&a);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (cmd->route == NULL)
        return cmd->run(&a);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s %s: libcurl failed to initialise\n", prog, cmd->name);
        return CLI_EXIT_UNREACHABLE;
    }
    rc = cmd->run(&a);
    curl_global_cleanup();
    return rc;
}
