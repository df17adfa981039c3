/* stats.c - the counters /status reports. */
#include "stats.h"

#include <stdlib.h>

struct stats {
	unsigned long long v[STATS__COUNT];
};

static const char *const counter_names[STATS__COUNT] = {
	"received", "enqueued", "forwarded", "retried", "dead", "rejected", "upstream_failed", "backpressure",
	"rate_limited", "dead_permanent", "dead_max_age", "dead_max_attempts", "buffered", "reloads",
	"reload_failures",
};

struct stats *stats_new(void)
{
	return calloc(1, sizeof(struct stats));
}

void stats_free(struct stats *st)
{
	free(st);
}

void stats_add(struct stats *st, enum stats_counter c, unsigned long long n)
{
	st->v[c] += n;
}

unsigned long long stats_get(const struct stats *st, enum stats_counter c)
{
	return st->v[c];
}

json_t *stats_counters_json(const struct stats *st)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	for (int i = 0; i < STATS__COUNT; i++)
		json_object_set_new(o, counter_names[i], json_integer((json_int_t)st->v[i]));
	return o;
}
