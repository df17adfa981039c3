/* redisconn.c - one supervised hiredis async connection: connect (through the sentinels when
 * configured), handshake, watchdog, reconnect, and following a failover. */
#include "redisconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "sentinel.h"

#define WATCHDOG_PERIOD 0.25
#define BACKOFF_FIRST 0.1
#define WATCH_RETRY 1.0                 /* seconds before a lost +switch-master subscription is renewed */

enum rstate { R_DOWN, R_DISCOVER, R_CONNECTING, R_HANDSHAKE, R_READY };

struct sentinel_at {
	char host[SENTINEL_HOST_MAX];
	int port;
};

struct redisconn {
	struct event_base *base;
	struct redisconn_params p;
	struct redisconn_hooks hooks;
	redisAsyncContext *ac;
	enum rstate state;
	double state_since;
	double backoff;                 /* seconds until the next reconnect attempt */
	long outstanding;               /* commands sent and not yet answered */
	double progress_at;             /* last reply, or first send after idle */
	int setup_left;                 /* handshake replies still expected */
	bool setup_failed;              /* one failed: the first one's error is the one reported */
	bool moved;                     /* a -READONLY reply: the drop waits for moved_ev */
	bool closing;                   /* redisconn_free: callbacks of freed contexts do nothing */
	struct event *reconnect_ev;
	struct event *watchdog_ev;
	struct event *moved_ev;
	char host[SENTINEL_HOST_MAX];   /* the server connected to: host/port, or the master named */
	int port;
	char last_error[256];

	/* Sentinel: asking one (sac) for the master, subscribed to another (wac) for switches. */
	struct sentinel_at *sentinels;
	size_t nsentinels;
	size_t next;                    /* the sentinel asked next */
	size_t round_left;              /* sentinels still to ask before backing off */
	size_t asking;
	redisAsyncContext *sac;
	char sentinel_why[200];         /* why the last one asked did not name the master */
	redisAsyncContext *wac;
	size_t watching;
	bool watch_up;                  /* the subscription was confirmed */
	struct event *watch_ev;
};

/* A warning or error: logged (at debug for a quiet tool) and kept for redisconn_last_error. */
__attribute__((format(printf, 3, 4)))
static void say(struct redisconn *rc, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rc->last_error, sizeof(rc->last_error), fmt, ap);
	va_end(ap);
	if (rc->p.quiet)
		log_debug("%s: %s", rc->p.name, rc->last_error);
	else if (lvl >= LOG_ERROR)
		log_error("%s: %s", rc->p.name, rc->last_error);
	else if (lvl == LOG_WARN)
		log_warn("%s: %s", rc->p.name, rc->last_error);
	else
		log_info("%s: %s", rc->p.name, rc->last_error);
}

/* An info line (debug for a quiet tool); not an error. */
__attribute__((format(printf, 2, 3)))
static void note(struct redisconn *rc, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rc->p.quiet)
		log_debug("%s: %s", rc->p.name, msg);
	else
		log_info("%s: %s", rc->p.name, msg);
}

/* "host:port", IPv6 in brackets. */
static const char *hostport(const char *host, int port, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
	return buf;
}

/* Wraps every command so the watchdog knows what is outstanding. */
struct rcmd {
	struct redisconn *rc;
	redisconn_reply_cb cb;
	void *arg;
	const char *ok_error;           /* setup commands: the error that counts as success */
	bool setup;
	bool role;                      /* the ROLE check: must say master */
	char what[16];                  /* setup commands: the command's name, for the error */
};

static void set_state(struct redisconn *rc, enum rstate s)
{
	rc->state = s;
	rc->state_since = clock_mono();
}

static void schedule_reconnect(struct redisconn *rc)
{
	/* Full jitter keeps a fleet of relays from reconnecting in lock-step after a Redis restart. */
	double jittered = rc->backoff * (0.5 + 0.5 * ((double)rand() / RAND_MAX));
	struct timeval tv = clock_timeval(jittered);

	set_state(rc, R_DOWN);
	evtimer_add(rc->reconnect_ev, &tv);
	rc->backoff *= 2;
	if (rc->backoff > rc->p.reconnect_max)
		rc->backoff = rc->p.reconnect_max;
}

