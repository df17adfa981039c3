/* ratelimit.c - parse X-Sentry-Rate-Limits / Retry-After into separate limits. */
#include "ratelimit.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fields of one limit, [s, e) each. */
struct span {
	const char *s, *e;
};

static struct span trim(const char *s, const char *e)
{
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	return (struct span){ s, e };
}

static bool span_is(struct span f, const char *lit)
{
	return (size_t)(f.e - f.s) == strlen(lit) && memcmp(f.s, lit, strlen(lit)) == 0;
}

/* Split [s, e) at ':' into up to n fields; returns how many were found. */
static size_t split(const char *s, const char *e, struct span *f, size_t n)
{
	size_t k = 0;

	while (k < n) {
		const char *c = memchr(s, ':', (size_t)(e - s));

		f[k++] = trim(s, c != NULL ? c : e);
		if (c == NULL)
			break;
		s = c + 1;
	}
	return k;
}

static bool parse_seconds(struct span f, double *out)
{
	char *end;
	double v;

	/* Read in place, not through a fixed-size copy: a copy turned a long but valid number (which
	 * must be capped at a day) into garbage. The field ends at ':', ',', a space or the NUL, none
	 * of which can continue a number, so end == f.e exactly when the whole field is one. */
	if (f.s == f.e)
		return false;
	v = strtod(f.s, &end);
	if (end != f.e || !isfinite(v) || v < 0)
		return false;
	*out = v > RATELIMIT_MAX_SECONDS ? RATELIMIT_MAX_SECONDS : v;
	return true;
}

static void copy_reason(struct span f, char *dst)
{
	size_t n = 0;

	for (const char *p = f.s; p < f.e && n + 1 < RATELIMIT_REASON_MAX; p++)
		if (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
			dst[n++] = *p;
	dst[n] = '\0';
}

/* metric_bucket limits with namespaces hold SDK metrics only when "custom" is among them. */
static bool custom_namespace(struct span ns)
{
	const char *s = ns.s;

	if (ns.s == ns.e)
		return true;
	while (s < ns.e) {
		const char *c = memchr(s, ';', (size_t)(ns.e - s));
		struct span one = trim(s, c != NULL ? c : ns.e);

		if (span_is(one, "custom"))
			return true;
		s = c != NULL ? c + 1 : ns.e;
	}
	return false;
}

/* One "<secs>:<cats>:<scope>[:<reason>[:<ns>]]" limit in [s, e). false if malformed. */
static bool parse_limit(const char *s, const char *e, struct ratelimit *rl)
{
	struct span f[5] = { { NULL, NULL } };
	size_t n = split(s, e, f, 5);

	memset(rl, 0, sizeof(*rl));
	if (n < 2 || !parse_seconds(f[0], &rl->seconds))
		return false;
	rl->all = f[1].s == f[1].e;
	rl->categories = rl->all ? CATEGORY_ALL : category_parse(f[1].s, (size_t)(f[1].e - f[1].s));
	/* Only a limit that names metric_bucket (sentry-javascript's rule); an all-categories one
	 * stays all, CATEGORY_ALL included (fuzz_ratelimit: all was set, the bit was gone). */
	if (n >= 5 && !rl->all && !custom_namespace(f[4]))
		rl->categories &= ~CATEGORY_BIT(CAT_METRIC_BUCKET);
	rl->scope = n >= 3 && span_is(f[2], "organization") ? RATELIMIT_ORGANIZATION
		    : n >= 3 && span_is(f[2], "project")    ? RATELIMIT_PROJECT
							     : RATELIMIT_KEY;
	if (n >= 4)
		copy_reason(f[3], rl->reason);
	return true;
}

static void from_retry_after(const char *retry_after, struct ratelimit_set *out)
{
	struct ratelimit *rl = &out->l[0];
	double secs = RATELIMIT_DEFAULT_SECONDS;

	/* An HTTP-date or garbage Retry-After falls back to Sentry's documented 60 s. */
	if (retry_after != NULL)
		parse_seconds(trim(retry_after, retry_after + strlen(retry_after)), &secs);
	memset(rl, 0, sizeof(*rl));
	rl->seconds = secs;
	rl->all = true;
	rl->categories = CATEGORY_ALL;
	rl->scope = RATELIMIT_KEY;
	out->n = 1;
}

void ratelimit_parse(const char *rate_limits, const char *retry_after, struct ratelimit_set *out)
{
	out->n = 0;
	for (const char *s = rate_limits; s != NULL && *s != '\0' && out->n < RATELIMIT_MAX;) {
		const char *comma = strchr(s, ',');
		const char *end = comma != NULL ? comma : s + strlen(s);

		if (parse_limit(s, end, &out->l[out->n]))
			out->n++;
		s = comma != NULL ? comma + 1 : end;
	}
	if (out->n == 0)
		from_retry_after(retry_after, out);
}

const char *ratelimit_scope_name(enum ratelimit_scope s)
{
	switch (s) {
	case RATELIMIT_KEY: return "key";
	case RATELIMIT_PROJECT: return "project";
	case RATELIMIT_ORGANIZATION: return "organization";
	}
	return "key";
}
