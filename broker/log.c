/*
 * log.c — the line logger declared in log.h. Formats the whole line into a
 * local buffer and hands it to the kernel in one write(2).
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = LOG_INFO;
static atomic_int json_format = 0;

static const char *level_names[] = {"debug", "info", "warn", "error"};
static const char *level_tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

int log_configure(const char *level, const char *format)
{
    int rc = 0;
    if (level != NULL) {
        int found = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(level, level_names[i]) == 0)
                found = i;
        if (found < 0)
            rc = -1;
        else
            atomic_store(&threshold, found);
    }
    if (format != NULL) {
        if (strcmp(format, "json") == 0)
            atomic_store(&json_format, 1);
        else if (strcmp(format, "text") == 0)
            atomic_store(&json_format, 0);
        else
            rc = -1;
    }
    return rc;
}

int log_enabled(log_level level)
{
    return (int)level >= atomic_load(&threshold);
}

static void format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_json_line(log_level level, const char *when, const char *gid, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "time", when, "level", level_names[level], "msg", msg);
    if (o == NULL)
        return;
    if (gid != NULL)
        json_object_set_new(o, "gid", json_string(gid));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* overwrite the NUL; we write n+1 bytes, not as a string */
    (void)!write(STDERR_FILENO, text, n + 1);
    text[n] = '\0';
    free(text);
}

void log_write(log_level level, const char *gid, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char when[40];
    format_time(when, sizeof(when));
    if (atomic_load(&json_format)) {
        write_json_line(level, when, gid, msg);
        return;
    }
    char line[2300];
    int n = gid ? snprintf(line, sizeof(line), "%s %s %s gid=%s\n", when, level_tags[level], msg, gid)
                : snprintf(line, sizeof(line), "%s %s %s\n", when, level_tags[level], msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
