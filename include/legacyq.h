/* legacyq.h - the old pipeline's queue (pure): the records its openresty Lua script pushed, which
 * body each one pairs with, and the sentryq queue entry a record becomes. A record is translated by
 * ingest's own steps (endpoint, intake's body checks and credentials, route), so it becomes exactly
 * the entry the SDK's request would have become had it reached sentryq.
 *
 * The old layout: a LIST (default "sentry_header_uri") of JSON strings
 * {"uri": request URI, "timestamp": seconds, "header": {lower-case name: value or [values]}},
 * and each body a STRING at <body prefix><timestamp> (default "sentry:body:"). */
#ifndef SENTRYQ_LEGACYQ_H
#define SENTRYQ_LEGACYQ_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "entry.h"
#include "envelope.h"
#include "auth.h"

struct config;
struct config_upstream;
struct config_project;
struct route;
struct json_t;

#define LEGACYQ_LIST "sentry_header_uri"
#define LEGACYQ_BODY_PREFIX "sentry:body:"
#define LEGACYQ_NAME_MAX 256             /* a list name or body prefix given on the command line */
#define LEGACYQ_SUFFIX_MAX 64            /* a timestamp as the body key's suffix */
#define LEGACYQ_KEY_MAX (LEGACYQ_NAME_MAX + LEGACYQ_SUFFIX_MAX)
#define LEGACYQ_RECORD_MAX (1024 * 1024) /* bytes of one record's JSON */
#define LEGACYQ_HEADERS_MAX 256          /* header values in one record (openresty keeps 100) */
#define LEGACYQ_KEPT_MAX 16384           /* kept header lines, as ingest bounds them (431 above) */
#define LEGACYQ_XFF_MAX 1024
#define LEGACYQ_WHY_MAX 192
#define LEGACYQ_ROUTE_MAX 96             /* "<upstream>/<real id>" */

/* Every legacyq call answers with one of these; each prototype says which it gives. */
enum legacyq_result {
	LEGACYQ_OK = 0,
	LEGACYQ_MALFORMED,    /* not a record (not JSON, no uri, ...), or not an address: why says what */
	LEGACYQ_UNPAIRED,     /* the body at the record's key is not its body (absent, or overwritten) */
	LEGACYQ_REFUSED,      /* a request ingest refuses: why is its answer ("401 ...") */
	LEGACYQ_UNROUTABLE,   /* no routing rule takes its credentials: ingest answers 403 */
	LEGACYQ_NOMEM,
};

/* One record, parsed. Strings point into doc (free with legacyq_record_free). */
struct legacyq_record {
	struct json_t *doc;
	const char *uri;
	char suffix[LEGACYQ_SUFFIX_MAX];    /* the timestamp as the Lua script appended it to the key */
	long long time_ms;                  /* the timestamp as epoch ms; 0 when it is no number */
	long long content_length;           /* the header's content-length; -1 when absent or no number */
	const char *hname[LEGACYQ_HEADERS_MAX];  /* header values in record order (an array value */
	const char *hval[LEGACYQ_HEADERS_MAX];   /* is one per element, as repeated header lines) */
	size_t nh;
};

/* What a record becomes: the entry to XADD (into `stream`) and the route it takes. Pointers into
 * this struct, the record and the body: valid while all three are (free with legacyq_entry_free). */
struct legacyq_entry {
	struct entry e;
	const struct config_upstream *upstream;
	const struct config_project *project;
	char stream[ENTRY_KEY_MAX];
	char route[LEGACYQ_ROUTE_MAX];      /* "<upstream>/<real id>": what reports may show */
	char *headers;                      /* kept headers, "Name: value\n" lines (malloc'd) */
	char *query;                        /* malloc'd */
	char endpoint[ENDPOINT_STORED_MAX];
	char sdk_key[AUTH_FIELD_MAX];
	char xff[LEGACYQ_XFF_MAX];
	char event_id[ENVELOPE_ID_LEN + 1];
};

/*
 * Parse one element of the old list. OK with *rec filled; MALFORMED with why (over
 * LEGACYQ_RECORD_MAX, not JSON, not an object, no uri string starting with '/' or "http", no
 * timestamp number or string fit for a key suffix, no header object, a header value that is not a
 * string or a list of strings, more than LEGACYQ_HEADERS_MAX values); NOMEM. why never quotes
 * the record (its uri and headers carry credentials). *rec needs legacyq_record_free either way.
 */
enum legacyq_result legacyq_parse(const char *text, size_t len, struct legacyq_record *rec, char *why,
				  size_t whylen);
void legacyq_record_free(struct legacyq_record *rec);

/* The record's body key: prefix + suffix into buf. 0, or -1 when it does not fit in len. */
int legacyq_body_key(const char *prefix, const struct legacyq_record *rec, char *buf, size_t len);

/*
 * Is the body at the record's key its own? `later` holds the key suffixes of the records after it
 * in the list, in order, as far as the caller looked (NULL entries for ones that are no record);
 * body is NULL when the key is absent. The Lua script SET every body at a key of one-second
 * resolution, so a later record of the same second overwrote it: the body belongs to the last
 * record of a second, and it must be as long as the record's content-length says. OK, or UNPAIRED
 * with why (absent; overwritten by a later record of the same second; a length other than the
 * content-length, which catches a later record beyond what the caller looked at).
 */
enum legacyq_result legacyq_pair(const struct legacyq_record *rec, const char *const *later, size_t nlater,
				 const char *body, size_t body_len, char *why, size_t whylen);

/*
 * The entry a record and its body become, by ingest's steps: the uri's path matched (the
 * configured tunnel path, or an ingest endpoint; 404/400 otherwise), POST, intake_body's checks,
 * categories and event id, intake_auth's credentials, then route_lookup. The kept headers are
 * written as intake_header_kept spells them, the client chain is the record's x-forwarded-for
 * (the old script kept no peer address), the received time is now and the record's timestamp the
 * first received time (t0). OK with *out; REFUSED with why (ingest's status and answer: 404, 400,
 * 401, 405, 413, 415, 431); UNROUTABLE; MALFORMED (a kept header value with a line break); NOMEM.
 * why never holds a key, secret or project name. *out needs legacyq_entry_free either way.
 */
enum legacyq_result legacyq_translate(const struct legacyq_record *rec, const struct config *cfg,
				      const struct route *routes, const char *body, size_t body_len,
				      struct legacyq_entry *out, char *why, size_t whylen);
void legacyq_entry_free(struct legacyq_entry *out);

/*
 * A Redis address "HOST:PORT[/DB]" ("[v6]:PORT[/DB]" for IPv6): host into host (NUL-terminated),
 * port 1..65535, db 0 when absent. OK, or MALFORMED with why.
 */
enum legacyq_result legacyq_parse_address(const char *s, char *host, size_t hostlen, int *port, int *db,
					  char *why, size_t whylen);

#endif
