/* test_generation.c - a reload's pure part: the route diff, the restart-only keys (named, and
 * their running values kept), the same-server test for upstreams, and the reference counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "generation.h"
#include "route.h"

#define KEY_A "a6f431e198734105aef464f6e702351f"
#define KEY_B "b7e5d2c3f4a5b6c7d8e9f0a1b2c3d4e5"
#define KEY_C "c8f6e3d4a5b6c7d8e9f0a1b2c3d4e5f6"

static struct config *load(const char *text)
{
	char path[64], err[512] = "";
	size_t len = strlen(text);
	struct config *cfg;
	int fd;

	snprintf(path, sizeof(path), "/tmp/sentryq-gen-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	cfg = config_load(path, err, sizeof(err));
	unlink(path);
	if (cfg == NULL)
		print_message("unexpected error: %s\n", err);
	assert_non_null(cfg);
	return cfg;
}

#define BASE_CFG(top, projects_wow, more) \
	top "upstreams = ( { name = \"wow\"; url = \"http://127.0.0.1:9001\"; projects = (" projects_wow "); }" more ");\n"
/* one project a line: the loader reads an id's digits back from its line */
#define P(name, key, id) "\n{ name = \"" name "\"; key = \"" key "\"; id = " #id "; }\n"

static void test_diff_routes(void **state)
{
	struct config *a = load(BASE_CFG("", P("be", KEY_A, 1) "," P("fe", KEY_B, 2) "," P("old", KEY_C, 3),
					 ", { name = \"gone\"; url = \"http://127.0.0.1:9002\"; projects = (" P("x", KEY_A, 9) "); }"));
	struct config *b = load(BASE_CFG("", P("be", KEY_A, 1) "," P("fe", KEY_C, 2) "," P("new", KEY_B, 4),
					 ", { name = \"other\"; url = \"http://127.0.0.1:9003\"; projects = (" P("y", KEY_A, 5) "); }"));
	struct generation_diff d;

	(void)state;
	generation_diff(a, b, &d);
	assert_int_equal(d.kept, 1);      /* be */
	assert_int_equal(d.changed, 1);   /* fe: a new key */
	assert_int_equal(d.added, 2);     /* new, other/y */
	assert_int_equal(d.removed, 2);   /* old, gone/x */
	assert_int_equal(d.upstreams_added, 1);
	assert_int_equal(d.upstreams_removed, 1);
	assert_int_equal(d.upstreams_changed, 0);
	generation_diff(a, a, &d);
	assert_int_equal(d.kept, 4);
	assert_int_equal(d.added + d.removed + d.changed, 0);
	config_free(a);
	config_free(b);
}

static void test_diff_upstream_server(void **state)
{
	struct config *a = load(BASE_CFG("", P("be", KEY_A, 1), ""));
	struct config *b = load("upstreams = ( { name = \"wow\"; url = \"http://127.0.0.1:9009\"; projects = ("
				P("be", KEY_A, 1) "); } );\n");
	struct config *c = load("upstreams = ( { name = \"wow\"; url = \"http://127.0.0.1:9001\"; timeout = 2.0; projects = ("
				P("be", KEY_A, 1) "); } );\n");
	struct generation_diff d;

	(void)state;
	assert_false(generation_same_server(&a->upstreams[0], &b->upstreams[0]));
	assert_true(generation_same_server(&a->upstreams[0], &c->upstreams[0]));
	generation_diff(a, b, &d);
	assert_int_equal(d.changed, 1);   /* its route goes to another server */
	assert_int_equal(d.upstreams_changed, 1);
	generation_diff(a, c, &d);
	assert_int_equal(d.kept, 1);      /* a timeout is no change of route */
	assert_int_equal(d.upstreams_changed, 1);
	config_free(a);
	config_free(b);
	config_free(c);
}

