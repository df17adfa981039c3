/* ratelimit.c - parse X-Sentry-Rate-Limits / Retry-After into one park duration and scope. */
#include "ratelimit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SECONDS 60.0
#define MAX_SECONDS 86400.0

/* One "<secs>:<cats>:<scope>..." limit in [s, end). 0 with secs/org set, -1 if malformed. */
static int parse_limit(const char *s, const char *end, double *secs, bool *org)
{
	const char *c1, *c2, *scope_end;
	char *num_end;

	while (s < end && isspace((unsigned char)*s))
		s++;
	c1 = memchr(s, ':', (size_t)(end - s));
	if (c1 == NULL || c1 == s)
		return -1;
	*secs = strtod(s, &num_end);
	if (num_end != c1 || *secs < 0)
		return -1;
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	*org = false;
	if (c2 != NULL) {
		scope_end = memchr(c2 + 1, ':', (size_t)(end - c2 - 1));
		if (scope_end == NULL)
			scope_end = end;
		while (scope_end > c2 + 1 && isspace((unsigned char)scope_end[-1]))
			scope_end--;
		*org = (size_t)(scope_end - c2 - 1) == 12 && strncmp(c2 + 1, "organization", 12) == 0;
	}
	return 0;
}

void ratelimit_parse(const char *rate_limits, const char *retry_after, struct ratelimit *out)
{
	bool found = false;

	out->seconds = 0;
	out->organization = false;
	for (const char *s = rate_limits; s != NULL && *s != '\0';) {
		const char *comma = strchr(s, ',');
		const char *end = comma != NULL ? comma : s + strlen(s);
		double secs;
		bool org;

		if (parse_limit(s, end, &secs, &org) == 0) {
			found = true;
			if (secs > out->seconds)
				out->seconds = secs;
			out->organization |= org;
		}
		s = comma != NULL ? comma + 1 : end;
	}
	if (!found) {
		char *num_end;
		double secs = retry_after != NULL ? strtod(retry_after, &num_end) : -1;

		/* An HTTP-date or garbage Retry-After falls back to Sentry's documented 60 s. */
		out->seconds = retry_after != NULL && num_end != retry_after && secs >= 0 ? secs : DEFAULT_SECONDS;
	}
	if (out->seconds > MAX_SECONDS)
		out->seconds = MAX_SECONDS;
}