static void lost(struct redisconn *rc)
{
	rc->ac = NULL;
	rc->outstanding = 0;
	rc->moved = false;
	schedule_reconnect(rc);
	if (rc->hooks.on_lost != NULL)
		rc->hooks.on_lost(rc->hooks.arg);
}

/* Free the context without letting on_disconnect schedule a second reconnect; hiredis fails
 * every callback still waiting (with a NULL reply). */
static void close_context(struct redisconn *rc)
{
	redisAsyncContext *ac = rc->ac;

	rc->ac = NULL;
	ac->data = NULL;
	redisAsyncFree(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redisconn *rc = ac->data;

	if (rc == NULL)
		return;
	if (status != REDIS_OK)
		say(rc, LOG_WARN, "connection lost: %s", ac->errstr);
	else if (!rc->p.quiet)
		log_info("%s: disconnected", rc->p.name);
	lost(rc);
}

static void setup_done(struct redisconn *rc)
{
	set_state(rc, R_READY);
	rc->backoff = BACKOFF_FIRST;
	if (rc->hooks.on_ready != NULL)
		rc->hooks.on_ready(rc->hooks.arg);
}

/* From a reply callback: the master may have moved. The drop itself waits for moved_ev, after
 * hiredis is done with the context; replies until then reach their callers as lost. */
static void master_moved(struct redisconn *rc, const char *why)
{
	if (rc->moved)
		return;
	rc->moved = true;
	say(rc, LOG_WARN, "%s: the master may have moved; asking the sentinels again", why);
	event_active(rc->moved_ev, EV_TIMEOUT, 1);
}

/* A setup reply that fails the handshake: the first one says why; the connection is dropped. */
static bool setup_refused(struct redisconn *rc, const struct rcmd *c, const redisReply *rep)
{
	char at[SENTINEL_HOST_MAX + 10];

	if (c->role && sentinel_role_reply(rep) != SENTINEL_ROLE_MASTER) {
		if (!rc->setup_failed)
			say(rc, LOG_WARN, "%s is not the master (ROLE says %s); asking the sentinels again",
			    hostport(rc->host, rc->port, at, sizeof(at)),
			    rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->str ?
			    rep->element[0]->str : rep->type == REDIS_REPLY_ERROR ? rep->str : "something else");
		return true;
	}
	if (rep->type == REDIS_REPLY_ERROR &&
	    (c->ok_error == NULL || strncmp(rep->str, c->ok_error, strlen(c->ok_error)) != 0)) {
		if (!rc->setup_failed)
			say(rc, LOG_ERROR, "%s failed: %s", c->what, rep->str);
		return true;
	}
	return false;
}

static void cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rcmd *c = privdata;
	struct redisconn *rc = c->rc;
	redisReply *rep = reply;

	(void)ac;
	rc->outstanding--;
	rc->progress_at = clock_mono();
	if (c->setup && rep != NULL) {
		if (setup_refused(rc, c, rep)) {
			rc->setup_failed = true;
			free(c);
			if (rc->ac != NULL)
				redisAsyncDisconnect(rc->ac);
			return;
		}
		if (--rc->setup_left == 0)
			setup_done(rc);
	} else {
		if (rc->nsentinels > 0 && rep != NULL && rep->type == REDIS_REPLY_ERROR &&
		    strncmp(rep->str, "READONLY", 8) == 0) {
			master_moved(rc, "a READONLY reply");
			rep = NULL;
		}
		if (c->cb != NULL)
			c->cb(c->arg, rep);
	}
	free(c);
}

static enum redisconn_send send_cmd(struct redisconn *rc, struct rcmd *c, int argc, const char **argv,
				    const size_t *argvlen)
{
	if (rc->ac == NULL || redisAsyncCommandArgv(rc->ac, cmd_reply, c, argc, argv, argvlen) != REDIS_OK) {
		free(c);
		return REDISCONN_UNAVAILABLE;
	}
	if (rc->outstanding++ == 0)
		rc->progress_at = clock_mono();
	return REDISCONN_SENT;
}

