/* queue.h - the durable queue: one Redis stream per route, a consumer group, and the memory
 * buffer (and spool file) that take over while Redis is away. Speaks the stream protocol over
 * the connection supervisor (redisconn.h); the entry format and key names are entry.h's. */
#ifndef SENTRYQ_QUEUE_H
#define SENTRYQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "entry.h"
#include "redisconn.h"

struct event_base;
struct config;
struct queue;

#define QUEUE_ACK_MAX 1000     /* ids per ack: bounded by Lua's unpack() stack */
#define QUEUE_STREAMS_MAX 9    /* copies of one request: the project and up to 8 mirrors */
/* Bodies above this are stored under their own key, written and read in chunks (the entry holds
 * the key): no Redis command, reply or client buffer ever holds a whole large body. */
#define QUEUE_INLINE_MAX (1024 * 1024)

/* How a command ended. */
enum queue_done {
	QUEUE_DONE_OK = 0,
	QUEUE_DONE_ERROR,      /* Redis answered with an error */
	QUEUE_DONE_LOST,       /* the connection was lost first: the outcome is unknown */
	QUEUE_DONE_UNREPLICATED, /* queue_put only: in the master, but WAIT found fewer than
				  * redis.wait_replicas replicas with it in time (it stays queued) */
};

/* Whether a command was sent (its callback follows) or not (no callback). */
enum queue_send {
	QUEUE_SENT = 0,
	QUEUE_UNAVAILABLE,     /* Redis is not ready, or out of memory */
};

/* What queue_put did with an entry. */
enum queue_put {
	QUEUE_PUT_SENT = 0,    /* XADD (or the put script) sent: the done callback follows */
	QUEUE_PUT_BUFFERED,    /* Redis is away: copied into the memory buffer; no callback */
	QUEUE_PUT_REFUSED,     /* neither Redis nor the buffer can take it; no callback */
};

/* One entry read back; pointers are valid only during the read callback. */
struct queue_entry {
	char id[ENTRY_ID_MAX];
	bool deleted;           /* a pending id whose data is gone (acked elsewhere): just ack it */
	bool damaged;           /* not what sentryq writes: it never becomes a request */
	struct entry item;
	long long deliveries;   /* earlier deliveries of this entry (0 when read for the first time) */
};

typedef void (*queue_done_cb)(void *arg, enum queue_done r);
/* Entries read. scanned: stream or pending-list positions the read covered; last: the id of the
 * last one (the cursor of the next scan). Fewer than asked means the end was reached. */
typedef void (*queue_read_cb)(void *arg, enum queue_done r, const struct queue_entry *e, size_t n,
			      size_t scanned, const char *last);
/* For pending-list scans: true to leave an id alone (in flight, delivered and being acked, or sent
 * too recently). idle_ms: milliseconds since its last delivery (XPENDING). */
typedef bool (*queue_skip_cb)(void *arg, const char *id, long long idle_ms);
/* An orphan claim: how many entries other consumers left pending were taken over. */
typedef void (*queue_claim_cb)(void *arg, enum queue_done r, size_t claimed);

/* Upward notifications (the forwarder). */
struct queue_hooks {
	void (*on_ready)(void *arg);                       /* Redis is (again) ready */
	void (*on_arrival)(void *arg, const char *stream); /* an entry of this stream is in Redis */
	void *arg;
};

/* Connects (and reconnects by itself); takes back a spool file left by the last stop. */
struct queue *queue_new(struct event_base *base, const struct config *cfg, const struct queue_hooks *hooks);
/* What queue_reconfigure did. */
enum queue_reconfigure {
	QUEUE_RECONFIGURED = 0,
	QUEUE_RECONFIGURE_NOMEM,   /* nothing changed */
};

