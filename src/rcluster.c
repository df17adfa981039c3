/* rcluster.c - Redis Cluster: the slot map, one supervised connection per master, commands routed
 * by slot, redirections followed, the map refreshed. */
#include "rcluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "sentinel.h"
#include "slot.h"

#define TICK_PERIOD 0.1
#define REFRESH_PERIOD 10.0     /* seconds between two slot maps while everything is served */
#define DEGRADED_PERIOD 0.25    /* ... while a slot has no connected master (a failover under way) */
#define PARK_RETRY 0.01         /* seconds before a parked command is tried again */
#define RETRY_DELAY 0.05        /* after -TRYAGAIN / -CLUSTERDOWN */
#define REDIRECTS_MAX 8         /* redirections one command may follow */
#define DOWN_HOLD 0.25          /* seconds no new command goes out after a -CLUSTERDOWN */

struct node {
	struct rcluster *cl;
	struct redisconn *rc;
	char host[SLOT_HOST_MAX];
	int port;
	char name[SLOT_HOST_MAX + 24];  /* "redis 127.0.0.1:7000", for log lines */
	unsigned id;                    /* of the current connection; 0: not connected */
	bool master;                    /* serves slots in the map */
	bool retired;                   /* freed by reap_ev */
};

/* A command in flight or parked: formatted once, sent again after a redirection. */
struct ccmd {
	struct rcluster *cl;
	redisconn_reply_cb cb;
	void *arg;
	char *cmd;
	size_t len;
	int slot;                       /* -1: no key */
	int redirects;
	double deadline;                /* a parked command fails (NULL reply) after this */
	double not_before;              /* -TRYAGAIN: not before this */
	bool ask;                       /* this once to ask_host:ask_port, after ASKING */
	char ask_host[SLOT_HOST_MAX];
	int ask_port;
	unsigned node;                  /* the connection it was sent on */
	struct ccmd *next;              /* the parked list */
};

struct rcluster {
	struct event_base *base;
	struct redisconn_params p;
	struct rcluster_hooks hooks;
	struct node **nodes;
	size_t nnodes, cap;
	struct node *map[SLOT_COUNT];
	bool have_map, ready, closing;
	unsigned next_id, replying;
	bool refreshing, refresh_soon;
	double last_refresh;
	double down_until;              /* a -CLUSTERDOWN: the cluster refuses every slot (a master has
					 * failed, no replica took over yet): new commands are refused */
	char asked[SLOT_HOST_MAX];      /* the host the slot map was asked of ("" in a reply: that one) */
	size_t rotate;                  /* the node asked next */
	struct ccmd *parked;
	struct event *tick_ev, *reap_ev, *park_ev;
	struct rcluster_counters n;
	char last_error[256];
};

static void check_ready(struct rcluster *cl);
static void kick_parked(struct rcluster *cl);

__attribute__((format(printf, 3, 4)))
static void say(struct rcluster *cl, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cl->last_error, sizeof(cl->last_error), fmt, ap);
	va_end(ap);
	if (cl->p.quiet || lvl < LOG_INFO)
		log_debug("redis cluster: %s", cl->last_error);
	else if (lvl >= LOG_WARN)
		log_warn("redis cluster: %s", cl->last_error);
	else
		log_info("redis cluster: %s", cl->last_error);
}

static const char *hostport(const char *host, int port, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
	return buf;
}

/* ---- nodes ---- */

static void node_ready(void *arg)
{
	struct node *n = arg;
	struct rcluster *cl = n->cl;

	n->id = ++cl->next_id;
	if (!cl->have_map)
		cl->refresh_soon = true;
	check_ready(cl);
	kick_parked(cl);
}

static void node_lost(void *arg)
{
	struct node *n = arg;
	struct rcluster *cl = n->cl;
	unsigned id = n->id;

	n->id = 0;
	if (n->master)
		cl->refresh_soon = true;  /* a failover may be under way: ask another node */
	if (id == 0)
		return;  /* a connect attempt failed */
	if (n->master)
		cl->n.masters_lost++;
	check_ready(cl);
	if (cl->hooks.on_node_lost != NULL)
		cl->hooks.on_node_lost(cl->hooks.arg, id);
}

