/* outcome.c - classify an upstream answer: Sentry Relay's is_received / is_network_error rules. */
#include "outcome.h"

enum outcome outcome_of(int status)
{
	if (status >= 200 && status < 300)
		return OUTCOME_DELIVERED;
	if (status == 429)
		return OUTCOME_LIMITED;
	if (status >= 400 && status < 500 && status != 408)
		return OUTCOME_PERMANENT;
	/* 0 (no answer), 408, 5xx, and anything a Sentry never answers an ingest request with. */
	return OUTCOME_RETRY;
}

bool outcome_reachable(int status)
{
	/* A 3xx is a proxy or a wrong url, not Sentry: it backs off like a failure, no hot loop. */
	return (status >= 200 && status < 300) || (status >= 400 && status < 500 && status != 408);
}

const char *outcome_name(enum outcome oc)
{
	switch (oc) {
	case OUTCOME_DELIVERED: return "delivered";
	case OUTCOME_RETRY: return "retry";
	case OUTCOME_LIMITED: return "rate_limited";
	case OUTCOME_PERMANENT: return "permanent";
	}
	return "?";
}
