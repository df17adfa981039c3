/* fuzz_codec.c - every decoder three ways (whole buffer, size only, stepwise) on the same input.
 *
 * Input: two control bytes, then the encoded data.
 *   byte 0: bits 0-2 the output cap (1 MiB down to 0, so that bombs stay cheap and the edges
 *           around the cap are tried), bit 3 also encode the data and decode it back
 *   byte 1: seed of the piece sizes the stepwise decoder is asked for
 *
 * For each codec kind: codec_decode and codec_measure agree on the result (OK / TOO_LARGE /
 * CORRUPT) and, when OK, on the size; the first-line decode is the whole decode cut after its
 * first '\n' (or at the cap); the stepwise decoder in small random pieces gives the same result
 * and the same bytes as codec_decode. (One exception, zstd_corrupt_near_cap below.)
 */
#include <stdbool.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

static const size_t caps[8] = { 1 << 20, 65536, 65537, 16384, 4096, 100, 1, 0 };

static const char *name(enum codec_result r)
{
	static const char *const n[] = { "OK", "MORE", "CORRUPT", "TOO_LARGE", "NOMEM" };

	return (unsigned)r < 5 ? n[r] : "?";
}

/*
 * zstd does not count the bytes it wrote in a call that then fails (output->pos is left as it
 * was), so a corrupt frame whose good part ends within one step of the cap comes out TOO_LARGE
 * with one step size and CORRUPT with another. Both refuse the body; only that disagreement is
 * allowed, and only when the frame does fail shortly after the cap.
 */
static bool zstd_corrupt_near_cap(enum codec_kind kind, const char *in, size_t len, size_t cap,
				  enum codec_result a, enum codec_result b)
{
	size_t size;

	if (kind != CODEC_ZSTD || !((a == CODEC_TOO_LARGE && b == CODEC_CORRUPT) ||
				    (a == CODEC_CORRUPT && b == CODEC_TOO_LARGE)))
		return false;
	return codec_measure(kind, in, len, cap + (512 << 10), &size) == CODEC_CORRUPT;
}

