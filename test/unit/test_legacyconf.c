/* test_legacyconf.c - the legacy config dict mapped to sentryq's: names kept, the default route
 * matched or created, values escaped and checked, every refusal with its line and no secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "legacyconf.h"

#define K1 "a6f431e198734105aef464f6e702351f"
#define S1 "563b78f7bc1941828df0e5ebd79cc17a"
#define K2 "0123456789abcdef0123456789abcdef"
#define S2 "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
#define K3 "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
#define S3 "fedcba9876543210fedcba9876543210"

#define PRJ(key, secret, num) "{'key': '" key "', 'secret': '" secret "', 'num': '" num "'}"

/* The issue's example, among other Python code. */
static const char LEGACY[] =
	"# forwarder settings\n"                                           /* 1 */
	"import os\n"
	"LISTEN = ('0.0.0.0', 9000)\n"
	"config = {\n"
	"    \"wow\": {\"url\": \"http://10.0.0.5:9001\",\n"                /* 5 */
	"            \"vod_be\": " PRJ(K1, S1, "20") ",\n"
	"            \"mcms\":   " PRJ(K2, S2, "10") "},\n"
	"    \"ktv\": {\"url\": \"http://10.0.0.5:9002\",\n"
	"            \"lscms\": " PRJ(K3, S3, "11") "},\n"
	"    \"default\": {\"url\": \"http://10.0.0.5:9001\",\n"            /* 10 */
	"                \"default\": " PRJ(K1, S1, "20") "},\n"
	"}\n"
	"def main():\n"
	"    print(config)\n";

static char tmp_path[64];

