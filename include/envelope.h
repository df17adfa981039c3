/* envelope.h - read what sentryq needs from a body (event id, envelope dsn, item categories)
 * and rewrite the envelope header's dsn (pure). */
#ifndef SENTRYQ_ENVELOPE_H
#define SENTRYQ_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include "category.h"

#define ENVELOPE_ID_LEN 32
#define ENVELOPE_HEADER_PEEK (64 * 1024)  /* decoded bytes read to find a compressed envelope's header line */
#define ENVELOPE_ITEM_HEADER_MAX 4096     /* an item header line longer than this is an unknown item */

/* Every envelope call answers with one of these; each prototype says what they mean for it. */
enum envelope_result {
	ENVELOPE_OK = 0,
	ENVELOPE_NONE,        /* the thing looked for is not there (no id, no dsn, nothing to rewrite) */
	ENVELOPE_MALFORMED,   /* the header (or the value) is not what Sentry's protocol says */
	ENVELOPE_NOMEM,
};

/* Length of the envelope header line (bytes before the first '\n', or len). */
size_t envelope_header_len(const char *body, size_t len);

/* Event id from the envelope header line ("event_id", 32 hex or dashed uuid) written as
 * 32 lowercase hex + NUL into id. OK found, NONE absent, MALFORMED not an id. */
enum envelope_result envelope_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1]);
/* Event id of a plain-JSON store body ("event_id" at the top level). As envelope_event_id. */
enum envelope_result envelope_store_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1]);
/* The store body's top-level "type" string into type. OK, NONE absent, MALFORMED not a string
 * or longer than typelen - 1. */
enum envelope_result envelope_store_type(const char *body, size_t len, char *type, size_t typelen);

/*
 * The envelope header's "dsn": public key into key, project id (last path segment) into
 * *project_id. OK: a dsn with a key and a numeric project id; NONE: the header has no dsn;
 * MALFORMED: the header is not JSON or the dsn is malformed.
 */
enum envelope_result envelope_dsn(const char *body, size_t len, char *key, size_t keylen, long *project_id);

/*
 * Rewrite the header line: "dsn" becomes new_dsn (only if the header has a dsn), and
 * "trace"."public_key" becomes new_key when it equals old_key. Every other header field
 * is kept (order preserved); every byte after the header line is copied unchanged.
 * OK with *out (malloc'd) and *outlen; NONE: nothing needed rewriting (*out untouched);
 * MALFORMED: the header is not a JSON object; NOMEM.
 */
enum envelope_result envelope_rewrite(const char *body, size_t len, const char *new_dsn, const char *old_key,
				      const char *new_key, char **out, size_t *outlen);
/* The same, without copying the body: OK gives the new header line (*header, malloc'd, no
 * newline) that replaces the body's first *replaced bytes; the rest of the body follows as is. */
enum envelope_result envelope_rewrite_header(const char *body, size_t len, const char *new_dsn, const char *old_key,
					     const char *new_key, char **header, size_t *header_len, size_t *replaced);

/* Fresh uuid4 as 32 lowercase hex + NUL (reads /dev/urandom once, then a local PRNG). */
void envelope_new_id(char id[ENVELOPE_ID_LEN + 1]);

/* The data categories of an envelope's items, read as the body streams by (a compressed body is
 * fed as it is decoded): item headers are parsed, payloads skipped by "length" or to the newline.
 * Unknown item types count as CAT_OTHER; client reports count as nothing. */
enum envelope_scan_state {
	ENVELOPE_SCAN_HEADER = 0,
	ENVELOPE_SCAN_ITEM,
	ENVELOPE_SCAN_PAYLOAD_LEN,
	ENVELOPE_SCAN_AFTER_PAYLOAD,
	ENVELOPE_SCAN_PAYLOAD_LINE,
};

struct envelope_scan {
	enum envelope_scan_state state;
	size_t skip;                       /* payload bytes still to skip */
	char line[ENVELOPE_ITEM_HEADER_MAX];
	size_t line_len;
	bool line_overflow;
	category_mask cats;
	int items;
};

void envelope_scan_init(struct envelope_scan *s);
void envelope_scan_feed(struct envelope_scan *s, const char *p, size_t n);
category_mask envelope_scan_end(struct envelope_scan *s);
/* The whole body at once. */
category_mask envelope_categories(const char *body, size_t len);

#endif
