/* outcome.h - what an upstream's answer means for the entry and for the upstream (pure). */
#ifndef SENTRYQ_OUTCOME_H
#define SENTRYQ_OUTCOME_H

#include <stdbool.h>

/* What happens to the entry that was sent. */
enum outcome {
	OUTCOME_DELIVERED = 0, /* 2xx: ack it */
	OUTCOME_RETRY,         /* network error, timeout, 408, 5xx, 1xx/3xx: stays pending, sent again */
	OUTCOME_LIMITED,       /* 429: held until the limits it names expire */
	OUTCOME_PERMANENT,     /* any other 4xx: it never will pass, dead-letter it */
};

/* status: the HTTP status, or 0 for a network error or timeout (no answer at all). */
enum outcome outcome_of(int status);
/* Did the answer prove the upstream reachable? A 2xx or a 4xx other than 408 does: a 400 or a
 * 429 comes from a Sentry that is up. This ends an outage (outage_reachable). */
bool outcome_reachable(int status);
/* Short, bounded-cardinality names for logs and metrics: "delivered", "retry", "rate_limited",
 * "permanent". */
const char *outcome_name(enum outcome oc);

#endif
