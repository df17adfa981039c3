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
#include "redisconn.h"
#include "spool.h"

#define TICK_PERIOD 0.25
#define REFRESH_PERIOD 1.0
#define DRAIN_IN_FLIGHT 256    /* buffered entries written at a time */
#define CLAIM_ROUNDS 10        /* XAUTOCLAIM pages per orphan claim; the rest waits for the next */

struct queue {
	const struct config *cfg;
	struct redisconn *rc;
	struct queue_hooks hooks;
	struct event *tick_ev;          /* pending refresh and buffer retries */

	char **streams;                 /* every configured route's stream */
	size_t nstreams;
	long long pending;              /* cached sum of XLEN, plus local puts since */
	long long pending_acc;
	long long bytes;                /* cached bytes counter: body bytes queued (approximate) */
	size_t xlen_left;
	double last_refresh;
	char bytes_key[ENTRY_KEY_MAX];
	char dead_key[ENTRY_KEY_MAX];
	int writes;                     /* queue_put XADDs awaiting Redis */

	/* Entries accepted while Redis was away, drained in order once it is back. */
	struct buffer *buf;
	int buf_sending;                /* XADDs of buffered entries awaiting a reply */
	bool spool_loaded;              /* "<spool>.loaded" holds entries not yet all in Redis */

	char consumer[128];
};

static void drain_buffer(struct queue *q);

static enum queue_send sendv(struct queue *q, redisconn_reply_cb fn, void *arg, int argc, const char **argv,
			     const size_t *lens)
{
	return redisconn_send(q->rc, fn, arg, argc, argv, lens) == REDISCONN_SENT ? QUEUE_SENT : QUEUE_UNAVAILABLE;
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
		redisconn_setup(rc, 6, (const char *[]){ "XGROUP", "CREATE", q->streams[i], ENTRY_GROUP, "0", "MKSTREAM" },
				"BUSYGROUP");
}

static void on_ready(void *arg)
{
	struct queue *q = arg;

	log_info("redis: ready (%zu streams, consumer %s, %zu entries buffered)", q->nstreams, q->consumer,
		 buffer_count(q->buf));
	buffer_rewind(q->buf);
	drain_buffer(q);
	if (q->hooks.on_ready != NULL)
		q->hooks.on_ready(q->hooks.arg);
}

static void on_lost(void *arg)
{
	struct queue *q = arg;

	q->writes = 0;
	q->buf_sending = 0;
	q->xlen_left = 0;
}

/* ---- pending and bytes gauges ---- */

static void xlen_reply(void *arg, redisReply *rep)
{
	struct queue *q = arg;

	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		q->pending_acc += rep->integer;
	if (q->xlen_left > 0 && --q->xlen_left == 0)
		q->pending = q->pending_acc;
}

static void bytes_reply(void *arg, redisReply *rep)
{
	struct queue *q = arg;

	if (rep == NULL)
		return;
	/* The counter drifts when entries are removed by hand; a negative value means "none". */
	q->bytes = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : 0;
	if (q->bytes < 0)
		q->bytes = 0;
}

