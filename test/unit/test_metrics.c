/* test_metrics.c - histograms, families and series, label escaping, bounded label sets, and the
 * text exposition format 0.0.4 as Prometheus reads it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const double bounds[] = { 0.01, 0.1, 1 };

static char *render(const struct metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(m, &text, &len), METRICS_OK);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		print_message("--- output ---\n%s--- lacks ---\n%s\n", hay, needle);
	assert_non_null(strstr(hay, needle));
}

static void test_histogram_buckets(void **state)
{
	struct metrics_histogram h;

	(void)state;
	metrics_histogram_init(&h, bounds, 3);
	metrics_histogram_observe(&h, 0.005);
	metrics_histogram_observe(&h, 0.01);   /* on the bound: le is inclusive */
	metrics_histogram_observe(&h, 0.5);
	metrics_histogram_observe(&h, 7);      /* +Inf */
	metrics_histogram_observe(&h, NAN);    /* ignored */
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 0);
	assert_int_equal(h.counts[2], 1);
	assert_int_equal(h.counts[3], 1);
	assert_int_equal(h.count, 4);
	assert_true(fabs(h.sum - 7.515) < 1e-9);
}

static void test_counter_gauge_render(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	assert_int_equal(metrics_declare(m, "sq_requests_total", METRICS_COUNTER, "Requests.",
					 (const char *[]){ "endpoint", "status", NULL }), METRICS_OK);
	assert_int_equal(metrics_declare(m, "sq_up", METRICS_GAUGE, "Up.", NULL), METRICS_OK);
	assert_int_equal(metrics_add(m, "sq_requests_total", (const char *[]){ "store", "2xx" }, 3), METRICS_OK);
	assert_int_equal(metrics_add(m, "sq_requests_total", (const char *[]){ "envelope", "4xx" }, 1), METRICS_OK);
	/* the same label set again adds up (two config entries with one route label) */
	assert_int_equal(metrics_add(m, "sq_requests_total", (const char *[]){ "store", "2xx" }, 2), METRICS_OK);
	assert_int_equal(metrics_add(m, "sq_up", NULL, 1), METRICS_OK);
	text = render(m);
	assert_string_equal(text,
			    "# HELP sq_requests_total Requests.\n"
			    "# TYPE sq_requests_total counter\n"
			    "sq_requests_total{endpoint=\"store\",status=\"2xx\"} 5\n"
			    "sq_requests_total{endpoint=\"envelope\",status=\"4xx\"} 1\n"
			    "# HELP sq_up Up.\n"
			    "# TYPE sq_up gauge\n"
			    "sq_up 1\n");
	free(text);
	metrics_free(m);
}

static void test_histogram_render(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_histogram a, b;
	char *text;

	(void)state;
	metrics_histogram_init(&a, bounds, 3);
	metrics_histogram_init(&b, bounds, 3);
	metrics_histogram_observe(&a, 0.0625);
	metrics_histogram_observe(&a, 2);
	metrics_histogram_observe(&b, 0.0078125);
	assert_int_equal(metrics_declare(m, "sq_latency_seconds", METRICS_HISTOGRAM, "Latency.",
					 (const char *[]){ "upstream", NULL }), METRICS_OK);
	assert_int_equal(metrics_add_histogram(m, "sq_latency_seconds", (const char *[]){ "wow" }, &a), METRICS_OK);
	assert_int_equal(metrics_add_histogram(m, "sq_latency_seconds", (const char *[]){ "wow" }, &b), METRICS_OK);
	text = render(m);
	assert_contains(text, "# TYPE sq_latency_seconds histogram\n"
			      "sq_latency_seconds_bucket{upstream=\"wow\",le=\"0.01\"} 1\n"
			      "sq_latency_seconds_bucket{upstream=\"wow\",le=\"0.1\"} 2\n"
			      "sq_latency_seconds_bucket{upstream=\"wow\",le=\"1\"} 2\n"
			      "sq_latency_seconds_bucket{upstream=\"wow\",le=\"+Inf\"} 3\n"
			      "sq_latency_seconds_sum{upstream=\"wow\"} 2.0703125\n"
			      "sq_latency_seconds_count{upstream=\"wow\"} 3\n");
	free(text);
	/* other bounds cannot be merged into the series */
	metrics_histogram_init(&b, bounds, 2);
	assert_int_equal(metrics_add_histogram(m, "sq_latency_seconds", (const char *[]){ "wow" }, &b),
			 METRICS_BAD_SAMPLE);
	metrics_free(m);
}

