/* test_route.c - the four routing rules, their precedence, miss details, and lookup by names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

#define KEY_BE "a6f4c1d2e3b4a5968778695a4b3c2d1e"
#define KEY_FE "b7e5d2c3f4a5b6c7d8e9f0a1b2c3d4e5"
#define KEY_OTHER "c8f6e3d4a5b6c7d8e9f0a1b2c3d4e5f6"

/* Hand-built config: "wow" (vod_be id 11, vod_fe id 12, dup_be reusing KEY_BE with id 13),
 * "other" (main id 7), and "shared" (an upstream whose name is also a real key of "other"). */
static struct config_project wow_projects[] = {
	{ .name = (char *)"vod_be", .key = (char *)KEY_BE, .secret = (char *)"563b", .id = 11 },
	{ .name = (char *)"vod_fe", .key = (char *)KEY_FE, .secret = NULL, .id = 12 },
	{ .name = (char *)"dup_be", .key = (char *)KEY_BE, .secret = NULL, .id = 13 },
};
static struct config_project other_projects[] = {
	{ .name = (char *)"main", .key = (char *)KEY_OTHER, .secret = NULL, .id = 7 },
	{ .name = (char *)"alias", .key = (char *)"shared", .secret = NULL, .id = 8 },
};
static struct config_project shared_projects[] = {
	{ .name = (char *)"sp", .key = (char *)"d9a7f4e5b6c7d8e9f0a1b2c3d4e5f6a7", .secret = NULL, .id = 21 },
};
static struct config_upstream upstreams[] = {
	{ .name = (char *)"wow", .projects = wow_projects, .nprojects = 3 },
	{ .name = (char *)"other", .projects = other_projects, .nprojects = 2 },
	{ .name = (char *)"shared", .projects = shared_projects, .nprojects = 1 },
};

static struct config make_config(const char *dup, const char *dproj)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.upstreams = upstreams;
	cfg.nupstreams = 3;
	cfg.default_upstream = (char *)dup;
	cfg.default_project = (char *)dproj;
	return cfg;
}

static int setup(void **state)
{
	static struct config cfg;

	cfg = make_config(NULL, NULL);
	*state = route_new(&cfg);
	return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	route_free(*state);
	return 0;
}

static void expect_route(const struct route *rt, const char *key, const char *secret, long pid,
			 const char *up, const char *proj, int rule)
{
	struct route_target t;
	char detail[256] = "junk";

	assert_int_equal(route_lookup(rt, key, secret, pid, &t, detail, sizeof(detail)), 0);
	assert_string_equal(t.upstream->name, up);
	assert_string_equal(t.project->name, proj);
	assert_int_equal(t.rule, rule);
}

static void expect_miss(const struct route *rt, const char *key, const char *secret, long pid,
			const char *want)
{
	struct route_target t;
	char detail[256];

	assert_int_equal(route_lookup(rt, key, secret, pid, &t, detail, sizeof(detail)), -1);
	assert_string_equal(detail, want);
	if (secret != NULL && *secret != '\0')
		assert_null(strstr(detail, secret));
}

static void test_rule1(void **state)
{
	expect_route(*state, "wow", "vod_be", -1, "wow", "vod_be", 1);
	expect_route(*state, "wow", "vod_fe", 11, "wow", "vod_fe", 1);   /* path id does not matter */
	expect_route(*state, "other", "main", -1, "other", "main", 1);
}

static void test_rule2(void **state)
{
	expect_route(*state, "wow", NULL, 12, "wow", "vod_fe", 2);
	expect_route(*state, "wow", "", 11, "wow", "vod_be", 2);
	expect_route(*state, "other", NULL, 7, "other", "main", 2);
}

static void test_rule3(void **state)
{
	/* first in config order wins for a key two projects share */
	expect_route(*state, KEY_BE, NULL, -1, "wow", "vod_be", 3);
	expect_route(*state, KEY_BE, "whatever", 999, "wow", "vod_be", 3);
	expect_route(*state, KEY_OTHER, NULL, 7, "other", "main", 3);
}

static void test_precedence(void **state)
{
	/* "shared" is an upstream name and the real key of other/alias */
	expect_route(*state, "shared", "sp", -1, "shared", "sp", 1);
	expect_route(*state, "shared", NULL, 21, "shared", "sp", 2);
	expect_route(*state, "shared", NULL, -1, "other", "alias", 3);
	expect_route(*state, "shared", "nope", -1, "other", "alias", 3);
	expect_route(*state, "shared", NULL, 99, "other", "alias", 3);
}

static void test_misses(void **state)
{
	expect_miss(*state, "wow", "TOPSECRET", -1, "upstream 'wow' has no project named by the DSN secret");
	expect_miss(*state, "wow", "TOPSECRET", 11, "upstream 'wow' has no project named by the DSN secret");
	expect_miss(*state, "wow", NULL, 7, "upstream 'wow' has no project with id 7");
	expect_miss(*state, "wow", NULL, -1, "upstream 'wow' needs a DSN secret or a project id in the path");
	expect_miss(*state, "nope", "TOPSECRET", 11, "unknown public key 'nope'");
	expect_miss(*state, "abcdef0123456789abcdef0123456789", NULL, 1, "unknown public key 'abcd****'");
	expect_miss(*state, NULL, NULL, -1, "unknown public key '-'");
	/* a project name is not a key: vod_be alone is unknown */
	expect_miss(*state, "vod_be", NULL, 11, "unknown public key 'vod_be'");
}

