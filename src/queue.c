/* queue.c - Redis streams as the durable queue: put (with the memory buffer and spool behind it),
 * read, pending scans, claims, acks and dead letters, over one supervised connection. */
#include "queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "buffer.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "rcluster.h"
#include "redisconn.h"
#include "slot.h"
#include "spool.h"

#define TICK_PERIOD 0.25
#define REFRESH_PERIOD 1.0
#define DRAIN_IN_FLIGHT 256    /* buffered entries written at a time */
#define CLAIM_ROUNDS 10        /* XAUTOCLAIM pages per orphan claim; the rest waits for the next */
#define QUEUE_CHUNK (1024 * 1024)    /* bytes of a large body per command, written or read */
#define QUEUE_CHUNKS_IN_FLIGHT 2
#define QUEUE_BODY_TTL "86400"       /* a large body whose entry was never written expires */
#define CARRY_MAX 10                 /* cluster: WAITs a drained entry waits for a replica at most */
#define GROUP_PERIOD 2.0             /* seconds between two polls of the consumer groups */
#define GROUP_NAMED_MAX 16           /* consumers of a stream kept by name (/status, /metrics) */
#define REAP_MAX 8                   /* departed consumers removed per poll at most */

/* One consumer of a stream's group at the last poll. */
struct group_member {
	char *name;
	long long pending, idle_ms;
};

/* What Redis said about one stream at the last refresh (for /metrics). */
struct stream_gauge {
	struct queue *q;
	char *name;                     /* the stream */
	long long entries;              /* XLEN */
	long long memory;               /* MEMORY USAGE: bytes Redis holds for the stream */
	double counted_at;              /* when the XLEN behind `entries` was sent (monotonic; 0: never) */
	double sending_at;              /* when the XLEN in flight was sent */
	unsigned replies;               /* replies to come (XLEN, MEMORY, the group poll): freed after them once gone */
	bool gone;                      /* no longer one of the queue's streams (a reload, a retirement) */
	bool fresh;                     /* added by the set being built: its group is to be made */
	long long consumers;            /* XINFO CONSUMERS: every consumer of the group; -1: not polled */
	struct group_member *named;     /* the first GROUP_NAMED_MAX of them */
	size_t nnamed;
	long long oldest_ms;            /* the first (oldest) entry's id time, epoch ms; 0: none */
};

struct queue {
	const struct config *cfg;
	struct redisconn *rc;           /* standalone or Sentinel: the one connection */
	struct rcluster *cl;            /* redis.cluster: instead of rc */
	bool groups_ok;                 /* cluster: every stream's consumer group exists */
	bool groups_failed;
	bool regroup;                   /* one connection: a reload added streams while it was not ready */
	size_t groups_left;             /* cluster: XGROUP CREATE answers still to come */
	char **tags;                    /* cluster: every route's byte counter (summed for queue_bytes) */
	unsigned *slot_buffered;        /* cluster: buffered copies per slot (SLOT_COUNT) */
	size_t ntags, bytes_left;
	long long bytes_acc;
	struct queue_hooks hooks;
	struct event *tick_ev;          /* pending refresh and buffer retries */

	struct stream_gauge **gauges;   /* every configured route's stream, then (cluster) mirror streams,
					 * then those of routes a reload removed, until forgotten */
	size_t nstreams;
	unsigned long connects;         /* times Redis became ready */
	long long pending;              /* cached sum of XLEN, plus local puts since */
	long long pending_acc;
	long long pending_delta, bytes_delta;  /* local moves since the refresh in progress was sent */
	long long bytes;                /* cached bytes counter: body bytes queued (approximate) */
	size_t xlen_left;
	double last_refresh;
	double last_group;              /* when the consumer groups were last polled */
	size_t group_left;              /* XINFO CONSUMERS answers of that poll still to come */
	int reaps;                      /* departed consumers' removals sent in that poll */
	unsigned long reaped;           /* departed consumers removed by this process */
	char bytes_key[ENTRY_KEY_MAX];
	char dead_key[ENTRY_KEY_MAX];
	int writes;                     /* queue_put XADDs awaiting Redis */
	unsigned long long body_seq;    /* names large bodies' keys (with the time and consumer) */

	/* Entries accepted while Redis was away, drained in order once it is back. */
	struct buffer *buf;
	int buf_sending;                /* XADDs of buffered entries awaiting a reply (or their WAIT) */
	bool spool_loaded;              /* "<spool>.loaded" holds entries not yet all in Redis */

	/* redis.wait_replicas (see struct wait_batch) */
	struct waiter **waiters;        /* one per connection that took puts */
	size_t nwaiters, cap_waiters;
	struct event *wait_ev;
	struct put_ctx **carry;         /* drained entries WAIT fell short for, waiting for the next */
	size_t ncarry, cap_carry;
	double wait_warned, carry_warned;

	char consumer[160];             /* forward.consumer (128 at most) or config_default_consumer */
};

/* The WAIT state of one connection: the standalone (or Sentinel) one, or, with a cluster, each
 * master's connection, whose writes only a WAIT on that same connection confirms. */
struct waiter {
	unsigned node;                     /* cluster: rcluster's connection id; 0: the one connection */
	struct wait_batch *open;           /* this iteration's puts; WAIT goes out from wait_ev */
	struct wait_batch *waiting;        /* its WAIT is in flight */
};

static void drain_buffer(struct queue *q);
static void new_group_reply(void *arg, redisReply *rep);
static void slot_count(struct queue *q, const char *stream, int delta);
static struct waiter *waiter_of(struct queue *q, unsigned node, bool make);
static void waiter_abandon(struct queue *q, struct waiter *w);
static void wait_again(struct queue *q);
static void wait_abandon(struct queue *q);

static bool rc_ready(const struct queue *q)
{
	if (q->cl != NULL)
		return q->groups_ok && rcluster_usable(q->cl);
	return q->rc != NULL && redisconn_ready(q->rc);
}

/* Through the one connection, or, with a cluster, to the master of the command's key. */
static enum queue_send sendv(struct queue *q, redisconn_reply_cb fn, void *arg, int argc, const char **argv,
			     const size_t *lens)
{
	if (q->cl != NULL)
		return rcluster_send(q->cl, fn, arg, argc, argv, lens) == RCLUSTER_SENT ? QUEUE_SENT : QUEUE_UNAVAILABLE;
	if (q->rc == NULL)
		return QUEUE_UNAVAILABLE;
	return redisconn_send(q->rc, fn, arg, argc, argv, lens) == REDISCONN_SENT ? QUEUE_SENT : QUEUE_UNAVAILABLE;
}

enum queue_send queue_command(struct queue *q, redisconn_reply_cb cb, void *arg, int argc, const char **argv,
			      const size_t *lens)
{
	return sendv(q, cb, arg, argc, argv, lens);
}

/* The byte counter a stream's entries count in: the one counter, or (cluster) its route's. */
static const char *bytes_key_of(const struct queue *q, const char *stream, char *buf, size_t len)
{
	if (q->cl == NULL || entry_cluster_sibling_key(stream, ENTRY_CLUSTER_BYTES, buf, len) != 0)
		return q->bytes_key;
	return buf;
}

static const char *dead_key_of(const struct queue *q, const char *stream, char *buf, size_t len)
{
	if (q->cl == NULL || entry_cluster_sibling_key(stream, ENTRY_CLUSTER_DEAD, buf, len) != 0)
		return q->dead_key;
	return buf;
}

static enum queue_send sendf(struct queue *q, redisconn_reply_cb fn, void *arg, int argc, ...)
{
	const char *argv[16];
	va_list ap;

	if (argc > 16)
		return QUEUE_UNAVAILABLE;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, const char *);
	va_end(ap);
	return sendv(q, fn, arg, argc, argv, NULL);
}

static enum queue_done done_of(const redisReply *rep, int want_type)
{
	if (rep == NULL)
		return QUEUE_DONE_LOST;
	return rep->type == want_type ? QUEUE_DONE_OK : QUEUE_DONE_ERROR;
}

/* ---- connection ---- */

static void on_handshake(void *arg, struct redisconn *rc)
{
	struct queue *q = arg;

	/* BUSYGROUP: another process (or an earlier run) created the group: fine. */
	for (size_t i = 0; i < q->nstreams; i++)
		redisconn_setup(rc, 6, (const char *[]){ "XGROUP", "CREATE", q->gauges[i]->name, ENTRY_GROUP, "0", "MKSTREAM" },
				"BUSYGROUP");
}

static void on_ready(void *arg)
{
	struct queue *q = arg;

	q->connects++;
	/* A handshake begun before a reload lacked its streams: their groups go before anything else. */
	for (size_t i = 0; q->regroup && q->rc != NULL && i < q->nstreams; i++)
		sendf(q, new_group_reply, q, 6, "XGROUP", "CREATE", q->gauges[i]->name, ENTRY_GROUP, "0", "MKSTREAM");
	q->regroup = false;
	log_info("redis: ready (%zu streams, consumer %s, %zu entries buffered)", q->nstreams, q->consumer,
		 buffer_count(q->buf));
	/* A cluster may have other masters' drains in flight: rewinding then would write them twice. */
	if (q->buf_sending == 0)
		buffer_rewind(q->buf);
	drain_buffer(q);
	if (q->hooks.on_ready != NULL)
		q->hooks.on_ready(q->hooks.arg);
}

static void on_lost(void *arg)
{
	struct queue *q = arg;

	wait_abandon(q);
	q->writes = 0;
	q->buf_sending = 0;
	q->xlen_left = 0;
	q->group_left = 0;
}

/* ---- connection: a cluster ---- */

static void group_reply(void *arg, redisReply *rep)
{
	struct queue *q = arg;

	if (rep == NULL || (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)) {
		if (!q->groups_failed)
			log_warn("redis: creating a consumer group failed: %s; trying again",
				 rep == NULL ? "connection lost" : rep->str);
		q->groups_failed = true;
	}
	if (q->groups_left > 0 && --q->groups_left > 0)
		return;
	if (q->groups_failed) {
		q->groups_failed = false;  /* the tick tries again */
		return;
	}
	q->groups_ok = true;
	on_ready(q);
}

/* Every stream's consumer group, on the master of its slot, before the queue is ready. The keys
 * move with their slots (a reshard, a failover): once made, a group stays. */
