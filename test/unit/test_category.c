/* test_category.c - data category names and bits, list parsing and formatting, and what each envelope
 * item type and each event counts as. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "category.h"

#define B(x) CATEGORY_BIT(CAT_##x)

/* Names as Relay spells them (relay-base-schema data_category.rs), in enum order. */
static const char *const expected_names[CAT__COUNT] = {
	"default", "error", "transaction", "security", "attachment", "attachment_item", "session", "profile",
	"profile_chunk", "profile_chunk_ui", "replay", "monitor", "span", "log_item", "log_byte", "feedback",
	"metric_bucket", "trace_metric", "uptime", "other",
};

static category_mask from_name(const char *s)
{
	return category_from_name(s, strlen(s));
}

static category_mask parse(const char *s)
{
	return category_parse(s, strlen(s));
}

static category_mask item(const char *s)
{
	return category_of_item(s, strlen(s));
}

static void test_bits_are_distinct_and_all_covers_them(void **state)
{
	category_mask seen = 0;

	(void)state;
	for (int c = 0; c < CAT__COUNT; c++) {
		assert_int_equal(seen & CATEGORY_BIT(c), 0);
		seen |= CATEGORY_BIT(c);
	}
	assert_int_equal(seen, CATEGORY_ALL);
	/* CATEGORY_ALL has no bit past the last category. */
	assert_int_equal(CATEGORY_ALL & CATEGORY_BIT(CAT__COUNT), 0);
}

static void test_every_name_round_trips(void **state)
{
	(void)state;
	for (int c = 0; c < CAT__COUNT; c++) {
		assert_string_equal(category_name((enum category)c), expected_names[c]);
		if (c == CAT_OTHER)
			continue;
		if (from_name(category_name((enum category)c)) != CATEGORY_BIT(c))
			fail_msg("category_from_name(\"%s\")", category_name((enum category)c));
	}
	/* "other" is sentryq's own bucket for unknown item types: Sentry never names it in a limit. */
	assert_int_equal(from_name("other"), 0);
	assert_string_equal(category_name((enum category)CAT__COUNT), "?");
	assert_string_equal(category_name((enum category)-1), "?");
}

