/* request.c - rebuild a queued entry for its upstream: real id, key and secret; body kept byte for byte. */
#define _GNU_SOURCE  /* memmem */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "codec.h"
#include "envelope.h"


static char *own(struct request *rq, char *s)
{
	if (s == NULL)
		return NULL;
	if (rq->nowned == sizeof(rq->owned) / sizeof(rq->owned[0])) {
		free(s);
		return NULL;
	}
	rq->owned[rq->nowned++] = s;
	return s;
}

static const char *new_secret(const struct entry *it, const struct config_project *pr)
{
	/* Sentry ignores secrets, but a project that has one gets it only when the SDK sent one. */
	return it->has_secret && pr->secret != NULL ? pr->secret : NULL;
}

void request_host(const struct config_upstream *uc, char *buf, size_t len)
{
	bool default_port = uc->port == (uc->tls ? 443 : 80);
	bool ipv6 = strchr(uc->host, ':') != NULL;

	if (default_port)
		snprintf(buf, len, ipv6 ? "[%s]" : "%s", uc->host);
	else
		snprintf(buf, len, ipv6 ? "[%s]:%d" : "%s:%d", uc->host, uc->port);
}

void request_dsn(const struct config_upstream *uc, const char *key, long id, char *buf, size_t len)
{
	char host[300];

	request_host(uc, host, sizeof(host));
	snprintf(buf, len, "%s://%s@%s%s/%ld", uc->tls ? "https" : "http", key, host, uc->path_prefix, id);
}

/* Split one copy of the stored "Name: value\n" lines in place, rewriting the one auth carrier. */
static int build_headers(struct request *rq, const struct entry *it, const struct config_project *pr,
			 const char **encoding)
{
	char *p = own(rq, strdup(it->headers));

	*encoding = NULL;
	if (p == NULL)
		return -1;
	while (*p != '\0' && rq->nh < REQUEST_MAX_HEADERS - 1) {
		size_t len = strcspn(p, "\n");
		char *colon = memchr(p, ':', len), *name = p, *value;

		if (colon == NULL || (size_t)(colon - p) + 2 > len)
			return -2;  /* not what ingest writes: the entry is damaged */
		p += len + (p[len] == '\n');
		name[len] = '\0';
		*colon = '\0';
		value = colon + 2;
		if ((it->carrier == AUTH_X_SENTRY_AUTH && strcasecmp(name, "X-Sentry-Auth") == 0) ||
		    (it->carrier == AUTH_AUTHORIZATION && strcasecmp(name, "Authorization") == 0))
			value = own(rq, auth_rewrite_header(value, pr->key, new_secret(it, pr)));
		else if (it->carrier == AUTH_BASIC && strcasecmp(name, "Authorization") == 0)
			value = own(rq, auth_rewrite_basic(pr->key, new_secret(it, pr)));
		if (value == NULL)
			return -1;
		if (strcasecmp(name, "Content-Encoding") == 0)
			*encoding = value;
		rq->h[rq->nh].name = name;
		rq->h[rq->nh++].value = value;
	}
	if (it->client_ip[0] != '\0') {
		rq->h[rq->nh].name = "X-Forwarded-For";
		rq->h[rq->nh++].value = it->client_ip;
	}
	return 0;
}