static void create_groups(struct queue *q)
{
	if (q->groups_ok || q->groups_left > 0 || !rcluster_ready(q->cl))
		return;
	q->groups_failed = false;
	for (size_t i = 0; i < q->nstreams; i++)
		if (sendf(q, group_reply, q, 6, "XGROUP", "CREATE", q->gauges[i]->name, ENTRY_GROUP, "0", "MKSTREAM") ==
		    QUEUE_SENT)
			q->groups_left++;
	if (q->nstreams == 0) {
		q->groups_ok = true;
		on_ready(q);
	} else if (q->groups_left < q->nstreams) {
		q->groups_failed = true;  /* a master went away meanwhile: the tick tries again */
	}
}

static void cluster_ready(void *arg)
{
	struct queue *q = arg;

	if (q->groups_ok)
		on_ready(q);  /* back after a master was away: drain the buffer, rescan pending entries */
	else
		create_groups(q);
}

static void cluster_node_lost(void *arg, unsigned node)
{
	struct queue *q = arg;
	struct waiter *w = waiter_of(q, node, false);

	if (w == NULL)
		return;
	waiter_abandon(q, w);
	if (w->waiting != NULL)
		return;
	for (size_t i = 0; i < q->nwaiters; i++)
		if (q->waiters[i] == w)
			q->waiters[i] = q->waiters[--q->nwaiters];
	free(w);
}

/* ---- pending and bytes gauges ---- */

static void gauge_free(struct stream_gauge *g)
{
	for (size_t i = 0; i < g->nnamed; i++)
		free(g->named[i].name);
	free(g->named);
	free(g->name);
	free(g);
}

/* A reply for a gauge: false when it was the last one of a gauge no longer in use (freed). */
static bool gauge_replied(struct stream_gauge *g)
{
	if (--g->replies > 0 || !g->gone)
		return true;
	gauge_free(g);
	return false;
}

static void xlen_reply(void *arg, redisReply *rep)
{
	struct stream_gauge *g = arg;
	struct queue *q = g->q;

	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
		q->pending_acc += rep->integer;
		g->entries = rep->integer;
		g->counted_at = g->sending_at;
	}
	if (q->xlen_left > 0 && --q->xlen_left == 0)
		q->pending = q->pending_acc + q->pending_delta;
	gauge_replied(g);
}

static void memory_reply(void *arg, redisReply *rep)
{
	struct stream_gauge *g = arg;

	/* nil: no such key; an error (MEMORY renamed or denied): the gauge stays as it was */
	if (rep != NULL && (rep->type == REDIS_REPLY_INTEGER || rep->type == REDIS_REPLY_NIL))
		g->memory = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
	gauge_replied(g);
}

static void bytes_reply(void *arg, redisReply *rep)
{
	struct queue *q = arg;

	if (rep == NULL)
		return;
	/* The counter drifts when entries are removed by hand; a negative value means "none". */
	q->bytes = (rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0) + q->bytes_delta;
	if (q->bytes < 0)
		q->bytes = 0;
}

/* Cluster: one route's counter; the total is their sum (a negative one counts as none). */
static void tag_bytes_reply(void *arg, redisReply *rep)
{
	struct queue *q = arg;
	long long v = rep != NULL && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;

	q->bytes_acc += v > 0 ? v : 0;
	if (q->bytes_left > 0 && --q->bytes_left == 0)
		q->bytes = q->bytes_acc + q->bytes_delta;
}

/*
 * The refreshes take Redis's counts; what this process moved since a refresh was sent is added to
 * its result (a put sent after an XLEN ran, but before its reply, would be lost otherwise, and the
 * queue would look drained with an entry still in it). An entry moved before the count ran, on
 * another cluster node, is counted twice until the next refresh: the gauge errs high, never low.
 */
static void move_counts(struct queue *q, long long entries, long long bytes)
{
	q->pending += entries;
	q->pending_delta += entries;
	q->bytes += bytes;
	q->bytes_delta += bytes;
}

static void refresh_bytes(struct queue *q)
{
	if (q->cl == NULL) {
		q->bytes_delta = 0;
		sendf(q, bytes_reply, q, 2, "GET", q->bytes_key);
		return;
	}
	if (q->bytes_left != 0)
		return;
	q->bytes_acc = 0;
	q->bytes_delta = 0;
	for (size_t i = 0; i < q->ntags; i++)
		if (sendf(q, tag_bytes_reply, q, 2, "GET", q->tags[i]) == QUEUE_SENT)
			q->bytes_left++;
}

static void refresh_pending(struct queue *q)
{
	if (q->xlen_left != 0)
		return;
	q->pending_acc = 0;
	q->pending_delta = 0;
	refresh_bytes(q);
	for (size_t i = 0; i < q->nstreams; i++) {
		struct stream_gauge *g = q->gauges[i];

		g->sending_at = clock_mono();
		if (sendf(q, xlen_reply, g, 2, "XLEN", g->name) == QUEUE_SENT)
			q->xlen_left++, g->replies++;
		if (sendf(q, memory_reply, g, 3, "MEMORY", "USAGE", g->name) == QUEUE_SENT)
			g->replies++;
	}
}

/* ---- the consumer groups: members, their pending entries, the oldest entry, departures ---- */

/* A departed consumer goes only if, at the moment of the delete, it has nothing pending and has
 * been idle long enough: checked in the same script (XGROUP DELCONSUMER drops what a consumer has
 * pending, redis#9745), so a claim or a process coming back in between is never lost. */
static const char reap_script[] =
	"for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
	"  local f = {}\n"
	"  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
	"  if f['name'] == ARGV[2] then\n"
	"    if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) then\n"
	"      return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
	"    end\n"
	"    return -1\n"
	"  end\n"
	"end\n"
	"return -2\n";

/* The id of a stream's first entry: acked entries are deleted, so it is the oldest one not yet
 * forwarded (delivered or not). Only the id comes back, never a body. */
static const char oldest_script[] =
	"local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
	"if #e == 0 then return false end\n"
	"return e[1][1]\n";

struct reap_ctx {
	struct queue *q;
	char stream[ENTRY_KEY_MAX];     /* a copy: a reload may retire the stream meanwhile */
	long long idle_ms;
	char name[];
};

static void reap_reply(void *arg, redisReply *rep)
{
	struct reap_ctx *c = arg;

	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
		c->q->reaped++;
		log_kv_info(LOG_FIELDS(LOG_STR("consumer", c->name), LOG_STR("stream", c->stream)),
			    "queue: removed departed consumer %s from %s (idle %.0fs, nothing pending)", c->name,
			    c->stream, (double)c->idle_ms / 1000);
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_warn("redis: removing a departed consumer failed: %s", rep->str);
	}
	free(c);
}

static void reap(struct queue *q, const char *stream, const char *name, long long idle_ms)
{
	char min_idle[32];
	struct reap_ctx *c;
	size_t len = strlen(name);

	if (q->reaps >= REAP_MAX || (c = malloc(sizeof(*c) + len + 1)) == NULL)
		return;
	c->q = q;
	snprintf(c->stream, sizeof(c->stream), "%s", stream);
	c->idle_ms = idle_ms;
	memcpy(c->name, name, len + 1);
	snprintf(min_idle, sizeof(min_idle), "%lld", (long long)(q->cfg->forward_departed_after * 1000));
	if (sendf(q, reap_reply, c, 7, "EVAL", reap_script, "1", c->stream, ENTRY_GROUP, name, min_idle) ==
	    QUEUE_SENT)
		q->reaps++;
	else
		free(c);
}

