/* test_config.c - config loading: the sample file, defaults, inheritance, URL splitting, and
 * error messages that name file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define SAMPLE SOURCE_ROOT "/etc/sentryq.conf"
#define KEY_VOD "a6f431e198734105aef464f6e702351f"

/* One valid upstreams list, appended after a case's own lines so their line numbers stay simple. */
#define UPS \
	"upstreams = (\n" \
	"  { name = \"wow\"; url = \"http://127.0.0.1:9001\";\n" \
	"    projects = ( { name = \"vod_be\"; key = \"" KEY_VOD "\"; id = 20; } ); }\n" \
	");\n"

static char tmp_path[64];

/* Write text to a fresh temp file, load it, remove the file; tmp_path keeps its name. */
static struct config *load_text(const char *text, char *err, size_t errlen)
{
	struct config *cfg;
	size_t len = strlen(text);
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/sentryq-cfg-XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	cfg = config_load(tmp_path, err, errlen);
	unlink(tmp_path);
	return cfg;
}

static struct config *load_ok(const char *text)
{
	char err[512] = "";
	struct config *cfg = load_text(text, err, sizeof(err));

	if (cfg == NULL)
		print_message("unexpected error: %s\n", err);
	assert_non_null(cfg);
	return cfg;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		print_message("'%s' does not contain '%s'\n", hay, needle);
	assert_non_null(strstr(hay, needle));
}

/* The load fails with "FILE:LINE: key 'KEY': ...EXTRA..." (LINE 0: no line at all). */
static void expect_error(const char *text, int line, const char *key, const char *extra)
{
	char err[512] = "", want[160];
	struct config *cfg = load_text(text, err, sizeof(err));

	assert_null(cfg);
	if (line > 0)
		snprintf(want, sizeof(want), "%s:%d: ", tmp_path, line);
	else
		snprintf(want, sizeof(want), "%s: ", tmp_path);
	assert_true(strncmp(err, want, strlen(want)) == 0 || (print_message("got: %s\n", err), 0));
	if (key != NULL) {
		snprintf(want, sizeof(want), "key '%s': ", key);
		assert_contains(err, want);
	}
	if (extra != NULL)
		assert_contains(err, extra);
}

/* ---- the sample file -------------------------------------------------------------------------- */

static void test_sample_loads(void **state)
{
	char err[512] = "";
	struct config *cfg = config_load(SAMPLE, err, sizeof(err));
	const struct config_upstream *wow;
	const struct config_project *vod;

	if (cfg == NULL)
		print_message("%s\n", err);
	assert_non_null(cfg);
	assert_string_equal(cfg->file, SAMPLE);
	wow = config_upstream_by_name(cfg, "wow");
	assert_non_null(wow);
	assert_string_equal(wow->host, "127.0.0.1");
	assert_int_equal(wow->port, 9001);
	assert_false(wow->tls);
	vod = config_project_by_name(wow, "vod_be");
	assert_non_null(vod);
	assert_string_equal(vod->key, KEY_VOD);
	assert_string_equal(vod->secret, "563b78f7bc1941828df0e5ebd79cc17a");
	assert_int_equal(vod->id, 20);
	for (size_t i = 0; i < cfg->nupstreams; i++)
		assert_true(strncmp(cfg->upstreams[i].url, "http://127.0.0.1:", 17) == 0);
	config_free(cfg);
}

static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(fp);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, fp);
	assert_true(n > 0 && n < (1 << 20) - 1);
	fclose(fp);
	return buf;
}

/* A line with its indentation and one leading '#' (a commented-out key) removed. */
static const char *content(const char *line)
{
	line += strspn(line, " \t");
	if (*line == '#')
		line += 1 + strspn(line + 1, " \t");
	return line;
}

/* The content is "word =" (a key or group being set). */
static bool sets(const char *c, const char *word, size_t len)
{
	if (strncmp(c, word, len) != 0)
		return false;
	c += len;
	c += strspn(c, " \t");
	return *c == '=';
}

/*
 * `name` is documented when its leaf is set, or shown commented out, inside its group's block
 * (from "group =" to the next line opening with '}'; upstreams' list runs to the end), with a
 * comment on the line before it or the line itself being a comment.
 */
static bool documented(char **lines, size_t n, const char *name)
{
	const char *dot = strrchr(name, '.'), *leaf = dot ? dot + 1 : name;
	size_t glen = strcspn(name, "."), start = 0, end = n;

	if (dot != NULL) {
		while (start < n && !sets(content(lines[start]), name, glen))
			start++;
		if (start++ == n)
			return false;
		if (strncmp(name, "upstreams.", 10) != 0)
			for (end = start; end < n && *content(lines[end]) != '}'; end++)
				;
	}
	for (size_t i = start; i < end; i++) {
		if (!sets(content(lines[i]), leaf, strlen(leaf)))
			continue;
		if (lines[i][strspn(lines[i], " \t")] == '#' ||
		    (i > 0 && lines[i - 1][strspn(lines[i - 1], " \t")] == '#'))
			return true;
	}
	return false;
}

static void test_sample_documents_every_key(void **state)
{
	char *text = read_file(SAMPLE), *lines[4096];
	const char *const *names = config_key_names();
	size_t n = 0, count = 0;

	for (char *p = strtok(text, "\n"); p && n < 4096; p = strtok(NULL, "\n"))
		lines[n++] = p;
	for (; names[count] != NULL; count++) {
		if (!documented(lines, n, names[count]))
			print_message("not documented in etc/sentryq.conf: %s\n", names[count]);
		assert_true(documented(lines, n, names[count]));
	}
	/* the checker itself must be able to say no */
	assert_false(documented(lines, n, "listen.no_such_key"));
	assert_false(documented(lines, n, "redis.address"));
	assert_true(count > 40);
	free(text);
}

static void test_key_names(void **state)
{
	const char *want[] = { "listen.port", "redis.password", "default_route.upstream",
			       "default_route.project", "shutdown_timeout", "log_level", "upstreams",
			       "upstreams.[].name", "upstreams.[].projects",
			       "upstreams.[].projects.[].id", "upstreams.[].projects.[].secret" };
	const char *const *names = config_key_names();

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bool found = false;

		for (size_t j = 0; names[j] != NULL; j++)
			found |= strcmp(names[j], want[i]) == 0;
		if (!found)
			print_message("missing key name %s\n", want[i]);
		assert_true(found);
	}
	assert_ptr_equal(config_key_names(), names);
}

