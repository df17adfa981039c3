/* endpoint.c - the ingest endpoint table and the matcher over normalised paths. */
#include "endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C(x) CATEGORY_BIT(CAT_##x)
#define ATTACH (C(ATTACHMENT) | C(ATTACHMENT_ITEM))

static const struct endpoint builtin[] = {
	{ "store", "store/", EP_POST | EP_GET, 200, EP_REPLY_ID, EP_BODY_OPTIONAL, EP_MIME_ANY, EP_LIMIT_EVENT,
	  EP_KIND_STORE, 0, false, 0 },
	{ "envelope", "envelope/", EP_POST, 200, EP_REPLY_ID, EP_BODY_REQUIRED, EP_MIME_ANY, EP_LIMIT_ENVELOPE,
	  EP_KIND_ENVELOPE, 0, false, 0 },
	{ "minidump", "minidump/?", EP_POST, 200, EP_REPLY_UUID, EP_BODY_REQUIRED, EP_MIME_ANY, EP_LIMIT_ATTACHMENT,
	  EP_KIND_OPAQUE, ATTACH | C(ERROR), true, 0 },
	{ "unreal", "unreal/{key}/", EP_POST, 200, EP_REPLY_UUID, EP_BODY_REQUIRED, EP_MIME_ANY,
	  EP_LIMIT_ATTACHMENTS, EP_KIND_OPAQUE, ATTACH | C(ERROR), true, 0 },
	{ "security", "security/", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_SECURITY, EP_LIMIT_EVENT,
	  EP_KIND_OPAQUE, C(SECURITY), false, 0 },
	{ "csp_report", "csp-report/", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_SECURITY,
	  EP_LIMIT_EVENT, EP_KIND_OPAQUE, C(SECURITY), false, 0 },
	{ "nel", "nel/", EP_POST, 200, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_NEL, EP_LIMIT_EVENT, EP_KIND_OPAQUE,
	  C(SECURITY), false, 0 },
	{ "attachments", "events/*/attachments/", EP_POST, 201, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_ANY,
	  EP_LIMIT_ATTACHMENTS, EP_KIND_OPAQUE, ATTACH, false, 0 },
	{ "cron", "cron/*/{key}/?", EP_POST | EP_GET, 202, EP_REPLY_EMPTY, EP_BODY_OPTIONAL, EP_MIME_ANY,
	  EP_LIMIT_EVENT, EP_KIND_OPAQUE, C(MONITOR), true, 0 },
	{ "cron", "cron/*/?", EP_POST | EP_GET, 202, EP_REPLY_EMPTY, EP_BODY_OPTIONAL, EP_MIME_ANY, EP_LIMIT_EVENT,
	  EP_KIND_OPAQUE, C(MONITOR), true, 0 },
	/* OpenTelemetry (relay-server endpoints/integrations/otlp.rs): 202, empty; traces may be
	 * refused for a span limit, logs never are. */
	{ "otlp_traces", "integration/otlp/v1/traces/?", EP_POST, 202, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_OTLP,
	  EP_LIMIT_ENVELOPE, EP_KIND_OPAQUE, C(SPAN), false, 0 },
	{ "otlp_logs", "integration/otlp/v1/logs/?", EP_POST, 202, EP_REPLY_EMPTY, EP_BODY_REQUIRED, EP_MIME_OTLP,
	  EP_LIMIT_ENVELOPE, EP_KIND_OPAQUE, C(LOG_ITEM) | C(LOG_BYTE), true, 0 },
};

static const struct endpoint_table builtin_table = { builtin, sizeof(builtin) / sizeof(builtin[0]) };

static const struct endpoint tunnel = {
	"tunnel", "envelope/", EP_POST, 200, EP_REPLY_ID, EP_BODY_REQUIRED, EP_MIME_ANY, EP_LIMIT_ENVELOPE,
	EP_KIND_ENVELOPE, 0, false, 0,
};

const char *endpoint_pattern_check(const char *p)
{
	const char *q;

	if (*p == '/' || *p == '\0')
		return "must be a path after /api/<id>/, not starting with '/'";
	for (q = p; *q != '\0'; q++) {
		if (*q == '{' && strncmp(q, "{key}", 5) != 0)
			return "a '{' must start \"{key}\"";
		if (*q == '?' && strcmp(q - 1, "/?") != 0)
			return "'?' may only end the pattern, as \"/?\"";
		if (*q == '*' && (q[1] != '/' && q[1] != '\0'))
			return "'*' must be a whole segment";
		if ((unsigned char)*q <= ' ' || *q == '#' || *q == '%')
			return "must not contain spaces, '#' or '%'";
	}
	if (strstr(p, "//") != NULL)
		return "must not contain \"//\"";
	return NULL;
}

const struct endpoint_table *endpoint_builtin(void)
{
	return &builtin_table;
}

