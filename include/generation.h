/* generation.h - one loaded configuration and what is built from it (the route table, the
 * endpoint table), shared by whoever still points into it and freed when the last one lets go;
 * and the pure comparisons a reload needs: which routes changed, which keys need a restart. */
#ifndef SENTRYQ_GENERATION_H
#define SENTRYQ_GENERATION_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct config_upstream;
struct config_project;
struct route;
struct endpoint_table;
struct generation;

/* Build the tables of cfg, which the generation then owns (held once, by the caller). NULL on
 * allocation failure: cfg is then still the caller's. id: 1 for the start, +1 per reload. */
struct generation *generation_new(struct config *cfg, unsigned long id);

/* Holders: the relay (the current one), forward routes and upstreams still using it. The last
 * drop (holders and requests) frees the tables and the config. hold returns g. */
struct generation *generation_hold(struct generation *g);
void generation_drop(struct generation *g);
/* Ingest requests in flight that matched and routed in it (a put may still be on its way to a
 * stream of a route this generation has and a later one has not). They keep it alive too. */
void generation_enter(struct generation *g);
void generation_leave(struct generation *g);
unsigned generation_requests(const struct generation *g);
/* A reload: next follows prev, and holds it while requests of prev (or of one before it) are in
 * flight. */
void generation_follow(struct generation *next, struct generation *prev);
/* No ingest request of a generation before g is in flight any more, so no put can still go to a
 * stream only those had (settled links are let go here). */
bool generation_settled(struct generation *g);

struct config *generation_config(const struct generation *g);
const struct route *generation_routes(const struct generation *g);
const struct endpoint_table *generation_endpoints(const struct generation *g);
unsigned long generation_id(const struct generation *g);

/* What a reload changes in the route table (a route: an upstream name and a project name). */
struct generation_diff {
	size_t added, removed, changed, kept;  /* changed: credentials, id, mirrors or its upstream's server */
	size_t upstreams_added, upstreams_removed, upstreams_changed;
};

void generation_diff(const struct config *old, const struct config *cur, struct generation_diff *out);

/* The same server for an upstream kept across a reload: url, TLS verification and CA file and
 * max_connections (its connection pool) are equal; timeouts may differ (they apply as they are). */
bool generation_same_server(const struct config_upstream *a, const struct config_upstream *b);

/* What generation_keep_restart did. */
enum generation_keep {
	GENERATION_KEEP_OK = 0,
	GENERATION_KEEP_NOMEM,   /* a string could not be copied: cur is partly updated, free it */
};

/*
 * Keys that cannot change while running (listeners, Redis, the consumer name, the outage timing,
 * body memory): the names of those whose value differs between old and cur go to names (up to
 * max; the count is returned, even past max). keep_restart then puts old's values into cur, so
 * the running values stay in effect and every reader of the new config sees them.
 */
size_t generation_restart_keys(const struct config *old, const struct config *cur, const char **names, size_t max);
enum generation_keep generation_keep_restart(struct config *cur, const struct config *old);
/* The i-th restart-only key's name, NULL past the last (for tests and documentation checks). */
const char *generation_restart_key(size_t i);

#endif