static struct node *node_find(const struct rcluster *cl, const char *host, int port)
{
	for (size_t i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
			return cl->nodes[i];
	return NULL;
}

static struct node *node_by_id(const struct rcluster *cl, unsigned id)
{
	for (size_t i = 0; id != 0 && i < cl->nnodes; i++)
		if (cl->nodes[i]->id == id)
			return cl->nodes[i];
	return NULL;
}

static int grow_nodes(struct rcluster *cl)
{
	size_t cap = cl->cap ? cl->cap * 2 : 8;
	struct node **grown;

	if (cl->nnodes < cl->cap)
		return 0;
	if ((grown = realloc(cl->nodes, cap * sizeof(*grown))) == NULL)
		return -1;
	cl->nodes = grown;
	cl->cap = cap;
	return 0;
}

/* The node at host:port, connecting to it when new (a retired one is kept after all). */
static struct node *node_get(struct rcluster *cl, const char *host, int port)
{
	struct node *n = node_find(cl, host, port);
	struct redisconn_hooks hooks = { NULL, node_ready, node_lost, NULL };
	struct redisconn_params p = cl->p;
	char at[SLOT_HOST_MAX + 10];

	if (n != NULL) {
		n->retired = false;
		return n;
	}
	if (grow_nodes(cl) != 0 || (n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	n->cl = cl;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	snprintf(n->name, sizeof(n->name), "redis %s", hostport(host, port, at, sizeof(at)));
	hooks.arg = n;
	p.host = n->host;
	p.port = port;
	p.name = n->name;
	p.unix_socket = NULL;
	p.db = 0;
	p.sentinels = NULL;
	p.follow_failover = false;
	if ((n->rc = redisconn_new(cl->base, &p, &hooks)) == NULL) {
		free(n);
		return NULL;
	}
	cl->nodes[cl->nnodes++] = n;
	return n;
}

static void add_seeds(struct rcluster *cl)
{
	char host[SENTINEL_HOST_MAX];
	int port;

	for (size_t i = 0; cl->p.cluster != NULL && cl->p.cluster[i] != NULL; i++)
		if (sentinel_parse_addr(cl->p.cluster[i], host, sizeof(host), &port, NULL, 0) == SENTINEL_OK)
			node_get(cl, host, port);
}

/* Close and free one node that is out of the list and the map already: the callbacks of its
 * commands (answered NULL) may send again, and find only the nodes still listed. */
static void drop_node(struct rcluster *cl, struct node *n)
{
	unsigned id = n->id;

	n->id = 0;
	redisconn_free(n->rc);
	free(n);
	if (id != 0 && cl->hooks.on_node_lost != NULL)
		cl->hooks.on_node_lost(cl->hooks.arg, id);
}

/* Free what no longer serves slots, outside of its own callbacks: first out of the list, then closed. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rcluster *cl = arg;
	struct node **gone = calloc(cl->nnodes ? cl->nnodes : 1, sizeof(*gone));
	size_t kept = 0, ngone = 0;

	(void)fd;
	(void)what;
	if (gone == NULL) {
		struct timeval tv = clock_timeval(PARK_RETRY * 10);

		event_add(cl->reap_ev, &tv);  /* out of memory: a little later */
		return;
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		if (cl->nodes[i]->retired)
			gone[ngone++] = cl->nodes[i];
		else
			cl->nodes[kept++] = cl->nodes[i];
	}
	cl->nnodes = kept;
	for (size_t i = 0; i < ngone; i++)
		drop_node(cl, gone[i]);
	free(gone);
}

/* ---- the slot map ---- */

static void check_ready(struct rcluster *cl)
{
	bool ready = cl->have_map;
	bool was = cl->ready;

	for (unsigned s = 0; ready && s < SLOT_COUNT; s++)
		ready = cl->map[s] != NULL && cl->map[s]->id != 0;
	cl->ready = ready;
	if (ready && !was && cl->hooks.on_ready != NULL)
		cl->hooks.on_ready(cl->hooks.arg);
}

/* The ranges as the new map; nodes serving no slot are retired. */
static void apply_map(struct rcluster *cl, const struct slot_range *r, size_t nr)
{
	char was[1024], now[1024];
	size_t masters = 0;

	rcluster_address(cl, was, sizeof(was));
	for (size_t i = 0; i < cl->nnodes; i++)
		cl->nodes[i]->master = false;
	memset(cl->map, 0, sizeof(cl->map));
	for (size_t i = 0; i < nr; i++) {
		struct node *n = node_get(cl, r[i].host[0] != '\0' ? r[i].host : cl->asked, r[i].port);

		if (n == NULL)
			continue;
		masters += !n->master;
		n->master = true;
		for (unsigned s = r[i].start; s <= r[i].end; s++)
			cl->map[s] = n;
	}
	for (size_t i = 0; masters > 0 && i < cl->nnodes; i++)
		if (!cl->nodes[i]->master && !cl->nodes[i]->retired) {
			cl->nodes[i]->retired = true;
			event_active(cl->reap_ev, EV_TIMEOUT, 1);
		}
	cl->have_map = true;
	cl->n.refreshes++;
	if (strcmp(rcluster_address(cl, now, sizeof(now)), was) != 0)
		say(cl, LOG_INFO, "slot map (asked %s): %zu masters: %s%s", cl->asked, masters, now,
		    slot_map_uncovered(r, nr) > 0 ? "; some slots unserved" : "");
	check_ready(cl);
	kick_parked(cl);
}

static void slots_reply(void *arg, redisReply *rep)
{
	struct rcluster *cl = arg;
	struct slot_range *r;
	size_t nr;

	cl->refreshing = false;
	if (cl->closing || rep == NULL)
		return;
	if (slot_map_parse(rep, &r, &nr) != SLOT_MAP_OK) {
		say(cl, LOG_WARN, "CLUSTER SLOTS: %s", rep->type == REDIS_REPLY_ERROR ? rep->str : "an unreadable reply");
		return;
	}
	if (nr == 0)
		say(cl, LOG_WARN, "CLUSTER SLOTS: no slot is assigned to any node yet");
	else
		apply_map(cl, r, nr);
	free(r);
}

/* Ask one connected node (in turn) for the slot map; with none, connect to the seeds again. */
static void refresh(struct rcluster *cl)
{
	const char *argv[] = { "CLUSTER", "SLOTS" };

	if (cl->refreshing)
		return;
	cl->last_refresh = clock_mono();
	for (size_t k = 0; k < cl->nnodes; k++) {
		struct node *n = cl->nodes[(cl->rotate + k) % cl->nnodes];

		if (n->id == 0 || n->retired)
			continue;
		cl->rotate = (cl->rotate + k + 1) % cl->nnodes;
		snprintf(cl->asked, sizeof(cl->asked), "%s", n->host);
		if (redisconn_send(n->rc, slots_reply, cl, 2, argv, NULL) == REDISCONN_SENT)
			cl->refreshing = true;
		return;
	}
	add_seeds(cl);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rcluster *cl = arg;
	double since = clock_mono() - cl->last_refresh;

	(void)fd;
	(void)what;
	if (cl->refresh_soon || since >= (cl->ready ? REFRESH_PERIOD : DEGRADED_PERIOD)) {
		cl->refresh_soon = false;
		refresh(cl);
	}
}

/* ---- commands ---- */

static void finish(struct ccmd *c, redisReply *rep)
{
	struct rcluster *cl = c->cl;
	unsigned was = cl->replying;

	cl->replying = rep != NULL ? c->node : 0;
	if (c->cb != NULL)
		c->cb(c->arg, rep);
	cl->replying = was;
	redisFreeCommand(c->cmd);
	free(c);
}

/* Where the command goes now: the ASK target, the slot's master, or (no key) any connected one. */
static struct node *target(struct rcluster *cl, const struct ccmd *c)
{
	if (c->ask)
		return node_find(cl, c->ask_host, c->ask_port);
	if (c->slot >= 0)
		return cl->map[c->slot];
	for (size_t i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i]->master && cl->nodes[i]->id != 0)
			return cl->nodes[i];
	return NULL;
}

