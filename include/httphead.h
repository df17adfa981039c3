/* httphead.h - an incremental HTTP/1.x request framing reader (pure). The listener feeds it every
 * byte a client sends, before evhttp sees them, so sentryq knows where each request's head and
 * body end, refuses ambiguous framing (smuggling), and answers oversized or malformed requests in
 * JSON itself instead of letting evhttp answer with HTML. It reads framing, not content: the
 * request line, Content-Length, Transfer-Encoding and Expect; evhttp parses the rest. */
#ifndef SENTRYQ_HTTPHEAD_H
#define SENTRYQ_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPHEAD_LINE_KEEP 128   /* bytes of each header line looked at (name and a number fit) */

enum httphead_state {
	HH_REQUEST_LINE = 0,  /* waiting for (or reading) the request line */
	HH_HEADERS,
	HH_BODY,              /* Content-Length body */
	HH_CHUNK_SIZE,
	HH_CHUNK_DATA,
	HH_CHUNK_END,         /* the CRLF after a chunk's data */
	HH_TRAILER,
	HH_COMPLETE,          /* the request is read; httphead_next starts the next one */
	HH_ERROR,
};

/* What a feed stopped at (the caller acts, then feeds the rest). */
enum httphead_event {
	HH_EV_MORE = 0,       /* everything consumed, the request goes on */
	HH_EV_HEAD,           /* the head is complete: method, length, chunked are known */
	HH_EV_DONE,           /* the request is complete; the next bytes start the next one */
	HH_EV_ERROR,          /* see error; nothing more is consumed */
};

enum httphead_error {
	HH_OK = 0,
	HH_BAD_REQUEST_LINE,  /* 400 */
	HH_BAD_VERSION,       /* 505 */
	HH_UNKNOWN_METHOD,    /* 501 */
	HH_BAD_HEADER,        /* 400: a line without ':' or with a control byte */
	HH_HEAD_TOO_LARGE,    /* 431 */
	HH_BAD_LENGTH,        /* 400: Content-Length not a number */
	HH_DUPLICATE_LENGTH,  /* 400: two Content-Length headers (equal or not) */
	HH_LENGTH_AND_CHUNKED,/* 400: Content-Length and Transfer-Encoding together */
	HH_BAD_TRANSFER,      /* 501: a Transfer-Encoding other than chunked */
	HH_BAD_CHUNK,         /* 400: a malformed chunk size or chunk end */
};

/* Methods, as bits (the same values as endpoint.h's enum endpoint_method). */
enum httphead_method {
	HH_GET = 1 << 0,
	HH_POST = 1 << 1,
	HH_HEAD = 1 << 2,
	HH_OPTIONS = 1 << 3,
	HH_PUT = 1 << 4,
	HH_PATCH = 1 << 5,
	HH_DELETE = 1 << 6,
	HH_CONNECT = 1 << 7,
	HH_TRACE = 1 << 8,
};

struct httphead {
	enum httphead_state state;
	enum httphead_error error;
	size_t max_head;          /* bytes of request line plus headers */
	size_t head_bytes;
	char line[HTTPHEAD_LINE_KEEP];
	size_t line_len;          /* bytes of the current line so far (only the first KEEP are kept) */
	char tail[16];            /* the last bytes of the current line (a long request line's version) */
	bool cr;                  /* the current line's last byte was '\r' */
	/* Known once HH_EV_HEAD was reported. */
	unsigned method;          /* enum httphead_method bit */
	int minor;                /* HTTP/1.<minor> */
	bool has_length;
	uint64_t length;          /* Content-Length */
	bool chunked;
	bool expect_continue;
	bool conn_close;          /* Connection: close */
	bool conn_keep_alive;     /* Connection: keep-alive (an HTTP/1.0 client staying) */
	/* Body progress. */
	uint64_t left;            /* bytes left in the body or the current chunk */
	uint64_t body_bytes;      /* body bytes seen so far (chunk data only, for chunked) */
};

void httphead_init(struct httphead *h, size_t max_head);
/* Start the next request on the same connection (after HH_EV_DONE). */
void httphead_next(struct httphead *h);
/* Read up to n bytes (n may be 0); *used says how many were consumed. Stops early at HH_EV_HEAD
 * and HH_EV_DONE so the caller can act at those points: after HH_EV_HEAD feed on (a request without
 * a body is HH_EV_DONE at once), after HH_EV_DONE call httphead_next. */
enum httphead_event httphead_feed(struct httphead *h, const char *p, size_t n, size_t *used);
/* The status a framing error deserves (400, 431, 501, 505). */
int httphead_status(enum httphead_error e);
const char *httphead_detail(enum httphead_error e);

#endif