static char *convert(const char *text, struct legacyconf_error *err, enum legacyconf_result want)
{
	char *out = (char *)&out;
	size_t len = 12345;
	enum legacyconf_result r = legacyconf_convert(text, strlen(text), "OLD.py", &out, &len, err);

	if (r != want)
		print_message("got %d at line %u: %s\n", r, err->line, err->msg);
	assert_int_equal(r, want);
	if (r != LEGACYCONF_OK) {
		assert_null(out);
		return NULL;
	}
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

/* The converted text, loaded back by sentryq's own loader. */
static struct config *convert_load(const char *text, char **outp)
{
	struct legacyconf_error err;
	char *out = convert(text, &err, LEGACYCONF_OK), cerr[512] = "";
	struct config *cfg;
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/sentryq-legacy-XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
	close(fd);
	cfg = config_load(tmp_path, cerr, sizeof(cerr));
	unlink(tmp_path);
	if (cfg == NULL)
		print_message("the output does not load: %s\n%s\n", cerr, out);
	assert_non_null(cfg);
	if (outp != NULL)
		*outp = out;
	else
		free(out);
	return cfg;
}

static void assert_contains(const char *hay, const char *needle)
{
	const char *hit = needle != NULL ? strstr(hay, needle) : NULL;

	if (hit == NULL)
		print_message("'%s' does not contain '%s'\n", hay, needle != NULL ? needle : "(null)");
	assert_non_null(hit);
}

/* Refused at `line` with `says` in the message, which holds no credential or project name. */
static void refused(const char *text, unsigned line, const char *says, const char *const *hidden)
{
	struct legacyconf_error err;

	convert(text, &err, LEGACYCONF_REFUSED);
	if (err.line != line)
		print_message("%s\n  line %u: %s\n", text, err.line, err.msg);
	assert_int_equal(err.line, line);
	assert_contains(err.msg, says);
	for (; hidden != NULL && *hidden != NULL; hidden++)
		if (strstr(err.msg, *hidden) != NULL)
			fail_msg("message '%s' shows '%s'", err.msg, *hidden);
}

static const char *const SECRETS[] = { K1, S1, K2, S2, "vod_be", "mcms", NULL };

static const struct config_project *project(const struct config *cfg, const char *up, const char *name)
{
	const struct config_project *p = config_project_by_name(config_upstream_by_name(cfg, up), name);

	assert_non_null(p);
	return p;
}

/* ---- mapping ----------------------------------------------------------------------------- */

static void test_issue_example(void **state)
{
	char *out;
	struct config *cfg = convert_load(LEGACY, &out);
	const struct config_project *p;

	assert_int_equal(cfg->nupstreams, 2);
	assert_string_equal(cfg->upstreams[0].name, "wow");
	assert_string_equal(cfg->upstreams[0].url, "http://10.0.0.5:9001");
	assert_int_equal(cfg->upstreams[0].nprojects, 2);
	assert_string_equal(cfg->upstreams[1].name, "ktv");
	assert_string_equal(cfg->upstreams[1].url, "http://10.0.0.5:9002");
	p = project(cfg, "wow", "vod_be");
	assert_string_equal(p->key, K1);
	assert_string_equal(p->secret, S1);
	assert_int_equal(p->id, 20);
	p = project(cfg, "wow", "mcms");
	assert_string_equal(p->key, K2);
	assert_int_equal(p->id, 10);
	p = project(cfg, "ktv", "lscms");
	assert_string_equal(p->secret, S3);
	assert_int_equal(p->id, 11);
	/* default matches wow/vod_be by url, key and num: nothing is added */
	assert_string_equal(cfg->default_upstream, "wow");
	assert_string_equal(cfg->default_project, "vod_be");
	/* defaults for listen and redis, with a hint; where it came from */
	assert_int_equal(cfg->listen_port, 9000);
	assert_string_equal(cfg->redis_host, "127.0.0.1");
	assert_true(strncmp(out, "# sentryq configuration imported from OLD.py\n", 45) == 0);
	assert_contains(out, "#   listen = {");
	assert_contains(out, "#   redis  = {");
	assert_contains(out, "\n# The legacy 'default' entry (line 10): the same url, key and num");
	assert_null(strstr(out, "\nlisten"));
	free(out);
	config_free(cfg);
}

static void test_output_format(void **state)
{
	struct legacyconf_error err;
	char *out = convert("config = {'w': {'url': 'http://h', 'p': {'key': 'k', 'num': 7}}}", &err,
			    LEGACYCONF_OK);

	assert_contains(out, "\nupstreams = (\n"
			"  { name = \"w\"; url = \"http://h\";\n"
			"    projects = (\n"
			"      { name = \"p\"; key = \"k\"; id = 7; }\n"
			"    ); }\n"
			");\n");
	assert_null(strstr(out, "default_route"));
	assert_null(strstr(out, "secret ="));
	free(out);
}

static void test_literal_forms(void **state)
{
	struct config *cfg = convert_load(
		"config = {\n"
		"  'w': {'url': r'http://h:1/p',\n"
		"        'a': {'key': 'k' \"1\", 'secret': '''s1''', 'num': 20,},  # trailing comma\n"
		"        'b': {'key': 'k2', 'secret': None, 'num': '030'},\n"
		"        'c': {'key': 'k3', 'secret': '', 'num': 0x10},\n"
		"        'd': {'key': 'k4', 'num': 4504012345678912},\n"
		"        u'e': {'key': '\\x6b5', 'num': 5},\n"
		"  },\n"
		"}\n", NULL);
	const struct config_upstream *w = config_upstream_by_name(cfg, "w");

	assert_string_equal(w->url, "http://h:1/p");
	assert_string_equal(w->path_prefix, "/p");
	assert_int_equal(w->nprojects, 5);
	assert_string_equal(project(cfg, "w", "a")->key, "k1");
	assert_string_equal(project(cfg, "w", "a")->secret, "s1");
	assert_int_equal(project(cfg, "w", "a")->id, 20);
	assert_null(project(cfg, "w", "b")->secret);      /* None: no secret */
	assert_int_equal(project(cfg, "w", "b")->id, 30);
	assert_null(project(cfg, "w", "c")->secret);      /* "": no secret */
	assert_int_equal(project(cfg, "w", "c")->id, 16);
	assert_true(project(cfg, "w", "d")->id == 4504012345678912LL); /* written with L */
	assert_string_equal(project(cfg, "w", "e")->key, "k5");
	config_free(cfg);
}

static void test_names_kept(void **state)
{
	char name64[65], text[512];
	struct config *cfg;

	memset(name64, 'n', 64);
	name64[64] = '\0';
	snprintf(text, sizeof(text), "config = {'A.b-c_9': {'url': 'https://s.example',\n"
		 "  '%s': {'key': 'k', 'num': '1'}, 'Vod.BE-2_x': {'key': 'k', 'num': '2'}}}\n", name64);
	cfg = convert_load(text, NULL);
	assert_string_equal(cfg->upstreams[0].name, "A.b-c_9");
	assert_string_equal(cfg->upstreams[0].projects[0].name, name64);
	assert_string_equal(cfg->upstreams[0].projects[1].name, "Vod.BE-2_x");
	config_free(cfg);
}

static void test_escapes(void **state)
{
	char *out;
	struct config *cfg = convert_load(
		"config = {'w': {'url': 'http://h/\\u00e9t\\u00e9',\n"
		"  'p': {'key': 'a\\x2db\\u005fc', 'secret': 'x\\x7ey', 'num': '1'}}}\n", &out);
	const struct config_project *p = project(cfg, "w", "p");

	/* Keys and secrets are letters, digits and "-._~" (config.c): escapes that spell them decode. */
	assert_string_equal(p->key, "a-b_c");
	assert_string_equal(p->secret, "x~y");
	assert_string_equal(cfg->upstreams[0].path_prefix, "/\xc3\xa9t\xc3\xa9");
	assert_contains(out, "key = \"a-b_c\"");
	free(out);
	config_free(cfg);
}

static void test_source_name_in_comment(void **state)
{
	struct legacyconf_error err;
	char *out = NULL;
	size_t len;
	static const char text[] = "config = {'w': {'url': 'http://h', 'p': {'key': 'k', 'num': 1}}}";

	assert_int_equal(legacyconf_convert(text, strlen(text), "a\nupstreams = ();\n.py", &out, &len, &err),
			 LEGACYCONF_OK);
	assert_true(strncmp(out, "# sentryq configuration imported from a?upstreams = ();?.py\n", 60) == 0);
	free(out);
}

/* ---- the default route ------------------------------------------------------------------- */

static void test_default_matches_second_upstream_with_url(void **state)
{
	struct config *cfg = convert_load(
		"config = {'a': {'url': 'http://h:9001', 'p': {'key': 'k1', 'num': '5'}},\n"
		"          'b': {'url': 'HTTP://H:9001/', 'q': {'key': 'k2', 'num': '6'},\n"
		"                                           'r': {'key': 'k1', 'num': 5}},\n"
		"          'default': {'url': 'http://h:9001', 'x': {'key': 'k2', 'secret': 's', 'num': 6}}}\n",
		NULL);

	assert_string_equal(cfg->default_upstream, "b");
	assert_string_equal(cfg->default_project, "q");
	assert_int_equal(cfg->nupstreams, 2);
	assert_int_equal(cfg->upstreams[1].nprojects, 2);
	config_free(cfg);
}

static void test_default_adds_project(void **state)
{
	char *out;
	struct config *cfg = convert_load(
		"config = {'default': {'url': 'http://h:9001', 'default': {'key': 'kd', 'secret': 'sd', 'num': '9'}},\n"
		"          'a': {'url': 'http://h:9001', 'p': {'key': 'kd', 'num': '5'}}}\n", &out);
	const struct config_project *d = project(cfg, "a", "default");

	/* same key, other num: another project; the default entry may come first */
	assert_int_equal(cfg->nupstreams, 1);
	assert_string_equal(cfg->default_upstream, "a");
	assert_string_equal(cfg->default_project, "default");
	assert_string_equal(d->key, "kd");
	assert_string_equal(d->secret, "sd");
	assert_int_equal(d->id, 9);
	assert_contains(out, "its url matched this upstream");
	free(out);
	config_free(cfg);
}

static void test_default_adds_upstream(void **state)
{
	struct config *cfg = convert_load(
		"config = {'a': {'url': 'http://h:9001', 'p': {'key': 'k', 'num': '5'}},\n"
		"          'default': {'url': 'http://h:9002', 'whatever': {'key': 'k', 'num': '5'}}}\n", NULL);
	const struct config_upstream *d = config_upstream_by_name(cfg, "default");

	assert_non_null(d);
	assert_string_equal(d->url, "http://h:9002");
	assert_int_equal(d->nprojects, 1);
	assert_string_equal(d->projects[0].name, "default");
	assert_string_equal(cfg->default_upstream, "default");
	assert_string_equal(cfg->default_project, "default");
	config_free(cfg);
	/* only a default entry: it is the one upstream */
	cfg = convert_load("config = {'default': {'url': 'http://h', 'default': {'key': 'k', 'num': 1}}}", NULL);
	assert_int_equal(cfg->nupstreams, 1);
	assert_string_equal(cfg->default_upstream, "default");
	config_free(cfg);
}

static void test_default_fills_upstream_without_projects(void **state)
{
	struct config *cfg = convert_load(
		"config = {'a': {'url': 'http://h'},\n"
		"          'default': {'url': 'http://h', 'd': {'key': 'k', 'num': 1}}}\n", NULL);

	assert_string_equal(cfg->default_upstream, "a");
	assert_string_equal(cfg->default_project, "default");
	config_free(cfg);
}

static void test_default_refusals(void **state)
{
	static const char *const hidden[] = { "kd", "sd", NULL };

	refused("config = {'a': {'url': 'http://h', 'default': {'key': 'k', 'num': '5'}},\n"
		"          'default': {'url': 'http://h', 'x': {'key': 'kd', 'secret': 'sd', 'num': '5'}}}\n",
		2, "upstream 'a', whose project named 'default' (line 1) has another key or num", hidden);
	refused("config = {'default': {'url': 'http://h'}}", 1, "the 'default' entry has no project", NULL);
	refused("config = {'default': {'url': 'http://h', 'x': {'key': 'k', 'num': 1},\n"
		"  'y': {'key': 'k', 'num': 2}}}", 2, "has a second project (first at line 1)", NULL);
	refused("config = {'default': {'x': {'key': 'k', 'num': 1}}}", 1, "the 'default' entry has no url", NULL);
	refused("config = {'default': 'http://h'}", 1, "must be a dict", NULL);
	refused("config = {'default': {'url': 'http://h', 'x': {'num': 1}}}", 1,
		"the project of the 'default' entry has no key", NULL);
	refused("config = {'default': {'url': 'http://h', 'x': {'key': 'k', 'num': 1}},\n"
		"          'default': {'url': 'http://h', 'x': {'key': 'k', 'num': 1}}}", 2,
		"a second 'default' entry (first at line 1)", NULL);
	refused("config = {'default': {'url': 'http://h', 1: {'key': 'k', 'num': 1}}}", 1,
		"must be a string", NULL);
}

/* ---- refusals ---------------------------------------------------------------------------- */

static void test_refuse_structure(void **state)
{
	refused("x = 1\n", 0, "no top-level 'config = {...}' assignment", NULL);
	refused("config = [1]\n", 1, "config must be a dict, got a list", NULL);
	refused("config = {}\n", 1, "config has no upstreams", NULL);
	refused("config = {\n 'w': 'http://h'}\n", 2, "upstream 'w' must be a dict", NULL);
	refused("config = {\n 'w': {'url': 'http://h'}}\n", 2, "upstream 'w' has no projects", NULL);
	refused("config = {\n 'w': {'p': " PRJ(K1, S1, "1") "}}\n", 2, "upstream 'w' has no url", SECRETS);
	refused("config = {'w': {'url': 'http://h',\n 'url': 'http://g', 'p': " PRJ(K1, S1, "1") "}}\n", 2,
		"second url (first at line 1)", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': " PRJ(K1, S1, "1") "},\n"
		"  'k': {'url': 'http://h', 'vod_be': " PRJ(K1, S1, "1") "},\n"
		"  'w': {'url': 'http://h', 'vod_be': " PRJ(K1, S1, "1") "}}\n",
		3, "duplicate upstream 'w' (first at line 1)", SECRETS);
	refused("config = {'w': {'url': 'http://h',\n"
		"   'mcms': " PRJ(K2, S2, "2") ",\n"
		"   'vod_be': " PRJ(K1, S1, "1") ",\n"
		"   'vod_be': " PRJ(K1, S1, "3") "}}\n",
		4, "project #3 of upstream 'w' has the same name as project #2 (line 3)", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': 5}}", 1,
		"project #1 of upstream 'w' must be a dict", SECRETS);
}

static void test_refuse_fields(void **state)
{
	refused("config = {'w': {'url': 'http://h',\n 'mcms': " PRJ(K2, S2, "2") ",\n"
		" 'vod_be': {'secret': '" S1 "', 'num': '1'}}}", 3, "project #2 of upstream 'w' has no key",
		SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': None, 'num': '1'}}}", 1,
		"has no key", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "', 'secret': '" S1 "'}}}", 1,
		"has no num", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 12, 'num': '1'}}}", 1,
		"key must be a string, got an int", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 'a b', 'num': '1'}}}", 1,
		"key may contain only letters, digits", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "', 'secret': 'x:" S1 "', "
		"'num': '1'}}}", 1, "secret may contain only letters, digits", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "\\t', 'num': '1'}}}", 1,
		"key must not contain control characters", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "\\0', 'num': '1'}}}", 1,
		"key must not contain control characters", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "', 'secret': 7, 'num': '1'}}}",
		1, "secret must be a string", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "',\n 'key': '" K2 "', 'num': '1'}}}",
		2, "'key' appears twice (first at line 1)", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': '" K1 "', 'num': '1',\n"
		" 'vod_be': 'x'}}}", 2, "project #1 of upstream 'w': unknown field", SECRETS);
}