static void ccmd_reply(void *arg, redisReply *rep);

/* Send to n now. False when n is not connected (nothing was sent). */
static bool send_to(struct node *n, struct ccmd *c)
{
	static const char *const asking[] = { "ASKING" };

	if (n == NULL || n->id == 0 || n->retired)
		return false;
	if (c->ask && redisconn_send(n->rc, NULL, NULL, 1, (const char **)asking, NULL) != REDISCONN_SENT)
		return false;
	if (redisconn_send_formatted(n->rc, ccmd_reply, c, c->cmd, c->len) != REDISCONN_SENT)
		return false;
	c->node = n->id;
	return true;
}

static void park(struct rcluster *cl, struct ccmd *c)
{
	struct timeval tv = clock_timeval(PARK_RETRY);

	c->next = cl->parked;
	cl->parked = c;
	if (!evtimer_pending(cl->park_ev, NULL))
		evtimer_add(cl->park_ev, &tv);
}

static void kick_parked(struct rcluster *cl)
{
	if (cl->parked != NULL)
		event_active(cl->park_ev, EV_TIMEOUT, 1);
}

/* Parked commands go as soon as their node is connected; past their deadline they fail. */
static void park_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rcluster *cl = arg;
	struct ccmd *list = cl->parked, *c;
	double now = clock_mono();

	(void)fd;
	(void)what;
	cl->parked = NULL;
	while ((c = list) != NULL) {
		list = c->next;
		c->next = NULL;
		if (now > c->deadline)
			finish(c, NULL);
		else if (now < c->not_before || !send_to(target(cl, c), c))
			park(cl, c);
	}
}

