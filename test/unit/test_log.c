/* test_log.c - the two line formats: text with key=value fields, JSON one object per line
 * (escaping, bad UTF-8, fields of every type, long lines still one complete object). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

static const struct timeval when = { 1767225600, 123456 };  /* 2026-01-01T00:00:00.123Z */

static json_t *parse(const char *line)
{
	json_error_t err;
	size_t n = strlen(line);
	json_t *o;

	assert_true(n > 0 && line[n - 1] == '\n');
	assert_null(memchr(line, '\n', n - 1));  /* one line */
	o = json_loadb(line, n - 1, 0, &err);
	if (o == NULL)
		print_message("not JSON (%s): %s", err.text, line);
	assert_non_null(o);
	return o;
}

static void test_text(void **state)
{
	char line[LOG_LINE_MAX];
	const struct log_field f[] = { LOG_STR("upstream", "wow"), LOG_INT("status", 503), LOG_REAL("rate", 1.5),
				       LOG_STR("reason", "two words"), LOG_STR("q", "a\"b"), LOG_STR("none", NULL) };

	(void)state;
	log_format_line(line, sizeof(line), LOG_FORMAT_TEXT, &when, LOG_WARN, NULL, 0, "plain message");
	assert_string_equal(line, "2026-01-01T00:00:00.123Z warn  plain message\n");
	log_format_line(line, sizeof(line), LOG_FORMAT_TEXT, &when, LOG_INFO, f, 6, "msg");
	assert_string_equal(line, "2026-01-01T00:00:00.123Z info  msg upstream=wow status=503 rate=1.500 "
				  "reason=\"two words\" q=\"a\\\"b\" none=-\n");
}

static void test_json(void **state)
{
	char line[LOG_LINE_MAX];
	const struct log_field f[] = { LOG_STR("route", "wow/20"), LOG_INT("status", 429), LOG_REAL("rate", 0.25),
				       LOG_STR("none", NULL) };
	json_t *o;

	(void)state;
	log_format_line(line, sizeof(line), LOG_FORMAT_JSON, &when, LOG_ERROR, f, 4,
			"quote \" backslash \\ tab \t bell \a utf8 \xc3\xa9 bad \xff end");
	o = parse(line);
	assert_string_equal(json_string_value(json_object_get(o, "ts")), "2026-01-01T00:00:00.123Z");
	assert_string_equal(json_string_value(json_object_get(o, "level")), "error");
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
			    "quote \" backslash \\ tab \t bell \a utf8 \xc3\xa9 bad \xef\xbf\xbd end");
	assert_string_equal(json_string_value(json_object_get(o, "route")), "wow/20");
	assert_int_equal(json_integer_value(json_object_get(o, "status")), 429);
	assert_true(json_real_value(json_object_get(o, "rate")) == 0.25);
	assert_true(json_is_null(json_object_get(o, "none")));
	json_decref(o);
}

/* However long the message and the fields, the line is one complete JSON object. */
static void test_json_truncated(void **state)
{
	char *msg = malloc(LOG_LINE_MAX * 2), line[512], big[LOG_LINE_MAX];
	struct log_field f[] = { LOG_STR("upstream", "wow"), LOG_STR("huge", NULL) };
	json_t *o;

	(void)state;
	memset(msg, '"', LOG_LINE_MAX * 2 - 1);  /* every byte doubles when escaped */
	msg[LOG_LINE_MAX * 2 - 1] = '\0';
	for (size_t len = 128; len <= sizeof(line); len += 37) {
		size_t n = log_format_line(line, len, LOG_FORMAT_JSON, &when, LOG_INFO, f, 1, msg);

		assert_true(n < len);
		o = parse(line);
		assert_true(strlen(json_string_value(json_object_get(o, "msg"))) > 0);
		json_decref(o);
	}
	/* a field too large for what is left is left out whole */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f[1].s = big;
	log_format_line(line, sizeof(line), LOG_FORMAT_JSON, &when, LOG_INFO, f, 2, "short");
	o = parse(line);
	assert_string_equal(json_string_value(json_object_get(o, "upstream")), "wow");
	assert_null(json_object_get(o, "huge"));
	json_decref(o);
	free(msg);
}

static void test_names(void **state)
{
	enum log_format fmt;
	enum log_level lvl;

	(void)state;
	assert_int_equal(log_format_of("JSON", &fmt), 0);
	assert_int_equal(fmt, LOG_FORMAT_JSON);
	assert_int_equal(log_format_of("text", &fmt), 0);
	assert_int_equal(fmt, LOG_FORMAT_TEXT);
	assert_int_equal(log_format_of("xml", NULL), -1);
	assert_int_equal(log_level_of("Warn", &lvl), 0);
	assert_int_equal(lvl, LOG_WARN);
	assert_int_equal(log_set_format("json"), 0);
	assert_int_equal(log_settings.format, LOG_FORMAT_JSON);
	assert_int_equal(log_set_format("yaml"), -1);
	assert_int_equal(log_settings.format, LOG_FORMAT_JSON);
	log_set_format("text");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_truncated),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
