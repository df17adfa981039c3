/* entry.h - the one owner of the queue's formats: an entry's fields in Redis, the dead-letter
 * fields, and every Redis key name sentryq uses (pure: no sockets; reads hiredis reply structs). */
#ifndef SENTRYQ_ENTRY_H
#define SENTRYQ_ENTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "category.h"

#define ENTRY_GROUP "sentryq"        /* the consumer group on every stream */
#define ENTRY_ID_MAX 48              /* a stream id "1700000000000-12345" fits */
#define ENTRY_KEY_MAX 512            /* prefix (128) + "q:" + upstream (64) + ":" + project (64) fits */
#define ENTRY_FIELDS_MAX 16
#define ENTRY_FIELD_BODY_KEY "bk"   /* a large body's key: written by the put script, per copy */

/* Everything needed to forward one request later: one XADD, binary-safe. */
struct entry {
	const char *method;       /* "POST" | "GET" */
	const char *endpoint;     /* path after /api/<id>/ ("store/"); a path key is stored as "{key}" */
	const char *query;        /* raw query string, "" when none */
	const char *headers;      /* kept headers, "Name: value\n" lines */
	const char *client_ip;    /* X-Forwarded-For value to send upstream */
	const char *sdk_key;      /* public key the SDK sent (to rewrite trace.public_key) */
	const char *event_id;     /* 32 hex */
	int carrier;              /* enum auth_carrier */
	bool has_secret;          /* the SDK sent a secret */
	category_mask categories; /* classified once at ingest; CATEGORY_ALL for entries written before */
	const char *body;
	size_t body_len;
	long long received_ms;    /* ms since the epoch; 0 = now (filled in by entry_fields) */
	long long first_ms;       /* a replayed dead letter's first received time; 0 = none */
	const char *rewritten_key;/* the real key ingest already wrote into the body's envelope header
				   * (a compressed envelope, rewritten once); NULL or "": not rewritten */
	const char *body_key;     /* read back: the key holding a large body (body is then NULL and
				   * body_len its length); NULL: the body is in the entry */
};

/* The field list of one entry (names, values, lengths), pointing into the entry and into the
 * small buffers here: valid as long as both are. */
struct entry_fields {
	const char *name[ENTRY_FIELDS_MAX];
	const char *val[ENTRY_FIELDS_MAX];
	size_t len[ENTRY_FIELDS_MAX];
	size_t n;
	char carrier[12], received[24], first[24], cats[CATEGORY_LIST_MAX], body_len[24];
};

/* Why and how an entry was given up, written with the dead letter. */
struct entry_dead {
	const char *upstream;
	const char *project;
	const char *stream;
	const char *id;           /* the entry's id in its stream */
	const char *reason;       /* "permanent" | "max_age" | "max_attempts" */
	int status;               /* last HTTP status, 0 for a network error or none */
	long long attempts;
	long long last_attempt_ms;
	long long dead_at_ms;
};

struct entry_dead_fields {
	const char *name[ENTRY_FIELDS_MAX];
	const char *val[ENTRY_FIELDS_MAX];
	size_t n;
	char status[16], attempts[24], last[24], dead_at[24];
};

/* Result of reading an entry back. */
enum entry_result {
	ENTRY_OK = 0,
	ENTRY_DAMAGED,            /* not what sentryq writes: no method, endpoint or body field */
};

/* The entry as fields, in the order they are written. now_ms fills a zero received_ms.
 * out_of_line: the body is stored under its own key: "bl" (its length) replaces "b", and the
 * writer adds ENTRY_FIELD_BODY_KEY. */
void entry_fields(const struct entry *e, long long now_ms, bool out_of_line, struct entry_fields *f);
/* Back from a field list; strings point into the list (binary-safe body, NUL-terminated others). */
enum entry_result entry_from_fields(struct entry *e, const char *const *names, const size_t *nlens,
				    const char *const *vals, const size_t *vlens, size_t n);
