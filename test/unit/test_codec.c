/* test_codec.c - round trips, corrupt input, caps (gzip bomb) and prefix reads for every codec. */
#define ZLIB_CONST
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>
#include <zstd.h>

#include "codec.h"

#define MIB (1024 * 1024)

static const enum codec_kind coded[] = { CODEC_GZIP, CODEC_DEFLATE, CODEC_BR, CODEC_ZSTD };
#define NCODED (sizeof(coded) / sizeof(coded[0]))

static uint64_t rnd_state = 0x1234567887654321ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Compressible JSON-ish lines with varying numbers, like a real event body. */
static char *make_text(size_t n)
{
	char *b = malloc(n + 1);
	size_t i = 0;

	assert_non_null(b);
	while (i < n) {
		char line[96];
		int k = snprintf(line, sizeof(line), "{\"frame\":%llu,\"fn\":\"handler_%u\"}\n",
				 (unsigned long long)(rnd() % 100000), (unsigned)(rnd() % 50));
		for (int j = 0; j < k && i < n; j++)
			b[i++] = line[j];
	}
	b[n] = '\0';
	return b;
}

static char *make_random(size_t n)
{
	char *b = malloc(n ? n : 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)(rnd() >> 24);
	return b;
}

static void encode(enum codec_kind k, const char *in, size_t n, char **out, size_t *outlen)
{
	assert_int_equal(codec_encode(k, in, n, out, outlen), CODEC_OK);
	assert_non_null(*out);
}

static void test_from_name(void **state)
{
	static const struct { const char *name; enum codec_kind kind; } t[] = {
		{ "", CODEC_IDENTITY }, { "identity", CODEC_IDENTITY }, { "IDENTITY", CODEC_IDENTITY },
		{ "UTF-8", CODEC_IDENTITY }, { "utf-8", CODEC_IDENTITY }, { "gzip", CODEC_GZIP },
		{ "GZip", CODEC_GZIP }, { "x-gzip", CODEC_GZIP }, { "X-GZIP", CODEC_GZIP },
		{ " gzip ", CODEC_GZIP }, { "deflate", CODEC_DEFLATE }, { "Deflate", CODEC_DEFLATE },
		{ "br", CODEC_BR }, { "BR", CODEC_BR }, { "zstd", CODEC_ZSTD }, { "ZStd", CODEC_ZSTD },
		{ "compress", CODEC_UNKNOWN }, { "gzip, br", CODEC_UNKNOWN }, { "gz", CODEC_UNKNOWN },
		{ "gzipx", CODEC_UNKNOWN }, { "xz", CODEC_UNKNOWN },
		{ "gzip                              x", CODEC_UNKNOWN },
	};
	assert_int_equal(codec_from_name(NULL), CODEC_IDENTITY);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (codec_from_name(t[i].name) != t[i].kind)
			fail_msg("codec_from_name(\"%s\")", t[i].name);
	}
}