/* ---- values ---------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct config *cfg = load_ok(UPS);
	const struct config_upstream *up = &cfg->upstreams[0];

	assert_string_equal(cfg->listen_address, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 9000);
	assert_int_equal(cfg->max_body_size, 209715200);
	assert_int_equal(cfg->max_body_memory, 268435456);
	assert_int_equal(cfg->listen_max_connections, 0);
	assert_true(cfg->head_timeout == 5.0);
	assert_true(cfg->min_body_rate == 1024.0);
	assert_string_equal(cfg->tunnel_path, "/tunnel");
	assert_true(cfg->client_timeout == 30.0);
	assert_string_equal(cfg->redis_host, "127.0.0.1");
	assert_int_equal(cfg->redis_port, 6379);
	assert_null(cfg->redis_password);
	assert_int_equal(cfg->redis_db, 0);
	assert_null(cfg->redis_unix_socket);
	assert_string_equal(cfg->redis_prefix, "sentryq:");
	assert_true(cfg->redis_timeout == 5.0);
	assert_int_equal(cfg->redis_buffer_bytes, 67108864);
	assert_true(cfg->redis_reconnect_max == 5.0);
	assert_int_equal(cfg->queue_max_pending, 1000000);
	assert_int_equal(cfg->queue_max_bytes, 1073741824);
	assert_true(cfg->forward_timeout == 10.0);
	assert_true(cfg->forward_connect_timeout == 3.0);
	assert_int_equal(cfg->forward_max_connections, 64);
	assert_int_equal(cfg->forward_batch, 64);
	assert_true(cfg->forward_retry_initial == 1.0);
	assert_true(cfg->forward_retry_max == 60.0);
	assert_true(cfg->forward_outage_grace == 10.0);
	assert_int_equal(cfg->forward_max_attempts, 0);
	assert_true(cfg->forward_max_age == 86400.0);
	assert_true(cfg->forward_claim_idle == 60.0);
	assert_null(cfg->forward_consumer);
	assert_false(cfg->rate_limits_passthrough);
	assert_true(cfg->shutdown_timeout == 10.0);
	assert_string_equal(cfg->log_level, "info");
	assert_null(cfg->default_upstream);
	assert_null(cfg->default_project);
	assert_int_equal(cfg->nupstreams, 1);
	assert_true(up->timeout == 10.0 && up->connect_timeout == 3.0);
	assert_int_equal(up->max_connections, 64);
	assert_true(up->verify);
	assert_null(up->ca_file);
	assert_int_equal(up->nprojects, 1);
	assert_null(up->projects[0].secret);
	config_free(cfg);
}

/* forward comes after upstreams in the file and still sets the per-upstream defaults. */
static void test_upstream_inherits_forward(void **state)
{
	struct config *cfg = load_ok(
		"upstreams = (\n"
		"  { name = \"a\"; url = \"http://a\"; projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); },\n"
		"  { name = \"b\"; url = \"http://b\"; timeout = 1.5; connect_timeout = 1; max_connections = 2;\n"
		"    verify = false; ca_file = \"/x.pem\";\n"
		"    projects = ( { name = \"p\"; key = \"k\"; id = 1; secret = \"s\"; } ); }\n"
		");\n"
		"forward = { timeout = 7; connect_timeout = 2.5; max_connections = 4; };\n");
	const struct config_upstream *a = config_upstream_by_name(cfg, "a");
	const struct config_upstream *b = config_upstream_by_name(cfg, "b");

	assert_non_null(a);
	assert_non_null(b);
	assert_true(cfg->forward_timeout == 7.0);
	assert_true(a->timeout == 7.0);
	assert_true(a->connect_timeout == 2.5);
	assert_int_equal(a->max_connections, 4);
	assert_true(b->timeout == 1.5);
	assert_true(b->connect_timeout == 1.0);
	assert_int_equal(b->max_connections, 2);
	assert_false(b->verify);
	assert_string_equal(b->ca_file, "/x.pem");
	assert_string_equal(b->projects[0].secret, "s");
	config_free(cfg);
}