static void test_refuse_num(void **state)
{
	static const char *const nums[] = { "'2x'", "'-1'", "' 20'", "''", "True", "None", "[20]",
		"'1.5'", "123456789012345678901234567890" };
	char text[256];

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		snprintf(text, sizeof(text), "config = {'w': {'url': 'http://h',\n"
			 "  'vod_be': {'key': 'k', 'num':\n %s}}}", nums[i]);
		refused(text, 3, "project #1 of upstream 'w': num must be a number", SECRETS);
	}
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 'k', 'num': 0}}}", 1,
		"num must be between 1 and", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 'k', 'num': -3}}}", 1,
		"num must be between 1 and", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 'k', 'num': '9007199254740992'}}}", 1,
		"num must be between 1 and", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'vod_be': {'key': 'k', 'num': '99999999999999999999'}}}", 1,
		"num must be between 1 and", SECRETS);
}

static void test_refuse_names_and_urls(void **state)
{
	char name65[66], text[256];

	memset(name65, 'n', 65);
	name65[65] = '\0';
	refused("config = {'w w': {'url': 'http://h', 'p': {'key': 'k', 'num': 1}}}", 1,
		"upstream #1: the name may contain only letters, digits, '_', '.' and '-'", NULL);
	refused("config = {'a': {'url': 'http://h', 'p': {'key': 'k', 'num': 1}},\n"
		" 5: {'url': 'http://h', 'p': {'key': 'k', 'num': 1}}}", 2,
		"upstream #2: the name must be a string, got an int", NULL);
	refused("config = {'w': {'url': 'http://h', 'vod be': {'key': 'k', 'num': 1}}}", 1,
		"project #1 of upstream 'w': the name may contain only", (const char *const[]){ "vod be", NULL });
	refused("config = {'w': {'url': 'http://h', ('vod_be',): {'key': 'k', 'num': 1}}}", 1,
		"the name must be a string, got a tuple", SECRETS);
	refused("config = {'w': {'url': 'http://h', '': {'key': 'k', 'num': 1}}}", 1,
		"the name must not be empty", NULL);
	snprintf(text, sizeof(text), "config = {'w': {'url': 'http://h', '%s': {'key': 'k', 'num': 1}}}", name65);
	refused(text, 1, "the name must be at most 64 characters", (const char *const[]){ name65, NULL });
	snprintf(text, sizeof(text), "config = {'%s': {'url': 'http://h', 'p': {'key': 'k', 'num': 1}}}", name65);
	refused(text, 1, "upstream #1: the name must be at most 64 characters", NULL);
	refused("config = {'w': {'url': 'ftp://h', 'p': {'key': 'k', 'num': 1}}}", 1,
		"upstream 'w': url must start with http:// or https://", NULL);
	refused("config = {'w': {'url': 'http://user:pw@h', 'p': {'key': 'k', 'num': 1}}}", 1,
		"must not contain user info", (const char *const[]){ "pw", NULL });
	refused("config = {'w': {'url': 'http://h:99999', 'p': {'key': 'k', 'num': 1}}}", 1, "port", NULL);
	refused("config = {'w': {'url': 'http://h?x=1', 'p': {'key': 'k', 'num': 1}}}", 1, "query", NULL);
	refused("config = {'w': {'url': 9001, 'p': {'key': 'k', 'num': 1}}}", 1,
		"url must be a string, got an int", NULL);
}

