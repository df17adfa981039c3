/* queue.c - Redis streams as the durable queue, over one hiredis async connection on the loop. */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "relay.h"

enum qstate { Q_DOWN, Q_CONNECTING, Q_HANDSHAKE, Q_READY };

struct queue {
	struct relay *r;
	redisAsyncContext *ac;
	enum qstate state;
	queue_ready_cb on_ready;
	void *on_ready_arg;

	struct event *reconnect_ev;
	struct event *tick_ev;          /* watchdog + pending refresh, every 250 ms */
	double backoff;                 /* seconds until the next reconnect attempt */
	double state_since;             /* when the current state began */

	long outstanding;               /* commands sent and not yet answered */
	double progress_at;             /* last reply, or first send after idle */
	int handshake_left;             /* AUTH/SELECT/XGROUP replies still expected */

	char **streams;                 /* every configured route's stream */
	size_t nstreams;
	long long pending;              /* cached sum of XLEN, plus local puts since */
	long long pending_acc;
	long long bytes;                /* cached <prefix>bytes: body bytes queued (approximate) */
	size_t xlen_left;
	double last_refresh;
	char bytes_key[256];

	/* Entries accepted while Redis was away, drained in order once it is back. */
	struct buffered *buf_head, *buf_last, *buf_cursor;  /* cursor: first not yet sent */
	size_t buf_bytes, buf_count;
	int buf_sending;                /* XADDs of buffered entries awaiting a reply */
	bool spool_loaded;              /* "<spool>.loaded" holds entries not yet all in Redis */

	char consumer[128];
};

/* Wraps every command so the watchdog knows what is outstanding. */
struct qcmd {
	struct queue *q;
	redisCallbackFn *fn;
	void *arg;
};

struct buffered;
static void drain_buffer(struct queue *q);
static void unlink_buffered(struct queue *q, struct buffered *b);
static int spool_save(struct queue *q, const char *path);
static void spool_load(struct queue *q);

static void set_state(struct queue *q, enum qstate s)
{
	q->state = s;
	q->state_since = clock_mono();
}

static void cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct qcmd *c = privdata;
	struct queue *q = c->q;

	q->outstanding--;
	q->progress_at = clock_mono();
	if (c->fn != NULL)
		c->fn(ac, reply, c->arg);
	free(c);
}

/* Send a command; -1 when there is no connection to send it on. argvlen NULL: all strings. */
static int send_argv(struct queue *q, redisCallbackFn *fn, void *arg, int argc, const char **argv,
		     const size_t *argvlen)
{
	struct qcmd *c;

	if (q->ac == NULL || q->state < Q_HANDSHAKE)
		return -1;
	c = malloc(sizeof(*c));
	if (c == NULL)
		return -1;
	c->q = q;
	c->fn = fn;
	c->arg = arg;
	if (redisAsyncCommandArgv(q->ac, cmd_reply, c, argc, argv, argvlen) != REDIS_OK) {
		free(c);
		return -1;
	}
	if (q->outstanding++ == 0)
		q->progress_at = clock_mono();
	return 0;
}

static int send_fmt(struct queue *q, redisCallbackFn *fn, void *arg, int argc, ...)
{
	const char *argv[16];
	va_list ap;

	if (argc > 16)
		return -1;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, const char *);
	va_end(ap);
	return send_argv(q, fn, arg, argc, argv, NULL);
}

static void schedule_reconnect(struct queue *q)
{
	struct timeval tv;
	double jittered;

	set_state(q, Q_DOWN);
	/* Full jitter keeps a fleet of relays from reconnecting in lock-step after a Redis restart. */
	jittered = q->backoff * (0.5 + 0.5 * ((double)rand() / RAND_MAX));
	tv.tv_sec = (long)jittered;
	tv.tv_usec = (long)((jittered - (double)tv.tv_sec) * 1e6);
	evtimer_add(q->reconnect_ev, &tv);
	q->backoff *= 2;
	if (q->backoff > q->r->cfg->redis_reconnect_max)
		q->backoff = q->r->cfg->redis_reconnect_max;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct queue *q = ac->data;

	if (q == NULL)
		return;
	if (status != REDIS_OK)
		log_warn("redis: connection lost: %s", ac->errstr);
	else
		log_info("redis: disconnected");
	q->ac = NULL;
	q->outstanding = 0;
	/* Also while stopping: acks and buffered entries still need Redis during the drain. */
	schedule_reconnect(q);
}