/* What a redirection made of a reply. */
enum redir { R_ANSWER, R_FOLLOWED, R_GAVE_UP };

/* A -MOVED or -ASK (the command goes again), -TRYAGAIN or -CLUSTERDOWN (after a pause). R_ANSWER:
 * the error is the answer; R_GAVE_UP: a retry that ran out of time (it was never executed). */
static enum redir redirected(struct ccmd *c, const redisReply *rep)
{
	struct rcluster *cl = c->cl;
	char host[SLOT_HOST_MAX];
	const struct node *from = node_by_id(cl, c->node);
	unsigned slot = 0;
	int port = 0;
	enum slot_redirect k = slot_redirect_parse(rep->str, rep->len, &slot, host, sizeof(host), &port);
	struct node *n;

	if (k == SLOT_REDIRECT_DOWN)
		cl->down_until = clock_mono() + DOWN_HOLD;
	if (k == SLOT_REDIRECT_NONE || k == SLOT_REDIRECT_BAD)
		return R_ANSWER;
	if (++c->redirects > REDIRECTS_MAX || clock_mono() > c->deadline)
		return k == SLOT_REDIRECT_DOWN || k == SLOT_REDIRECT_TRYAGAIN ? R_GAVE_UP : R_ANSWER;
	if ((k == SLOT_REDIRECT_MOVED || k == SLOT_REDIRECT_ASK) && host[0] == '\0') {
		if (from == NULL)
			return R_ANSWER;
		snprintf(host, sizeof(host), "%s", from->host);
	}
	c->ask = false;
	c->not_before = 0;
	if (k == SLOT_REDIRECT_MOVED) {
		cl->n.moved++;
		cl->refresh_soon = true;
		if ((n = node_get(cl, host, port)) == NULL)
			return R_ANSWER;
		n->master = true;
		cl->map[slot] = n;  /* at once: the next command of that slot goes there too */
		check_ready(cl);
	} else if (k == SLOT_REDIRECT_ASK) {
		cl->n.ask++;
		c->ask = true;
		snprintf(c->ask_host, sizeof(c->ask_host), "%s", host);
		c->ask_port = port;
		if (node_get(cl, host, port) == NULL)
			return R_ANSWER;
	} else {
		cl->n.retried++;
		cl->refresh_soon = k == SLOT_REDIRECT_DOWN;
		c->not_before = clock_mono() + RETRY_DELAY;
	}
	log_debug("redis cluster: %.*s", (int)(rep->len < 120 ? rep->len : 120), rep->str);
	if (c->not_before > 0 || !send_to(target(cl, c), c))
		park(cl, c);
	return R_FOLLOWED;
}

