/* entry.c - queue entry <-> Redis fields, dead-letter fields, key names: written once, read once. */
#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_VERSION "1"

static void add(struct entry_fields *f, const char *name, const char *val, size_t len)
{
	f->name[f->n] = name;
	f->val[f->n] = val;
	f->len[f->n++] = len;
}

void entry_fields(const struct entry *e, long long now_ms, bool out_of_line, struct entry_fields *f)
{
	f->n = 0;
	snprintf(f->carrier, sizeof(f->carrier), "%d", e->carrier);
	snprintf(f->received, sizeof(f->received), "%lld", e->received_ms > 0 ? e->received_ms : now_ms);
	if (e->categories != CATEGORY_ALL)
		category_format(e->categories, ',', f->cats, sizeof(f->cats));
	add(f, "v", ENTRY_VERSION, 1);
	add(f, "m", e->method, strlen(e->method));
	add(f, "e", e->endpoint, strlen(e->endpoint));
	add(f, "q", e->query, strlen(e->query));
	add(f, "h", e->headers, strlen(e->headers));
	add(f, "ip", e->client_ip, strlen(e->client_ip));
	add(f, "k", e->sdk_key, strlen(e->sdk_key));
	add(f, "id", e->event_id, strlen(e->event_id));
	add(f, "c", f->carrier, strlen(f->carrier));
	add(f, "s", e->has_secret ? "1" : "0", 1);
	add(f, "t", f->received, strlen(f->received));
	/* No "cat" field means every category: entries written before categories existed read so. */
	if (e->categories != CATEGORY_ALL)
		add(f, "cat", f->cats, strlen(f->cats));
	if (e->first_ms > 0) {
		snprintf(f->first, sizeof(f->first), "%lld", e->first_ms);
		add(f, "t0", f->first, strlen(f->first));
	}
	if (e->rewritten_key != NULL && e->rewritten_key[0] != '\0')
		add(f, "rk", e->rewritten_key, strlen(e->rewritten_key));
	if (out_of_line) {
		snprintf(f->body_len, sizeof(f->body_len), "%zu", e->body_len);
		add(f, "bl", f->body_len, strlen(f->body_len));
	} else {
		add(f, "b", e->body, e->body_len);
	}
}

static bool is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

bool entry_is_field(const char *name, size_t len)
{
	static const char *const known[] = { "v", "m", "e", "q", "h", "ip", "k", "id", "c", "s", "t", "cat", "t0", "rk",
					     "b", "bl", ENTRY_FIELD_BODY_KEY };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (is(name, len, known[i]))
			return true;
	return false;
}

/* The "cat" field back into a mask. category_parse leaves "other" out (Sentry never names it in a
 * limit), but an entry classified CAT_OTHER (an envelope of unknown item types) must read back so:
 * read back as 0 it was never held, not even by an all-categories limit. */
static category_mask parse_cats(const char *val, size_t vlen)
{
	category_mask m = category_parse(val, vlen);

	for (size_t i = 0, j; i < vlen; i = j + 1) {
		for (j = i; j < vlen && val[j] != ','; j++)
			;
		if (is(val + i, j - i, "other"))
			m |= CATEGORY_BIT(CAT_OTHER);
	}
	return m;
}

/* One field into the entry. Values other than the body are NUL-terminated by their source. */
static void take(struct entry *e, const char *name, size_t nlen, const char *val, size_t vlen, bool *seen_cat,
		 long long *out_len)
{
	if (is(name, nlen, "m"))
		e->method = val;
	else if (is(name, nlen, "e"))
		e->endpoint = val;
	else if (is(name, nlen, "q"))
		e->query = val;
	else if (is(name, nlen, "h"))
		e->headers = val;
	else if (is(name, nlen, "ip"))
		e->client_ip = val;
	else if (is(name, nlen, "k"))
		e->sdk_key = val;
	else if (is(name, nlen, "id"))
		e->event_id = val;
	else if (is(name, nlen, "c"))
		e->carrier = atoi(val);
	else if (is(name, nlen, "s"))
		e->has_secret = vlen > 0 && val[0] == '1';
	else if (is(name, nlen, "t"))
		e->received_ms = atoll(val);
	else if (is(name, nlen, "t0"))
		e->first_ms = atoll(val);
	else if (is(name, nlen, "rk"))
		e->rewritten_key = val;
	else if (is(name, nlen, "cat"))
		e->categories = parse_cats(val, vlen), *seen_cat = true;
	else if (is(name, nlen, "b"))
		e->body = val, e->body_len = vlen;
	else if (is(name, nlen, "bl"))
		*out_len = atoll(val);
	else if (is(name, nlen, ENTRY_FIELD_BODY_KEY))
		e->body_key = vlen > 0 ? val : NULL;
}

