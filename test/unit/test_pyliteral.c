/* test_pyliteral.c - Python literals into a tree: every accepted form, every refusal with its line,
 * and the top-level `config = {...}` found among other Python code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pyliteral.h"

static struct pyliteral *parse_ok(const char *text)
{
	struct pyliteral *v = NULL;
	struct pyliteral_error err;
	enum pyliteral_result r = pyliteral_parse(text, strlen(text), &v, &err);

	if (r != PYLITERAL_OK)
		print_message("unexpected error %d at line %u: %s\n", r, err.line, err.msg);
	assert_int_equal(r, PYLITERAL_OK);
	assert_non_null(v);
	return v;
}

static void assert_contains(const char *hay, const char *needle)
{
	const char *hit = needle != NULL ? strstr(hay, needle) : NULL;

	if (hit == NULL)
		print_message("'%s' does not contain '%s'\n", hay, needle != NULL ? needle : "(null)");
	assert_non_null(hit);
}

/* Parsing text (a literal, or a module when find is set) fails with rc at line, saying `says`. */
static void refused(bool find, const char *text, enum pyliteral_result rc, unsigned line, const char *says)
{
	struct pyliteral *v = (struct pyliteral *)&v;
	struct pyliteral_error err;
	unsigned at = 0;
	enum pyliteral_result r = find ? pyliteral_find(text, strlen(text), "config", &v, &at, &err) :
		pyliteral_parse(text, strlen(text), &v, &err);

	if (r != rc || err.line != line)
		print_message("%s\n  got %d at line %u: %s\n", text, r, err.line, err.msg);
	assert_int_equal(r, rc);
	assert_int_equal(err.line, line);
	assert_null(v);
	if (says != NULL)
		assert_contains(err.msg, says);
}

static void expect_str(const char *text, const char *want, size_t len)
{
	struct pyliteral *v = parse_ok(text);

	assert_int_equal(v->kind, PYLITERAL_STR);
	if (v->len != len || memcmp(v->str, want, len) != 0)
		print_message("%s: got '%s' (%zu bytes)\n", text, v->str, v->len);
	assert_int_equal(v->len, len);
	assert_memory_equal(v->str, want, len);
	assert_int_equal(v->str[len], '\0');
	pyliteral_free(v);
}

static void expect_int(const char *text, long long want)
{
	struct pyliteral *v = parse_ok(text);

	assert_int_equal(v->kind, PYLITERAL_INT);
	assert_false(v->big);
	assert_true(v->num == want);
	pyliteral_free(v);
}

#define STR(text, want) expect_str(text, want, sizeof(want) - 1)

/* ---- accepted forms ---------------------------------------------------------------------- */

static void test_strings(void **state)
{
	STR("\"abc\"", "abc");
	STR("'abc'", "abc");
	STR("''", "");
	STR("\"it's\"", "it's");
	STR("'say \"hi\"'", "say \"hi\"");
	STR("'''a\nb'''", "a\nb");
	STR("\"\"\"x \"quoted\" 'y'\"\"\"", "x \"quoted\" 'y'");
	STR("'''it''s'''", "it''s");
	STR("\"\"\"a\r\nb\"\"\"", "a\nb");            /* source newlines are "\n" */
	STR("u'x' U\"y\"", "xy");
	STR("\"a\" 'b' '''c''' \"\"\"d\"\"\"", "abcd"); /* adjacent literals concatenate */
	STR("(\"a\"\n  \"b\"  # comment\n  'c')", "abc");
	STR("\"\\\\ \\' \\\" \\a\\b\\f\\n\\r\\t\\v\"", "\\ ' \" \a\b\f\n\r\t\v");
	STR("\"\\x41\\101\\u00e9\\U0001F600\"", "AA\xc3\xa9\xf0\x9f\x98\x80");
	STR("'\\xe9'", "\xc3\xa9");                    /* a code point, not a byte */
	STR("'\\777'", "\xc7\xbf");
	STR("'\\q\\d'", "\\q\\d");                      /* unknown escapes keep the backslash */
	STR("'a\\\nb'", "ab");                          /* backslash-newline joins */
	STR("'\\0x'", "\0x");
	STR("'\xc3\xa9\xe2\x82\xac'", "\xc3\xa9\xe2\x82\xac");
}

