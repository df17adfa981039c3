/* legacyq.c - the old pipeline's records parsed, paired with their bodies and translated into
 * queue entries by ingest's own steps (endpoint, intake, route, entry). */
#include "legacyq.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "intake.h"
#include "route.h"

#define SECONDS_MAX 100000000000LL  /* a timestamp above this is taken as milliseconds already */

__attribute__((format(printf, 4, 5)))
static enum legacyq_result say(enum legacyq_result r, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* ---- records ---- */

static long long ms_of_seconds(double s)
{
	if (!(s > 0) || s > 1e15)
		return 0;
	return s >= (double)SECONDS_MAX ? (long long)s : (long long)(s * 1000.0);
}

/* The key suffix exactly as the Lua script built it: an integer as digits, a float as Lua's
 * tostring ("%.14g"), a string as it is (printable, no spaces). */
static int read_timestamp(const json_t *ts, struct legacyq_record *rec)
{
	char *end;
	double v;
	size_t n;

	if (json_is_integer(ts)) {
		json_int_t i = json_integer_value(ts);

		snprintf(rec->suffix, sizeof(rec->suffix), "%" JSON_INTEGER_FORMAT, i);
		rec->time_ms = ms_of_seconds((double)i);
		return 0;
	}
	if (json_is_real(ts)) {
		snprintf(rec->suffix, sizeof(rec->suffix), "%.14g", json_real_value(ts));
		rec->time_ms = ms_of_seconds(json_real_value(ts));
		return 0;
	}
	if (!json_is_string(ts) || (n = json_string_length(ts)) == 0 || n >= sizeof(rec->suffix))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)json_string_value(ts)[i];

		if (c <= 0x20 || c >= 0x7f)
			return -1;
	}
	memcpy(rec->suffix, json_string_value(ts), n + 1);
	errno = 0;
	v = strtod(rec->suffix, &end);
	rec->time_ms = *end == '\0' && errno == 0 ? ms_of_seconds(v) : 0;
	return 0;
}

