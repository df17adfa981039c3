/* test_strmap.c - the string-keyed hash map: put/get, first value kept, growth to many keys, copied
 * keys, and the FNV-1a hash against its published test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define MANY 50000

static void *val(uintptr_t i)
{
	return (void *)(i + 1);  /* never NULL */
}

static void test_put_get(void **state)
{
	struct strmap *m = strmap_new();
	int x, y, z;

	(void)state;
	assert_non_null(m);
	assert_int_equal(strmap_count(m), 0);
	assert_null(strmap_get(m, "a"));
	assert_int_equal(strmap_put(m, "a", &x), STRMAP_OK);
	assert_int_equal(strmap_put(m, "aa", &y), STRMAP_OK);
	assert_int_equal(strmap_put(m, "", &z), STRMAP_OK);  /* the empty key is a key */
	assert_int_equal(strmap_count(m), 3);
	assert_ptr_equal(strmap_get(m, "a"), &x);
	assert_ptr_equal(strmap_get(m, "aa"), &y);
	assert_ptr_equal(strmap_get(m, ""), &z);
	/* absent: prefixes, extensions, case */
	assert_null(strmap_get(m, "aaa"));
	assert_null(strmap_get(m, "A"));
	assert_null(strmap_get(m, "b"));
	assert_null(strmap_get(m, "a "));
	strmap_free(m);
	strmap_free(NULL);
}

static void test_exists_keeps_first(void **state)
{
	struct strmap *m = strmap_new();
	int x, y;

	(void)state;
	assert_int_equal(strmap_put(m, "p\x1fup\x1f" "42", &x), STRMAP_OK);
	assert_int_equal(strmap_put(m, "p\x1fup\x1f" "42", &y), STRMAP_EXISTS);
	assert_int_equal(strmap_put(m, "p\x1fup\x1f" "42", NULL), STRMAP_EXISTS);
	assert_ptr_equal(strmap_get(m, "p\x1fup\x1f" "42"), &x);
	assert_int_equal(strmap_count(m), 1);
	assert_null(strmap_get(m, "p\x1fup\x1f" "4"));
	strmap_free(m);
}

static void test_growth(void **state)
{
	struct strmap *m = strmap_new();
	char key[32];

	(void)state;
	for (uintptr_t i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "sentryq:q:up:%lu", (unsigned long)i);
		assert_int_equal(strmap_put(m, key, val(i)), STRMAP_OK);
		assert_int_equal(strmap_count(m), i + 1);
		/* the first keys survive every growth on the way */
		assert_ptr_equal(strmap_get(m, "sentryq:q:up:0"), val(0));
	}
	for (uintptr_t i = 0; i < MANY; i++) {
		snprintf(key, sizeof(key), "sentryq:q:up:%lu", (unsigned long)i);
		if (strmap_get(m, key) != val(i))
			fail_msg("%s lost after growth", key);
		assert_int_equal(strmap_put(m, key, NULL), STRMAP_EXISTS);
	}
	assert_int_equal(strmap_count(m), MANY);
	/* absent keys, near the present ones */
	for (uintptr_t i = MANY; i < MANY + 1000; i++) {
		snprintf(key, sizeof(key), "sentryq:q:up:%lu", (unsigned long)i);
		assert_null(strmap_get(m, key));
	}
	assert_null(strmap_get(m, "sentryq:q:up:"));
	assert_null(strmap_get(m, "sentryq:q:up:-1"));
	assert_null(strmap_get(m, "sentryq:q:up:00"));
	assert_null(strmap_get(m, ""));
	strmap_free(m);
}

static void test_keys_are_copied(void **state)
{
	struct strmap *m = strmap_new();
	char stack[] = "stream-a";
	char *heap = strdup("route:upstream:1");
	int x, y;

	(void)state;
	assert_non_null(heap);
	assert_int_equal(strmap_put(m, stack, &x), STRMAP_OK);
	assert_int_equal(strmap_put(m, heap, &y), STRMAP_OK);
	/* the caller's buffers change, or go */
	stack[7] = 'b';
	heap[0] = 'R';
	assert_ptr_equal(strmap_get(m, "stream-a"), &x);
	assert_null(strmap_get(m, "stream-b"));
	assert_null(strmap_get(m, stack));
	assert_ptr_equal(strmap_get(m, "route:upstream:1"), &y);
	assert_null(strmap_get(m, heap));
	free(heap);
	assert_ptr_equal(strmap_get(m, "route:upstream:1"), &y);
	/* and the changed buffer is a new key */
	assert_int_equal(strmap_put(m, stack, &y), STRMAP_OK);
	assert_ptr_equal(strmap_get(m, "stream-b"), &y);
	assert_int_equal(strmap_count(m), 3);
	strmap_free(m);
}

static void test_fnv(void **state)
{
	(void)state;
	/* FNV-1a 32-bit test vectors (draft-eastlake-fnv) */
	assert_int_equal(STRMAP_FNV_SEED, 0x811c9dc5u);
	assert_int_equal(strmap_fnv(STRMAP_FNV_SEED, "", 0), 0x811c9dc5u);
	assert_int_equal(strmap_fnv(STRMAP_FNV_SEED, "a", 1), 0xe40c292cu);
	assert_int_equal(strmap_fnv(STRMAP_FNV_SEED, "foobar", 6), 0xbf9cf968u);
	/* continuing from h is hashing the concatenation */
	assert_int_equal(strmap_fnv(strmap_fnv(STRMAP_FNV_SEED, "foo", 3), "bar", 3),
			 strmap_fnv(STRMAP_FNV_SEED, "foobar", 6));
	/* n bounds the input, and bytes >= 0x80 and NUL hash as bytes */
	assert_int_equal(strmap_fnv(STRMAP_FNV_SEED, "ab", 1), 0xe40c292cu);
	assert_true(strmap_fnv(STRMAP_FNV_SEED, "\0", 1) != strmap_fnv(STRMAP_FNV_SEED, "", 0));
	assert_true(strmap_fnv(STRMAP_FNV_SEED, "\xff", 1) != strmap_fnv(STRMAP_FNV_SEED, "\x7f", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_exists_keeps_first),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_keys_are_copied),
		cmocka_unit_test(test_fnv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
