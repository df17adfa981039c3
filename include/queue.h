/* queue.h - the durable queue: Redis streams over one hiredis async connection on the loop. */
#ifndef SENTRYQ_QUEUE_H
#define SENTRYQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct relay;
struct queue;

#define QUEUE_ID_MAX 48
#define QUEUE_STREAM_MAX 512   /* prefix (128) + "q:" + upstream (64) + ":" + project (64) fits */
#define QUEUE_GROUP "sentryq"
#define QUEUE_ACK_MAX 1000     /* ids per ack: bounded by Lua's unpack() stack */

/* Everything needed to forward one request later; written as one XADD (binary-safe). */
struct queue_item {
	const char *method;     /* "POST" */
	const char *endpoint;   /* path after /api/<id>/ ("store/", "envelope/") */
	const char *query;      /* raw query string, "" when none */
	const char *headers;    /* kept headers, "Name: value\n" lines */
	const char *client_ip;  /* X-Forwarded-For value to send upstream */
	const char *sdk_key;    /* public key the SDK sent (to rewrite trace.public_key) */
	const char *event_id;   /* 32 hex */
	int carrier;            /* enum auth_carrier */
	bool has_secret;        /* the SDK sent a secret */
	const char *body;
	size_t body_len;
	long long received_ms;  /* ms since the epoch; 0 = now */
};

/* Why and how an entry was given up, recorded with the dead letter. */
struct queue_dead_info {
	const char *upstream;
	const char *project;
	const char *reason;      /* "permanent" | "max_age" | "max_attempts" */
	int status;              /* last HTTP status, 0 for a network error or none */
	long long attempts;
	long long last_attempt_ms;
};

/* One entry read back; pointers are valid only during the read callback. */
struct queue_entry {
	char id[QUEUE_ID_MAX];
	bool deleted;           /* pending id whose data is gone (acked elsewhere): just ack it */
	struct queue_item item;
	long long deliveries;   /* earlier deliveries of this entry (0 when read for the first time) */
};

/* ok: 1 done, 0 Redis answered an error, -1 the connection was lost (outcome unknown). */
typedef void (*queue_done_cb)(void *arg, int ok);
/*
 * Entries read (pointers valid during the call only). scanned: how many stream or pending-list
 * positions the read covered and last: the id of the last one (the cursor for the next scan);
 * fewer than asked means the end was reached.
 */
typedef void (*queue_read_cb)(void *arg, int ok, const struct queue_entry *e, size_t n, size_t scanned,
			      const char *last);
/* For pending-list scans: true to leave an id alone (in flight, or delivered and being acked). */
typedef bool (*queue_skip_cb)(void *arg, const char *id);
typedef void (*queue_ready_cb)(void *arg);

/* Creates the connection (it connects and reconnects by itself, with backoff). */
struct queue *queue_new(struct relay *r, queue_ready_cb on_ready, void *arg);
void queue_free(struct queue *q);

bool queue_ready(const struct queue *q);
/* Stream name of a route: "<prefix>q:<upstream>:<project>". */
void queue_stream_name(const struct queue *q, const char *upstream, const char *project,
		       char *buf, size_t len);

/*
 * Append. 0: sent, cb(arg, ok) follows. 1: Redis is away and the entry was copied into the
 * in-memory buffer (redis.buffer_bytes), to be written when Redis is back; no callback.
 * -1: neither Redis nor the buffer can take it; no callback.
 */
int queue_put(struct queue *q, const char *stream, const struct queue_item *it,
	      queue_done_cb cb, void *arg);
/* Entries (and bytes) waiting in the in-memory buffer. */
size_t queue_buffered(const struct queue *q, size_t *bytes);
/*
 * New entries (from = ">"), or this consumer's pending entries after `from` ("0" = from the
 * start): XPENDING gives ids and delivery counts, skip() drops the ones in hand, XCLAIM fetches
 * the rest, so a delivery is counted only for entries really sent again.
 */
int queue_read(struct queue *q, const char *stream, const char *from, int count, queue_skip_cb skip,
	       queue_read_cb cb, void *arg);
/* A delivered entry to ack: its id and body size (taken off the queue's byte count). */
struct queue_ack_item {
	char id[QUEUE_ID_MAX];
	size_t body_len;
};

/* XACK + XDEL of 1..QUEUE_ACK_MAX entries, atomically. */
int queue_ack(struct queue *q, const char *stream, const struct queue_ack_item *items, size_t n,
	      queue_done_cb cb, void *arg);
/* Move an entry to the dead-letter stream "<prefix>dead" with the reason, atomically. */
int queue_dead(struct queue *q, const char *stream, const char *id, const struct queue_dead_info *info,
	       queue_done_cb cb, void *arg);
/* Take over entries other consumers left pending for longer than forward.claim_idle. */
int queue_claim_orphans(struct queue *q, const char *stream, queue_done_cb cb, void *arg);
/* Entries in every configured stream not yet forwarded, and their body bytes
 * (refreshed from Redis once a second, moved by local puts and acks in between). */
long long queue_pending(const struct queue *q);
long long queue_bytes(const struct queue *q);

#endif
