/* throttle.c - rate limits in force, per project and per upstream, each with its own expiry. */
#include "throttle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct lim {
	double until;
	bool all;
	category_mask cats;
	enum ratelimit_scope scope;
	char reason[RATELIMIT_REASON_MAX];
};

/* The limits of one project, or (project NULL) the organization-wide ones of one upstream. */
struct rec {
	struct rec *next;
	char *upstream, *project;
	struct lim l[THROTTLE_PER_SCOPE];
	size_t n;
};

struct throttle {
	struct strmap *by_key;
	struct rec *all;      /* every record, for throttle_each */
};

static void rec_key(const char *upstream, const char *project, char *buf, size_t len)
{
	/* 0x1f cannot appear in a configured name, so the two parts cannot run into each other. */
	if (project != NULL)
		snprintf(buf, len, "p\x1f%s\x1f%s", upstream, project);
	else
		snprintf(buf, len, "o\x1f%s", upstream);
}

static struct rec *find(const struct throttle *l, const char *upstream, const char *project)
{
	char key[300];

	rec_key(upstream, project, key, sizeof(key));
	return strmap_get(l->by_key, key);
}

static struct rec *get(struct throttle *l, const char *upstream, const char *project)
{
	struct rec *r = find(l, upstream, project);
	char key[300];

	if (r != NULL)
		return r;
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->upstream = strdup(upstream)) == NULL ||
	    (project != NULL && (r->project = strdup(project)) == NULL))
		goto fail;
	rec_key(upstream, project, key, sizeof(key));
	if (strmap_put(l->by_key, key, r) != STRMAP_OK)
		goto fail;
	r->next = l->all;
	l->all = r;
	return r;
fail:
	if (r != NULL) {
		free(r->upstream);
		free(r->project);
	}
	free(r);
	return NULL;
}

struct throttle *throttle_new(void)
{
	struct throttle *l = calloc(1, sizeof(*l));

	if (l != NULL && (l->by_key = strmap_new()) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void throttle_free(struct throttle *l)
{
	if (l == NULL)
		return;
	while (l->all != NULL) {
		struct rec *r = l->all;

		l->all = r->next;
		free(r->upstream);
		free(r->project);
		free(r);
	}
	strmap_free(l->by_key);
	free(l);
}

/* Extend the same limit, else take a free (or expired, or the soonest-ending) place. */
static void add(struct rec *r, const struct ratelimit *rl, double now)
{
	double until = now + rl->seconds;
	size_t i, victim = 0;

	for (i = 0; i < r->n; i++) {
		struct lim *x = &r->l[i];

		if (x->all == rl->all && x->cats == rl->categories && x->scope == rl->scope) {
			if (until > x->until)
				x->until = until;
			snprintf(x->reason, sizeof(x->reason), "%s", rl->reason);
			return;
		}
		if (x->until < r->l[victim].until)
			victim = i;
	}
	if (r->n < THROTTLE_PER_SCOPE)
		victim = r->n++;
	else if (r->l[victim].until > until)
		return;  /* full of longer limits: this one ends first anyway */
	r->l[victim] = (struct lim){ .until = until, .all = rl->all, .cats = rl->categories, .scope = rl->scope };
	snprintf(r->l[victim].reason, sizeof(r->l[victim].reason), "%s", rl->reason);
}

int throttle_apply(struct throttle *l, const char *upstream, const char *project, const struct ratelimit_set *set,
		 double now)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct ratelimit *rl = &set->l[i];
		struct rec *r = get(l, upstream, rl->scope == RATELIMIT_ORGANIZATION ? NULL : project);

		if (r == NULL)
			return -1;
		if (rl->all || rl->categories != 0)
			add(r, rl, now);
	}
	return 0;
}

static bool covers(const struct lim *x, category_mask cats, double now)
{
	return x->until > now && cats != 0 && (x->all || (x->cats & cats) != 0);
}