/* One member of an XINFO CONSUMERS reply: a flat list of field names and values. */
static bool member_of(const redisReply *c, const char **name, long long *pending, long long *idle)
{
	*name = NULL;
	*pending = *idle = -1;
	if (c->type != REDIS_REPLY_ARRAY)
		return false;
	for (size_t i = 0; i + 1 < c->elements; i += 2) {
		const redisReply *k = c->element[i], *v = c->element[i + 1];

		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
			*name = v->str;
		else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
			*pending = v->integer;
		else if (strcmp(k->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
			*idle = v->integer;
	}
	return *name != NULL && *pending >= 0 && *idle >= 0;
}

static void clear_named(struct stream_gauge *g)
{
	for (size_t i = 0; i < g->nnamed; i++)
		free(g->named[i].name);
	g->nnamed = 0;
}

/* Processes that forward remove the departed: idle past forward.departed_after, nothing pending. */
static bool departed(const struct queue *q, const char *name, long long pending, long long idle_ms)
{
	return q->cfg->role != CONFIG_ROLE_INGEST && pending == 0 &&
	       (double)idle_ms >= q->cfg->forward_departed_after * 1000 && strcmp(name, q->consumer) != 0;
}

static void consumers_reply(void *arg, redisReply *rep)
{
	struct stream_gauge *g = arg;
	struct queue *q = g->q;

	if (q->group_left > 0)
		q->group_left--;
	if (g->gone || rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		gauge_replied(g);
		return;  /* retired, lost, or NOGROUP (the stream was deleted by hand): as it was */
	}
	clear_named(g);
	g->consumers = (long long)rep->elements;
	for (size_t i = 0; i < rep->elements; i++) {
		const char *name;
		long long pending, idle;
		char *copy;

		if (!member_of(rep->element[i], &name, &pending, &idle))
			continue;
		if (departed(q, name, pending, idle))
			reap(q, g->name, name, idle);
		if (g->nnamed < GROUP_NAMED_MAX && (copy = strdup(name)) != NULL)
			g->named[g->nnamed++] = (struct group_member){ copy, pending, idle };
	}
	gauge_replied(g);
}

static void oldest_reply(void *arg, redisReply *rep)
{
	struct stream_gauge *g = arg;

	if (rep != NULL && rep->type != REDIS_REPLY_ERROR)
		g->oldest_ms = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;  /* "<ms>-<seq>"; nil: empty */
	gauge_replied(g);
}

static void poll_groups(struct queue *q)
{
	if (q->group_left != 0)
		return;  /* the last poll is still being answered */
	q->reaps = 0;
	for (size_t i = 0; i < q->nstreams; i++) {
		struct stream_gauge *g = q->gauges[i];

		if (sendf(q, consumers_reply, g, 4, "XINFO", "CONSUMERS", g->name, ENTRY_GROUP) == QUEUE_SENT)
			q->group_left++, g->replies++;
		if (sendf(q, oldest_reply, g, 4, "EVAL", oldest_script, "1", g->name) == QUEUE_SENT)
			g->replies++;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	if (q->cl != NULL && !q->groups_ok)
		create_groups(q);
	if (!rc_ready(q))
		return;
	wait_again(q);
	if (now - q->last_group >= GROUP_PERIOD) {
		q->last_group = now;
		poll_groups(q);
	}
	if (now - q->last_refresh < REFRESH_PERIOD)
		return;
	q->last_refresh = now;
	refresh_pending(q);
	/* Buffered entries Redis refused (an error, not a lost connection) are tried again. */
	if (q->buf_sending == 0 && buffer_all_taken(q->buf) && buffer_count(q->buf) > 0) {
		buffer_rewind(q->buf);
		drain_buffer(q);
	}
}

/* Local moves since the last refresh can double-count one already in the snapshot: never below 0. */
long long queue_pending(const struct queue *q)
{
	return q->pending > 0 ? q->pending : 0;
}

long long queue_bytes(const struct queue *q)
{
	return q->bytes > 0 ? q->bytes : 0;
}

size_t queue_streams(const struct queue *q)
{
	return q->nstreams;
}

void queue_stream_gauges(const struct queue *q, size_t i, struct queue_stream_gauges *out)
{
	out->entries = i < q->nstreams ? q->gauges[i]->entries : 0;
	out->memory_bytes = i < q->nstreams ? q->gauges[i]->memory : 0;
}

unsigned long queue_connects(const struct queue *q)
{
	return q->connects;
}

void queue_group_gauges(const struct queue *q, size_t i, struct queue_group_gauges *out)
{
	const struct stream_gauge *g = i < q->nstreams ? q->gauges[i] : NULL;
	long long now = clock_epoch_ms();

	memset(out, 0, sizeof(*out));
	if (g == NULL || g->consumers < 0)
		return;
	out->polled = true;
	out->consumers = g->consumers;
	out->named = g->nnamed;
	if (g->oldest_ms > 0 && now > g->oldest_ms)
		out->oldest_age = (double)(now - g->oldest_ms) / 1000;
}

bool queue_group_member(const struct queue *q, size_t i, size_t j, struct queue_group_member *out)
{
	if (i >= q->nstreams || j >= q->gauges[i]->nnamed)
		return false;
	out->name = q->gauges[i]->named[j].name;
	out->pending = q->gauges[i]->named[j].pending;
	out->idle_ms = q->gauges[i]->named[j].idle_ms;
	return true;
}

unsigned long queue_consumers_removed(const struct queue *q)
{
	return q->reaped;
}

/* ---- put ---- */

struct wait_batch;
struct waiter;

struct put_ctx {
	struct queue *q;
	queue_done_cb cb;
	void *arg;
	struct buffer_item *from_buffer;   /* set when this XADD drains a buffered entry */
	/* A large body goes first, in chunks, under its own key; the entry follows. */
	const struct entry *e;             /* the caller's, alive until the done callback */
	char body_key[ENTRY_KEY_MAX];
	size_t sent;                       /* body bytes sent */
	int chunks;                        /* chunk writes awaiting a reply */
	enum queue_done failed;            /* the first chunk failure (OK: none) */
	struct wait_batch *batch;          /* redis.wait_replicas: the WAIT that confirms it */
	unsigned node;                     /* cluster: the connection that took the XADD */
	int carried;                       /* WAITs a drained entry was carried to (cluster: bounded) */
	bool done;                         /* answered before its WAIT (an error, a lost connection) */
	size_t n;
	char stream[][ENTRY_KEY_MAX];      /* the streams written: one, or a request and its mirrors */
};

/* redis.wait_replicas: the puts of one loop iteration, answered together when one WAIT after
 * their XADDs says enough replicas have them. One WAIT is in flight at a time per connection (it
 * blocks the connection): a batch opened meanwhile waits for it. */
struct wait_batch {
	struct waiter *w;
	struct put_ctx **puts;
	size_t n, cap;
	int xadds;                         /* XADD answers still to come */
	bool answered;
	enum queue_done result;            /* of the WAIT, for every put whose XADD succeeded */
};

static void arrived(struct queue *q, const char *stream)
{
	if (q->hooks.on_arrival != NULL)
		q->hooks.on_arrival(q->hooks.arg, stream);
}

static void spool_delivered(struct queue *q)
{
	char loaded[SPOOL_PATH_MAX];

	/* Everything taken back from the spool is in Redis now. */
	if (buffer_count(q->buf) > 0 || !q->spool_loaded)
		return;
	if (spool_loaded_path(q->cfg->redis_spool_file, loaded, sizeof(loaded)) == 0)
		unlink(loaded);
	q->spool_loaded = false;
}

/* A put's outcome: a drained entry leaves the buffer, an SDK's caller is told. Not freed here. */
static void complete_put(struct put_ctx *p, enum queue_done r)
{
	struct queue *q = p->q;

	if (p->from_buffer != NULL) {
		if (q->buf_sending > 0)
			q->buf_sending--;
		if (r == QUEUE_DONE_OK) {
			slot_count(q, buffer_item_stream(p->from_buffer), -1);
			buffer_remove(q->buf, p->from_buffer);
			spool_delivered(q);
		}
		if (r != QUEUE_DONE_LOST)
			drain_buffer(q);
	} else {
		if (q->writes > 0)
			q->writes--;
		if (p->cb != NULL)
			p->cb(p->arg, r);
	}
}

static void batch_check(struct queue *q, struct wait_batch *b);
static int batch_reserve(struct waiter *w);
static void batch_add(struct queue *q, struct waiter *w, struct put_ctx *p, bool xadd_pending);

/* Cluster: the XADD's answer names the connection; the put joins that connection's WAIT. */
static bool join_node_wait(struct queue *q, struct put_ctx *p)
{
	struct waiter *w;

	if (q->cl == NULL || q->cfg->redis_wait_replicas == 0 || p->batch != NULL)
		return false;
	p->node = rcluster_reply_node(q->cl);
	if ((w = waiter_of(q, p->node, true)) == NULL || batch_reserve(w) != 0) {
		complete_put(p, QUEUE_DONE_UNREPLICATED);
		free(p);
		return true;
	}
	batch_add(q, w, p, false);
	return true;
}

static void put_reply(void *arg, redisReply *rep)
{
	struct put_ctx *p = arg;
	struct queue *q = p->q;
	enum queue_done r = done_of(rep, REDIS_REPLY_STRING);

	if (r == QUEUE_DONE_ERROR)
		log_error("redis: XADD failed: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	/* Readable at once; the SDK's answer may wait for WAIT. */
	for (size_t i = 0; r == QUEUE_DONE_OK && i < p->n; i++)
		arrived(q, p->stream[i]);
	if (r == QUEUE_DONE_OK && join_node_wait(q, p))
		return;
	if (p->batch == NULL) {
		complete_put(p, r);
		free(p);
		return;
	}
	p->batch->xadds--;
	if (r != QUEUE_DONE_OK) {
		p->done = true;
		complete_put(p, r);
	}
	batch_check(q, p->batch);
}

/* ---- WAIT: redis.wait_replicas ---- */

/* The waiter of a connection (made when asked to). NULL when out of memory. */
static struct waiter *waiter_of(struct queue *q, unsigned node, bool make)
{
	struct waiter **grown, *w;

	for (size_t i = 0; i < q->nwaiters; i++)
		if (q->waiters[i]->node == node)
			return q->waiters[i];
	if (!make)
		return NULL;
	if (q->nwaiters == q->cap_waiters) {
		size_t cap = q->cap_waiters ? q->cap_waiters * 2 : 4;

		if ((grown = realloc(q->waiters, cap * sizeof(*grown))) == NULL)
			return NULL;
		q->waiters = grown;
		q->cap_waiters = cap;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->node = node;
	q->waiters[q->nwaiters++] = w;
	return w;
}

/* Room for one more put in the open batch (made on the first). -1 when out of memory. */
static int batch_reserve(struct waiter *w)
{
	struct wait_batch *b = w->open;

	if (b == NULL && (b = w->open = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->w = w;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct put_ctx **grown = realloc(b->puts, cap * sizeof(*grown));

		if (grown == NULL)
			return -1;
		b->puts = grown;
		b->cap = cap;
	}
	return 0;
}

/* After batch_reserve: p joins the open batch; its WAIT goes out at the end of this iteration. */
static void batch_add(struct queue *q, struct waiter *w, struct put_ctx *p, bool xadd_pending)
{
	w->open->puts[w->open->n++] = p;
	p->batch = w->open;
	p->done = false;
	if (xadd_pending)
		w->open->xadds++;
	event_active(q->wait_ev, EV_TIMEOUT, 1);
}

/*
 * Cluster only: a drained entry is carried at most CARRY_MAX WAITs. A master promoted after a
 * failover may have no replica left; carried for ever, its entries would hold the buffer (FIFO)
 * and with it every other slot's. It is in that master already: it leaves the buffer, unconfirmed.
 */
static bool carried_enough(struct queue *q, struct put_ctx *p)
{
	if (q->cl == NULL || p->carried < CARRY_MAX)
		return false;
	if (clock_mono() - q->carry_warned >= 10) {
		q->carry_warned = clock_mono();
		log_warn("redis: a buffered entry is in its master but no replica confirmed it after %d WAITs; it leaves "
			 "the buffer unconfirmed (that master has too few replicas for redis.wait_replicas)", CARRY_MAX);
	}
	p->done = true;
	complete_put(p, QUEUE_DONE_OK);
	return true;
}

/* Every answer is in: complete the puts. A drained entry WAIT fell short for is in Redis
 * already: it is carried to a later WAIT on this connection rather than written again. */
static void batch_check(struct queue *q, struct wait_batch *b)
{
	if (!b->answered || b->xadds > 0)
		return;
	for (size_t i = 0; i < b->n; i++) {
		struct put_ctx *p = b->puts[i];

		if (!p->done && b->result == QUEUE_DONE_UNREPLICATED && p->from_buffer != NULL &&
		    q->ncarry < q->cap_carry && !carried_enough(q, p)) {
			p->batch = NULL;
			p->carried++;
			q->carry[q->ncarry++] = p;
			continue;
		}
		if (!p->done)
			complete_put(p, b->result);
		free(p);
	}
	free(b->puts);
	free(b);
}

static void wait_reply(void *arg, redisReply *rep)
{
	struct wait_batch *b = arg;
	struct queue *q = b->puts[0]->q;
	int want = q->cfg->redis_wait_replicas;

	b->w->waiting = NULL;
	b->answered = true;
	if (rep == NULL) {
		b->result = QUEUE_DONE_LOST;
	} else if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= want) {
		b->result = QUEUE_DONE_OK;
	} else {
		b->result = QUEUE_DONE_UNREPLICATED;
		if (clock_mono() - q->wait_warned >= 10) {  /* once per 10 s, not once per batch */
			q->wait_warned = clock_mono();
			if (rep->type == REDIS_REPLY_INTEGER)
				log_warn("redis: WAIT: %lld of %d replicas had the writes within %g s; answering 503",
					 rep->integer, want, q->cfg->redis_wait_timeout);
			else
				log_warn("redis: WAIT failed: %s; answering 503", rep->str ? rep->str : "?");
		}
	}
	if (b->w->open != NULL)
		event_active(q->wait_ev, EV_TIMEOUT, 1);
	batch_check(q, b);
}

/* One WAIT for the open batch of w, unless one is in flight already. */
static void wait_send(struct queue *q, struct waiter *w)
{
	struct wait_batch *b = w->open;
	char n[16], ms[24];
	const char *argv[3] = { "WAIT", n, ms };
	enum queue_send sent;

	if (b == NULL || w->waiting != NULL)
		return;
	w->open = NULL;
	if (b->n == 0) {
		free(b->puts);
		free(b);
		return;
	}
	snprintf(n, sizeof(n), "%d", q->cfg->redis_wait_replicas);
	snprintf(ms, sizeof(ms), "%lld", (long long)(q->cfg->redis_wait_timeout * 1000 + 0.5) > 0 ?
		 (long long)(q->cfg->redis_wait_timeout * 1000 + 0.5) : 1LL);  /* WAIT ... 0 would block forever */
	if (q->cl != NULL)
		sent = rcluster_send_node(q->cl, w->node, wait_reply, b, 3, argv, NULL) == RCLUSTER_SENT ? QUEUE_SENT
											       : QUEUE_UNAVAILABLE;
	else
		sent = sendv(q, wait_reply, b, 3, argv, NULL);
	if (sent == QUEUE_SENT) {
		w->waiting = b;
		return;
	}
	b->answered = true;
	b->result = QUEUE_DONE_LOST;
	batch_check(q, b);
}

/* The end of an iteration's puts: one WAIT per connection that took some. */
static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < q->nwaiters; i++)
		wait_send(q, q->waiters[i]);
}

/* From the tick: drained entries a WAIT fell short for join the next WAIT of their connection
 * (gone: they are written again, a possible duplicate). */
static void wait_again(struct queue *q)
{
	while (q->ncarry > 0 && rc_ready(q)) {
		struct put_ctx *p = q->carry[q->ncarry - 1];
		struct waiter *w = waiter_of(q, p->node, q->cl == NULL);

		if (w != NULL && batch_reserve(w) != 0)
			return;
		q->ncarry--;
		if (w != NULL) {
			batch_add(q, w, p, false);
		} else {
			complete_put(p, QUEUE_DONE_LOST);
			free(p);
		}
	}
}

/* A connection is gone: whatever waits for its WAIT is lost (the waiter stays for the one
 * connection; a cluster connection's goes). */
static void waiter_abandon(struct queue *q, struct waiter *w)
{
	struct wait_batch *b = w->open;

	w->open = NULL;
	if (b != NULL) {
		b->answered = true;
		b->result = QUEUE_DONE_LOST;
		batch_check(q, b);  /* now, or at the last XADD answer */
	}
}

/* The connection is gone (or the queue closes): whatever waits for a WAIT is lost. */
static void wait_abandon(struct queue *q)
{
	while (q->ncarry > 0) {
		struct put_ctx *p = q->carry[--q->ncarry];

		complete_put(p, QUEUE_DONE_LOST);
		free(p);
	}
	for (size_t i = 0; i < q->nwaiters; i++)
		waiter_abandon(q, q->waiters[i]);
}

/* A put that ends before its XADD (a large body's chunk failed): answered and freed. */
static void put_failed(struct put_ctx *p, enum queue_done r)
{
	complete_put(p, r);
	free(p);
}


/*
 * Every copy in one script: all are queued, or none. KEYS: the byte counter, the streams, then
 * the body key when ARGV[2] is "1"; ARGV: the body length, that flag, the fields. A large body
 * must be complete under its key; it is kept (PERSIST) from here on, and each further copy gets
 * its own copy of it, so every entry owns the body it deletes. A script is not rolled back when a
 * command in it fails, so every key is checked before the first write (an XADD to a key of another
 * type would fail after the copies before it were written).
 */
static const char put_script[] =
	"local big = ARGV[2] == '1'\n"
	"local n = #KEYS - 1\n"
	"local bk\n"
	"if big then\n"
	"  n = n - 1\n"
	"  bk = KEYS[#KEYS]\n"
	"  if redis.call('STRLEN', bk) ~= tonumber(ARGV[1]) then\n"
	"    return redis.error_reply('ERR sentryq: large body incomplete (expired or lost)')\n"
	"  end\n"
	"  redis.call('PERSIST', bk)\n"
	"end\n"
	"for i = 2, n + 1 do\n"
	"  local t = redis.call('TYPE', KEYS[i]).ok\n"
	"  if t ~= 'none' and t ~= 'stream' then\n"
	"    return redis.error_reply('WRONGTYPE a destination key is not a stream; no copy queued')\n"
	"  end\n"
	"end\n"
	"local f = {}\n"
	"for i = 3, #ARGV do f[#f + 1] = ARGV[i] end\n"
	"local id\n"
	"for i = 1, n do\n"
	"  if big then\n"
	"    local k = bk\n"
	"    if i > 1 then k = bk .. ':' .. i redis.call('COPY', bk, k, 'REPLACE') end\n"
	"    f[#f + 1] = '" ENTRY_FIELD_BODY_KEY "' f[#f + 1] = k\n"
	"    id = redis.call('XADD', KEYS[i + 1], '*', unpack(f))\n"
	"    f[#f] = nil f[#f] = nil\n"
	"  else\n"
	"    id = redis.call('XADD', KEYS[i + 1], '*', unpack(f))\n"
	"  end\n"
	"end\n"
	"redis.call('INCRBY', KEYS[1], ARGV[1] * n)\n"
	"return id\n";

/* One stream, inline body: XADD with INCRBY pipelined behind it (the byte count queue.max_bytes
 * is checked against). Several streams or a large body: put_script. */
static enum queue_send send_xadd(struct queue *q, const struct entry *e, struct put_ctx *p)
{
	const char *argv[8 + QUEUE_STREAMS_MAX + 2 * ENTRY_FIELDS_MAX];
	size_t lens[8 + QUEUE_STREAMS_MAX + 2 * ENTRY_FIELDS_MAX];
	bool big = p->body_key[0] != '\0';
	struct entry_fields f;
	char len[24], nkeys[8], bk[ENTRY_KEY_MAX];
	const char *bytes_key = bytes_key_of(q, p->stream[0], bk, sizeof(bk));
	int n = 0;

	entry_fields(e, clock_epoch_ms(), big, &f);
	snprintf(len, sizeof(len), "%zu", e->body_len);
	snprintf(nkeys, sizeof(nkeys), "%zu", p->n + 1 + (big ? 1 : 0));
	if (p->n == 1 && !big) {
		argv[n] = "XADD", lens[n++] = 4;
		argv[n] = p->stream[0], lens[n++] = strlen(p->stream[0]);
		argv[n] = "*", lens[n++] = 1;
	} else {
		argv[n] = "EVAL", lens[n++] = 4;
		argv[n] = put_script, lens[n++] = sizeof(put_script) - 1;
		argv[n] = nkeys, lens[n++] = strlen(nkeys);
		argv[n] = bytes_key, lens[n++] = strlen(bytes_key);
		for (size_t i = 0; i < p->n; i++)
			argv[n] = p->stream[i], lens[n++] = strlen(p->stream[i]);
		if (big)
			argv[n] = p->body_key, lens[n++] = strlen(p->body_key);
		argv[n] = len, lens[n++] = strlen(len);
		argv[n] = big ? "1" : "0", lens[n++] = 1;
	}
	for (size_t i = 0; i < f.n; i++) {
		argv[n] = f.name[i], lens[n++] = strlen(f.name[i]);
		argv[n] = f.val[i], lens[n++] = f.len[i];
	}
	if (sendv(q, put_reply, p, n, argv, lens) != QUEUE_SENT)
		return QUEUE_UNAVAILABLE;
	if (p->n == 1 && !big)
		sendf(q, NULL, NULL, 3, "INCRBY", bytes_key, len);
	move_counts(q, (long long)p->n, (long long)(e->body_len * p->n));
	return QUEUE_SENT;
}

/* The XADD (or put script), joining the open WAIT batch when redis.wait_replicas asks for one. */
static enum queue_send send_waited(struct queue *q, const struct entry *e, struct put_ctx *p)
{
	struct waiter *w;

	if (q->cfg->redis_wait_replicas == 0 || q->cl != NULL)
		return send_xadd(q, e, p);  /* a cluster's put joins a WAIT once its connection is known */
	if ((w = waiter_of(q, 0, true)) == NULL || batch_reserve(w) != 0 || send_xadd(q, e, p) != QUEUE_SENT)
		return QUEUE_UNAVAILABLE;
	batch_add(q, w, p, true);
	return QUEUE_SENT;
}

static bool send_chunks(struct put_ctx *p);

/* One chunk written; the next ones follow, the entry after the last. */
static void chunk_reply(void *arg, redisReply *rep)
{
	struct put_ctx *p = arg;
	enum queue_done r = rep == NULL ? QUEUE_DONE_LOST : rep->type == REDIS_REPLY_ERROR ? QUEUE_DONE_ERROR : QUEUE_DONE_OK;

	p->chunks--;
	if (r == QUEUE_DONE_ERROR && p->failed == QUEUE_DONE_OK)
		log_error("redis: writing a large body failed: %s", rep->str);
	if (r != QUEUE_DONE_OK && p->failed == QUEUE_DONE_OK)
		p->failed = r;
	if (p->failed != QUEUE_DONE_OK) {
		/* What was written expires (QUEUE_BODY_TTL); the caller keeps the entry. */
		if (p->chunks == 0)
			put_failed(p, p->failed);
		return;
	}
	if (p->sent < p->e->body_len) {
		send_chunks(p);
	} else if (p->chunks == 0 && send_waited(p->q, p->e, p) != QUEUE_SENT) {
		put_failed(p, QUEUE_DONE_LOST);
	}
}

/*
 * A large body in chunks of QUEUE_CHUNK (SET with an expiry, then APPEND), a few at a time: no
 * command holds more than a chunk, so neither this process nor Redis ever copies the whole body
 * at once, and other commands (the SDKs' small events) go between the chunks.
 */
static bool send_chunks(struct put_ctx *p)
{
	struct queue *q = p->q;

	while (p->chunks < QUEUE_CHUNKS_IN_FLIGHT && p->sent < p->e->body_len) {
		size_t n = p->e->body_len - p->sent < QUEUE_CHUNK ? p->e->body_len - p->sent : QUEUE_CHUNK;
		const char *first[] = { "SET", p->body_key, p->e->body, "EX", QUEUE_BODY_TTL };
		const char *next[] = { "APPEND", p->body_key, p->e->body + p->sent };
		size_t lens[] = { p->sent == 0 ? 3 : 6, strlen(p->body_key), n, 2, strlen(QUEUE_BODY_TTL) };
		bool sent = p->sent == 0 ? sendv(q, chunk_reply, p, 5, first, lens) == QUEUE_SENT
					 : sendv(q, chunk_reply, p, 3, next, lens) == QUEUE_SENT;

		if (!sent && p->sent == 0)
			return false;  /* nothing sent: the caller still has the entry */
		if (!sent) {
			if (p->chunks == 0)
				put_failed(p, QUEUE_DONE_LOST);
			else
				p->failed = QUEUE_DONE_LOST;
			return true;
		}
		p->chunks++;
		p->sent += n;
	}
	return true;
}

static enum queue_send send_put(struct queue *q, const struct entry *e, struct put_ctx *p)
{
	if (e->body_len <= QUEUE_INLINE_MAX)
		return send_waited(q, e, p);
	if (!rc_ready(q))
		return QUEUE_UNAVAILABLE;
	if (q->cl != NULL ? entry_cluster_body_key(p->stream[0], q->consumer, clock_epoch_ms(), ++q->body_seq, p->body_key,
						   sizeof(p->body_key)) != 0
			  : entry_body_key(q->cfg->redis_prefix, q->consumer, clock_epoch_ms(), ++q->body_seq, p->body_key,
					   sizeof(p->body_key)) != 0)
		return QUEUE_UNAVAILABLE;
	p->e = e;
	/* Once the first chunk is sent, the done callback follows (never from inside this call). */
	return send_chunks(p) ? QUEUE_SENT : QUEUE_UNAVAILABLE;
}

static struct put_ctx *new_put(struct queue *q, const char *const *streams, size_t n)
{
	struct put_ctx *p = calloc(1, sizeof(*p) + n * ENTRY_KEY_MAX);

	if (p == NULL)
		return NULL;
	p->q = q;
	p->n = n;
	for (size_t i = 0; i < n; i++)
		snprintf(p->stream[i], ENTRY_KEY_MAX, "%s", streams[i]);
	return p;
}

/* Write buffered entries into Redis, a bounded number at a time, oldest first. */
static void drain_buffer(struct queue *q)
{
	struct buffer_item *it;

	while (rc_ready(q) && q->buf_sending < DRAIN_IN_FLIGHT && (it = buffer_take(q->buf)) != NULL) {
		const char *stream = buffer_item_stream(it);
		struct put_ctx *p;

		/* Cluster: an entry of a slot whose master is away stays taken, the others go on; once
		 * nothing is in flight, the tick hands everything out again. */
		if (q->cl != NULL && !rcluster_key_ready(q->cl, stream, strlen(stream)))
			continue;
		if ((p = new_put(q, &stream, 1)) != NULL)
			p->from_buffer = it;
		if (p == NULL || send_put(q, buffer_item_entry(it), p) != QUEUE_SENT) {
			free(p);
			if (q->cl != NULL)
				continue;
			buffer_rewind(q->buf);  /* the tick tries again */
			return;
		}
		q->buf_sending++;
	}
}

/* Cluster: buffered copies per slot. A put goes to the buffer only while its slot has some (or
 * its master is away), so one master's outage holds back only its own routes. */
static void slot_count(struct queue *q, const char *stream, int delta)
{
	if (q->slot_buffered != NULL)
		q->slot_buffered[slot_of(stream, strlen(stream))] += (unsigned)delta;
}

static bool must_buffer(const struct queue *q, const char *stream)
{
	if (q->cl == NULL)
		return !rc_ready(q) || buffer_count(q->buf) > 0;
	return !rc_ready(q) || !rcluster_key_ready(q->cl, stream, strlen(stream)) ||
	       q->slot_buffered[slot_of(stream, strlen(stream))] > 0;
}

static enum queue_put buffer_it(struct queue *q, const char *const *streams, size_t n, const struct entry *e)
{
	if (buffer_push_each(q->buf, streams, n, e, false, clock_epoch_ms()) != BUFFER_OK)
		return QUEUE_PUT_REFUSED;
	for (size_t i = 0; i < n; i++)
		slot_count(q, streams[i], 1);
	drain_buffer(q);
	return QUEUE_PUT_BUFFERED;
}

enum queue_put queue_put(struct queue *q, const char *const *streams, size_t n, const struct entry *e,
			 queue_done_cb cb, void *arg)
{
	struct put_ctx *p;

	if (n == 0 || n > QUEUE_STREAMS_MAX)
		return QUEUE_PUT_REFUSED;
	/* Buffered entries go first: while any wait (with a cluster: any of its slot), new ones
	 * queue behind them. */
	if (must_buffer(q, streams[0]))
		return buffer_it(q, streams, n, e);
	if ((p = new_put(q, streams, n)) == NULL)
		return QUEUE_PUT_REFUSED;
	p->cb = cb;
	p->arg = arg;
	if (send_put(q, e, p) != QUEUE_SENT) {
		free(p);
		return buffer_it(q, streams, n, e);
	}
	q->writes++;
	return QUEUE_PUT_SENT;
}

int queue_writes_in_flight(const struct queue *q)
{
	return q->writes;
}

size_t queue_buffered(const struct queue *q, size_t *bytes)
{
	if (bytes != NULL)
		*bytes = buffer_bytes(q->buf);
	return buffer_count(q->buf);
}

/* ---- spool: the buffer survives a stop while Redis is away ---- */

static bool next_buffered(void *arg, const char **stream, const struct entry **e)
{
	void **cursor = arg;
	struct queue *q = cursor[0];
	struct buffer_item *it = buffer_next(q->buf, cursor[1]);

	if (it == NULL)
		return false;
	cursor[1] = it;
	*stream = buffer_item_stream(it);
	*e = buffer_item_entry(it);
	return true;
}

static enum spool_result save_buffer(struct queue *q, const char *path)
{
	void *cursor[2] = { q, NULL };

	return spool_save(path, next_buffered, cursor, clock_epoch_ms());
}

static int take_back(void *arg, const char *stream, const struct entry *e)
{
	struct queue *q = arg;

	/* Already accepted: the buffer limit does not apply. */
	if (buffer_push(q->buf, stream, e, true, clock_epoch_ms()) != BUFFER_OK)
		return -1;
	slot_count(q, stream, 1);
	return 0;
}

static const char *spool_why(enum spool_result r)
{
	return r == SPOOL_NOT_SPOOL ? "is not a sentryq spool file; left in place" : "cannot be read; left in place";
}

/*
 * At start: take back what the last stop spooled (and what a crash left while draining an earlier
 * spool). The entries are written at once to "<spool>.loaded", removed only when all of them are
 * in Redis, so a crash before that loses nothing (it can duplicate).
 */
static void load_spool(struct queue *q)
{
	const char *path = q->cfg->redis_spool_file;
	char loaded[SPOOL_PATH_MAX], aside[SPOOL_PATH_MAX];
	enum spool_result r1, r2;

	if (path == NULL || spool_loaded_path(path, loaded, sizeof(loaded)) != 0 ||
	    spool_damaged_path(path, aside, sizeof(aside)) != 0)
		return;
	if ((r1 = spool_load(loaded, take_back, q)) != SPOOL_OK && r1 != SPOOL_ABSENT && r1 != SPOOL_DAMAGED)
		log_error("queue: %s %s", loaded, spool_why(r1));
	if ((r2 = spool_load(path, take_back, q)) != SPOOL_OK && r2 != SPOOL_ABSENT && r2 != SPOOL_DAMAGED)
		log_error("queue: %s %s", path, spool_why(r2));
	if (buffer_count(q->buf) == 0)
		return;
	if (save_buffer(q, loaded) != SPOOL_OK) {
		log_error("queue: cannot write %s; %s is kept and will be read again", loaded, path);
		return;
	}
	q->spool_loaded = true;
	if (r2 == SPOOL_DAMAGED) {
		/* Keep the unreadable rest for a human, but never load the good part twice. */
		log_error("queue: %s is damaged part-way; what could be read is taken back, the file is kept as %s",
			  path, aside);
		if (rename(path, aside) != 0)
			unlink(path);
	} else if (r2 == SPOOL_OK) {
		unlink(path);
	}
	log_info("queue: %zu entries taken back from the spool; they go to Redis as soon as it answers",
		 buffer_count(q->buf));
}

static void spool_at_exit(struct queue *q)
{
	const char *path = q->cfg->redis_spool_file;
	size_t n = buffer_count(q->buf);
	char loaded[SPOOL_PATH_MAX];

	if (n == 0)
		return;
	if (path != NULL && save_buffer(q, path) == SPOOL_OK) {
		log_warn("queue: Redis is still away: %zu buffered entries written to %s for the next start", n, path);
		/* "<spool>.loaded" holds a subset of what was just written. */
		if (q->spool_loaded && spool_loaded_path(path, loaded, sizeof(loaded)) == 0)
			unlink(loaded);
	} else {
		log_error("queue: %zu buffered entries (%zu bytes) never reached Redis and are lost%s", n,
			  buffer_bytes(q->buf), path != NULL ? " (the spool file could not be written)" : "");
	}
}

/* ---- life cycle ---- */

bool queue_cluster(const struct queue *q)
{
	return q->cfg->redis_cluster.n > 0;
}

int queue_stream(const struct queue *q, const char *upstream, const char *project, char *buf, size_t len)
{
	if (queue_cluster(q))
		return entry_cluster_stream_key(q->cfg->redis_prefix, upstream, project, buf, len);
	return entry_stream_key(q->cfg->redis_prefix, upstream, project, buf, len);
}

int queue_mirror_stream(const struct queue *q, const char *src_upstream, const char *src_project, const char *upstream,
			const char *project, char *buf, size_t len)
{
	if (queue_cluster(q))
		return entry_cluster_mirror_key(q->cfg->redis_prefix, src_upstream, src_project, upstream, project, buf, len);
	return entry_stream_key(q->cfg->redis_prefix, upstream, project, buf, len);
}

/* The streams being built (a new set: a start or a reload). */
struct stream_set {
	struct queue *q;
	struct stream_gauge **v;
	size_t n, cap;
	size_t added;                 /* names the queue did not have before */
};

static struct stream_gauge *gauge_of(const struct queue *q, const char *name)
{
	for (size_t i = 0; i < q->nstreams; i++)
		if (strcmp(q->gauges[i]->name, name) == 0)
			return q->gauges[i];
	return NULL;
}

/* One more stream (a name already in the set is skipped: standalone mirror copies share their
 * destination's stream); a stream the queue already had keeps its gauge. -1 on allocation failure. */
static int add_stream(struct stream_set *ss, const char *name)
{
	struct stream_gauge *g;

	for (size_t i = 0; i < ss->n; i++)
		if (strcmp(ss->v[i]->name, name) == 0)
			return 0;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 16;
		void *p = realloc(ss->v, cap * sizeof(*ss->v));

		if (p == NULL)
			return -1;
		ss->v = p;
		ss->cap = cap;
	}
	if ((g = gauge_of(ss->q, name)) == NULL) {
		if ((g = calloc(1, sizeof(*g))) == NULL || (g->name = strdup(name)) == NULL ||
		    (g->named = calloc(GROUP_NAMED_MAX, sizeof(struct group_member))) == NULL) {
			if (g != NULL)
				free(g->name);
			free(g);
			return -1;
		}
		g->q = ss->q;
		g->consumers = -1;
		g->fresh = true;
		ss->added++;
	}
	ss->v[ss->n++] = g;
	return 0;
}

/* A route's mirror copies' streams (with a cluster, in its own slot; else its destinations'). */
static int add_mirrors(struct stream_set *ss, const struct config_upstream *up, const struct config_project *pr)
{
	char name[ENTRY_KEY_MAX];

	for (size_t m = 0; m < pr->nmirrors; m++)
		if (queue_mirror_stream(ss->q, up->name, pr->name, pr->mirrors[m].up->name, pr->mirrors[m].pr->name, name,
					sizeof(name)) != 0 || add_stream(ss, name) != 0)
			return -1;
	return 0;
}

static int set_of(struct stream_set *ss, const struct config *cfg)
{
	char name[ENTRY_KEY_MAX];

	/* The routes first, in configuration order (what queue_stream_gauges indexes), then mirrors,
	 * then the streams of routes a reload removed (read until empty, then forgotten). */
	for (size_t i = 0; i < cfg->nupstreams; i++)
		for (size_t j = 0; j < cfg->upstreams[i].nprojects; j++)
			if (queue_stream(ss->q, cfg->upstreams[i].name, cfg->upstreams[i].projects[j].name, name,
					 sizeof(name)) != 0 || add_stream(ss, name) != 0)
				return -1;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		for (size_t j = 0; j < cfg->upstreams[i].nprojects; j++)
			if (add_mirrors(ss, &cfg->upstreams[i], &cfg->upstreams[i].projects[j]) != 0)
				return -1;
	for (size_t i = 0; i < ss->q->nstreams; i++)
		if (add_stream(ss, ss->q->gauges[i]->name) != 0)
			return -1;
	return 0;
}

/* With a cluster, the byte counters: one per hash tag of a stream (a mirror stream's is its
 * source route's, which is a route of its own). */
static int build_tags(struct queue *q)
{
	char name[ENTRY_KEY_MAX];

	for (size_t i = 0; i < q->ntags; i++)
		free(q->tags[i]);
	q->ntags = 0;
	free(q->tags);
	if ((q->tags = calloc(q->nstreams ? q->nstreams : 1, sizeof(char *))) == NULL)
		return -1;
	for (size_t i = 0; queue_cluster(q) && i < q->nstreams; i++) {
		bool known = false;

		if (entry_cluster_sibling_key(q->gauges[i]->name, ENTRY_CLUSTER_BYTES, name, sizeof(name)) != 0)
			return -1;
		for (size_t t = 0; t < q->ntags && !known; t++)
			known = strcmp(q->tags[t], name) == 0;
		if (!known && (q->tags[q->ntags++] = strdup(name)) == NULL)
			return -1;
	}
	return 0;
}

static void drop_set(struct stream_set *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		if (gauge_of(ss->q, ss->v[i]->name) != ss->v[i])
			gauge_free(ss->v[i]);
	free(ss->v);
}

/* The queue's streams become those of cfg plus the ones it had (a reload keeps removed routes'
 * streams until queue_forget_stream). -1 on allocation failure (nothing changed). */
static int build_streams(struct queue *q, const struct config *cfg, size_t *added)
{
	struct stream_set ss = { q, NULL, 0, 0, 0 };

	if (set_of(&ss, cfg) != 0) {
		drop_set(&ss);
		return -1;
	}
	free(q->gauges);
	q->gauges = ss.v;
	q->nstreams = ss.n;
	*added = ss.added;
	return build_tags(q);
}

/* A stream added by a reload: its consumer group first, before any put or read of it. */
static void new_group_reply(void *arg, redisReply *rep)
{
	(void)arg;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0)
		log_warn("redis: creating a consumer group failed: %s; created again at the next connection", rep->str);
}

enum queue_reconfigure queue_reconfigure(struct queue *q, const struct config *cfg)
{
	size_t added;

	if (build_streams(q, cfg, &added) != 0)
		return QUEUE_RECONFIGURE_NOMEM;
	if (added == 0)
		return QUEUE_RECONFIGURED;
	if (q->cl != NULL) {
		for (size_t i = 0; i < q->nstreams; i++)
			q->gauges[i]->fresh = false;  /* every group is made again */
		/* As at start: every group (BUSYGROUP is fine), the queue not ready until they exist;
		 * puts meanwhile go to the buffer, and the forwarder rescans when it is ready again. */
		q->groups_ok = false;
		if (q->groups_left > 0)
			q->groups_failed = true;  /* a round in flight lacks the new ones: the tick starts another */
		create_groups(q);
		return QUEUE_RECONFIGURED;
	}
	/* One connection: the XGROUP goes before any later XADD or XREADGROUP; a reconnect's
	 * handshake creates every group again. */
	q->regroup = q->regroup || !redisconn_ready(q->rc);
	for (size_t i = 0; i < q->nstreams; i++) {
		if (q->gauges[i]->fresh && redisconn_ready(q->rc))
			sendf(q, new_group_reply, q, 6, "XGROUP", "CREATE", q->gauges[i]->name, ENTRY_GROUP, "0", "MKSTREAM");
		q->gauges[i]->fresh = false;
	}
	return QUEUE_RECONFIGURED;
}

void queue_forget_stream(struct queue *q, const char *stream)
{
	for (size_t i = 0; i < q->nstreams; i++) {
		struct stream_gauge *g = q->gauges[i];

		if (strcmp(g->name, stream) != 0)
			continue;
		memmove(q->gauges + i, q->gauges + i + 1, (q->nstreams - i - 1) * sizeof(*q->gauges));
		q->nstreams--;
		g->gone = true;
		if (g->replies == 0)
			gauge_free(g);
		build_tags(q);
		return;
	}
}

bool queue_stream_len(const struct queue *q, const char *stream, long long *entries, double *counted_at)
{
	const struct stream_gauge *g = gauge_of(q, stream);

	if (g == NULL)
		return false;
	*entries = g->entries;
	*counted_at = g->counted_at;
	return true;
}

static void set_consumer(struct queue *q)
{
	char host[256] = "";

	if (q->cfg->forward_consumer != NULL) {
		snprintf(q->consumer, sizeof(q->consumer), "%s", q->cfg->forward_consumer);
		return;
	}
	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	config_default_consumer(q->cfg, host, (long)getpid(), q->consumer, sizeof(q->consumer));
}

struct queue *queue_new(struct event_base *base, const struct config *cfg, const struct queue_hooks *hooks)
{
	struct queue *q = calloc(1, sizeof(*q));
	struct timeval tick = clock_timeval(TICK_PERIOD);
	struct redisconn_params rp;
	struct redisconn_hooks rh = { on_handshake, on_ready, on_lost, NULL };
	struct rcluster_hooks ch = { cluster_ready, cluster_node_lost, NULL };
	size_t added;

	if (q == NULL)
		return NULL;
	q->cfg = cfg;
	if (hooks != NULL)
		q->hooks = *hooks;
	rh.arg = ch.arg = q;
	redisconn_params_of(cfg, &rp);
	rp.follow_failover = true;
	set_consumer(q);
	if (entry_bytes_key(cfg->redis_prefix, q->bytes_key, sizeof(q->bytes_key)) != 0 ||
	    entry_dead_key(cfg->redis_prefix, q->dead_key, sizeof(q->dead_key)) != 0 || build_streams(q, cfg, &added) != 0 ||
	    (q->buf = buffer_new(cfg->redis_buffer_bytes)) == NULL)
		goto fail;
	for (size_t i = 0; i < q->nstreams; i++)
		q->gauges[i]->fresh = false;  /* made by the handshake (or the cluster's first round) */
	if (queue_cluster(q) && (q->slot_buffered = calloc(SLOT_COUNT, sizeof(*q->slot_buffered))) == NULL)
		goto fail;
	q->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, q);
	q->wait_ev = event_new(base, -1, 0, wait_cb, q);
	q->cap_carry = DRAIN_IN_FLIGHT;  /* only drained entries are carried, at most that many in flight */
	q->carry = calloc(q->cap_carry, sizeof(*q->carry));
	if (q->tick_ev == NULL || q->wait_ev == NULL || q->carry == NULL)
		goto fail;
	evtimer_add(q->tick_ev, &tick);
	load_spool(q);
	if (queue_cluster(q) ? (q->cl = rcluster_new(base, &rp, &ch)) == NULL : (q->rc = redisconn_new(base, &rp, &rh)) == NULL)
		goto fail;
	return q;
fail:
	queue_free(q);
	return NULL;
}

void queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	/* First: callbacks of commands in flight still reach a live queue (and its callers). */
	rcluster_free(q->cl);
	q->cl = NULL;
	redisconn_free(q->rc);
	q->rc = NULL;
	wait_abandon(q);  /* what waited for a WAIT goes back to the buffer, then to the spool */
	if (q->tick_ev != NULL)
		event_free(q->tick_ev);
	if (q->wait_ev != NULL)
		event_free(q->wait_ev);
	free(q->carry);
	for (size_t i = 0; i < q->nwaiters; i++)
		free(q->waiters[i]);
	free(q->waiters);
	if (q->buf != NULL)
		spool_at_exit(q);
	q->spool_loaded = false;  /* freeing the buffer below is not delivering it */
	buffer_free(q->buf);
	for (size_t i = 0; i < q->nstreams; i++)
		gauge_free(q->gauges[i]);
	for (size_t i = 0; i < q->ntags; i++)
		free(q->tags[i]);
	free(q->tags);
	free(q->slot_buffered);
	free(q->gauges);
	free(q);
}

bool queue_ready(const struct queue *q)
{
	return rc_ready(q);
}

const char *queue_redis_address(const struct queue *q, char *buf, size_t len)
{
	if (q->cl != NULL)
		return rcluster_address(q->cl, buf, len);
	return redisconn_address(q->rc, buf, len);
}