/*
 * A reload: the streams become cfg's routes' (and mirrors'), the ones the queue had before staying
 * behind them until queue_forget_stream. A stream new to the queue gets its consumer group
 * (XGROUP CREATE ... MKSTREAM) before any later put or read of it: on the one connection it is
 * sent first; with a cluster the queue is not ready (puts go to the buffer) until every group is
 * made again, as at start. Only the names are read from cfg (the prefix and Redis settings stay
 * the start's).
 */
enum queue_reconfigure queue_reconfigure(struct queue *q, const struct config *cfg);
/* A stream no route reads any more (a removed route's, empty): out of the gauges and counters. */
void queue_forget_stream(struct queue *q, const char *stream);
/* A stream's XLEN at the last refresh and when that XLEN was sent (monotonic seconds, 0 before the
 * first): false for a stream the queue does not have. */
bool queue_stream_len(const struct queue *q, const char *stream, long long *entries, double *counted_at);

/* Writes what is still buffered to the spool file (if configured), then closes. */
void queue_free(struct queue *q);

bool queue_ready(const struct queue *q);
/* Where Redis is ("host:port", the master the sentinels named last) and the sentinel followed
 * for failovers ("" when none): redisconn_address / redisconn_sentinel, into buf. */
const char *queue_redis_address(const struct queue *q, char *buf, size_t len);
const char *queue_redis_sentinel(const struct queue *q, char *buf, size_t len);
const char *queue_consumer(const struct queue *q);
/* The stream of a route (entry_stream_key with the configured prefix; with redis.cluster,
 * entry_cluster_stream_key). 0, or -1 when too long. */
int queue_stream(const struct queue *q, const char *upstream, const char *project, char *buf, size_t len);
/* The stream a mirror copy of src's requests for the route (upstream, project) is queued to: that
 * route's own stream, or, with redis.cluster, a stream in the source route's slot
 * (entry_cluster_mirror_key), which the destination's forwarder reads as a further stream. */
int queue_mirror_stream(const struct queue *q, const char *src_upstream, const char *src_project, const char *upstream,
			const char *project, char *buf, size_t len);
/* One command of another module's protocol (fleetsync.h) over the queue's connection: the one
 * connection, or, with redis.cluster, the master of the command's key (an EVAL's first key).
 * QUEUE_SENT: cb runs exactly once (reply NULL when the connection was lost first). */
enum queue_send queue_command(struct queue *q, redisconn_reply_cb cb, void *arg, int argc, const char **argv,
			      const size_t *lens);
/* redis.cluster is configured. */
bool queue_cluster(const struct queue *q);
struct rcluster_counters;
/* With a cluster: its counters into out (true); without: false. */
bool queue_cluster_counters(const struct queue *q, struct rcluster_counters *out);

/* Append an entry to 1..QUEUE_STREAMS_MAX streams (a request and its mirrors), all copies in one
 * atomic step (one XADD, or one script): the done callback's OK means every copy is in Redis.
 * Buffered, the copies go in together or not at all. With redis.wait_replicas, the done callback
 * follows the WAIT sent after the XADDs of this loop iteration (QUEUE_DONE_UNREPLICATED when it
 * found too few replicas). See enum queue_put. */
enum queue_put queue_put(struct queue *q, const char *const *streams, size_t n, const struct entry *e,
			 queue_done_cb cb, void *arg);
/* XADDs of queue_put waiting for Redis's answer (a saturated loop shows here first). */
int queue_writes_in_flight(const struct queue *q);
/* Entries (and bytes) waiting in the in-memory buffer. */
size_t queue_buffered(const struct queue *q, size_t *bytes);

/*
 * New entries (from = ">"), or this consumer's pending entries after `from` ("0" = from the
 * start): XPENDING gives ids and delivery counts, skip() drops the ones in hand, XCLAIM fetches
 * the rest, so a delivery is counted only for entries really sent again.
 */
enum queue_send queue_read(struct queue *q, const char *stream, const char *from, int count, queue_skip_cb skip,
			   queue_read_cb cb, void *arg);