enum entry_result entry_from_fields(struct entry *e, const char *const *names, const size_t *nlens,
				    const char *const *vals, const size_t *vlens, size_t n)
{
	bool seen_cat = false;
	long long out_len = -1;

	memset(e, 0, sizeof(*e));
	e->method = e->endpoint = e->query = e->headers = e->client_ip = e->sdk_key = e->event_id = "";
	e->rewritten_key = "";
	for (size_t i = 0; i < n; i++)
		take(e, names[i], nlens[i], vals[i], vlens[i], &seen_cat, &out_len);
	/* Written before categories were stored: any limit on the project holds it, as before. */
	if (!seen_cat)
		e->categories = CATEGORY_ALL;
	/* A body in the entry, or a key and a length: never both. */
	if (e->body_key != NULL && (e->body != NULL || out_len < 0))
		e->body_key = NULL;
	else if (e->body_key != NULL)
		e->body_len = (size_t)out_len;
	if (e->method[0] == '\0' || e->endpoint[0] == '\0' || (e->body == NULL && e->body_key == NULL))
		return ENTRY_DAMAGED;
	return ENTRY_OK;
}

const redisReply *entry_reply_field(const redisReply *kv, const char *name)
{
	size_t nlen = strlen(name);

	if (kv == NULL || kv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < kv->elements; i += 2) {
		const redisReply *k = kv->element[i], *v = kv->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && k->len == nlen && memcmp(k->str, name, nlen) == 0)
			return v->type == REDIS_REPLY_STRING ? v : NULL;
	}
	return NULL;
}

enum entry_result entry_from_reply(struct entry *e, const redisReply *kv)
{
	const char *names[ENTRY_FIELDS_MAX * 2], *vals[ENTRY_FIELDS_MAX * 2];
	size_t nlens[ENTRY_FIELDS_MAX * 2], vlens[ENTRY_FIELDS_MAX * 2], n = 0;

	if (kv == NULL || kv->type != REDIS_REPLY_ARRAY) {
		memset(e, 0, sizeof(*e));
		return ENTRY_DAMAGED;
	}
	/* Fields sentryq does not know (a dead letter's bookkeeping, a later version's) are skipped. */
	for (size_t i = 0; i + 1 < kv->elements && n < ENTRY_FIELDS_MAX * 2; i += 2) {
		const redisReply *k = kv->element[i], *v = kv->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !entry_is_field(k->str, k->len))
			continue;
		names[n] = k->str, nlens[n] = k->len, vals[n] = v->str, vlens[n] = v->len;
		n++;
	}
	return entry_from_fields(e, names, nlens, vals, vlens, n);
}

void entry_dead_fields(const struct entry_dead *d, struct entry_dead_fields *f)
{
	snprintf(f->status, sizeof(f->status), "%d", d->status);
	snprintf(f->attempts, sizeof(f->attempts), "%lld", d->attempts);
	snprintf(f->last, sizeof(f->last), "%lld", d->last_attempt_ms);
	snprintf(f->dead_at, sizeof(f->dead_at), "%lld", d->dead_at_ms);
	f->n = 0;
#define DEAD(k, v) do { f->name[f->n] = (k); f->val[f->n++] = (v); } while (0)
	DEAD("up", d->upstream);
	DEAD("pr", d->project);
	DEAD("src", d->stream);
	DEAD("oid", d->id);
	DEAD("reason", d->reason);
	DEAD("status", f->status);
	DEAD("attempts", f->attempts);
	DEAD("last", f->last);
	DEAD("dead_at", f->dead_at);
#undef DEAD
}