static void test_raw_strings(void **state)
{
	STR("r'\\n'", "\\n");
	STR("R\"\\\\\"", "\\\\");
	STR("r\"\\\"\"", "\\\"");
	STR("r'a\\\nb'", "a\\\nb");
	STR("r'''\\d+'''", "\\d+");
	STR("r'\\x' '\\x41'", "\\xA");                /* raw and plain concatenated */
}

static void test_ints(void **state)
{
	struct pyliteral *v;

	expect_int("0", 0);
	expect_int("000", 0);
	expect_int("20", 20);
	expect_int("1_000_000", 1000000);
	expect_int("0x1F", 31);
	expect_int("0X_ff", 255);
	expect_int("0o17", 15);
	expect_int("0b101", 5);
	expect_int("-7", -7);
	expect_int("- 7", -7);
	expect_int("+7", 7);
	expect_int("9223372036854775807", INT64_MAX);
	expect_int("-9223372036854775808", INT64_MIN);
	v = parse_ok("9223372036854775808");
	assert_true(v->big);
	pyliteral_free(v);
	v = parse_ok("123456789012345678901234567890");
	assert_true(v->big);
	pyliteral_free(v);
}

static void test_constants(void **state)
{
	struct pyliteral *v = parse_ok("[True, False, None]");

	assert_int_equal(v->kind, PYLITERAL_LIST);
	assert_int_equal(v->n, 3);
	assert_int_equal(v->items[0]->kind, PYLITERAL_BOOL);
	assert_true(v->items[0]->truth);
	assert_int_equal(v->items[1]->kind, PYLITERAL_BOOL);
	assert_false(v->items[1]->truth);
	assert_int_equal(v->items[2]->kind, PYLITERAL_NONE);
	pyliteral_free(v);
}

static void test_containers(void **state)
{
	struct pyliteral *v = parse_ok(
		"{  # comment\n"
		"  'l': [1, 2,],\n"
		"  't': (1,), 'e': (), 'p': ('x'),\n"
		"  'n': [[], {}, ((1, 2), [3])],\n"
		"  (1, 2): 'tuple key', 5: 'int key',\n"
		"  'a': 1, 'a': 2,\n"
		"}\n");

	assert_int_equal(v->kind, PYLITERAL_DICT);
	assert_int_equal(v->n, 9);
	assert_true(pyliteral_is_str(v->keys[0], "l"));
	assert_int_equal(v->items[0]->kind, PYLITERAL_LIST);
	assert_int_equal(v->items[0]->n, 2);
	assert_int_equal(v->items[0]->line, 2);
	assert_int_equal(v->items[1]->kind, PYLITERAL_TUPLE);
	assert_int_equal(v->items[1]->n, 1);
	assert_int_equal(v->items[2]->kind, PYLITERAL_TUPLE);
	assert_int_equal(v->items[2]->n, 0);
	assert_int_equal(v->items[3]->kind, PYLITERAL_STR); /* parentheses alone make no tuple */
	assert_int_equal(v->items[4]->n, 3);
	assert_int_equal(v->items[4]->items[1]->kind, PYLITERAL_DICT);
	assert_int_equal(v->items[4]->items[2]->items[0]->kind, PYLITERAL_TUPLE);
	assert_int_equal(v->keys[5]->kind, PYLITERAL_TUPLE);
	assert_int_equal(v->keys[5]->line, 5);
	assert_int_equal(v->keys[6]->kind, PYLITERAL_INT);
	/* duplicates are kept, in order: the caller decides */
	assert_true(pyliteral_is_str(v->keys[7], "a") && pyliteral_is_str(v->keys[8], "a"));
	assert_int_equal(v->items[7]->num, 1);
	assert_int_equal(v->items[8]->num, 2);
	assert_int_equal(v->keys[8]->line, 6);
	pyliteral_free(v);
}

