/*
 * cli_format.c — the text side of dtmq's command line (cli.h): parsing the
 * times an operator types (epoch ms or RFC 3339) and printing the server's
 * replies as aligned, human-readable tables. Everything printed is borrowed
 * from the jansson objects passed in; nothing here talks to the network.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CLI_TABLE_MAX_COLS 8
#define CLI_EPOCH_MS_MAX_DIGITS 15 /* 10^15 ms is the year 33658 */
#define CLI_MESSAGE_MAX 300        /* longest non-JSON reply body quoted in an error */

/* ---- times --------------------------------------------------------------- */

/* Reads exactly n decimal digits at *p into *out and advances *p. */
static bool cli_take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool cli_take_char(const char **p, const char *allowed)
{
    if (**p == '\0' || strchr(allowed, **p) == NULL)
        return false;
    (*p)++;
    return true;
}

static bool cli_is_leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int cli_days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && cli_is_leap_year(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static long long cli_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int cli_parse_epoch_ms(const char *text, long long *ms)
{
    size_t n = strlen(text);
    if (n == 0 || n > CLI_EPOCH_MS_MAX_DIGITS)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)text[i]))
            return -1;
    *ms = strtoll(text, NULL, 10);
    return 0;
}

/* ".250" → 250 ms (digits past the third are ignored); no dot → 0. */
static bool cli_take_fraction(const char **p, int *frac_ms)
{
    *frac_ms = 0;
    if (**p != '.')
        return true;
    (*p)++;
    if (!isdigit((unsigned char)**p))
        return false;
    int scale = 100;
    for (; isdigit((unsigned char)**p); (*p)++, scale /= 10)
        *frac_ms += scale * (**p - '0');
    return true;
}

/* "Z" → 0; "+01:30" → 5400; "-05:00" → -18000. */
static bool cli_take_offset(const char **p, long long *offset_s)
{
    if (cli_take_char(p, "Zz")) {
        *offset_s = 0;
        return true;
    }
    char sign = **p;
    int oh, om;
    if (!cli_take_char(p, "+-") || !cli_take_digits(p, 2, &oh) || !cli_take_char(p, ":") ||
        !cli_take_digits(p, 2, &om) || oh > 23 || om > 59)
        return false;
    *offset_s = (sign == '-' ? -1 : 1) * (oh * 3600LL + om * 60LL);
    return true;
}

static int cli_parse_rfc3339(const char *text, long long *ms)
{
    const char *p = text;
    int y, mo, d, h = 0, mi = 0, s = 0, frac = 0;
    long long offset = 0;
    if (!cli_take_digits(&p, 4, &y) || !cli_take_char(&p, "-") || !cli_take_digits(&p, 2, &mo) ||
        !cli_take_char(&p, "-") || !cli_take_digits(&p, 2, &d))
        return -1;
    if (*p != '\0') { /* a time follows the date */
        if (!cli_take_char(&p, "Tt ") || !cli_take_digits(&p, 2, &h) || !cli_take_char(&p, ":") ||
            !cli_take_digits(&p, 2, &mi) || !cli_take_char(&p, ":") || !cli_take_digits(&p, 2, &s) ||
            !cli_take_fraction(&p, &frac) || !cli_take_offset(&p, &offset) || *p != '\0')
            return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > cli_days_in_month(y, mo) || h > 23 || mi > 59 || s > 60)
        return -1;
    long long secs = cli_days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + s - offset;
    if (secs < 0)
        return -1;
    *ms = secs * 1000 + frac;
    return 0;
}

int cli_parse_time(const char *text, long long *ms)
{
    if (text == NULL || ms == NULL)
        return -1;
    if (cli_parse_epoch_ms(text, ms) == 0)
        return 0;
    return cli_parse_rfc3339(text, ms);
}

/* ---- tables -------------------------------------------------------------- */

static const char *cli_cell(const char *value)
{
    return value != NULL && value[0] != '\0' ? value : "-";
}

/* Prints header and nrows rows of ncols cells (row-major; NULL or "" shows
 * as "-"), columns padded to their widest cell, two spaces apart. */
