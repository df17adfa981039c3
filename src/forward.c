/* forward.c - read entries per route from Redis, rebuild them for their upstream, ack after a 2xx;
 * hold back what a rate limit names, dead-letter what never will pass. */
#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "budget.h"
#include "clock.h"
#include "config.h"
#include "fleetsync.h"
#include "generation.h"
#include "throttle.h"
#include "log.h"
#include "outcome.h"
#include "queue.h"
#include "ratelimit.h"
#include "relay.h"
#include "request.h"
#include "stats.h"
#include "strmap.h"
#include "upstream.h"

#define POLL_INTERVAL 0.5       /* seconds between reads of an idle route (entries of other processes) */
#define TICK_PERIOD 0.1
#define MEMORY_RETRY 0.1        /* seconds before a large body waiting for body memory is tried again */
#define LIMITS_HEADER_JOIN 4096 /* X-Sentry-Rate-Limits values of one answer, joined */

struct fwd_call;
struct ack_batch;

struct fwd_route {
	struct forward *f;
	struct generation *gen;        /* held: uc and pr point into it */
	struct upstream *up;
	struct upstream *read_up;      /* the upstream the read in progress reserved its slots on */
	const struct config_upstream *uc;
	const struct config_project *pr;   /* its credentials: a changed project's new ones, a removed
					    * project's those its entries were queued under */
	bool retired;                  /* a reload removed it: read until its stream is empty */
	bool seen;                     /* in the configuration being applied */
	bool claiming;                 /* an orphan claim is in flight */
	double quiet_since;            /* retired: since when nothing can add to its stream (0: not yet) */
	char stream[ENTRY_KEY_MAX];
	char label[160];               /* "<upstream>/<real id>" for logs and /status: the project name
					* is the DSN secret users were given, so it is never shown */
	bool reading;
	bool pel;                      /* scanning this consumer's pending entries (retries, restarts) */
	bool rescan;                   /* scan the pending entries again (after a failure, a limit) */
	char cursor[ENTRY_ID_MAX];
	double last_read;
	struct fwd_call *calls;        /* in flight, so a pending scan does not send them twice */
	struct queue_ack_item *acks;   /* delivered, ack not yet written */
	size_t nacks, cap_acks;
	struct ack_batch *acking;      /* the batch being written, its ids still pending in Redis */
	double ack_retry_at;           /* after a failed ack: not before (monotonic seconds) */
	int last_status;               /* last failed attempt's status, for dead letters */
	int asked;                     /* slots reserved for the read in progress */
	bool idle;                     /* the last read of new entries came back short: nothing waits */
	long held;                     /* entries left pending because a limit names their categories */
	double release_at;             /* when the soonest of those limits ends (0: none held) */
	double memory_retry_at;        /* a large body waited for body memory: no read before this */
	double retry_due;              /* a pending scan left entries sent too recently: rescan then */
};

struct fwd_call {
	struct fwd_route *rt;
	struct upstream *up;           /* where its slot is (a reload may move the route meanwhile) */
	char id[ENTRY_ID_MAX];
	size_t body_len;
	bool body_key;                 /* a large body, under its own key */
	long long attempts;            /* including this one */
	struct fwd_call *next, *prev;
	/* A large body is read from Redis first (its memory taken from the body budget). */
	struct queue_fetch *fetch;
	struct entry *copy;            /* the entry, kept while its body is read */
	bool retry;
};

/* An upstream a reload replaced or removed: kept while a route or a request still uses it. */
struct fwd_old_up {
	struct upstream *up;
	struct generation *gen;        /* held: its config */
};

struct forward {
	struct relay *r;
	struct generation *gen;        /* the configuration applied last (held) */
	struct upstream **ups;         /* parallel to the generation's upstreams */
	size_t nups;
	struct fleetsync *fleet;       /* shared upstream knowledge (NULL: fleet.sync off) */
	struct fwd_old_up *old_ups;
	size_t nold_ups;
	struct fwd_route **routes;     /* the configuration's routes (and cluster mirror streams), then
					* retired ones; each allocated alone: callbacks point at them */
	size_t nroutes, cap_routes;
	struct strmap *by_stream;      /* stream name -> route */
	struct event *tick_ev;
	struct event *flush_ev;
	double last_claim;
	bool draining;
	bool kick_pending;             /* a read was asked for since the last flush */
	size_t rr;                     /* round-robin start of the next kick loop */
	bool closing;                  /* forward_free in progress: completions only clean up */
	bool in_tick;                  /* the tick reads even while ingest is busy */
	void (*drain_cb)(void *);
	void *drain_arg;
};

static void route_kick(struct fwd_route *rt);
static struct fwd_call *link_call(struct fwd_route *rt, const struct queue_entry *e);
static void bury(struct fwd_call *c, const char *reason, int status);
static void unlink_call(struct fwd_call *c);
static void free_call(struct fwd_call *c);
static void check_drained(struct forward *f);
static void reap(struct forward *f, double now);
static int fetch_body(struct fwd_route *rt, const struct queue_entry *e, bool retry);

/* Reads happen in flush_cb, once per loop iteration, however many events asked for one. */
static void want_kick(struct forward *f)
{
	f->kick_pending = true;
	event_active(f->flush_ev, EV_WRITE, 0);
}

/* ---- acks ---- */

static int push_ack(struct fwd_route *rt, const char *id, size_t body_len, bool body_key)
{
	if (rt->nacks == rt->cap_acks) {
		size_t cap = rt->cap_acks ? rt->cap_acks * 2 : 64;
		void *p = realloc(rt->acks, cap * sizeof(*rt->acks));

		if (p == NULL)
			return -1;
		rt->acks = p;
		rt->cap_acks = cap;
	}
	snprintf(rt->acks[rt->nacks].id, ENTRY_ID_MAX, "%s", id);
	rt->acks[rt->nacks].body_key = body_key;
	rt->acks[rt->nacks++].body_len = body_len;
	event_active(rt->f->flush_ev, EV_WRITE, 0);
	return 0;
}

/* One ack in flight per route; what is delivered meanwhile waits in rt->acks for the next. */
struct ack_batch {
	struct fwd_route *rt;
	struct queue_ack_item *items;
	size_t n;
};

