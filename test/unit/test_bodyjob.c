/* test_bodyjob.c - request bodies read in bounded steps: the same answers as reading them whole,
 * for every codec; the envelope header rewritten and encoded again, the rest byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bodyjob.h"

static const enum codec_kind kinds[] = { CODEC_IDENTITY, CODEC_GZIP, CODEC_DEFLATE, CODEC_BR, CODEC_ZSTD };

static char *encode(enum codec_kind k, const char *in, size_t n, size_t *len)
{
	char *out = NULL;

	assert_int_equal(codec_encode(k, in, n, &out, len), CODEC_OK);
	return out;
}

/* Run phase one to its end; count the steps. */
static enum bodyjob_result run(struct bodyjob *j, int *steps)
{
	enum bodyjob_result r;

	*steps = 0;
	do {
		r = bodyjob_step(j);
		(*steps)++;
	} while (r == BODYJOB_MORE && *steps < 100000);
	return r;
}

/* An envelope: a header with a dsn, an event item, a transaction and 3 MiB of attachment. */
static char *big_envelope(size_t *len)
{
	static const char head[] = "{\"event_id\":\"0123456789abcdef0123456789abcdef\",\"dsn\":\"http://wow@relay/1\"}\n"
				   "{\"type\":\"event\",\"length\":2}\n{}\n{\"type\":\"transaction\"}\n{}\n";
	size_t att = 3u << 20, n = 0;
	char *b = malloc(sizeof(head) + att + 64);

	n += (size_t)sprintf(b, "%s{\"type\":\"attachment\",\"length\":%zu}\n", head, att);
	for (size_t i = 0; i < att; i++)
		b[n++] = (char)('a' + (i * 7) % 26);
	b[n++] = '\n';
	*len = n;
	return b;
}

static void test_scan_every_codec(void **state)
{
	size_t plain_len, enc_len;
	char *plain = big_envelope(&plain_len), id[ENVELOPE_ID_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *enc = encode(kinds[i], plain, plain_len, &enc_len);
		struct bodyjob *j = bodyjob_new(EP_KIND_ENVELOPE, kinds[i], enc, enc_len, 200u << 20);
		size_t hlen;
		int steps;

		assert_int_equal(run(j, &steps), BODYJOB_DONE);
		/* Bounded work: 3 MiB of body takes several steps, not one. */
		assert_true(steps >= 3);
		assert_int_equal(bodyjob_decoded_len(j), plain_len);
		assert_int_equal(bodyjob_categories(j), envelope_categories(plain, plain_len));
		assert_true(bodyjob_categories(j) & CATEGORY_BIT(CAT_TRANSACTION));
		assert_int_equal(bodyjob_event_id(j, id), 0);
		assert_string_equal(id, "0123456789abcdef0123456789abcdef");
		assert_non_null(strstr(bodyjob_header(j, &hlen), "\"dsn\""));
		bodyjob_free(j);
		free(enc);
	}
	free(plain);
}

static void test_limit_and_corrupt(void **state)
{
	size_t plain_len, enc_len;
	char *plain = big_envelope(&plain_len), *enc = encode(CODEC_GZIP, plain, plain_len, &enc_len);
	struct bodyjob *j;
	int steps;

	(void)state;
	j = bodyjob_new(EP_KIND_ENVELOPE, CODEC_GZIP, enc, enc_len, 1u << 20);
	assert_int_equal(run(j, &steps), BODYJOB_TOO_LARGE);
	bodyjob_free(j);
	j = bodyjob_new(EP_KIND_OPAQUE, CODEC_GZIP, enc, enc_len / 2, 200u << 20);
	assert_int_equal(run(j, &steps), BODYJOB_CORRUPT);
	bodyjob_free(j);
	j = bodyjob_new(EP_KIND_OPAQUE, CODEC_IDENTITY, plain, plain_len, 1000);
	assert_int_equal(run(j, &steps), BODYJOB_TOO_LARGE);
	bodyjob_free(j);
	free(enc);
	free(plain);
}