static void handshake_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = arg;
	redisReply *rep = reply;

	(void)ac;
	if (rep == NULL)
		return;
	/* BUSYGROUP means another process (or an earlier run) created the group: fine. */
	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0) {
		log_error("redis: start-up command failed: %s", rep->str);
		redisAsyncDisconnect(q->ac);
		return;
	}
	if (--q->handshake_left == 0) {
		set_state(q, Q_READY);
		q->backoff = 0.1;
		log_info("redis: ready (%zu streams, consumer %s, %zu entries buffered)", q->nstreams, q->consumer,
			 q->buf_count);
		q->buf_cursor = q->buf_head;
		drain_buffer(q);
		if (q->on_ready != NULL)
			q->on_ready(q->on_ready_arg);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct queue *q = ac->data;
	const struct config *cfg = q->r->cfg;
	char db[16];

	if (status != REDIS_OK) {
		/* Said once per outage, not on every attempt of the backoff. */
		if (q->backoff <= 0.1)
			log_warn("redis: connect failed: %s (retrying with backoff)", ac->errstr);
		else
			log_debug("redis: connect failed: %s", ac->errstr);
		q->ac = NULL;  /* hiredis frees the context after this callback */
		schedule_reconnect(q);
		return;
	}
	set_state(q, Q_HANDSHAKE);
	q->handshake_left = 0;
	if (cfg->redis_password != NULL && send_fmt(q, handshake_reply, q, 2, "AUTH", cfg->redis_password) == 0)
		q->handshake_left++;
	snprintf(db, sizeof(db), "%d", cfg->redis_db);
	if (cfg->redis_db != 0 && send_fmt(q, handshake_reply, q, 2, "SELECT", db) == 0)
		q->handshake_left++;
	for (size_t i = 0; i < q->nstreams; i++)
		if (send_fmt(q, handshake_reply, q, 6, "XGROUP", "CREATE", q->streams[i], QUEUE_GROUP, "0",
			     "MKSTREAM") == 0)
			q->handshake_left++;
	if (q->handshake_left == 0)
		handshake_reply(q->ac, NULL, q);
}

static void do_connect(struct queue *q)
{
	const struct config *cfg = q->r->cfg;
	redisAsyncContext *ac;

	if (cfg->redis_unix_socket != NULL)
		ac = redisAsyncConnectUnix(cfg->redis_unix_socket);
	else
		ac = redisAsyncConnect(cfg->redis_host, cfg->redis_port);
	if (ac == NULL || ac->err) {
		log_warn("redis: cannot connect: %s", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_reconnect(q);
		return;
	}
	ac->data = q;
	redisLibeventAttach(ac, q->r->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	q->ac = ac;
	q->outstanding = 0;
	set_state(q, Q_CONNECTING);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	do_connect(arg);
}

/* Drop a connection that stopped answering; hiredis fails every callback still waiting. */
static void drop_connection(struct queue *q, const char *why)
{
	redisAsyncContext *ac = q->ac;

	log_warn("redis: %s; reconnecting", why);
	q->ac = NULL;
	ac->data = NULL;  /* on_disconnect must not schedule a second reconnect */
	redisAsyncFree(ac);
	q->outstanding = 0;
	schedule_reconnect(q);
}

static void xlen_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = arg;
	redisReply *rep = reply;

	(void)ac;
	if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
		q->pending_acc += rep->integer;
	if (--q->xlen_left == 0)
		q->pending = q->pending_acc;
}

static void bytes_reply(redisAsyncContext *ac, void *reply, void *arg)
{
	struct queue *q = arg;
	redisReply *rep = reply;

	(void)ac;
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
	send_fmt(q, bytes_reply, q, 2, "GET", q->bytes_key);
	for (size_t i = 0; i < q->nstreams; i++)
		if (send_fmt(q, xlen_reply, q, 2, "XLEN", q->streams[i]) == 0)
			q->xlen_left++;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	double now = clock_mono(), limit = q->r->cfg->redis_timeout;

	(void)fd;
	(void)what;
	if ((q->state == Q_CONNECTING || q->state == Q_HANDSHAKE) && now - q->state_since > limit) {
		drop_connection(q, "connect timed out");
		return;
	}
	if (q->state >= Q_HANDSHAKE && q->outstanding > 0 && now - q->progress_at > limit) {
		drop_connection(q, "command timed out");
		return;
	}
	if (q->state == Q_READY && now - q->last_refresh >= 1.0) {
		q->last_refresh = now;
		refresh_pending(q);
		/* Buffered entries Redis refused (an error, not a lost connection) are tried again. */
		if (q->buf_sending == 0 && q->buf_cursor == NULL && q->buf_head != NULL) {
			q->buf_cursor = q->buf_head;
			drain_buffer(q);
		}
	}
}

void queue_stream_name(const struct queue *q, const char *upstream, const char *project, char *buf,
		       size_t len)
{
	snprintf(buf, len, "%sq:%s:%s", q->r->cfg->redis_prefix, upstream, project);
}

static int build_streams(struct queue *q)
{
	const struct config *cfg = q->r->cfg;
	char name[QUEUE_STREAM_MAX];
	size_t n = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++)
		n += cfg->upstreams[i].nprojects;
	q->streams = calloc(n ? n : 1, sizeof(char *));
	if (q->streams == NULL)
		return -1;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct config_upstream *up = &cfg->upstreams[i];

		for (size_t j = 0; j < up->nprojects; j++) {
			queue_stream_name(q, up->name, up->projects[j].name, name, sizeof(name));
			q->streams[q->nstreams] = strdup(name);
			if (q->streams[q->nstreams] == NULL)
				return -1;
			q->nstreams++;
		}
	}
	return 0;
}

