/* throttle.h - the rate limits in force: what Sentry's 429s said, per project and (organization
 * scope) per upstream, each limit for its own categories and its own time (pure; callers pass
 * the monotonic `now`). Forwarding asks what to hold back; ingest asks what to answer SDKs. */
#ifndef SENTRYQ_THROTTLE_H
#define SENTRYQ_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>

#include "category.h"
#include "ratelimit.h"

#define THROTTLE_PER_SCOPE 16   /* limits kept per project and per upstream; the soonest to end goes */
#define THROTTLE_HEADER_MAX 1024

struct throttle;

/* One limit in force, as throttle_each reports it. */
struct throttle_active {
	const char *upstream;
	const char *project;      /* NULL for an organization-wide limit */
	double seconds_left;
	bool all;
	category_mask categories;
	enum ratelimit_scope scope;
	const char *reason;
};

struct throttle *throttle_new(void);
void throttle_free(struct throttle *l);

/* Record what one 429 answered for a project of an upstream. Organization-scoped limits apply to
 * every project of the upstream. A limit already in force for the same categories and scope is
 * extended, never shortened. 0, or -1 out of memory. */
int throttle_apply(struct throttle *l, const char *upstream, const char *project, const struct ratelimit_set *set,
		 double now);

/* Seconds until nothing of `cats` is limited for this project (0: it may go now). An entry is
 * held while any of its categories is limited; one with no category (client reports) never is. */
double throttle_held(const struct throttle *l, const char *upstream, const char *project, category_mask cats,
		   double now);
/* Is every category of `cats` limited? Then *retry_after is the longest time left among them
 * (what ingest answers an SDK with under rate_limits.passthrough). False for cats == 0. */
bool throttle_all_limited(const struct throttle *l, const char *upstream, const char *project, category_mask cats,
			double now, double *retry_after);
/* Is everything limited for this project (an all-categories limit)? Then forwarding need not
 * read its stream at all until *seconds pass. */
bool throttle_blocked(const struct throttle *l, const char *upstream, const char *project, double now,
		    double *seconds);
/* The limits in force for this project as an X-Sentry-Rate-Limits value (whole seconds left,
 * rounded up), "" when none. Returns the length written. */
size_t throttle_header(const struct throttle *l, const char *upstream, const char *project, double now, char *buf,
		     size_t len);

typedef void (*throttle_each_fn)(void *arg, const struct throttle_active *a);
/* Every limit in force (expired ones are skipped, not reported). */
void throttle_each(const struct throttle *l, double now, throttle_each_fn fn, void *arg);
/* Forget expired limits (call now and then: the table only grows with new 429s). */
void throttle_prune(struct throttle *l, double now);

#endif
