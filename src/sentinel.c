/* sentinel.c - Sentinel addresses and replies, parsed without sockets. */
#include "sentinel.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

__attribute__((format(printf, 3, 4)))
static enum sentinel_parse bad(char *why, size_t whylen, const char *fmt, ...);

static enum sentinel_parse bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return SENTINEL_BAD;
}

enum sentinel_parse sentinel_parse_addr(const char *s, char *host, size_t hostlen, int *port, char *why,
					size_t whylen)
{
	const char *end = s + strlen(s), *h = s, *colon;
	size_t n;
	bool v6 = *s == '[';

	if (v6) {
		const char *rb = strchr(s, ']');

		if (rb == NULL)
			return bad(why, whylen, "has an IPv6 literal without its ']'");
		h = s + 1;
		n = (size_t)(rb - h);
		colon = rb + 1;
		if (*colon != '\0' && *colon != ':')
			return bad(why, whylen, "has junk after the IPv6 literal");
	} else {
		colon = strchr(s, ':');
		colon = colon != NULL ? colon : end;
		n = (size_t)(colon - s);
	}
	if (!text_host_ok(h, n, v6))
		return bad(why, whylen, v6 ? "has a bad IPv6 literal" : "must be host:port (host: letters, digits, '.', '-', '_')");
	if (n + 1 > hostlen)
		return bad(why, whylen, "host too long");
	*port = SENTINEL_DEFAULT_PORT;
	if (*colon == ':' && (*port = text_port(colon + 1, end)) == 0)
		return bad(why, whylen, "port must be between 1 and 65535");
	memcpy(host, h, n);
	host[n] = '\0';
	return SENTINEL_OK;
}

static bool is_string(const redisReply *r)
{
	return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str != NULL;
}

enum sentinel_master sentinel_master_reply(const redisReply *r, char *host, size_t hostlen, int *port, char *why,
					   size_t whylen)
{
	char text[SENTINEL_HOST_MAX + 8];

	if (r == NULL || r->type == REDIS_REPLY_NIL)
		return SENTINEL_MASTER_UNKNOWN;
	if (r->type == REDIS_REPLY_ERROR) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s", r->str != NULL ? r->str : "error");
		return SENTINEL_MASTER_ERROR;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_string(r->element[0]) ||
	    !is_string(r->element[1]) || r->element[0]->len == 0 || r->element[0]->len >= SENTINEL_HOST_MAX ||
	    strlen(r->element[0]->str) != r->element[0]->len)
		return SENTINEL_MASTER_BAD;
	/* Sentinel reports an IPv6 address bare: bracket it to reuse the address parser. */
	snprintf(text, sizeof(text), strchr(r->element[0]->str, ':') != NULL ? "[%s]:%s" : "%s:%s",
		 r->element[0]->str, r->element[1]->str);
	if (sentinel_parse_addr(text, host, hostlen, port, why, whylen) != SENTINEL_OK)
		return SENTINEL_MASTER_BAD;
	return SENTINEL_MASTER_OK;
}

enum sentinel_role sentinel_role_reply(const redisReply *r)
{
	const redisReply *kind;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_string(r->element[0]))
		return SENTINEL_ROLE_OTHER;
	kind = r->element[0];
	if (strcmp(kind->str, "master") == 0)
		return SENTINEL_ROLE_MASTER;
	if (strcmp(kind->str, "slave") == 0 || strcmp(kind->str, "replica") == 0)
		return SENTINEL_ROLE_REPLICA;
	return SENTINEL_ROLE_OTHER;
}

/* The next space-separated word of *p into w (at most wlen - 1 characters); false when none. */
static bool word(const char **p, char *w, size_t wlen)
{
	size_t n;

	*p += strspn(*p, " ");
	n = strcspn(*p, " ");
	if (n == 0 || n >= wlen)
		return false;
	memcpy(w, *p, n);
	w[n] = '\0';
	*p += n;
	return true;
}

enum sentinel_switch sentinel_switch_message(const redisReply *r, const char *master_name, char *host, size_t hostlen,
					     int *port)
{
	char name[256], oldip[SENTINEL_HOST_MAX], oldport[8], ip[SENTINEL_HOST_MAX], newport[8], addr[SENTINEL_HOST_MAX + 10];
	const char *p;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is_string(r->element[0]) ||
	    !is_string(r->element[1]))
		return SENTINEL_SWITCH_BAD;
	if (strcmp(r->element[0]->str, "subscribe") == 0)
		return SENTINEL_SWITCH_OTHER;
	if (strcmp(r->element[0]->str, "message") != 0 || strcmp(r->element[1]->str, SENTINEL_CHANNEL) != 0 ||
	    !is_string(r->element[2]))
		return SENTINEL_SWITCH_BAD;
	p = r->element[2]->str;
	if (!word(&p, name, sizeof(name)) || !word(&p, oldip, sizeof(oldip)) || !word(&p, oldport, sizeof(oldport)) ||
	    !word(&p, ip, sizeof(ip)) || !word(&p, newport, sizeof(newport)) || *(p + strspn(p, " ")) != '\0')
		return SENTINEL_SWITCH_BAD;
	if (strcmp(name, master_name) != 0)
		return SENTINEL_SWITCH_OTHER;
	snprintf(addr, sizeof(addr), strchr(ip, ':') != NULL ? "[%s]:%s" : "%s:%s", ip, newport);
	if (sentinel_parse_addr(addr, host, hostlen, port, NULL, 0) != SENTINEL_OK)
		return SENTINEL_SWITCH_BAD;
	return SENTINEL_SWITCH_OURS;
}