const char *queue_redis_sentinel(const struct queue *q, char *buf, size_t len)
{
	if (q->cl != NULL) {
		snprintf(buf, len, "%s", "");
		return buf;
	}
	return redisconn_sentinel(q->rc, buf, len);
}

bool queue_cluster_counters(const struct queue *q, struct rcluster_counters *out)
{
	if (q->cl == NULL)
		return false;
	rcluster_counters(q->cl, out);
	return true;
}

const char *queue_consumer(const struct queue *q)
{
	return q->consumer;
}

/* ---- read ---- */

struct delivery {
	char id[ENTRY_ID_MAX];
	long long count;
};

struct read_ctx {
	queue_read_cb cb;
	queue_skip_cb skip;
	void *arg;
	struct queue *q;
	char stream[ENTRY_KEY_MAX];
	struct delivery *pending;       /* the XPENDING rows of a pending-list scan */
	size_t npending;
	size_t scanned;                 /* rows the scan covered (the caller's cursor moves past them) */
	char last[ENTRY_ID_MAX];
};

/* Deliveries before this one of `id` (0 for an entry read for the first time). */
static long long deliveries_of(const struct read_ctx *rc, const char *id)
{
	for (size_t i = 0; i < rc->npending; i++)
		if (strcmp(rc->pending[i].id, id) == 0)
			return rc->pending[i].count;
	return 0;
}