static long long read_length(const char *v)
{
	long long n = 0;

	if (v == NULL || *v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (!isdigit((unsigned char)*v) || n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return n;
}

/* The first value of a header (names compared case-insensitively, as evhttp finds them). */
static const char *header(const struct legacyq_record *rec, const char *name)
{
	for (size_t i = 0; i < rec->nh; i++)
		if (strcasecmp(rec->hname[i], name) == 0)
			return rec->hval[i];
	return NULL;
}

/* Each value in record order; a list is one value per element (repeated header lines). */
static enum legacyq_result read_headers(json_t *h, struct legacyq_record *rec, char *why, size_t whylen)
{
	const char *name;
	json_t *v;

	json_object_foreach(h, name, v) {
		size_t n = json_is_array(v) ? json_array_size(v) : 1;

		for (size_t i = 0; i < n; i++) {
			const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;

			if (!json_is_string(one))
				return say(LEGACYQ_MALFORMED, why, whylen, "a header value is not a string");
			if (rec->nh >= LEGACYQ_HEADERS_MAX)
				return say(LEGACYQ_MALFORMED, why, whylen, "more than %d header values",
					   LEGACYQ_HEADERS_MAX);
			rec->hname[rec->nh] = name;
			rec->hval[rec->nh++] = json_string_value(one);
		}
	}
	return LEGACYQ_OK;
}

enum legacyq_result legacyq_parse(const char *text, size_t len, struct legacyq_record *rec, char *why,
				  size_t whylen)
{
	json_error_t jerr;
	const json_t *uri, *ts;
	json_t *h;

	memset(rec, 0, sizeof(*rec));
	rec->content_length = -1;
	if (len > LEGACYQ_RECORD_MAX)
		return say(LEGACYQ_MALFORMED, why, whylen, "over %d bytes", LEGACYQ_RECORD_MAX);
	rec->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (rec->doc == NULL)
		/* jansson's text may quote the record: only the place is shown */
		return say(LEGACYQ_MALFORMED, why, whylen, "not JSON (line %d, column %d)", jerr.line, jerr.column);
	if (!json_is_object(rec->doc))
		return say(LEGACYQ_MALFORMED, why, whylen, "not a JSON object");
	uri = json_object_get(rec->doc, "uri");
	if (!json_is_string(uri) || json_string_length(uri) == 0)
		return say(LEGACYQ_MALFORMED, why, whylen, "no uri");
	rec->uri = json_string_value(uri);
	if (rec->uri[0] != '/' && strncmp(rec->uri, "http://", 7) != 0 && strncmp(rec->uri, "https://", 8) != 0)
		return say(LEGACYQ_MALFORMED, why, whylen, "the uri is not a request target");
	ts = json_object_get(rec->doc, "timestamp");
	if (ts == NULL)
		return say(LEGACYQ_MALFORMED, why, whylen, "no timestamp");
	if (read_timestamp(ts, rec) != 0)
		return say(LEGACYQ_MALFORMED, why, whylen, "the timestamp is not a number or a key suffix");
	h = json_object_get(rec->doc, "header");
	if (!json_is_object(h))
		return say(LEGACYQ_MALFORMED, why, whylen, "no header object");
	if (read_headers(h, rec, why, whylen) != LEGACYQ_OK)
		return LEGACYQ_MALFORMED;
	rec->content_length = read_length(header(rec, "content-length"));
	return LEGACYQ_OK;
}

void legacyq_record_free(struct legacyq_record *rec)
{
	if (rec == NULL)
		return;
	json_decref(rec->doc);
	rec->doc = NULL;
	rec->nh = 0;
}

int legacyq_body_key(const char *prefix, const struct legacyq_record *rec, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", prefix, rec->suffix);

	return n >= 0 && (size_t)n < len ? 0 : -1;
}

/* ---- bodies ---- */

enum legacyq_result legacyq_pair(const struct legacyq_record *rec, const char *const *later, size_t nlater,
				 const char *body, size_t body_len, char *why, size_t whylen)
{
	if (body == NULL)
		return say(LEGACYQ_UNPAIRED, why, whylen, "the body key is absent");
	for (size_t i = 0; i < nlater; i++)
		if (later[i] != NULL && strcmp(later[i], rec->suffix) == 0)
			return say(LEGACYQ_UNPAIRED, why, whylen, "overwritten by a later record of the same second");
	if (rec->content_length >= 0 && (unsigned long long)rec->content_length != (unsigned long long)body_len)
		return say(LEGACYQ_UNPAIRED, why, whylen,
			   "the body is %zu bytes, its content-length %lld (overwritten by another record of the "
			   "same second)", body_len, rec->content_length);
	return LEGACYQ_OK;
}

/* ---- entries ---- */

/* The request target's normalised path and raw query, as httpd and evhttp give them to ingest. */
static void split_uri(const char *uri, char *path, size_t plen, const char **query, size_t *qlen)
{
	char raw[ENDPOINT_PATH_MAX];
	const char *q;
	size_t n;

	if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
		const char *p = strchr(uri + (uri[4] == 's' ? 8 : 7), '/');

		uri = p != NULL ? p : "/";
	}
	n = strcspn(uri, "?#");
	snprintf(raw, sizeof(raw), "%.*s", (int)(n < sizeof(raw) ? n : sizeof(raw) - 1), uri);
	endpoint_normalise(raw, path, plen);
	q = uri[n] == '?' ? uri + n + 1 : "";
	*query = q;
	*qlen = strcspn(q, "#");
}

static bool has_line_break(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* Kept headers as "Name: value\n" lines, bounded as ingest bounds them. */
static enum legacyq_result kept_headers(const struct legacyq_record *rec, const struct config *cfg,
					enum auth_carrier carrier, struct legacyq_entry *out, char *why, size_t whylen)
{
	size_t n = 0;

	if ((out->headers = malloc(LEGACYQ_KEPT_MAX)) == NULL)
		return LEGACYQ_NOMEM;
	for (size_t i = 0; i < rec->nh; i++) {
		const char *name = intake_header_kept(cfg, rec->hname[i], carrier), *v = rec->hval[i];
		size_t kl, vl;

		if (name == NULL)
			continue;
		if (has_line_break(v))
			return say(LEGACYQ_MALFORMED, why, whylen, "a %s value has a line break", name);
		kl = strlen(name);
		vl = strlen(v);
		if (n + kl + vl + 4 > LEGACYQ_KEPT_MAX)
			return say(LEGACYQ_REFUSED, why, whylen, "431 request headers too large");
		memcpy(out->headers + n, name, kl);
		memcpy(out->headers + n + kl, ": ", 2);
		memcpy(out->headers + n + kl + 2, v, vl);
		n += kl + vl + 3;
		out->headers[n - 1] = '\n';
	}
	out->headers[n] = '\0';
	return LEGACYQ_OK;
}

/* Which endpoint: the tunnel path, or "<prefix>/api/<id>/<endpoint>" (find_endpoint in ingest). */
static enum legacyq_result find_endpoint(const struct config *cfg, const char *path, struct endpoint_match *m,
					 long *path_id, bool *tunnel, char *why, size_t whylen)
{
	memset(m, 0, sizeof(*m));
	*path_id = -1;
	*tunnel = cfg->tunnel_path != NULL && cfg->tunnel_path[0] != '\0' && strcmp(path, cfg->tunnel_path) == 0;
	if (*tunnel) {
		m->ep = endpoint_tunnel();
		snprintf(m->stored, sizeof(m->stored), "envelope/");
		return LEGACYQ_OK;
	}
	switch (endpoint_match(endpoint_builtin(), path, m)) {
	case EP_MATCHED:
		*path_id = (long)m->project_id;
		return LEGACYQ_OK;
	case EP_BAD_PROJECT_ID:
		return say(LEGACYQ_REFUSED, why, whylen, "400 invalid project id in the path");
	case EP_NOT_FOUND:
		break;
	}
	return say(LEGACYQ_REFUSED, why, whylen, "404 not an ingest endpoint");
}

static enum legacyq_result fill(const struct legacyq_record *rec, const struct config *cfg, bool tunnel,
				const struct endpoint_match *m, const struct auth_info *auth, const struct intake_body *info,
				const struct route_target *t, const char *body, size_t body_len,
				struct legacyq_entry *out, char *why, size_t whylen)
{
	const char *xff = header(rec, "x-forwarded-for");
	enum legacyq_result r = kept_headers(rec, cfg, auth->carrier, out, why, whylen);

	if (r != LEGACYQ_OK)
		return r;
	if (xff != NULL && has_line_break(xff))
		return say(LEGACYQ_MALFORMED, why, whylen, "an X-Forwarded-For value has a line break");
	if (tunnel)  /* the tunnel's own query is not Sentry's */
		out->query[0] = '\0';
	snprintf(out->xff, sizeof(out->xff), "%s", xff != NULL ? xff : "");
	snprintf(out->endpoint, sizeof(out->endpoint), "%s", tunnel ? "envelope/" : m->stored);
	snprintf(out->sdk_key, sizeof(out->sdk_key), "%s", auth->key);
	memcpy(out->event_id, info->event_id, sizeof(out->event_id));
	out->upstream = t->upstream;
	out->project = t->project;
	snprintf(out->route, sizeof(out->route), "%.64s/%ld", t->upstream->name, t->project->id);
	if ((cfg->redis_cluster.n > 0 ? entry_cluster_stream_key : entry_stream_key)(cfg->redis_prefix, t->upstream->name,
										      t->project->name, out->stream,
										      sizeof(out->stream)) != 0)
		return say(LEGACYQ_REFUSED, why, whylen, "503 the route's stream name is too long");
	out->e = (struct entry){
		.method = "POST", .endpoint = out->endpoint, .query = out->query, .headers = out->headers,
		.client_ip = out->xff, .sdk_key = out->sdk_key, .event_id = out->event_id, .carrier = auth->carrier,
		.has_secret = auth->has_secret, .categories = info->categories, .body = body, .body_len = body_len,
		.received_ms = 0, .first_ms = rec->time_ms,
	};
	return LEGACYQ_OK;
}

enum legacyq_result legacyq_translate(const struct legacyq_record *rec, const struct config *cfg,
				      const struct route *routes, const char *body, size_t body_len,
				      struct legacyq_entry *out, char *why, size_t whylen)
{
	char path[ENDPOINT_PATH_MAX], detail[256];
	struct endpoint_match m;
	struct intake_body info;
	struct auth_info auth;
	struct route_target t;
	enum intake_result ir;
	const char *query, *reason;
	size_t qlen;
	long path_id, route_id;
	bool tunnel;
	int status;
	enum legacyq_result r;

	memset(out, 0, sizeof(*out));
	memset(&auth, 0, sizeof(auth));
	split_uri(rec->uri, path, sizeof(path), &query, &qlen);
	if ((r = find_endpoint(cfg, path, &m, &path_id, &tunnel, why, whylen)) != LEGACYQ_OK)
		return r;
	/* The old script stored no method: every SDK request it queued was a POST. */
	if ((m.ep->methods & EP_POST) == 0)
		return say(LEGACYQ_REFUSED, why, whylen, "405 method not allowed on this endpoint");
	/* The query is the raw text up to '#', as evhttp hands it to ingest. */
	if ((out->query = malloc(qlen + 1)) == NULL)
		return LEGACYQ_NOMEM;
	memcpy(out->query, query, qlen);
	out->query[qlen] = '\0';
	ir = intake_body(cfg, m.ep, false, out->query, header(rec, "content-encoding"), header(rec, "content-type"), body,
			 body_len, &info);
	if (ir == INTAKE_NOMEM)
		return LEGACYQ_NOMEM;
	if (ir != INTAKE_OK) {
		reason = intake_reason(ir, &status);
		return say(LEGACYQ_REFUSED, why, whylen, "%d %s", status, reason);
	}
	ir = intake_auth(&m, path_id, header(rec, "x-sentry-auth"), header(rec, "authorization"), out->query,
			 info.header, info.header_len, &auth, &route_id, &status, &reason);
	intake_body_release(&info);
	if (ir != INTAKE_OK)
		return say(LEGACYQ_REFUSED, why, whylen, "%d %s", status, reason);
	if (route_lookup(routes, auth.key, auth.has_secret ? auth.secret : NULL, route_id, &t, detail,
			 sizeof(detail)) != 0)
		/* the route's detail may name the public key: not shown */
		return say(LEGACYQ_UNROUTABLE, why, whylen, "no routing rule takes its credentials (ingest answers 403)");
	return fill(rec, cfg, tunnel, &m, &auth, &info, &t, body, body_len, out, why, whylen);
}

void legacyq_entry_free(struct legacyq_entry *out)
{
	if (out == NULL)
		return;
	free(out->headers);
	free(out->query);
	out->headers = out->query = NULL;
}

/* ---- addresses ---- */

static int read_uint(const char *s, size_t n, long max, long *v)
{
	long x = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		x = x * 10 + (s[i] - '0');
	}
	if (x > max)
		return -1;
	*v = x;
	return 0;
}

enum legacyq_result legacyq_parse_address(const char *s, char *host, size_t hostlen, int *port, int *db,
					  char *why, size_t whylen)
{
	const char *h = s, *hend, *p, *slash;
	long v;

	if (s[0] == '[') {
		h = s + 1;
		if ((hend = strchr(h, ']')) == NULL || hend[1] != ':')
			return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB] ([v6]:PORT for IPv6)");
		p = hend + 2;
	} else {
		if ((hend = strchr(h, ':')) == NULL)
			return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB]: no port");
		p = hend + 1;
	}
	if (hend == h || (size_t)(hend - h) >= hostlen)
		return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB]: %s host", hend == h ? "no" : "too long a");
	for (const char *c = h; c < hend; c++)
		if (*c == '/' || isspace((unsigned char)*c) || (s[0] != '[' && *c == ':'))
			return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB]: a bad host");
	slash = strchr(p, '/');
	if (read_uint(p, slash != NULL ? (size_t)(slash - p) : strlen(p), 65535, &v) != 0 || v == 0)
		return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB]: the port is not 1..65535");
	*port = (int)v;
	*db = 0;
	if (slash != NULL) {
		if (read_uint(slash + 1, strlen(slash + 1), INT_MAX, &v) != 0)
			return say(LEGACYQ_MALFORMED, why, whylen, "want HOST:PORT[/DB]: the db is not a number");
		*db = (int)v;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	return LEGACYQ_OK;
}
