/* log.h - one logging API with levels; the level is checked before anything is formatted. */
#ifndef SENTRYQ_LOG_H
#define SENTRYQ_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern enum log_level log_threshold; /* the one global: read on every call, set once at start */

int log_set_level(const char *name); /* 0 or -1 for an unknown name */
/* The level a name means (debug, info, warn, error; any case) into *lvl (may be NULL). 0 or -1. */
int log_level_of(const char *name, enum log_level *lvl);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the first 4 characters of a credential, mask the rest: "a6f4****". */
const char *log_mask(const char *secret, char *buf, size_t len);

#define log_debug(...) do { if (log_threshold <= LOG_DEBUG) log_write(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_threshold <= LOG_INFO)  log_write(LOG_INFO,  __VA_ARGS__); } while (0)
#define log_warn(...)  do { if (log_threshold <= LOG_WARN)  log_write(LOG_WARN,  __VA_ARGS__); } while (0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
