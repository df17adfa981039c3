/* codec.c - Content-Encoding decode/encode (gzip, deflate, br, zstd) with a hard output cap. */
#define ZLIB_CONST
#include "codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define DEC_FIRST_PREFIX 4096          /* a header line rarely needs more */
#define DEC_FIRST_FULL   16384
#define ZSTD_WLOG_FLOOR  23            /* 8 MiB: what zstd levels <= 19 use */
#define ZSTD_WLOG_CEIL   27            /* zstd's own default limit */
#define BR_QUALITY       5             /* 11 is far too slow for a relay */
#define ZSTD_LEVEL       3

enum { DEC_MORE = 0, DEC_END, DEC_ERR, DEC_TOOBIG, DEC_RESTART };

/* One decoder; step() fills dst as far as it can and says how the stream stands. */
struct dec {
	int (*step)(struct dec *d, char *dst, size_t avail, size_t *produced);
	const char *in;
	size_t inlen;
	z_stream z;
	int z_gzip, z_raw;
	BrotliDecoderState *br;
	const uint8_t *br_in;
	size_t br_avail;
	ZSTD_DCtx *zs;
	ZSTD_inBuffer zin;
};

enum codec_kind codec_from_name(const char *name)
{
	static const struct { const char *name; enum codec_kind kind; } map[] = {
		{ "identity", CODEC_IDENTITY }, { "utf-8", CODEC_IDENTITY },
		{ "gzip", CODEC_GZIP }, { "x-gzip", CODEC_GZIP }, { "deflate", CODEC_DEFLATE },
		{ "br", CODEC_BR }, { "zstd", CODEC_ZSTD },
	};
	if (!name)
		return CODEC_IDENTITY;
	while (*name == ' ' || *name == '\t')
		name++;
	size_t n = strnlen(name, 32);
	if (n == 32)
		return CODEC_UNKNOWN; /* longer than any name, even with padding */
	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	if (n == 0)
		return CODEC_IDENTITY;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strlen(map[i].name) == n && strncasecmp(name, map[i].name, n) == 0)
			return map[i].kind;
	return CODEC_UNKNOWN;
}

/* A zlib-wrapped stream that fails before any output is retried once as raw deflate. */
static int zlib_fail(struct dec *d, int r)
{
	if (d->z_gzip || d->z_raw || d->z.total_out != 0 || (r != Z_DATA_ERROR && r != Z_NEED_DICT))
		return DEC_ERR;
	if (inflateReset2(&d->z, -MAX_WBITS) != Z_OK)
		return DEC_ERR;
	d->z_raw = 1;
	d->z.next_in = (const Bytef *)d->in;
	d->z.avail_in = (uInt)d->inlen;
	return DEC_RESTART;
}

static int zlib_step(struct dec *d, char *dst, size_t avail, size_t *produced)
{
	z_stream *z = &d->z;
	int st = DEC_MORE;

	z->next_out = (Bytef *)dst;
	z->avail_out = avail > UINT_MAX ? UINT_MAX : (uInt)avail;
	uInt start = z->avail_out;
	while (z->avail_out > 0) {
		int r = inflate(z, Z_NO_FLUSH);
		if (r == Z_OK)
			continue;
		if (r == Z_STREAM_END && z->avail_in == 0) {
			st = DEC_END;
		} else if (r == Z_STREAM_END && d->z_gzip) {
			/* RFC 1952: a gzip file is a series of members; garbage fails as a header. */
			st = inflateReset(z) == Z_OK ? DEC_MORE : DEC_ERR;
			if (st == DEC_MORE)
				continue;
		} else if (r == Z_STREAM_END || r == Z_BUF_ERROR) {
			st = DEC_ERR; /* trailing bytes, or input ended early */
		} else {
			st = zlib_fail(d, r);
		}
		break;
	}
	*produced = start - z->avail_out;
	return st;
}

static int br_step(struct dec *d, char *dst, size_t avail, size_t *produced)
{
	uint8_t *next = (uint8_t *)dst;
	size_t left = avail;
	BrotliDecoderResult r = BrotliDecoderDecompressStream(d->br, &d->br_avail, &d->br_in,
							      &left, &next, NULL);

	*produced = avail - left;
	if (r == BROTLI_DECODER_RESULT_SUCCESS)
		return d->br_avail ? DEC_ERR : DEC_END;
	return r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT ? DEC_MORE : DEC_ERR;
}

