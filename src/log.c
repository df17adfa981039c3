/* log.c - leveled logfmt-ish lines on stderr; callers go through macros that test the level first. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int log_level_of(const char *name, enum log_level *lvl)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			if (lvl != NULL)
				*lvl = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_set_level(const char *name)
{
	return log_level_of(name, &log_threshold);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ %-5s ",
			      (int)(tv.tv_usec / 1000), level_names[lvl]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One fputs per line so concurrent writers (tests capture stderr) never interleave mid-line. */
	n = strlen(line);
	if (n < sizeof(line) - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	} else {
		line[sizeof(line) - 2] = '\n';
	}
	fputs(line, stderr);
}

const char *log_mask(const char *secret, char *buf, size_t len)
{
	size_t n;

	if (secret == NULL || *secret == '\0')
		return "-";
	/* Short values (the relay-side names like "wow") are not secrets; real keys are 32 chars. */
	n = strlen(secret);
	if (n < 16) {
		snprintf(buf, len, "%s", secret);
		return buf;
	}
	snprintf(buf, len, "%.4s****", secret);
	return buf;
}
