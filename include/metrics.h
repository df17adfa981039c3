/* metrics.h - Prometheus metrics (pure). Two parts:
 *  - a fixed-bucket histogram that a module embeds in its own state and observes on its hot path
 *    without allocating (upstream latency, ingest latency);
 *  - a scrape's family set: families declared with their type, help and label names, samples
 *    added by label values, rendered in the text exposition format 0.0.4. Label sets are
 *    bounded: a family holds at most METRICS_SERIES_MAX series; samples past it are dropped and
 *    counted, never grown without bound.
 * Adding to a series sums (two config entries that map to one label set add up), so a scrape
 * builds a fresh set from the counters the modules keep, renders it and frees it. */
#ifndef SENTRYQ_METRICS_H
#define SENTRYQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS_MAX 20     /* finite upper bounds of a histogram; +Inf is implied */
#define METRICS_LABELS_MAX 4       /* label names of one family */
#define METRICS_SERIES_MAX 10000   /* label sets of one family */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_histogram {
	const double *bounds;      /* upper bounds, ascending (not copied: static tables) */
	size_t nbounds;
	uint64_t counts[METRICS_BUCKETS_MAX + 1];  /* per bucket, not cumulative; the last is +Inf */
	uint64_t count;
	double sum;
};

/* Bounds past METRICS_BUCKETS_MAX are ignored. */
void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds);
/* Count v in the first bucket whose upper bound is >= v (NaN is ignored). */
void metrics_histogram_observe(struct metrics_histogram *h, double v);

enum metrics_type {
	METRICS_COUNTER = 0,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

/* What a metrics_* call did. */
enum metrics_result {
	METRICS_OK = 0,
	METRICS_BAD_NAME,      /* not a Prometheus name, a counter not ending in _total, a bad label name */
	METRICS_DUPLICATE,     /* a family of that name is declared already */
	METRICS_BAD_SAMPLE,    /* no such family, a sample of the wrong type, or histogram bounds that differ */
	METRICS_FULL,          /* the family holds METRICS_SERIES_MAX series: the sample was dropped (counted) */
	METRICS_NOMEM,
};

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Declare a family. labels: NULL-terminated label names (NULL for none), at most
 * METRICS_LABELS_MAX, "le" not allowed on a histogram. Names and help are copied. */
enum metrics_result metrics_declare(struct metrics *m, const char *name, enum metrics_type type, const char *help,
				    const char *const *labels);
/* Add v to the counter or gauge series named by `values` (one per declared label, NULL when the
 * family has none); a series starts at 0 the first time it is named. */
enum metrics_result metrics_add(struct metrics *m, const char *name, const char *const *values, double v);
/* Add a histogram's counts and sum to the series named by `values` (same bounds required). */
enum metrics_result metrics_add_histogram(struct metrics *m, const char *name, const char *const *values,
					  const struct metrics_histogram *h);
/* Samples dropped so far because a family was full. */
size_t metrics_dropped(const struct metrics *m);

/* The exposition text: families in declaration order (# HELP, # TYPE, then samples), series in
 * the order first named, label values escaped. *out is malloc'ed and NUL-terminated. */
enum metrics_result metrics_render(const struct metrics *m, char **out, size_t *len);

#endif