static void ack_done(void *arg, enum queue_done r)
{
	struct ack_batch *b = arg;
	struct fwd_route *rt = b->rt;

	rt->acking = NULL;
	if (r != QUEUE_DONE_OK) {
		/* Keep the ids: they are written after the reconnect, before any rescan resends them. */
		log_warn("forward: ack of %zu entries on %s failed; will retry", b->n, rt->label);
		rt->ack_retry_at = clock_mono() + 0.1;  /* the tick retries: no tight loop on a Redis error */
		for (size_t i = 0; i < b->n; i++)
			push_ack(rt, b->items[i].id, b->items[i].body_len, b->items[i].body_key);
	}
	free(b->items);
	free(b);
	if (rt->nacks > 0)
		event_active(rt->f->flush_ev, EV_WRITE, 0);
	check_drained(rt->f);
}

static void flush_route(struct fwd_route *rt)
{
	struct ack_batch *b;
	size_t n = rt->nacks < QUEUE_ACK_MAX ? rt->nacks : QUEUE_ACK_MAX;

	if (rt->acking != NULL || n == 0 || !queue_ready(rt->f->r->queue) || clock_mono() < rt->ack_retry_at)
		return;
	b = malloc(sizeof(*b));
	if (b == NULL || (b->items = malloc(n * sizeof(*b->items))) == NULL) {
		free(b);
		return;
	}
	b->rt = rt;
	b->n = n;
	memcpy(b->items, rt->acks, n * sizeof(*b->items));
	memmove(rt->acks, rt->acks + n, (rt->nacks - n) * sizeof(*rt->acks));
	rt->nacks -= n;
	rt->acking = b;
	if (queue_ack(rt->f->r->queue, rt->stream, b->items, b->n, ack_done, b) != QUEUE_SENT)
		ack_done(b, QUEUE_DONE_LOST);
}

/* Delivered but not yet acked (queued or being written): a pending-list read still lists it. */
static bool is_acking(const struct fwd_route *rt, const char *id)
{
	for (size_t i = 0; i < rt->nacks; i++)
		if (strcmp(rt->acks[i].id, id) == 0)
			return true;
	for (size_t i = 0; rt->acking != NULL && i < rt->acking->n; i++)
		if (strcmp(rt->acking->items[i].id, id) == 0)
			return true;
	return false;
}

static bool is_in_flight(const struct fwd_route *rt, const char *id)
{
	for (const struct fwd_call *c = rt->calls; c != NULL; c = c->next)
		if (strcmp(c->id, id) == 0)
			return true;
	return false;
}

/* ---- sending ---- */

static void call_done(void *arg, int status, struct evhttp_request *resp);

/* Build and send the entry of a linked call; `hand`: its body is handed over, not copied.
 * -1 leaves the slot reserved for the caller to release (the call is dead-lettered or gone). */
static int send_entry(struct fwd_call *c, const struct entry *it, bool retry, const struct upstream_body *hand,
		      bool *handed)
{
	struct fwd_route *rt = c->rt;
	struct request rq;
	int rc = -1;

	if (handed != NULL)
		*handed = false;
	switch (request_build(&rq, upstream_config(c->up), rt->pr, it)) {
	case REQUEST_OK:
		break;
	case REQUEST_DAMAGED:
		/* A damaged entry never becomes a request: dead-letter it rather than loop on it. */
		log_error("forward: %s %s cannot be rebuilt as a request", rt->label, c->id);
		bury(c, "permanent", 0);
		goto out;
	case REQUEST_NOMEM:
		unlink_call(c);  /* left pending for the next scan */
		free_call(c);
		rt->rescan = true;
		goto out;
	}
	if (retry)
		stats_add(rt->f->r->stats, STATS_RETRIED, 1);
	/* The stored endpoint: the rebuilt path and query can carry the real key. */
	log_debug("forward: %s %s -> %s", rt->label, c->id, it->endpoint);
	if (handed != NULL)
		*handed = hand != NULL && rq.body_in_entry;
	upstream_send(c->up, &rq, rq.body_in_entry ? hand : NULL, call_done, c);  /* c may be gone after */
	rc = 0;
out:
	request_release(&rq);
	return rc;
}

/* Send one entry on a reserved slot. -1 leaves the slot reserved for the caller to release. */
static int dispatch(struct fwd_route *rt, const struct queue_entry *e, bool retry)
{
	struct fwd_call *c;

	if (e->item.body_key != NULL)
		return fetch_body(rt, e, retry);
	if ((c = link_call(rt, e)) == NULL) {
		rt->rescan = true;  /* out of memory: left pending for the next scan */
		return -1;
	}
	return send_entry(c, &e->item, retry, NULL, NULL);
}

/* ---- large bodies: read from Redis within the body budget, then sent in place ---- */

struct held_body {
	struct budget *budget;
	char *data;
	size_t len;
};

static void release_body(const void *data, size_t len, void *arg)
{
	struct held_body *h = arg;

	(void)data;
	(void)len;
	budget_give(h->budget, h->len);
	free(h->data);
	free(h);
}

static void body_fetched(void *arg, enum queue_done r, char *body, size_t len)
{
	struct fwd_call *c = arg;
	struct fwd_route *rt = c->rt;
	struct held_body *h = malloc(sizeof(*h));
	struct upstream_body hand = { release_body, h };
	bool handed;

	c->fetch = NULL;
	if (h == NULL) {
		free(body);
		budget_give(rt->f->r->budget, c->body_len);
		r = QUEUE_DONE_LOST;  /* out of memory: tried again by the next scan */
	} else {
		h->budget = rt->f->r->budget, h->data = body, h->len = c->body_len;
	}
	if (r == QUEUE_DONE_ERROR) {
		/* Its body is gone from Redis: the entry can never be sent. A dead letter says so. */
		log_error("forward: %s %s: its %zu-byte body is missing from Redis", rt->label, c->id, c->body_len);
		release_body(NULL, 0, h);
		upstream_release(c->up, 1);
		bury(c, "body_missing", 0);
		return;
	}
	if (r != QUEUE_DONE_OK) {
		if (h != NULL)
			release_body(NULL, 0, h);
		upstream_release(c->up, 1);
		rt->rescan = true;
		unlink_call(c);
		free_call(c);
		want_kick(rt->f);
		check_drained(rt->f);
		return;
	}
	c->copy->body = body;
	c->copy->body_len = len;
	if (send_entry(c, c->copy, c->retry, &hand, &handed) != 0)
		upstream_release(c->up, 1);
	/* Not handed over (the request was rewritten into a copy, or never made): release it now. */
	if (!handed)
		release_body(NULL, 0, h);
}