struct queue *queue_new(struct relay *r, queue_ready_cb on_ready, void *arg)
{
	struct queue *q = calloc(1, sizeof(*q));
	struct timeval tick = { 0, 250000 };

	if (q == NULL)
		return NULL;
	q->r = r;
	q->on_ready = on_ready;
	q->on_ready_arg = arg;
	q->backoff = 0.1;
	q->last_refresh = 0;
	if (r->cfg->forward_consumer != NULL)
		snprintf(q->consumer, sizeof(q->consumer), "%s", r->cfg->forward_consumer);
	else if (gethostname(q->consumer, sizeof(q->consumer) - 1) != 0)
		snprintf(q->consumer, sizeof(q->consumer), "sentryq");
	snprintf(q->bytes_key, sizeof(q->bytes_key), "%sbytes", r->cfg->redis_prefix);
	if (build_streams(q) != 0)
		goto fail;
	q->reconnect_ev = evtimer_new(r->base, reconnect_cb, q);
	q->tick_ev = event_new(r->base, -1, EV_PERSIST, tick_cb, q);
	if (q->reconnect_ev == NULL || q->tick_ev == NULL)
		goto fail;
	evtimer_add(q->tick_ev, &tick);
	spool_load(q);
	do_connect(q);
	return q;
fail:
	queue_free(q);
	return NULL;
}

void queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	if (q->ac != NULL) {
		redisAsyncContext *ac = q->ac;

		q->ac = NULL;
		ac->data = NULL;
		redisAsyncFree(ac);
	}
	if (q->reconnect_ev != NULL)
		event_free(q->reconnect_ev);
	if (q->tick_ev != NULL)
		event_free(q->tick_ev);
	if (q->buf_count > 0 && q->r->cfg->redis_spool_file != NULL &&
	    spool_save(q, q->r->cfg->redis_spool_file) == 0) {
		log_warn("queue: Redis is still away: %zu buffered entries written to %s for the next start",
			 q->buf_count, q->r->cfg->redis_spool_file);
		if (q->spool_loaded) {
			char loaded[4200];  /* a subset of what was just written */

			snprintf(loaded, sizeof(loaded), "%s.loaded", q->r->cfg->redis_spool_file);
			unlink(loaded);
		}
	} else if (q->buf_count > 0) {
		log_error("queue: %zu buffered entries (%zu bytes) never reached Redis and are lost%s", q->buf_count,
			  q->buf_bytes, q->r->cfg->redis_spool_file != NULL ? " (the spool file could not be written)" : "");
	}
	q->spool_loaded = false;  /* freeing the buffer below is not delivering it */
	while (q->buf_head != NULL)
		unlink_buffered(q, q->buf_head);
	for (size_t i = 0; i < q->nstreams; i++)
		free(q->streams[i]);
	free(q->streams);
	free(q);
}

bool queue_ready(const struct queue *q)
{
	return q->state == Q_READY;
}

/* Local moves since the last refresh can double-count one already in the snapshot: never below 0. */
long long queue_pending(const struct queue *q)
{
	return q->pending > 0 ? q->pending : 0;
}

/* ---- put ---- */

/* A copy of one entry held in memory while Redis is away. */
struct buffered {
	struct buffered *prev, *next;
	char *stream;
	struct queue_item it;           /* strings point into the same allocation */
	size_t size;
};

struct put_ctx {
	struct queue *q;
	queue_done_cb cb;
	void *arg;
	struct buffered *from_buffer;   /* set when this XADD drains a buffered entry */
};

static void unlink_buffered(struct queue *q, struct buffered *b)
{
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		q->buf_head = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	else
		q->buf_last = b->prev;
	if (q->buf_cursor == b)
		q->buf_cursor = b->next;
	q->buf_bytes -= b->size;
	q->buf_count--;
	free(b);
	if (q->buf_count == 0 && q->spool_loaded) {
		/* Everything taken back from the spool is in Redis now. */
		char loaded[4200];

		snprintf(loaded, sizeof(loaded), "%s.loaded", q->r->cfg->redis_spool_file);
		unlink(loaded);
		q->spool_loaded = false;
	}
}

static void put_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct put_ctx *p = privdata;
	struct queue *q = p->q;
	redisReply *rep = reply;
	int ok = rep == NULL ? -1 : rep->type == REDIS_REPLY_STRING ? 1 : 0;

	(void)ac;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_error("redis: XADD failed: %s", rep->str);
	if (p->from_buffer != NULL) {
		q->buf_sending--;
		if (ok == 1)
			unlink_buffered(q, p->from_buffer);
		drain_buffer(q);
	} else if (p->cb != NULL) {
		p->cb(p->arg, ok);
	}
	free(p);
}