static int zstd_step(struct dec *d, char *dst, size_t avail, size_t *produced)
{
	ZSTD_outBuffer o = { dst, avail, 0 };
	int st;

	for (;;) {
		size_t in0 = d->zin.pos, out0 = o.pos;
		size_t r = ZSTD_decompressStream(d->zs, &o, &d->zin);
		if (ZSTD_isError(r)) {
			st = ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge
				? DEC_TOOBIG : DEC_ERR;
			break;
		}
		int in_done = d->zin.pos == d->zin.size;
		if (r == 0 && in_done) {
			st = DEC_END;
			break;
		}
		if (o.pos == o.size) {
			st = DEC_MORE;
			break;
		}
		/* Output room left but input gone (or no progress at all): truncated. */
		if (in_done || (d->zin.pos == in0 && o.pos == out0)) {
			st = DEC_ERR;
			break;
		}
	}
	*produced = o.pos;
	return st;
}

/* Memory the zstd frame may ask for: enough for max_out, at least what normal levels use. */
static int zstd_wlog(size_t max_out)
{
	int w = ZSTD_WLOG_FLOOR;

	while (w < ZSTD_WLOG_CEIL && ((size_t)1 << w) < max_out)
		w++;
	return w;
}

static int dec_init(struct dec *d, enum codec_kind kind, const char *in, size_t inlen,
		    size_t max_out)
{
	memset(d, 0, sizeof(*d));
	d->in = in;
	d->inlen = inlen;
	if (kind == CODEC_GZIP || kind == CODEC_DEFLATE) {
		d->step = zlib_step;
		d->z_gzip = kind == CODEC_GZIP;
		d->z.next_in = (const Bytef *)in;
		d->z.avail_in = (uInt)inlen;
		return inflateInit2(&d->z, d->z_gzip ? 16 + MAX_WBITS : MAX_WBITS) == Z_OK ? 0 : -1;
	}
	if (kind == CODEC_BR) {
		d->step = br_step;
		d->br_in = (const uint8_t *)in;
		d->br_avail = inlen;
		d->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
		return d->br ? 0 : -1;
	}
	d->step = zstd_step;
	d->zin = (ZSTD_inBuffer){ in, inlen, 0 };
	d->zs = ZSTD_createDCtx();
	if (!d->zs)
		return -1;
	return ZSTD_isError(ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax,
						   zstd_wlog(max_out))) ? -1 : 0;
}

static void dec_free(struct dec *d)
{
	if (d->step == zlib_step)
		inflateEnd(&d->z);
	if (d->br)
		BrotliDecoderDestroyInstance(d->br);
	ZSTD_freeDCtx(d->zs);
}