/* Milliseconds a failed entry waits before it is sent again: forward.retry_initial. */
static long long retry_ms(const struct fwd_route *rt)
{
	return (long long)(rt->f->r->cfg->forward_retry_initial * 1000);
}

/* A large body's entry: take its size from the body budget, then read the body. While the
 * budget is full (large uploads, other large forwards) it stays pending, unsent, its delivery
 * count put back, and the next scan tries again. -1 leaves the slot to the caller. */
static int fetch_body(struct fwd_route *rt, const struct queue_entry *e, bool retry)
{
	struct forward *f = rt->f;
	struct fwd_call *c;

	if (budget_take(f->r->budget, e->item.body_len) != BUDGET_OK) {
		queue_set_deliveries(f->r->queue, rt->stream, e->id, e->deliveries, retry_ms(rt));
		rt->rescan = true;
		rt->memory_retry_at = clock_mono() + MEMORY_RETRY;  /* no tight loop of reads meanwhile */
		return -1;
	}
	if ((c = link_call(rt, e)) == NULL || (c->copy = entry_dup(&e->item)) == NULL) {
		budget_give(f->r->budget, e->item.body_len);
		if (c != NULL) {
			unlink_call(c);
			free_call(c);
		}
		rt->rescan = true;
		return -1;
	}
	c->retry = retry;
	c->fetch = queue_fetch_body(f->r->queue, e->item.body_key, e->item.body_len, body_fetched, c);
	if (c->fetch == NULL) {
		budget_give(f->r->budget, e->item.body_len);
		unlink_call(c);
		free_call(c);
		rt->rescan = true;
		return -1;
	}
	return 0;  /* the slot stays reserved until the body is read */
}

static void unlink_call(struct fwd_call *c)
{
	struct fwd_route *rt = c->rt;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rt->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

static void free_call(struct fwd_call *c)
{
	queue_fetch_cancel(c->fetch);
	if (c->fetch != NULL)
		budget_give(c->rt->f->r->budget, c->body_len);
	free(c->copy);
	free(c);
}

static struct fwd_call *link_call(struct fwd_route *rt, const struct queue_entry *e)
{
	struct fwd_call *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->rt = rt;
	c->up = rt->read_up != NULL ? rt->read_up : rt->up;
	snprintf(c->id, sizeof(c->id), "%s", e->id);
	c->body_len = e->item.body_len;
	c->body_key = e->item.body_key != NULL;
	c->attempts = e->deliveries + 1;
	c->next = rt->calls;
	if (rt->calls != NULL)
		rt->calls->prev = c;
	rt->calls = c;
	return c;
}

/* Every route sharing the upstream re-reads its pending entries once the wait is over. */
static void rescan_upstream(struct forward *f, const struct upstream *up)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->up == up)
			f->routes[i]->rescan = true;
}

/* Every X-Sentry-Rate-Limits value of the answer, joined with ", " (Relay does the same). */
static const char *joined_limits(struct evkeyvalq *h, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (struct evkeyval *kv = h != NULL ? h->tqh_first : NULL; kv != NULL; kv = kv->next.tqe_next) {
		if (strcasecmp(kv->key, "X-Sentry-Rate-Limits") != 0)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", kv->value);
		if (n >= len)
			break;
	}
	return buf[0] != '\0' ? buf : NULL;
}

/* The fleet's indexes of a route: its upstream and project in the configuration the fleet was
 * made with (a route a reload retired is in none: the fleet does not hear of it). */
static void note_fleet_limits(const struct fwd_route *rt, const struct ratelimit_set *set)
{
	const struct config *cfg = generation_config(rt->f->gen);
	const struct config_upstream *uc = config_upstream_by_name(cfg, rt->uc->name);
	const struct config_project *pr = uc != NULL ? config_project_by_name(uc, rt->pr->name) : NULL;

	if (pr != NULL)
		fleetsync_note_limits(rt->f->fleet, (size_t)(uc - cfg->upstreams), (size_t)(pr - uc->projects), set);
}

/* 429: record the limits; what they name is held back until they end, the rest flows on. */
static void limited(struct fwd_route *rt, struct evhttp_request *resp)
{
	struct evkeyvalq *h = resp != NULL ? evhttp_request_get_input_headers(resp) : NULL;
	char joined[LIMITS_HEADER_JOIN];
	struct ratelimit_set set;
	double longest = 0;

	ratelimit_parse(joined_limits(h, joined, sizeof(joined)), h != NULL ? evhttp_find_header(h, "Retry-After") : NULL,
			&set);
	if (throttle_apply(rt->f->r->throttle, rt->uc->name, rt->pr->name, &set, clock_mono()) != 0)
		log_error("forward: out of memory recording a rate limit for %s", rt->label);
	/* The other processes sharing the Redis honour it too (fleetsync.h). */
	note_fleet_limits(rt, &set);
	for (size_t i = 0; i < set.n; i++)
		if (set.l[i].seconds > longest)
			longest = set.l[i].seconds;
	log_kv_warn(LOG_FIELDS(LOG_STR("route", rt->label), LOG_INT("limits", set.n), LOG_REAL("longest_s", longest)),
		    "forward: %s rate limited: %zu limit(s), the longest %.0fs", rt->label, set.n, longest);
	stats_add(rt->f->r->stats, STATS_RATE_LIMITED, 1);
}

static void dead_done(void *arg, enum queue_done r)
{
	struct fwd_call *c = arg;
	struct forward *f = c->rt->f;

	if (r == QUEUE_DONE_OK)
		stats_add(f->r->stats, STATS_DEAD, 1);
	else
		c->rt->rescan = true;  /* still pending: decided again on the next scan */
	unlink_call(c);
	free_call(c);
	check_drained(f);
}

static enum stats_counter dead_counter(const char *reason)
{
	if (strcmp(reason, "permanent") == 0 || strcmp(reason, "body_missing") == 0)
		return STATS_DEAD_PERMANENT;
	return strcmp(reason, "max_age") == 0 ? STATS_DEAD_MAX_AGE : STATS_DEAD_MAX_ATTEMPTS;
}