#define CHECK_RC(a, b, what)                                                                        \
	do {                                                                                        \
		if ((a) != (b) && !zstd_corrupt_near_cap(kind, in, len, cap, (a), (b))) {           \
			fprintf(stderr, "FUZZ: kind %d cap %zu: %s: %s != %s\n", kind, cap, what, name(a), \
				name(b));                                                           \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

/* Stepwise, into a buffer of cap + 1 bytes at most (the stream stops once it passes the cap). */
static enum codec_result stepwise(enum codec_kind kind, const char *in, size_t inlen, size_t cap, uint8_t seed,
				  char **out, size_t *outlen)
{
	struct codec_stream *s = codec_stream_new(kind, in, inlen, cap);
	struct fuzz_rng r;
	size_t room = 8192, len = 0, steps = 0;
	char *buf = malloc(room);
	enum codec_result rc;

	CHECK(s != NULL && buf != NULL);
	fuzz_rng_init(&r, seed ^ ((uint64_t)kind << 8));
	do {
		size_t want = fuzz_piece(&r, 4096), got = 12345;

		/* the stream stops once it passed the cap: never more than cap + one piece */
		CHECK(len <= cap + 4096);
		if (len + want > room) {
			room *= 2;
			buf = realloc(buf, room);
			CHECK(buf != NULL);
		}
		rc = codec_stream_next(s, buf + len, want, &got);
		CHECK(got <= want);
		len += got;
		CHECK(codec_stream_produced(s) == len);
		steps++;
	} while (rc == CODEC_MORE);
	/* Once ended, the stream stays ended. */
	if (rc == CODEC_OK) {
		size_t got = 1;

		CHECK(codec_stream_next(s, buf + len, 1, &got) == CODEC_OK && got == 0);
	}
	codec_stream_free(s);
	*out = buf;
	*outlen = len;
	return rc;
}

static void roundtrip(enum codec_kind kind, const char *in, size_t inlen)
{
	char *enc = NULL, *dec = NULL;
	size_t enclen = 0, declen = 0, size = 0;

	CHECK(codec_encode(kind, in, inlen, &enc, &enclen) == CODEC_OK);
	CHECK(codec_decode(kind, enc, enclen, inlen, CODEC_WHOLE, &dec, &declen) == CODEC_OK);
	CHECK(declen == inlen && memcmp(dec, in, inlen) == 0);
	CHECK(codec_measure(kind, enc, enclen, inlen, &size) == CODEC_OK && size == inlen);
	free(dec);
	if (inlen > 0) {
		/* One byte under the size: too large, all three ways agree. */
		CHECK(codec_decode(kind, enc, enclen, inlen - 1, CODEC_WHOLE, &dec, &declen) == CODEC_TOO_LARGE);
		CHECK(codec_measure(kind, enc, enclen, inlen - 1, &size) == CODEC_TOO_LARGE);
	}
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum codec_kind kinds[] = { CODEC_IDENTITY, CODEC_GZIP, CODEC_DEFLATE, CODEC_BR, CODEC_ZSTD };
	size_t cap, len;
	uint8_t seed;
	char *in;

	if (size < 2)
		return 0;
	cap = caps[data[0] & 7];
	seed = data[1];
	len = size - 2;
	in = malloc(len ? len : 1);  /* exact size: a read past the input is an ASan report */
	memcpy(in, data + 2, len);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		enum codec_kind kind = kinds[k];
		char *whole = NULL, *line = NULL, *step = NULL;
		size_t wlen = 0, llen = 0, slen = 0, msize = 0;
		enum codec_result wrc, lrc, mrc, src;

		wrc = codec_decode(kind, in, len, cap, CODEC_WHOLE, &whole, &wlen);
		CHECK(wrc == CODEC_OK || wrc == CODEC_CORRUPT || wrc == CODEC_TOO_LARGE);
		if (wrc == CODEC_OK)
			CHECK(wlen <= cap && whole[wlen] == '\0');

		mrc = codec_measure(kind, in, len, cap, &msize);
		CHECK_RC(mrc, wrc, "measure vs decode");
		if (wrc == CODEC_OK)
			CHECK_EQ_U(msize, wlen);

		src = stepwise(kind, in, len, cap, seed, &step, &slen);
		CHECK_RC(src, wrc, "stepwise vs decode");
		if (wrc == CODEC_OK) {
			CHECK_EQ_U(slen, wlen);
			CHECK(memcmp(step, whole, wlen) == 0);
		}
		if (wrc == CODEC_TOO_LARGE)
			CHECK(slen > cap || kind == CODEC_ZSTD);  /* zstd also says so for a window over the cap */

		/* The first line: up to and including the first '\n', or the first cap bytes. */
		lrc = codec_decode(kind, in, len, cap, CODEC_FIRST_LINE, &line, &llen);
		if (wrc == CODEC_OK) {
			const char *nl = memchr(whole, '\n', wlen);
			size_t want = nl ? (size_t)(nl - whole) + 1 : wlen;

			CHECK_RC(lrc, CODEC_OK, "first line of a good body");
			CHECK_EQ_U(llen, want);
			CHECK(memcmp(line, whole, llen) == 0 && line[llen] == '\0');
		} else if (lrc == CODEC_OK) {
			/* A body that fails later may still have a good first line: what the stepwise
			 * decoder produced before it stopped starts with it. */
			CHECK(llen <= cap && line[llen] == '\0');
			CHECK(memchr(line, '\n', llen) == NULL || memchr(line, '\n', llen) == line + llen - 1);
			if (llen <= slen)
				CHECK(memcmp(line, step, llen) == 0);
			if (wrc == CODEC_TOO_LARGE && kind != CODEC_ZSTD)
				CHECK(llen == cap || line[llen - 1] == '\n');
		} else {
			CHECK(lrc == CODEC_CORRUPT || lrc == CODEC_TOO_LARGE);
		}
		free(whole);
		free(line);
		free(step);

		if ((data[0] & 8) && len <= 4096)
			roundtrip(kind, in, len);
	}
	CHECK(codec_decode(CODEC_UNKNOWN, in, len, cap, CODEC_WHOLE, &(char *){ NULL }, &(size_t){ 0 }) ==
	      CODEC_CORRUPT);
	CHECK(codec_stream_new(CODEC_UNKNOWN, in, len, cap) == NULL);
	free(in);
	return 0;
}