struct endpoint_table *endpoint_table_new(const struct endpoint *extra, size_t n)
{
	struct endpoint_table *t = calloc(1, sizeof(*t));
	struct endpoint *v = calloc(builtin_table.n + n, sizeof(*v));

	if (t == NULL || v == NULL) {
		free(t);
		free(v);
		return NULL;
	}
	memcpy(v, builtin_table.v, builtin_table.n * sizeof(*v));
	if (n > 0)
		memcpy(v + builtin_table.n, extra, n * sizeof(*v));
	t->v = v;
	t->n = builtin_table.n + n;
	return t;
}

void endpoint_table_free(struct endpoint_table *t)
{
	if (t == NULL)
		return;
	free((void *)t->v);
	free(t);
}

const struct endpoint *endpoint_tunnel(void)
{
	return &tunnel;
}

void endpoint_normalise(const char *in, char *out, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return;
	for (; *in != '\0' && n + 1 < len; in++) {
		if (*in == '/' && n > 0 && out[n - 1] == '/')
			continue;
		out[n++] = *in;
	}
	out[n] = '\0';
}

/* 1..2^63-1 in at most 19 digits, no sign, no overflow. */
static enum endpoint_result parse_id(const char *d, const char **end, long long *id)
{
	unsigned long long v = 0;
	const char *p = d;

	for (; isdigit((unsigned char)*p); p++) {
		if (v > (9223372036854775807ULL - (unsigned)(*p - '0')) / 10)
			return EP_BAD_PROJECT_ID;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*end = p;
	if (v == 0)
		return EP_BAD_PROJECT_ID;
	*id = (long long)v;
	return EP_MATCHED;
}

/* "<prefix>/api/<digits>/<endpoint>": a DSN may carry a path prefix, so take the last "/api/<id>/". */
static enum endpoint_result split_api_path(const char *path, long long *id, const char **endpoint)
{
	const char *p = NULL, *s = path, *d;
	enum endpoint_result r;

	while ((s = strstr(s, "/api/")) != NULL) {
		if (isdigit((unsigned char)s[5]))
			p = s;
		s += 4;  /* not 5: the '/' ending "/api/" may begin the next one ("/api/api/3/store/") */
	}
	if (p == NULL)
		return EP_NOT_FOUND;
	if ((r = parse_id(p + 5, &d, id)) != EP_MATCHED)
		return r;
	if (*d != '/')
		return EP_NOT_FOUND;
	*endpoint = d + 1;
	return EP_MATCHED;
}

/* One segment of ep at a "*" or "{key}" of the pattern. false when the segment is empty. */
static bool take_segment(const char **pat, const char **ep, struct endpoint_match *m, size_t *n)
{
	size_t seg = strcspn(*ep, "/"), room = sizeof(m->stored) - *n;
	int w;

	if (seg == 0)
		return false;
	if (**pat == '{') {
		if (seg >= sizeof(m->path_key))
			return false;
		snprintf(m->path_key, sizeof(m->path_key), "%.*s", (int)seg, *ep);
		w = snprintf(m->stored + *n, room, "{key}");
		*pat = strchr(*pat, '}') + 1;
	} else {
		w = snprintf(m->stored + *n, room, "%.*s", (int)seg, *ep);
		(*pat)++;
	}
	*ep += seg;
	if (w < 0 || (size_t)w >= room)
		return false;
	*n += (size_t)w;
	return true;
}

/* Match ep against one pattern; the {key} segment is copied out and replaced in m->stored. */
static bool match_one(const char *pat, const char *ep, struct endpoint_match *m)
{
	size_t n = 0;

	m->path_key[0] = m->stored[0] = '\0';
	while (*pat != '\0') {
		if (strcmp(pat, "/?") == 0) {
			if (!(*ep == '\0' || strcmp(ep, "/") == 0) || n + strlen(ep) >= sizeof(m->stored))
				return false;
			snprintf(m->stored + n, sizeof(m->stored) - n, "%s", ep);
			return true;
		}
		if (*pat == '*' || *pat == '{') {
			if (!take_segment(&pat, &ep, m, &n))
				return false;
			continue;
		}
		if (*pat != *ep || n + 1 >= sizeof(m->stored))
			return false;
		m->stored[n++] = *ep;
		m->stored[n] = '\0';
		pat++;
		ep++;
	}
	return *ep == '\0';
}

enum endpoint_result endpoint_match(const struct endpoint_table *t, const char *path, struct endpoint_match *m)
{
	const char *rest;
	enum endpoint_result r;

	memset(m, 0, sizeof(*m));
	if ((r = split_api_path(path, &m->project_id, &rest)) != EP_MATCHED)
		return r;
	for (size_t i = 0; i < t->n; i++) {
		if (match_one(t->v[i].pattern, rest, m)) {
			m->ep = &t->v[i];
			return EP_MATCHED;
		}
	}
	m->path_key[0] = m->stored[0] = '\0';
	return EP_NOT_FOUND;
}