/* Give an entry up: it moves to the dead-letter stream with the reason, never silently. */
static void bury(struct fwd_call *c, const char *reason, int status)
{
	struct fwd_route *rt = c->rt;
	struct entry_dead info = {
		.upstream = rt->uc->name, .project = rt->pr->name, .stream = rt->stream, .id = c->id,
		.reason = reason, .status = status, .attempts = c->attempts, .last_attempt_ms = clock_epoch_ms(),
		.dead_at_ms = clock_epoch_ms(),
	};

	log_kv_warn(LOG_FIELDS(LOG_STR("route", rt->label), LOG_STR("id", c->id), LOG_STR("reason", reason),
			       LOG_INT("status", status), LOG_INT("attempts", c->attempts)),
		    "forward: %s %s dead-lettered: %s (status %d, %lld attempts)", rt->label, c->id, reason, status,
		    c->attempts);
	stats_add(rt->f->r->stats, dead_counter(reason), 1);
	if (queue_dead(rt->f->r->queue, &info, dead_done, c) != QUEUE_SENT)
		dead_done(c, QUEUE_DONE_LOST);
}

static void note_failure(struct fwd_route *rt, const struct fwd_call *c, int status)
{
	stats_add(rt->f->r->stats, STATS_UPSTREAM_FAILED, 1);
	rt->last_status = status;
	if (status == 0)
		log_debug("forward: %s %s: upstream %s gave no answer (refused, reset, timed out or TLS failure)",
			  rt->label, c->id, rt->uc->name);
	else
		log_debug("forward: %s %s: upstream %s answered %d", rt->label, c->id, rt->uc->name, status);
}

static void call_done(void *arg, int status, struct evhttp_request *resp)
{
	struct fwd_call *c = arg;
	struct fwd_route *rt = c->rt;
	struct forward *f = rt->f;
	enum outcome oc = outcome_of(status);

	if (f->closing)
		return;  /* forward_free frees the call with the route's list */
	if (oc != OUTCOME_DELIVERED)
		note_failure(rt, c, status);
	switch (oc) {
	case OUTCOME_DELIVERED:
		stats_add(f->r->stats, STATS_FORWARDED, 1);
		push_ack(rt, c->id, c->body_len, c->body_key);
		break;
	case OUTCOME_PERMANENT:
		log_warn("forward: %s %s: upstream %s answered %d", rt->label, c->id, rt->uc->name, status);
		bury(c, "permanent", status);
		goto kick;  /* c lives on until the dead letter is written */
	case OUTCOME_LIMITED:
		limited(rt, resp);
		rt->rescan = true;
		break;
	case OUTCOME_RETRY:
		/* The entry stays pending; the rescan after the upstream's wait resends it. */
		rescan_upstream(f, c->up);
		rescan_upstream(f, rt->up);
		break;
	}
	unlink_call(c);
	free_call(c);
kick:
	/* Coalesce: every completion of this loop iteration leads to one read, in flush_cb. */
	want_kick(f);
	check_drained(f);
}

/* ---- reading ---- */

/* Too old or tried too often: dead-letter it instead of sending. */
static bool expired(struct fwd_route *rt, const struct queue_entry *e)
{
	const struct config *cfg = rt->f->r->cfg;
	const char *reason = NULL;
	struct fwd_call *c;
	long long now_ms = clock_epoch_ms();

	if (e->item.received_ms > 0 && (double)(now_ms - e->item.received_ms) > cfg->forward_max_age * 1000)
		reason = "max_age";
	else if (cfg->forward_max_attempts > 0 && e->deliveries >= cfg->forward_max_attempts)
		reason = "max_attempts";
	if (reason == NULL || (c = link_call(rt, e)) == NULL)
		return false;
	c->attempts = e->deliveries;
	bury(c, reason, rt->last_status);
	return true;
}

/*
 * Not claimed again: in flight, delivered and being acked, nothing is sent while draining, or
 * sent less than retry_initial ago (idle_ms; -1: not known, a new entry). The last is per entry,
 * whatever the upstream's state: an entry its project's answers keep failing is retried about
 * once a second, and the other projects' answers, which may end the upstream's interruption at
 * once, never make it spin. The route rescans when the soonest such entry is due.
 */
static bool skip_id(void *arg, const char *id, long long idle_ms)
{
	struct fwd_route *rt = arg;
	double due;

	if (rt->f->draining || is_in_flight(rt, id) || is_acking(rt, id))
		return true;
	if (idle_ms < 0 || idle_ms >= retry_ms(rt))
		return false;
	due = clock_mono() + (double)(retry_ms(rt) - idle_ms) / 1000;
	if (rt->retry_due == 0 || due < rt->retry_due)
		rt->retry_due = due;
	return true;
}

/*
 * A limit names one of the entry's categories: it stays pending, unsent. Its delivery count goes
 * back to the real sends (this read counted one), so max_attempts and the dead letters stay
 * true. The pending scan after the limit ends picks it up again.
 */
static void hold(struct fwd_route *rt, const struct queue_entry *e, double wait)
{
	double at = clock_mono() + wait;

	if (rt->release_at == 0 || at < rt->release_at)
		rt->release_at = at;
	rt->held++;
	queue_set_deliveries(rt->f->r->queue, rt->stream, e->id, e->deliveries, retry_ms(rt));
}

/* One entry of a read: ack, bury, hold, skip or send. True when it used a reserved slot. */
static bool consider(struct fwd_route *rt, const struct queue_entry *e, bool can_send)
{
	struct fwd_call *c;
	double wait;

	if (e->deleted) {
		if (e->id[0] != '\0')  /* a pending id whose entry is gone: just ack it */
			push_ack(rt, e->id, 0, false);
		return false;
	}
	if (skip_id(rt, e->id, -1) || expired(rt, e))
		return false;
	if (e->damaged) {
		if ((c = link_call(rt, e)) != NULL)
			bury(c, "permanent", 0);
		return false;
	}
	wait = throttle_held(rt->f->r->throttle, rt->uc->name, rt->pr->name, e->item.categories, clock_mono());
	if (wait > 0) {
		hold(rt, e, wait);
		return false;
	}
	return can_send && dispatch(rt, e, rt->pel) == 0;
}