static void test_unknown_and_indexed_names_are_zero(void **state)
{
	static const char *const zero[] = {
		"", "unknown", "Error", "ERROR", "error ", " error", "errors", "err", "transaction_indexed",
		"span_indexed", "profile_indexed", "log_item_indexed", "monitor_seat", "metric_second", "*",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		if (from_name(zero[i]) != 0)
			fail_msg("category_from_name(\"%s\") is not 0", zero[i]);
	/* len bounds the comparison: a prefix of a longer buffer. */
	assert_int_equal(category_from_name("errorXYZ", 5), B(ERROR));
	assert_int_equal(category_from_name("error", 4), 0);
	assert_int_equal(category_from_name("transaction_indexed", 11), B(TRANSACTION));
}

static void test_parse_lists(void **state)
{
	(void)state;
	assert_int_equal(parse(""), 0);
	assert_int_equal(parse("error"), B(ERROR));
	assert_int_equal(parse("default;error;security"), B(DEFAULT) | B(ERROR) | B(SECURITY));
	assert_int_equal(parse("default,error,security"), B(DEFAULT) | B(ERROR) | B(SECURITY));
	assert_int_equal(parse("default;error,security"), B(DEFAULT) | B(ERROR) | B(SECURITY));
	/* spaces and tabs around names */
	assert_int_equal(parse(" transaction ; \tspan\t,  log_item "), B(TRANSACTION) | B(SPAN) | B(LOG_ITEM));
	/* unknown and indexed names are skipped, the rest kept */
	assert_int_equal(parse("error;bogus;transaction_indexed;span"), B(ERROR) | B(SPAN));
	assert_int_equal(parse("bogus;nonsense"), 0);
	assert_int_equal(parse("other"), 0);
	/* empty elements and repeats */
	assert_int_equal(parse(";;error;;"), B(ERROR));
	assert_int_equal(parse(",error,,error,"), B(ERROR));
	assert_int_equal(parse(" ; , "), 0);
	/* a space inside a name is not a separator */
	assert_int_equal(parse("log item"), 0);
	/* len bounds the list */
	assert_int_equal(category_parse("error;transaction", 5), B(ERROR));
	assert_int_equal(category_parse("error;transaction", 8), B(ERROR));
	assert_int_equal(category_parse("error;transaction", 0), 0);
}

static void test_format(void **state)
{
	char buf[CATEGORY_LIST_MAX], all[CATEGORY_LIST_MAX * 2];
	size_t n;

	(void)state;
	n = category_format(B(ERROR) | B(DEFAULT) | B(SECURITY), ';', buf, sizeof(buf));
	assert_string_equal(buf, "default;error;security");  /* enum order, not bit order of the call */
	assert_int_equal(n, strlen(buf));
	n = category_format(B(ERROR) | B(DEFAULT) | B(SECURITY), ',', buf, sizeof(buf));
	assert_string_equal(buf, "default,error,security");
	assert_int_equal(n, strlen(buf));
	n = category_format(B(SPAN), ';', buf, sizeof(buf));
	assert_string_equal(buf, "span");
	assert_int_equal(n, 4);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(category_format(0, ';', buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* Every name joined fits CATEGORY_LIST_MAX, and each separator parses back. */
	n = category_format(CATEGORY_ALL, ';', all, sizeof(all));
	assert_true(n < CATEGORY_LIST_MAX);
	assert_int_equal(category_format(CATEGORY_ALL, ';', buf, sizeof(buf)), n);
	assert_string_equal(buf, all);
	assert_int_equal(parse(buf), CATEGORY_ALL & ~B(OTHER));
	assert_int_equal(category_format(CATEGORY_ALL, ',', buf, sizeof(buf)), n);
	assert_int_equal(parse(buf), CATEGORY_ALL & ~B(OTHER));
	assert_non_null(strstr(buf, "uptime,other"));
	/* Bits past the last category are not names. */
	assert_int_equal(category_format(B(ERROR) | CATEGORY_BIT(CAT__COUNT) | 0x80000000u, ';', buf, sizeof(buf)),
			 5);
	assert_string_equal(buf, "error");
}

static void test_format_truncates_at_a_whole_name(void **state)
{
	category_mask m = B(DEFAULT) | B(ERROR) | B(SECURITY);  /* "default;error;security" = 22 */
	char buf[32];

	(void)state;
	/* Room for "default;error" (13) plus NUL, not for ";security": stop after "error". */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(category_format(m, ';', buf, 14), 13);
	assert_string_equal(buf, "default;error");
	assert_int_equal(buf[14], 'x');  /* nothing written past len */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(category_format(m, ';', buf, 21), 13);
	assert_string_equal(buf, "default;error");
	assert_int_equal(category_format(m, ';', buf, 22), 13);  /* one short of the NUL */
	assert_int_equal(category_format(m, ';', buf, 23), 22);
	assert_string_equal(buf, "default;error;security");
	/* The first name does not fit: empty. */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(category_format(m, ';', buf, 7), 0);
	assert_string_equal(buf, "");
	assert_int_equal(buf[7], 'x');
	assert_int_equal(category_format(m, ';', buf, 1), 0);
	assert_string_equal(buf, "");
	/* len 0 writes nothing at all. */
	buf[0] = 'x';
	assert_int_equal(category_format(m, ';', buf, 0), 0);
	assert_int_equal(buf[0], 'x');
}

static void test_item_types(void **state)
{
	static const struct {
		const char *type;
		category_mask cats;
	} t[] = {
		{ "event", B(ERROR) | B(DEFAULT) },
		{ "transaction", B(TRANSACTION) },
		{ "security", B(SECURITY) },
		{ "raw_security", B(SECURITY) },
		{ "nel", B(SECURITY) },
		{ "attachment", B(ATTACHMENT) | B(ATTACHMENT_ITEM) },
		{ "form_data", B(ATTACHMENT) | B(ATTACHMENT_ITEM) },
		{ "session", B(SESSION) },
		{ "sessions", B(SESSION) },
		{ "profile", B(PROFILE) },
		{ "profile_chunk", B(PROFILE_CHUNK) },
		{ "replay_event", B(REPLAY) },
		{ "replay_recording", B(REPLAY) },
		{ "replay_video", B(REPLAY) },
		{ "check_in", B(MONITOR) },
		{ "log", B(LOG_ITEM) | B(LOG_BYTE) },
		{ "otel_log", B(LOG_ITEM) | B(LOG_BYTE) },
		{ "span", B(SPAN) },
		{ "otel_span", B(SPAN) },
		{ "otel_traces_data", B(SPAN) },
		{ "trace_metric", B(TRACE_METRIC) },
		{ "feedback", B(FEEDBACK) },
		{ "user_report", B(FEEDBACK) },
		{ "user_report_v2", B(FEEDBACK) },
		{ "statsd", B(METRIC_BUCKET) },
		{ "metric_buckets", B(METRIC_BUCKET) },
		{ "client_report", 0 },
		/* unknown types, and near misses of known ones */
		{ "", B(OTHER) },
		{ "unknown_future_item", B(OTHER) },
		{ "Event", B(OTHER) },
		{ "events", B(OTHER) },
		{ "client_reports", B(OTHER) },
		{ "error", B(OTHER) },      /* a category name, not an item type */
		{ "other", B(OTHER) },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (item(t[i].type) != t[i].cats)
			fail_msg("category_of_item(\"%s\") = %#x, want %#x", t[i].type, (unsigned)item(t[i].type),
				 (unsigned)t[i].cats);
	/* len bounds the type: "eventX" cut to "event", "client_report" cut short is unknown. */
	assert_int_equal(category_of_item("eventX", 5), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_item("client_report", 6), B(OTHER));
}

static void test_event(void **state)
{
	(void)state;
	assert_int_equal(category_of_event("transaction"), B(TRANSACTION));
	assert_int_equal(category_of_event(NULL), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_event("error"), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_event("default"), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_event(""), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_event("Transaction"), B(ERROR) | B(DEFAULT));
	assert_int_equal(category_of_event("transactions"), B(ERROR) | B(DEFAULT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bits_are_distinct_and_all_covers_them),
		cmocka_unit_test(test_every_name_round_trips),
		cmocka_unit_test(test_unknown_and_indexed_names_are_zero),
		cmocka_unit_test(test_parse_lists),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_truncates_at_a_whole_name),
		cmocka_unit_test(test_item_types),
		cmocka_unit_test(test_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
