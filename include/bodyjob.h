/* bodyjob.h - what ingest reads from a request body, done a bounded step at a time so that no
 * body (a 200 MiB envelope, a brotli bomb) holds the loop for more than a few milliseconds (pure).
 *
 * Phase one (bodyjob_step) measures the decoded size against the endpoint's limit and reads what
 * the endpoint needs: a store body's event id and type (its categories), an envelope's header line
 * (event id, dsn) and item types (its categories). Phase two, only for a compressed envelope whose
 * header must be rewritten (its dsn), decodes again, rewrites the header line and encodes the
 * rest as it comes (bodyjob_rewrite_*), once, at ingest: forwarding then sends it as stored. */
#ifndef SENTRYQ_BODYJOB_H
#define SENTRYQ_BODYJOB_H

#include <stdbool.h>
#include <stddef.h>

#include "category.h"
#include "codec.h"
#include "endpoint.h"
#include "envelope.h"

#define BODYJOB_STEP (512 * 1024)    /* decoded or scanned bytes per step: about a millisecond */

enum bodyjob_result {
	BODYJOB_MORE = 0,    /* call the step again (from the next loop iteration) */
	BODYJOB_DONE,
	BODYJOB_TOO_LARGE,   /* over the limit: 413 */
	BODYJOB_CORRUPT,     /* not valid data in its Content-Encoding: 400 */
	BODYJOB_NOMEM,
	BODYJOB_NONE,        /* bodyjob_rewrite_start: nothing to rewrite */
};

struct bodyjob;

/* The body stays the caller's and must outlive the job; `limit` is the endpoint's decoded limit. */
struct bodyjob *bodyjob_new(enum endpoint_kind kind, enum codec_kind codec, const char *body, size_t len,
			    size_t limit);
void bodyjob_free(struct bodyjob *j);

/* Phase one: up to BODYJOB_STEP bytes of work. */
enum bodyjob_result bodyjob_step(struct bodyjob *j);

/* After phase one. */
category_mask bodyjob_categories(const struct bodyjob *j);
size_t bodyjob_decoded_len(const struct bodyjob *j);
/* The event id read from the body (store body, envelope header), 0; -1 when it had none. */
int bodyjob_event_id(const struct bodyjob *j, char id[ENVELOPE_ID_LEN + 1]);
/* The decoded envelope header line (up to ENVELOPE_HEADER_PEEK bytes), "" for other bodies. */
const char *bodyjob_header(const struct bodyjob *j, size_t *len);

/* Phase two: rewrite the header's dsn (and trace.public_key when it is old_key) and encode again.
 * BODYJOB_NONE when the header needs nothing (then the body goes as it came), else MORE. */
enum bodyjob_result bodyjob_rewrite_start(struct bodyjob *j, const char *new_dsn, const char *old_key,
					  const char *new_key, size_t max_out);
enum bodyjob_result bodyjob_rewrite_step(struct bodyjob *j);
/* The rewritten, encoded body (malloc'd, the caller's). */
char *bodyjob_rewritten(struct bodyjob *j, size_t *len);

#endif