static void read_done(void *arg, enum queue_done r, const struct queue_entry *e, size_t n, size_t scanned,
		      const char *last)
{
	struct fwd_route *rt = arg;
	int asked = rt->asked, used = 0;

	rt->reading = false;
	rt->asked = 0;
	if (rt->pel && scanned > 0)
		snprintf(rt->cursor, sizeof(rt->cursor), "%s", last);
	for (size_t i = 0; i < n; i++)
		if (consider(rt, &e[i], used < asked))
			used++;
	upstream_release(rt->read_up, asked - used);
	rt->read_up = NULL;
	if (r != QUEUE_DONE_OK)
		return;  /* the tick tries again; no tight loop against a failing Redis */
	if (rt->pel && (int)scanned < asked) {
		rt->pel = false;  /* pending list done: new entries next */
		snprintf(rt->cursor, sizeof(rt->cursor), "0");
	} else if (!rt->pel) {
		rt->idle = (int)scanned < asked;
	}
	/* Slots this read did not use go to the other routes of the upstream at once (idle ones
	 * excepted, so empty reads cannot chase each other). */
	if (asked > used)
		want_kick(rt->f);
	if (!rt->idle)
		route_kick(rt);
}

/*
 * Ingest first: while forward.ingest_first or more SDK requests wait for Redis (the loop is
 * saturated), new reads wait for the 100 ms tick, so answering SDKs is never slowed by
 * forwarding; the queue absorbs the difference and drains at full speed once ingest eases.
 */
static bool ingest_busy(const struct forward *f)
{
	int limit = f->r->cfg->forward_ingest_first;

	return limit > 0 && !f->in_tick && queue_writes_in_flight(f->r->queue) >= limit;
}

/* Every category of the route is limited: nothing to read until the limit ends. */
static bool blocked(struct fwd_route *rt)
{
	double secs;

	if (!throttle_blocked(rt->f->r->throttle, rt->uc->name, rt->pr->name, clock_mono(), &secs))
		return false;
	if (rt->release_at == 0 || clock_mono() + secs < rt->release_at)
		rt->release_at = clock_mono() + secs;
	return true;
}

static void route_kick(struct fwd_route *rt)
{
	struct forward *f = rt->f;
	int n;

	if (ingest_busy(f) || rt->reading || f->draining || !queue_ready(f->r->queue) || !upstream_ready(rt->up) ||
	    blocked(rt) || clock_mono() < rt->memory_retry_at)
		return;
	if (rt->rescan && !rt->pel) {
		rt->rescan = false;
		rt->pel = true;
		rt->held = 0;  /* the scan from the start holds again whatever is still limited */
		snprintf(rt->cursor, sizeof(rt->cursor), "0");
	}
	n = upstream_available(rt->up);
	if (n > f->r->cfg->forward_batch)
		n = f->r->cfg->forward_batch;
	if (n <= 0)
		return;
	upstream_reserve(rt->up, n);
	rt->read_up = rt->up;
	rt->asked = n;
	rt->reading = true;
	rt->last_read = clock_mono();
	if (queue_read(f->r->queue, rt->stream, rt->pel ? rt->cursor : ">", n, skip_id, read_done, rt) != QUEUE_SENT) {
		upstream_release(rt->up, n);
		rt->read_up = NULL;
		rt->asked = 0;
		rt->reading = false;
	}
}

static void claim_done(void *arg, enum queue_done r, size_t claimed)
{
	struct fwd_route *rt = arg;

	(void)r;
	rt->claiming = false;
	if (claimed > 0)
		rt->rescan = true;
}

/* Idle routes are only read when told of new entries (local puts) or by the poll below. */
static bool wants_read(const struct fwd_route *rt)
{
	return !rt->idle || rt->pel || rt->rescan;
}

/* The soonest limit holding entries of this route has ended: scan its pending entries again. */
static void release_held(struct fwd_route *rt, double now)
{
	if (rt->release_at == 0 || now < rt->release_at)
		return;
	rt->release_at = 0;
	rt->held = 0;  /* counted again as the scan holds what is still limited */
	rt->rescan = true;
	rt->idle = false;
}

static void tick_route(struct forward *f, struct fwd_route *rt, bool claim, double now)
{
	if (claim && !rt->claiming && queue_ready(f->r->queue) && !f->draining &&
	    queue_claim_orphans(f->r->queue, rt->stream, claim_done, rt) == QUEUE_SENT)
		rt->claiming = true;
	flush_route(rt);  /* acks that failed earlier */
	release_held(rt, now);
	if (rt->retry_due > 0 && now >= rt->retry_due) {
		rt->retry_due = 0;
		rt->rescan = true;
	}
	/* Entries written by other sentryq processes sharing the Redis are found by polling. */
	if (now - rt->last_read >= POLL_INTERVAL)
		rt->idle = false;
	if (wants_read(rt))
		route_kick(rt);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct forward *f = arg;
	double now = clock_mono();
	bool claim = now - f->last_claim >= f->r->cfg->forward_claim_idle / 2;

	(void)fd;
	(void)what;
	if (claim && queue_ready(f->r->queue))
		f->last_claim = now;
	f->in_tick = true;
	for (size_t i = 0; i < f->nroutes; i++)
		tick_route(f, f->routes[i], claim, now);
	f->in_tick = false;
	reap(f, now);
	throttle_prune(f->r->throttle, now);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct forward *f = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < f->nroutes; i++)
		flush_route(f->routes[i]);
	if (f->kick_pending && f->nroutes > 0) {
		/* Start at a different route each time: routes sharing an upstream share its slots. */
		size_t start = f->rr++ % f->nroutes;

		f->kick_pending = false;
		for (size_t i = 0; i < f->nroutes; i++) {
			struct fwd_route *rt = f->routes[(start + i) % f->nroutes];

			if (wants_read(rt))
				route_kick(rt);
		}
	}
}

void forward_arrived(struct forward *f, const char *stream)
{
	struct fwd_route *rt = strmap_get(f->by_stream, stream);

	if (rt == NULL)
		return;  /* a stream of a route no longer configured (a spool from an older config) */
	rt->idle = false;
	/* Coalesced like completions: a burst of puts in one loop iteration leads to one read. */
	want_kick(f);
}

void forward_resume(struct forward *f)
{
	for (size_t i = 0; i < f->nroutes; i++) {
		f->routes[i]->pel = true;
		snprintf(f->routes[i]->cursor, sizeof(f->routes[i]->cursor), "0");
		route_kick(f->routes[i]);
	}
}

const struct upstream *forward_upstream(const struct forward *f, size_t i)
{
	return f != NULL && i < f->nups ? f->ups[i] : NULL;
}

