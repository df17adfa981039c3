/* category.c - data category names, and which categories each kind of request carries. */
#include "category.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const names[CAT__COUNT] = {
	"default", "error", "transaction", "security", "attachment", "attachment_item", "session", "profile",
	"profile_chunk", "profile_chunk_ui", "replay", "monitor", "span", "log_item", "log_byte", "feedback",
	"metric_bucket", "trace_metric", "uptime", "other",
};

static bool same(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

category_mask category_from_name(const char *name, size_t len)
{
	/* "other" is sentryq's own bucket for unknown items, never a name Sentry sends. */
	for (int c = 0; c < CAT_OTHER; c++)
		if (same(name, len, names[c]))
			return CATEGORY_BIT(c);
	return 0;
}

const char *category_name(enum category c)
{
	return c >= 0 && c < CAT__COUNT ? names[c] : "?";
}

category_mask category_parse(const char *list, size_t len)
{
	category_mask m = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i, a, b;

		while (j < len && list[j] != ';' && list[j] != ',')
			j++;
		for (a = i; a < j && (list[a] == ' ' || list[a] == '\t'); a++)
			;
		for (b = j; b > a && (list[b - 1] == ' ' || list[b - 1] == '\t'); b--)
			;
		m |= category_from_name(list + a, b - a);
		i = j + 1;
	}
	return m;
}

size_t category_format(category_mask m, char sep, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	for (int c = 0; c < CAT__COUNT; c++) {
		int w;

		if (!(m & CATEGORY_BIT(c)))
			continue;
		w = snprintf(buf + n, len - n, "%s%s", n ? (char[]){ sep, '\0' } : "", names[c]);
		if (w < 0 || (size_t)w >= len - n) {
			buf[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	return n;
}

/* Envelope item types (relay-server envelope/item.rs ItemType) and what each one counts as. */
static const struct {
	const char *type;
	category_mask cats;
} items[] = {
	{ "event", CATEGORY_BIT(CAT_ERROR) | CATEGORY_BIT(CAT_DEFAULT) },
	{ "transaction", CATEGORY_BIT(CAT_TRANSACTION) },
	{ "security", CATEGORY_BIT(CAT_SECURITY) },
	{ "raw_security", CATEGORY_BIT(CAT_SECURITY) },
	{ "nel", CATEGORY_BIT(CAT_SECURITY) },
	{ "attachment", CATEGORY_BIT(CAT_ATTACHMENT) | CATEGORY_BIT(CAT_ATTACHMENT_ITEM) },
	{ "form_data", CATEGORY_BIT(CAT_ATTACHMENT) | CATEGORY_BIT(CAT_ATTACHMENT_ITEM) },
	{ "session", CATEGORY_BIT(CAT_SESSION) },
	{ "sessions", CATEGORY_BIT(CAT_SESSION) },
	{ "profile", CATEGORY_BIT(CAT_PROFILE) },
	{ "profile_chunk", CATEGORY_BIT(CAT_PROFILE_CHUNK) },
	{ "replay_event", CATEGORY_BIT(CAT_REPLAY) },
	{ "replay_recording", CATEGORY_BIT(CAT_REPLAY) },
	{ "replay_video", CATEGORY_BIT(CAT_REPLAY) },
	{ "check_in", CATEGORY_BIT(CAT_MONITOR) },
	{ "log", CATEGORY_BIT(CAT_LOG_ITEM) | CATEGORY_BIT(CAT_LOG_BYTE) },
	{ "otel_log", CATEGORY_BIT(CAT_LOG_ITEM) | CATEGORY_BIT(CAT_LOG_BYTE) },
	{ "span", CATEGORY_BIT(CAT_SPAN) },
	{ "otel_span", CATEGORY_BIT(CAT_SPAN) },
	{ "otel_traces_data", CATEGORY_BIT(CAT_SPAN) },
	{ "trace_metric", CATEGORY_BIT(CAT_TRACE_METRIC) },
	{ "feedback", CATEGORY_BIT(CAT_FEEDBACK) },
	{ "user_report", CATEGORY_BIT(CAT_FEEDBACK) },
	{ "user_report_v2", CATEGORY_BIT(CAT_FEEDBACK) },
	{ "statsd", CATEGORY_BIT(CAT_METRIC_BUCKET) },
	{ "metric_buckets", CATEGORY_BIT(CAT_METRIC_BUCKET) },
	{ "client_report", 0 },
};

category_mask category_of_item(const char *type, size_t len)
{
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
		if (same(type, len, items[i].type))
			return items[i].cats;
	return CATEGORY_BIT(CAT_OTHER);
}

category_mask category_of_event(const char *type)
{
	if (type != NULL && strcmp(type, "transaction") == 0)
		return CATEGORY_BIT(CAT_TRANSACTION);
	return CATEGORY_BIT(CAT_ERROR) | CATEGORY_BIT(CAT_DEFAULT);
}