static void test_lines_and_continuations(void **state)
{
	struct pyliteral *v = parse_ok(
		"\n"
		"{'a':\n"
		"   '''x\n"
		"y''',\n"
		" 'b': \\\n"
		"   [1,\n"
		"\n"
		"    2],\n"
		" 'c': 'p'\n"
		"      'q'}\n");

	assert_int_equal(v->line, 2);
	assert_int_equal(v->items[0]->line, 3);
	assert_int_equal(v->keys[1]->line, 5);
	assert_int_equal(v->items[1]->line, 6);
	assert_int_equal(v->items[1]->items[1]->line, 8);
	assert_int_equal(v->keys[2]->line, 9);
	assert_true(pyliteral_is_str(v->items[2], "pq"));
	pyliteral_free(v);
}

static void test_helpers(void **state)
{
	struct pyliteral *v = parse_ok("'a\\0b'");

	assert_false(pyliteral_is_str(v, "a"));
	assert_false(pyliteral_is_str(NULL, "a"));
	assert_int_equal(v->len, 3);
	pyliteral_free(v);
	pyliteral_free(NULL);
	assert_string_equal(pyliteral_kind_name(PYLITERAL_DICT), "a dict");
	assert_string_equal(pyliteral_kind_name(PYLITERAL_INT), "an int");
	assert_string_equal(pyliteral_kind_name(PYLITERAL_NONE), "None");
}

/* ---- refusals ---------------------------------------------------------------------------- */

static void test_refuse_non_literals(void **state)
{
	refused(false, "{'a':\n  b}", PYLITERAL_NOT_LITERAL, 2, "a name");
	refused(false, "{'a':\n  os.environ['X']}", PYLITERAL_NOT_LITERAL, 2, "a name");
	refused(false, "{'a':\n\n  dict(x=1)}", PYLITERAL_NOT_LITERAL, 3, "function call");
	refused(false, "[1,\n f'{x}']", PYLITERAL_NOT_LITERAL, 2, "f-string");
	refused(false, "'a' F'b'", PYLITERAL_NOT_LITERAL, 1, "f-string");
	refused(false, "rf'x'", PYLITERAL_NOT_LITERAL, 1, "f-string");
	refused(false, "b'x'", PYLITERAL_NOT_LITERAL, 1, "bytes");
	refused(false, "{'a':\n  'a' + b}", PYLITERAL_NOT_LITERAL, 2, "an expression ('+')");
	refused(false, "['a' % 1]", PYLITERAL_NOT_LITERAL, 1, "('%')");
	refused(false, "['a'.upper()]", PYLITERAL_NOT_LITERAL, 1, "('.')");
	refused(false, "['abc'[0]]", PYLITERAL_NOT_LITERAL, 1, "('[')");
	refused(false, "[1 if x else 2]", PYLITERAL_NOT_LITERAL, 1, "('if')");
	refused(false, "[-x]", PYLITERAL_NOT_LITERAL, 1, "('-')");
	refused(false, "[--1]", PYLITERAL_NOT_LITERAL, 1, "('-')");
	refused(false, "{'a': 1.5}", PYLITERAL_NOT_LITERAL, 1, "float");
	refused(false, "[1e3]", PYLITERAL_NOT_LITERAL, 1, "float");
	refused(false, "[2j]", PYLITERAL_NOT_LITERAL, 1, "float");
	refused(false, "{\n1, 2}", PYLITERAL_NOT_LITERAL, 2, "a set");
	refused(false, "{'a'}", PYLITERAL_NOT_LITERAL, 1, "a set");
	refused(false, "[x for x in y]", PYLITERAL_NOT_LITERAL, 1, "a name");
	refused(false, "[1 for x in y]", PYLITERAL_NOT_LITERAL, 1, "comprehension");
	refused(false, "{'k': 1 for k in y}", PYLITERAL_NOT_LITERAL, 1, "comprehension");
	refused(false, "(1 for x in y)", PYLITERAL_NOT_LITERAL, 1, "comprehension");
	refused(false, "{**base, 'a': 1}", PYLITERAL_NOT_LITERAL, 1, "'**' unpacking");
	refused(false, "[*base]", PYLITERAL_NOT_LITERAL, 1, "unpacking ('*')");
	refused(false, "[lambda: 1]", PYLITERAL_NOT_LITERAL, 1, "a name");
	refused(false, "[true]", PYLITERAL_NOT_LITERAL, 1, "a name");
	refused(false, "'\\N{BULLET}'", PYLITERAL_NOT_LITERAL, 1, "\\N{...}");
	refused(false, "\n'\\ud800'", PYLITERAL_NOT_LITERAL, 2, "surrogate");
}