bool forward_probing_here(const struct forward *f, size_t i)
{
	return f != NULL && fleetsync_probing_here(f->fleet, i);  /* NULL: role ingest */
}

unsigned long forward_fleet_errors(const struct forward *f)
{
	return f != NULL ? fleetsync_errors(f->fleet) : 0;
}

int forward_in_flight(const struct forward *f)
{
	int n = 0;

	if (f == NULL)  /* role ingest */
		return 0;
	for (size_t i = 0; i < f->nups; i++)
		n += upstream_in_flight(f->ups[i]);
	for (size_t i = 0; i < f->nold_ups; i++)
		n += upstream_in_flight(f->old_ups[i].up);
	return n;
}

static void check_drained(struct forward *f)
{
	void (*cb)(void *);

	if (!f->draining || f->drain_cb == NULL)
		return;
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->calls != NULL || f->routes[i]->nacks > 0 || f->routes[i]->acking != NULL)
			return;
	cb = f->drain_cb;
	f->drain_cb = NULL;
	cb(f->drain_arg);
}

void forward_drain(struct forward *f, void (*done_cb)(void *arg), void *arg)
{
	f->draining = true;
	f->drain_cb = done_cb;
	f->drain_arg = arg;
	check_drained(f);
}

json_t *forward_status_json(const struct forward *f)
{
	json_t *ups = json_object(), *held = json_object();

	if (f == NULL)  /* role ingest */
		return json_pack("{s:i, s:o, s:o}", "in_flight", 0, "upstreams", ups, "held", held);
	for (size_t i = 0; i < f->nups; i++) {
		json_t *u = upstream_status_json(f->ups[i]);

		/* What the fleet's record says ("unknown": none read lately, or fleet.sync off), and
		 * whether this process holds the probe lease. */
		json_object_set_new(u, "fleet", json_string(fleetsync_state_name(fleetsync_state(f->fleet, i))));
		json_object_set_new(u, "probing_here", json_boolean(fleetsync_probing_here(f->fleet, i)));
		json_object_set_new(ups, upstream_config(f->ups[i])->name, u);
	}
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->held > 0)  /* a cluster's mirror streams add to their destination's */
			json_object_set_new(held, f->routes[i]->label, json_integer(f->routes[i]->held +
					    json_integer_value(json_object_get(held, f->routes[i]->label))));
	return json_pack("{s:i, s:o, s:o}", "in_flight", forward_in_flight(f), "upstreams", ups, "held", held);
}

/* ---- life cycle and reloads ---- */

static void free_route(struct fwd_route *rt)
{
	struct fwd_call *c = rt->calls;

	/* Entries of calls cut short stay pending in Redis for the next start. */
	while (c != NULL) {
		struct fwd_call *next = c->next;

		free_call(c);
		c = next;
	}
	free(rt->acks);
	generation_drop(rt->gen);
	free(rt);
}

/* Point a route at a configuration (a new route, or a kept one taking its new settings). */
static void set_route(struct fwd_route *rt, struct generation *g, struct upstream *up, const struct config_upstream *uc,
		      const struct config_project *pr)
{
	generation_hold(g);
	generation_drop(rt->gen);
	rt->gen = g;
	rt->up = up;
	rt->uc = uc;
	rt->pr = pr;
	rt->retired = false;
	rt->quiet_since = 0;
	rt->seen = true;
	snprintf(rt->label, sizeof(rt->label), "%s/%ld", uc->name, pr->id);
}

static int add_route(struct forward *f, struct generation *g, struct upstream *up, const struct config_upstream *uc,
		     const struct config_project *pr, const char *stream)
{
	struct fwd_route *rt = strmap_get(f->by_stream, stream);

	if (rt != NULL) {
		if (rt->retired)
			log_info("forward: %s is configured again: read as before", rt->label);
		set_route(rt, g, up, uc, pr);
		return 0;
	}
	if (f->nroutes == f->cap_routes) {
		size_t cap = f->cap_routes ? f->cap_routes * 2 : 16;
		void *p = realloc(f->routes, cap * sizeof(*f->routes));

		if (p == NULL)
			return -1;
		f->routes = p;
		f->cap_routes = cap;
	}
	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		return -1;
	rt->f = f;
	rt->pel = true;
	snprintf(rt->cursor, sizeof(rt->cursor), "0");
	snprintf(rt->stream, sizeof(rt->stream), "%s", stream);
	if (strmap_put(f->by_stream, rt->stream, rt) == STRMAP_NOMEM) {
		free(rt);
		return -1;
	}
	set_route(rt, g, up, uc, pr);
	f->routes[f->nroutes++] = rt;
	return 0;
}

/* Redis Cluster: a mirror copy is queued in its source route's slot (queue_mirror_stream); each
 * such stream is read as one more route of the destination. Without a cluster there is none. */
static int add_mirror_routes(struct forward *f, struct generation *g, struct upstream **ups)
{
	const struct config *cfg = generation_config(g);
	char stream[ENTRY_KEY_MAX];

	for (size_t i = 0; queue_cluster(f->r->queue) && i < cfg->nupstreams; i++) {
		const struct config_upstream *uc = &cfg->upstreams[i];

		for (size_t j = 0; j < uc->nprojects; j++) {
			for (size_t m = 0; m < uc->projects[j].nmirrors; m++) {
				const struct config_mirror *mi = &uc->projects[j].mirrors[m];

				if (queue_mirror_stream(f->r->queue, uc->name, uc->projects[j].name, mi->up->name,
							mi->pr->name, stream, sizeof(stream)) != 0 ||
				    add_route(f, g, ups[mi->up - cfg->upstreams], mi->up, mi->pr, stream) != 0)
					return -1;
			}
		}
	}
	return 0;
}

static int add_routes(struct forward *f, struct generation *g, struct upstream **ups)
{
	const struct config *cfg = generation_config(g);
	char stream[ENTRY_KEY_MAX];

	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct config_upstream *uc = &cfg->upstreams[i];

		for (size_t j = 0; j < uc->nprojects; j++)
			if (queue_stream(f->r->queue, uc->name, uc->projects[j].name, stream, sizeof(stream)) != 0 ||
			    add_route(f, g, ups[i], uc, &uc->projects[j], stream) != 0)
				return -1;
	}
	return add_mirror_routes(f, g, ups);
}

static struct upstream *current_up(const struct forward *f, const char *name)
{
	for (size_t i = 0; i < f->nups; i++)
		if (strcmp(upstream_config(f->ups[i])->name, name) == 0)
			return f->ups[i];
	return NULL;
}

