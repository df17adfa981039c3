/* slot.c - hash slots, command keys, redirections and the slot map, without sockets. */
#include "slot.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint16_t slot_crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned slot_of(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open != NULL) {
		size_t rest = len - (size_t)(open - key) - 1;

		close = memchr(open + 1, '}', rest);
		if (close != NULL && close > open + 1)
			return slot_crc16(open + 1, (size_t)(close - open - 1)) & (SLOT_COUNT - 1);
	}
	return slot_crc16(key, len) & (SLOT_COUNT - 1);
}

static bool arg_is(const char *const *argv, const size_t *lens, int i, const char *lit)
{
	size_t n = lens != NULL ? lens[i] : strlen(argv[i]);

	return n == strlen(lit) && strncasecmp(argv[i], lit, n) == 0;
}

/* EVAL script numkeys key...: the first key, -1 when numkeys is 0 (or unreadable). */
static int eval_key(int argc, const char *const *argv, const size_t *lens)
{
	char num[16];
	size_t n;

	if (argc < 4)
		return -1;
	n = lens != NULL ? lens[2] : strlen(argv[2]);
	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, argv[2], n);
	num[n] = '\0';
	return atoi(num) > 0 ? 3 : -1;
}

int slot_command_key(int argc, const char *const *argv, const size_t *lens)
{
	static const char *const keyless[] = { "WAIT", "PING", "INFO", "CLUSTER", "ROLE", "AUTH", "SELECT",
					       "ASKING", "READONLY", "SCRIPT", "DBSIZE", "TIME", "CLIENT", "CONFIG" };
	static const char *const second[] = { "XGROUP", "XINFO", "MEMORY", "OBJECT" };

	if (argc < 1)
		return -1;
	for (size_t i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++)
		if (arg_is(argv, lens, 0, keyless[i]))
			return -1;
	if (arg_is(argv, lens, 0, "EVAL") || arg_is(argv, lens, 0, "EVALSHA"))
		return eval_key(argc, argv, lens);
	for (size_t i = 0; i < sizeof(second) / sizeof(second[0]); i++)
		if (arg_is(argv, lens, 0, second[i]))
			return argc > 2 ? 2 : -1;
	if (arg_is(argv, lens, 0, "XREAD") || arg_is(argv, lens, 0, "XREADGROUP")) {
		for (int i = 1; i + 1 < argc; i++)
			if (arg_is(argv, lens, i, "STREAMS"))
				return i + 1;
		return -1;
	}
	return argc > 1 ? 1 : -1;
}

/* "host:port" (the host may be empty, or an IPv6 literal, bracketed or not: the port follows the
 * last ':') into host and port. */
static bool split_addr(const char *s, size_t len, char *host, size_t hostlen, int *port)
{
	const char *colon = NULL;
	size_t hl;
	long p = 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	if (colon == NULL || colon == s + len - 1 || len - (size_t)(colon - s) > 6)
		return false;
	for (const char *c = colon + 1; c < s + len; c++) {
		if (*c < '0' || *c > '9')
			return false;
		p = p * 10 + (*c - '0');
	}
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
		s++, hl -= 2;
	if (p < 1 || p > 65535 || hl >= hostlen)
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (int)p;
	return true;
}

enum slot_redirect slot_redirect_parse(const char *err, size_t len, unsigned *slot, char *host, size_t hostlen,
				       int *port)
{
	enum slot_redirect kind;
	const char *p, *end = err + len, *sp;
	unsigned long s = 0;

	if (len >= 8 && strncmp(err, "TRYAGAIN", 8) == 0)
		return SLOT_REDIRECT_TRYAGAIN;
	if (len >= 11 && strncmp(err, "CLUSTERDOWN", 11) == 0)
		return SLOT_REDIRECT_DOWN;
	if (len > 6 && strncmp(err, "MOVED ", 6) == 0)
		kind = SLOT_REDIRECT_MOVED, p = err + 6;
	else if (len > 4 && strncmp(err, "ASK ", 4) == 0)
		kind = SLOT_REDIRECT_ASK, p = err + 4;
	else
		return SLOT_REDIRECT_NONE;
	if ((sp = memchr(p, ' ', (size_t)(end - p))) == NULL || sp == p || sp - p > 5)
		return SLOT_REDIRECT_BAD;
	for (const char *c = p; c < sp; c++) {
		if (*c < '0' || *c > '9')
			return SLOT_REDIRECT_BAD;
		s = s * 10 + (unsigned long)(*c - '0');
	}
	if (s >= SLOT_COUNT || !split_addr(sp + 1, (size_t)(end - sp - 1), host, hostlen, port))
		return SLOT_REDIRECT_BAD;
	*slot = (unsigned)s;
	return kind;
}

/* [start, end, [host, port, ...], replicas...] into one range. */
static bool read_range(const redisReply *e, struct slot_range *out)
{
	const redisReply *m;

	if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER ||
	    e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
		return false;
	m = e->element[2];
	if (m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
		return false;
	if (e->element[0]->integer < 0 || e->element[1]->integer >= SLOT_COUNT ||
	    e->element[0]->integer > e->element[1]->integer || m->element[1]->integer < 1 ||
	    m->element[1]->integer > 65535 || m->element[0]->len >= SLOT_HOST_MAX)
		return false;
	out->start = (unsigned)e->element[0]->integer;
	out->end = (unsigned)e->element[1]->integer;
	/* "?" (Redis 7: the endpoint is unknown) is taken like "": the node that answered. */
	snprintf(out->host, sizeof(out->host), "%s", strcmp(m->element[0]->str, "?") == 0 ? "" : m->element[0]->str);
	out->port = (int)m->element[1]->integer;
	return true;
}

enum slot_map slot_map_parse(const redisReply *r, struct slot_range **out, size_t *n)
{
	struct slot_range *ranges;

	*out = NULL;
	*n = 0;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return SLOT_MAP_BAD;
	if ((ranges = calloc(r->elements ? r->elements : 1, sizeof(*ranges))) == NULL)
		return SLOT_MAP_NOMEM;
	for (size_t i = 0; i < r->elements; i++) {
		if (!read_range(r->element[i], &ranges[i])) {
			free(ranges);
			return SLOT_MAP_BAD;
		}
	}
	*out = ranges;
	*n = r->elements;
	return SLOT_MAP_OK;
}

size_t slot_map_uncovered(const struct slot_range *ranges, size_t n)
{
	static const size_t words = SLOT_COUNT / 64;
	uint64_t seen[SLOT_COUNT / 64];
	size_t missing = 0;

	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n; i++)
		for (unsigned s = ranges[i].start; s <= ranges[i].end && s < SLOT_COUNT; s++)
			seen[s / 64] |= (uint64_t)1 << (s % 64);
	for (size_t w = 0; w < words; w++)
		missing += (size_t)(64 - __builtin_popcountll(seen[w]));
	return missing;
}
