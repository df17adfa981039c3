/* test_budget.c - the body-memory bound: bodies taken and given back, the reserve kept for small
 * bodies, and a chunked body growing piece by piece counted by its size so far (past the small
 * size it never grows into the reserve). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "budget.h"

#define MIB ((size_t)1 << 20)
#define CAP (256 * MIB)   /* the shipped listen.max_body_memory */
#define SMALL MIB         /* the shipped limits.max_event_size */
#define LARGE_CAP (CAP - CAP / BUDGET_HOLDBACK)

static void test_take_give(void **state)
{
	struct budget *b = budget_new(CAP, SMALL);

	(void)state;
	assert_non_null(b);
	assert_int_equal(budget_cap(b), CAP);
	assert_int_equal(budget_take(b, 150 * MIB), BUDGET_OK);
	assert_int_equal(budget_used(b), 150 * MIB);
	/* A second 150 MiB body does not fit: nothing is taken. */
	assert_false(budget_room(b, 150 * MIB));
	assert_int_equal(budget_take(b, 150 * MIB), BUDGET_FULL);
	assert_int_equal(budget_used(b), 150 * MIB);
	budget_give(b, 150 * MIB);
	assert_int_equal(budget_used(b), 0);
	budget_give(b, 1);  /* never below zero */
	assert_int_equal(budget_used(b), 0);
	assert_false(budget_room(b, CAP + 1));
	budget_free(b);
}

static void test_reserve_for_small(void **state)
{
	struct budget *b = budget_new(CAP, SMALL);

	(void)state;
	/* Large bodies fill up to the bound less its last 1/16 ... */
	assert_int_equal(budget_take(b, LARGE_CAP), BUDGET_OK);
	assert_false(budget_room(b, SMALL + 1));
	/* ... which small bodies still get. */
	for (size_t i = 0; i < CAP / BUDGET_HOLDBACK / SMALL; i++)
		assert_int_equal(budget_take(b, SMALL), BUDGET_OK);
	assert_int_equal(budget_used(b), CAP);
	assert_int_equal(budget_take(b, 1), BUDGET_FULL);
	/* budget_force counts memory that changes hands even past the bound. */
	budget_force(b, 10);
	assert_int_equal(budget_used(b), CAP + 10);
	budget_free(b);
}

static void test_growing_body(void **state)
{
	struct budget *b = budget_new(CAP, SMALL);
	size_t held = 0;

	(void)state;
	assert_int_equal(budget_take(b, LARGE_CAP - 100 * MIB), BUDGET_OK);
	/* A chunked body growing 4 KiB at a time: every piece is small, the body is not. It stops at
	 * the large bodies' share, the reserve stays for small bodies. */
	while (budget_take_more(b, held, 4096) == BUDGET_OK)
		held += 4096;
	assert_int_equal(held, 100 * MIB);
	assert_int_equal(budget_used(b), LARGE_CAP);
	assert_false(budget_room_more(b, held, 1));
	/* Up to the small size a growing body may use the reserve, as a small body would. */
	assert_true(budget_room_more(b, 0, SMALL));
	assert_true(budget_room_more(b, SMALL - 4096, 4096));
	assert_false(budget_room_more(b, SMALL - 4096, 4097));
	assert_int_equal(budget_take_more(b, 0, SMALL), BUDGET_OK);
	budget_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_give),
		cmocka_unit_test(test_reserve_for_small),
		cmocka_unit_test(test_growing_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
