/* generation.c - a loaded configuration with its tables, reference counted; reload comparisons. */
#include "generation.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "category.h"
#include "config.h"
#include "endpoint.h"
#include "route.h"

struct generation {
	struct config *cfg;
	struct route *routes;
	struct endpoint_table *endpoints;   /* built-in, then the config's */
	unsigned refs;                      /* holders */
	unsigned requests;                  /* ingest requests in flight */
	unsigned long id;
	struct generation *prev;            /* held until no request of it (or before it) is in flight */
};

/* ---- the tables ---- */

static unsigned methods_of(const struct config_strlist *l)
{
	static const struct { const char *name; unsigned bit; } m[] = {
		{ "GET", EP_GET }, { "POST", EP_POST }, { "PUT", EP_PUT }, { "PATCH", EP_PATCH },
	};
	unsigned bits = 0;

	for (size_t i = 0; i < l->n; i++)
		for (size_t j = 0; j < sizeof(m) / sizeof(m[0]); j++)
			if (strcmp(l->v[i], m[j].name) == 0)
				bits |= m[j].bit;
	return bits;
}

/* An endpoint of the config as a table entry (config.c validated every field). */
static void convert(const struct config_endpoint *c, struct endpoint *e)
{
	category_mask cats = 0;

	for (size_t i = 0; i < c->categories.n; i++)
		cats |= category_from_name(c->categories.v[i], strlen(c->categories.v[i]));
	*e = (struct endpoint){
		.name = c->name, .pattern = c->path, .methods = methods_of(&c->methods), .status = c->status,
		.reply = strcmp(c->reply, "id") == 0 ? EP_REPLY_ID : strcmp(c->reply, "uuid") == 0 ? EP_REPLY_UUID
												: EP_REPLY_EMPTY,
		.body = c->body_required ? EP_BODY_REQUIRED : EP_BODY_OPTIONAL, .mime = EP_MIME_ANY,
		.limit = EP_LIMIT_OWN, .kind = EP_KIND_OPAQUE,
		.categories = cats != 0 ? cats : CATEGORY_BIT(CAT_DEFAULT), .limit_bytes = c->limit,
	};
}

static struct endpoint_table *endpoints_of(const struct config *cfg)
{
	struct endpoint *extra = calloc(cfg->nendpoints ? cfg->nendpoints : 1, sizeof(*extra));
	struct endpoint_table *t;

	if (extra == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nendpoints; i++)
		convert(&cfg->endpoints[i], &extra[i]);
	t = endpoint_table_new(extra, cfg->nendpoints);  /* copies the entries; the strings are cfg's */
	free(extra);
	return t;
}

struct generation *generation_new(struct config *cfg, unsigned long id)
{
	struct generation *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->routes = route_new(cfg);
	g->endpoints = endpoints_of(cfg);
	if (g->routes == NULL || g->endpoints == NULL) {
		route_free(g->routes);
		endpoint_table_free(g->endpoints);
		free(g);
		return NULL;
	}
	g->cfg = cfg;
	g->refs = 1;
	g->id = id;
	return g;
}

static void release(struct generation *g)
{
	if (g->refs > 0 || g->requests > 0)
		return;
	generation_drop(g->prev);
	route_free(g->routes);
	endpoint_table_free(g->endpoints);
	config_free(g->cfg);
	free(g);
}

struct generation *generation_hold(struct generation *g)
{
	g->refs++;
	return g;
}

void generation_drop(struct generation *g)
{
	if (g == NULL)
		return;
	g->refs--;
	release(g);
}

void generation_enter(struct generation *g)
{
	g->requests++;
}

void generation_leave(struct generation *g)
{
	if (g == NULL)
		return;
	g->requests--;
	release(g);
}

void generation_follow(struct generation *next, struct generation *prev)
{
	next->prev = generation_hold(prev);
}

bool generation_settled(struct generation *g)
{
	if (g->prev == NULL)
		return true;
	if (g->prev->requests > 0 || !generation_settled(g->prev))
		return false;
	generation_drop(g->prev);
	g->prev = NULL;
	return true;
}

unsigned generation_requests(const struct generation *g)
{
	return g->requests;
}

struct config *generation_config(const struct generation *g)
{
	return g->cfg;
}

const struct route *generation_routes(const struct generation *g)
{
	return g->routes;
}