static void ccmd_reply(void *arg, redisReply *rep)
{
	struct ccmd *c = arg;
	enum redir r = R_ANSWER;

	if (rep != NULL && rep->type == REDIS_REPLY_ERROR && !c->cl->closing)
		r = redirected(c, rep);
	if (r != R_FOLLOWED)
		finish(c, r == R_GAVE_UP ? NULL : rep);
}

static struct ccmd *new_ccmd(struct rcluster *cl, redisconn_reply_cb cb, void *arg, int argc, const char **argv,
			     const size_t *argvlen)
{
	struct ccmd *c = calloc(1, sizeof(*c));
	int len, k;

	if (c == NULL)
		return NULL;
	if ((len = redisFormatCommandArgv(&c->cmd, argc, argv, argvlen)) < 0) {
		free(c);
		return NULL;
	}
	k = slot_command_key(argc, argv, argvlen);
	c->cl = cl;
	c->cb = cb;
	c->arg = arg;
	c->len = (size_t)len;
	c->slot = k < 0 ? -1 : (int)slot_of(argv[k], argvlen != NULL ? argvlen[k] : strlen(argv[k]));
	c->deadline = clock_mono() + cl->p.timeout;
	return c;
}

enum rcluster_send rcluster_send(struct rcluster *cl, redisconn_reply_cb cb, void *arg, int argc, const char **argv,
				 const size_t *argvlen)
{
	int k = slot_command_key(argc, argv, argvlen);
	struct ccmd probe = { .slot = k < 0 ? -1 : (int)slot_of(argv[k], argvlen != NULL ? argvlen[k] : strlen(argv[k])) };
	const struct node *n = target(cl, &probe);
	struct ccmd *c;

	/* Nothing is formatted for a slot whose master is away (ingest asks on every put). */
	if (n == NULL || n->id == 0 || n->retired || clock_mono() < cl->down_until ||
	    (c = new_ccmd(cl, cb, arg, argc, argv, argvlen)) == NULL)
		return RCLUSTER_UNAVAILABLE;
	if (!send_to(target(cl, c), c)) {
		redisFreeCommand(c->cmd);
		free(c);
		return RCLUSTER_UNAVAILABLE;
	}
	return RCLUSTER_SENT;
}

enum rcluster_send rcluster_send_node(struct rcluster *cl, unsigned node, redisconn_reply_cb cb, void *arg, int argc,
				      const char **argv, const size_t *argvlen)
{
	struct node *n = node_by_id(cl, node);
	struct ccmd *c;

	if (n == NULL || n->retired || (c = new_ccmd(cl, cb, arg, argc, argv, argvlen)) == NULL)
		return RCLUSTER_UNAVAILABLE;
	c->redirects = REDIRECTS_MAX;  /* this connection's answer, whatever it is */
	if (!send_to(n, c)) {
		redisFreeCommand(c->cmd);
		free(c);
		return RCLUSTER_UNAVAILABLE;
	}
	return RCLUSTER_SENT;
}

unsigned rcluster_reply_node(const struct rcluster *cl)
{
	return cl->replying;
}

