/* outage.h - is an upstream reachable? Sentry Relay's connection monitor as a pure state machine.
 *
 * A wave of concurrent failures counts once: every request is stamped when it is sent, and only a
 * failure of a request sent after the last change of state moves the state. Short blips (the grace
 * period) are retried after about retry_initial; after that the upstream is down and one probe at
 * a time goes out at a growing, bounded interval; the first answer that proves the upstream is
 * reachable ends the outage for everything. No clock is read here: callers pass `now`.
 */
#ifndef SENTRYQ_OUTAGE_H
#define SENTRYQ_OUTAGE_H

#include <stdbool.h>

enum outage_state {
	OUTAGE_UP = 0,       /* answers arrive: send on every connection */
	OUTAGE_INTERRUPTED,  /* failures within the grace period: wait ~retry_initial, then send again */
	OUTAGE_DOWN,         /* failing for longer than the grace period: one probe at a time */
};

/* What a report changed, so the caller can log and count transitions once. */
enum outage_change {
	OUTAGE_SAME = 0,       /* nothing (a stale failure of an earlier wave, or up and still up) */
	OUTAGE_BECAME_INTERRUPTED,
	OUTAGE_RETRY_LATER,    /* interrupted and still within the grace period: next wave later */
	OUTAGE_BECAME_DOWN,
	OUTAGE_PROBE_FAILED,   /* down, and the probe failed: the interval grew */
	OUTAGE_RECOVERED,      /* was interrupted or down, reachable again */
};

struct outage_params {
	double retry_initial;  /* first retry / first probe interval, seconds (forward.retry_initial) */
	double retry_max;      /* cap of the probe interval, jitter included (forward.retry_max) */
	double grace;          /* how long failures may go on before the upstream is down (forward.outage_grace) */
};

struct outage {
	struct outage_params p;
	enum outage_state state;
	unsigned stamp;        /* bumped on every change: requests sent before it cannot move the state */
	double since;          /* when the current state began */
	double first_failure;  /* start of the interruption (kept while down) */
	double next_at;        /* no request before this (interrupted: next wave; down: next probe) */
	double interval;       /* current probe interval while down */
	long failed_waves;     /* failures that moved the state since the last answer */
};

#define OUTAGE_PROBE_FACTOR 1.5
#define OUTAGE_JITTER 0.1      /* +-10 % on every wait, so a fleet of relays does not probe in step */

void outage_init(struct outage *o, const struct outage_params *p, double now);
/* The stamp a request carries from its send to its answer. */
unsigned outage_stamp(const struct outage *o);
/* A request sent under `stamp` at `sent` failed at `now` (network error, timeout, 408, 5xx). rnd
 * in [0, 1) jitters. A failed probe's next one is due `interval` after the failed one was sent,
 * not after its answer: a slow or hung probe does not stretch the outage's detection of a return
 * (the next probe goes out at most retry_max after the last one did). */
enum outage_change outage_failed(struct outage *o, unsigned stamp, double sent, double now, double rnd);
/* An answer that proves the upstream reachable (2xx, 4xx, 429): the outage, if any, is over. */
enum outage_change outage_reachable(struct outage *o, double now);
/* The fleet (other processes sharing the Redis, fleetsync.h) says the upstream is down: enter
 * the down state now, as if the grace period had run out here (first probe after about
 * retry_initial). OUTAGE_BECAME_DOWN, or OUTAGE_SAME when it was down already. */
enum outage_change outage_fleet_down(struct outage *o, double now, double rnd);
/* How many requests may be in flight now, given the connection cap: max while up or once the
 * interrupted wait is over, 1 (the probe) while down and due, else 0. */
int outage_slots(const struct outage *o, double now, int max);
/* Seconds until requests may go out again (0: now). */
double outage_wait(const struct outage *o, double now);
const char *outage_state_name(enum outage_state s);

#endif