static void refresh_pending(struct queue *q)
{
	if (q->xlen_left != 0)
		return;
	q->pending_acc = 0;
	sendf(q, bytes_reply, q, 2, "GET", q->bytes_key);
	for (size_t i = 0; i < q->nstreams; i++)
		if (sendf(q, xlen_reply, q, 2, "XLEN", q->streams[i]) == QUEUE_SENT)
			q->xlen_left++;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	if (!redisconn_ready(q->rc) || now - q->last_refresh < REFRESH_PERIOD)
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

/* ---- put ---- */

struct put_ctx {
	struct queue *q;
	queue_done_cb cb;
	void *arg;
	struct buffer_item *from_buffer;   /* set when this XADD drains a buffered entry */
	size_t n;
	char stream[][ENTRY_KEY_MAX];      /* the streams written: one, or a request and its mirrors */
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

static void put_reply(void *arg, redisReply *rep)
{
	struct put_ctx *p = arg;
	struct queue *q = p->q;
	enum queue_done r = done_of(rep, REDIS_REPLY_STRING);

	if (r == QUEUE_DONE_ERROR)
		log_error("redis: XADD failed: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	if (p->from_buffer != NULL) {
		if (q->buf_sending > 0)
			q->buf_sending--;
		if (r == QUEUE_DONE_OK) {
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
	for (size_t i = 0; r == QUEUE_DONE_OK && i < p->n; i++)
		arrived(q, p->stream[i]);
	free(p);
}

/* Every copy of a mirrored request in one script: all are queued, or none. A script is not
 * rolled back when a command in it fails, so every key is checked before the first write (an
 * XADD to a key of another type would fail after the copies before it were written). */
static const char put_script[] =
	"for i = 2, #KEYS do\n"
	"  local t = redis.call('TYPE', KEYS[i]).ok\n"
	"  if t ~= 'none' and t ~= 'stream' then\n"
	"    return redis.error_reply('WRONGTYPE a destination key is not a stream; no copy queued')\n"
	"  end\n"
	"end\n"
	"local id\n"
	"for i = 2, #KEYS do id = redis.call('XADD', KEYS[i], '*', unpack(ARGV, 2)) end\n"
	"redis.call('INCRBY', KEYS[1], ARGV[1] * (#KEYS - 1))\n"
	"return id\n";

/* One stream: XADD with INCRBY pipelined behind it (the byte count queue.max_bytes is checked
 * against). Several: put_script, which takes the fields once and writes them to each. */
static enum queue_send send_xadd(struct queue *q, const struct entry *e, struct put_ctx *p)
{
	const char *argv[5 + QUEUE_STREAMS_MAX + 2 * ENTRY_FIELDS_MAX];
	size_t lens[5 + QUEUE_STREAMS_MAX + 2 * ENTRY_FIELDS_MAX];
	struct entry_fields f;
	char len[24], nkeys[8];
	int n = 0;

	entry_fields(e, clock_epoch_ms(), &f);
	snprintf(len, sizeof(len), "%zu", e->body_len);
	snprintf(nkeys, sizeof(nkeys), "%zu", p->n + 1);
	if (p->n == 1) {
		argv[n] = "XADD", lens[n++] = 4;
		argv[n] = p->stream[0], lens[n++] = strlen(p->stream[0]);
		argv[n] = "*", lens[n++] = 1;
	} else {
		argv[n] = "EVAL", lens[n++] = 4;
		argv[n] = put_script, lens[n++] = sizeof(put_script) - 1;
		argv[n] = nkeys, lens[n++] = strlen(nkeys);
		argv[n] = q->bytes_key, lens[n++] = strlen(q->bytes_key);
		for (size_t i = 0; i < p->n; i++)
			argv[n] = p->stream[i], lens[n++] = strlen(p->stream[i]);
		argv[n] = len, lens[n++] = strlen(len);
	}
	for (size_t i = 0; i < f.n; i++) {
		argv[n] = f.name[i], lens[n++] = strlen(f.name[i]);
		argv[n] = f.val[i], lens[n++] = f.len[i];
	}
	if (sendv(q, put_reply, p, n, argv, lens) != QUEUE_SENT)
		return QUEUE_UNAVAILABLE;
	if (p->n == 1)
		sendf(q, NULL, NULL, 3, "INCRBY", q->bytes_key, len);
	q->pending += (long long)p->n;
	q->bytes += (long long)(e->body_len * p->n);
	return QUEUE_SENT;
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

	while (redisconn_ready(q->rc) && q->buf_sending < DRAIN_IN_FLIGHT && (it = buffer_take(q->buf)) != NULL) {
		const char *stream = buffer_item_stream(it);
		struct put_ctx *p = new_put(q, &stream, 1);

		if (p != NULL)
			p->from_buffer = it;
		if (p == NULL || send_xadd(q, buffer_item_entry(it), p) != QUEUE_SENT) {
			free(p);
			buffer_rewind(q->buf);  /* the tick tries again */
			return;
		}
		q->buf_sending++;
	}
}

static enum queue_put buffer_it(struct queue *q, const char *const *streams, size_t n, const struct entry *e)
{
	if (buffer_push_each(q->buf, streams, n, e, false, clock_epoch_ms()) != BUFFER_OK)
		return QUEUE_PUT_REFUSED;
	drain_buffer(q);
	return QUEUE_PUT_BUFFERED;
}

enum queue_put queue_put(struct queue *q, const char *const *streams, size_t n, const struct entry *e,
			 queue_done_cb cb, void *arg)
{
	struct put_ctx *p;

	if (n == 0 || n > QUEUE_STREAMS_MAX)
		return QUEUE_PUT_REFUSED;
	/* Buffered entries go first: while any wait, new ones queue behind them. */
	if (!redisconn_ready(q->rc) || buffer_count(q->buf) > 0)
		return buffer_it(q, streams, n, e);
	if ((p = new_put(q, streams, n)) == NULL)
		return QUEUE_PUT_REFUSED;
	p->cb = cb;
	p->arg = arg;
	if (send_xadd(q, e, p) != QUEUE_SENT) {
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
	return buffer_push(q->buf, stream, e, true, clock_epoch_ms()) == BUFFER_OK ? 0 : -1;
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

int queue_stream(const struct queue *q, const char *upstream, const char *project, char *buf, size_t len)
{
	return entry_stream_key(q->cfg->redis_prefix, upstream, project, buf, len);
}

static int build_streams(struct queue *q)
{
	const struct config *cfg = q->cfg;
	char name[ENTRY_KEY_MAX];
	size_t n = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++)
		n += cfg->upstreams[i].nprojects;
	q->streams = calloc(n ? n : 1, sizeof(char *));
	if (q->streams == NULL)
		return -1;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct config_upstream *up = &cfg->upstreams[i];

		for (size_t j = 0; j < up->nprojects; j++) {
			if (queue_stream(q, up->name, up->projects[j].name, name, sizeof(name)) != 0 ||
			    (q->streams[q->nstreams] = strdup(name)) == NULL)
				return -1;
			q->nstreams++;
		}
	}
	return 0;
}

static void set_consumer(struct queue *q)
{
	if (q->cfg->forward_consumer != NULL)
		snprintf(q->consumer, sizeof(q->consumer), "%s", q->cfg->forward_consumer);
	else if (gethostname(q->consumer, sizeof(q->consumer) - 1) != 0)
		snprintf(q->consumer, sizeof(q->consumer), "sentryq");
}

struct queue *queue_new(struct event_base *base, const struct config *cfg, const struct queue_hooks *hooks)
{
	struct queue *q = calloc(1, sizeof(*q));
	struct timeval tick = clock_timeval(TICK_PERIOD);
	struct redisconn_params rp;
	struct redisconn_hooks rh = { on_handshake, on_ready, on_lost, NULL };

	if (q == NULL)
		return NULL;
	q->cfg = cfg;
	if (hooks != NULL)
		q->hooks = *hooks;
	rh.arg = q;
	redisconn_params_of(cfg, &rp);
	set_consumer(q);
	if (entry_bytes_key(cfg->redis_prefix, q->bytes_key, sizeof(q->bytes_key)) != 0 ||
	    entry_dead_key(cfg->redis_prefix, q->dead_key, sizeof(q->dead_key)) != 0 || build_streams(q) != 0 ||
	    (q->buf = buffer_new(cfg->redis_buffer_bytes)) == NULL)
		goto fail;
	q->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, q);
	if (q->tick_ev == NULL)
		goto fail;
	evtimer_add(q->tick_ev, &tick);
	load_spool(q);
	if ((q->rc = redisconn_new(base, &rp, &rh)) == NULL)
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
	redisconn_free(q->rc);
	if (q->tick_ev != NULL)
		event_free(q->tick_ev);
	if (q->buf != NULL)
		spool_at_exit(q);
	q->spool_loaded = false;  /* freeing the buffer below is not delivering it */
	buffer_free(q->buf);
	for (size_t i = 0; i < q->nstreams; i++)
		free(q->streams[i]);
	free(q->streams);
	free(q);
}

bool queue_ready(const struct queue *q)
{
	return redisconn_ready(q->rc);
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
	    row->element[3]->type != REDIS_REPLY_INTEGER)
		return false;
	snprintf(d->id, sizeof(d->id), "%s", row->element[0]->str);
	d->count = row->element[3]->integer;
	snprintf(rc->last, sizeof(rc->last), "%s", d->id);
	rc->npending++;
	return !rc->skip(rc->arg, d->id);
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

	if (!redisconn_ready(q->rc) || (rc = calloc(1, sizeof(*rc))) == NULL)
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
	"for i = 2, #ARGV, 2 do\n"
	"  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])\n"
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
	const char **argv = malloc((2 * n + 6) * sizeof(char *));
	char (*len)[24] = malloc((n ? n : 1) * sizeof(*len));
	struct done_ctx *d = new_done(cb, arg);
	enum queue_send r = QUEUE_UNAVAILABLE;
	size_t bytes = 0;
	int argc = 0;

	if (!redisconn_ready(q->rc) || argv == NULL || len == NULL || d == NULL || n == 0 || n > QUEUE_ACK_MAX)
		goto out;
	argv[argc++] = "EVAL";
	argv[argc++] = ack_script;
	argv[argc++] = "2";
	argv[argc++] = stream;
	argv[argc++] = q->bytes_key;
	argv[argc++] = ENTRY_GROUP;
	for (size_t i = 0; i < n; i++) {
		snprintf(len[i], sizeof(len[i]), "%zu", items[i].body_len);
		bytes += items[i].body_len;
		argv[argc++] = items[i].id;
		argv[argc++] = len[i];
	}
	if ((r = sendv(q, ack_reply, d, argc, argv, NULL)) == QUEUE_SENT) {
		d = NULL;
		q->pending -= (long long)n;
		q->bytes -= (long long)bytes;
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
	"for i = 1, #f, 2 do if f[i] == 'b' then redis.call('DECRBY', KEYS[3], string.len(f[i + 1])) end end\n"
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
	int argc = 0;

	if (!redisconn_ready(q->rc) || (d = new_done(cb, arg)) == NULL)
		return QUEUE_UNAVAILABLE;
	entry_dead_fields(info, &f);
	argv[argc++] = "EVAL";
	argv[argc++] = dead_script;
	argv[argc++] = "3";
	argv[argc++] = info->stream;
	argv[argc++] = q->dead_key;
	argv[argc++] = q->bytes_key;
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
	q->pending--;
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

	if (!redisconn_ready(q->rc) || (c = calloc(1, sizeof(*c))) == NULL)
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

void queue_set_deliveries(struct queue *q, const char *stream, const char *id, long long count)
{
	char n[24];

	snprintf(n, sizeof(n), "%lld", count);
	sendf(q, NULL, NULL, 9, "XCLAIM", stream, ENTRY_GROUP, q->consumer, "0", id, "RETRYCOUNT", n, "JUSTID");
}