/* A delivered entry to ack: its id and body size (taken off the queue's byte count). */
struct queue_ack_item {
	char id[ENTRY_ID_MAX];
	size_t body_len;
	bool body_key;     /* its body is under its own key, deleted with it */
};

/* XACK + XDEL of 1..QUEUE_ACK_MAX entries, atomically. */
enum queue_send queue_ack(struct queue *q, const char *stream, const struct queue_ack_item *items, size_t n,
			  queue_done_cb cb, void *arg);
/* Move an entry to the dead-letter stream with the reason, atomically (d->stream, d->id). */
enum queue_send queue_dead(struct queue *q, const struct entry_dead *d, queue_done_cb cb, void *arg);
/* Take over entries other consumers left pending for longer than forward.claim_idle. */
enum queue_send queue_claim_orphans(struct queue *q, const char *stream, queue_claim_cb cb, void *arg);

/* Set a pending entry's delivery count and idle time (XCLAIM ... IDLE, RETRYCOUNT, JUSTID), e.g.
 * back to its real sends when it was read but held back unsent, with an idle time that lets the
 * next pending scan take it at once. Fire and forget: a failure only overcounts. */
void queue_set_deliveries(struct queue *q, const char *stream, const char *id, long long count, long long idle_ms);

/* A large body (an entry's body_key) read back in chunks into one allocation of len bytes. On
 * QUEUE_DONE_OK the body is the callback's to free; ERROR: the key is missing or shorter than len
 * (the body is lost); LOST: Redis went away, try again later. */
struct queue_fetch;
typedef void (*queue_fetch_cb)(void *arg, enum queue_done r, char *body, size_t len);
/* NULL (no callback) when Redis is not ready or memory is short. */
struct queue_fetch *queue_fetch_body(struct queue *q, const char *key, size_t len, queue_fetch_cb cb, void *arg);
/* The callback will not be called; what was read is freed. */
void queue_fetch_cancel(struct queue_fetch *f);

/* Entries in every configured stream not yet forwarded, and their body bytes
 * (refreshed from Redis once a second, moved by local puts and acks in between). */
long long queue_pending(const struct queue *q);
long long queue_bytes(const struct queue *q);

/* One configured stream as Redis described it at the last refresh (once a second while ready). */
struct queue_stream_gauges {
	long long entries;        /* XLEN: entries not yet acked, in flight included */
	long long memory_bytes;   /* MEMORY USAGE: bytes Redis holds for the stream */
};

/* Configured streams, in configuration order (each upstream's projects in turn); with a cluster,
 * the mirror streams follow the routes' (queue_mirror_stream). */
size_t queue_streams(const struct queue *q);
/* Stream i's gauges (zeros for an index past the end). */
void queue_stream_gauges(const struct queue *q, size_t i, struct queue_stream_gauges *out);
/* The consumer group of stream i at the last poll (every 2 s; zeros before the first answer). */
struct queue_group_gauges {
	bool polled;              /* Redis has answered a poll of this stream */
	long long consumers;      /* XINFO CONSUMERS: the group's consumers, departed ones not yet removed */
	size_t named;             /* of which the first this many are kept by name (at most 16) */
	double oldest_age;        /* seconds since the oldest entry not yet forwarded was queued; 0: none */
};
void queue_group_gauges(const struct queue *q, size_t i, struct queue_group_gauges *out);
/* Member j (< named) of stream i's group: its name (valid until the next poll's answer), the
 * entries delivered to it and not yet acked, milliseconds since it last read or claimed. */
struct queue_group_member {
	const char *name;
	long long pending, idle_ms;
};
bool queue_group_member(const struct queue *q, size_t i, size_t j, struct queue_group_member *out);
/* Departed consumers this process removed from a group (forward.departed_after, nothing pending). */
unsigned long queue_consumers_removed(const struct queue *q);
/* Times Redis became ready, the first connection included (reconnects are this minus one). */
unsigned long queue_connects(const struct queue *q);

#endif