static int send_xadd(struct queue *q, const char *stream, const struct queue_item *it, struct put_ctx *p)
{
	char carrier[8], received[24], len[24];
	const char *argv[27];
	size_t lens[27];
	int n = 0;

	if (it->received_ms > 0) {
		snprintf(received, sizeof(received), "%lld", it->received_ms);
	} else {
		snprintf(received, sizeof(received), "%lld", clock_epoch_ms());
	}
	snprintf(carrier, sizeof(carrier), "%d", it->carrier);
#define ARG(s, l) do { argv[n] = (s); lens[n] = (l); n++; } while (0)
#define STR(s) ARG((s), strlen(s))
	STR("XADD"); STR(stream); STR("*");
	STR("v"); STR("1");
	STR("m"); STR(it->method);
	STR("e"); STR(it->endpoint);
	STR("q"); STR(it->query);
	STR("h"); STR(it->headers);
	STR("ip"); STR(it->client_ip);
	STR("k"); STR(it->sdk_key);
	STR("id"); STR(it->event_id);
	STR("c"); STR(carrier);
	STR("s"); STR(it->has_secret ? "1" : "0");
	STR("t"); STR(received);
	STR("b"); ARG(it->body, it->body_len);
#undef STR
#undef ARG
	if (send_argv(q, put_reply, p, n, argv, lens) != 0)
		return -1;
	/* Pipelined right behind the XADD: the byte count queue.max_bytes is checked against. */
	snprintf(len, sizeof(len), "%zu", it->body_len);
	send_fmt(q, NULL, NULL, 3, "INCRBY", q->bytes_key, len);
	q->pending++;
	q->bytes += (long long)it->body_len;
	return 0;
}

/* Copy the entry into one allocation so the SDK can be answered while Redis is away. */
static int buffer_item(struct queue *q, const char *stream, const struct queue_item *it, bool force)
{
	const char *src[] = { stream, it->method, it->endpoint, it->query, it->headers, it->client_ip,
			      it->sdk_key, it->event_id };
	size_t size = sizeof(struct buffered) + it->body_len, off = sizeof(struct buffered);
	struct buffered *b;
	const char **slots[8];

	for (size_t i = 0; i < 8; i++)
		size += strlen(src[i]) + 1;
	if ((!force && q->buf_bytes + size > q->r->cfg->redis_buffer_bytes) || (b = malloc(size)) == NULL)
		return -1;
	memset(b, 0, sizeof(*b));
	b->it = *it;
	b->size = size;
	if (b->it.received_ms <= 0)
		b->it.received_ms = clock_epoch_ms();
	slots[0] = (const char **)&b->stream;
	slots[1] = &b->it.method;
	slots[2] = &b->it.endpoint;
	slots[3] = &b->it.query;
	slots[4] = &b->it.headers;
	slots[5] = &b->it.client_ip;
	slots[6] = &b->it.sdk_key;
	slots[7] = &b->it.event_id;
	for (size_t i = 0; i < 8; i++) {
		size_t l = strlen(src[i]) + 1;

		memcpy((char *)b + off, src[i], l);
		*slots[i] = (char *)b + off;
		off += l;
	}
	memcpy((char *)b + off, it->body, it->body_len);
	b->it.body = (char *)b + off;
	b->prev = q->buf_last;
	if (q->buf_last != NULL)
		q->buf_last->next = b;
	else
		q->buf_head = b;
	q->buf_last = b;
	if (q->buf_cursor == NULL)
		q->buf_cursor = b;
	q->buf_bytes += size;
	q->buf_count++;
	return 0;
}

/* Write buffered entries into Redis, a bounded number at a time, oldest first. */
static void drain_buffer(struct queue *q)
{
	while (q->state == Q_READY && q->buf_sending < 256 && q->buf_cursor != NULL) {
		struct buffered *b = q->buf_cursor;
		struct put_ctx *p = calloc(1, sizeof(*p));

		if (p == NULL)
			return;
		p->q = q;
		p->from_buffer = b;
		if (send_xadd(q, b->stream, &b->it, p) != 0) {
			free(p);
			return;
		}
		q->buf_sending++;
		q->buf_cursor = b->next;
	}
}

int queue_put(struct queue *q, const char *stream, const struct queue_item *it, queue_done_cb cb,
	      void *arg)
{
	struct put_ctx *p;

	/* Buffered entries go first: while any wait, new ones queue behind them. */
	if (q->state != Q_READY || q->buf_head != NULL)
		return buffer_item(q, stream, it, false) == 0 ? (drain_buffer(q), 1) : -1;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	p->q = q;
	p->cb = cb;
	p->arg = arg;
	if (send_xadd(q, stream, it, p) != 0) {
		free(p);
		return buffer_item(q, stream, it, false) == 0 ? 1 : -1;
	}
	return 0;
}

