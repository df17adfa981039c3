/* queue.h - the durable queue: Redis streams over one hiredis async connection on the loop. */
#ifndef SENTRYQ_QUEUE_H
#define SENTRYQ_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct relay;
struct queue;

#define QUEUE_ID_MAX 48
#define QUEUE_GROUP "sentryq"

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
};

/* One entry read back; pointers are valid only during the read callback. */
struct queue_entry {
	char id[QUEUE_ID_MAX];
	bool deleted;           /* pending id whose data is gone (acked elsewhere): just ack it */
	struct queue_item item;
	long long received_ms;
	long long deliveries;   /* not known from XREADGROUP: 0 */
};

typedef void (*queue_done_cb)(void *arg, int ok);
typedef void (*queue_read_cb)(void *arg, int ok, const struct queue_entry *e, size_t n);
typedef void (*queue_ready_cb)(void *arg);

/* Creates the connection (it connects and reconnects by itself, with backoff). */
struct queue *queue_new(struct relay *r, queue_ready_cb on_ready, void *arg);
void queue_free(struct queue *q);

bool queue_ready(const struct queue *q);
/* Stream name of a route: "<prefix>q:<upstream>:<project>". */
void queue_stream_name(const struct queue *q, const char *upstream, const char *project,
		       char *buf, size_t len);

/* Append; cb(arg, 1) once Redis acknowledged, cb(arg, 0) on failure. -1: not connected (cb not called). */
int queue_put(struct queue *q, const char *stream, const struct queue_item *it,
	      queue_done_cb cb, void *arg);
/* XREADGROUP from ">" (new entries) or after `from` in this consumer's pending list. */
int queue_read(struct queue *q, const char *stream, const char *from, int count,
	       queue_read_cb cb, void *arg);
/* XACK + XDEL of ids in one MULTI. */
int queue_ack(struct queue *q, const char *stream, char (*ids)[QUEUE_ID_MAX], size_t n,
	      queue_done_cb cb, void *arg);
/* Take over entries other consumers left pending for longer than forward.claim_idle. */
int queue_claim_orphans(struct queue *q, const char *stream, queue_done_cb cb, void *arg);
/* Entries in every configured stream not yet forwarded (refreshed once a second). */
long long queue_pending(const struct queue *q);
const char *queue_consumer(const struct queue *q);

#endif