static void test_refuse_python(void **state)
{
	refused("import os\nconfig = {'w': {'url': os.environ['URL'],\n 'p': {'key': 'k', 'num': 1}}}", 2,
		"a name", NULL);
	refused("config = {'w': {'url': 'http://h',\n 'p': {'key': KEY, 'num': 1}}}", 2, "a name", NULL);
	refused("config = {'w': {'url': 'http://h',\n 'p': {'key': get_key(), 'num': 1}}}", 2, "function call",
		NULL);
	refused("config = {'w': {'url': f'http://{HOST}',\n 'p': {'key': 'k', 'num': 1}}}", 1, "f-string", NULL);
	refused("config = {'w': {'url': 'http://' + HOST,\n 'p': {'key': 'k', 'num': 1}}}", 1,
		"an expression ('+')", NULL);
	refused("config = {'w': {'url': 'http://h', 'p': {'key': 'k', 'num': 1}}}\nconfig['w']['url'] = 'x'\n",
		2, "changes 'config'", NULL);
	refused("config = {'w': {'url': 'http://h', 'p': {'key': '" K1 "', 'num': 1}}\n", 1,
		"'{' is never closed", SECRETS);
	refused("config = {'w': {'url': 'http://h', 'p': {'key': '" K1 "\n', 'num': 1}}}\n", 1,
		"unterminated string", SECRETS);
}