size_t queue_buffered(const struct queue *q, size_t *bytes)
{
	if (bytes != NULL)
		*bytes = q->buf_bytes;
	return q->buf_count;
}

/* ---- spool: the buffer survives a stop while Redis is away ---- */

#define SPOOL_MAGIC "sentryq-spool-1\n"
#define SPOOL_FIELDS 10

static int put_field(FILE *f, const char *p, size_t len)
{
	uint32_t n = (uint32_t)len;

	return fwrite(&n, sizeof(n), 1, f) == 1 && (len == 0 || fwrite(p, len, 1, f) == 1) ? 0 : -1;
}

static int spool_record(FILE *f, const struct buffered *b)
{
	const char *str[] = { b->stream, b->it.method, b->it.endpoint, b->it.query, b->it.headers, b->it.client_ip,
			      b->it.sdk_key, b->it.event_id };
	char meta[64];

	snprintf(meta, sizeof(meta), "%d %d %lld", b->it.carrier, b->it.has_secret ? 1 : 0, b->it.received_ms);
	for (size_t i = 0; i < sizeof(str) / sizeof(str[0]); i++)
		if (put_field(f, str[i], strlen(str[i])) != 0)
			return -1;
	return put_field(f, meta, strlen(meta)) == 0 && put_field(f, b->it.body, b->it.body_len) == 0 ? 0 : -1;
}

/* fsync the directory holding path, so a rename into it survives a power loss. */
static void sync_dir(const char *path)
{
	char dir[4200];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * Write the whole buffer to `path` atomically: a 0600 temp file (it holds auth headers and event
 * bodies), fsync, rename, fsync of the directory.
 */
static int spool_save(struct queue *q, const char *path)
{
	char tmp[4200];
	FILE *f = NULL;
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fputs(SPOOL_MAGIC, f) < 0)
		goto out;
	for (const struct buffered *b = q->buf_head; b != NULL; b = b->next)
		if (spool_record(f, b) != 0)
			goto out;
	if (fflush(f) == 0 && fsync(fileno(f)) == 0)
		rc = 0;
out:
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	else
		sync_dir(path);
	return rc;
}

static char *get_field(FILE *f, size_t *len)
{
	uint32_t n;
	char *p;

	if (fread(&n, sizeof(n), 1, f) != 1 || n > (1u << 30) || (p = malloc((size_t)n + 1)) == NULL)
		return NULL;
	if (n > 0 && fread(p, n, 1, f) != 1) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	*len = n;
	return p;
}

/* One record back into the buffer; 1 at a clean end of file, -1 on a damaged record. */
static int spool_read_record(struct queue *q, FILE *f)
{
	char *v[SPOOL_FIELDS] = { NULL };
	size_t len[SPOOL_FIELDS];
	struct queue_item it;
	int c, s, rc = -1;
	long long t;

	if ((c = fgetc(f)) == EOF)
		return 1;
	ungetc(c, f);
	for (int i = 0; i < SPOOL_FIELDS; i++)
		if ((v[i] = get_field(f, &len[i])) == NULL)
			goto out;
	if (sscanf(v[8], "%d %d %lld", &c, &s, &t) != 3)
		goto out;
	memset(&it, 0, sizeof(it));
	it.method = v[1];
	it.endpoint = v[2];
	it.query = v[3];
	it.headers = v[4];
	it.client_ip = v[5];
	it.sdk_key = v[6];
	it.event_id = v[7];
	it.carrier = c;
	it.has_secret = s != 0;
	it.received_ms = t;
	it.body = v[9];
	it.body_len = len[9];
	rc = buffer_item(q, v[0], &it, true);  /* already accepted: the buffer limit does not apply */
out:
	for (int i = 0; i < SPOOL_FIELDS; i++)
		free(v[i]);
	return rc;
}

/* Read one spool file into the buffer. 0 read whole, -1 absent or not a spool, -2 damaged part-way. */
static int spool_read_file(struct queue *q, const char *path)
{
	char magic[sizeof(SPOOL_MAGIC)];
	FILE *f = fopen(path, "rb");
	int rc;

	if (f == NULL)
		return -1;
	if (fread(magic, 1, strlen(SPOOL_MAGIC), f) != strlen(SPOOL_MAGIC) ||
	    memcmp(magic, SPOOL_MAGIC, strlen(SPOOL_MAGIC)) != 0) {
		log_error("queue: %s is not a sentryq spool file; left in place", path);
		fclose(f);
		return -1;
	}
	while ((rc = spool_read_record(q, f)) == 0)
		;
	fclose(f);
	return rc < 0 ? -2 : 0;
}

/*
 * At start: take back what the last stop spooled (and what a crash left while draining an earlier
 * spool). The entries are written at once to "<spool>.loaded", removed only when all of them are
 * in Redis, so a crash before that loses nothing (it can duplicate).
 */