static void test_refuse_syntax(void **state)
{
	refused(false, "{'a': 1\n\n", PYLITERAL_SYNTAX, 1, "'{' is never closed");
	refused(false, "[1,\n 2)", PYLITERAL_SYNTAX, 2, "does not close the '[' opened at line 1");
	refused(false, "]", PYLITERAL_SYNTAX, 1, "unmatched ']'");
	refused(false, "\n\n'abc", PYLITERAL_SYNTAX, 3, "unterminated string");
	refused(false, "['''abc\n\n'']", PYLITERAL_SYNTAX, 1, "unterminated string");
	refused(false, "'a\nb'", PYLITERAL_SYNTAX, 1, "unterminated string");
	refused(false, "['\\x4']", PYLITERAL_SYNTAX, 1, "truncated \\x");
	refused(false, "['\\u12']", PYLITERAL_SYNTAX, 1, "truncated \\u");
	refused(false, "['\\U00110000']", PYLITERAL_SYNTAX, 1, "beyond U+10FFFF");
	refused(false, "[007]", PYLITERAL_SYNTAX, 1, "malformed number");
	refused(false, "[1__0]", PYLITERAL_SYNTAX, 1, "malformed number");
	refused(false, "[0b2]", PYLITERAL_SYNTAX, 1, "malformed number");
	refused(false, "[1_]", PYLITERAL_SYNTAX, 1, "malformed number");
	refused(false, "[1 2]", PYLITERAL_SYNTAX, 1, "expected ',' or ']'");
	refused(false, "{'a' 1}", PYLITERAL_SYNTAX, 1, "expected ':' after a dict key");
	refused(false, "{'a': 1 'b': 2}", PYLITERAL_SYNTAX, 1, "expected ',' or '}'");
	refused(false, "[,]", PYLITERAL_SYNTAX, 1, "expected a value");
	refused(false, "{'a':,}", PYLITERAL_SYNTAX, 1, "expected a value");
	refused(false, "1 2", PYLITERAL_SYNTAX, 1, "the end of the text");
	refused(false, "1\n2", PYLITERAL_SYNTAX, 2, "the end of the text");
	refused(false, "# only a comment\n", PYLITERAL_SYNTAX, 2, "no value");
	refused(false, "[1, \\ 2]", PYLITERAL_SYNTAX, 1, "backslash");
}