/* Double the buffer, never past limit; one spare byte for a NUL. */
static int grow(char **buf, size_t *cap, size_t limit)
{
	size_t ncap = *cap > limit / 2 ? limit : *cap * 2;
	char *nb = realloc(*buf, ncap + 1);

	if (!nb)
		return -1;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/*
 * The buffer may reach max_out + 1 bytes: holding that extra byte proves the output is too
 * big. In prefix mode the limit is max_out itself and reaching it is success.
 */
static int drive(struct dec *d, size_t max_out, int prefix, char **out, size_t *outlen)
{
	size_t limit = prefix ? max_out : max_out + 1;
	size_t first = prefix ? DEC_FIRST_PREFIX : DEC_FIRST_FULL;
	size_t cap = limit < first ? limit : first, len = 0;
	char *buf = malloc(cap + 1);
	int rc = -1;

	if (!buf)
		return -1;
	for (;;) {
		if (len == cap && cap == limit) {
			rc = prefix ? 0 : -2;
			break;
		}
		if (len == cap && grow(&buf, &cap, limit) < 0)
			break;
		size_t got = 0;
		int st = d->step(d, buf + len, cap - len, &got);
		const char *nl = prefix && got ? memchr(buf + len, '\n', got) : NULL;
		if (nl) {
			len = (size_t)(nl - buf) + 1;
			rc = 0;
			break;
		}
		len += got;
		if (st == DEC_RESTART)
			len = 0;
		else if (st == DEC_END)
			rc = len > max_out ? -2 : 0;
		else if (st == DEC_TOOBIG)
			rc = -2;
		if (st == DEC_END || st == DEC_TOOBIG || st == DEC_ERR)
			break;
		if (st == DEC_MORE && got == 0 && len < cap)
			break; /* no progress with room left: the decoder is stuck on bad data */
	}
	if (rc == 0) {
		buf[len] = '\0';
		*out = buf;
		*outlen = len;
	} else {
		free(buf);
	}
	return rc;
}

static int identity_decode(const char *in, size_t inlen, size_t max_out, int prefix,
			   char **out, size_t *outlen)
{
	size_t n = inlen;

	if (prefix) {
		n = inlen < max_out ? inlen : max_out;
		const char *nl = n ? memchr(in, '\n', n) : NULL;
		if (nl)
			n = (size_t)(nl - in) + 1;
	} else if (inlen > max_out) {
		return -2;
	}
	char *buf = malloc(n + 1);
	if (!buf)
		return -1;
	if (n)
		memcpy(buf, in, n);
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

int codec_decode(enum codec_kind kind, const char *in, size_t inlen, size_t max_out,
		 int prefix_only, char **out, size_t *outlen)
{
	struct dec d;
	int rc = -1;

	if (kind == CODEC_IDENTITY)
		return identity_decode(in, inlen, max_out, prefix_only, out, outlen);
	if (kind >= CODEC_UNKNOWN || inlen > UINT_MAX) /* zlib counts input in uInt */
		return -1;
	if (max_out > SIZE_MAX / 4)
		max_out = SIZE_MAX / 4;
	if (dec_init(&d, kind, in, inlen, max_out) == 0)
		rc = drive(&d, max_out, prefix_only, out, outlen);
	dec_free(&d);
	return rc;
}

/* Same loop as drive(), but the output goes to a small scratch window and is only counted. */
static int measure(struct dec *d, size_t max_out, size_t *size)
{
	char scratch[64 * 1024];
	size_t total = 0;

	for (;;) {
		size_t got = 0;
		int st = d->step(d, scratch, sizeof(scratch), &got);

		total = st == DEC_RESTART ? 0 : total + got;
		if (total > max_out || st == DEC_TOOBIG)
			return -2;
		if (st == DEC_END) {
			*size = total;
			return 0;
		}
		if (st == DEC_ERR || (st == DEC_MORE && got == 0))
			return -1;
	}
}

int codec_measure(enum codec_kind kind, const char *in, size_t inlen, size_t max_out, size_t *size)
{
	struct dec d;
	int rc = -1;

	if (kind == CODEC_IDENTITY) {
		*size = inlen;
		return inlen > max_out ? -2 : 0;
	}
	if (kind >= CODEC_UNKNOWN || inlen > UINT_MAX)
		return -1;
	if (dec_init(&d, kind, in, inlen, max_out) == 0)
		rc = measure(&d, max_out, size);
	dec_free(&d);
	return rc;
}

static int zlib_encode(int wbits, const char *in, size_t inlen, char **out, size_t *outlen)
{
	z_stream z;
	char *buf = NULL;
	int rc = -1;

	if (inlen > UINT_MAX / 2)
		return -1;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	uLong bound = deflateBound(&z, (uLong)inlen);
	buf = malloc(bound);
	if (!buf)
		goto done;
	z.next_in = (const Bytef *)in;
	z.avail_in = (uInt)inlen;
	z.next_out = (Bytef *)buf;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		goto done;
	*out = buf;
	*outlen = z.total_out;
	buf = NULL;
	rc = 0;
done:
	free(buf);
	deflateEnd(&z);
	return rc;
}

static int br_encode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	size_t bound = BrotliEncoderMaxCompressedSize(inlen);
	char *buf = bound ? malloc(bound) : NULL;

	if (!buf)
		return -1;
	if (!BrotliEncoderCompress(BR_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, inlen,
				   (const uint8_t *)in, &bound, (uint8_t *)buf)) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = bound;
	return 0;
}

static int zstd_encode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	size_t bound = ZSTD_compressBound(inlen);
	char *buf = ZSTD_isError(bound) ? NULL : malloc(bound);

	if (!buf)
		return -1;
	size_t n = ZSTD_compress(buf, bound, in, inlen, ZSTD_LEVEL);
	if (ZSTD_isError(n)) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

int codec_encode(enum codec_kind kind, const char *in, size_t inlen, char **out, size_t *outlen)
{
	if (!in)
		in = "";
	switch (kind) {
	case CODEC_IDENTITY:
		return identity_decode(in, inlen, inlen, 0, out, outlen);
	case CODEC_GZIP:
		return zlib_encode(16 + MAX_WBITS, in, inlen, out, outlen);
	case CODEC_DEFLATE:
		return zlib_encode(MAX_WBITS, in, inlen, out, outlen);
	case CODEC_BR:
		return br_encode(in, inlen, out, outlen);
	case CODEC_ZSTD:
		return zstd_encode(in, inlen, out, outlen);
	default:
		return -1;
	}
}