static struct rcmd *new_cmd(struct redisconn *rc, redisconn_reply_cb cb, void *arg)
{
	struct rcmd *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->rc = rc;
		c->cb = cb;
		c->arg = arg;
	}
	return c;
}

enum redisconn_send redisconn_send(struct redisconn *rc, redisconn_reply_cb cb, void *arg, int argc,
				   const char **argv, const size_t *argvlen)
{
	struct rcmd *c;

	if (!redisconn_ready(rc) || (c = new_cmd(rc, cb, arg)) == NULL)
		return REDISCONN_UNAVAILABLE;
	return send_cmd(rc, c, argc, argv, argvlen);
}

enum redisconn_send redisconn_send_formatted(struct redisconn *rc, redisconn_reply_cb cb, void *arg, const char *cmd,
					     size_t len)
{
	struct rcmd *c;

	if (!redisconn_ready(rc) || (c = new_cmd(rc, cb, arg)) == NULL)
		return REDISCONN_UNAVAILABLE;
	if (rc->ac == NULL || redisAsyncFormattedCommand(rc->ac, cmd_reply, c, cmd, len) != REDIS_OK) {
		free(c);
		return REDISCONN_UNAVAILABLE;
	}
	if (rc->outstanding++ == 0)
		rc->progress_at = clock_mono();
	return REDISCONN_SENT;
}

static enum redisconn_send setup_cmd(struct redisconn *rc, int argc, const char **argv, const char *ok_error,
				     bool role)
{
	struct rcmd *c;

	if (rc->state != R_HANDSHAKE || (c = new_cmd(rc, NULL, NULL)) == NULL)
		return REDISCONN_UNAVAILABLE;
	c->setup = true;
	c->ok_error = ok_error;
	c->role = role;
	snprintf(c->what, sizeof(c->what), "%s", argv[0]);
	if (send_cmd(rc, c, argc, argv, NULL) != REDISCONN_SENT)
		return REDISCONN_UNAVAILABLE;
	rc->setup_left++;
	return REDISCONN_SENT;
}

enum redisconn_send redisconn_setup(struct redisconn *rc, int argc, const char **argv, const char *ok_error)
{
	return setup_cmd(rc, argc, argv, ok_error, false);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redisconn *rc = ac->data;
	char db[16];

	if (status != REDIS_OK) {
		/* Said once per outage, not on every attempt of the backoff. */
		if (rc->backoff <= BACKOFF_FIRST)
			say(rc, LOG_WARN, "connect failed: %s (retrying with backoff)", ac->errstr);
		else
			log_debug("%s: connect failed: %s", rc->p.name, ac->errstr);
		rc->ac = NULL;  /* hiredis frees the context after this callback */
		schedule_reconnect(rc);
		if (rc->hooks.on_lost != NULL)
			rc->hooks.on_lost(rc->hooks.arg);
		return;
	}
	set_state(rc, R_HANDSHAKE);
	rc->setup_left = 0;
	rc->setup_failed = false;
	if (rc->p.password != NULL)
		redisconn_setup(rc, 2, (const char *[]){ "AUTH", rc->p.password }, NULL);
	snprintf(db, sizeof(db), "%d", rc->p.db);
	if (rc->p.db != 0)
		redisconn_setup(rc, 2, (const char *[]){ "SELECT", db }, NULL);
	/* What a sentinel named may be a replica by now (a failover in progress, a stale answer). */
	if (rc->nsentinels > 0)
		setup_cmd(rc, 1, (const char *[]){ "ROLE" }, NULL, true);
	if (rc->hooks.on_handshake != NULL)
		rc->hooks.on_handshake(rc->hooks.arg, rc);
	if (rc->setup_left == 0 && rc->state == R_HANDSHAKE)
		setup_done(rc);
}

