/* redisconn.c - one supervised hiredis async connection: connect, handshake, watchdog, reconnect. */
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

#define WATCHDOG_PERIOD 0.25
#define BACKOFF_FIRST 0.1

enum rstate { R_DOWN, R_CONNECTING, R_HANDSHAKE, R_READY };

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
	struct event *reconnect_ev;
	struct event *watchdog_ev;
	char last_error[256];
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

/* Wraps every command so the watchdog knows what is outstanding. */
struct rcmd {
	struct redisconn *rc;
	redisconn_reply_cb cb;
	void *arg;
	const char *ok_error;           /* setup commands: the error that counts as success */
	bool setup;
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
	schedule_reconnect(rc);
	if (rc->hooks.on_lost != NULL)
		rc->hooks.on_lost(rc->hooks.arg);
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

static void cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rcmd *c = privdata;
	struct redisconn *rc = c->rc;
	redisReply *rep = reply;

	(void)ac;
	rc->outstanding--;
	rc->progress_at = clock_mono();
	if (c->setup && rep != NULL) {
		if (rep->type == REDIS_REPLY_ERROR &&
		    (c->ok_error == NULL || strncmp(rep->str, c->ok_error, strlen(c->ok_error)) != 0)) {
			if (!rc->setup_failed)
				say(rc, LOG_ERROR, "%s failed: %s", c->what, rep->str);
			rc->setup_failed = true;
			free(c);
			if (rc->ac != NULL)
				redisAsyncDisconnect(rc->ac);
			return;
		}
		if (--rc->setup_left == 0)
			setup_done(rc);
	} else if (c->cb != NULL) {
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

	if (rc->state != R_READY || (c = new_cmd(rc, cb, arg)) == NULL)
		return REDISCONN_UNAVAILABLE;
	return send_cmd(rc, c, argc, argv, argvlen);
}

enum redisconn_send redisconn_setup(struct redisconn *rc, int argc, const char **argv, const char *ok_error)
{
	struct rcmd *c;

	if (rc->state != R_HANDSHAKE || (c = new_cmd(rc, NULL, NULL)) == NULL)
		return REDISCONN_UNAVAILABLE;
	c->setup = true;
	c->ok_error = ok_error;
	snprintf(c->what, sizeof(c->what), "%s", argv[0]);
	if (send_cmd(rc, c, argc, argv, NULL) != REDISCONN_SENT)
		return REDISCONN_UNAVAILABLE;
	rc->setup_left++;
	return REDISCONN_SENT;
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
	if (rc->hooks.on_handshake != NULL)
		rc->hooks.on_handshake(rc->hooks.arg, rc);
	if (rc->setup_left == 0 && rc->state == R_HANDSHAKE)
		setup_done(rc);
}

static void do_connect(struct redisconn *rc)
{
	redisAsyncContext *ac = rc->p.unix_socket != NULL ? redisAsyncConnectUnix(rc->p.unix_socket)
							  : redisAsyncConnect(rc->p.host, rc->p.port);

	if (ac == NULL || ac->err) {
		say(rc, LOG_WARN, "cannot connect: %s", ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		schedule_reconnect(rc);
		return;
	}
	ac->data = rc;
	redisLibeventAttach(ac, rc->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	rc->outstanding = 0;
	set_state(rc, R_CONNECTING);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	do_connect(arg);
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
	if ((rc->state == R_CONNECTING || rc->state == R_HANDSHAKE) && now - rc->state_since > rc->p.timeout)
		redisconn_reset(rc, "connect timed out");
	else if (rc->state >= R_HANDSHAKE && rc->outstanding > 0 && now - rc->progress_at > rc->p.timeout)
		redisconn_reset(rc, "command timed out");
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
	rc->reconnect_ev = evtimer_new(base, reconnect_cb, rc);
	rc->watchdog_ev = event_new(base, -1, EV_PERSIST, watchdog_cb, rc);
	if (rc->reconnect_ev == NULL || rc->watchdog_ev == NULL) {
		redisconn_free(rc);
		return NULL;
	}
	evtimer_add(rc->watchdog_ev, &tv);
	do_connect(rc);
	return rc;
}

void redisconn_free(struct redisconn *rc)
{
	if (rc == NULL)
		return;
	rc->hooks.on_lost = NULL;
	if (rc->ac != NULL)
		close_context(rc);
	if (rc->reconnect_ev != NULL)
		event_free(rc->reconnect_ev);
	if (rc->watchdog_ev != NULL)
		event_free(rc->watchdog_ev);
	free(rc);
}

const char *redisconn_last_error(const struct redisconn *rc)
{
	return rc->last_error;
}

bool redisconn_ready(const struct redisconn *rc)
{
	return rc->state == R_READY;
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