static void test_numbers(void **state)
{
	struct config *cfg = load_ok(
		"queue = { max_bytes = 5368709120L; max_pending = 5; };\n"
		"listen = { max_body_size = 1024; port = 1; tunnel_path = \"\"; };\n"
		"redis = { timeout = 2; buffer_bytes = 0; db = 15; };\n"
		"shutdown_timeout = 1;\n"
		"rate_limits = { passthrough = true; };\n"
		"log_level = \"debug\";\n"
		"upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		"  projects = ( { name = \"p\"; key = \"k\"; id = 4504012345678912L; } ); } );\n");

	assert_int_equal(cfg->queue_max_bytes, 5368709120ULL);
	assert_int_equal(cfg->queue_max_pending, 5);
	assert_int_equal(cfg->max_body_size, 1024);
	assert_int_equal(cfg->listen_port, 1);
	assert_string_equal(cfg->tunnel_path, "");
	assert_true(cfg->redis_timeout == 2.0);
	assert_int_equal(cfg->redis_buffer_bytes, 0);
	assert_int_equal(cfg->redis_db, 15);
	assert_true(cfg->shutdown_timeout == 1.0);
	assert_true(cfg->rate_limits_passthrough);
	assert_string_equal(cfg->log_level, "debug");
	assert_int_equal(cfg->upstreams[0].projects[0].id, 4504012345678912LL);
	config_free(cfg);
}

/* The integration tests' config (make_config in test/lib/sqtest/sentryq.py) must keep loading. */
static void test_harness_template(void **state)
{
	struct config *cfg = load_ok(
		"listen = { address = \"127.0.0.1\"; port = 18000; max_body_size = 20971520; };\n"
		"redis  = { host = \"127.0.0.1\"; port = 16379; prefix = \"sentryq:\"; buffer_bytes = 0; };\n"
		"forward = { timeout = 5.0; retry_initial = 0.2; retry_max = 1.0; claim_idle = 2.0; };\n"
		"upstreams = (\n"
		"  { name = \"wow\"; url = \"http://127.0.0.1:18001\";\n"
		"    projects = ( { name = \"vod_be\"; key = \"" KEY_VOD "\"; id = 20; secret = \"s\"; },\n"
		"      { name = \"web\"; key = \"" KEY_VOD "\"; id = 21; } ); },\n"
		"  { name = \"other\"; url = \"http://127.0.0.1:18001/prefix\";\n"
		"    projects = ( { name = \"keyonly\"; key = \"k2\"; id = 30; } ); }\n"
		");\n"
		"default_route = { upstream = \"other\"; project = \"keyonly\"; };\n");

	assert_int_equal(cfg->nupstreams, 2);
	assert_string_equal(cfg->default_upstream, "other");
	assert_string_equal(cfg->default_project, "keyonly");
	assert_string_equal(cfg->upstreams[1].path_prefix, "/prefix");
	config_free(cfg);
}

static void test_url_parsing(void **state)
{
	static const struct {
		const char *url, *host, *prefix;
		int port;
		bool tls;
	} cases[] = {
		{ "http://sentry.example", "sentry.example", "", 80, false },
		{ "https://sentry.example", "sentry.example", "", 443, true },
		{ "HTTPS://s.example:8443", "s.example", "", 8443, true },
		{ "http://h:8080/", "h", "", 8080, false },
		{ "https://h/sentry/x/", "h", "/sentry/x", 443, true },
		{ "http://h//", "h", "", 80, false },
		{ "http://[::1]:9001/p", "::1", "/p", 9001, false },
		{ "https://[2001:db8::1]", "2001:db8::1", "", 443, true },
	};
	char text[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg;
		const struct config_upstream *up;

		snprintf(text, sizeof(text), "upstreams = ( { name = \"u\"; url = \"%s\";\n"
			 "  projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); } );\n", cases[i].url);
		cfg = load_ok(text);
		up = &cfg->upstreams[0];
		assert_string_equal(up->url, cases[i].url);
		assert_string_equal(up->host, cases[i].host);
		assert_string_equal(up->path_prefix, cases[i].prefix);
		assert_int_equal(up->port, cases[i].port);
		assert_int_equal(up->tls, cases[i].tls);
		config_free(cfg);
	}
}

static void test_lookups(void **state)
{
	struct config *cfg = load_ok(UPS);

	assert_non_null(config_upstream_by_name(cfg, "wow"));
	assert_null(config_upstream_by_name(cfg, "wo"));
	assert_null(config_upstream_by_name(cfg, NULL));
	assert_non_null(config_project_by_name(&cfg->upstreams[0], "vod_be"));
	assert_null(config_project_by_name(&cfg->upstreams[0], "vod"));
	assert_null(config_project_by_name(NULL, "vod_be"));
	config_free(cfg);
	config_free(NULL);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_error_unknown_keys(void **state)
{
	expect_error("bogus = 1;\n" UPS, 1, "bogus", "unknown key");
	expect_error("listen = {\n  port = 9000;\n  portt = 1;\n};\n" UPS, 3, "listen.portt",
		     "unknown key");
	expect_error("listen = {\n  port = { x = 1; };\n};\n" UPS, 2, "listen.port", "expected an integer");
	expect_error("nested = { deeper = { x = 1; }; };\n" UPS, 1, "nested", "unknown key");
	expect_error("upstreams = (\n"
		     "  { name = \"wow\"; url = \"http://h\"; color = 1;\n"
		     "    projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); }\n"
		     ");\n", 2, "upstreams[0].color", "unknown key");
	expect_error("upstreams = (\n"
		     "  { name = \"wow\"; url = \"http://h\";\n"
		     "    projects = (\n"
		     "      { name = \"a\"; key = \"k1\"; id = 1; },\n"
		     "      { name = \"b\"; key = \"k2\"; id = 2;\n"
		     "        nme = \"x\"; } ); }\n"
		     ");\n", 6, "upstreams[0].projects[1].nme", "unknown key");
}

static void test_error_values(void **state)
{
	expect_error("listen = { port = 70000; };\n" UPS, 1, "listen.port",
		     "must be between 1 and 65535");
	expect_error("redis = {\n  port = \"abc\";\n};\n" UPS, 2, "redis.port",
		     "expected an integer, got a string");
	expect_error("rate_limits = { passthrough = 1; };\n" UPS, 1, "rate_limits.passthrough",
		     "expected true or false");
	expect_error("forward = { timeout = \"5\"; };\n" UPS, 1, "forward.timeout", "expected a number");
	expect_error("forward = { timeout = 0; };\n" UPS, 1, "forward.timeout", "must be between");
	expect_error("log_level = 3;\n" UPS, 1, "log_level", "expected a string");
	expect_error("listen = 5;\n" UPS, 1, "listen", "expected a group");
	expect_error("log_level = \"loud\";\n" UPS, 1, "log_level", "debug, info, warn, error");
	expect_error("listen = { tunnel_path = \"tunnel\"; };\n" UPS, 1, "listen.tunnel_path", "'/'");
	expect_error("listen = { address = \"\"; };\n" UPS, 1, "listen.address", "empty");
	expect_error("forward = {\n  retry_initial = 10;\n  retry_max = 5;\n};\n" UPS, 2,
		     "forward.retry_initial", "retry_max");
	/* libconfig 1.5 would wrap these to 1 GiB and to garbage: refused instead */
	expect_error("queue = { max_bytes = 5368709120; };\n" UPS, 1, "queue.max_bytes", "L suffix");
	expect_error("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		     "  projects = ( { name = \"p\"; key = \"k\";\n"
		     "    id = 4504012345678912; } ); } );\n", 3, "upstreams[0].projects[0].id",
		     "L suffix");
	/* several settings of one name on a line: each is checked against its own literal */
	expect_error("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		     "  projects = ( { name = \"p\"; key = \"k\"; id = 1; }, { name = \"q\"; key = \"l\"; id = 4294967298; } ); } );\n",
		     2, "upstreams[0].projects[1].id", "L suffix");
	expect_error("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		     "  projects = ( { name = \"p\"; key = \"k\"; id = 0; } ); } );\n", 2,
		     "upstreams[0].projects[0].id", "must be between 1 and");
}

static void test_error_credentials_not_echoed(void **state)
{
	char err[512] = "";

	assert_null(load_text("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
			      "  projects = ( { name = \"p\"; key = \"abc def\"; id = 1; } ); } );\n",
			      err, sizeof(err)));
	assert_contains(err, "key 'upstreams[0].projects[0].key'");
	assert_null(strstr(err, "abc def"));
	assert_null(load_text("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
			      "  projects = ( { name = \"topsecret\"; key = \"k\"; id = 1; },\n"
			      "    { name = \"topsecret\"; key = \"k\"; id = 2; } ); } );\n",
			      err, sizeof(err)));
	assert_contains(err, ":3: key 'upstreams[0].projects[1].name': duplicate project name");
	assert_contains(err, "first at line 2");
	assert_null(strstr(err, "topsecret"));
}

static void test_error_structure(void **state)
{
	expect_error("upstreams = (\n"
		     "  { name = \"wow\"; url = \"http://a\"; projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); },\n"
		     "  { name = \"wow\"; url = \"http://b\"; projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); }\n"
		     ");\n", 3, "upstreams[1].name", "duplicate upstream name 'wow' (first at line 2)");
	expect_error("upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		     "  projects = (\n"
		     "    { name = \"p\"; key = \"k\"; } ); } );\n", 3, "upstreams[0].projects[0].id",
		     "missing");
	expect_error("upstreams = (\n  { name = \"w\";\n"
		     "  projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); } );\n", 2,
		     "upstreams[0].url", "missing");
	expect_error("upstreams = (\n  { name = \"w\"; url = \"http://h\"; } );\n", 2,
		     "upstreams[0].projects", "missing");
	expect_error("upstreams = (\n  { name = \"w\"; url = \"http://h\"; projects = (); } );\n", 2,
		     "upstreams[0].projects", "at least one project");
	expect_error("upstreams = (\n  { name = \"w w\"; url = \"http://h\";\n"
		     "  projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); } );\n", 2,
		     "upstreams[0].name", "letters, digits");
	expect_error("log_level = \"info\";\n", 0, "upstreams", "missing");
	expect_error("upstreams = ();\n", 1, "upstreams", "at least one upstream");
	expect_error("upstreams = { a = 1; };\n", 1, "upstreams", "expected a list");
	expect_error("upstreams = ( 5 );\n", 1, "upstreams[0]", "expected a group");
}

static void test_error_urls(void **state)
{
	static const struct {
		const char *url, *why;
	} cases[] = {
		{ "ftp://h", "http:// or https://" },
		{ "h:80", "http:// or https://" },
		{ "http://h/x?a=1", "query" },
		{ "http://h/#f", "fragment" },
		{ "http://user:pw@h", "user info" },
		{ "http://h:0", "between 1 and 65535" },
		{ "http://h:65536", "between 1 and 65535" },
		{ "http://h:", "between 1 and 65535" },
		{ "http://h:8x", "between 1 and 65535" },
		{ "http://", "host" },
		{ "http:///path", "host" },
		{ "http://[::1", "IPv6" },
		{ "http://[::1]x", "IPv6" },
		{ "http://[]", "IPv6" },
	};
	char text[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "upstreams = (\n  { name = \"u\"; url = \"%s\";\n"
			 "  projects = ( { name = \"p\"; key = \"k\"; id = 1; } ); } );\n", cases[i].url);
		expect_error(text, 2, "upstreams[0].url", cases[i].why);
	}
}

static void test_error_default_route(void **state)
{
	struct config *cfg;

	expect_error("default_route = {\n  upstream = \"nope\";\n  project = \"vod_be\";\n};\n" UPS, 2,
		     "default_route.upstream", "no upstream named 'nope'");
	expect_error("default_route = {\n  upstream = \"wow\";\n  project = \"nope\";\n};\n" UPS, 3,
		     "default_route.project", "no such project");
	expect_error("default_route = {\n  upstream = \"wow\";\n};\n" UPS, 1, "default_route.project",
		     "missing");

	cfg = load_ok("default_route = { upstream = \"wow\"; project = \"vod_be\"; };\n" UPS);

	assert_string_equal(cfg->default_upstream, "wow");
	assert_string_equal(cfg->default_project, "vod_be");
	config_free(cfg);
}

static void test_error_parse_and_io(void **state)
{
	char err[512] = "";

	expect_error("listen = {\n  port = = 9000;\n};\n" UPS, 2, NULL, "syntax error");
	expect_error("a = 1;\na = 2;\n" UPS, 2, NULL, "duplicate setting");
	assert_null(config_load("/nonexistent/sentryq.conf", err, sizeof(err)));
	assert_contains(err, "/nonexistent/sentryq.conf: ");
	assert_contains(err, "No such file");
	/* err may be omitted */
	assert_null(config_load("/nonexistent/sentryq.conf", NULL, 0));
	/* a directory opens but does not read */
	assert_null(config_load("/tmp", err, sizeof(err)));
	assert_contains(err, "/tmp: cannot read");
}

static void write_at(const char *dir, const char *name, const char *text)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	fclose(fp);
}

/* @include is resolved next to the config file, and its settings get the same checks. */
static void test_include(void **state)
{
	char dir[] = "/tmp/sentryq-inc-XXXXXX", path[128], err[512] = "", want[192];
	struct config *cfg;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/main.conf", dir);
	write_at(dir, "main.conf", "log_level = \"warn\";\n@include \"creds.conf\"\n");
	write_at(dir, "creds.conf", UPS);
	cfg = config_load(path, err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->upstreams[0].projects[0].key, KEY_VOD);
	config_free(cfg);
	write_at(dir, "creds.conf", "upstreams = ( { name = \"w\"; url = \"http://h\";\n"
		 "  projects = ( { name = \"p\"; key = \"k\"; id = 4294967297; } ); } );\n");
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s/creds.conf:2: key 'upstreams[0].projects[0].id': ", dir);
	assert_contains(err, want);
	assert_contains(err, "L suffix");
	snprintf(want, sizeof(want), "%s/creds.conf", dir);
	unlink(want);
	unlink(path);
	rmdir(dir);
}

/* Projects written one per line or several on one line load alike (the wrapped-literal check
 * reads the line: it must not take one project's id for another's). */
static void test_one_line_projects(void **state)
{
	struct config *cfg;

	(void)state;
	cfg = load_ok("upstreams = ( { name = \"w\"; url = \"http://h\"; projects = ( "
		      "{ name = \"a\"; key = \"k1\"; id = 7; }, { name = \"b\"; key = \"k2\"; id = 8; }, "
		      "{ name = \"c\"; key = \"k3\"; id = 4504012345678912L; } ); } );\n");
	assert_int_equal(cfg->upstreams[0].nprojects, 3);
	assert_true(cfg->upstreams[0].projects[0].id == 7 && cfg->upstreams[0].projects[1].id == 8);
	assert_true(cfg->upstreams[0].projects[2].id == 4504012345678912LL);
	config_free(cfg);
}

/* config_check_*: the loader's own checks, for tools that write a config (import-legacy-config). */
static void test_check_values(void **state)
{
	char why[128] = "";
	char long_name[70];

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(config_check_string("upstreams.[].name", "wow", why, sizeof(why)), CONFIG_VALUE_OK);
	assert_int_equal(config_check_string("upstreams.[].projects.[].name", "vod_be.x-1", why,
					     sizeof(why)), CONFIG_VALUE_OK);
	assert_int_equal(config_check_string("upstreams.[].name", "a b", why, sizeof(why)), CONFIG_VALUE_BAD);
	assert_contains(why, "letters, digits");
	assert_int_equal(config_check_string("upstreams.[].name", long_name, why, sizeof(why)),
			 CONFIG_VALUE_BAD);
	assert_contains(why, "at most 64");
	assert_int_equal(config_check_string("upstreams.[].name", "", why, sizeof(why)), CONFIG_VALUE_BAD);
	assert_int_equal(config_check_string("upstreams.[].url", "https://h:8443/p", why, sizeof(why)),
			 CONFIG_VALUE_OK);
	assert_int_equal(config_check_string("upstreams.[].url", "ftp://h", why, sizeof(why)),
			 CONFIG_VALUE_BAD);
	assert_contains(why, "http://");
	assert_int_equal(config_check_string("upstreams.[].projects.[].key", "a:b", why, sizeof(why)),
			 CONFIG_VALUE_BAD);
	assert_null(strstr(why, "a:b"));
	assert_int_equal(config_check_string("upstreams.[].projects.[].secret", "x\ty", why, sizeof(why)),
			 CONFIG_VALUE_BAD);
	assert_contains(why, "control characters");
	assert_int_equal(config_check_string("upstreams.[].nope", "x", why, sizeof(why)), CONFIG_KEY_UNKNOWN);
	assert_int_equal(config_check_string("upstreams.[].projects.[].id", "x", why, sizeof(why)),
			 CONFIG_KEY_UNKNOWN);
	assert_int_equal(config_check_integer("upstreams.[].projects.[].id", 20, why, sizeof(why)),
			 CONFIG_VALUE_OK);
	assert_int_equal(config_check_integer("upstreams.[].projects.[].id", 9007199254740991LL, why,
					      sizeof(why)), CONFIG_VALUE_OK);
	assert_int_equal(config_check_integer("upstreams.[].projects.[].id", 9007199254740992LL, why,
					      sizeof(why)), CONFIG_VALUE_BAD);
	assert_int_equal(config_check_integer("upstreams.[].projects.[].id", 0, why, sizeof(why)),
			 CONFIG_VALUE_BAD);
	assert_int_equal(config_check_integer("listen.port", 9000, why, sizeof(why)), CONFIG_VALUE_OK);
	assert_int_equal(config_check_integer("upstreams.[].url", 1, why, sizeof(why)), CONFIG_KEY_UNKNOWN);
}

/* redis.sentinels: a list of "host:port" strings, and the keys that go with it. */
static void test_sentinels(void **state)
{
	struct config *cfg = load_ok(UPS);

	assert_int_equal(cfg->redis_sentinels.n, 0);
	assert_null(cfg->redis_master_name);
	assert_int_equal(cfg->redis_wait_replicas, 0);
	assert_true(cfg->redis_wait_timeout == 1.0);
	config_free(cfg);
	cfg = load_ok("redis = { sentinels = ( \"10.0.0.1:26379\", \"s2\", \"[::1]:26380\" );\n"
		      "  master_name = \"mymaster\"; sentinel_password = \"pw-sentinel\";\n"
		      "  wait_replicas = 2; wait_timeout = 0.25; };\n" UPS);
	assert_int_equal(cfg->redis_sentinels.n, 3);
	assert_string_equal(cfg->redis_sentinels.v[0], "10.0.0.1:26379");
	assert_string_equal(cfg->redis_sentinels.v[1], "s2");
	assert_string_equal(cfg->redis_sentinels.v[2], "[::1]:26380");
	assert_null(cfg->redis_sentinels.v[3]);
	assert_string_equal(cfg->redis_master_name, "mymaster");
	assert_string_equal(cfg->redis_sentinel_password, "pw-sentinel");
	assert_int_equal(cfg->redis_wait_replicas, 2);
	assert_true(cfg->redis_wait_timeout == 0.25);
	config_free(cfg);
	cfg = load_ok("redis = { sentinels = [ \"a:1\" ]; master_name = \"m\"; };\n" UPS);  /* an array too */
	assert_string_equal(cfg->redis_sentinels.v[0], "a:1");
	config_free(cfg);
}

static void test_error_sentinels(void **state)
{
	expect_error("redis = {\n  sentinels = ( \"a:1\" );\n};\n" UPS, 2, "redis.master_name",
		     "required with redis.sentinels");
	expect_error("redis = {\n  master_name = \"m\";\n};\n" UPS, 2, "redis.master_name", "needs redis.sentinels");
	expect_error("redis = {\n  sentinel_password = \"p\";\n};\n" UPS, 2, "redis.sentinel_password",
		     "needs redis.sentinels");
	expect_error("redis = { master_name = \"m\";\n  sentinels = ( \"a:1\",\n \"b:99999\" ); };\n" UPS, 3,
		     "redis.sentinels[1]", "port must be between 1 and 65535");
	expect_error("redis = { master_name = \"m\";\n  sentinels = ( \"a b\" ); };\n" UPS, 2,
		     "redis.sentinels[0]", "host:port");
	expect_error("redis = { master_name = \"m\";\n  sentinels = ( 5 ); };\n" UPS, 2,
		     "redis.sentinels[0]", "expected a string");
	expect_error("redis = { master_name = \"m\";\n  sentinels = \"a:1\"; };\n" UPS, 2, "redis.sentinels",
		     "expected a list");
	expect_error("redis = { master_name = \"m\";\n  sentinels = ( ); };\n" UPS, 2, "redis.sentinels",
		     "must list between 1 and 64 strings");
	expect_error("redis = { master_name = \"m\"; sentinels = ( \"a:1\" );\n  unix_socket = \"/s\"; };\n" UPS, 2,
		     "redis.unix_socket", "cannot be combined");
	expect_error("redis = { master_name = \"m m\"; sentinels = ( \"a:1\" ); };\n" UPS, 1,
		     "redis.master_name", "spaces");
	expect_error("redis = { wait_replicas = 1;\n  wait_timeout = 5.0; };\n" UPS, 2, "redis.wait_timeout",
		     "below redis.timeout");
	expect_error("redis = { wait_replicas = 101; };\n" UPS, 1, "redis.wait_replicas", "between 0 and 100");
	expect_error("redis = { wait_timeout = 0; };\n" UPS, 1, "redis.wait_timeout", "must be between");
}

/* redis.cluster: seed nodes, and the keys that make no sense with it. */
static void test_cluster(void **state)
{
	struct config *cfg = load_ok(UPS);

	assert_int_equal(cfg->redis_cluster.n, 0);
	config_free(cfg);
	cfg = load_ok("redis = { cluster = ( \"10.0.0.1:7000\", \"[::1]:7001\", \"r3:7002\" ); };\n" UPS);
	assert_int_equal(cfg->redis_cluster.n, 3);
	assert_string_equal(cfg->redis_cluster.v[0], "10.0.0.1:7000");
	assert_string_equal(cfg->redis_cluster.v[1], "[::1]:7001");
	assert_null(cfg->redis_cluster.v[3]);
	config_free(cfg);
	expect_error("redis = {\n  cluster = ( \"a:1\", \"b\" ); };\n" UPS, 2, "redis.cluster[1]", "port is required");
	expect_error("redis = {\n  cluster = ( \"[::1]\" ); };\n" UPS, 2, "redis.cluster[0]", "port is required");
	expect_error("redis = {\n  cluster = ( \"a:0\" ); };\n" UPS, 2, "redis.cluster[0]", "port must be");
	expect_error("redis = {\n  cluster = ( ); };\n" UPS, 2, "redis.cluster", "between 1 and 64");
	expect_error("redis = { cluster = ( \"a:1\" ); master_name = \"m\";\n  sentinels = ( \"s:1\" ); };\n" UPS, 2,
		     "redis.sentinels", "cannot be combined with redis.cluster");
	expect_error("redis = { cluster = ( \"a:1\" );\n  unix_socket = \"/s\"; };\n" UPS, 2,
		     "redis.unix_socket", "cannot be combined with redis.cluster");
	expect_error("redis = { cluster = ( \"a:1\" );\n  db = 3; };\n" UPS, 2, "redis.db", "must be 0 with redis.cluster");
	expect_error("redis = { cluster = ( \"a:1\" );\n  prefix = \"sq{x}:\"; };\n" UPS, 2, "redis.prefix",
		     "must not contain '{'");
	cfg = load_ok("redis = { prefix = \"sq{x}:\"; db = 3; };\n" UPS);  /* fine without a cluster */
	config_free(cfg);
}

/* ---- log and metrics groups ------------------------------------------------------------------- */

static void test_log_and_metrics_groups(void **state)
{
	struct config *cfg = load_ok(UPS);

	assert_string_equal(cfg->log_level, "info");
	assert_null(cfg->log_level_deprecated);
	assert_string_equal(cfg->log_format, "text");
	assert_true(cfg->log_stats_period == 60.0);
	assert_string_equal(cfg->metrics_address, "127.0.0.1");
	assert_int_equal(cfg->metrics_port, 0);
	assert_true(cfg->metrics_on_ingest);
	config_free(cfg);
	cfg = load_ok("log = { level = \"debug\"; format = \"JSON\"; stats_period = 0; };\n"
		      "metrics = { port = 9102; on_ingest = false; address = \"::1\"; };\n" UPS);
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->log_format, "JSON");
	assert_true(cfg->log_stats_period == 0.0);
	assert_int_equal(cfg->metrics_port, 9102);
	assert_false(cfg->metrics_on_ingest);
	config_free(cfg);
	/* the deprecated top-level spelling still works, alone */
	cfg = load_ok("log_level = \"warn\";\n" UPS);
	assert_string_equal(cfg->log_level, "warn");
	assert_string_equal(cfg->log_level_deprecated, "warn");
	config_free(cfg);
	expect_error("log_level = \"warn\";\nlog = { level = \"info\"; };\n" UPS, 1, "log_level", "log.level");
	expect_error("log = { format = \"xml\"; };\n" UPS, 1, "log.format", "\"json\"");
	expect_error("log = { stats_period = -1; };\n" UPS, 1, "log.stats_period", NULL);
	expect_error("metrics = { on_ingest = false; };\n" UPS, 1, "metrics.on_ingest", "metrics.port");
	expect_error("metrics = { port = 9000; };\n" UPS, 1, "metrics.port", "listen.port");
}

/* role, listen.reuse_port, forward.departed_after and the default consumer name. */
static void test_roles_and_consumers(void **state)
{
	struct config *cfg = load_ok(UPS);
	char buf[200];

	assert_int_equal(cfg->role, CONFIG_ROLE_ALL);
	assert_string_equal(cfg->role_name, "all");
	assert_false(cfg->listen_reuse_port);
	assert_true(cfg->forward_departed_after == 600.0);
	/* two processes on one host differ by their listen port */
	assert_string_equal(config_default_consumer(cfg, "box", 42, buf, sizeof(buf)), "box:9000");
	assert_string_equal(config_default_consumer(cfg, "", 42, buf, sizeof(buf)), "sentryq:9000");
	assert_string_equal(config_role_name(cfg->role), "all");
	config_free(cfg);
	/* sharing the port: the metrics port tells them apart, else the pid */
	cfg = load_ok("listen = { reuse_port = true; };\n" UPS);
	assert_true(cfg->listen_reuse_port);
	assert_string_equal(config_default_consumer(cfg, "box", 42, buf, sizeof(buf)), "box:9000:42");
	config_free(cfg);
	cfg = load_ok("listen = { reuse_port = true; };\nmetrics = { port = 9101; };\n" UPS);
	assert_string_equal(config_default_consumer(cfg, "box", 42, buf, sizeof(buf)), "box:9101");
	config_free(cfg);
	/* forward-only: no listen port in use, the metrics port it must have names it */
	cfg = load_ok("role = \"forward\";\nmetrics = { port = 9000; };\n" UPS);
	assert_int_equal(cfg->role, CONFIG_ROLE_FORWARD);
	assert_string_equal(config_default_consumer(cfg, "box", 42, buf, sizeof(buf)), "box:9000");
	config_free(cfg);
	cfg = load_ok("role = \"ingest\";\nforward = { consumer = \"edge-1\"; departed_after = 5.0; };\n" UPS);
	assert_int_equal(cfg->role, CONFIG_ROLE_INGEST);
	assert_string_equal(config_role_name(cfg->role), "ingest");
	assert_string_equal(cfg->forward_consumer, "edge-1");
	assert_true(cfg->forward_departed_after == 5.0);
	config_free(cfg);
	expect_error("role = \"edge\";\n" UPS, 1, "role", "\"forward\"");
	expect_error("role = \"forward\";\n" UPS, 1, "role", "metrics.port");
	expect_error("forward = { departed_after = 0.0; };\n" UPS, 1, "forward.departed_after", NULL);
}

/* ---- the environment -------------------------------------------------------------------------- */

static void test_env_names(void **state)
{
	const char *const *names = config_key_names();
	char a[128], b[128];
	size_t with_env = 0;

	assert_int_equal(config_env_name("listen.port", a, sizeof(a)), CONFIG_VALUE_OK);
	assert_string_equal(a, "SENTRYQ_LISTEN_PORT");
	assert_int_equal(config_env_name("shutdown_timeout", a, sizeof(a)), CONFIG_VALUE_OK);
	assert_string_equal(a, "SENTRYQ_SHUTDOWN_TIMEOUT");
	assert_int_equal(config_env_name("default_route.upstream", a, sizeof(a)), CONFIG_VALUE_OK);
	assert_string_equal(a, "SENTRYQ_DEFAULT_ROUTE_UPSTREAM");
	assert_int_equal(config_env_name("log.level", a, sizeof(a)), CONFIG_VALUE_OK);
	assert_string_equal(a, "SENTRYQ_LOG_LEVEL");
	/* SENTRYQ_LOG_LEVEL is log.level's: the deprecated spelling has none */
	assert_int_equal(config_env_name("log_level", a, sizeof(a)), CONFIG_KEY_UNKNOWN);
	assert_int_equal(config_env_name("upstreams.[].url", a, sizeof(a)), CONFIG_KEY_UNKNOWN);
	assert_int_equal(config_env_name("no.such", a, sizeof(a)), CONFIG_KEY_UNKNOWN);
	/* every scalar outside the lists has one, no two share one, none is SENTRYQ_CONFIG (main's) */
	for (size_t i = 0; names[i] != NULL; i++) {
		if (strncmp(names[i], "upstreams", 9) == 0 || strncmp(names[i], "endpoints", 9) == 0 ||
		    strcmp(names[i], "log_level") == 0)
			continue;
		assert_int_equal(config_env_name(names[i], a, sizeof(a)), CONFIG_VALUE_OK);
		assert_string_not_equal(a, "SENTRYQ_CONFIG");
		with_env++;
		for (size_t j = i + 1; names[j] != NULL; j++)
			if (config_env_name(names[j], b, sizeof(b)) == CONFIG_VALUE_OK)
				assert_string_not_equal(a, b);
	}
	assert_true(with_env > 40);
}

static void clear_env(void)
{
	const char *vars[] = { "SENTRYQ_LISTEN_PORT", "SENTRYQ_REDIS_HOST", "SENTRYQ_SHUTDOWN_TIMEOUT",
			       "SENTRYQ_RATE_LIMITS_PASSTHROUGH", "SENTRYQ_QUEUE_MAX_BYTES", "SENTRYQ_LOG_LEVEL",
			       "SENTRYQ_FORWARD_TIMEOUT", "SENTRYQ_REDIS_PASSWORD", "SENTRYQ_DEFAULT_ROUTE_UPSTREAM",
			       "SQT_SECRET", "SQT_HOST", "SQT_UNSET" };

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static void test_env_overrides(void **state)
{
	struct config *cfg;

	clear_env();
	setenv("SENTRYQ_LISTEN_PORT", "9100", 1);
	setenv("SENTRYQ_REDIS_HOST", "redis", 1);
	setenv("SENTRYQ_SHUTDOWN_TIMEOUT", "2.5", 1);
	setenv("SENTRYQ_RATE_LIMITS_PASSTHROUGH", "yes", 1);
	setenv("SENTRYQ_QUEUE_MAX_BYTES", "5368709120", 1);
	setenv("SENTRYQ_LOG_LEVEL", "ERROR", 1);
	setenv("SENTRYQ_FORWARD_TIMEOUT", "4", 1);
	cfg = load_ok("listen = { port = 9000; };\nredis = { host = \"db\"; };\nlog_level = \"debug\";\n" UPS);
	assert_int_equal(cfg->listen_port, 9100);
	assert_string_equal(cfg->redis_host, "redis");
	assert_true(cfg->shutdown_timeout == 2.5);
	assert_true(cfg->rate_limits_passthrough);
	assert_true(cfg->queue_max_bytes == 5368709120ULL);
	assert_string_equal(cfg->log_level, "ERROR");   /* the variable wins over the file */
	assert_int_equal(cfg->redis_sentinels.n, 0);
	config_free(cfg);
	/* a list from the environment: comma-separated, each item checked as in the file */
	setenv("SENTRYQ_REDIS_SENTINELS", "10.0.0.1:26379, s2 ,[::1]:26380", 1);
	setenv("SENTRYQ_REDIS_MASTER_NAME", "mymaster", 1);
	setenv("SENTRYQ_FORWARD_HEADERS", "X-Request-Id", 1);
	cfg = load_ok("forward = { headers = ( \"X-A\", \"X-B\" ); };\n" UPS);
	assert_int_equal(cfg->redis_sentinels.n, 3);
	assert_string_equal(cfg->redis_sentinels.v[1], "s2");
	assert_null(cfg->redis_sentinels.v[3]);
	assert_int_equal(cfg->forward_headers.n, 1);  /* the variable replaces the file's list */
	assert_string_equal(cfg->forward_headers.v[0], "X-Request-Id");
	unsetenv("SENTRYQ_REDIS_SENTINELS");
	unsetenv("SENTRYQ_REDIS_MASTER_NAME");
	unsetenv("SENTRYQ_FORWARD_HEADERS");
	/* forward.* from the environment still reaches the upstreams that inherit it */
	assert_true(cfg->forward_timeout == 4.0 && cfg->upstreams[0].timeout == 4.0);
	config_free(cfg);
	/* a list from the environment: comma-separated, each item checked as in the file */
	setenv("SENTRYQ_REDIS_SENTINELS", "10.0.0.1:26379, s2 ,[::1]:26380", 1);
	setenv("SENTRYQ_REDIS_MASTER_NAME", "mymaster", 1);
	setenv("SENTRYQ_FORWARD_HEADERS", "X-Request-Id", 1);
	cfg = load_ok("forward = { headers = ( \"X-A\", \"X-B\" ); };\n" UPS);
	assert_int_equal(cfg->redis_sentinels.n, 3);
	assert_string_equal(cfg->redis_sentinels.v[1], "s2");
	assert_null(cfg->redis_sentinels.v[3]);
	assert_int_equal(cfg->forward_headers.n, 1);  /* the variable replaces the file's list */
	assert_string_equal(cfg->forward_headers.v[0], "X-Request-Id");
	unsetenv("SENTRYQ_REDIS_SENTINELS");
	unsetenv("SENTRYQ_REDIS_MASTER_NAME");
	unsetenv("SENTRYQ_FORWARD_HEADERS");
	config_free(cfg);
	clear_env();
}

/* The variable's name is given, the value never (it may be a secret). */
static void expect_env_error(const char *var, const char *value, const char *key, const char *extra)
{
	char err[512] = "", want[160];
	struct config *cfg;

	clear_env();
	setenv(var, value, 1);
	cfg = load_text(UPS, err, sizeof(err));
	unsetenv(var);
	assert_null(cfg);
	snprintf(want, sizeof(want), "environment %s: key '%s': ", var, key);
	assert_true(strncmp(err, want, strlen(want)) == 0 || (print_message("got: %s\n", err), 0));
	if (extra != NULL)
		assert_contains(err, extra);
	if (strlen(value) > 2)
		assert_null(strstr(err, value));
}

static void test_env_errors(void **state)
{
	expect_env_error("SENTRYQ_LISTEN_PORT", "70000", "listen.port", "between 1 and 65535");
	expect_env_error("SENTRYQ_LISTEN_PORT", "90x0", "listen.port", "integer");
	expect_env_error("SENTRYQ_LISTEN_PORT", "", "listen.port", "integer");
	expect_env_error("SENTRYQ_SHUTDOWN_TIMEOUT", "soon", "shutdown_timeout", "number");
	expect_env_error("SENTRYQ_RATE_LIMITS_PASSTHROUGH", "maybe", "rate_limits.passthrough", "true or false");
	expect_env_error("SENTRYQ_LOG_LEVEL", "chatty", "log.level", "debug, info");
	expect_env_error("SENTRYQ_REDIS_PASSWORD", "bad\tsecret-value", "redis.password", "control characters");
	expect_env_error("SENTRYQ_FORWARD_HEADERS", "X-Ok, Host", "forward.headers", "sets itself");
	setenv("SENTRYQ_REDIS_MASTER_NAME", "m", 1);
	expect_env_error("SENTRYQ_REDIS_SENTINELS", " , ", "redis.sentinels", "comma-separated");
	unsetenv("SENTRYQ_REDIS_MASTER_NAME");
	clear_env();
	/* half a default_route from the environment: the other half is missing */
	setenv("SENTRYQ_DEFAULT_ROUTE_UPSTREAM", "wow", 1);
	expect_error(UPS, 0, "default_route.project", "needs both");
	clear_env();
}

static void test_env_references(void **state)
{
	struct config *cfg;

	clear_env();
	setenv("SQT_SECRET", "5f0c1d2e3a4b5c6d7e8f901234567890", 1);
	setenv("SQT_HOST", "sentry.example", 1);
	cfg = load_ok("redis = { password = \"${SQT_SECRET}\"; prefix = \"p$${x}:$q:\"; };\n"
		      "upstreams = (\n"
		      "  { name = \"wow\"; url = \"https://${SQT_HOST}:8443/x\";\n"
		      "    projects = ( { name = \"vod_be\"; key = \"" KEY_VOD "\"; secret = \"${SQT_SECRET}\"; id = 20; } ); }\n"
		      ");\n");
	assert_string_equal(cfg->redis_password, "5f0c1d2e3a4b5c6d7e8f901234567890");
	assert_string_equal(cfg->redis_prefix, "p${x}:$q:");  /* $${ is a literal ${, a lone $ stays */
	assert_string_equal(cfg->upstreams[0].host, "sentry.example");  /* checks run on the result */
	assert_int_equal(cfg->upstreams[0].port, 8443);
	assert_string_equal(cfg->upstreams[0].projects[0].secret, "5f0c1d2e3a4b5c6d7e8f901234567890");
	config_free(cfg);
	/* an unset variable is named; its would-be place is not a value to echo */
	expect_error("redis = { password = \"${SQT_UNSET}\"; };\n" UPS, 1, "redis.password",
		     "environment variable 'SQT_UNSET' is not set");
	expect_error("redis = { password = \"${SQT-X}\"; };\n" UPS, 1, "redis.password", "bad ${NAME}");
	expect_error("redis = { password = \"${SQT_HOST\"; };\n" UPS, 1, "redis.password", "bad ${NAME}");
	/* the expanded value is checked like a written one, without being quoted */
	setenv("SQT_SECRET", "has space", 1);
	expect_error("upstreams = (\n  { name = \"wow\"; url = \"http://h\";\n"
		     "    projects = ( { name = \"p\"; key = \"${SQT_SECRET}\"; id = 1; } ); }\n);\n",
		     3, "upstreams[0].projects[0].key", "may contain only");
	clear_env();
}

static void test_print_masks_secrets(void **state)
{
	struct config *cfg = load_ok("redis = { password = \"r3dis-pass-word\"; };\n"
				     "forward = { headers = ( \"X-Request-Id\", \"X-Tenant\" ); };\n"
				     "default_route = { upstream = \"wow\"; project = \"vod_be\"; };\n"
				     "upstreams = (\n"
				     "  { name = \"wow\"; url = \"http://127.0.0.1:9001\";\n"
				     "    projects = ( { name = \"vod_be\"; key = \"" KEY_VOD "\"; secret = \"s3cr3t-value\"; id = 20; } ); }\n"
				     ");\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_int_equal(config_print(cfg, out), CONFIG_PRINT_OK);
	fclose(out);
	assert_contains(buf, "listen.port = 9000;\n");
	assert_contains(buf, "shutdown_timeout = 10.0;\n");
	assert_contains(buf, "log.level = \"info\";\n");
	assert_contains(buf, "rate_limits.passthrough = false;\n");
	assert_contains(buf, "upstreams[0].name = \"wow\";\n");
	assert_contains(buf, "upstreams[0].url = \"http://127.0.0.1:9001\";\n");
	assert_contains(buf, "upstreams[0].projects[0].id = 20;\n");
	assert_contains(buf, "upstreams[0].projects[0].secret = \"********\";\n");
	assert_contains(buf, "redis.password = \"********\";\n");
	assert_contains(buf, "# redis.unix_socket is not set\n");
	assert_contains(buf, "forward.headers = ( \"X-Request-Id\", \"X-Tenant\" );\n");
	assert_contains(buf, "# redis.sentinels is not set\n");
	/* keys, secrets, passwords and project names appear nowhere */
	assert_null(strstr(buf, KEY_VOD));
	assert_null(strstr(buf, "a6f4"));
	assert_null(strstr(buf, "s3cr3t-value"));
	assert_null(strstr(buf, "r3dis-pass-word"));
	assert_null(strstr(buf, "vod_be"));
	free(buf);
	config_free(cfg);
}

static void test_permissions(void **state)
{
	char path[] = "/tmp/sentryq-perm-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_permissions(path), CONFIG_PERM_PRIVATE);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_permissions(path), CONFIG_PERM_OTHERS);
	unlink(path);
	assert_int_equal(config_permissions(path), CONFIG_PERM_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_loads),
		cmocka_unit_test(test_sample_documents_every_key),
		cmocka_unit_test(test_key_names),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_upstream_inherits_forward),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_harness_template),
		cmocka_unit_test(test_url_parsing),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_error_unknown_keys),
		cmocka_unit_test(test_error_values),
		cmocka_unit_test(test_error_credentials_not_echoed),
		cmocka_unit_test(test_error_structure),
		cmocka_unit_test(test_error_urls),
		cmocka_unit_test(test_error_default_route),
		cmocka_unit_test(test_error_parse_and_io),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_one_line_projects),
		cmocka_unit_test(test_check_values),
		cmocka_unit_test(test_sentinels),
		cmocka_unit_test(test_error_sentinels),
		cmocka_unit_test(test_cluster),
		cmocka_unit_test(test_log_and_metrics_groups),
		cmocka_unit_test(test_roles_and_consumers),
		cmocka_unit_test(test_env_names),
		cmocka_unit_test(test_env_overrides),
		cmocka_unit_test(test_env_errors),
		cmocka_unit_test(test_env_references),
		cmocka_unit_test(test_print_masks_secrets),
		cmocka_unit_test(test_permissions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