/* Fill e from one [id, [k, v, ...]] element; the strings stay in the reply. */
static void decode_entry(const redisReply *el, const struct read_ctx *rc, struct queue_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (el->type != REDIS_REPLY_ARRAY || el->elements < 2 || el->element[0]->type != REDIS_REPLY_STRING) {
		e->deleted = true;
		return;
	}
	snprintf(e->id, sizeof(e->id), "%s", el->element[0]->str);
	e->deliveries = deliveries_of(rc, e->id);
	/* XCLAIM answers a deleted entry with a nil body; anything unreadable is damaged, not gone. */
	if (el->element[1]->type != REDIS_REPLY_ARRAY || el->element[1]->elements < 2) {
		e->deleted = true;
		return;
	}
	e->damaged = entry_from_reply(&e->item, el->element[1]) != ENTRY_OK;
}

static void finish_read(struct read_ctx *rc, enum queue_done r, const struct queue_entry *e, size_t n)
{
	/* A failed read covered nothing: the caller's cursor must not skip unclaimed entries. */
	rc->cb(rc->arg, r, e, n, r == QUEUE_DONE_OK ? rc->scanned : 0, rc->last);
	free(rc->pending);
	free(rc);
}

/* A list of [id, [k, v, ...]] (XREADGROUP's per-stream list, or XCLAIM's answer). */
static void deliver_list(struct read_ctx *rc, const redisReply *list, bool count_scanned)
{
	struct queue_entry *entries = NULL;
	size_t n = 0;

	if (list != NULL && list->type == REDIS_REPLY_ARRAY && list->elements > 0) {
		entries = calloc(list->elements, sizeof(*entries));
		if (entries == NULL) {
			finish_read(rc, QUEUE_DONE_ERROR, NULL, 0);
			return;
		}
		for (n = 0; n < list->elements; n++)
			decode_entry(list->element[n], rc, &entries[n]);
		if (count_scanned) {
			rc->scanned = n;
			snprintf(rc->last, sizeof(rc->last), "%s", entries[n - 1].id);
		}
	}
	finish_read(rc, QUEUE_DONE_OK, entries, n);
	free(entries);
}

