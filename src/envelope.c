/* envelope.c - event ids and the dsn from request bodies, header-line rewrite, fresh uuid4 ids. */
#include "envelope.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

#define DSN_MAX_PID_DIGITS 18 /* fits a long without overflow checks */

size_t envelope_header_len(const char *body, size_t len)
{
	const char *nl = len ? memchr(body, '\n', len) : NULL;

	return nl ? (size_t)(nl - body) : len;
}

/* 32 hex digits, or the 8-4-4-4-12 dashed form; written as 32 lowercase hex + NUL. */
static int parse_id(const char *s, size_t n, char id[ENVELOPE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	int dashed = (n == 36);
	size_t o = 0;

	if (n != 32 && n != 36)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
			if (s[i] != '-')
				return -1;
			continue;
		}
		int v = text_hexval((unsigned char)s[i]);
		if (v < 0)
			return -1;
		id[o++] = hex[v];
	}
	id[o] = '\0';
	return 0;
}

/* The header line as a JSON object; the body size is already bounded by the caller. */
static json_t *load_header(const char *body, size_t len)
{
	json_t *h = json_loadb(body, envelope_header_len(body, len), 0, NULL);

	if (h && !json_is_object(h)) {
		json_decref(h);
		h = NULL;
	}
	return h;
}

enum envelope_result envelope_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1])
{
	/* The header line is one JSON object: the store body's top-level scan, bounded to that line,
	 * is enough and is much cheaper than parsing it (this runs for every envelope ingested). */
	return envelope_store_event_id(body, envelope_header_len(body, len), id);
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Index of the quote closing a string whose content starts at i, or len if unterminated. */
static size_t string_end(const char *b, size_t i, size_t len)
{
	while (i < len) {
		const char *q = memchr(b + i, '"', len - i);
		if (!q)
			break;
		size_t j = (size_t)(q - b), k = j;
		while (k > i && b[k - 1] == '\\')
			k--;
		if (((j - k) & 1) == 0)
			return j;
		i = j + 1;
	}
	return len;
}

/*
 * One pass without building a tree (store bodies reach 1 MB): track bracket depth, skip
 * strings, and find the value of the first top-level `key`. Returns the index of the value's
 * first byte, or len when the key is absent or the text is not a JSON object. Not a validator:
 * bad JSON is left to Sentry.
 */
static size_t top_value(const char *body, size_t len, const char *key)
{
	size_t i = 0, klen = strlen(key);
	int depth = 0;

	while (i < len && is_ws(body[i]))
		i++;
	if (i == len || body[i] != '{')
		return len;
	for (; i < len; i++) {
		char c = body[i];
		if (c == '"') {
			size_t start = i + 1;
			i = string_end(body, start, len);
			if (i == len)
				return len;
			if (depth == 1 && i - start == klen && memcmp(body + start, key, klen) == 0) {
				size_t v = i + 1;
				while (v < len && is_ws(body[v]))
					v++;
				if (v < len && body[v] == ':') {
					for (v++; v < len && is_ws(body[v]); v++)
						;
					return v;
				}
			}
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth <= 0)
				return len;
		}
	}
	return len;
}

/* The string value at v (a '"'): its content [v+1, end). */
static enum envelope_result string_at(const char *b, size_t v, size_t len, size_t *end)
{
	if (v >= len || b[v] != '"')
		return ENVELOPE_MALFORMED;
	*end = string_end(b, v + 1, len);
	return *end == len ? ENVELOPE_MALFORMED : ENVELOPE_OK;
}

enum envelope_result envelope_store_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1])
{
	size_t v = top_value(body, len, "event_id"), end;

	if (v == len)
		return ENVELOPE_NONE;
	if (string_at(body, v, len, &end) != ENVELOPE_OK || parse_id(body + v + 1, end - v - 1, id) != 0)
		return ENVELOPE_MALFORMED;
	return ENVELOPE_OK;
}

enum envelope_result envelope_store_type(const char *body, size_t len, char *type, size_t typelen)
{
	size_t v = top_value(body, len, "type"), end;

	if (v == len)
		return ENVELOPE_NONE;
	if (string_at(body, v, len, &end) != ENVELOPE_OK || end - v - 1 >= typelen)
		return ENVELOPE_MALFORMED;
	memcpy(type, body + v + 1, end - v - 1);
	type[end - v - 1] = '\0';
	return ENVELOPE_OK;
}

/* Last path segment: all digits, > 0; a single trailing '/' is tolerated. */
static int parse_pid(const char *path, size_t plen, long *project_id)
{
	if (plen > 0 && path[plen - 1] == '/')
		plen--;
	size_t s = plen;
	while (s > 0 && path[s - 1] != '/')
		s--;
	if (s == 0 || plen == s || plen - s > DSN_MAX_PID_DIGITS)
		return -1;
	long v = 0;
	for (size_t i = s; i < plen; i++) {
		if (path[i] < '0' || path[i] > '9')
			return -1;
		v = v * 10 + (path[i] - '0');
	}
	if (v <= 0)
		return -1;
	*project_id = v;
	return 0;
}