static void test_restart_keys(void **state)
{
	struct config *a = load(BASE_CFG("listen = { port = 9100; }; redis = { host = \"10.0.0.1\"; };\n"
					 "queue = { max_pending = 5; }; log = { level = \"info\"; };\n", P("be", KEY_A, 1), ""));
	struct config *b = load(BASE_CFG("listen = { port = 9200; }; redis = { host = \"10.0.0.2\"; sentinels = ( \"h:1\" ); "
					 "master_name = \"m\"; };\n queue = { max_pending = 7; }; log = { level = \"debug\"; };\n",
					 P("be", KEY_A, 1), ""));
	const char *names[8];

	(void)state;
	assert_int_equal(generation_restart_keys(a, a, names, 8), 0);
	assert_int_equal(generation_restart_keys(a, b, names, 8), 4);
	assert_string_equal(names[0], "listen.port");
	assert_string_equal(names[1], "redis.host");
	assert_string_equal(names[2], "redis.sentinels");
	assert_string_equal(names[3], "redis.master_name");
	assert_int_equal(generation_restart_keys(a, b, names, 1), 4);  /* counted past max */
	assert_int_equal(generation_keep_restart(b, a), GENERATION_KEEP_OK);
	/* the running values stay; the live ones are the new file's */
	assert_int_equal(b->listen_port, 9100);
	assert_string_equal(b->redis_host, "10.0.0.1");
	assert_int_equal(b->redis_sentinels.n, 0);
	assert_null(b->redis_master_name);
	assert_int_equal(b->queue_max_pending, 7);
	assert_string_equal(b->log_level, "debug");
	assert_int_equal(generation_restart_keys(a, b, names, 8), 0);
	config_free(a);
	config_free(b);
}

/* Every restart-only key is a key of the table, and the README and the sample config name it. */
static void test_restart_key_names(void **state)
{
	const char *const *all = config_key_names();
	static char readme[1 << 18], sample[1 << 17];  /* static: too large for the stack */
	FILE *f;
	size_t n;

	(void)state;
	f = fopen(SOURCE_ROOT "/README.md", "r");
	assert_non_null(f);
	n = fread(readme, 1, sizeof(readme) - 1, f);
	fclose(f);
	readme[n] = '\0';
	f = fopen(SOURCE_ROOT "/etc/sentryq.conf", "r");
	assert_non_null(f);
	n = fread(sample, 1, sizeof(sample) - 1, f);
	fclose(f);
	sample[n] = '\0';
	assert_null(generation_restart_key(1000));
	for (size_t i = 0; generation_restart_key(i) != NULL; i++) {
		const char *k = generation_restart_key(i), *dot = strrchr(k, '.'), *leaf = dot ? dot + 1 : k;
		bool known = false;

		for (size_t j = 0; all[j] != NULL && !known; j++)
			known = strcmp(all[j], k) == 0;
		if (!known)
			print_message("not a config key: %s\n", k);
		assert_true(known);
		assert_non_null(strstr(sample, strncmp(k, "redis.", 6) == 0 ? "every redis.* key" : leaf));
		assert_non_null(strstr(strstr(readme, "**Needs a restart:**"),
				       strncmp(k, "redis.", 6) == 0 ? "every `redis.*` key" : leaf));
	}
}

static void test_refcount(void **state)
{
	struct config *a = load(BASE_CFG("", P("be", KEY_A, 1), ""));
	struct generation *g = generation_new(a, 1);
	struct route_target t;
	char detail[128];

	(void)state;
	assert_non_null(g);
	assert_ptr_equal(generation_config(g), a);
	assert_int_equal(generation_id(g), 1);
	assert_int_equal(route_lookup(generation_routes(g), "wow", "be", -1, &t, detail, sizeof(detail)), 0);
	assert_int_equal(t.project->id, 1);
	assert_non_null(generation_endpoints(g));
	generation_hold(g);
	generation_enter(g);
	assert_int_equal(generation_requests(g), 1);
	generation_drop(g);
	generation_drop(g);   /* a request still holds it: the tables stay (ASan tells otherwise) */
	assert_int_equal(t.project->id, 1);
	assert_int_equal(generation_requests(g), 1);
	generation_leave(g);  /* the last one: freed */
}

static void test_settled(void **state)
{
	struct generation *a = generation_new(load(BASE_CFG("", P("be", KEY_A, 1), "")), 1);
	struct generation *b = generation_new(load(BASE_CFG("", P("be", KEY_A, 1), "")), 2);
	struct generation *c = generation_new(load(BASE_CFG("", P("be", KEY_A, 1), "")), 3);

	(void)state;
	generation_enter(a);          /* a request of the first is still in flight */
	generation_follow(b, a);
	generation_drop(a);           /* the relay moves on */
	generation_follow(c, b);
	generation_drop(b);
	assert_false(generation_settled(c));
	assert_false(generation_settled(b));
	generation_leave(a);          /* its last request: a goes once b lets go */
	assert_true(generation_settled(c));
	assert_true(generation_settled(c));
	generation_drop(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff_routes),
		cmocka_unit_test(test_diff_upstream_server),
		cmocka_unit_test(test_restart_keys),
		cmocka_unit_test(test_restart_key_names),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_settled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