const struct endpoint_table *generation_endpoints(const struct generation *g)
{
	return g->endpoints;
}

unsigned long generation_id(const struct generation *g)
{
	return g->id;
}

/* ---- what a reload changes ---- */

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_list(const struct config_strlist *a, const struct config_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!same_str(a->v[i], b->v[i]))
			return false;
	return true;
}

bool generation_same_server(const struct config_upstream *a, const struct config_upstream *b)
{
	return same_str(a->url, b->url) && a->verify == b->verify && same_str(a->ca_file, b->ca_file) &&
	       a->max_connections == b->max_connections;
}

static bool same_project(const struct config_project *a, const struct config_project *b)
{
	if (!same_str(a->key, b->key) || !same_str(a->secret, b->secret) || a->id != b->id || a->nmirrors != b->nmirrors)
		return false;
	for (size_t m = 0; m < a->nmirrors; m++)
		if (!same_str(a->mirrors[m].upstream, b->mirrors[m].upstream) ||
		    !same_str(a->mirrors[m].project, b->mirrors[m].project))
			return false;
	return true;
}

static bool same_upstream_settings(const struct config_upstream *a, const struct config_upstream *b)
{
	return generation_same_server(a, b) && a->timeout == b->timeout && a->connect_timeout == b->connect_timeout;
}

void generation_diff(const struct config *old, const struct config *cur, struct generation_diff *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < cur->nupstreams; i++) {
		const struct config_upstream *nu = &cur->upstreams[i], *ou = config_upstream_by_name(old, nu->name);

		if (ou == NULL)
			out->upstreams_added++;
		else if (!same_upstream_settings(ou, nu))
			out->upstreams_changed++;
		for (size_t j = 0; j < nu->nprojects; j++) {
			const struct config_project *op = config_project_by_name(ou, nu->projects[j].name);

			if (op == NULL)
				out->added++;
			else if (!same_project(op, &nu->projects[j]) || !generation_same_server(ou, nu))
				out->changed++;
			else
				out->kept++;
		}
	}
	for (size_t i = 0; i < old->nupstreams; i++) {
		const struct config_upstream *ou = &old->upstreams[i], *nu = config_upstream_by_name(cur, ou->name);

		if (nu == NULL)
			out->upstreams_removed++;
		for (size_t j = 0; j < ou->nprojects; j++)
			if (config_project_by_name(nu, ou->projects[j].name) == NULL)
				out->removed++;
	}
}

/* ---- keys that need a restart ---- */

enum rk_type { RK_STR, RK_INT, RK_SIZE, RK_DBL, RK_LIST, RK_BOOL, RK_ROLE };

struct restart_key {
	const char *name;
	enum rk_type type;
	size_t offset;
};

#define RK(n, t, f) { (n), (t), offsetof(struct config, f) }

/* Read once at start: the listeners (httpd), body memory (budget), the Redis connection and its
 * keys (queue, redisconn), the consumer name, the outage timing of the upstream objects. */
static const struct restart_key restart_keys[] = {
	RK("role", RK_ROLE, role),  /* which of the listener and the forwarder exist */
	RK("listen.address", RK_STR, listen_address),
	RK("listen.reuse_port", RK_BOOL, listen_reuse_port),
	RK("listen.port", RK_INT, listen_port),
	RK("listen.max_body_size", RK_SIZE, max_body_size),
	RK("listen.max_body_memory", RK_SIZE, max_body_memory),
	RK("listen.max_connections", RK_INT, listen_max_connections),
	RK("listen.head_timeout", RK_DBL, head_timeout),
	RK("listen.min_body_rate", RK_DBL, min_body_rate),
	RK("listen.client_timeout", RK_DBL, client_timeout),
	RK("redis.host", RK_STR, redis_host),
	RK("redis.port", RK_INT, redis_port),
	RK("redis.password", RK_STR, redis_password),
	RK("redis.db", RK_INT, redis_db),
	RK("redis.unix_socket", RK_STR, redis_unix_socket),
	RK("redis.prefix", RK_STR, redis_prefix),
	RK("redis.timeout", RK_DBL, redis_timeout),
	RK("redis.buffer_bytes", RK_SIZE, redis_buffer_bytes),
	RK("redis.reconnect_max", RK_DBL, redis_reconnect_max),
	RK("redis.spool_file", RK_STR, redis_spool_file),
	RK("redis.sentinels", RK_LIST, redis_sentinels),
	RK("redis.master_name", RK_STR, redis_master_name),
	RK("redis.sentinel_password", RK_STR, redis_sentinel_password),
	RK("redis.cluster", RK_LIST, redis_cluster),
	RK("redis.wait_replicas", RK_INT, redis_wait_replicas),
	RK("redis.wait_timeout", RK_DBL, redis_wait_timeout),
	RK("forward.retry_initial", RK_DBL, forward_retry_initial),
	RK("forward.retry_max", RK_DBL, forward_retry_max),
	RK("forward.outage_grace", RK_DBL, forward_outage_grace),
	RK("forward.claim_idle", RK_DBL, forward_claim_idle),
	RK("forward.consumer", RK_STR, forward_consumer),
	RK("forward.departed_after", RK_DBL, forward_departed_after),
	RK("metrics.address", RK_STR, metrics_address),
	RK("metrics.port", RK_INT, metrics_port),
};

