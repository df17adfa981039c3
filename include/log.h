/* log.h - one logging API with levels and two line formats; the level is checked before
 * anything is formatted. A line is a message and, optionally, the event's fields (upstream,
 * route, status, ...): text lines append them as key=value, JSON lines (log.format = "json") are
 * one object per line, {"ts", "level", "msg", fields...}. */
#ifndef SENTRYQ_LOG_H
#define SENTRYQ_LOG_H

#include <stddef.h>
#include <sys/time.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format {
	LOG_FORMAT_TEXT = 0,   /* "2026-01-01T00:00:00.000Z info  message key=value" */
	LOG_FORMAT_JSON,       /* {"ts":"2026-01-01T00:00:00.000Z","level":"info","msg":"message","key":value} */
};

/* The one global: read on every call, set once at start (level and format). */
struct log_settings {
	enum log_level threshold;
	enum log_format format;
};
extern struct log_settings log_settings;

#define LOG_LINE_MAX 4096

/* What a field holds. */
enum log_field_type {
	LOG_FIELD_STR = 0,
	LOG_FIELD_INT,
	LOG_FIELD_REAL,
};

/* One field of a line; keys must not be "ts", "level" or "msg". A NULL string is written as "-"
 * (text) or null (JSON). */
struct log_field {
	const char *key;
	enum log_field_type type;
	const char *s;
	long long i;
	double d;
};

#define LOG_STR(k, v) { .key = (k), .type = LOG_FIELD_STR, .s = (v) }
#define LOG_INT(k, v) { .key = (k), .type = LOG_FIELD_INT, .i = (long long)(v) }
#define LOG_REAL(k, v) { .key = (k), .type = LOG_FIELD_REAL, .d = (double)(v) }
/* The fields and their count, as log_kv takes them: LOG_FIELDS(LOG_STR("upstream", u), LOG_INT("status", s)). */
#define LOG_FIELDS(...) (const struct log_field[]){ __VA_ARGS__ }, \
	sizeof((const struct log_field[]){ __VA_ARGS__ }) / sizeof(struct log_field)

int log_set_level(const char *name); /* 0 or -1 for an unknown name */
/* The level a name means (debug, info, warn, error; any case) into *lvl (may be NULL). 0 or -1. */
int log_level_of(const char *name, enum log_level *lvl);
/* The format a name means ("text", "json"; any case) into *fmt (may be NULL). 0 or -1. */
int log_format_of(const char *name, enum log_format *fmt);
int log_set_format(const char *name); /* 0 or -1 for an unknown name */

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_kv(enum log_level lvl, const struct log_field *fields, size_t nfields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* One line, newline included, into buf (NUL-terminated, truncated to len, and in JSON still one
 * complete object). Returns the length written. What log_write and log_kv print. */
size_t log_format_line(char *buf, size_t len, enum log_format format, const struct timeval *tv,
		       enum log_level lvl, const struct log_field *fields, size_t nfields, const char *msg);

/* Keep the first 4 characters of a credential, mask the rest: "a6f4****". */
const char *log_mask(const char *secret, char *buf, size_t len);

#define log_debug(...) do { if (log_settings.threshold <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_settings.threshold <= LOG_INFO)  log_write(LOG_INFO,  __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (log_settings.threshold <= LOG_WARN)  log_write(LOG_WARN,  __VA_ARGS__); } while (0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#define log_kv_debug(...) do { if (log_settings.threshold <= LOG_DEBUG) log_kv(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_kv_info(...)  do { if (log_settings.threshold <= LOG_INFO)  log_kv(LOG_INFO,  __VA_ARGS__); } while (0)
#define log_kv_warn(...)  do { if (log_settings.threshold <= LOG_WARN)  log_kv(LOG_WARN,  __VA_ARGS__); } while (0)
#define log_kv_error(...) log_kv(LOG_ERROR, __VA_ARGS__)

#endif