static void test_escaping(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	assert_int_equal(metrics_declare(m, "sq_x", METRICS_GAUGE, "Back\\slash and\nnewline.",
					 (const char *[]){ "v", NULL }), METRICS_OK);
	assert_int_equal(metrics_add(m, "sq_x", (const char *[]){ "a\"b\\c\nd" }, 0.25), METRICS_OK);
	text = render(m);
	assert_contains(text, "# HELP sq_x Back\\\\slash and\\nnewline.\n");
	assert_contains(text, "sq_x{v=\"a\\\"b\\\\c\\nd\"} 0.25\n");
	free(text);
	metrics_free(m);
}

static void test_names_refused(void **state)
{
	struct metrics *m = metrics_new();

	(void)state;
	assert_int_equal(metrics_declare(m, "sq_requests", METRICS_COUNTER, "", NULL), METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "9sq_total", METRICS_COUNTER, "", NULL), METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq-x", METRICS_GAUGE, "", NULL), METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "", METRICS_GAUGE, "", NULL), METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq_h", METRICS_HISTOGRAM, "", (const char *[]){ "le", NULL }),
			 METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq_g", METRICS_GAUGE, "", (const char *[]){ "__x", NULL }),
			 METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq_g", METRICS_GAUGE, "", (const char *[]){ "a:b", NULL }),
			 METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq_g", METRICS_GAUGE, "",
					 (const char *[]){ "a", "b", "c", "d", "e", NULL }), METRICS_BAD_NAME);
	assert_int_equal(metrics_declare(m, "sq_g", METRICS_GAUGE, "", NULL), METRICS_OK);
	assert_int_equal(metrics_declare(m, "sq_g", METRICS_GAUGE, "", NULL), METRICS_DUPLICATE);
	/* samples for no family, or of the wrong type */
	assert_int_equal(metrics_add(m, "sq_none", NULL, 1), METRICS_BAD_SAMPLE);
	assert_int_equal(metrics_add_histogram(m, "sq_g", NULL, &(struct metrics_histogram){ 0 }), METRICS_BAD_SAMPLE);
	metrics_free(m);
}

static void test_bounded_series(void **state)
{
	struct metrics *m = metrics_new();
	char v[32], *text;

	(void)state;
	assert_int_equal(metrics_declare(m, "sq_route_entries", METRICS_GAUGE, "", (const char *[]){ "route", NULL }),
			 METRICS_OK);
	for (int i = 0; i < METRICS_SERIES_MAX; i++) {
		snprintf(v, sizeof(v), "up/%d", i);
		assert_int_equal(metrics_add(m, "sq_route_entries", (const char *[]){ v }, 1), METRICS_OK);
	}
	assert_int_equal(metrics_add(m, "sq_route_entries", (const char *[]){ "up/new" }, 1), METRICS_FULL);
	/* an existing series still takes samples */
	assert_int_equal(metrics_add(m, "sq_route_entries", (const char *[]){ "up/7" }, 1), METRICS_OK);
	assert_int_equal(metrics_dropped(m), 1);
	text = render(m);
	assert_contains(text, "sq_route_entries{route=\"up/7\"} 2\n");
	assert_null(strstr(text, "up/new"));
	assert_contains(text, "# 1 samples dropped");
	free(text);
	metrics_free(m);
}

static void test_numbers(void **state)
{
	struct metrics *m = metrics_new();
	char *text;

	(void)state;
	metrics_declare(m, "sq_a", METRICS_GAUGE, "", (const char *[]){ "k", NULL });
	metrics_add(m, "sq_a", (const char *[]){ "big" }, 18446744073709551615.0);
	metrics_add(m, "sq_a", (const char *[]){ "int" }, 123456789012.0);
	metrics_add(m, "sq_a", (const char *[]){ "frac" }, 0.1);
	metrics_add(m, "sq_a", (const char *[]){ "neg" }, -2.5);
	metrics_add(m, "sq_a", (const char *[]){ "inf" }, INFINITY);
	text = render(m);
	assert_contains(text, "sq_a{k=\"big\"} 1.8446744073709552e+19\n");
	assert_contains(text, "sq_a{k=\"int\"} 123456789012\n");
	assert_contains(text, "sq_a{k=\"frac\"} 0.1\n");
	assert_contains(text, "sq_a{k=\"neg\"} -2.5\n");
	assert_contains(text, "sq_a{k=\"inf\"} +Inf\n");
	free(text);
	metrics_free(m);
	/* an empty set renders as nothing */
	m = metrics_new();
	text = render(m);
	assert_string_equal(text, "");
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histogram_buckets),
		cmocka_unit_test(test_counter_gauge_render),
		cmocka_unit_test(test_histogram_render),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_names_refused),
		cmocka_unit_test(test_bounded_series),
		cmocka_unit_test(test_numbers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