/* A failed read. The stream or group vanished (FLUSHALL, manual cleanup): create it again. The
 * error text names the stream, which holds a project name: only its code is logged. */
static void read_failed(struct read_ctx *rc, const redisReply *rep)
{
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOGROUP", 7) == 0) {
		log_warn("redis: a stream or its consumer group is gone; creating it again");
		sendf(rc->q, NULL, NULL, 6, "XGROUP", "CREATE", rc->stream, ENTRY_GROUP, "0", "MKSTREAM");
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_warn("redis: reading a stream failed: %.*s", (int)strcspn(rep->str, " "), rep->str);
	}
	finish_read(rc, rep == NULL ? QUEUE_DONE_LOST : QUEUE_DONE_ERROR, NULL, 0);
}

static void read_reply(void *arg, redisReply *rep)
{
	struct read_ctx *rc = arg;

	if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
		read_failed(rc, rep);
		return;
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 2)
		deliver_list(rc, rep->element[0]->element[1], true);
	else
		finish_read(rc, QUEUE_DONE_OK, NULL, 0);
}

static void xclaim_reply(void *arg, redisReply *rep)
{
	struct read_ctx *rc = arg;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		read_failed(rc, rep);
		return;
	}
	deliver_list(rc, rep, false);
}

/* XCLAIM (min idle 0, to this same consumer) of the ids the caller still wants: it returns them
 * and counts a delivery only for those, unlike a pending-list XREADGROUP. */
static enum queue_send send_claim_ids(struct read_ctx *rc, const char **ids, size_t n)
{
	const char **argv = malloc((n + 5) * sizeof(char *));
	enum queue_send r = QUEUE_UNAVAILABLE;
	int argc = 0;

	if (argv != NULL) {
		argv[argc++] = "XCLAIM";
		argv[argc++] = rc->stream;
		argv[argc++] = ENTRY_GROUP;
		argv[argc++] = rc->q->consumer;
		argv[argc++] = "0";
		for (size_t i = 0; i < n; i++)
			argv[argc++] = ids[i];
		r = sendv(rc->q, xclaim_reply, rc, argc, argv, NULL);
	}
	free(argv);
	return r;
}

/* One [id, consumer, idle, count] row into rc; true when the caller wants it claimed. */
static bool pending_row(struct read_ctx *rc, const redisReply *row)
{
	struct delivery *d = &rc->pending[rc->npending];

	if (row->type != REDIS_REPLY_ARRAY || row->elements < 4 || row->element[0]->type != REDIS_REPLY_STRING ||
	    row->element[2]->type != REDIS_REPLY_INTEGER || row->element[3]->type != REDIS_REPLY_INTEGER)
		return false;
	snprintf(d->id, sizeof(d->id), "%s", row->element[0]->str);
	d->count = row->element[3]->integer;
	snprintf(rc->last, sizeof(rc->last), "%s", d->id);
	rc->npending++;
	return !rc->skip(rc->arg, d->id, row->element[2]->integer);
}

/* [[id, consumer, idle, count], ...]: copied (hiredis frees the reply), then the wanted ids claimed. */
static void pending_reply(void *arg, redisReply *rep)
{
	struct read_ctx *rc = arg;
	const char **want;
	size_t nwant = 0;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		read_failed(rc, rep);
		return;
	}
	rc->pending = calloc(rep->elements + 1, sizeof(*rc->pending));
	want = calloc(rep->elements + 1, sizeof(*want));
	for (size_t i = 0; rc->pending != NULL && want != NULL && i < rep->elements; i++)
		if (pending_row(rc, rep->element[i]))
			want[nwant++] = rc->pending[rc->npending - 1].id;
	rc->scanned = rep->elements;
	if (rc->pending == NULL || want == NULL)
		finish_read(rc, QUEUE_DONE_ERROR, NULL, 0);
	else if (nwant == 0)
		finish_read(rc, QUEUE_DONE_OK, NULL, 0);
	else if (send_claim_ids(rc, want, nwant) != QUEUE_SENT)
		finish_read(rc, QUEUE_DONE_LOST, NULL, 0);
	free(want);
}

enum queue_send queue_read(struct queue *q, const char *stream, const char *from, int count, queue_skip_cb skip,
			   queue_read_cb cb, void *arg)
{
	struct read_ctx *rc;
	char cnt[16], start[ENTRY_ID_MAX + 2];
	enum queue_send sent;

	if (!rc_ready(q) || (rc = calloc(1, sizeof(*rc))) == NULL)
		return QUEUE_UNAVAILABLE;
	rc->cb = cb;
	rc->skip = skip;
	rc->arg = arg;
	rc->q = q;
	snprintf(rc->stream, sizeof(rc->stream), "%s", stream);
	snprintf(cnt, sizeof(cnt), "%d", count);
	if (strcmp(from, ">") == 0) {
		sent = sendf(q, read_reply, rc, 9, "XREADGROUP", "GROUP", ENTRY_GROUP, q->consumer, "COUNT", cnt,
			     "STREAMS", stream, ">");
	} else {
		/* This consumer's pending entries after `from`, with how often each was delivered. */
		if (strcmp(from, "0") == 0)
			snprintf(start, sizeof(start), "-");
		else
			snprintf(start, sizeof(start), "(%s", from);
		sent = sendf(q, pending_reply, rc, 7, "XPENDING", stream, ENTRY_GROUP, start, "+", cnt, q->consumer);
	}
	if (sent != QUEUE_SENT)
		free(rc);
	return sent;
}

/* ---- ack and dead letters ---- */

struct done_ctx {
	queue_done_cb cb;
	void *arg;
};

/* Ack, delete and uncount in one script: one command, so a failure half-way cannot leave the
 * connection inside a MULTI, and a crash never leaves an acked entry in the stream. */
static const char ack_script[] =
	"local n = 0\n"
	"for i = 2, #ARGV, 3 do\n"
	"  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])\n"
	/* A large body goes with its entry. */
	"  if ARGV[i + 2] == '1' then\n"
	"    local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])\n"
	"    if #e == 1 then\n"
	"      local f = e[1][2]\n"
	"      for j = 1, #f, 2 do if f[j] == '" ENTRY_FIELD_BODY_KEY "' then redis.call('DEL', f[j + 1]) end end\n"
	"    end\n"
	"  end\n"
	/* Only what this call deleted is uncounted: a resent or concurrent ack must not count twice. */
	"  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then n = n + tonumber(ARGV[i + 1]) end\n"
	"end\n"
	"if n > 0 then redis.call('DECRBY', KEYS[2], n) end\n"
	"return 1\n";

static void ack_reply(void *arg, redisReply *rep)
{
	struct done_ctx *d = arg;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_error("redis: ack script failed: %s", rep->str);
	if (d->cb != NULL)
		d->cb(d->arg, done_of(rep, REDIS_REPLY_INTEGER));
	free(d);
}

static struct done_ctx *new_done(queue_done_cb cb, void *arg)
{
	struct done_ctx *d = malloc(sizeof(*d));