static int fits(int n, size_t len)
{
	return n >= 0 && (size_t)n < len ? 0 : -1;
}

int entry_stream_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%sq:%s:%s", prefix, upstream, project), len);
}

int entry_bytes_key(const char *prefix, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%sbytes", prefix), len);
}

int entry_dead_key(const char *prefix, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%sdead", prefix), len);
}

int entry_body_key(const char *prefix, const char *writer, long long ms, unsigned long long seq, char *buf,
		   size_t len)
{
	return fits(snprintf(buf, len, "%sb:%s:%lld-%llu", prefix, writer, ms, seq), len);
}

int entry_fleet_state_key(const char *prefix, const char *upstream, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s" ENTRY_FLEET_TAG "up:%s", prefix, upstream), len);
}

int entry_fleet_probe_key(const char *prefix, const char *upstream, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s" ENTRY_FLEET_TAG "probe:%s", prefix, upstream), len);
}

int entry_fleet_limits_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s" ENTRY_FLEET_TAG "rl:%s:%s", prefix, upstream, project), len);
}

int entry_cluster_stream_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s{%s:%s}q", prefix, upstream, project), len);
}

int entry_cluster_mirror_key(const char *prefix, const char *src_upstream, const char *src_project,
			     const char *upstream, const char *project, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s{%s:%s}m:%s:%s", prefix, src_upstream, src_project, upstream, project), len);
}

/* The length of key up to and including the '}' that closes its hash tag; 0 when it has none. */
static size_t tag_end(const char *key)
{
	const char *open = strchr(key, '{'), *close = open != NULL ? strchr(open + 1, '}') : NULL;

	return close != NULL && close > open + 1 ? (size_t)(close - key) + 1 : 0;
}

int entry_cluster_sibling_key(const char *key, const char *suffix, char *buf, size_t len)
{
	size_t n = tag_end(key);

	return n == 0 ? -1 : fits(snprintf(buf, len, "%.*s%s", (int)n, key, suffix), len);
}

int entry_cluster_body_key(const char *stream, const char *writer, long long ms, unsigned long long seq, char *buf,
			   size_t len)
{
	size_t n = tag_end(stream);

	return n == 0 ? -1 : fits(snprintf(buf, len, "%.*sb:%s:%lld-%llu", (int)n, stream, writer, ms, seq), len);
}

/* Copy s (NUL included) to *off and point *slot at it. */
static void put_str(char *base, size_t *off, const char **slot, const char *s)
{
	size_t l = strlen(s) + 1;

	memcpy(base + *off, s, l);
	*slot = base + *off;
	*off += l;
}

struct entry *entry_dup(const struct entry *e)
{
	const char *rk = e->rewritten_key != NULL ? e->rewritten_key : "";
	const char *bk = e->body_key != NULL ? e->body_key : "";
	const char *src[] = { e->method, e->endpoint, e->query, e->headers, e->client_ip, e->sdk_key, e->event_id,
			      rk, bk };
	size_t size = sizeof(struct entry), off = sizeof(struct entry);
	struct entry *d;

	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		size += strlen(src[i]) + 1;
	if ((d = malloc(size)) == NULL)
		return NULL;
	*d = *e;
	put_str((char *)d, &off, &d->method, e->method);
	put_str((char *)d, &off, &d->endpoint, e->endpoint);
	put_str((char *)d, &off, &d->query, e->query);
	put_str((char *)d, &off, &d->headers, e->headers);
	put_str((char *)d, &off, &d->client_ip, e->client_ip);
	put_str((char *)d, &off, &d->sdk_key, e->sdk_key);
	put_str((char *)d, &off, &d->event_id, e->event_id);
	put_str((char *)d, &off, &d->rewritten_key, rk);
	put_str((char *)d, &off, &d->body_key, bk);
	if (e->body_key == NULL)
		d->body_key = NULL;
	d->body = NULL;  /* the caller's to set */
	return d;
}
