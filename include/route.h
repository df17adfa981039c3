/* route.h - the route table built from the config: which upstream and project a request goes to. */
#ifndef SENTRYQ_ROUTE_H
#define SENTRYQ_ROUTE_H

#include <stddef.h>

#include "config.h"

struct route;

struct route_target {
	const struct config_upstream *upstream;
	const struct config_project *project;
	int rule;            /* 1..4: which rule matched */
};

/* Build hash indexes once: by upstream name, by (upstream, project name), by (upstream, id),
 * by real project key. NULL on allocation failure. The config must outlive the table. */
struct route *route_new(const struct config *cfg);
void route_free(struct route *rt);

/*
 * Rules, first match wins:
 *  1. key names an upstream and secret names one of its projects;
 *  2. key names an upstream, no secret, and path_id equals one of its projects' id;
 *  3. key equals a project's real key;
 *  4. the default route, when configured.
 * secret may be NULL or "" (none sent); path_id < 0 when unknown.
 * Returns 0 with *out set, or -1 with a message in detail naming what did not match
 * (it may name the public key, never the secret).
 */
int route_lookup(const struct route *rt, const char *key, const char *secret, long path_id,
		 struct route_target *out, char *detail, size_t detail_len);

/* How a route is shown (status, metrics, logs): "<upstream>/<real project id>", "<upstream>" for
 * an organization-wide limit (project NULL), "<upstream>/?" for a project the config lacks. The
 * project's name is the DSN secret its users were given: it is never shown. */
void route_label(const struct config *cfg, const char *upstream, const char *project, char *buf, size_t len);

#endif