/* The upstreams of g: a kept server is the same object (its connections, outage state, counts
 * carry over); a new url or pool size is a new object taking over the counts (and, for the same
 * url, the outage state). NULL on allocation failure (nothing changed). */
static struct upstream **build_ups(struct forward *f, struct generation *g)
{
	const struct config *cfg = generation_config(g);
	struct upstream **ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*ups));

	for (size_t i = 0; ups != NULL && i < cfg->nupstreams; i++) {
		const struct config_upstream *uc = &cfg->upstreams[i];
		struct upstream *old = current_up(f, uc->name);

		if (old != NULL && generation_same_server(upstream_config(old), uc))
			continue;  /* reconfigured once everything else is built */
		if ((ups[i] = upstream_new(f->r, uc)) == NULL) {
			while (i-- > 0)
				if (ups[i] != current_up(f, cfg->upstreams[i].name))
					upstream_free(ups[i]);
			free(ups);
			return NULL;
		}
		if (old != NULL)
			upstream_adopt(ups[i], old, strcmp(upstream_config(old)->url, uc->url) == 0);
	}
	for (size_t i = 0; ups != NULL && i < cfg->nupstreams; i++)
		if (ups[i] == NULL)
			ups[i] = current_up(f, cfg->upstreams[i].name);
	return ups;
}

/* The upstreams the last configuration had and g has not (or replaced): kept while used. */
static int retire_ups(struct forward *f, struct upstream **ups, size_t n)
{
	for (size_t i = 0; i < f->nups; i++) {
		bool kept = false;
		void *p;

		for (size_t j = 0; j < n && !kept; j++)
			kept = ups[j] == f->ups[i];
		if (kept)
			continue;
		if ((p = realloc(f->old_ups, (f->nold_ups + 1) * sizeof(*f->old_ups))) == NULL)
			return -1;
		f->old_ups = p;
		f->old_ups[f->nold_ups].up = f->ups[i];
		f->old_ups[f->nold_ups++].gen = generation_hold(f->gen);
	}
	return 0;
}

static int init_fleet(struct forward *f);

int forward_reload(struct forward *f, struct generation *g)
{
	const struct config *cfg = generation_config(g);
	struct upstream **ups = build_ups(f, g);

	if (ups == NULL)
		return -1;
	for (size_t i = 0; i < f->nroutes; i++)
		f->routes[i]->seen = false;
	/* From here on nothing is undone: an allocation failure leaves a route unread until the next
	 * reload (its entries stay in Redis), never a dangling pointer. */
	if (retire_ups(f, ups, cfg->nupstreams) != 0 || add_routes(f, g, ups) != 0)
		log_error("forward: out of memory applying the reload; some routes wait for the next one");
	for (size_t i = 0; i < cfg->nupstreams; i++)
		upstream_reconfigure(ups[i], &cfg->upstreams[i]);
	for (size_t i = 0; i < f->nroutes; i++) {
		struct fwd_route *rt = f->routes[i];

		if (!rt->seen && !rt->retired) {
			/* Its uc, pr and gen stay: the entries go out with the credentials they were queued
			 * under, through its upstream (kept in old_ups when the reload removed it). */
			rt->retired = true;
			rt->quiet_since = 0;
			log_info("forward: %s removed by the reload: its queued entries are still delivered", rt->label);
		}
		rt->idle = false;
		rt->rescan = true;
	}
	free(f->ups);
	f->ups = ups;
	f->nups = cfg->nupstreams;
	generation_drop(f->gen);
	f->gen = generation_hold(g);
	/* The fleet's keys and indexes are a configuration's: made again for this one (a probe lease
	 * this process held is taken again by its next read, under the same id). */
	fleetsync_free(f->fleet);
	f->fleet = NULL;
	if (init_fleet(f) != 0)
		log_error("forward: out of memory applying the reload: no shared upstream knowledge until the next one");
	want_kick(f);
	return 0;
}

size_t forward_retired(const struct forward *f)
{
	size_t n = 0;

	for (size_t i = 0; i < f->nroutes; i++)
		n += f->routes[i]->retired;
	return n;
}

/*
 * A retired route goes once its stream is empty for good: no ingest request of an older
 * configuration is in flight (none can still put into it), the memory buffer is empty, nothing
 * of it is in flight, and an XLEN sent after all that found no entry.
 */
static bool retired_done(struct forward *f, struct fwd_route *rt, double now)
{
	long long entries;
	double counted_at;
	bool quiet = generation_settled(f->gen) && queue_buffered(f->r->queue, NULL) == 0 && rt->calls == NULL &&
		     rt->nacks == 0 && rt->acking == NULL && rt->held == 0;

	if (!quiet) {
		rt->quiet_since = 0;
		return false;
	}
	if (rt->quiet_since == 0)
		rt->quiet_since = now;
	if (!queue_stream_len(f->r->queue, rt->stream, &entries, &counted_at))
		return true;
	return entries == 0 && counted_at > rt->quiet_since && !rt->reading && !rt->claiming;
}

static bool up_in_use(const struct forward *f, const struct upstream *up)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i]->up == up || f->routes[i]->read_up == up)
			return true;
	return upstream_in_flight(up) > 0;
}

/* Retired routes whose streams are empty, and upstreams nothing uses any more. */
static void reap(struct forward *f, double now)
{
	generation_settled(f->gen);  /* older configurations no request uses any more are let go */
	for (size_t i = 0; i < f->nroutes; i++) {
		struct fwd_route *rt = f->routes[i];

		if (!rt->retired || !retired_done(f, rt, now))
			continue;
		log_info("forward: %s (removed by a reload) is empty: no longer read", rt->label);
		strmap_del(f->by_stream, rt->stream);
		queue_forget_stream(f->r->queue, rt->stream);
		f->routes[i--] = f->routes[--f->nroutes];
		free_route(rt);
	}
	for (size_t i = 0; i < f->nold_ups; i++) {
		if (up_in_use(f, f->old_ups[i].up))
			continue;
		upstream_free(f->old_ups[i].up);
		generation_drop(f->old_ups[i].gen);
		f->old_ups[i--] = f->old_ups[--f->nold_ups];
	}
}

/* ---- the fleet: what the other processes sharing the Redis learned (fleetsync.h) ---- */

