/* envelope.h - read what sentryq needs from a body (event id, envelope dsn) and rewrite the dsn. */
#ifndef SENTRYQ_ENVELOPE_H
#define SENTRYQ_ENVELOPE_H

#include <stddef.h>

#define ENVELOPE_ID_LEN 32
#define ENVELOPE_HEADER_PEEK (64 * 1024)  /* decoded bytes read to find a compressed envelope's header line */

/* Length of the envelope header line (bytes before the first '\n', or len). */
size_t envelope_header_len(const char *body, size_t len);

/*
 * Event id from the envelope header line ("event_id", 32 hex or dashed uuid) written as
 * 32 lowercase hex + NUL into id. 0 found, -1 absent or header not JSON.
 */
int envelope_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1]);

/* Event id of a plain-JSON store body ("event_id" at the top level). 0 / -1. */
int envelope_store_event_id(const char *body, size_t len, char id[ENVELOPE_ID_LEN + 1]);

/*
 * The envelope header's "dsn": public key into key, project id (last path segment) into
 * *project_id. 0 when a dsn with a key and a numeric project id is present; 1 when the
 * header has no dsn; -1 when the header is not JSON or the dsn is malformed.
 */
int envelope_dsn(const char *body, size_t len, char *key, size_t keylen, long *project_id);

/*
 * Rewrite the header line: "dsn" becomes new_dsn (only if the header has a dsn), and
 * "trace"."public_key" becomes new_key when it equals old_key. Every other header field
 * is kept (order preserved); every byte after the header line is copied unchanged.
 * Returns 0 with *out (malloc'd) and *outlen set, 1 when nothing needed rewriting
 * (*out untouched), -1 on malformed header or allocation failure.
 */
int envelope_rewrite(const char *body, size_t len, const char *new_dsn, const char *old_key,
		     const char *new_key, char **out, size_t *outlen);

/* Fresh uuid4 as 32 lowercase hex + NUL (reads /dev/urandom once, then a local PRNG). */
void envelope_new_id(char id[ENVELOPE_ID_LEN + 1]);

#endif
