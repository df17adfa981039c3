/* health.h - Sentry Relay's two health checks as pure decisions (the numbers are documented in
 * the README, "Health checks").
 *  - live: the event loop is not stuck. A self-check timer runs every HEALTH_BEAT_PERIOD
 *    seconds and records when it ran and how long it had been since the run before. Live answers
 *    503 while the self-check is more than HEALTH_STALE_AFTER seconds overdue, and after a stall
 *    of more than HEALTH_STALE_AFTER seconds until the self-check has run once more (a stall the
 *    loop has just come out of is still reported, not hidden by the run that ended it).
 *  - ready: a new ingest request would be accepted now: not stopping, the queue under its bounds
 *    (as ingest's backpressure check), the memory buffer able to take a small request when Redis
 *    is away (or the buffer is still draining), the listener's body memory not exhausted.
 *    A forward-only process (role forward) takes no ingest request: it is ready while not
 *    stopping and connected to Redis, where its work is. */
#ifndef SENTRYQ_HEALTH_H
#define SENTRYQ_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#define HEALTH_BEAT_PERIOD 1.0     /* seconds between two runs of the self-check timer */
#define HEALTH_STALE_AFTER 5.0     /* seconds without a run after which live fails */
#define HEALTH_SMALL_REQUEST 1024  /* bytes: "a new request" for the buffer and body-memory checks */

/* What ready found: HEALTH_READY, or the first reason a request would be refused. */
enum health_ready {
	HEALTH_READY = 0,
	HEALTH_STOPPING,      /* SIGTERM seen: draining, ingest answers 503 */
	HEALTH_QUEUE_FULL,    /* queue.max_pending or queue.max_bytes reached: ingest answers 429 */
	HEALTH_BUFFER_FULL,   /* Redis away (or the buffer draining) and the buffer cannot take a request: 503 */
	HEALTH_BODY_MEMORY,   /* listen.max_body_memory in use: the listener answers 503 */
	HEALTH_REDIS_DOWN,    /* forward_only: Redis is not connected (nothing to forward from) */
};

/* What live found. */
enum health_live {
	HEALTH_LIVE = 0,
	HEALTH_STUCK,         /* the self-check is overdue, or its last run came after a stall */
};

/* Everything ready depends on, read by the caller from the modules that own it. */
struct health_input {
	bool stopping;
	long long pending, max_pending;   /* queue entries and queue.max_pending */
	long long bytes, max_bytes;       /* queued body bytes and queue.max_bytes */
	bool redis_ready;
	size_t buffered;                  /* entries in the memory buffer */
	size_t buffer_bytes, buffer_max;  /* its bytes and redis.buffer_bytes */
	bool body_room;                   /* httpd_has_room(listener, HEALTH_SMALL_REQUEST) */
	bool forward_only;                /* role forward: only stopping and redis_ready count */
};

enum health_ready health_ready(const struct health_input *in);
/* last_beat and now: monotonic seconds; last_gap: seconds between the last two self-checks. */
enum health_live health_live(double last_beat, double last_gap, double now);
/* "ready", "stopping", "queue_full", "buffer_full", "body_memory", "redis_down". */
const char *health_ready_name(enum health_ready r);
/* The /status word: "stopping"; "ok" when ready with Redis connected; else "degraded". */
const char *health_status_word(enum health_ready r, bool redis_ready);

#endif
