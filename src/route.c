/* route.c - the route table: hash indexes over the config so a request resolves in O(1). */
#include "route.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FNV_SEED 2166136261u
#define FNV_PRIME 16777619u

/* Open addressing with linear probing; a slot is free when up is NULL. Load stays <= 1/2. */
struct slot {
	const struct config_upstream *up;
	const struct config_project *pj;
	uint32_t hash;
};

struct index {
	struct slot *slots;
	size_t mask;
};

typedef bool (*slot_eq)(const struct slot *s, const void *a, const void *b);

struct route {
	struct index by_up;    /* upstream name */
	struct index by_name;  /* (upstream, project name) */
	struct index by_id;    /* (upstream, project id) */
	struct index by_key;   /* real project key, first in config order */
	struct route_target dflt;
};

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * FNV_PRIME;
	return h;
}

static uint32_t hash_str(const char *s)
{
	return fnv(FNV_SEED, s, strlen(s));
}

/* (upstream, x): the upstream's name, a NUL, then x, so names cannot run into each other. */
static uint32_t hash_pair(const struct config_upstream *up, const void *p, size_t n)
{
	return fnv(fnv(FNV_SEED, up->name, strlen(up->name) + 1), p, n);
}

static bool eq_up(const struct slot *s, const void *name, const void *unused)
{
	return strcmp(s->up->name, name) == 0;
}

static bool eq_name(const struct slot *s, const void *up, const void *name)
{
	return s->up == up && strcmp(s->pj->name, name) == 0;
}

static bool eq_id(const struct slot *s, const void *up, const void *id)
{
	return s->up == up && s->pj->id == *(const long *)id;
}

static bool eq_key(const struct slot *s, const void *key, const void *unused)
{
	return strcmp(s->pj->key, key) == 0;
}

static int index_init(struct index *ix, size_t n)
{
	size_t cap = 8;

	while (cap < 2 * n) {
		if (cap > SIZE_MAX / 4 / sizeof(struct slot))
			return -1;
		cap *= 2;
	}
	ix->slots = calloc(cap, sizeof(struct slot));
	ix->mask = cap - 1;
	return ix->slots != NULL ? 0 : -1;
}

static const struct slot *index_find(const struct index *ix, uint32_t h, slot_eq eq,
				     const void *a, const void *b)
{
	for (size_t i = h & ix->mask; ix->slots[i].up != NULL; i = (i + 1) & ix->mask) {
		if (ix->slots[i].hash == h && eq(&ix->slots[i], a, b))
			return &ix->slots[i];
	}
	return NULL;
}

/* The first entry for a key wins, so config order decides between duplicates. */
static void index_add(struct index *ix, uint32_t h, slot_eq eq, const void *a, const void *b,
		      const struct config_upstream *up, const struct config_project *pj)
{
	size_t i = h & ix->mask;

	if (index_find(ix, h, eq, a, b) != NULL)
		return;
	while (ix->slots[i].up != NULL)
		i = (i + 1) & ix->mask;
	ix->slots[i] = (struct slot){ .up = up, .pj = pj, .hash = h };
}

static const struct config_upstream *find_up(const struct route *rt, const char *name)
{
	const struct slot *s = index_find(&rt->by_up, hash_str(name), eq_up, name, NULL);

	return s != NULL ? s->up : NULL;
}

static const struct config_project *find_name(const struct route *rt,
					      const struct config_upstream *up, const char *name)
{
	const struct slot *s = index_find(&rt->by_name, hash_pair(up, name, strlen(name)),
					  eq_name, up, name);

	return s != NULL ? s->pj : NULL;
}

static const struct config_project *find_id(const struct route *rt,
					    const struct config_upstream *up, long id)
{
	const struct slot *s = index_find(&rt->by_id, hash_pair(up, &id, sizeof(id)), eq_id, up, &id);

	return s != NULL ? s->pj : NULL;
}

static void add_upstream(struct route *rt, const struct config_upstream *up)
{
	index_add(&rt->by_up, hash_str(up->name), eq_up, up->name, NULL, up, NULL);
	for (size_t j = 0; j < up->nprojects; j++) {
		const struct config_project *pj = &up->projects[j];

		if (pj->name != NULL)
			index_add(&rt->by_name, hash_pair(up, pj->name, strlen(pj->name)),
				  eq_name, up, pj->name, up, pj);
		index_add(&rt->by_id, hash_pair(up, &pj->id, sizeof(pj->id)), eq_id, up, &pj->id,
			  up, pj);
		if (pj->key != NULL)
			index_add(&rt->by_key, hash_str(pj->key), eq_key, pj->key, NULL, up, pj);
	}
}