/* {scheme}://{key}[:{secret}]@{host}[:{port}]/[{path}/]{project_id}[?query] */
static int parse_dsn(const char *dsn, char *key, size_t keylen, long *project_id)
{
	const char *sep = strstr(dsn, "://");
	if (!sep || sep == dsn)
		return -1;
	const char *auth = sep + 3;
	size_t alen = strcspn(auth, "/?#");
	const char *at = NULL;
	for (size_t i = 0; i < alen; i++) /* the last '@': a host never holds one */
		if (auth[i] == '@')
			at = auth + i;
	if (!at || at + 1 == auth + alen || auth[alen] != '/')
		return -1;
	size_t klen = 0;
	while (auth + klen < at && auth[klen] != ':') {
		unsigned char c = (unsigned char)auth[klen];
		if (c <= ' ' || c == 0x7f)
			return -1;
		klen++;
	}
	if (klen == 0 || klen >= keylen)
		return -1;
	const char *path = auth + alen;
	if (parse_pid(path, strcspn(path, "?#"), project_id) < 0)
		return -1;
	memcpy(key, auth, klen);
	key[klen] = '\0';
	return 0;
}

enum envelope_result envelope_dsn(const char *body, size_t len, char *key, size_t keylen, long *project_id)
{
	json_t *h = load_header(body, len);
	enum envelope_result rc;

	if (!h)
		return ENVELOPE_MALFORMED;
	json_t *dsn = json_object_get(h, "dsn");
	if (!dsn || json_is_null(dsn))
		rc = ENVELOPE_NONE;
	else if (!json_is_string(dsn))
		rc = ENVELOPE_MALFORMED;
	else
		rc = parse_dsn(json_string_value(dsn), key, keylen, project_id) == 0 ? ENVELOPE_OK : ENVELOPE_MALFORMED;
	json_decref(h);
	return rc;
}

/* Replace in place (jansson keeps the key's position). 1 changed, 0 not, -1 error. */
static int set_string(json_t *obj, const char *k, const char *val)
{
	const char *cur = json_string_value(json_object_get(obj, k));

	if (!cur || strcmp(cur, val) == 0)
		return 0;
	return json_object_set_new(obj, k, json_string(val)) == 0 ? 1 : -1;
}

static int rewrite_fields(json_t *h, const char *new_dsn, const char *old_key, const char *new_key)
{
	int changed = 0, rc;

	if (new_dsn) {
		if ((rc = set_string(h, "dsn", new_dsn)) < 0)
			return -1;
		changed |= rc;
	}
	json_t *trace = json_object_get(h, "trace");
	const char *pk = json_string_value(json_object_get(trace, "public_key"));
	if (old_key && new_key && pk && strcmp(pk, old_key) == 0) {
		if ((rc = set_string(trace, "public_key", new_key)) < 0)
			return -1;
		changed |= rc;
	}
	return changed;
}

enum envelope_result envelope_rewrite_header(const char *body, size_t len, const char *new_dsn, const char *old_key,
					     const char *new_key, char **header, size_t *header_len, size_t *replaced)
{
	json_t *h = load_header(body, len);
	enum envelope_result rc = ENVELOPE_NOMEM;
	int changed;

	if (!h)
		return ENVELOPE_MALFORMED;
	changed = rewrite_fields(h, new_dsn, old_key, new_key);
	if (changed <= 0) {
		rc = changed == 0 ? ENVELOPE_NONE : ENVELOPE_NOMEM;
	} else if ((*header = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
		/* No JSON_ENSURE_ASCII: unicode stays raw, as the SDK sent it. */
		*header_len = strlen(*header);
		*replaced = envelope_header_len(body, len);
		rc = ENVELOPE_OK;
	}
	json_decref(h);
	return rc;
}

enum envelope_result envelope_rewrite(const char *body, size_t len, const char *new_dsn, const char *old_key,
				      const char *new_key, char **out, size_t *outlen)
{
	size_t nlen, hlen, rest;
	char *hdr = NULL, *buf;
	enum envelope_result rc = envelope_rewrite_header(body, len, new_dsn, old_key, new_key, &hdr, &nlen, &hlen);

	if (rc != ENVELOPE_OK)
		return rc;
	rest = len - hlen;
	if ((buf = malloc(nlen + rest + 1)) == NULL) {
		free(hdr);
		return ENVELOPE_NOMEM;
	}
	memcpy(buf, hdr, nlen);
	if (rest)
		memcpy(buf + nlen, body + hlen, rest);
	buf[nlen + rest] = '\0';
	free(hdr);
	*out = buf;
	*outlen = nlen + rest;
	return ENVELOPE_OK;
}

/* ---- ids: xoshiro256** seeded from /dev/urandom; ids need uniqueness, not secrecy ---- */

static uint64_t rng_state[4];
static pid_t rng_pid; /* process that seeded rng_state; a forked child reseeds */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(pid_t pid)
{
	uint64_t seed[4] = { 0 };
	struct timespec ts;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	int ok = fd >= 0 && read(fd, seed, sizeof(seed)) == (ssize_t)sizeof(seed);

	if (fd >= 0)
		close(fd);
	/* Fallback mixes the clock in nanoseconds with the pid: distinct per process even
	 * within one second. Always mixed in, so a short read cannot leave a zero state. */
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)pid << 48);
	for (int i = 0; i < 4; i++)
		rng_state[i] = (ok ? seed[i] : 0) ^ splitmix64(&x);
	rng_pid = pid;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t *s = rng_state;
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