static void spool_load(struct queue *q)
{
	const char *path = q->r->cfg->redis_spool_file;
	char loaded[4200], aside[4200];
	int rc;

	if (path == NULL)
		return;
	snprintf(loaded, sizeof(loaded), "%s.loaded", path);
	snprintf(aside, sizeof(aside), "%s.damaged", path);
	spool_read_file(q, loaded);
	rc = spool_read_file(q, path);
	if (q->buf_count == 0)
		return;
	if (spool_save(q, loaded) != 0) {
		log_error("queue: cannot write %s; %s is kept and will be read again", loaded, path);
		return;
	}
	q->spool_loaded = true;
	if (rc == -2) {
		/* Keep the unreadable rest for a human, but never load the good part twice. */
		log_error("queue: %s is damaged part-way; what could be read is taken back, the file is kept as %s",
			  path, aside);
		if (rename(path, aside) != 0)
			unlink(path);
	} else if (rc == 0) {
		unlink(path);
	}
	log_info("queue: %zu entries taken back from the spool; they go to Redis as soon as it answers",
		 q->buf_count);
}

long long queue_bytes(const struct queue *q)
{
	return q->bytes > 0 ? q->bytes : 0;
}

/* ---- read ---- */

struct delivery {
	char id[QUEUE_ID_MAX];
	long long count;
};

struct read_ctx {
	queue_read_cb cb;
	queue_skip_cb skip;
	void *arg;
	struct queue *q;
	char stream[QUEUE_STREAM_MAX];
	struct delivery *pending;       /* the XPENDING rows of a pending-list scan */
	size_t npending;
	size_t scanned;                 /* rows the scan covered (the caller's cursor moves past them) */
	char last[QUEUE_ID_MAX];
};

static const redisReply *field(const redisReply *kv, const char *name)
{
	for (size_t i = 0; i + 1 < kv->elements; i += 2)
		if (kv->element[i]->type == REDIS_REPLY_STRING && strcmp(kv->element[i]->str, name) == 0)
			return kv->element[i + 1];
	return NULL;
}

static const char *fstr(const redisReply *kv, const char *name, size_t *len)
{
	const redisReply *v = field(kv, name);

	if (v == NULL || v->type != REDIS_REPLY_STRING) {
		if (len != NULL)
			*len = 0;
		return "";
	}
	if (len != NULL)
		*len = v->len;
	return v->str;
}

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
	const redisReply *kv;

	memset(e, 0, sizeof(*e));
	if (el->type != REDIS_REPLY_ARRAY || el->elements < 2 || el->element[0]->type != REDIS_REPLY_STRING) {
		e->deleted = true;
		return;
	}
	snprintf(e->id, sizeof(e->id), "%s", el->element[0]->str);
	e->deliveries = deliveries_of(rc, e->id);
	kv = el->element[1];
	if (kv->type != REDIS_REPLY_ARRAY || kv->elements < 2) {
		e->deleted = true;
		return;
	}
	e->item.method = fstr(kv, "m", NULL);
	e->item.endpoint = fstr(kv, "e", NULL);
	e->item.query = fstr(kv, "q", NULL);
	e->item.headers = fstr(kv, "h", NULL);
	e->item.client_ip = fstr(kv, "ip", NULL);
	e->item.sdk_key = fstr(kv, "k", NULL);
	e->item.event_id = fstr(kv, "id", NULL);
	e->item.carrier = atoi(fstr(kv, "c", NULL));
	e->item.has_secret = fstr(kv, "s", NULL)[0] == '1';
	e->item.body = fstr(kv, "b", &e->item.body_len);
	e->item.received_ms = atoll(fstr(kv, "t", NULL));
}

static void finish_read(struct read_ctx *rc, int ok, const struct queue_entry *e, size_t n)
{
	/* A failed read covered nothing: the caller's cursor must not skip unclaimed entries. */
	rc->cb(rc->arg, ok, e, n, ok == 1 ? rc->scanned : 0, rc->last);
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
			finish_read(rc, 0, NULL, 0);
			return;
		}
		for (n = 0; n < list->elements; n++)
			decode_entry(list->element[n], rc, &entries[n]);
		if (count_scanned) {
			rc->scanned = n;
			snprintf(rc->last, sizeof(rc->last), "%s", entries[n - 1].id);
		}
	}
	finish_read(rc, 1, entries, n);
	free(entries);
}

/* A failed read. The stream or group vanished (FLUSHALL, manual cleanup): create it again. The
 * error text names the stream, which holds a project name: only its code is logged. */
static void read_failed(struct read_ctx *rc, const redisReply *rep)
{
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOGROUP", 7) == 0) {
		log_warn("redis: a stream or its consumer group is gone; creating it again");
		send_fmt(rc->q, NULL, NULL, 6, "XGROUP", "CREATE", rc->stream, QUEUE_GROUP, "0", "MKSTREAM");
	} else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
		log_warn("redis: reading a stream failed: %.*s", (int)strcspn(rep->str, " "), rep->str);
	}
	finish_read(rc, 0, NULL, 0);
}

