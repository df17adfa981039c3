/* log.c - leveled lines on stderr, text or JSON; callers go through macros that test the level first. */
#include "log.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct log_settings log_settings = { LOG_INFO, LOG_FORMAT_TEXT };

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const format_names[] = { "text", "json" };

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
	return log_level_of(name, &log_settings.threshold);
}

int log_format_of(const char *name, enum log_format *fmt)
{
	for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
		if (strcasecmp(name, format_names[i]) == 0) {
			if (fmt != NULL)
				*fmt = (enum log_format)i;
			return 0;
		}
	}
	return -1;
}

int log_set_format(const char *name)
{
	return log_format_of(name, &log_settings.format);
}

/* ---- a bounded line: appends that do not fit leave the line as it was ---- */

struct line {
	char *p;
	size_t len, cap;   /* cap: what content may use (room for the closing bytes is kept apart) */
	bool full;
};

static bool add(struct line *l, const char *s, size_t n)
{
	if (l->full || l->len + n > l->cap) {
		l->full = true;
		return false;
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
	return true;
}

static bool adds(struct line *l, const char *s)
{
	return add(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p, 0 when there is none. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : 0;

	if (p[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string body: quotes, backslashes and control characters escaped, bad UTF-8 replaced. */
static void add_json_chars(struct line *l, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	while (*p && !l->full) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			esc[0] = '\\', esc[1] = (char)*p;
			add(l, esc, 2), p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			add(l, esc, 6), p++;
		} else if (*p < 0x80) {
			add(l, (const char *)p, 1), p++;
		} else if ((n = utf8_seq(p)) > 0) {
			add(l, (const char *)p, n), p += n;
		} else {
			add(l, "\\ufffd", 6), p++;
		}
	}
}

/* A quoted JSON string; the closing quote always has room (the content is cut instead). */
static void add_json_string(struct line *l, const char *s)
{
	if (!add(l, "\"", 1))
		return;
	l->cap--;
	add_json_chars(l, s);
	l->cap++;
	l->full = false;
	add(l, "\"", 1);
}

static void format_real(char *buf, size_t len, double d)
{
	if (isfinite(d))
		snprintf(buf, len, "%.3f", d);
	else
		snprintf(buf, len, "null");
}

/* One field into its own buffer first: a field either fits whole or is left out. */
static void add_field_json(struct line *l, const struct log_field *f)
{
	char tmp[1024];
	struct line t = { tmp, 0, sizeof(tmp) - 4, false };
	char num[40];

	add(&t, ",\"", 2);
	add_json_chars(&t, f->key);
	add(&t, "\":", 2);
	if (f->type == LOG_FIELD_INT)
		snprintf(num, sizeof(num), "%lld", f->i), adds(&t, num);
	else if (f->type == LOG_FIELD_REAL)
		format_real(num, sizeof(num), f->d), adds(&t, num);
	else if (f->s == NULL)
		adds(&t, "null");
	else
		add_json_string(&t, f->s);
	if (!t.full)
		add(l, tmp, t.len);
}

static bool needs_quotes(const char *s)
{
	return *s == '\0' || strpbrk(s, " \t\"=") != NULL;
}

/* key=value, or key="value" (quotes and backslashes escaped) when the value needs it; whole or not at all. */
static void add_field_text(struct line *l, const struct log_field *f)
{
	char tmp[1024], val[900];
	const char *v = val;
	size_t n = 0;

	if (f->type == LOG_FIELD_INT)
		snprintf(val, sizeof(val), "%lld", f->i);
	else if (f->type == LOG_FIELD_REAL)
		format_real(val, sizeof(val), f->d);
	else
		v = f->s != NULL ? f->s : "-";
	if (f->type == LOG_FIELD_STR && needs_quotes(v)) {
		val[n++] = '"';
		for (const char *p = v; *p && n < sizeof(val) - 3; p++) {
			if (*p == '"' || *p == '\\')
				val[n++] = '\\';
			val[n++] = *p;
		}
		val[n++] = '"';
		val[n] = '\0';
		v = val;
	}
	n = (size_t)snprintf(tmp, sizeof(tmp), " %s=%s", f->key, v);
	l->full = false;
	add(l, tmp, n < sizeof(tmp) ? n : sizeof(tmp) - 1);
}

static void timestamp(const struct timeval *tv, char *buf, size_t len)
{
	struct tm tm;
	size_t n;

	gmtime_r(&tv->tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(tv->tv_usec / 1000));
}

static size_t format_json(struct line *l, const char *ts, enum log_level lvl, const struct log_field *fields,
			  size_t nfields, const char *msg)
{
	adds(l, "{\"ts\":\""), adds(l, ts), adds(l, "\",\"level\":\""), adds(l, level_names[lvl]);
	adds(l, "\",\"msg\":");
	add_json_string(l, msg);
	for (size_t i = 0; i < nfields; i++) {
		l->full = false;
		add_field_json(l, &fields[i]);
	}
	return l->len;
}

size_t log_format_line(char *buf, size_t len, enum log_format format, const struct timeval *tv,
		       enum log_level lvl, const struct log_field *fields, size_t nfields, const char *msg)
{
	struct line l = { buf, 0, len > 3 ? len - 3 : 0, false };  /* "}" "\n" NUL */
	char ts[40];

	if (len < 128)
		return len > 0 ? (buf[0] = '\0', 0) : 0;
	timestamp(tv, ts, sizeof(ts));
	if (format == LOG_FORMAT_JSON) {
		format_json(&l, ts, lvl, fields, nfields, msg);
		buf[l.len++] = '}';
	} else {
		char head[64];

		snprintf(head, sizeof(head), "%s %-5s ", ts, level_names[lvl]);
		adds(&l, head);
		if (!add(&l, msg, strlen(msg))) {
			l.full = false;
			add(&l, msg, l.cap - l.len);  /* a long message is cut, as before */
		}
		for (size_t i = 0; i < nfields; i++)
			add_field_text(&l, &fields[i]);
	}
	buf[l.len++] = '\n';
	buf[l.len] = '\0';
	return l.len;
}

/* The format attribute lets -Wformat-nonliteral (clang's -Wformat=2) see fmt checked at the callers. */
static void emit(enum log_level lvl, const struct log_field *fields, size_t nfields, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static void emit(enum log_level lvl, const struct log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX / 2], line[LOG_LINE_MAX];
	struct timeval tv;

	gettimeofday(&tv, NULL);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_format_line(line, sizeof(line), log_settings.format, &tv, lvl, fields, nfields, msg);
	/* One fputs per line so concurrent writers (tests capture stderr) never interleave mid-line. */
	fputs(line, stderr);
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(lvl, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_kv(enum log_level lvl, const struct log_field *fields, size_t nfields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(lvl, fields, nfields, fmt, ap);
	va_end(ap);
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