static void cli_print_table(FILE *out, const char *const *header, size_t ncols,
                            const char *const *cells, size_t nrows)
{
    size_t width[CLI_TABLE_MAX_COLS] = {0};
    if (ncols > CLI_TABLE_MAX_COLS)
        ncols = CLI_TABLE_MAX_COLS;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = strlen(header[c]);
        for (size_t r = 0; r < nrows; r++) {
            size_t w = strlen(cli_cell(cells[r * ncols + c]));
            if (w > width[c])
                width[c] = w;
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *v = r == 0 ? header[c] : cli_cell(cells[(r - 1) * ncols + c]);
            if (c + 1 == ncols)
                fprintf(out, "%s\n", v);
            else
                fprintf(out, "%-*s  ", (int)width[c], v);
        }
    }
}

/* The string member key of obj, NULL when absent or not a string. */
static const char *cli_get_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The next cron time of t, NULL once it finished: the store keeps the last
 * one, but a finished transaction is never run again. */
static const char *cli_next_cron(const json_t *t)
{
    const char *status = cli_get_str(t, "status");
    if (status != NULL && (strcmp(status, "succeed") == 0 || strcmp(status, "failed") == 0))
        return NULL;
    return cli_get_str(t, "next_cron_time");
}

/* ---- query --------------------------------------------------------------- */

#define CLI_LABEL_WIDTH 16

/* One "label  value" line; nothing when value is NULL or empty. */
static void cli_print_field(FILE *out, const char *label, const char *value)
{
    if (value != NULL && value[0] != '\0')
        fprintf(out, "%-*s %s\n", CLI_LABEL_WIDTH, label, value);
}

static void cli_print_next_cron(FILE *out, const json_t *t)
{
    const char *next = cli_next_cron(t);
    if (next == NULL || next[0] == '\0')
        return;
    json_int_t interval = json_integer_value(json_object_get(t, "next_cron_interval"));
    if (interval > 0)
        fprintf(out, "%-*s %s (interval %lld s)\n", CLI_LABEL_WIDTH, "next cron:", next,
                (long long)interval);
    else
        cli_print_field(out, "next cron:", next);
}

/* ext_data holds dtmq's retry bookkeeping as JSON text:
 * {"retry_count":N,"last_error":"..."}; anything else is shown raw. */
static void cli_print_ext_data(FILE *out, const json_t *t)
{
    const char *ext = cli_get_str(t, "ext_data");
    if (ext == NULL || ext[0] == '\0')
        return;
    json_t *parsed = json_loads(ext, 0, NULL);
    if (!json_is_object(parsed)) {
        cli_print_field(out, "ext data:", ext);
        json_decref(parsed);
        return;
    }
    json_t *count = json_object_get(parsed, "retry_count");
    if (json_is_integer(count))
        fprintf(out, "%-*s %lld\n", CLI_LABEL_WIDTH, "retries:", (long long)json_integer_value(count));
    cli_print_field(out, "last error:", cli_get_str(parsed, "last_error"));
    json_decref(parsed);
}

/* The options that differ from "unset": "timeout_to_fail=600s retry_interval=60s". */
static void cli_print_options(FILE *out, const json_t *t)
{
    static const char *const seconds[] = {"timeout_to_fail", "request_timeout", "retry_interval"};
    char line[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof(seconds) / sizeof(seconds[0]) && len < sizeof(line); i++) {
        json_int_t v = json_integer_value(json_object_get(t, seconds[i]));
        if (v > 0)
            len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%s=%llds", len ? " " : "",
                                    seconds[i], (long long)v);
    }
    json_int_t limit = json_integer_value(json_object_get(t, "retry_limit"));
    if (limit > 0 && len < sizeof(line))
        len += (size_t)snprintf(line + len, sizeof(line) - len, "%sretry_limit=%lld", len ? " " : "",
                                (long long)limit);
    if (json_is_true(json_object_get(t, "concurrent")) && len < sizeof(line))
        snprintf(line + len, sizeof(line) - len, "%sconcurrent", len ? " " : "");
    cli_print_field(out, "options:", line);
}