/* Latest end among the limits of both scopes that cover any of cats (0: none). */
static double cover_until(const struct rec *const *rs, category_mask cats, double now)
{
	double until = 0;

	for (int k = 0; k < 2; k++)
		for (size_t i = 0; rs[k] != NULL && i < rs[k]->n; i++)
			if (covers(&rs[k]->l[i], cats, now) && rs[k]->l[i].until > until)
				until = rs[k]->l[i].until;
	return until;
}

double throttle_held(const struct throttle *l, const char *upstream, const char *project, category_mask cats,
		   double now)
{
	const struct rec *rs[2] = { find(l, upstream, project), find(l, upstream, NULL) };
	double until = cover_until(rs, cats, now);

	return until > now ? until - now : 0;
}

bool throttle_all_limited(const struct throttle *l, const char *upstream, const char *project, category_mask cats,
			double now, double *retry_after)
{
	const struct rec *rs[2] = { find(l, upstream, project), find(l, upstream, NULL) };
	double longest = 0;

	if (cats == 0)
		return false;
	for (int c = 0; c < CAT__COUNT; c++) {
		double until;

		if (!(cats & CATEGORY_BIT(c)))
			continue;
		if ((until = cover_until(rs, CATEGORY_BIT(c), now)) <= now)
			return false;
		if (until - now > longest)
			longest = until - now;
	}
	*retry_after = longest;
	return true;
}

bool throttle_blocked(const struct throttle *l, const char *upstream, const char *project, double now,
		    double *seconds)
{
	const struct rec *rs[2] = { find(l, upstream, project), find(l, upstream, NULL) };
	double until = 0;

	for (int k = 0; k < 2; k++)
		for (size_t i = 0; rs[k] != NULL && i < rs[k]->n; i++)
			if (rs[k]->l[i].all && rs[k]->l[i].until > until)
				until = rs[k]->l[i].until;
	if (until <= now)
		return false;
	*seconds = until - now;
	return true;
}

static size_t format_one(const struct lim *x, double now, char *buf, size_t len)
{
	char cats[CATEGORY_LIST_MAX] = "";
	int n;

	if (!x->all)
		category_format(x->cats, ';', cats, sizeof(cats));
	/* Whole seconds, rounded up: sentry-python skips a limit it cannot int(). */
	n = snprintf(buf, len, "%.0f:%s:%s%s%s", ceil(x->until - now), cats, ratelimit_scope_name(x->scope),
		     x->reason[0] ? ":" : "", x->reason);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

size_t throttle_header(const struct throttle *l, const char *upstream, const char *project, double now, char *buf,
		     size_t len)
{
	const struct rec *rs[2] = { find(l, upstream, project), find(l, upstream, NULL) };
	size_t n = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; rs[k] != NULL && i < rs[k]->n; i++) {
			size_t w;

			if (rs[k]->l[i].until <= now || n + 3 >= len)
				continue;
			if (n > 0) {
				memcpy(buf + n, ", ", 3);
				n += 2;
			}
			w = format_one(&rs[k]->l[i], now, buf + n, len - n);
			if (w == 0) {
				n -= n >= 2 && buf[n - 2] == ',' ? 2 : 0;
				buf[n] = '\0';
				return n;
			}
			n += w;
		}
	}
	return n;
}

void throttle_each(const struct throttle *l, double now, throttle_each_fn fn, void *arg)
{
	for (const struct rec *r = l->all; r != NULL; r = r->next) {
		for (size_t i = 0; i < r->n; i++) {
			const struct lim *x = &r->l[i];
			struct throttle_active a = { r->upstream, r->project, x->until - now, x->all, x->cats, x->scope,
						   x->reason };

			if (x->until > now)
				fn(arg, &a);
		}
	}
}

void throttle_prune(struct throttle *l, double now)
{
	for (struct rec *r = l->all; r != NULL; r = r->next) {
		size_t k = 0;

		for (size_t i = 0; i < r->n; i++)
			if (r->l[i].until > now)
				r->l[k++] = r->l[i];
		r->n = k;
	}
}