/* A hiredis context on the loop, connecting (ac->data = rc); NULL with the reason in why. */
static redisAsyncContext *open_async(struct redisconn *rc, const char *host, int port, char *why, size_t whylen)
{
	redisAsyncContext *ac = host != NULL ? redisAsyncConnect(host, port) : redisAsyncConnectUnix(rc->p.unix_socket);

	if (ac == NULL || ac->err) {
		snprintf(why, whylen, "%s", ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		return NULL;
	}
	ac->data = rc;
	redisLibeventAttach(ac, rc->base);
	return ac;
}

/* The data connection, to host/port (or the unix socket), or to the master the sentinels named. */
static void connect_server(struct redisconn *rc)
{
	char why[200];
	redisAsyncContext *ac = open_async(rc, rc->p.unix_socket != NULL ? NULL : rc->host, rc->port, why, sizeof(why));

	if (ac == NULL) {
		say(rc, LOG_WARN, "cannot connect: %s", why);
		schedule_reconnect(rc);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	rc->outstanding = 0;
	set_state(rc, R_CONNECTING);
}

/* ---- Sentinel: who is the master ---- */

static void ask_next(struct redisconn *rc);
static void start_watch(struct redisconn *rc, size_t idx);

static void sentinel_connected(const redisAsyncContext *ac, int status)
{
	struct redisconn *rc = ac->data;

	/* A failure is handled by the reply callback, which hiredis runs with NULL next. */
	if (status != REDIS_OK && ac == rc->sac)
		snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "%s", ac->errstr);
}

/* The answer of the sentinel being asked: connect to the master it names, or ask the next one. */
static void master_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redisconn *rc = privdata;
	char host[SENTINEL_HOST_MAX], why[200] = "", at[SENTINEL_HOST_MAX + 10], was[SENTINEL_HOST_MAX + 10];
	enum sentinel_master m;
	int port;

	if (rc->closing || ac != rc->sac)
		return;
	rc->sac = NULL;
	if (reply == NULL) {  /* the context is being freed: refused, lost, or timed out */
		if (rc->sentinel_why[0] == '\0')
			snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "no answer");
		ask_next(rc);
		return;
	}
	m = sentinel_master_reply(reply, host, sizeof(host), &port, why, sizeof(why));
	redisAsyncFree(ac);  /* done with it: hiredis frees it once this callback returns */
	if (m != SENTINEL_MASTER_OK) {
		snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "%s", m == SENTINEL_MASTER_UNKNOWN ?
			 "it does not know that master name" : m == SENTINEL_MASTER_ERROR ? why : "a reply that is not an address");
		ask_next(rc);
		return;
	}
	hostport(rc->host, rc->port, was, sizeof(was));
	if (rc->host[0] == '\0' || strcmp(host, rc->host) != 0 || port != rc->port)
		note(rc, "sentinel %s names %s as master '%s'%s%s%s", hostport(rc->sentinels[rc->asking].host,
		     rc->sentinels[rc->asking].port, why, sizeof(why)), hostport(host, port, at, sizeof(at)),
		     rc->p.master_name, rc->host[0] ? " (was " : "", rc->host[0] ? was : "", rc->host[0] ? ")" : "");
	snprintf(rc->host, sizeof(rc->host), "%s", host);
	rc->port = port;
	if (rc->p.follow_failover && rc->wac == NULL && !evtimer_pending(rc->watch_ev, NULL))
		start_watch(rc, rc->asking);
	connect_server(rc);
}