static void test_default_route(void **state)
{
	struct config cfg = make_config("other", "main");
	struct route *rt = route_new(&cfg);

	assert_non_null(rt);
	expect_route(rt, "nope", "TOPSECRET", -1, "other", "main", 4);
	expect_route(rt, "wow", "nope", -1, "other", "main", 4);
	/* earlier rules still win */
	expect_route(rt, "wow", "vod_fe", -1, "wow", "vod_fe", 1);
	expect_route(rt, "wow", NULL, 11, "wow", "vod_be", 2);
	expect_route(rt, KEY_FE, NULL, -1, "wow", "vod_fe", 3);
	route_free(rt);

	/* a default naming nothing is ignored */
	cfg = make_config("other", "missing");
	rt = route_new(&cfg);
	assert_non_null(rt);
	expect_miss(rt, "nope", NULL, -1, "unknown public key 'nope'");
	route_free(rt);
}

/* Rule 1 finds a route by its names: upstream (the DSN key) and project (the DSN secret). */
static void test_find(void **state)
{
	struct route_target t;
	char detail[256];

	assert_int_equal(route_lookup(*state, "wow", "dup_be", -1, &t, detail, sizeof(detail)), 0);
	assert_ptr_equal(t.project, &wow_projects[2]);
	assert_ptr_equal(t.upstream, &upstreams[0]);
	assert_int_equal(route_lookup(*state, "other", "alias", -1, &t, detail, sizeof(detail)), 0);
	assert_int_equal(t.project->id, 8);
	assert_int_equal(route_lookup(*state, "wow", "main", -1, &t, detail, sizeof(detail)), -1);
	assert_int_equal(route_lookup(*state, "nope", "main", -1, &t, detail, sizeof(detail)), -1);
}

/* Many upstreams and projects: every one is found, so collisions and growth are handled. */
static void test_many(void **state)
{
	enum { NUP = 40, NPJ = 25 };
	struct config_upstream *ups = calloc(NUP, sizeof(*ups));
	struct config_project *pjs = calloc(NUP * NPJ, sizeof(*pjs));
	char *names = calloc(NUP * NPJ * 3, 40);
	struct config cfg = make_config(NULL, NULL);
	struct route_target t;
	struct route *rt;

	assert_non_null(ups);
	assert_non_null(pjs);
	assert_non_null(names);
	for (int u = 0; u < NUP; u++) {
		ups[u].name = names + (u * NPJ * 3) * 40;
		snprintf(ups[u].name, 40, "up%d", u);
		ups[u].projects = pjs + u * NPJ;
		ups[u].nprojects = NPJ;
		for (int p = 0; p < NPJ; p++) {
			struct config_project *pj = &ups[u].projects[p];

			pj->name = names + (u * NPJ * 3 + p * 3 + 1) * 40;
			pj->key = names + (u * NPJ * 3 + p * 3 + 2) * 40;
			snprintf(pj->name, 40, "p%d", p);
			snprintf(pj->key, 40, "key-%d-%d", u, p);
			pj->id = 1000 + p;
		}
	}
	cfg.upstreams = ups;
	cfg.nupstreams = NUP;
	rt = route_new(&cfg);
	assert_non_null(rt);
	for (int u = 0; u < NUP; u++) {
		for (int p = 0; p < NPJ; p++) {
			char un[16], pn[16], key[40];

			snprintf(un, sizeof(un), "up%d", u);
			snprintf(pn, sizeof(pn), "p%d", p);
			snprintf(key, sizeof(key), "key-%d-%d", u, p);
			assert_int_equal(route_lookup(rt, un, pn, -1, &t, NULL, 0), 0);
			assert_ptr_equal(t.project, &ups[u].projects[p]);
			assert_int_equal(route_lookup(rt, un, NULL, 1000 + p, &t, NULL, 0), 0);
			assert_ptr_equal(t.project, &ups[u].projects[p]);
			assert_int_equal(route_lookup(rt, key, NULL, -1, &t, NULL, 0), 0);
			assert_ptr_equal(t.project, &ups[u].projects[p]);
			assert_int_equal(t.rule, 3);
		}
	}
	route_free(rt);
	free(names);
	free(pjs);
	free(ups);
}

static void test_empty_config(void **state)
{
	struct config cfg;
	struct route_target t;
	char detail[64];
	struct route *rt;

	memset(&cfg, 0, sizeof(cfg));
	rt = route_new(&cfg);
	assert_non_null(rt);
	assert_int_equal(route_lookup(rt, "wow", NULL, 1, &t, detail, sizeof(detail)), -1);
	assert_string_equal(detail, "unknown public key 'wow'");
	route_free(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rule1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_misses, setup, teardown),
		cmocka_unit_test(test_default_route),
		cmocka_unit_test_setup_teardown(test_find, setup, teardown),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_empty_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