	if (d != NULL) {
		d->cb = cb;
		d->arg = arg;
	}
	return d;
}

enum queue_send queue_ack(struct queue *q, const char *stream, const struct queue_ack_item *items, size_t n,
			  queue_done_cb cb, void *arg)
{
	const char **argv = malloc((3 * n + 6) * sizeof(char *));
	char (*len)[24] = malloc((n ? n : 1) * sizeof(*len));
	struct done_ctx *d = new_done(cb, arg);
	enum queue_send r = QUEUE_UNAVAILABLE;
	char bk[ENTRY_KEY_MAX];
	size_t bytes = 0;
	int argc = 0;

	if (!rc_ready(q) || argv == NULL || len == NULL || d == NULL || n == 0 || n > QUEUE_ACK_MAX)
		goto out;
	argv[argc++] = "EVAL";
	argv[argc++] = ack_script;
	argv[argc++] = "2";
	argv[argc++] = stream;
	argv[argc++] = bytes_key_of(q, stream, bk, sizeof(bk));
	argv[argc++] = ENTRY_GROUP;
	for (size_t i = 0; i < n; i++) {
		snprintf(len[i], sizeof(len[i]), "%zu", items[i].body_len);
		bytes += items[i].body_len;
		argv[argc++] = items[i].id;
		argv[argc++] = len[i];
		argv[argc++] = items[i].body_key ? "1" : "0";
	}
	if ((r = sendv(q, ack_reply, d, argc, argv, NULL)) == QUEUE_SENT) {
		d = NULL;
		move_counts(q, -(long long)n, -(long long)bytes);
	}
out:
	free(argv);
	free(len);
	free(d);
	return r;
}

/*
 * Move one entry to the dead-letter stream, server-side and atomically: its fields are copied
 * with the reason appended, then it is acked and deleted. A missing entry is just acked.
 */
static const char dead_script[] =
	"local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])\n"
	"if #e == 0 then redis.call('XACK', KEYS[1], ARGV[2], ARGV[1]) return 0 end\n"
	"local f = e[1][2]\n"
	"for i = 1, #f, 2 do\n"
	"  if f[i] == 'b' then redis.call('DECRBY', KEYS[3], string.len(f[i + 1])) end\n"
	"  if f[i] == 'bl' then redis.call('DECRBY', KEYS[3], tonumber(f[i + 1])) end\n"
	"end\n"
	"for i = 3, #ARGV do f[#f + 1] = ARGV[i] end\n"
	"redis.call('XADD', KEYS[2], '*', unpack(f))\n"
	"redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])\n"
	"redis.call('XDEL', KEYS[1], ARGV[1])\n"
	"return 1\n";

static void dead_reply(void *arg, redisReply *rep)
{
	struct done_ctx *d = arg;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_error("redis: dead-letter script failed: %s", rep->str);
	if (d->cb != NULL)
		d->cb(d->arg, done_of(rep, REDIS_REPLY_INTEGER));
	free(d);
}

enum queue_send queue_dead(struct queue *q, const struct entry_dead *info, queue_done_cb cb, void *arg)
{
	const char *argv[8 + 2 * ENTRY_FIELDS_MAX];
	struct entry_dead_fields f;
	struct done_ctx *d;
	char bk[ENTRY_KEY_MAX], dk[ENTRY_KEY_MAX];
	int argc = 0;

	if (!rc_ready(q) || (d = new_done(cb, arg)) == NULL)
		return QUEUE_UNAVAILABLE;
	entry_dead_fields(info, &f);
	argv[argc++] = "EVAL";
	argv[argc++] = dead_script;
	argv[argc++] = "3";
	argv[argc++] = info->stream;
	argv[argc++] = dead_key_of(q, info->stream, dk, sizeof(dk));
	argv[argc++] = bytes_key_of(q, info->stream, bk, sizeof(bk));
	argv[argc++] = info->id;
	argv[argc++] = ENTRY_GROUP;
	for (size_t i = 0; i < f.n; i++) {
		argv[argc++] = f.name[i];
		argv[argc++] = f.val[i];
	}
	if (sendv(q, dead_reply, d, argc, argv, NULL) != QUEUE_SENT) {
		free(d);
		return QUEUE_UNAVAILABLE;
	}
	move_counts(q, -1, 0);
	return QUEUE_SENT;
}

/* ---- orphans ---- */

struct claim_ctx {
	struct queue *q;
	queue_claim_cb cb;
	void *arg;
	char stream[ENTRY_KEY_MAX];
	int rounds;
	size_t claimed;
};

static enum queue_send send_autoclaim(struct claim_ctx *c, const char *cursor);

static void claim_reply(void *arg, redisReply *rep)
{
	struct claim_ctx *c = arg;
	size_t claimed = 0;

	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
		c->cb(c->arg, rep == NULL ? QUEUE_DONE_LOST : QUEUE_DONE_ERROR, c->claimed);
		free(c);
		return;
	}
	if (rep->element[1]->type == REDIS_REPLY_ARRAY)
		claimed = rep->element[1]->elements;
	if (claimed > 0)
		log_info("queue: took over %zu entries left pending by another consumer", claimed);
	c->claimed += claimed;
	/* Follow the cursor, but bounded: the rest is picked up on the next round. */
	if (rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "0-0") != 0 &&
	    ++c->rounds < CLAIM_ROUNDS && send_autoclaim(c, rep->element[0]->str) == QUEUE_SENT)
		return;
	c->cb(c->arg, QUEUE_DONE_OK, c->claimed);
	free(c);
}

static enum queue_send send_autoclaim(struct claim_ctx *c, const char *cursor)
{
	char idle[32];

	snprintf(idle, sizeof(idle), "%lld", (long long)(c->q->cfg->forward_claim_idle * 1000));
	return sendf(c->q, claim_reply, c, 9, "XAUTOCLAIM", c->stream, ENTRY_GROUP, c->q->consumer, idle, cursor,
		     "COUNT", "100", "JUSTID");
}

enum queue_send queue_claim_orphans(struct queue *q, const char *stream, queue_claim_cb cb, void *arg)
{
	struct claim_ctx *c;

	if (!rc_ready(q) || (c = calloc(1, sizeof(*c))) == NULL)
		return QUEUE_UNAVAILABLE;
	c->q = q;
	c->cb = cb;
	c->arg = arg;
	snprintf(c->stream, sizeof(c->stream), "%s", stream);
	if (send_autoclaim(c, "0-0") != QUEUE_SENT) {
		free(c);
		return QUEUE_UNAVAILABLE;
	}
	return QUEUE_SENT;
}

void queue_set_deliveries(struct queue *q, const char *stream, const char *id, long long count, long long idle_ms)
{
	char n[24], idle[24];

	snprintf(n, sizeof(n), "%lld", count);
	snprintf(idle, sizeof(idle), "%lld", idle_ms > 0 ? idle_ms : 0);
	sendf(q, NULL, NULL, 11, "XCLAIM", stream, ENTRY_GROUP, q->consumer, "0", id, "IDLE", idle, "RETRYCOUNT", n,
	      "JUSTID");
}

/* ---- large bodies, read back in chunks ---- */

struct queue_fetch {
	struct queue *q;
	char key[ENTRY_KEY_MAX];
	char *data;
	size_t len, asked, got;
	int chunks;                     /* GETRANGEs awaiting a reply */
	enum queue_done failed;
	bool cancelled;
	queue_fetch_cb cb;
	void *arg;
};

static void fetch_end(struct queue_fetch *f, enum queue_done r)
{
	if (!f->cancelled)
		f->cb(f->arg, r, r == QUEUE_DONE_OK ? f->data : NULL, f->len);
	if (r != QUEUE_DONE_OK || f->cancelled)
		free(f->data);
	free(f);
}

static bool fetch_more(struct queue_fetch *f);

static void fetch_reply(void *arg, redisReply *rep)
{
	struct queue_fetch *f = arg;
	size_t want;
	long long at;

	f->chunks--;
	if (rep == NULL) {
		f->failed = QUEUE_DONE_LOST;
	} else if (f->failed == QUEUE_DONE_OK && !f->cancelled) {
		/* Replies come in order: this one starts where the ones before it ended. */
		at = (long long)f->got;
		want = f->len - f->got < QUEUE_CHUNK ? f->len - f->got : QUEUE_CHUNK;
		if (rep->type != REDIS_REPLY_STRING || (size_t)rep->len != want) {
			log_error("redis: large body %s is %s at byte %lld", f->key,
				  rep->type == REDIS_REPLY_ERROR ? rep->str : "missing or short", at);
			f->failed = QUEUE_DONE_ERROR;
		} else {
			memcpy(f->data + f->got, rep->str, want);
			f->got += want;
		}
	}
	if (f->chunks > 0)
		return;
	if (f->failed != QUEUE_DONE_OK || f->cancelled)
		fetch_end(f, f->cancelled ? QUEUE_DONE_LOST : f->failed);
	else if (f->got == f->len)
		fetch_end(f, QUEUE_DONE_OK);
	else if (!fetch_more(f))
		fetch_end(f, QUEUE_DONE_LOST);
}

/* A few GETRANGEs of QUEUE_CHUNK at a time. False when none could be sent. */
static bool fetch_more(struct queue_fetch *f)
{
	while (f->chunks < QUEUE_CHUNKS_IN_FLIGHT && f->asked < f->len) {
		size_t n = f->len - f->asked < QUEUE_CHUNK ? f->len - f->asked : QUEUE_CHUNK;
		char from[24], to[24];

		snprintf(from, sizeof(from), "%zu", f->asked);
		snprintf(to, sizeof(to), "%zu", f->asked + n - 1);
		if (sendf(f->q, fetch_reply, f, 4, "GETRANGE", f->key, from, to) != QUEUE_SENT)
			return f->chunks > 0;
		f->chunks++;
		f->asked += n;
	}
	return true;
}

struct queue_fetch *queue_fetch_body(struct queue *q, const char *key, size_t len, queue_fetch_cb cb, void *arg)
{
	struct queue_fetch *f;

	if (len == 0 || !rc_ready(q) || (f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	f->q = q;
	f->len = len;
	f->cb = cb;
	f->arg = arg;
	snprintf(f->key, sizeof(f->key), "%s", key);
	if ((f->data = malloc(len)) == NULL || !fetch_more(f)) {
		free(f->data);
		free(f);
		return NULL;
	}
	return f;
}

void queue_fetch_cancel(struct queue_fetch *f)
{
	if (f != NULL)
		f->cancelled = true;  /* freed when its last reply (or the connection's end) comes */
}
