/* ratelimit.h - read Sentry's rate-limit answer: every limit, with its own duration, categories,
 * scope and reason (pure). Grammar: shared/docs/sentry-protocol.md section 5. */
#ifndef SENTRYQ_RATELIMIT_H
#define SENTRYQ_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "category.h"

#define RATELIMIT_MAX 16            /* limits kept from one answer; more are skipped */
#define RATELIMIT_REASON_MAX 64
#define RATELIMIT_MAX_SECONDS 86400.0
#define RATELIMIT_DEFAULT_SECONDS 60.0

enum ratelimit_scope {
	RATELIMIT_KEY = 0,          /* the project's key: what sentryq holds per project */
	RATELIMIT_PROJECT,
	RATELIMIT_ORGANIZATION,     /* every project of the upstream */
};

struct ratelimit {
	double seconds;             /* how long it holds, from the answer */
	bool all;                   /* categories were empty: every category */
	category_mask categories;   /* named categories sentryq knows (unknown names are dropped) */
	enum ratelimit_scope scope;
	char reason[RATELIMIT_REASON_MAX];  /* reason code, [A-Za-z0-9_.-] only, "" when none */
};

struct ratelimit_set {
	struct ratelimit l[RATELIMIT_MAX];
	size_t n;
};

/*
 * X-Sentry-Rate-Limits ("<secs>:<categories>:<scope>[:<reason>[:<namespaces>]], ...") wins when it
 * yields at least one valid limit; else Retry-After (seconds) for all categories at key scope,
 * as Sentry's Relay does; else 60 s. Either header may be NULL. Bad limits are skipped as Sentry's
 * SDKs do; seconds may be fractional and are capped at one day. A metric_bucket limit whose
 * namespaces leave out "custom" does not hold what SDKs send (sentry-javascript's rule).
 */
void ratelimit_parse(const char *rate_limits, const char *retry_after, struct ratelimit_set *out);
const char *ratelimit_scope_name(enum ratelimit_scope s);

#endif
