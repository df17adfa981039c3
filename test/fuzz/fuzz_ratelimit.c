/* fuzz_ratelimit.c - ratelimit_parse, and the throttle fed with what it parsed.
 *
 * Input: one flags byte, then  X-Sentry-Rate-Limits \n Retry-After \n masks...
 * flags: bit 0 the limits header is absent (NULL), bit 1 Retry-After is absent, bits 2-7 pick the
 * `now` steps. The bytes after the second '\n' are read four at a time as category masks to ask
 * the throttle about (cut to CATEGORY_ALL).
 *
 * Invariants: 1..RATELIMIT_MAX limits (Retry-After or 60 s stands in when no limit is valid), each
 * finite in [0, 86400] seconds with a reason of [A-Za-z0-9_.-] only, categories inside
 * CATEGORY_ALL (all of it for an all-categories limit); every throttle answer ends at most a day
 * after the last 429; throttle_header's value is NUL-terminated, within its buffer, and parses back
 * to as many limits as are in force.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "ratelimit.h"
#include "throttle.h"

#define DAY RATELIMIT_MAX_SECONDS
#define EPS 1e-6

/* Latest time any limit applied here can end: the last throttle_apply plus a day. */
static double g_latest_end;

static void check_set(const struct ratelimit_set *set)
{
	CHECK(set->n >= 1 && set->n <= RATELIMIT_MAX);
	for (size_t i = 0; i < set->n; i++) {
		const struct ratelimit *l = &set->l[i];

		CHECK(isfinite(l->seconds) && l->seconds >= 0 && l->seconds <= DAY);
		CHECK((l->categories & ~CATEGORY_ALL) == 0);
		CHECK(!l->all || l->categories == CATEGORY_ALL);
		CHECK(l->scope == RATELIMIT_KEY || l->scope == RATELIMIT_PROJECT || l->scope == RATELIMIT_ORGANIZATION);
		CHECK(memchr(l->reason, '\0', sizeof(l->reason)) != NULL);
		for (const char *p = l->reason; *p; p++)
			CHECK((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			      *p == '_' || *p == '.' || *p == '-');
	}
}

struct count {
	const char *upstream, *project;
	size_t n;
	double now;
};

static void count_active(void *arg, const struct throttle_active *a)
{
	struct count *c = arg;

	CHECK(a->seconds_left > 0 && a->seconds_left <= g_latest_end - c->now + EPS);
	CHECK(a->upstream != NULL && a->reason != NULL);
	CHECK((a->categories & ~CATEGORY_ALL) == 0);
	if (strcmp(a->upstream, c->upstream) == 0 &&
	    (a->project == NULL || (c->project != NULL && strcmp(a->project, c->project) == 0)))
		c->n++;
}

static void ask(const struct throttle *t, const char *up, const char *prj, double now, category_mask m)
{
	double held, retry = -1, secs = -1, bound = g_latest_end - now + EPS;
	char big[8192], small[THROTTLE_HEADER_MAX], tiny[24];
	size_t n;

	held = throttle_held(t, up, prj, m, now);
	CHECK(isfinite(held) && held >= 0 && held <= bound);
	if (m == 0)
		CHECK(held == 0);
	if (throttle_all_limited(t, up, prj, m, now, &retry)) {
		CHECK(m != 0);
		CHECK(isfinite(retry) && retry > 0 && retry <= bound);
		CHECK(held > 0);
	}
	if (throttle_blocked(t, up, prj, now, &secs)) {
		CHECK(isfinite(secs) && secs > 0 && secs <= bound);
		/* everything is limited: any category is held */
		CHECK(m == 0 || throttle_held(t, up, prj, m, now) > 0);
	}

	/* The header with room to spare lists every limit in force, and parses back to as many. */
	struct count c = { up, prj, 0, now };
	throttle_each(t, now, count_active, &c);
	n = throttle_header(t, up, prj, now, big, sizeof(big));
	CHECK(n < sizeof(big) && strlen(big) == n);
	if (n == 0) {
		CHECK(c.n == 0);
	} else {
		struct ratelimit_set back;
		size_t commas = 0;

		for (const char *p = big; *p; p++)
			commas += *p == ',';
		CHECK_EQ_U(commas + 1, c.n);
		ratelimit_parse(big, NULL, &back);
		check_set(&back);
		CHECK_EQ_U(back.n, c.n < RATELIMIT_MAX ? c.n : RATELIMIT_MAX);
		for (size_t i = 0; i < back.n; i++)
			CHECK(back.l[i].seconds >= 1 && back.l[i].seconds <= DAY);
	}
	/* Smaller buffers: a prefix of whole limits, always NUL-terminated inside the buffer. */
	n = throttle_header(t, up, prj, now, small, sizeof(small));
	CHECK(n < sizeof(small) && strlen(small) == n);
	CHECK(strncmp(small, big, n) == 0);
	n = throttle_header(t, up, prj, now, tiny, sizeof(tiny));
	CHECK(n < sizeof(tiny) && strlen(tiny) == n);
	CHECK(strncmp(tiny, big, n) == 0);
	CHECK(n == 0 || tiny[n - 1] != ' ');
	CHECK(throttle_header(t, up, prj, now, tiny, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const double steps[8] = { 0, 0.25, 1, 59.5, 60, 3600, 86399.9, 86400.5 };
	struct ratelimit_set set;
	category_mask masks[8] = { 0, CATEGORY_ALL, CATEGORY_BIT(CAT_ERROR), CATEGORY_BIT(CAT_TRANSACTION) };
	size_t nmasks = 4;
	char *buf, *limits, *retry, *rest = NULL;
	unsigned flags;

	if (size < 1)
		return 0;
	flags = data[0];
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	limits = buf;
	retry = memchr(buf, '\n', size - 1);
	if (retry != NULL) {
		*retry++ = '\0';
		rest = memchr(retry, '\n', (size_t)(buf + size - 1 - retry));
		if (rest != NULL)
			*rest++ = '\0';
	}
	if (rest != NULL) {
		size_t left = (size_t)(buf + size - 1 - rest);

		for (size_t i = 0; i + 4 <= left && nmasks < 8; i += 4, nmasks++)
			/* Only real categories: every caller's mask comes from category.c. (Bits above
			 * CATEGORY_ALL would make throttle_all_limited say "all limited, 0 s".) */
			masks[nmasks] = CATEGORY_ALL & (category_mask)((uint8_t)rest[i] | (uint8_t)rest[i + 1] << 8 |
								       (uint32_t)(uint8_t)rest[i + 2] << 16 |
								       (uint32_t)(uint8_t)rest[i + 3] << 24);
	}

	ratelimit_parse((flags & 1) ? NULL : limits, (flags & 2) ? NULL : retry, &set);
	check_set(&set);
	CHECK(ratelimit_scope_name(set.l[0].scope) != NULL);

	/* Into a throttle: two answers for two projects of one upstream, one for another upstream. */
	struct throttle *t = throttle_new();
	double now = 1000.0, t2 = now + steps[(flags >> 2) & 7], t4 = now + steps[(flags >> 5) & 7];
	CHECK(t != NULL);
	g_latest_end = fmax(fmax(t2, t4), now + 1) + DAY;
	CHECK(throttle_apply(t, "up", "p1", &set, now) == 0);
	CHECK(throttle_apply(t, "up", "p2", &set, t2) == 0);
	CHECK(throttle_apply(t, "other", "p1", &set, now + 1) == 0);
	/* The same answer again later: limits are extended, never duplicated. */
	CHECK(throttle_apply(t, "up", "p1", &set, t4) == 0);

	for (size_t s = 0; s < 8; s++) {
		double at = now + steps[s];

		for (size_t m = 0; m < nmasks; m++) {
			ask(t, "up", "p1", at, masks[m]);
			ask(t, "up", "p3", at, masks[m]);
			ask(t, "other", "p1", at, masks[m]);
			ask(t, "nobody", "p1", at, masks[m]);
		}
	}
	throttle_prune(t, t2);
	for (size_t m = 0; m < nmasks; m++)
		ask(t, "up", "p2", now + 30, masks[m]);
	throttle_prune(t, g_latest_end);
	struct count c = { "up", "p1", 0, now };
	c.now = g_latest_end;
	throttle_each(t, g_latest_end, count_active, &c);
	CHECK(c.n == 0);
	throttle_free(t);
	free(buf);
	return 0;
}
