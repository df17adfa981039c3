/* test_health.c - liveness (the self-check going stale) and readiness (stopping, queue bounds,
 * the buffer while Redis is away, body memory) as the health checks decide them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "health.h"

static struct health_input fine(void)
{
	struct health_input in = {
		.stopping = false, .pending = 10, .max_pending = 100, .bytes = 1000, .max_bytes = 100000,
		.redis_ready = true, .buffered = 0, .buffer_bytes = 0, .buffer_max = 65536, .body_room = true,
	};

	return in;
}

static void test_ready(void **state)
{
	struct health_input in = fine();

	(void)state;
	assert_int_equal(health_ready(&in), HEALTH_READY);
	assert_string_equal(health_status_word(HEALTH_READY, true), "ok");
	in.stopping = true;
	assert_int_equal(health_ready(&in), HEALTH_STOPPING);
	assert_string_equal(health_status_word(HEALTH_STOPPING, true), "stopping");
	assert_string_equal(health_ready_name(HEALTH_STOPPING), "stopping");
}

/* The same bounds as ingest's backpressure check: at the bound, a request gets 429. */
static void test_queue_bounds(void **state)
{
	struct health_input in = fine();

	(void)state;
	in.pending = 99;
	assert_int_equal(health_ready(&in), HEALTH_READY);
	in.pending = 100;
	assert_int_equal(health_ready(&in), HEALTH_QUEUE_FULL);
	in = fine();
	in.bytes = 100000;
	assert_int_equal(health_ready(&in), HEALTH_QUEUE_FULL);
	assert_string_equal(health_ready_name(HEALTH_QUEUE_FULL), "queue_full");
	assert_string_equal(health_status_word(HEALTH_QUEUE_FULL, true), "degraded");
}

static void test_redis_away(void **state)
{
	struct health_input in = fine();

	(void)state;
	/* the buffer takes requests: ready, but degraded */
	in.redis_ready = false;
	in.buffer_bytes = 60000;
	assert_int_equal(health_ready(&in), HEALTH_READY);
	assert_string_equal(health_status_word(HEALTH_READY, false), "degraded");
	/* a small request no longer fits: not ready */
	in.buffer_bytes = 65536 - HEALTH_SMALL_REQUEST + 1;
	assert_int_equal(health_ready(&in), HEALTH_BUFFER_FULL);
	in.buffer_bytes = 70000;  /* spool entries are taken back past the bound */
	assert_int_equal(health_ready(&in), HEALTH_BUFFER_FULL);
	/* no buffer at all: Redis away means 503 */
	in.buffer_bytes = 0;
	in.buffer_max = 0;
	assert_int_equal(health_ready(&in), HEALTH_BUFFER_FULL);
	/* Redis back, buffer still draining and full: new entries queue behind it, so still refused */
	in.redis_ready = true;
	in.buffer_max = 65536;
	in.buffer_bytes = 65536;
	in.buffered = 3;
	assert_int_equal(health_ready(&in), HEALTH_BUFFER_FULL);
	in.buffered = 0;
	assert_int_equal(health_ready(&in), HEALTH_READY);  /* drained: the buffer is not in the way */
	assert_string_equal(health_ready_name(HEALTH_BUFFER_FULL), "buffer_full");
}

static void test_body_memory(void **state)
{
	struct health_input in = fine();

	(void)state;
	in.body_room = false;
	assert_int_equal(health_ready(&in), HEALTH_BODY_MEMORY);
	assert_string_equal(health_ready_name(HEALTH_BODY_MEMORY), "body_memory");
}

/* role forward: no ingest, so only stopping and Redis count (a full queue is what it drains). */
static void test_forward_only(void **state)
{
	struct health_input in = fine();

	(void)state;
	in.forward_only = true;
	in.pending = in.max_pending;
	in.body_room = false;
	assert_int_equal(health_ready(&in), HEALTH_READY);
	in.redis_ready = false;
	assert_int_equal(health_ready(&in), HEALTH_REDIS_DOWN);
	assert_string_equal(health_ready_name(HEALTH_REDIS_DOWN), "redis_down");
	in.stopping = true;
	assert_int_equal(health_ready(&in), HEALTH_STOPPING);
}

static void test_live(void **state)
{
	(void)state;
	assert_int_equal(health_live(100.0, 1.0, 100.0), HEALTH_LIVE);
	assert_int_equal(health_live(100.0, 1.0, 100.0 + HEALTH_STALE_AFTER), HEALTH_LIVE);
	/* overdue: the loop has not run its timers */
	assert_int_equal(health_live(100.0, 1.0, 100.0 + HEALTH_STALE_AFTER + 0.01), HEALTH_STUCK);
	/* just out of a stall: the run that ended it does not hide it... */
	assert_int_equal(health_live(100.0, HEALTH_STALE_AFTER + 1.0, 100.1), HEALTH_STUCK);
	/* ...until the self-check has run once more on time */
	assert_int_equal(health_live(101.0, HEALTH_BEAT_PERIOD, 101.1), HEALTH_LIVE);
	assert_true(HEALTH_BEAT_PERIOD * 4 < HEALTH_STALE_AFTER);  /* a few missed beats are not "stuck" */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready),
		cmocka_unit_test(test_queue_bounds),
		cmocka_unit_test(test_redis_away),
		cmocka_unit_test(test_body_memory),
		cmocka_unit_test(test_forward_only),
		cmocka_unit_test(test_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