static void read_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct read_ctx *rc = privdata;
	redisReply *rep = reply;

	(void)ac;
	if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
		read_failed(rc, rep);
		return;
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
	    rep->element[0]->elements == 2)
		deliver_list(rc, rep->element[0]->element[1], true);
	else
		finish_read(rc, 1, NULL, 0);
}

static void xclaim_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct read_ctx *rc = privdata;
	redisReply *rep = reply;

	(void)ac;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		read_failed(rc, rep);
		return;
	}
	deliver_list(rc, rep, false);
}

/* XCLAIM (min idle 0, to this same consumer) of the ids the caller still wants: it returns them
 * and counts a delivery only for those, unlike a pending-list XREADGROUP. */
static int send_claim_ids(struct read_ctx *rc, const char **ids, size_t n)
{
	const char **argv = malloc((n + 5) * sizeof(char *));
	int argc = 0, rc_send = -1;

	if (argv != NULL) {
		argv[argc++] = "XCLAIM";
		argv[argc++] = rc->stream;
		argv[argc++] = QUEUE_GROUP;
		argv[argc++] = rc->q->consumer;
		argv[argc++] = "0";
		for (size_t i = 0; i < n; i++)
			argv[argc++] = ids[i];
		rc_send = send_argv(rc->q, xclaim_reply, rc, argc, argv, NULL);
	}
	free(argv);
	return rc_send;
}

/* [[id, consumer, idle, count], ...]: copied (hiredis frees the reply), then the wanted ids claimed. */
static void pending_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct read_ctx *rc = privdata;
	redisReply *rep = reply;
	const char **want;
	size_t nwant = 0;

	(void)ac;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		read_failed(rc, rep);
		return;
	}
	rc->pending = calloc(rep->elements + 1, sizeof(*rc->pending));
	want = calloc(rep->elements + 1, sizeof(*want));
	for (size_t i = 0; rc->pending != NULL && want != NULL && i < rep->elements; i++) {
		const redisReply *row = rep->element[i];

		if (row->type != REDIS_REPLY_ARRAY || row->elements < 4 || row->element[0]->type != REDIS_REPLY_STRING ||
		    row->element[3]->type != REDIS_REPLY_INTEGER)
			continue;
		snprintf(rc->pending[rc->npending].id, QUEUE_ID_MAX, "%s", row->element[0]->str);
		rc->pending[rc->npending].count = row->element[3]->integer;
		snprintf(rc->last, sizeof(rc->last), "%s", row->element[0]->str);
		if (!rc->skip(rc->arg, rc->pending[rc->npending].id))
			want[nwant++] = rc->pending[rc->npending].id;
		rc->npending++;
	}
	rc->scanned = rep->elements;
	if (rc->pending == NULL || want == NULL)
		finish_read(rc, 0, NULL, 0);
	else if (nwant == 0)
		finish_read(rc, 1, NULL, 0);
	else if (send_claim_ids(rc, want, nwant) != 0)
		finish_read(rc, 0, NULL, 0);
	free(want);
}

int queue_read(struct queue *q, const char *stream, const char *from, int count, queue_skip_cb skip,
	       queue_read_cb cb, void *arg)
{
	struct read_ctx *rc;
	char cnt[16], start[QUEUE_ID_MAX + 2];
	int sent;

	if (q->state != Q_READY)
		return -1;
	rc = calloc(1, sizeof(*rc));
	if (rc == NULL)
		return -1;
	rc->cb = cb;
	rc->skip = skip;
	rc->arg = arg;
	rc->q = q;
	snprintf(rc->stream, sizeof(rc->stream), "%s", stream);
	snprintf(cnt, sizeof(cnt), "%d", count);
	if (strcmp(from, ">") == 0) {
		sent = send_fmt(q, read_reply, rc, 9, "XREADGROUP", "GROUP", QUEUE_GROUP, q->consumer, "COUNT", cnt,
				"STREAMS", stream, ">");
	} else {
		/* This consumer's pending entries after `from`, with how often each was delivered. */
		if (strcmp(from, "0") == 0)
			snprintf(start, sizeof(start), "-");
		else
			snprintf(start, sizeof(start), "(%s", from);
		sent = send_fmt(q, pending_reply, rc, 7, "XPENDING", stream, QUEUE_GROUP, start, "+", cnt, q->consumer);
	}
	if (sent != 0) {
		free(rc);
		return -1;
	}
	return 0;
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

static void ack_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct done_ctx *d = privdata;
	redisReply *rep = reply;

	(void)ac;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_error("redis: ack script failed: %s", rep->str);
	if (d->cb != NULL)
		d->cb(d->arg, rep == NULL ? -1 : rep->type == REDIS_REPLY_INTEGER ? 1 : 0);
	free(d);
}

