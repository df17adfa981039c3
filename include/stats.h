/* stats.h - counters behind /status; plain increments on the loop thread, no locking needed. */
#ifndef SENTRYQ_STATS_H
#define SENTRYQ_STATS_H

#include <jansson.h>

enum stats_counter {
	STATS_RECEIVED = 0,  /* ingest requests */
	STATS_ENQUEUED,      /* answered 2xx after the Redis write */
	STATS_FORWARDED,     /* entries an upstream accepted */
	STATS_RETRIED,       /* forward attempts after an entry's first */
	STATS_DEAD,          /* entries given up */
	STATS_REJECTED,      /* ingest requests answered with an error */
	STATS_UPSTREAM_FAILED, /* forward attempts that did not get a 2xx */
	STATS_BACKPRESSURE,  /* ingest answered 429 because the queue is full */
	STATS_RATE_LIMITED,  /* upstream 429s (project or upstream parked) */
	STATS_DEAD_PERMANENT, /* dead letters by reason */
	STATS_DEAD_MAX_AGE,
	STATS_DEAD_MAX_ATTEMPTS,
	STATS_BUFFERED,      /* accepted into memory while Redis was away */
	STATS_RELOADS,       /* configuration reloads that took effect (SIGHUP) */
	STATS_RELOAD_FAILURES, /* reloads refused (the running configuration stays) */
	STATS__COUNT
};

struct stats;

struct stats *stats_new(void);
void stats_free(struct stats *st);
void stats_add(struct stats *st, enum stats_counter c, unsigned long long n);
unsigned long long stats_get(const struct stats *st, enum stats_counter c);
/* {"received": n, ...}: a new reference. */
json_t *stats_counters_json(const struct stats *st);

#endif
