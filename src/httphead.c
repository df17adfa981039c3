/* httphead.c - request framing, byte by byte: request line, the framing headers, body, chunks. */
#define _GNU_SOURCE  /* memmem */
#include "httphead.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	unsigned bit;
} methods[] = {
	{ "GET", HH_GET }, { "POST", HH_POST }, { "HEAD", HH_HEAD }, { "OPTIONS", HH_OPTIONS }, { "PUT", HH_PUT },
	{ "PATCH", HH_PATCH }, { "DELETE", HH_DELETE }, { "CONNECT", HH_CONNECT }, { "TRACE", HH_TRACE },
};

void httphead_init(struct httphead *h, size_t max_head)
{
	memset(h, 0, sizeof(*h));
	h->max_head = max_head;
	h->state = HH_REQUEST_LINE;
}

void httphead_next(struct httphead *h)
{
	httphead_init(h, h->max_head);
}

static enum httphead_event fail(struct httphead *h, enum httphead_error e)
{
	h->state = HH_ERROR;
	h->error = e;
	return HH_EV_ERROR;
}

/* [s, e) without surrounding spaces and tabs. */
static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

/* "METHOD SP target SP HTTP/1.x": only the method and the version matter here. */
static enum httphead_event request_line(struct httphead *h, bool cut)
{
	const char *l = h->line, *end = h->line + (h->line_len < sizeof(h->line) ? h->line_len : sizeof(h->line));
	const char *sp = memchr(l, ' ', (size_t)(end - l)), *ver;

	if (sp == NULL || sp == l)
		return fail(h, HH_BAD_REQUEST_LINE);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if ((size_t)(sp - l) == strlen(methods[i].name) && memcmp(l, methods[i].name, (size_t)(sp - l)) == 0)
			h->method = methods[i].bit;
	if (h->method == 0)
		return fail(h, HH_UNKNOWN_METHOD);
	/* The version ends the line: read it from the line's tail, however long the target is. */
	(void)cut;
	ver = h->tail + sizeof(h->tail) - 8;
	if (h->line_len < (size_t)(sp - l) + 11 || ver[-1] != ' ' || memcmp(ver, "HTTP/1.", 7) != 0 || ver[7] < '0' ||
	    ver[7] > '9')
		return fail(h, memmem(h->tail, sizeof(h->tail), "HTTP/", 5) != NULL ? HH_BAD_VERSION : HH_BAD_REQUEST_LINE);
	h->minor = ver[7] - '0';
	return HH_EV_MORE;
}

static bool name_is(const char *l, const char *colon, const char *name)
{
	return (size_t)(colon - l) == strlen(name) && strncasecmp(l, name, strlen(name)) == 0;
}

static enum httphead_event length_header(struct httphead *h, const char *v, const char *e, bool cut)
{
	uint64_t n = 0;

	if (h->has_length)
		return fail(h, HH_DUPLICATE_LENGTH);
	trim(&v, &e);
	if (cut || v == e)
		return fail(h, HH_BAD_LENGTH);
	for (; v < e; v++) {
		if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
			return fail(h, HH_BAD_LENGTH);
		n = n * 10 + (uint64_t)(*v - '0');
	}
	h->has_length = true;
	h->length = n;
	return HH_EV_MORE;
}

/* One complete header line (its first HTTPHEAD_LINE_KEEP bytes; cut: the rest was longer). */
static enum httphead_event header_line(struct httphead *h, bool cut)
{
	const char *l = h->line, *end = h->line + (cut ? sizeof(h->line) : h->line_len);
	const char *colon = memchr(l, ':', (size_t)(end - l));

	if (l[0] == ' ' || l[0] == '\t' || colon == NULL || colon == l)
		return fail(h, HH_BAD_HEADER);  /* obsolete folding, or no name */
	if (name_is(l, colon, "Content-Length"))
		return length_header(h, colon + 1, end, cut);
	if (name_is(l, colon, "Transfer-Encoding")) {
		const char *v = colon + 1, *e = end;

		trim(&v, &e);
		if (h->chunked || cut || (size_t)(e - v) != 7 || strncasecmp(v, "chunked", 7) != 0)
			return fail(h, HH_BAD_TRANSFER);
		h->chunked = true;
	} else if (name_is(l, colon, "Expect")) {
		h->expect_continue = true;
	} else if (name_is(l, colon, "Connection")) {
		const char *v = colon + 1, *e = end;

		trim(&v, &e);
		h->conn_close |= (size_t)(e - v) >= 5 && strncasecmp(v, "close", 5) == 0;
		h->conn_keep_alive |= (size_t)(e - v) >= 10 && strncasecmp(v, "keep-alive", 10) == 0;
	}
	return HH_EV_MORE;
}

static enum httphead_event head_done(struct httphead *h)
{
	if (h->has_length && h->chunked)
		return fail(h, HH_LENGTH_AND_CHUNKED);
	h->line_len = 0;
	if (h->chunked) {
		h->state = HH_CHUNK_SIZE;
	} else if (h->has_length && h->length > 0) {
		h->state = HH_BODY;
		h->left = h->length;
	} else {
		h->state = HH_COMPLETE;
	}
	return HH_EV_HEAD;
}

static enum httphead_event chunk_size(struct httphead *h, bool cut)
{
	uint64_t n = 0;
	size_t i = 0, len = cut ? sizeof(h->line) : h->line_len;
	int digits = 0;