/* One sentinel after the other; when a whole round named no master, back off and start again. */
static void ask_next(struct redisconn *rc)
{
	const char *argv[2] = { "AUTH", rc->p.sentinel_password };
	const char *ask[4] = { "SENTINEL", "get-master-addr-by-name", rc->p.master_name, NULL };
	char why[200], at[SENTINEL_HOST_MAX + 10];
	redisAsyncContext *ac;

	while (rc->round_left > 0) {
		const struct sentinel_at *s = &rc->sentinels[rc->next];

		if (rc->sentinel_why[0] != '\0')
			log_debug("%s: sentinel %s: %s", rc->p.name, hostport(rc->sentinels[rc->asking].host,
				  rc->sentinels[rc->asking].port, at, sizeof(at)), rc->sentinel_why);
		rc->sentinel_why[0] = '\0';
		rc->round_left--;
		rc->asking = rc->next;
		rc->next = (rc->next + 1) % rc->nsentinels;
		if ((ac = open_async(rc, s->host, s->port, why, sizeof(why))) == NULL) {
			snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "%s", why);
			continue;
		}
		redisAsyncSetConnectCallback(ac, sentinel_connected);
		if (rc->p.sentinel_password != NULL)
			redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, NULL);
		if (redisAsyncCommandArgv(ac, master_reply, rc, 3, ask, NULL) != REDIS_OK) {
			redisAsyncFree(ac);
			snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "out of memory");
			continue;
		}
		rc->sac = ac;
		set_state(rc, R_DISCOVER);
		return;
	}
	if (rc->backoff <= BACKOFF_FIRST)
		say(rc, LOG_WARN, "no sentinel named master '%s' (last: %s %s); retrying with backoff", rc->p.master_name,
		    hostport(rc->sentinels[rc->asking].host, rc->sentinels[rc->asking].port, at, sizeof(at)),
		    rc->sentinel_why);
	else
		log_debug("%s: no sentinel named master '%s'", rc->p.name, rc->p.master_name);
	schedule_reconnect(rc);
	if (rc->hooks.on_lost != NULL)
		rc->hooks.on_lost(rc->hooks.arg);
}

static void do_connect(struct redisconn *rc)
{
	if (rc->nsentinels == 0) {
		connect_server(rc);
		return;
	}
	rc->round_left = rc->nsentinels;
	rc->sentinel_why[0] = '\0';
	ask_next(rc);
}

/* ---- Sentinel: following a failover ---- */

/* Drop whatever the connection is doing and ask the sentinels again, at once. */
static void rediscover(struct redisconn *rc, const char *why)
{
	redisAsyncContext *sac = rc->sac;

	say(rc, LOG_WARN, "%s; asking the sentinels again", why);
	rc->sac = NULL;  /* its callback, run with NULL by the free, is then ignored */
	if (sac != NULL)
		redisAsyncFree(sac);
	evtimer_del(rc->reconnect_ev);
	rc->backoff = BACKOFF_FIRST;
	if (rc->ac != NULL) {
		close_context(rc);
		lost(rc);
	} else {
		schedule_reconnect(rc);
	}
}

static void watch_later(struct redisconn *rc)
{
	struct timeval tv = clock_timeval(WATCH_RETRY < rc->p.reconnect_max ? WATCH_RETRY : rc->p.reconnect_max);

	evtimer_add(rc->watch_ev, &tv);
}

/* A message on the +switch-master subscription (NULL: the subscription is gone). */
static void watch_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redisconn *rc = privdata;
	char host[SENTINEL_HOST_MAX], at[SENTINEL_HOST_MAX + 10], s[SENTINEL_HOST_MAX + 10], why[600];
	int port;

	if (rc->closing || ac != rc->wac)
		return;
	hostport(rc->sentinels[rc->watching].host, rc->sentinels[rc->watching].port, s, sizeof(s));
	if (reply == NULL) {
		rc->wac = NULL;
		if (!rc->p.quiet)
			log_warn("%s: sentinel %s: +switch-master subscription lost; renewing it", rc->p.name, s);
		rc->watch_up = false;
		rc->watching = (rc->watching + 1) % rc->nsentinels;
		watch_later(rc);
		return;
	}
	switch (sentinel_switch_message(reply, rc->p.master_name, host, sizeof(host), &port)) {
	case SENTINEL_SWITCH_OURS:
		snprintf(why, sizeof(why), "sentinel %s: master '%s' switched to %s", s, rc->p.master_name,
			 hostport(host, port, at, sizeof(at)));
		if (redisconn_ready(rc) && strcmp(host, rc->host) == 0 && port == rc->port) {
			note(rc, "%s (followed already)", why);  /* the connection was lost first */
		} else {
			rc->next = rc->watching;  /* the others may not know yet: ask the one that said so */
			rediscover(rc, why);
		}
		break;
	case SENTINEL_SWITCH_OTHER:
		if (!rc->watch_up)
			note(rc, "following failovers through sentinel %s", s);
		rc->watch_up = true;
		break;
	case SENTINEL_SWITCH_BAD:
		log_debug("%s: sentinel %s: a message that is not a +switch-master", rc->p.name, s);
		break;
	}
}