int queue_ack(struct queue *q, const char *stream, const struct queue_ack_item *items, size_t n,
	      queue_done_cb cb, void *arg)
{
	const char **argv = malloc((2 * n + 6) * sizeof(char *));
	char (*len)[24] = malloc((n ? n : 1) * sizeof(*len));
	struct done_ctx *d = malloc(sizeof(*d));
	size_t bytes = 0;
	int argc = 0, rc = -1;

	if (q->state != Q_READY || argv == NULL || len == NULL || d == NULL || n == 0 ||
	    n > QUEUE_ACK_MAX)
		goto out;
	d->cb = cb;
	d->arg = arg;
	argv[argc++] = "EVAL";
	argv[argc++] = ack_script;
	argv[argc++] = "2";
	argv[argc++] = stream;
	argv[argc++] = q->bytes_key;
	argv[argc++] = QUEUE_GROUP;
	for (size_t i = 0; i < n; i++) {
		snprintf(len[i], sizeof(len[i]), "%zu", items[i].body_len);
		bytes += items[i].body_len;
		argv[argc++] = items[i].id;
		argv[argc++] = len[i];
	}
	rc = send_argv(q, ack_reply, d, argc, argv, NULL);
	if (rc == 0) {
		d = NULL;
		q->pending -= (long long)n;
		q->bytes -= (long long)bytes;
	}
out:
	free(argv);
	free(len);
	free(d);
	return rc;
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

static void dead_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct done_ctx *d = privdata;
	redisReply *rep = reply;

	(void)ac;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		log_error("redis: dead-letter script failed: %s", rep->str);
	if (d->cb != NULL)
		d->cb(d->arg, rep != NULL && rep->type == REDIS_REPLY_INTEGER);
	free(d);
}

int queue_dead(struct queue *q, const char *stream, const char *id, const struct queue_dead_info *info,
	       queue_done_cb cb, void *arg)
{
	char dead_key[256], status[16], attempts[24], last[24], now[24], src_id[QUEUE_ID_MAX];
	struct done_ctx *d;
	const char *argv[] = { "EVAL", dead_script, "3", stream, dead_key, q->bytes_key, src_id, QUEUE_GROUP,
			       "up", info->upstream, "pr", info->project, "src", stream, "oid", src_id,
			       "reason", info->reason, "status", status, "attempts", attempts, "last", last,
			       "dead_at", now };

	if (q->state != Q_READY || (d = malloc(sizeof(*d))) == NULL)
		return -1;
	d->cb = cb;
	d->arg = arg;
	snprintf(dead_key, sizeof(dead_key), "%sdead", q->r->cfg->redis_prefix);
	snprintf(src_id, sizeof(src_id), "%s", id);
	snprintf(status, sizeof(status), "%d", info->status);
	snprintf(attempts, sizeof(attempts), "%lld", info->attempts);
	snprintf(last, sizeof(last), "%lld", info->last_attempt_ms);
	snprintf(now, sizeof(now), "%lld", clock_epoch_ms());
	if (send_argv(q, dead_reply, d, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL) != 0) {
		free(d);
		return -1;
	}
	q->pending--;
	return 0;
}

/* ---- orphans ---- */

struct claim_ctx {
	struct queue *q;
	queue_done_cb cb;
	void *arg;
	char stream[QUEUE_STREAM_MAX];
	int rounds;
};

static int send_claim(struct claim_ctx *c, const char *cursor);

static void claim_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct claim_ctx *c = privdata;
	redisReply *rep = reply;
	int claimed = 0;

	(void)ac;
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
		c->cb(c->arg, -1);
		free(c);
		return;
	}
	if (rep->element[1]->type == REDIS_REPLY_ARRAY)
		claimed = (int)rep->element[1]->elements;
	if (claimed > 0)
		log_info("queue: took over %d entries left pending by another consumer", claimed);
	/* Follow the cursor, but bounded: the rest is picked up on the next round. */
	if (rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "0-0") != 0 &&
	    ++c->rounds < 10 && send_claim(c, rep->element[0]->str) == 0)
		return;
	c->cb(c->arg, claimed);
	free(c);
}

static int send_claim(struct claim_ctx *c, const char *cursor)
{
	char idle[32];

	snprintf(idle, sizeof(idle), "%lld", (long long)(c->q->r->cfg->forward_claim_idle * 1000));
	return send_fmt(c->q, claim_reply, c, 9, "XAUTOCLAIM", c->stream, QUEUE_GROUP, c->q->consumer, idle,
			cursor, "COUNT", "100", "JUSTID");
}

int queue_claim_orphans(struct queue *q, const char *stream, queue_done_cb cb, void *arg)
{
	struct claim_ctx *c;

	if (q->state != Q_READY)
		return -1;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -1;
	c->q = q;
	c->cb = cb;
	c->arg = arg;
	snprintf(c->stream, sizeof(c->stream), "%s", stream);
	if (send_claim(c, "0-0") != 0) {
		free(c);
		return -1;
	}
	return 0;
}