/* Resolve default_route once; config.c validates it, a hand-built config may not. */
static void set_default(struct route *rt, const struct config *cfg)
{
	const struct config_upstream *up;
	const struct config_project *pj = NULL;

	if (cfg->default_upstream == NULL || cfg->default_project == NULL)
		return;
	up = find_up(rt, cfg->default_upstream);
	if (up != NULL)
		pj = find_name(rt, up, cfg->default_project);
	if (pj == NULL) {
		/* The project name is a DSN secret: only the upstream is named. */
		log_warn("route: default_route (upstream %s) names no configured project, ignored",
			 cfg->default_upstream);
		return;
	}
	rt->dflt = (struct route_target){ .upstream = up, .project = pj, .rule = 4 };
}

struct route *route_new(const struct config *cfg)
{
	struct route *rt = calloc(1, sizeof(*rt));
	size_t nprojects = 0, i;

	if (rt == NULL)
		return NULL;
	for (i = 0; i < cfg->nupstreams; i++)
		nprojects += cfg->upstreams[i].nprojects;
	if (index_init(&rt->by_up, cfg->nupstreams) < 0 || index_init(&rt->by_name, nprojects) < 0 ||
	    index_init(&rt->by_id, nprojects) < 0 || index_init(&rt->by_key, nprojects) < 0)
		goto fail;
	for (i = 0; i < cfg->nupstreams; i++) {
		if (cfg->upstreams[i].name != NULL)
			add_upstream(rt, &cfg->upstreams[i]);
	}
	set_default(rt, cfg);
	return rt;
fail:
	route_free(rt);
	return NULL;
}

void route_free(struct route *rt)
{
	if (rt == NULL)
		return;
	free(rt->by_up.slots);
	free(rt->by_name.slots);
	free(rt->by_id.slots);
	free(rt->by_key.slots);
	free(rt);
}

static void set_detail(char *detail, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* detail names the upstream or the masked public key; the secret never reaches it. */
static void set_detail(char *detail, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (detail == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, len, fmt, ap);
	va_end(ap);
}

/* Rules 1 and 2; on a miss explains why into detail and returns -1. */
static int lookup_upstream(const struct route *rt, const struct config_upstream *up,
			   const char *secret, long path_id, struct route_target *out,
			   char *detail, size_t detail_len)
{
	const struct config_project *pj;

	if (secret != NULL && *secret != '\0') {
		pj = find_name(rt, up, secret);
		if (pj == NULL) {
			set_detail(detail, detail_len,
				   "upstream '%s' has no project named by the DSN secret", up->name);
			return -1;
		}
		*out = (struct route_target){ .upstream = up, .project = pj, .rule = 1 };
		return 0;
	}
	if (path_id < 0) {
		set_detail(detail, detail_len,
			   "upstream '%s' needs a DSN secret or a project id in the path", up->name);
		return -1;
	}
	pj = find_id(rt, up, path_id);
	if (pj == NULL) {
		set_detail(detail, detail_len, "upstream '%s' has no project with id %ld",
			   up->name, path_id);
		return -1;
	}
	*out = (struct route_target){ .upstream = up, .project = pj, .rule = 2 };
	return 0;
}

int route_lookup(const struct route *rt, const char *key, const char *secret, long path_id,
		 struct route_target *out, char *detail, size_t detail_len)
{
	const struct config_upstream *up;
	const struct slot *s;
	char masked[32];

	if (key == NULL)
		key = "";
	set_detail(detail, detail_len, "%s", "");
	up = find_up(rt, key);
	if (up != NULL && lookup_upstream(rt, up, secret, path_id, out, detail, detail_len) == 0)
		return 0;
	if (up == NULL)
		set_detail(detail, detail_len, "unknown public key '%s'",
			   log_mask(key, masked, sizeof(masked)));
	s = index_find(&rt->by_key, hash_str(key), eq_key, key, NULL);
	if (s != NULL)
		*out = (struct route_target){ .upstream = s->up, .project = s->pj, .rule = 3 };
	else if (rt->dflt.upstream != NULL)
		*out = rt->dflt;
	else
		return -1;
	set_detail(detail, detail_len, "%s", "");
	return 0;
}

void route_label(const struct config *cfg, const char *upstream, const char *project, char *buf, size_t len)
{
	const struct config_upstream *up = config_upstream_by_name(cfg, upstream);
	const struct config_project *pr = project != NULL ? config_project_by_name(up, project) : NULL;

	if (pr != NULL)
		snprintf(buf, len, "%s/%ld", upstream, pr->id);
	else
		snprintf(buf, len, "%s%s", upstream, project != NULL ? "/?" : "");
}