	for (; i < len; i++) {
		char c = h->line[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (v < 0)
			break;
		if (n >> 56)
			return fail(h, HH_BAD_CHUNK);
		n = n * 16 + (uint64_t)v;
		digits++;
	}
	/* After the digits: nothing, spaces, or a ";extension". */
	while (i < len && (h->line[i] == ' ' || h->line[i] == '\t'))
		i++;
	if (digits == 0 || (i < len && h->line[i] != ';'))
		return fail(h, HH_BAD_CHUNK);
	h->line_len = 0;
	h->left = n;
	h->state = n == 0 ? HH_TRAILER : HH_CHUNK_DATA;
	return HH_EV_MORE;
}

/* A line ended: act on it by state. */
static enum httphead_event line_end(struct httphead *h)
{
	bool cut = h->line_len > sizeof(h->line);
	size_t len = h->line_len;
	enum httphead_event ev = HH_EV_MORE;

	switch (h->state) {
	case HH_REQUEST_LINE:
		if (len > 0)  /* empty lines before a request are tolerated (RFC 9112 2.2) */
			ev = request_line(h, cut), h->state = h->state == HH_ERROR ? HH_ERROR : HH_HEADERS;
		break;
	case HH_HEADERS:
		ev = len == 0 ? head_done(h) : header_line(h, cut);
		break;
	case HH_CHUNK_SIZE:
		ev = chunk_size(h, cut);
		break;
	case HH_CHUNK_END:
		if (len != 0)
			return fail(h, HH_BAD_CHUNK);
		h->state = HH_CHUNK_SIZE;
		break;
	case HH_TRAILER:
		if (len == 0)
			h->state = HH_COMPLETE, ev = HH_EV_DONE;
		break;
	default:
		break;
	}
	if (h->state != HH_ERROR) {
		h->line_len = 0;
		memset(h->tail, 0, sizeof(h->tail));
	}
	return ev;
}

/* Bytes of a line: kept up to HTTPHEAD_LINE_KEEP, counted whole; control bytes refused in the head. */
static enum httphead_event line_byte(struct httphead *h, char c)
{
	bool in_head = h->state == HH_REQUEST_LINE || h->state == HH_HEADERS;

	if (in_head && ++h->head_bytes > h->max_head)
		return fail(h, HH_HEAD_TOO_LARGE);
	if (c == '\n') {
		if (h->cr) {
			h->line_len--;  /* the '\r' before it */
			memmove(h->tail + 1, h->tail, sizeof(h->tail) - 1);
			h->tail[0] = '\0';
		}
		h->cr = false;
		return line_end(h);
	}
	if (in_head && h->cr)
		return fail(h, HH_BAD_HEADER);  /* a bare CR inside a line */
	h->cr = c == '\r';
	if (in_head && !h->cr && ((unsigned char)c < 0x20 ? c != '\t' : c == 0x7f))
		return fail(h, HH_BAD_HEADER);
	if (h->line_len < sizeof(h->line))
		h->line[h->line_len] = c;
	h->line_len++;
	memmove(h->tail, h->tail + 1, sizeof(h->tail) - 1);
	h->tail[sizeof(h->tail) - 1] = c;
	return HH_EV_MORE;
}

/* Body bytes counted in bulk: at most `left` of them. */
static size_t body_bytes(struct httphead *h, size_t n)
{
	size_t take = h->left < n ? (size_t)h->left : n;

	h->left -= take;
	h->body_bytes += take;
	return take;
}

enum httphead_event httphead_feed(struct httphead *h, const char *p, size_t n, size_t *used)
{
	size_t i = 0;
	enum httphead_event ev = HH_EV_MORE;

	*used = 0;
	if (h->state == HH_COMPLETE)
		return HH_EV_DONE;
	while (i < n && ev == HH_EV_MORE) {
		if (h->state == HH_ERROR)
			return *used = i, HH_EV_ERROR;
		if (h->state == HH_BODY) {
			i += body_bytes(h, n - i);
			if (h->left == 0)
				h->state = HH_COMPLETE, ev = HH_EV_DONE;
		} else if (h->state == HH_CHUNK_DATA) {
			i += body_bytes(h, n - i);
			if (h->left == 0)
				h->state = HH_CHUNK_END;
		} else {
			ev = line_byte(h, p[i++]);
		}
	}
	*used = i;
	return h->state == HH_ERROR ? HH_EV_ERROR : ev;
}

int httphead_status(enum httphead_error e)
{
	switch (e) {
	case HH_HEAD_TOO_LARGE: return 431;
	case HH_UNKNOWN_METHOD:
	case HH_BAD_TRANSFER: return 501;
	case HH_BAD_VERSION: return 505;
	default: return 400;
	}
}

const char *httphead_detail(enum httphead_error e)
{
	switch (e) {
	case HH_OK: return "ok";
	case HH_BAD_REQUEST_LINE: return "malformed request line";
	case HH_BAD_VERSION: return "unsupported HTTP version";
	case HH_UNKNOWN_METHOD: return "unknown method";
	case HH_BAD_HEADER: return "malformed header line";
	case HH_HEAD_TOO_LARGE: return "request head too large";
	case HH_BAD_LENGTH: return "invalid Content-Length";
	case HH_DUPLICATE_LENGTH: return "ambiguous request framing: more than one Content-Length";
	case HH_LENGTH_AND_CHUNKED: return "ambiguous request framing: Content-Length and Transfer-Encoding";
	case HH_BAD_TRANSFER: return "unsupported Transfer-Encoding";
	case HH_BAD_CHUNK: return "malformed chunked body";
	}
	return "bad request";
}