static void test_store_bodies(void **state)
{
	static const char tx[] = "{\"type\":\"transaction\",\"event_id\":\"fedcba9876543210fedcba9876543210\"}";
	static const char err[] = "{\"message\":\"x\"}";
	char id[ENVELOPE_ID_LEN + 1], *enc;
	struct bodyjob *j;
	size_t n;
	int steps;

	(void)state;
	enc = encode(CODEC_BR, tx, sizeof(tx) - 1, &n);
	j = bodyjob_new(EP_KIND_STORE, CODEC_BR, enc, n, 1u << 20);
	assert_int_equal(run(j, &steps), BODYJOB_DONE);
	assert_int_equal(bodyjob_categories(j), CATEGORY_BIT(CAT_TRANSACTION));
	assert_int_equal(bodyjob_event_id(j, id), 0);
	assert_string_equal(id, "fedcba9876543210fedcba9876543210");
	bodyjob_free(j);
	free(enc);
	j = bodyjob_new(EP_KIND_STORE, CODEC_IDENTITY, err, sizeof(err) - 1, 1u << 20);
	assert_int_equal(run(j, &steps), BODYJOB_DONE);
	assert_int_equal(bodyjob_categories(j), CATEGORY_BIT(CAT_ERROR) | CATEGORY_BIT(CAT_DEFAULT));
	assert_int_equal(bodyjob_event_id(j, id), -1);
	bodyjob_free(j);
}

static void test_header_too_long(void **state)
{
	size_t n = ENVELOPE_HEADER_PEEK + 100;
	char *b = malloc(n + 8);
	struct bodyjob *j;
	int steps;

	(void)state;
	memset(b, ' ', n);
	b[0] = '{';
	memcpy(b + n, "}\n{}\n", 5);
	j = bodyjob_new(EP_KIND_ENVELOPE, CODEC_IDENTITY, b, n + 5, 200u << 20);
	assert_int_equal(run(j, &steps), BODYJOB_CORRUPT);
	bodyjob_free(j);
	free(b);
}

static void test_rewrite_every_codec(void **state)
{
	size_t plain_len, enc_len, out_len, dec_len, hlen = 0;
	char *plain = big_envelope(&plain_len);

	(void)state;
	while (plain[hlen] != '\n')
		hlen++;
	for (size_t i = 1; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *enc = encode(kinds[i], plain, plain_len, &enc_len), *out, *dec = NULL;
		struct bodyjob *j = bodyjob_new(EP_KIND_ENVELOPE, kinds[i], enc, enc_len, 200u << 20);
		enum bodyjob_result r;
		int steps;

		assert_int_equal(run(j, &steps), BODYJOB_DONE);
		assert_int_equal(bodyjob_rewrite_start(j, "https://realkey@sentry/20", "wow", "realkey", 100u << 20),
				 BODYJOB_MORE);
		steps = 0;
		while ((r = bodyjob_rewrite_step(j)) == BODYJOB_MORE)
			steps++;
		assert_int_equal(r, BODYJOB_DONE);
		assert_true(steps >= 2);
		out = bodyjob_rewritten(j, &out_len);
		assert_int_equal(codec_decode(kinds[i], out, out_len, 200u << 20, CODEC_WHOLE, &dec, &dec_len), CODEC_OK);
		assert_non_null(strstr(dec, "\"dsn\":\"https://realkey@sentry/20\""));
		/* Everything after the header line is what the SDK sent. */
		assert_int_equal(dec_len - (size_t)(strchr(dec, '\n') - dec), plain_len - hlen);
		assert_memory_equal(strchr(dec, '\n'), plain + hlen, plain_len - hlen);
		free(dec);
		free(out);
		bodyjob_free(j);
		free(enc);
	}
	free(plain);
}

static void test_rewrite_nothing(void **state)
{
	static const char env[] = "{\"event_id\":\"0123456789abcdef0123456789abcdef\"}\n{\"type\":\"event\"}\n{}\n";
	size_t n;
	char *enc = encode(CODEC_GZIP, env, sizeof(env) - 1, &n);
	struct bodyjob *j = bodyjob_new(EP_KIND_ENVELOPE, CODEC_GZIP, enc, n, 1u << 20);
	int steps;

	(void)state;
	assert_int_equal(run(j, &steps), BODYJOB_DONE);
	assert_int_equal(bodyjob_rewrite_start(j, "https://k@h/1", "wow", "k", 1u << 20), BODYJOB_NONE);
	bodyjob_free(j);
	free(enc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_every_codec),
		cmocka_unit_test(test_limit_and_corrupt),
		cmocka_unit_test(test_store_bodies),
		cmocka_unit_test(test_header_too_long),
		cmocka_unit_test(test_rewrite_every_codec),
		cmocka_unit_test(test_rewrite_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