static void start_watch(struct redisconn *rc, size_t idx)
{
	const char *auth[2] = { "AUTH", rc->p.sentinel_password }, *sub[2] = { "SUBSCRIBE", SENTINEL_CHANNEL };
	const struct sentinel_at *s = &rc->sentinels[idx];
	char why[200];
	redisAsyncContext *ac = open_async(rc, s->host, s->port, why, sizeof(why));

	rc->watching = idx;
	if (ac == NULL) {
		log_debug("%s: cannot subscribe at a sentinel: %s", rc->p.name, why);
		rc->watching = (idx + 1) % rc->nsentinels;
		watch_later(rc);
		return;
	}
	/* Its failures reach watch_message with NULL (hiredis runs subscription callbacks so). */
	if (rc->p.sentinel_password != NULL)
		redisAsyncCommandArgv(ac, NULL, NULL, 2, auth, NULL);
	if (redisAsyncCommandArgv(ac, watch_message, rc, 2, sub, NULL) != REDIS_OK) {
		redisAsyncFree(ac);
		watch_later(rc);
		return;
	}
	rc->wac = ac;
}

static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redisconn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->wac == NULL)
		start_watch(rc, rc->watching);
}

/* ---- timers, life cycle ---- */

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	do_connect(arg);
}

static void moved_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redisconn *rc = arg;

	(void)fd;
	(void)what;
	if (!rc->moved)
		return;  /* lost meanwhile: the reconnect is under way */
	if (rc->ac != NULL)
		close_context(rc);
	lost(rc);
}

void redisconn_reset(struct redisconn *rc, const char *why)
{
	if (rc->ac == NULL)
		return;
	say(rc, LOG_WARN, "%s; reconnecting", why);
	close_context(rc);
	lost(rc);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	struct redisconn *rc = arg;
	double now = clock_mono();

	(void)fd;
	(void)what;
	if (rc->state == R_DISCOVER && rc->sac != NULL && now - rc->state_since > rc->p.timeout) {
		snprintf(rc->sentinel_why, sizeof(rc->sentinel_why), "no answer within redis.timeout");
		redisAsyncFree(rc->sac);  /* master_reply runs with NULL and asks the next one */
	} else if ((rc->state == R_CONNECTING || rc->state == R_HANDSHAKE) && now - rc->state_since > rc->p.timeout) {
		redisconn_reset(rc, "connect timed out");
	} else if (rc->state >= R_HANDSHAKE && rc->outstanding > 0 && now - rc->progress_at > rc->p.timeout) {
		redisconn_reset(rc, "command timed out");
	}
}

void redisconn_params_of(const struct config *cfg, struct redisconn_params *p)
{
	memset(p, 0, sizeof(*p));
	p->host = cfg->redis_host;
	p->port = cfg->redis_port;
	p->unix_socket = cfg->redis_unix_socket;
	p->password = cfg->redis_password;
	p->db = cfg->redis_db;
	p->timeout = cfg->redis_timeout;
	p->reconnect_max = cfg->redis_reconnect_max;
	p->name = "redis";
	p->sentinels = (const char *const *)cfg->redis_sentinels.v;  /* NULL-terminated; NULL: none */
	p->master_name = cfg->redis_master_name;
	p->sentinel_password = cfg->redis_sentinel_password;
	p->cluster = (const char *const *)cfg->redis_cluster.v;  /* NULL-terminated; NULL: none */
}