/* ---- life cycle and state ---- */

struct rcluster *rcluster_new(struct event_base *base, const struct redisconn_params *p,
			      const struct rcluster_hooks *hooks)
{
	struct rcluster *cl = calloc(1, sizeof(*cl));
	struct timeval tv = clock_timeval(TICK_PERIOD);

	if (cl == NULL)
		return NULL;
	cl->base = base;
	cl->p = *p;
	if (hooks != NULL)
		cl->hooks = *hooks;
	cl->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, cl);
	cl->reap_ev = event_new(base, -1, 0, reap_cb, cl);
	cl->park_ev = evtimer_new(base, park_cb, cl);
	if (cl->tick_ev == NULL || cl->reap_ev == NULL || cl->park_ev == NULL) {
		rcluster_free(cl);
		return NULL;
	}
	evtimer_add(cl->tick_ev, &tv);
	add_seeds(cl);
	if (cl->nnodes == 0) {
		rcluster_free(cl);
		return NULL;
	}
	return cl;
}

void rcluster_free(struct rcluster *cl)
{
	struct ccmd *c;

	if (cl == NULL)
		return;
	struct node **nodes = cl->nodes;
	size_t n = cl->nnodes;

	cl->closing = true;
	cl->hooks.on_node_lost = NULL;
	cl->hooks.on_ready = NULL;
	/* Callbacks answered NULL below may send again: they find no node and no map. */
	cl->nodes = NULL;
	cl->nnodes = cl->cap = 0;
	memset(cl->map, 0, sizeof(cl->map));
	cl->ready = cl->have_map = false;
	for (size_t i = 0; i < n; i++) {
		redisconn_free(nodes[i]->rc);
		free(nodes[i]);
	}
	free(nodes);
	while ((c = cl->parked) != NULL) {
		cl->parked = c->next;
		finish(c, NULL);
	}
	if (cl->tick_ev != NULL)
		event_free(cl->tick_ev);
	if (cl->reap_ev != NULL)
		event_free(cl->reap_ev);
	if (cl->park_ev != NULL)
		event_free(cl->park_ev);
	free(cl->nodes);
	free(cl);
}

bool rcluster_ready(const struct rcluster *cl)
{
	return cl->ready;
}

bool rcluster_usable(const struct rcluster *cl)
{
	for (size_t i = 0; cl->have_map && i < cl->nnodes; i++)
		if (cl->nodes[i]->master && cl->nodes[i]->id != 0)
			return true;
	return false;
}

bool rcluster_key_ready(const struct rcluster *cl, const char *key, size_t len)
{
	const struct node *n = cl->map[slot_of(key, len)];

	return n != NULL && n->id != 0 && clock_mono() >= cl->down_until;
}

void rcluster_counters(const struct rcluster *cl, struct rcluster_counters *out)
{
	*out = cl->n;
	out->masters = out->masters_ready = 0;
	for (size_t i = 0; i < cl->nnodes; i++) {
		out->masters += cl->nodes[i]->master;
		out->masters_ready += cl->nodes[i]->master && cl->nodes[i]->id != 0;
	}
}

const char *rcluster_address(const struct rcluster *cl, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < cl->nnodes && off < len; i++) {
		char at[SLOT_HOST_MAX + 10];

		if (!cl->nodes[i]->master)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off > 0 ? "," : "",
					hostport(cl->nodes[i]->host, cl->nodes[i]->port, at, sizeof(at)));
	}
	return buf;
}

const char *rcluster_slot_master(const struct rcluster *cl, unsigned slot, char *buf, size_t len)
{
	const struct node *n = slot < SLOT_COUNT ? cl->map[slot] : NULL;

	if (n == NULL)
		snprintf(buf, len, "%s", "");
	else
		hostport(n->host, n->port, buf, len);
	return buf;
}

const char *rcluster_last_error(const struct rcluster *cl)
{
	return cl->last_error;
}