static int build_uri(struct request *rq, const struct config_upstream *uc, const struct config_project *pr,
		     const struct entry *it)
{
	const char *q = it->query, *ep = it->endpoint, *key = strstr(ep, "{key}");
	size_t len;
	int n;

	if (it->carrier == AUTH_QUERY && q[0] != '\0') {
		q = own(rq, auth_rewrite_query(q, pr->key, new_secret(it, pr)));
		if (q == NULL)
			return -1;
	}
	/* Sized to fit: a store GET carries the whole event in its query (sentry_data). */
	len = strlen(uc->path_prefix) + 32 + strlen(ep) + strlen(pr->key) + strlen(q) + 2;
	rq->uri = own(rq, malloc(len));
	if (rq->uri == NULL)
		return -1;
	/* unreal/<key>/ and cron/<slug>/<key>: ingest stored the key segment as "{key}". */
	if (key != NULL)
		n = snprintf(rq->uri, len, "%s/api/%ld/%.*s%s%s%s%s", uc->path_prefix, pr->id, (int)(key - ep), ep,
			     pr->key, key + 5, q[0] ? "?" : "", q);
	else
		n = snprintf(rq->uri, len, "%s/api/%ld/%s%s%s", uc->path_prefix, pr->id, ep, q[0] ? "?" : "", q);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Decode, rewrite the header line, encode again: only when the header really needs it. */
static void rewrite_encoded(struct request *rq, enum codec_kind kind, const struct entry *it,
			    const char *dsn, const char *real_key)
{
	char *plain = NULL, *rewritten = NULL, *packed = NULL;
	size_t plain_len, rewritten_len, packed_len;
	enum envelope_result rc;

	if (codec_decode(kind, it->body, it->body_len, ENVELOPE_HEADER_PEEK, CODEC_FIRST_LINE, &plain, &plain_len) !=
	    CODEC_OK)
		return;
	rc = envelope_rewrite(plain, plain_len, dsn, it->sdk_key, real_key, &rewritten, &rewritten_len);
	free(plain);
	if (rc == ENVELOPE_OK)
		free(rewritten);
	plain = rewritten = NULL;
	if (rc != ENVELOPE_OK)
		return;
	if (codec_decode(kind, it->body, it->body_len, (size_t)-1 / 4, CODEC_WHOLE, &plain, &plain_len) == CODEC_OK &&
	    envelope_rewrite(plain, plain_len, dsn, it->sdk_key, real_key, &rewritten, &rewritten_len) == ENVELOPE_OK &&
	    codec_encode(kind, rewritten, rewritten_len, &packed, &packed_len) == CODEC_OK && own(rq, packed) != NULL) {
		rq->body = packed;
		rq->body_len = packed_len;
		rq->body_in_entry = false;
	}
	free(plain);
	free(rewritten);
}

/*
 * An envelope header "dsn" must name the real key and project or Sentry answers 400; the rest
 * of the body is never touched. A body that cannot be read is forwarded as it came.
 */
static void build_body(struct request *rq, const struct config_upstream *uc, const struct config_project *pr,
		       const struct entry *it, const char *encoding)
{
	enum codec_kind kind = codec_from_name(encoding);
	char dsn[512], *rewritten = NULL;
	size_t rewritten_len, hlen;

	rq->body = it->body;
	rq->body_len = it->body_len;
	rq->body_in_entry = true;
	if (strncmp(it->endpoint, "envelope/", 9) != 0 || kind == CODEC_UNKNOWN)
		return;
	request_dsn(uc, pr->key, pr->id, dsn, sizeof(dsn));
	if (kind != CODEC_IDENTITY) {
		/* Ingest rewrote it once, with this key: as stored. (Another key means the project's
		 * credentials changed since, a rare case worth the full decode.) */
		if (it->rewritten_key != NULL && strcmp(it->rewritten_key, pr->key) == 0)
			return;
		rewrite_encoded(rq, kind, it, dsn, pr->key);
		return;
	}
	/* Parse the header line only when it names a dsn or the relay-side key (most do not). An
	 * escape ("d\u0073n") could hide either from this scan: then parse, never guess. */
	hlen = envelope_header_len(it->body, it->body_len);
	if (memmem(it->body, hlen, "\"dsn\"", 5) == NULL && memchr(it->body, '\\', hlen) == NULL &&
	    (it->sdk_key[0] == '\0' || memmem(it->body, hlen, it->sdk_key, strlen(it->sdk_key)) == NULL))
		return;
	/* The new header line goes before the rest of the body, which is sent from where it is. */
	if (envelope_rewrite_header(it->body, it->body_len, dsn, it->sdk_key, pr->key, &rewritten, &rewritten_len,
				    &hlen) == ENVELOPE_OK &&
	    own(rq, rewritten) != NULL) {
		rq->head = rewritten;
		rq->head_len = rewritten_len;
		rq->body = it->body + hlen;
		rq->body_len = it->body_len - hlen;
	}
}

enum request_result request_build(struct request *rq, const struct config_upstream *uc,
				  const struct config_project *pr, const struct entry *it)
{
	const char *encoding;
	int rc;

	memset(rq, 0, sizeof(*rq));
	rq->get = strcmp(it->method, "GET") == 0;
	/* Kept as sent: a config endpoint taking PUT or PATCH must not reach Sentry as a POST. */
	if (rq->get)
		rq->method = "GET";
	else if (strcmp(it->method, "PUT") == 0)
		rq->method = "PUT";
	else if (strcmp(it->method, "PATCH") == 0)
		rq->method = "PATCH";
	else
		rq->method = "POST";
	if (build_uri(rq, uc, pr, it) != 0)
		return REQUEST_NOMEM;
	if ((rc = build_headers(rq, it, pr, &encoding)) != 0)
		return rc == -2 ? REQUEST_DAMAGED : REQUEST_NOMEM;
	/* A GET is framed without a body: whatever a damaged entry holds is never sent with one. */
	if (rq->get)
		rq->body = NULL, rq->body_len = 0;
	else
		build_body(rq, uc, pr, it, encoding);
	return REQUEST_OK;
}

void request_release(struct request *rq)
{
	for (size_t i = 0; i < rq->nowned; i++)
		free(rq->owned[i]);
	rq->nowned = 0;
}