/* Encode, decode with the exact cap (ok) and one byte less (-2). */
static void roundtrip(enum codec_kind k, const char *in, size_t n)
{
	char *enc, *dec;
	size_t elen, dlen;

	encode(k, in, n, &enc, &elen);
	assert_int_equal(codec_decode(k, enc, elen, n, CODEC_WHOLE, &dec, &dlen), CODEC_OK);
	assert_int_equal(dlen, n);
	assert_true(n == 0 || memcmp(dec, in, n) == 0);
	assert_int_equal(dec[dlen], '\0');
	free(dec);
	if (n > 0)
		assert_int_equal(codec_decode(k, enc, elen, n - 1, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
	free(enc);
}

static void test_roundtrip_all(void **state)
{
	char *text = make_text(MIB), *noise = make_random(MIB);

	for (enum codec_kind k = CODEC_IDENTITY; k < CODEC_UNKNOWN; k++) {
		roundtrip(k, "", 0);
		roundtrip(k, "hello\nworld \xe4\xb8\xad\n", 15);
		roundtrip(k, text, MIB);
		roundtrip(k, noise, MIB);
	}
	free(text);
	free(noise);
}

static void expect_corrupt(enum codec_kind k, const char *in, size_t n)
{
	char *dec = NULL;
	size_t dlen;

	if (codec_decode(k, in, n, MIB, CODEC_WHOLE, &dec, &dlen) != CODEC_CORRUPT)
		fail_msg("codec %d: corrupt input of %zu bytes accepted", (int)k, n);
	assert_null(dec);
}

static void test_corrupt(void **state)
{
	static const char junk[] = "definitely {not} compressed data, just text";
	char *text = make_text(64 * 1024);

	for (size_t i = 0; i < NCODED; i++) {
		char *enc, *tail;
		size_t elen;
		encode(coded[i], text, 64 * 1024, &enc, &elen);
		expect_corrupt(coded[i], enc, elen / 2);                /* truncated */
		expect_corrupt(coded[i], enc, elen - 1);
		expect_corrupt(coded[i], "", 0);
		expect_corrupt(coded[i], junk, sizeof(junk) - 1);
		tail = malloc(elen + 3);
		memcpy(tail, enc, elen);
		memcpy(tail + elen, "xyz", 3);
		expect_corrupt(coded[i], tail, elen + 3);               /* trailing garbage */
		if (coded[i] == CODEC_GZIP || coded[i] == CODEC_DEFLATE) {
			tail[elen / 2] ^= 0x55;                          /* caught by crc/adler */
			expect_corrupt(coded[i], tail, elen);
		}
		free(tail);
		free(enc);
	}
	free(text);
}

static void test_deflate_raw_fallback(void **state)
{
	const char *msg = "{\"event_id\":\"0123456789abcdef0123456789abcdef\"}\n{\"type\":\"event\"}\n{}";
	unsigned char raw[512];
	z_stream z;
	char *dec;
	size_t dlen;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (const Bytef *)msg;
	z.avail_in = (uInt)strlen(msg);
	z.next_out = raw;
	z.avail_out = sizeof(raw);
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(codec_decode(CODEC_DEFLATE, (char *)raw, z.total_out, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_OK);
	assert_int_equal(dlen, strlen(msg));
	assert_memory_equal(dec, msg, dlen);
	free(dec);
	/* raw deflate is not gzip */
	assert_int_equal(codec_decode(CODEC_GZIP, (char *)raw, z.total_out, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_CORRUPT);
	deflateEnd(&z);
}

/* Concatenated gzip members (RFC 1952) and zstd frames decode to the concatenation. */
static void test_multi_member(void **state)
{
	static const enum codec_kind kinds[] = { CODEC_GZIP, CODEC_ZSTD };

	for (size_t i = 0; i < 2; i++) {
		char *a, *b, *dec;
		size_t alen, blen, dlen;
		encode(kinds[i], "first\n", 6, &a, &alen);
		encode(kinds[i], "second", 6, &b, &blen);
		a = realloc(a, alen + blen);
		memcpy(a + alen, b, blen);
		assert_int_equal(codec_decode(kinds[i], a, alen + blen, 100, CODEC_WHOLE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, 12);
		assert_memory_equal(dec, "first\nsecond", 12);
		free(dec);
		free(a);
		free(b);
	}
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* 100 MiB of zeros, deflated 1 MiB at a time so the test itself stays small. */
static char *gzip_bomb(size_t *len)
{
	size_t cap = 256 * 1024;
	char *zeros = calloc(1, MIB), *out = malloc(cap);
	z_stream z;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	for (int i = 0; i < 100; i++) {
		z.next_in = (const Bytef *)zeros;
		z.avail_in = MIB;
		assert_int_equal(deflate(&z, i == 99 ? Z_FINISH : Z_NO_FLUSH), i == 99 ? Z_STREAM_END : Z_OK);
		assert_int_equal(z.avail_in, 0);
	}
	*len = z.total_out;
	deflateEnd(&z);
	free(zeros);
	return out;
}

static void test_gzip_bomb(void **state)
{
	size_t blen, dlen;
	char *bomb = gzip_bomb(&blen), *dec = NULL;
	long before = maxrss_kb();

	assert_true(blen < 256 * 1024);
	assert_int_equal(codec_decode(CODEC_GZIP, bomb, blen, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
	assert_null(dec);
	/* Decoding all 100 MiB would have touched 100 MiB; the cap keeps it near 2 MiB. */
	assert_true(maxrss_kb() - before < 32 * 1024);
	/* prefix mode without a newline stops at the cap, successfully */
	assert_int_equal(codec_decode(CODEC_GZIP, bomb, blen, 1000, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
	assert_int_equal(dlen, 1000);
	free(dec);
	free(bomb);
}

static void test_bomb_br_zstd(void **state)
{
	static const enum codec_kind kinds[] = { CODEC_BR, CODEC_ZSTD, CODEC_DEFLATE };
	char *zeros = calloc(1, 16 * MIB);

	for (size_t i = 0; i < 3; i++) {
		char *enc, *dec = NULL;
		size_t elen, dlen;
		encode(kinds[i], zeros, 16 * MIB, &enc, &elen);
		assert_true(elen < 64 * 1024);
		assert_int_equal(codec_decode(kinds[i], enc, elen, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
		assert_null(dec);
		free(enc);
	}
	free(zeros);
}

/*
 * 512 KiB in a frame that asks for a 32 MiB window: the output fits a 1 MiB cap, but the
 * window it would make us allocate does not; with a 64 MiB cap it is fine.
 */
static void test_zstd_window_cap(void **state)
{
	size_t n = 512 * 1024, cap = ZSTD_compressBound(n), dlen;
	char *text = make_text(n), *enc = malloc(cap), *dec;
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_inBuffer in = { text, n, 0 };
	ZSTD_outBuffer out = { enc, cap, 0 };

	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 25)));
	/* continue then end: the encoder never learns the size, so the window stays 32 MiB */
	assert_false(ZSTD_isError(ZSTD_compressStream2(c, &out, &in, ZSTD_e_continue)));
	assert_int_equal(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0);
	assert_int_equal(codec_decode(CODEC_ZSTD, enc, out.pos, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
	assert_int_equal(codec_decode(CODEC_ZSTD, enc, out.pos, 64 * MIB, CODEC_WHOLE, &dec, &dlen), CODEC_OK);
	assert_int_equal(dlen, n);
	assert_memory_equal(dec, text, n);
	free(dec);
	ZSTD_freeCCtx(c);
	free(enc);
	free(text);
}

/* An envelope: short header line, then 2 MiB of items. */
static char *make_envelope(size_t *len, size_t *hlen)
{
	static const char hdr[] = "{\"event_id\":\"bf1d1a926b6b4d8cab9bbcc3943093b2\","
		"\"dsn\":\"http://wow@127.0.0.1:29517/1\"}\n";
	size_t n = 2 * MIB;
	char *b = make_text(n);

	memcpy(b, hdr, sizeof(hdr) - 1);
	*len = n;
	*hlen = sizeof(hdr) - 2;
	return b;
}

static void test_prefix_only(void **state)
{
	size_t len, hlen;
	char *env = make_envelope(&len, &hlen);

	for (enum codec_kind k = CODEC_IDENTITY; k < CODEC_UNKNOWN; k++) {
		char *enc, *dec;
		size_t elen, dlen;
		encode(k, env, len, &enc, &elen);
		assert_int_equal(codec_decode(k, enc, elen, 4 * MIB, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, hlen + 1);
		assert_memory_equal(dec, env, hlen + 1);
		free(dec);
		/* the full decode of the same input is still capped */
		assert_int_equal(codec_decode(k, enc, elen, MIB, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
		/* truncated input: success, the header line came out before the cut */
		assert_int_equal(codec_decode(k, enc, elen / 2, 4 * MIB, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, hlen + 1);
		free(dec);
		free(enc);
	}
	free(env);
}

static void test_prefix_no_newline(void **state)
{
	char *noise = make_random(100000), *enc, *dec;
	size_t elen, dlen;

	for (size_t i = 0; i < 100000; i++)
		if (noise[i] == '\n')
			noise[i] = ' ';
	for (enum codec_kind k = CODEC_IDENTITY; k < CODEC_UNKNOWN; k++) {
		encode(k, noise, 100000, &enc, &elen);
		assert_int_equal(codec_decode(k, enc, elen, 1000, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, 1000);
		assert_memory_equal(dec, noise, 1000);
		free(dec);
		/* header-only body: the whole output, no newline needed */
		assert_int_equal(codec_decode(k, enc, elen, MIB, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, 100000);
		free(dec);
		assert_int_equal(codec_decode(k, enc, elen, 0, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
		assert_int_equal(dlen, 0);
		free(dec);
		free(enc);
	}
	free(noise);
}

static void test_identity_caps(void **state)
{
	char *dec;
	size_t dlen;

	assert_int_equal(codec_decode(CODEC_IDENTITY, "abc\ndef", 7, 6, CODEC_WHOLE, &dec, &dlen), CODEC_TOO_LARGE);
	assert_int_equal(codec_decode(CODEC_IDENTITY, "abc\ndef", 7, 7, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
	assert_int_equal(dlen, 4);
	assert_string_equal(dec, "abc\n");
	free(dec);
	assert_int_equal(codec_decode(CODEC_IDENTITY, "abcdef", 6, 3, CODEC_FIRST_LINE, &dec, &dlen), CODEC_OK);
	assert_string_equal(dec, "abc");
	free(dec);
}

static void test_measure(void **state)
{
	const enum codec_kind kinds[] = { CODEC_GZIP, CODEC_DEFLATE, CODEC_BR, CODEC_ZSTD };
	size_t big = 8 * 1024 * 1024, elen, size = 0;
	char *zeros = calloc(1, big), *enc = NULL;

	(void)state;
	assert_non_null(zeros);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		assert_int_equal(codec_encode(kinds[i], zeros, big, &enc, &elen), CODEC_OK);
		/* Exact size when it fits, -2 (the 413 case) when it inflates past the limit. */
		assert_int_equal(codec_measure(kinds[i], enc, elen, big, &size), CODEC_OK);
		assert_int_equal(size, big);
		assert_int_equal(codec_measure(kinds[i], enc, elen, big - 1, &size), CODEC_TOO_LARGE);
		assert_int_equal(codec_measure(kinds[i], enc, elen / 2, big, &size), CODEC_CORRUPT);
		free(enc);
	}
	assert_int_equal(codec_measure(CODEC_IDENTITY, "abc", 3, 3, &size), CODEC_OK);
	assert_int_equal(size, 3);
	assert_int_equal(codec_measure(CODEC_IDENTITY, "abc", 3, 2, &size), CODEC_TOO_LARGE);
	free(zeros);
}

static void test_unknown_kind(void **state)
{
	char *out = NULL;
	size_t n;

	assert_int_equal(codec_decode(CODEC_UNKNOWN, "x", 1, 10, CODEC_WHOLE, &out, &n), CODEC_CORRUPT);
	assert_int_equal(codec_encode(CODEC_UNKNOWN, "x", 1, &out, &n), CODEC_CORRUPT);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_name),
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_deflate_raw_fallback),
		cmocka_unit_test(test_multi_member),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_bomb_br_zstd),
		cmocka_unit_test(test_zstd_window_cap),
		cmocka_unit_test(test_prefix_only),
		cmocka_unit_test(test_prefix_no_newline),
		cmocka_unit_test(test_identity_caps),
		cmocka_unit_test(test_measure),
		cmocka_unit_test(test_unknown_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