/* Back from a stream entry's [k, v, k, v, ...] reply; strings point into the reply. */
enum entry_result entry_from_reply(struct entry *e, const redisReply *kv);
/* The value of field `name` in a [k, v, ...] reply, NULL when absent or not a string. */
const redisReply *entry_reply_field(const redisReply *kv, const char *name);
/* True for the fields entry_fields writes (what a dead-letter replay copies back). */
bool entry_is_field(const char *name, size_t len);

void entry_dead_fields(const struct entry_dead *d, struct entry_dead_fields *f);

/* A copy of the entry's strings in one allocation (free() it), without the body: body is NULL,
 * body_len and body_key kept. NULL when out of memory. */
struct entry *entry_dup(const struct entry *e);

/* Key names. Each returns 0, or -1 when the name does not fit in len. */
int entry_stream_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len);
int entry_bytes_key(const char *prefix, char *buf, size_t len);   /* body bytes queued, a counter */
int entry_dead_key(const char *prefix, char *buf, size_t len);    /* the dead-letter stream */
/* A large body's key: unique per writer (its consumer name) and write (ms and a sequence). */
int entry_body_key(const char *prefix, const char *writer, long long ms, unsigned long long seq, char *buf,
		   size_t len);

/*
 * Shared upstream knowledge (fleetsync.h), in every mode under one hash tag, so that one script
 * reads them all, in Redis Cluster too (one slot):
 *   <prefix>{fleet}up:<upstream>          string: "down <holder>" / "up <writer>", with a TTL
 *   <prefix>{fleet}probe:<upstream>       string: the id of the process holding the probe lease
 *   <prefix>{fleet}rl:<upstream>:<project> hash: category name (or "all") -> "<until ms> <scope> <reason>"
 * Each returns 0, or -1 when the name does not fit in len.
 */
#define ENTRY_FLEET_TAG "{fleet}"
int entry_fleet_state_key(const char *prefix, const char *upstream, char *buf, size_t len);
int entry_fleet_probe_key(const char *prefix, const char *upstream, char *buf, size_t len);
int entry_fleet_limits_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len);

/*
 * Key names in Redis Cluster (redis.cluster). Every key of a route carries the route's hash tag
 * "{<upstream>:<project>}", so its stream, byte counter, dead-letter stream and large bodies live
 * in one slot and one script can touch them together:
 *   <prefix>{<up>:<pr>}q                 the route's stream
 *   <prefix>{<up>:<pr>}bytes             body bytes queued in the streams of that tag
 *   <prefix>{<up>:<pr>}dead              dead letters of the streams of that tag
 *   <prefix>{<up>:<pr>}b:<writer>:<ms>-<seq>  a large body of an entry of that tag
 *   <prefix>{<src up>:<src pr>}m:<dst up>:<dst pr>  mirror copies of src's requests for dst:
 *                                        tagged by the SOURCE route, so the put script queues a
 *                                        request and all its mirror copies in one slot, atomically;
 *                                        the destination's forwarder reads it as an extra stream.
 * The standalone and Sentinel names above are unchanged. Each returns 0, or -1 when the name does
 * not fit in len (or, for the ones derived from a key, that key has no hash tag).
 */
int entry_cluster_stream_key(const char *prefix, const char *upstream, const char *project, char *buf, size_t len);
int entry_cluster_mirror_key(const char *prefix, const char *src_upstream, const char *src_project,
			     const char *upstream, const char *project, char *buf, size_t len);
/* The key of the same tag as `key` (a stream) with the given suffix: ENTRY_CLUSTER_BYTES or
 * ENTRY_CLUSTER_DEAD. */
#define ENTRY_CLUSTER_BYTES "bytes"
#define ENTRY_CLUSTER_DEAD "dead"
int entry_cluster_sibling_key(const char *key, const char *suffix, char *buf, size_t len);
/* A large body's key, in the slot of `stream` (the first stream it is queued to). */
int entry_cluster_body_key(const char *stream, const char *writer, long long ms, unsigned long long seq, char *buf,
			   size_t len);

#endif
