/*
 * log.h — one line per event on stderr, as text or JSON lines.
 *
 * Text:  2026-11-21T23:50:00.123Z INFO  http listening on 0.0.0.0:36789
 * JSON:  {"time":"2026-11-21T23:50:00.123Z","level":"info","msg":"...","gid":"..."}
 * Lines that concern a transaction carry its gid (log_gid_*). Each line is
 * written with one write(2), so lines from several threads never interleave.
 */
#ifndef DTMQ_LOG_H
#define DTMQ_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the threshold and the format. Unknown names leave the current value
 * and return -1. Defaults: info, text. */
int log_configure(const char *level, const char *format);
int log_enabled(log_level level);

void log_write(log_level level, const char *gid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, NULL, __VA_ARGS__)
#define log_gid_debug(gid, ...) log_write(LOG_DEBUG, (gid), __VA_ARGS__)
#define log_gid_info(gid, ...) log_write(LOG_INFO, (gid), __VA_ARGS__)
#define log_gid_warn(gid, ...) log_write(LOG_WARN, (gid), __VA_ARGS__)
#define log_gid_error(gid, ...) log_write(LOG_ERROR, (gid), __VA_ARGS__)

#endif
