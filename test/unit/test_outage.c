/* test_outage.c - the upstream connection monitor: waves count once, blips retry fast, outages are
 * probed one request at a time at a growing, capped interval, and any answer ends them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outage.h"
#include "outcome.h"

#define MID 0.5  /* rnd for "no jitter": 1 + 0.1 * (2 * 0.5 - 1) = 1 */

/* The shipped defaults: forward.retry_initial 1, retry_max 60, outage_grace 10. */
static const struct outage_params defaults = { 1.0, 60.0, 10.0 };

static void test_a_wave_counts_once(void **state)
{
	struct outage o;
	unsigned stamp;

	(void)state;
	outage_init(&o, &defaults, 100.0);
	stamp = outage_stamp(&o);
	/* 16 requests sent together all fail: the first moves the state, the other 15 are stale. */
	assert_int_equal(outage_failed(&o, stamp, 100.0, 100.0, MID), OUTAGE_BECAME_INTERRUPTED);
	for (int i = 0; i < 15; i++)
		assert_int_equal(outage_failed(&o, stamp, 100.01, 100.01, MID), OUTAGE_SAME);
	assert_int_equal(o.failed_waves, 1);
	assert_float_equal(outage_wait(&o, 100.0), 1.0, 1e-9);
	assert_int_equal(outage_slots(&o, 100.5, 16), 0);
	assert_int_equal(outage_slots(&o, 101.0, 16), 16);
}

static void test_blip_retries_after_a_second(void **state)
{
	struct outage o;

	(void)state;
	outage_init(&o, &defaults, 0.0);
	assert_int_equal(outage_failed(&o, outage_stamp(&o), 0.0, 0.0, MID), OUTAGE_BECAME_INTERRUPTED);
	/* Within the grace period every wave waits about retry_initial, never longer. */
	for (double t = 1.0; t < 10.0; t += 1.0) {
		assert_int_equal(outage_failed(&o, outage_stamp(&o), t, t, MID), OUTAGE_RETRY_LATER);
		assert_float_equal(outage_wait(&o, t), 1.0, 1e-9);
	}
	assert_int_equal(outage_reachable(&o, 9.5), OUTAGE_RECOVERED);
	assert_int_equal(o.state, OUTAGE_UP);
	assert_int_equal(outage_slots(&o, 9.5, 16), 16);
}

static void test_down_after_grace_then_probes_grow_and_cap(void **state)
{
	struct outage o;
	double t = 0.0, expect = 1.0;

	(void)state;
	outage_init(&o, &defaults, 0.0);
	outage_failed(&o, outage_stamp(&o), 0.0, 0.0, MID);
	outage_failed(&o, outage_stamp(&o), 5.0, 5.0, MID);
	assert_int_equal(outage_failed(&o, outage_stamp(&o), 10.0, 10.0, MID), OUTAGE_BECAME_DOWN);
	t = 10.0;
	assert_float_equal(outage_wait(&o, t), 1.0, 1e-9);
	/* One probe at a time: a single slot, only once the interval is over. */
	assert_int_equal(outage_slots(&o, t + 0.5, 16), 0);
	assert_int_equal(outage_slots(&o, t + 1.0, 16), 1);
	for (int i = 0; i < 30; i++) {
		t += outage_wait(&o, t);
		assert_int_equal(outage_failed(&o, outage_stamp(&o), t, t, MID), OUTAGE_PROBE_FAILED);
		expect = expect * 1.5 > 60.0 ? 60.0 : expect * 1.5;
		assert_float_equal(outage_wait(&o, t), expect, 1e-9);
	}
	assert_float_equal(o.interval, 60.0, 1e-9);
	/* Jitter never pushes a probe past retry_max. */
	outage_failed(&o, outage_stamp(&o), t, t, 0.999999);
	assert_true(outage_wait(&o, t) <= 60.0);
	outage_failed(&o, outage_stamp(&o), t, t, 0.0);
	assert_float_equal(outage_wait(&o, t), 54.0, 1e-9);
}

static void test_ten_minutes_down_probe_within_a_minute(void **state)
{
	struct outage o;
	double t = 0.0, gap_max = 0.0, last = 0.0;

	(void)state;
	outage_init(&o, &defaults, 0.0);
	/* Refused connections for 10 minutes: probes go out whenever due, each one fails. */
	while (t < 600.0) {
		if (outage_slots(&o, t, 16) > 0) {
			if (o.state == OUTAGE_DOWN && t - last > gap_max)
				gap_max = t - last;
			last = t;
			outage_failed(&o, outage_stamp(&o), t, t, 0.999);
		}
		t += 0.1;
	}
	assert_int_equal(o.state, OUTAGE_DOWN);
	assert_true(gap_max <= 60.0 + 0.1);
	assert_true(outage_wait(&o, t) <= 60.0);
}

/* A probe's interval runs from its send: a probe answered 0.5 s later (a slow 503), or one that
 * hangs until forward.timeout, does not push the next one out by its own latency. */