#define AT(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))
#define CAT(cfg, k, type) ((const type *)(const void *)((const char *)(cfg) + (k)->offset))

static bool same_key(const struct config *a, const struct config *b, const struct restart_key *k)
{
	switch (k->type) {
	case RK_STR: return same_str(*CAT(a, k, char *), *CAT(b, k, char *));
	case RK_INT: return *CAT(a, k, int) == *CAT(b, k, int);
	case RK_SIZE: return *CAT(a, k, size_t) == *CAT(b, k, size_t);
	case RK_DBL: return *CAT(a, k, double) == *CAT(b, k, double);
	case RK_LIST: return same_list(CAT(a, k, struct config_strlist), CAT(b, k, struct config_strlist));
	case RK_BOOL: return *CAT(a, k, bool) == *CAT(b, k, bool);
	case RK_ROLE: return a->role == b->role;
	}
	return true;
}

const char *generation_restart_key(size_t i)
{
	return i < sizeof(restart_keys) / sizeof(restart_keys[0]) ? restart_keys[i].name : NULL;
}

size_t generation_restart_keys(const struct config *old, const struct config *cur, const char **names, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
		if (same_key(old, cur, &restart_keys[i]))
			continue;
		if (n < max)
			names[n] = restart_keys[i].name;
		n++;
	}
	return n;
}

static int copy_list(struct config_strlist *dst, const struct config_strlist *src)
{
	char **v = calloc(src->n + 1, sizeof(char *));  /* NULL-terminated, as the loader makes them */

	if (v == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		if ((v[i] = strdup(src->v[i])) == NULL) {
			while (i-- > 0)
				free(v[i]);
			free(v);
			return -1;
		}
	}
	for (size_t i = 0; i < dst->n; i++)
		free(dst->v[i]);
	free(dst->v);
	dst->v = v;
	dst->n = src->n;
	return 0;
}

static int copy_key(struct config *dst, const struct config *src, const struct restart_key *k)
{
	const char *from;
	char *s = NULL;

	switch (k->type) {
	case RK_STR:
		from = *CAT(src, k, char *);
		if (from != NULL && (s = strdup(from)) == NULL)
			return -1;
		free(*AT(dst, k, char *));
		*AT(dst, k, char *) = s;
		return 0;
	case RK_INT: *AT(dst, k, int) = *CAT(src, k, int); return 0;
	case RK_SIZE: *AT(dst, k, size_t) = *CAT(src, k, size_t); return 0;
	case RK_DBL: *AT(dst, k, double) = *CAT(src, k, double); return 0;
	case RK_LIST: return copy_list(AT(dst, k, struct config_strlist), CAT(src, k, struct config_strlist));
	case RK_BOOL: *AT(dst, k, bool) = *CAT(src, k, bool); return 0;
	case RK_ROLE:
		if (src->role_name != NULL && (s = strdup(src->role_name)) == NULL)
			return -1;
		free(dst->role_name);
		dst->role_name = s;
		dst->role = src->role;
		return 0;
	}
	return 0;
}

enum generation_keep generation_keep_restart(struct config *cur, const struct config *old)
{
	for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++)
		if (!same_key(old, cur, &restart_keys[i]) && copy_key(cur, old, &restart_keys[i]) != 0)
			return GENERATION_KEEP_NOMEM;
	return GENERATION_KEEP_OK;
}