static void test_refuse_nul_and_limits(void **state)
{
	static const char nul[] = "['a',\n 'b\0']";
	char deep[2 * (PYLITERAL_DEPTH_MAX + 2) + 1];
	struct pyliteral *v;
	struct pyliteral_error err;
	char *big;

	assert_int_equal(pyliteral_parse(nul, sizeof(nul) - 1, &v, &err), PYLITERAL_SYNTAX);
	assert_int_equal(err.line, 2);
	assert_contains(err.msg, "NUL");
	/* PYLITERAL_DEPTH_MAX levels nest fine, one more is refused */
	memset(deep, '[', PYLITERAL_DEPTH_MAX + 1);
	memset(deep + PYLITERAL_DEPTH_MAX + 1, ']', PYLITERAL_DEPTH_MAX + 1);
	deep[2 * (PYLITERAL_DEPTH_MAX + 1)] = '\0';
	v = parse_ok(deep);
	pyliteral_free(v);
	memset(deep, '[', PYLITERAL_DEPTH_MAX + 2);
	memset(deep + PYLITERAL_DEPTH_MAX + 2, ']', PYLITERAL_DEPTH_MAX + 2);
	deep[2 * (PYLITERAL_DEPTH_MAX + 2)] = '\0';
	refused(false, deep, PYLITERAL_LIMIT, 1, "nested deeper than 64");
	big = malloc(PYLITERAL_TEXT_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', PYLITERAL_TEXT_MAX + 1);
	big[0] = '1';
	assert_int_equal(pyliteral_parse(big, PYLITERAL_TEXT_MAX + 1, &v, &err), PYLITERAL_LIMIT);
	assert_contains(err.msg, "16 MiB");
	assert_int_equal(pyliteral_parse(big, PYLITERAL_TEXT_MAX, &v, &err), PYLITERAL_OK);
	pyliteral_free(v);
	free(big);
}

/* ---- the assignment among other code ----------------------------------------------------- */

static const char MODULE[] =
	"#!/usr/bin/env python\n"                                   /* 1 */
	"# -*- coding: utf-8 -*-\n"
	"'''Legacy forwarder settings.\n"
	"config = {'in': 'a docstring'}\n"
	"'''\n"                                                     /* 5 */
	"import os, sys\n"
	"from collections import (OrderedDict,\n"
	"    defaultdict)\n"
	"DEBUG = os.environ.get('DEBUG') == '1'; TIMEOUT = 5\n"
	"config_path = '/etc/x'  # config = {'no': 1}\n"           /* 10 */
	"def load(config=None):\n"
	"    config = {'local': f'{config}'}\n"
	"    return config\n"
	"class Settings:\n"
	"    config = {}\n"                                         /* 15 */
	"if DEBUG:\n"
	"    config = {'debug': 1}\n"
	"else: config = {'else': 1}\n"
	"s = \"\"\"\n"
	"config = {'in': 'a string'}\"\"\"\n"                      /* 20 */
	"config = {\n"
	"    'wow': {'url': 'http://10.0.0.5:9001',  # the main one\n"
	"            'vod_be': {'key': r'k', 'secret': 's' \"2\", 'num': '20'},\n"
	"           },\n"
	"}\n"                                                       /* 25 */
	"print(config)\n"
	"def main():\n"
	"    config['x'] = 1\n"
	"if __name__ == '__main__':\n"
	"    sys.exit(main())\n";                                   /* 30 */

static struct pyliteral *find_ok(const char *text, unsigned want_line)
{
	struct pyliteral *v = NULL;
	struct pyliteral_error err;
	unsigned line = 0;
	enum pyliteral_result r = pyliteral_find(text, strlen(text), "config", &v, &line, &err);

	if (r != PYLITERAL_OK)
		print_message("unexpected error %d at line %u: %s\n", r, err.line, err.msg);
	assert_int_equal(r, PYLITERAL_OK);
	assert_int_equal(line, want_line);
	return v;
}

static void test_find_among_code(void **state)
{
	struct pyliteral *v = find_ok(MODULE, 21), *wow, *vod;

	assert_int_equal(v->kind, PYLITERAL_DICT);
	assert_int_equal(v->line, 21);
	assert_int_equal(v->n, 1);
	assert_true(pyliteral_is_str(v->keys[0], "wow"));
	wow = v->items[0];
	assert_int_equal(wow->n, 2);
	assert_true(pyliteral_is_str(wow->items[0], "http://10.0.0.5:9001"));
	vod = wow->items[1];
	assert_int_equal(vod->line, 23);
	assert_true(pyliteral_is_str(vod->items[1], "s2"));
	pyliteral_free(v);
}

static void test_find_forms(void **state)
{
	struct pyliteral *v;

	v = find_ok("import os; config = {'a': 1}; x = 2\n", 1);
	pyliteral_free(v);
	v = find_ok("config: dict = {'a': 1}\n", 1);
	pyliteral_free(v);
	v = find_ok("config: Dict[str, dict]\nconfig = {'a': 1}\n", 2);
	pyliteral_free(v);
	v = find_ok("x = 1\nconfig = \\\n  {'a': 1}", 2);
	assert_int_equal(v->line, 3);
	pyliteral_free(v);
	v = find_ok("\xef\xbb\xbf" "config = {}\r\n\r\nprint(1)\r\n", 1);
	assert_int_equal(v->n, 0);
	pyliteral_free(v);
	v = find_ok("config == 1\nconfig = [1]\nconfig  # a bare expression\n", 2);
	assert_int_equal(v->kind, PYLITERAL_LIST);
	pyliteral_free(v);
	v = find_ok("configs = {}\nmy_config = {}\nconfig = 'x'\n", 3);
	pyliteral_free(v);
}

static void test_find_refusals(void **state)
{
	refused(true, "x = 1\n", PYLITERAL_NOT_FOUND, 0, "no top-level 'config = {...}' assignment");
	refused(true, "", PYLITERAL_NOT_FOUND, 0, NULL);
	refused(true, "def f():\n    config = {}\n", PYLITERAL_NOT_FOUND, 0, NULL);
	refused(true, "if x: config = {}\n", PYLITERAL_NOT_FOUND, 0, NULL);
	refused(true, "try:\n    from local import config\nexcept ImportError:\n    config = {}\n",
		PYLITERAL_NOT_FOUND, 0, NULL);
	refused(true, "config = {}\n\nconfig = {}\n", PYLITERAL_AMBIGUOUS, 3, "assigned again (first at line 1)");
	refused(true, "config = {}\nconfig['a'] = {}\n", PYLITERAL_AMBIGUOUS, 2, "changes 'config'");
	refused(true, "config = {}\nconfig.update(a=1)\n", PYLITERAL_AMBIGUOUS, 2, "changes 'config'");
	refused(true, "config = {}\nconfig |= x\n", PYLITERAL_AMBIGUOUS, 2, "changes 'config'");
	refused(true, "config, other = {}, {}\n", PYLITERAL_AMBIGUOUS, 1, "changes 'config'");
	refused(true, "config = dict(a=1)\n", PYLITERAL_NOT_LITERAL, 1, "function call");
	refused(true, "config = base = {}\n", PYLITERAL_NOT_LITERAL, 1, "a name");
	refused(true, "config = {\n  'a': 1,\n} | extra\n", PYLITERAL_NOT_LITERAL, 3, "('|')");
	refused(true, "config = {'a': 1} 'b'\n", PYLITERAL_SYNTAX, 1, "the end of the statement");
	refused(true, "config =\n{}\n", PYLITERAL_SYNTAX, 1, "expected a value");
	/* the rest of the module must still tokenize: Python would refuse it too */
	refused(true, "config = {}\ns = 'open\n", PYLITERAL_SYNTAX, 2, "unterminated string");
	refused(true, "f(1,\n  2\nconfig = {}\n", PYLITERAL_SYNTAX, 1, "'(' is never closed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_raw_strings),
		cmocka_unit_test(test_ints),
		cmocka_unit_test(test_constants),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_lines_and_continuations),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_refuse_non_literals),
		cmocka_unit_test(test_refuse_syntax),
		cmocka_unit_test(test_refuse_nul_and_limits),
		cmocka_unit_test(test_find_among_code),
		cmocka_unit_test(test_find_forms),
		cmocka_unit_test(test_find_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
