/* report.c - one stats line every log.stats_period seconds, with rates over the period. */
#include "report.h"

#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "forward.h"
#include "log.h"
#include "outcome.h"
#include "queue.h"
#include "relay.h"
#include "stats.h"
#include "upstream.h"

/* Counters at the last line, to report what moved in the period. */
struct mark {
	unsigned long long received, forwarded, dead;
	double at;
};

struct report {
	struct relay *r;
	struct event *ev;
	struct mark last;
	uint64_t *up_delivered, *up_failed;   /* per configured upstream */
};

static struct mark mark_now(const struct relay *r)
{
	struct mark m = { stats_get(r->stats, STATS_RECEIVED), stats_get(r->stats, STATS_FORWARDED),
			  stats_get(r->stats, STATS_DEAD), clock_mono() };

	return m;
}

static uint64_t failed_of(const struct upstream_counts *c)
{
	return c->answered[OUTCOME_RETRY] + c->answered[OUTCOME_LIMITED] + c->answered[OUTCOME_PERMANENT] + c->no_answer;
}

/* One line per upstream that did something, or is not up. */
static void report_upstreams(struct report *rp)
{
	const struct upstream *u;

	for (size_t i = 0; (u = forward_upstream(rp->r->forward, i)) != NULL; i++) {
		const struct upstream_counts *c = upstream_counts(u);
		uint64_t ok = c->answered[OUTCOME_DELIVERED] - rp->up_delivered[i], bad = failed_of(c) - rp->up_failed[i];
		const char *state = upstream_state_name(u), *name = upstream_config(u)->name;

		rp->up_delivered[i] = c->answered[OUTCOME_DELIVERED];
		rp->up_failed[i] = failed_of(c);
		if (ok == 0 && bad == 0 && state[0] == 'u')
			continue;
		log_kv_info(LOG_FIELDS(LOG_STR("upstream", name), LOG_INT("forwarded", ok), LOG_INT("failed", bad),
				       LOG_STR("state", state), LOG_INT("in_flight", upstream_in_flight(u))),
			    "stats: upstream %s: %llu forwarded, %llu failed, %s", name, (unsigned long long)ok,
			    (unsigned long long)bad, state);
	}
}

static void report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct report *rp = arg;
	const struct relay *r = rp->r;
	struct mark now = mark_now(r);
	double secs = now.at - rp->last.at > 0 ? now.at - rp->last.at : 1;
	double rps = (double)(now.received - rp->last.received) / secs;
	double fps = (double)(now.forwarded - rp->last.forwarded) / secs;
	unsigned long long dead = now.dead - rp->last.dead;
	size_t buffered = queue_buffered(r->queue, NULL);

	(void)fd;
	(void)what;
	log_kv_info(LOG_FIELDS(LOG_REAL("requests_per_s", rps), LOG_REAL("forwards_per_s", fps),
			       LOG_INT("queue_entries", queue_pending(r->queue)), LOG_INT("queue_bytes", queue_bytes(r->queue)),
			       LOG_INT("buffered", buffered), LOG_INT("dead_letters", dead),
			       LOG_INT("dead_letters_total", now.dead), LOG_INT("redis_connected", queue_ready(r->queue))),
		    "stats: %.1f req/s, %.1f fwd/s, queue %lld entries (%lld bytes), %zu buffered, %llu dead letters",
		    rps, fps, queue_pending(r->queue), queue_bytes(r->queue), buffered, dead);
	report_upstreams(rp);
	rp->last = now;
}

/* The stats timer at its period (0: none). */
static int schedule(struct report *rp)
{
	struct timeval tv = clock_timeval(rp->r->cfg->log_stats_period);

	if (rp->ev != NULL)
		evtimer_del(rp->ev);
	if (rp->r->cfg->log_stats_period <= 0)
		return 0;
	if (rp->ev == NULL && (rp->ev = event_new(rp->r->base, -1, EV_PERSIST, report_cb, rp)) == NULL)
		return -1;
	evtimer_add(rp->ev, &tv);
	return 0;
}

/* The upstreams' counts as they are now: what the next line's per-upstream deltas start from. */
static int mark_upstreams(struct report *rp)
{
	const struct upstream *u;
	size_t n = 0;
	uint64_t *d, *f;

	while (forward_upstream(rp->r->forward, n) != NULL)
		n++;
	d = realloc(rp->up_delivered, (n ? n : 1) * sizeof(uint64_t));
	if (d != NULL)
		rp->up_delivered = d;
	f = realloc(rp->up_failed, (n ? n : 1) * sizeof(uint64_t));
	if (f != NULL)
		rp->up_failed = f;
	if (d == NULL || f == NULL)
		return -1;
	for (size_t i = 0; (u = forward_upstream(rp->r->forward, i)) != NULL; i++) {
		rp->up_delivered[i] = upstream_counts(u)->answered[OUTCOME_DELIVERED];
		rp->up_failed[i] = failed_of(upstream_counts(u));
	}
	return 0;
}

void report_reload(struct report *rp)
{
	if (mark_upstreams(rp) != 0 || schedule(rp) != 0)
		log_error("report: out of memory after a reload; the stats line may be off");
}

struct report *report_new(struct relay *r)
{
	struct report *rp = calloc(1, sizeof(*rp));
	size_t n = r->cfg->nupstreams ? r->cfg->nupstreams : 1;
	struct timeval tv = clock_timeval(r->cfg->log_stats_period);

	if (rp == NULL)
		return NULL;
	rp->r = r;
	rp->last = mark_now(r);
	rp->up_delivered = calloc(n, sizeof(uint64_t));
	rp->up_failed = calloc(n, sizeof(uint64_t));
	if (rp->up_delivered == NULL || rp->up_failed == NULL)
		goto fail;
	if (r->cfg->log_stats_period > 0) {
		if ((rp->ev = event_new(r->base, -1, EV_PERSIST, report_cb, rp)) == NULL)
			goto fail;
		evtimer_add(rp->ev, &tv);
	}
	return rp;
fail:
	report_free(rp);
	return NULL;
}

void report_free(struct report *rp)
{
	if (rp == NULL)
		return;
	if (rp->ev != NULL)
		event_free(rp->ev);
	free(rp->up_delivered);
	free(rp->up_failed);
	free(rp);
}