/* The fleet knows the upstreams of the configuration it was made with (f->gen's, parallel to
 * f->ups); an upstream a reload replaced or removed is not one of them (SIZE_MAX: ignored). */
static size_t up_index(const struct forward *f, const struct upstream *u)
{
	for (size_t i = 0; i < f->nups; i++)
		if (f->ups[i] == u)
			return i;
	return SIZE_MAX;
}

/* This process's answers moved an upstream: the fleet learns that it is down, or back up. */
static void on_upstream_change(void *arg, struct upstream *u, enum outage_change ch, enum outage_state was)
{
	struct forward *f = arg;
	size_t i = up_index(f, u);

	if (ch == OUTAGE_BECAME_DOWN)
		fleetsync_note_down(f->fleet, i);
	else if (ch == OUTAGE_RECOVERED && (was == OUTAGE_DOWN || fleetsync_state(f->fleet, i) == FLEETSYNC_DOWN))
		fleetsync_note_up(f->fleet, i);
}

static bool may_probe(void *arg, const struct upstream *u)
{
	struct forward *f = arg;

	return fleetsync_may_probe(f->fleet, up_index(f, u));
}

static void on_fleet_down(void *arg, size_t i)
{
	struct forward *f = arg;

	upstream_fleet_down(f->ups[i]);
}

/* Another process's probe succeeded: resume at once (a state that began after the read was
 * sent is this process's own news and stays). */
static void on_fleet_up(void *arg, size_t i, double asked_at)
{
	struct forward *f = arg;

	if (!upstream_down(f->ups[i]) || upstream_outage(f->ups[i])->since >= asked_at)
		return;
	if (upstream_fleet_up(f->ups[i]) == OUTAGE_RECOVERED) {
		rescan_upstream(f, f->ups[i]);
		for (size_t k = 0; k < f->nroutes; k++)
			if (f->routes[k]->up == f->ups[i])
				f->routes[k]->idle = false;
		want_kick(f);
	}
}

/* Limits another process (or this one) learned: held here too, each category for its time. */
static void on_fleet_limits(void *arg, size_t i, size_t j, const struct ratelimit_set *set)
{
	struct forward *f = arg;
	const struct config *cfg = generation_config(f->gen);
	const struct config_upstream *uc;

	if (i >= cfg->nupstreams || j >= cfg->upstreams[i].nprojects)
		return;
	uc = &cfg->upstreams[i];

	log_debug("forward: %zu rate limit(s) of the fleet for %s/%ld", set->n, uc->name, uc->projects[j].id);
	if (throttle_apply(f->r->throttle, uc->name, uc->projects[j].name, set, clock_mono()) != 0)
		log_error("forward: out of memory recording a rate limit of the fleet for %s/%ld", uc->name,
			  uc->projects[j].id);
}

static bool local_down(void *arg, size_t i)
{
	struct forward *f = arg;

	return upstream_down(f->ups[i]);
}

static bool fleet_send(void *arg, redisconn_reply_cb cb, void *cbarg, int argc, const char **argv, const size_t *lens)
{
	struct forward *f = arg;

	return queue_command(f->r->queue, cb, cbarg, argc, argv, lens) == QUEUE_SENT;
}

static int init_fleet(struct forward *f)
{
	const struct config *cfg = generation_config(f->gen);
	char id[FLEETSYNC_ID_MAX];

	for (size_t i = 0; i < f->nups; i++)
		upstream_set_hooks(f->ups[i], &(struct upstream_hooks){ on_upstream_change, may_probe, f });
	if (!cfg->fleet_sync)
		return 0;
	/* The consumer name may be shared by mistake (or by default, the host name): the pid makes
	 * the probe lease's holder one process. */
	snprintf(id, sizeof(id), "%s:%ld", queue_consumer(f->r->queue), (long)getpid());
	f->fleet = fleetsync_new(f->r->base, cfg, id, &(struct fleetsync_io){ fleet_send, f },
				 &(struct fleetsync_hooks){ on_fleet_down, on_fleet_up, on_fleet_limits, local_down, f });
	return f->fleet != NULL ? 0 : -1;
}

struct forward *forward_new(struct relay *r)
{
	struct forward *f = calloc(1, sizeof(*f));
	struct timeval tick = clock_timeval(TICK_PERIOD);
	const struct config *cfg = generation_config(r->gen);

	if (f == NULL)
		return NULL;
	f->r = r;
	f->last_claim = clock_mono();
	f->gen = generation_hold(r->gen);
	f->by_stream = strmap_new();
	f->ups = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*f->ups));
	if (f->by_stream == NULL || f->ups == NULL)
		goto fail;
	for (f->nups = 0; f->nups < cfg->nupstreams; f->nups++)
		if ((f->ups[f->nups] = upstream_new(r, &cfg->upstreams[f->nups])) == NULL)
			goto fail;
	if (add_routes(f, r->gen, f->ups) != 0 || init_fleet(f) != 0)
		goto fail;
	f->tick_ev = event_new(r->base, -1, EV_PERSIST, tick_cb, f);
	f->flush_ev = event_new(r->base, -1, 0, flush_cb, f);
	if (f->tick_ev == NULL || f->flush_ev == NULL)
		goto fail;
	event_priority_set(f->flush_ev, RELAY_PRIORITY_FORWARD);
	evtimer_add(f->tick_ev, &tick);
	return f;
fail:
	forward_free(f);
	return NULL;
}

void forward_free(struct forward *f)
{
	if (f == NULL)
		return;
	f->closing = true;
	fleetsync_free(f->fleet);
	if (f->tick_ev != NULL)
		event_free(f->tick_ev);
	if (f->flush_ev != NULL)
		event_free(f->flush_ev);
	/* Connections go first; evhttp drops their requests without callbacks (call_done still
	 * checks `closing`, should a libevent version call them). */
	for (size_t i = 0; i < f->nups; i++)
		upstream_free(f->ups[i]);
	for (size_t i = 0; i < f->nold_ups; i++)
		upstream_free(f->old_ups[i].up);
	for (size_t i = 0; i < f->nroutes; i++)
		free_route(f->routes[i]);
	for (size_t i = 0; i < f->nold_ups; i++)
		generation_drop(f->old_ups[i].gen);
	strmap_free(f->by_stream);
	free(f->old_ups);
	free(f->ups);
	free(f->routes);
	generation_drop(f->gen);
	free(f);
}