/* ---- the subcommand ---------------------------------------------------------------------- */

static char *run(int argc, const char *a1, const char *a2, enum legacyconf_exit want, char **err)
{
	char *argv[] = { (char *)"import-legacy-config", (char *)a1, (char *)a2, NULL };
	char *out = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *fo = open_memstream(&out, &outlen), *fe = open_memstream(err, &errlen);

	assert_non_null(fo);
	assert_non_null(fe);
	assert_int_equal(legacyconf_run(argc, argv, fo, fe), want);
	fclose(fo);
	fclose(fe);
	return out;
}

static void test_run(void **state)
{
	char dir[] = "/tmp/sentryq-legacy-run-XXXXXX", path[64], *out, *err;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/old.py", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs(LEGACY, fp);
	fclose(fp);
	out = run(2, path, NULL, LEGACYCONF_EXIT_OK, &err);
	assert_contains(out, "name = \"vod_be\"; key = \"" K1 "\"");
	assert_string_equal(err, "");
	free(out), free(err);
	assert_non_null(fp = fopen(path, "w"));
	fputs("config = {'w': {'url': 'http://h',\n 'vod_be': {'key': '" K1 "', 'num': 'x'}}}\n", fp);
	fclose(fp);
	out = run(2, path, NULL, LEGACYCONF_EXIT_REFUSED, &err);
	assert_string_equal(out, "");
	assert_true(strncmp(err, "sentryq: ", 9) == 0 && strncmp(err + 9, path, strlen(path)) == 0);
	assert_contains(err, "old.py:2: project #1 of upstream 'w': num must be a number");
	assert_null(strstr(err, K1));
	assert_null(strstr(err, "vod_be"));
	free(out), free(err);
	unlink(path);
	out = run(2, path, NULL, LEGACYCONF_EXIT_REFUSED, &err);
	assert_contains(err, "old.py: cannot open");
	free(out), free(err);
	rmdir(dir);
	free(run(1, NULL, NULL, LEGACYCONF_EXIT_USAGE, &err)), free(err);
	free(run(3, "a.py", "b.py", LEGACYCONF_EXIT_USAGE, &err)), free(err);
	free(run(2, "-x", NULL, LEGACYCONF_EXIT_USAGE, &err));
	assert_contains(err, "usage: sentryq import-legacy-config OLD.py");
	free(err);
	out = run(2, "--help", NULL, LEGACYCONF_EXIT_OK, &err);
	assert_contains(out, "usage:");
	free(out), free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_example),
		cmocka_unit_test(test_output_format),
		cmocka_unit_test(test_literal_forms),
		cmocka_unit_test(test_names_kept),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_source_name_in_comment),
		cmocka_unit_test(test_default_matches_second_upstream_with_url),
		cmocka_unit_test(test_default_adds_project),
		cmocka_unit_test(test_default_adds_upstream),
		cmocka_unit_test(test_default_fills_upstream_without_projects),
		cmocka_unit_test(test_default_refusals),
		cmocka_unit_test(test_refuse_structure),
		cmocka_unit_test(test_refuse_fields),
		cmocka_unit_test(test_refuse_num),
		cmocka_unit_test(test_refuse_names_and_urls),
		cmocka_unit_test(test_refuse_python),
		cmocka_unit_test(test_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
