/* ratelimit.h - read Sentry's 429 answer: how long to park, and whether the whole organization is limited. */
#ifndef SENTRYQ_RATELIMIT_H
#define SENTRYQ_RATELIMIT_H

#include <stdbool.h>

struct ratelimit {
	double seconds;        /* how long nothing covered may be sent */
	bool organization;     /* scope "organization": every project of that upstream is covered */
};

/*
 * X-Sentry-Rate-Limits ("<secs>:<categories>:<scope>[:<reason>[:<ns>]], ...") wins when it yields
 * at least one valid limit (the longest counts); else Retry-After (integer seconds); else 60 s.
 * Either header may be NULL. Bad limits are skipped as Sentry's SDKs do. Seconds are capped at 1 day.
 */
void ratelimit_parse(const char *rate_limits, const char *retry_after, struct ratelimit *out);

#endif