static void cli_print_global(FILE *out, const json_t *t)
{
    cli_print_field(out, "gid:", cli_get_str(t, "gid"));
    cli_print_field(out, "type:", cli_get_str(t, "trans_type"));
    cli_print_field(out, "status:", cli_get_str(t, "status"));
    cli_print_field(out, "created:", cli_get_str(t, "create_time"));
    cli_print_field(out, "updated:", cli_get_str(t, "update_time"));
    cli_print_field(out, "finished:", cli_get_str(t, "finish_time"));
    cli_print_field(out, "rolled back:", cli_get_str(t, "rollback_time"));
    cli_print_field(out, "rollback reason:", cli_get_str(t, "rollback_reason"));
    cli_print_next_cron(out, t);
    cli_print_field(out, "owner:", cli_get_str(t, "owner"));
    cli_print_ext_data(out, t);
    cli_print_options(out, t);
    cli_print_field(out, "query prepared:", cli_get_str(t, "query_prepared"));
    cli_print_field(out, "custom data:", cli_get_str(t, "custom_data"));
    cli_print_field(out, "result:", cli_get_str(t, "result"));
}

static void cli_print_branches(FILE *out, const json_t *branches)
{
    static const char *const header[] = {"BRANCH", "OP", "STATUS", "FINISHED", "URL"};
    enum { NCOLS = 5 };
    size_t n = json_array_size(branches);
    if (n == 0) {
        fprintf(out, "no branches\n");
        return;
    }
    const char **cells = calloc(n * NCOLS, sizeof(*cells));
    if (cells == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *b = json_array_get(branches, i);
        cells[i * NCOLS + 0] = cli_get_str(b, "branch_id");
        cells[i * NCOLS + 1] = cli_get_str(b, "op");
        cells[i * NCOLS + 2] = cli_get_str(b, "status");
        cells[i * NCOLS + 3] = cli_get_str(b, "finish_time");
        cells[i * NCOLS + 4] = cli_get_str(b, "url");
    }
    cli_print_table(out, header, NCOLS, cells, n);
    free(cells);
}

void cli_print_transaction(FILE *out, const json_t *reply)
{
    cli_print_global(out, json_object_get(reply, "transaction"));
    fputc('\n', out);
    cli_print_branches(out, json_object_get(reply, "branches"));
}

/* ---- list ---------------------------------------------------------------- */

void cli_print_transaction_list(FILE *out, const json_t *transactions)
{
    static const char *const header[] = {"GID", "TYPE", "STATUS", "CREATED", "NEXT CRON"};
    enum { NCOLS = 5 };
    size_t n = json_array_size(transactions);
    const char **cells = calloc(n * NCOLS + 1, sizeof(*cells));
    if (cells == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(transactions, i);
        cells[i * NCOLS + 0] = cli_get_str(t, "gid");
        cells[i * NCOLS + 1] = cli_get_str(t, "trans_type");
        cells[i * NCOLS + 2] = cli_get_str(t, "status");
        cells[i * NCOLS + 3] = cli_get_str(t, "create_time");
        cells[i * NCOLS + 4] = cli_next_cron(t);
    }
    cli_print_table(out, header, NCOLS, cells, n);
    free(cells);
}

/* ---- errors -------------------------------------------------------------- */

/* A copy of body on one line: newlines become spaces, ends trimmed, at most
 * CLI_MESSAGE_MAX characters (then "..."). */
static char *cli_one_line(const char *body)
{
    while (isspace((unsigned char)*body))
        body++;
    size_t n = strlen(body);
    while (n > 0 && isspace((unsigned char)body[n - 1]))
        n--;
    bool cut = n > CLI_MESSAGE_MAX;
    if (cut)
        n = CLI_MESSAGE_MAX;
    char *line = malloc(n + 4);
    if (line == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        line[i] = body[i] == '\n' || body[i] == '\r' ? ' ' : body[i];
    strcpy(line + n, cut ? "..." : "");
    return line;
}

char *cli_reply_message(const char *body)
{
    if (body == NULL || body[strspn(body, " \t\r\n")] == '\0')
        return strdup("(empty reply)");
    json_t *j = json_loads(body, 0, NULL);
    const char *text = cli_get_str(j, "message");
    if (text == NULL || text[0] == '\0')
        text = cli_get_str(j, "dtm_result");
    char *msg = text != NULL && text[0] != '\0' ? strdup(text) : cli_one_line(body);
    json_decref(j);
    return msg;
}