void envelope_new_id(char id[ENVELOPE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	pid_t pid = getpid();

	if (pid != rng_pid)
		rng_seed(pid);
	uint64_t hi = rng_next(), lo = rng_next();
	for (int i = 0; i < 8; i++) {
		b[i] = (unsigned char)(hi >> (56 - 8 * i));
		b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
	for (int i = 0; i < 16; i++) {
		id[2 * i] = hex[b[i] >> 4];
		id[2 * i + 1] = hex[b[i] & 0xf];
	}
	id[ENVELOPE_ID_LEN] = '\0';
}

/* ---- item scan: the categories of an envelope, fed in pieces (decoded bodies stream in) ---- */

void envelope_scan_init(struct envelope_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->state = ENVELOPE_SCAN_HEADER;
}

/* An item header line is complete: its "type" gives the categories, its "length" the payload. */
static void item_header(struct envelope_scan *s)
{
	json_t *h;
	json_int_t n;

	if (s->line_len == 0 || s->line_overflow) {
		/* A blank line between items is tolerated; an oversized header is an unknown item. */
		if (s->line_overflow)
			s->cats |= CATEGORY_BIT(CAT_OTHER), s->items++;
		s->state = s->line_overflow ? ENVELOPE_SCAN_PAYLOAD_LINE : ENVELOPE_SCAN_ITEM;
		return;
	}
	s->items++;
	h = json_loadb(s->line, s->line_len, 0, NULL);
	const char *type = json_string_value(json_object_get(h, "type"));
	json_t *len = json_object_get(h, "length");

	s->cats |= type != NULL ? category_of_item(type, strlen(type)) : CATEGORY_BIT(CAT_OTHER);
	if (json_is_integer(len) && (n = json_integer_value(len)) >= 0) {
		s->skip = (size_t)n;
		s->state = ENVELOPE_SCAN_PAYLOAD_LEN;
	} else {
		s->state = ENVELOPE_SCAN_PAYLOAD_LINE;
	}
	json_decref(h);
}

/* Consume bytes of p up to and including a '\n' for states that read to the end of a line. */
static size_t to_newline(struct envelope_scan *s, const char *p, size_t n, bool keep, bool *ended)
{
	const char *nl = memchr(p, '\n', n);
	size_t take = nl != NULL ? (size_t)(nl - p) : n;

	if (keep) {
		if (s->line_len + take > sizeof(s->line))
			s->line_overflow = true;
		else
			memcpy(s->line + s->line_len, p, take), s->line_len += take;
	}
	*ended = nl != NULL;
	return nl != NULL ? take + 1 : take;
}

void envelope_scan_feed(struct envelope_scan *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t used;
		bool ended = false;

		switch (s->state) {
		case ENVELOPE_SCAN_HEADER:
			used = to_newline(s, p, n, false, &ended);
			if (ended)
				s->state = ENVELOPE_SCAN_ITEM;
			break;
		case ENVELOPE_SCAN_ITEM:
			used = to_newline(s, p, n, true, &ended);
			if (ended) {
				item_header(s);
				s->line_len = 0;
				s->line_overflow = false;
			}
			break;
		case ENVELOPE_SCAN_PAYLOAD_LEN:
			used = n < s->skip ? n : s->skip;
			s->skip -= used;
			if (s->skip == 0)
				s->state = ENVELOPE_SCAN_AFTER_PAYLOAD;
			break;
		case ENVELOPE_SCAN_AFTER_PAYLOAD:
			/* The '\n' after a length-framed payload is optional. */
			used = *p == '\n' ? 1 : 0;
			s->state = ENVELOPE_SCAN_ITEM;
			break;
		default: /* ENVELOPE_SCAN_PAYLOAD_LINE */
			used = to_newline(s, p, n, false, &ended);
			if (ended)
				s->state = ENVELOPE_SCAN_ITEM;
			break;
		}
		p += used;
		n -= used;
	}
}

category_mask envelope_scan_end(struct envelope_scan *s)
{
	/* A last item header without its newline still counts. An oversized one too: its bytes
	 * were not kept, so line_len alone says 0 when the line came in one piece and more when
	 * it came in several (fuzz_envelope: the categories depended on how the body was split). */
	if (s->state == ENVELOPE_SCAN_ITEM && (s->line_len > 0 || s->line_overflow)) {
		item_header(s);
		s->line_len = 0;
	}
	return s->cats;
}

category_mask envelope_categories(const char *body, size_t len)
{
	struct envelope_scan s;

	envelope_scan_init(&s);
	envelope_scan_feed(&s, body, len);
	return envelope_scan_end(&s);
}
