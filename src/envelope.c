/* envelope.c - event ids and the dsn from request bodies, header-line rewrite, fresh uuid4 ids. */
#include "envelope.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DSN_MAX_PID_DIGITS 18 /* fits a long without overflow checks */

size_t envelope_header_len(const char *body, size_t len)
{
	const char *nl = len ? memchr(body, '\n', len) : NULL;

	return nl ? (size_t)(nl - body) : len;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
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
		int v = hexval((unsigned char)s[i]);
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

int envelope_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1])
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

/* After a top-level "event_id" string at i: 1 when it is not a key, else the id's parse result. */
static int id_value(const char *b, size_t i, size_t len, char id[ENVELOPE_ID_LEN + 1])
{
	while (i < len && is_ws(b[i]))
		i++;
	if (i == len || b[i] != ':')
		return 1;
	for (i++; i < len && is_ws(b[i]); i++)
		;
	if (i == len || b[i] != '"')
		return -1;
	size_t end = string_end(b, i + 1, len);
	if (end == len)
		return -1;
	return parse_id(b + i + 1, end - i - 1, id);
}

/*
 * One pass without building a tree (store bodies reach 1 MB): track bracket depth, skip
 * strings, and take the first "event_id" key at depth 1. Not a validator: bad JSON is left
 * to Sentry.
 */
int envelope_store_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1])
{
	size_t i = 0;
	int depth = 0;

	while (i < len && is_ws(body[i]))
		i++;
	if (i == len || body[i] != '{')
		return -1;
	for (; i < len; i++) {
		char c = body[i];
		if (c == '"') {
			size_t start = i + 1;
			i = string_end(body, start, len);
			if (i == len)
				return -1;
			if (depth == 1 && i - start == 8 && memcmp(body + start, "event_id", 8) == 0) {
				int rc = id_value(body, i + 1, len, id);
				if (rc <= 0)
					return rc;
			}
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth <= 0)
				return -1;
		}
	}
	return -1;
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

int envelope_dsn(const char *body, size_t len, char *key, size_t keylen, long *project_id)
{
	json_t *h = load_header(body, len);
	int rc;

	if (!h)
		return -1;
	json_t *dsn = json_object_get(h, "dsn");
	if (!dsn || json_is_null(dsn))
		rc = 1;
	else if (!json_is_string(dsn))
		rc = -1;
	else
		rc = parse_dsn(json_string_value(dsn), key, keylen, project_id);
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

int envelope_rewrite(const char *body, size_t len, const char *new_dsn, const char *old_key,
		     const char *new_key, char **out, size_t *outlen)
{
	size_t hlen = envelope_header_len(body, len), rest = len - hlen;
	json_t *h = load_header(body, len);
	char *hdr = NULL, *buf;
	int rc = -1;

	if (!h)
		return -1;
	int changed = rewrite_fields(h, new_dsn, old_key, new_key);
	if (changed <= 0) {
		rc = changed == 0 ? 1 : -1;
		goto done;
	}
	/* No JSON_ENSURE_ASCII: unicode stays raw, as the SDK sent it. */
	hdr = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!hdr)
		goto done;
	size_t nlen = strlen(hdr);
	buf = malloc(nlen + rest + 1);
	if (!buf)
		goto done;
	memcpy(buf, hdr, nlen);
	if (rest)
		memcpy(buf + nlen, body + hlen, rest);
	buf[nlen + rest] = '\0';
	*out = buf;
	*outlen = nlen + rest;
	rc = 0;
done:
	free(hdr);
	json_decref(h);
	return rc;
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