static void test_probe_interval_runs_from_the_send(void **state)
{
	struct outage o;
	double t = 0.0;

	(void)state;
	outage_init(&o, &defaults, 0.0);
	outage_failed(&o, outage_stamp(&o), 0.0, 0.0, MID);
	assert_int_equal(outage_failed(&o, outage_stamp(&o), 10.0, 10.0, MID), OUTAGE_BECAME_DOWN);
	for (int i = 0; i < 20; i++) {
		t = o.next_at;
		outage_failed(&o, outage_stamp(&o), t, t + 0.5, MID);
	}
	assert_float_equal(o.interval, 60.0, 1e-9);
	/* Sent at t, answered at t + 0.5: due 60 s after the send, 59.5 s after the answer. */
	assert_float_equal(o.next_at, t + 60.0, 1e-9);
	assert_float_equal(outage_wait(&o, t + 0.5), 59.5, 1e-9);
	/* A probe that hung for 10 s at a 1 s interval: the next one is due at once. */
	outage_init(&o, &defaults, 0.0);
	outage_failed(&o, outage_stamp(&o), 0.0, 0.0, MID);
	outage_failed(&o, outage_stamp(&o), 10.0, 10.0, MID);
	assert_int_equal(outage_failed(&o, outage_stamp(&o), 11.0, 21.0, MID), OUTAGE_PROBE_FAILED);
	assert_float_equal(outage_wait(&o, 21.0), 0.0, 1e-9);
	assert_int_equal(outage_slots(&o, 21.0, 16), 1);
	/* A send time after the answer (cannot happen; a clock oddity) counts from the answer. */
	assert_int_equal(outage_failed(&o, outage_stamp(&o), 30.0, 22.0, MID), OUTAGE_PROBE_FAILED);
	assert_float_equal(o.next_at, 22.0 + 2.25, 1e-9);
}

static void test_stale_failures_after_recovery_are_ignored(void **state)
{
	struct outage o;
	unsigned before;

	(void)state;
	outage_init(&o, &defaults, 0.0);
	outage_failed(&o, outage_stamp(&o), 0.0, 0.0, MID);
	before = outage_stamp(&o);
	assert_int_equal(outage_reachable(&o, 1.0), OUTAGE_RECOVERED);
	/* A request sent while interrupted fails late: the upstream has answered since. */
	assert_int_equal(outage_failed(&o, before, 1.1, 1.1, MID), OUTAGE_SAME);
	assert_int_equal(o.state, OUTAGE_UP);
	assert_int_equal(outage_reachable(&o, 1.2), OUTAGE_SAME);
}

static void test_outcomes(void **state)
{
	(void)state;
	assert_int_equal(outcome_of(200), OUTCOME_DELIVERED);
	assert_int_equal(outcome_of(202), OUTCOME_DELIVERED);
	assert_int_equal(outcome_of(0), OUTCOME_RETRY);
	assert_int_equal(outcome_of(408), OUTCOME_RETRY);
	assert_int_equal(outcome_of(500), OUTCOME_RETRY);
	assert_int_equal(outcome_of(503), OUTCOME_RETRY);
	assert_int_equal(outcome_of(301), OUTCOME_RETRY);
	assert_int_equal(outcome_of(429), OUTCOME_LIMITED);
	assert_int_equal(outcome_of(400), OUTCOME_PERMANENT);
	assert_int_equal(outcome_of(413), OUTCOME_PERMANENT);
	/* Reachable: what ends an outage. 5xx, 408, timeouts and 3xx keep it going. */
	assert_true(outcome_reachable(200));
	assert_true(outcome_reachable(400));
	assert_true(outcome_reachable(429));
	assert_false(outcome_reachable(0));
	assert_false(outcome_reachable(408));
	assert_false(outcome_reachable(502));
	assert_false(outcome_reachable(302));
	assert_string_equal(outcome_name(OUTCOME_LIMITED), "rate_limited");
}

/* The fleet says down: an up (or interrupted) upstream is down at once, probed after about
 * retry_initial; its in-flight requests cannot move it; one already down stays as it was. */
static void test_fleet_down(void **state)
{
	struct outage o;
	unsigned stamp;

	(void)state;
	outage_init(&o, &defaults, 50.0);
	stamp = outage_stamp(&o);
	assert_int_equal(outage_fleet_down(&o, 50.0, MID), OUTAGE_BECAME_DOWN);
	assert_int_equal(o.state, OUTAGE_DOWN);
	assert_float_equal(o.first_failure, 50.0, 1e-9);
	assert_int_equal(outage_slots(&o, 50.5, 16), 0);
	assert_int_equal(outage_slots(&o, 51.0, 16), 1);
	assert_int_equal(outage_failed(&o, stamp, 50.2, 50.2, MID), OUTAGE_SAME);
	assert_int_equal(outage_fleet_down(&o, 51.0, MID), OUTAGE_SAME);
	assert_float_equal(o.next_at, 51.0, 1e-9);
	assert_int_equal(outage_reachable(&o, 52.0), OUTAGE_RECOVERED);
	/* Interrupted: the interruption's start is kept (how long it has been failing). */
	stamp = outage_stamp(&o);
	assert_int_equal(outage_failed(&o, stamp, 60.0, 60.0, MID), OUTAGE_BECAME_INTERRUPTED);
	assert_int_equal(outage_fleet_down(&o, 62.0, MID), OUTAGE_BECAME_DOWN);
	assert_float_equal(o.first_failure, 60.0, 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_wave_counts_once),
		cmocka_unit_test(test_blip_retries_after_a_second),
		cmocka_unit_test(test_down_after_grace_then_probes_grow_and_cap),
		cmocka_unit_test(test_ten_minutes_down_probe_within_a_minute),
		cmocka_unit_test(test_probe_interval_runs_from_the_send),
		cmocka_unit_test(test_stale_failures_after_recovery_are_ignored),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_fleet_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