/* The sentinel list parsed once (the config checked every entry). -1 on allocation failure. */
static int load_sentinels(struct redisconn *rc)
{
	size_t n = 0;

	while (rc->p.sentinels != NULL && rc->p.master_name != NULL && rc->p.sentinels[n] != NULL)
		n++;
	if (n == 0)
		return 0;
	if ((rc->sentinels = calloc(n, sizeof(*rc->sentinels))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct sentinel_at *s = &rc->sentinels[rc->nsentinels];

		if (sentinel_parse_addr(rc->p.sentinels[i], s->host, sizeof(s->host), &s->port, NULL, 0) == SENTINEL_OK)
			rc->nsentinels++;
	}
	return 0;
}

struct redisconn *redisconn_new(struct event_base *base, const struct redisconn_params *p,
				const struct redisconn_hooks *hooks)
{
	struct redisconn *rc = calloc(1, sizeof(*rc));
	struct timeval tv = clock_timeval(WATCHDOG_PERIOD);

	if (rc == NULL)
		return NULL;
	rc->base = base;
	rc->p = *p;
	if (rc->p.name == NULL)
		rc->p.name = "redis";
	if (hooks != NULL)
		rc->hooks = *hooks;
	rc->backoff = BACKOFF_FIRST;
	if (rc->p.host != NULL && rc->p.unix_socket == NULL)
		snprintf(rc->host, sizeof(rc->host), "%s", rc->p.host);
	rc->port = rc->p.port;
	rc->reconnect_ev = evtimer_new(base, reconnect_cb, rc);
	rc->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, rc);
	rc->moved_ev = event_new(base, -1, 0, moved_cb, rc);
	rc->watch_ev = evtimer_new(base, watch_cb, rc);
	if (rc->reconnect_ev == NULL || rc->watchdog_ev == NULL || rc->moved_ev == NULL || rc->watch_ev == NULL ||
	    load_sentinels(rc) != 0) {
		redisconn_free(rc);
		return NULL;
	}
	if (rc->nsentinels > 0)
		rc->host[0] = '\0';  /* unknown until a sentinel names it */
	evtimer_add(rc->watchdog_ev, &tv);
	do_connect(rc);
	return rc;
}

void redisconn_free(struct redisconn *rc)
{
	struct event *evs[4];

	if (rc == NULL)
		return;
	rc->hooks.on_lost = NULL;
	rc->closing = true;
	if (rc->sac != NULL)
		redisAsyncFree(rc->sac);
	if (rc->wac != NULL)
		redisAsyncFree(rc->wac);
	if (rc->ac != NULL)
		close_context(rc);
	evs[0] = rc->reconnect_ev, evs[1] = rc->watchdog_ev, evs[2] = rc->moved_ev, evs[3] = rc->watch_ev;
	for (size_t i = 0; i < 4; i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	free(rc->sentinels);
	free(rc);
}

const char *redisconn_last_error(const struct redisconn *rc)
{
	return rc->last_error;
}

const char *redisconn_address(const struct redisconn *rc, char *buf, size_t len)
{
	if (rc->p.unix_socket != NULL && rc->nsentinels == 0)
		snprintf(buf, len, "%s", rc->p.unix_socket);
	else if (rc->host[0] == '\0')
		snprintf(buf, len, "%s", "");
	else
		hostport(rc->host, rc->port, buf, len);
	return buf;
}

const char *redisconn_sentinel(const struct redisconn *rc, char *buf, size_t len)
{
	if (rc->wac == NULL || !rc->watch_up)
		snprintf(buf, len, "%s", "");
	else
		hostport(rc->sentinels[rc->watching].host, rc->sentinels[rc->watching].port, buf, len);
	return buf;
}

bool redisconn_ready(const struct redisconn *rc)
{
	return rc->state == R_READY && !rc->moved;
}

long redisconn_outstanding(const struct redisconn *rc)
{
	return rc->outstanding;
}

redisReply *redisconn_reply_clone(const redisReply *r)
{
	redisReply *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->type = r->type;
	c->integer = r->integer;
	if (r->str != NULL) {
		c->str = malloc(r->len + 1);
		if (c->str == NULL)
			goto fail;
		memcpy(c->str, r->str, r->len);
		c->str[r->len] = '\0';
		c->len = r->len;
	}
	if (r->elements > 0) {
		c->element = calloc(r->elements, sizeof(*c->element));
		if (c->element == NULL)
			goto fail;
		c->elements = r->elements;
		for (size_t i = 0; i < r->elements; i++)
			if ((c->element[i] = redisconn_reply_clone(r->element[i])) == NULL)
				goto fail;
	}
	return c;
fail:
	freeReplyObject(c);
	return NULL;
}
