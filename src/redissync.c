/* redissync.c - wait on a private loop for one answer at a time: the CLI tools' Redis client. */
#include "redissync.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "rcluster.h"

struct redissync {
	struct event_base *base;
	struct redisconn *rc;
	struct rcluster *cl;            /* redis.cluster: instead of rc */
	unsigned long seq;              /* of the call waiting: a late answer to an earlier one is dropped */
	struct event *deadline;
	double timeout;
	bool ready, lost, expired, answered;
	redisReply *reply;
};

static void on_ready(void *arg)
{
	struct redissync *rs = arg;

	rs->ready = true;
	event_base_loopbreak(rs->base);
}

static void on_lost(void *arg)
{
	struct redissync *rs = arg;

	rs->lost = true;
	event_base_loopbreak(rs->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct redissync *rs = arg;

	(void)fd;
	(void)what;
	rs->expired = true;
	event_base_loopbreak(rs->base);
}

/* Run the loop until `done` or the deadline. */
static void wait_for(struct redissync *rs, const bool *done)
{
	struct timeval tv = clock_timeval(rs->timeout);

	rs->expired = false;
	evtimer_add(rs->deadline, &tv);
	while (!*done && !rs->expired && !rs->lost)
		event_base_loop(rs->base, EVLOOP_ONCE);
	evtimer_del(rs->deadline);
}

static bool is_cluster(const struct redisconn_params *p)
{
	return p->cluster != NULL && p->cluster[0] != NULL;
}

/* The one connection, or a cluster client (every slot's master connected before ready). */
static int connect_any(struct redissync *rs, const struct redisconn_params *quiet)
{
	struct redisconn_hooks hooks = { .on_ready = on_ready, .on_lost = on_lost, .arg = rs };
	struct rcluster_hooks ch = { .on_ready = on_ready, .arg = rs };

	if (is_cluster(quiet))
		return (rs->cl = rcluster_new(rs->base, quiet, &ch)) == NULL ? -1 : 0;
	return (rs->rc = redisconn_new(rs->base, quiet, &hooks)) == NULL ? -1 : 0;
}

struct redissync *redissync_open(const struct redisconn_params *p, char *err, size_t errlen)
{
	struct redissync *rs = calloc(1, sizeof(*rs));
	struct redisconn_params quiet = *p;

	quiet.quiet = true;
	if (rs == NULL || (rs->base = event_base_new()) == NULL ||
	    (rs->deadline = evtimer_new(rs->base, on_deadline, rs)) == NULL || connect_any(rs, &quiet) != 0) {
		snprintf(err, errlen, "out of memory");
		redissync_close(rs);
		return NULL;
	}
	rs->timeout = p->timeout;
	wait_for(rs, &rs->ready);
	if (!rs->ready) {
		const char *why = rs->cl != NULL ? rcluster_last_error(rs->cl) : redisconn_last_error(rs->rc);

		if (rs->cl != NULL)
			snprintf(err, errlen, "cannot reach every master of the redis cluster (seeds %s%s)%s%s", p->cluster[0],
				 p->cluster[1] != NULL ? ", ..." : "", *why ? ": " : "", why);
		else if (p->sentinels != NULL && p->sentinels[0] != NULL)
			snprintf(err, errlen, "cannot reach the redis master '%s' through the sentinels%s%s",
				 p->master_name ? p->master_name : "", *why ? ": " : "", why);
		else if (p->unix_socket != NULL)
			snprintf(err, errlen, "cannot connect to redis at %s%s%s", p->unix_socket, *why ? ": " : "", why);
		else
			snprintf(err, errlen, "cannot connect to redis at %s:%d%s%s", p->host, p->port, *why ? ": " : "",
				 why);
		redissync_close(rs);
		return NULL;
	}
	return rs;
}

void redissync_close(struct redissync *rs)
{
	if (rs == NULL)
		return;
	rcluster_free(rs->cl);
	redisconn_free(rs->rc);
	if (rs->deadline != NULL)
		event_free(rs->deadline);
	if (rs->base != NULL)
		event_base_free(rs->base);
	free(rs);
}

struct call {
	struct redissync *rs;
	unsigned long seq;
};

static void on_reply(void *arg, redisReply *reply)
{
	struct call *c = arg;
	struct redissync *rs = c->rs;
	bool late = c->seq != rs->seq;

	free(c);
	if (late)
		return;
	rs->answered = true;
	rs->reply = reply != NULL ? redisconn_reply_clone(reply) : NULL;
	event_base_loopbreak(rs->base);
}

redisReply *redissync_call(struct redissync *rs, int argc, const char **argv, const size_t *argvlen,
			   char *err, size_t errlen)
{
	struct call *c = malloc(sizeof(*c));
	bool sent;

	rs->answered = false;
	rs->reply = NULL;
	if (c != NULL) {
		c->rs = rs;
		c->seq = ++rs->seq;
	}
	sent = c != NULL && !rs->lost &&
	       (rs->cl != NULL ? rcluster_send(rs->cl, on_reply, c, argc, argv, argvlen) == RCLUSTER_SENT
			       : redisconn_send(rs->rc, on_reply, c, argc, argv, argvlen) == REDISCONN_SENT);
	if (!sent) {
		free(c);
		snprintf(err, errlen, "redis: not connected");
		return NULL;
	}
	wait_for(rs, &rs->answered);
	if (!rs->answered) {  /* a late answer must not land in the next call */
		rs->seq++;
		if (rs->rc != NULL)
			redisconn_reset(rs->rc, "no answer within redis.timeout");
	}
	if (rs->reply == NULL)
		snprintf(err, errlen, "redis: %s", rs->expired ? "no answer within redis.timeout"
					    : rs->answered ? "connection lost (or out of memory)" : "connection lost");
	return rs->reply;
}
