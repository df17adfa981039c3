/* codec.c - Content-Encoding decode/encode (gzip, deflate, br, zstd) with a hard output cap. */
#define ZLIB_CONST
#include "codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <limits.h>
#include <stdbool.h>
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
	/* A truncated stream answers NEEDS_MORE_INPUT even when it filled dst and has more output
	 * for the next call: it has not failed yet. Failing here made the result depend on the
	 * buffer size (fuzz_codec: codec_measure said TOO_LARGE, codec_decode CORRUPT); the next
	 * call, with room left and nothing produced, fails it. */
	if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT && left == 0)
		return DEC_MORE;
	return r == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT ? DEC_MORE : DEC_ERR;
}

static int zstd_step(struct dec *d, char *dst, size_t avail, size_t *produced)
{
	ZSTD_outBuffer o = { dst, avail, 0 };
	int st;

	for (;;) {
		size_t in0 = d->zin.pos, out0 = o.pos;
		size_t r = ZSTD_decompressStream(d->zs, &o, &d->zin);
		/* A failing call leaves o.pos where it was, though it may have written good bytes:
		 * a frame that fails just past max_out can be CORRUPT or TOO_LARGE by step size. */
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

/* ---- streaming: the one decode loop; codec_decode and codec_measure are its consumers ---- */

struct codec_stream {
	struct dec d;
	bool identity;
	size_t pos;           /* identity: bytes handed out */
	size_t produced, max_out;
	bool ended;
};

struct codec_stream *codec_stream_new(enum codec_kind kind, const char *in, size_t inlen, size_t max_out)
{
	struct codec_stream *s;

	if (kind >= CODEC_UNKNOWN || inlen > UINT_MAX) /* zlib counts input in uInt */
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->max_out = max_out > SIZE_MAX / 4 ? SIZE_MAX / 4 : max_out;
	if (kind == CODEC_IDENTITY) {
		s->identity = true;
		s->d.in = in;
		s->d.inlen = inlen;
		return s;
	}
	if (dec_init(&s->d, kind, in, inlen, s->max_out) != 0) {
		dec_free(&s->d);
		free(s);
		return NULL;
	}
	return s;
}

void codec_stream_free(struct codec_stream *s)
{
	if (s == NULL)
		return;
	if (!s->identity)
		dec_free(&s->d);
	free(s);
}

size_t codec_stream_produced(const struct codec_stream *s)
{
	return s->produced;
}

static enum codec_result identity_next(struct codec_stream *s, char *dst, size_t cap, size_t *got)
{
	size_t n = s->d.inlen - s->pos < cap ? s->d.inlen - s->pos : cap;

	memcpy(dst, s->d.in + s->pos, n);
	s->pos += n;
	*got = n;
	s->produced += n;
	if (s->produced > s->max_out)
		return CODEC_TOO_LARGE;
	return s->pos == s->d.inlen ? CODEC_OK : CODEC_MORE;
}

enum codec_result codec_stream_next(struct codec_stream *s, char *dst, size_t cap, size_t *got)
{
	int st;

	*got = 0;
	if (s->ended)
		return CODEC_OK;
	if (s->identity)
		return identity_next(s, dst, cap, got);
	do {
		st = s->d.step(&s->d, dst, cap, got);
	} while (st == DEC_RESTART);  /* zlib retried as raw deflate before producing anything */
	s->produced += *got;
	if (s->produced > s->max_out || st == DEC_TOOBIG)
		return CODEC_TOO_LARGE;
	if (st == DEC_END)
		return s->ended = true, CODEC_OK;
	if (st == DEC_ERR || (st == DEC_MORE && *got == 0 && cap > 0))
		return CODEC_CORRUPT;  /* an error, or no progress with room left: stuck on bad data */
	return CODEC_MORE;
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
 * big. For the first line the limit is max_out itself, and reaching it is success.
 */
static enum codec_result drive(struct codec_stream *s, enum codec_mode mode, char **out, size_t *outlen)
{
	bool line = mode == CODEC_FIRST_LINE;
	size_t limit = line ? s->max_out : s->max_out + 1;
	size_t first = line ? DEC_FIRST_PREFIX : DEC_FIRST_FULL;
	size_t cap = limit < first ? limit : first, len = 0;
	char *buf = malloc(cap + 1);
	enum codec_result rc;

	if (!buf)
		return CODEC_NOMEM;
	for (;;) {
		size_t got;
		const char *nl;

		if (len == cap && cap == limit) {
			rc = line ? CODEC_OK : CODEC_TOO_LARGE;
			break;
		}
		if (len == cap && grow(&buf, &cap, limit) < 0) {
			rc = CODEC_NOMEM;
			break;
		}
		rc = codec_stream_next(s, buf + len, cap - len, &got);
		nl = line && got ? memchr(buf + len, '\n', got) : NULL;
		len += got;
		if (nl != NULL) {
			len = (size_t)(nl - buf) + 1;
			rc = CODEC_OK;
			break;
		}
		if (line && rc == CODEC_TOO_LARGE)
			rc = CODEC_OK, len = len > s->max_out ? s->max_out : len;
		if (rc != CODEC_MORE)
			break;
	}
	if (rc == CODEC_OK) {
		buf[len] = '\0';
		*out = buf;
		*outlen = len;
	} else {
		free(buf);
	}
	return rc;
}

enum codec_result codec_decode(enum codec_kind kind, const char *in, size_t inlen, size_t max_out,
			       enum codec_mode mode, char **out, size_t *outlen)
{
	struct codec_stream *s = codec_stream_new(kind, in, inlen, max_out);
	enum codec_result rc;

	if (s == NULL)
		return kind >= CODEC_UNKNOWN || inlen > UINT_MAX ? CODEC_CORRUPT : CODEC_NOMEM;
	rc = drive(s, mode, out, outlen);
	codec_stream_free(s);
	return rc;
}

enum codec_result codec_measure(enum codec_kind kind, const char *in, size_t inlen, size_t max_out, size_t *size)
{
	char scratch[64 * 1024];
	struct codec_stream *s;
	enum codec_result rc;
	size_t got;

	if (kind == CODEC_IDENTITY) {
		*size = inlen;
		return inlen > max_out ? CODEC_TOO_LARGE : CODEC_OK;
	}
	if ((s = codec_stream_new(kind, in, inlen, max_out)) == NULL)
		return kind >= CODEC_UNKNOWN || inlen > UINT_MAX ? CODEC_CORRUPT : CODEC_NOMEM;
	while ((rc = codec_stream_next(s, scratch, sizeof(scratch), &got)) == CODEC_MORE)
		;
	*size = codec_stream_produced(s);
	codec_stream_free(s);
	return rc;
}

static enum codec_result zlib_encode(int wbits, const char *in, size_t inlen, char **out, size_t *outlen)
{
	z_stream z;
	char *buf = NULL;
	enum codec_result rc = CODEC_NOMEM;

	if (inlen > UINT_MAX / 2)
		return CODEC_NOMEM;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return CODEC_NOMEM;
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
	rc = CODEC_OK;
done:
	free(buf);
	deflateEnd(&z);
	return rc;
}

static enum codec_result br_encode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	size_t bound = BrotliEncoderMaxCompressedSize(inlen);
	char *buf = bound ? malloc(bound) : NULL;

	if (!buf)
		return CODEC_NOMEM;
	if (!BrotliEncoderCompress(BR_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, inlen,
				   (const uint8_t *)in, &bound, (uint8_t *)buf)) {
		free(buf);
		return CODEC_NOMEM;
	}
	*out = buf;
	*outlen = bound;
	return CODEC_OK;
}

static enum codec_result zstd_encode(const char *in, size_t inlen, char **out, size_t *outlen)
{
	size_t bound = ZSTD_compressBound(inlen);
	char *buf = ZSTD_isError(bound) ? NULL : malloc(bound);

	if (!buf)
		return CODEC_NOMEM;
	size_t n = ZSTD_compress(buf, bound, in, inlen, ZSTD_LEVEL);
	if (ZSTD_isError(n)) {
		free(buf);
		return CODEC_NOMEM;
	}
	*out = buf;
	*outlen = n;
	return CODEC_OK;
}

enum codec_result codec_encode(enum codec_kind kind, const char *in, size_t inlen, char **out, size_t *outlen)
{
	if (!in)
		in = "";
	switch (kind) {
	case CODEC_IDENTITY:
		if ((*out = malloc(inlen + 1)) == NULL)
			return CODEC_NOMEM;
		memcpy(*out, in, inlen);
		(*out)[inlen] = '\0';
		*outlen = inlen;
		return CODEC_OK;
	case CODEC_GZIP:
		return zlib_encode(16 + MAX_WBITS, in, inlen, out, outlen);
	case CODEC_DEFLATE:
		return zlib_encode(MAX_WBITS, in, inlen, out, outlen);
	case CODEC_BR:
		return br_encode(in, inlen, out, outlen);
	case CODEC_ZSTD:
		return zstd_encode(in, inlen, out, outlen);
	default:
		return CODEC_CORRUPT;
	}
}

/* ---- stepwise encoding: the output grows in one buffer, bounded ---- */

struct codec_encoder {
	enum codec_kind kind;
	z_stream z;
	BrotliEncoderState *br;
	ZSTD_CCtx *zs;
	char *out;
	size_t len, cap, max_out;
};

struct codec_encoder *codec_encoder_new(enum codec_kind kind, size_t max_out)
{
	struct codec_encoder *e = calloc(1, sizeof(*e));
	bool ok = false;

	if (e == NULL)
		return NULL;
	e->kind = kind;
	e->max_out = max_out;
	if (kind == CODEC_GZIP || kind == CODEC_DEFLATE)
		ok = deflateInit2(&e->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kind == CODEC_GZIP ? 16 + MAX_WBITS : MAX_WBITS,
				  8, Z_DEFAULT_STRATEGY) == Z_OK;
	else if (kind == CODEC_BR)
		ok = (e->br = BrotliEncoderCreateInstance(NULL, NULL, NULL)) != NULL &&
		     BrotliEncoderSetParameter(e->br, BROTLI_PARAM_QUALITY, BR_QUALITY);
	else if (kind == CODEC_ZSTD)
		ok = (e->zs = ZSTD_createCCtx()) != NULL &&
		     !ZSTD_isError(ZSTD_CCtx_setParameter(e->zs, ZSTD_c_compressionLevel, ZSTD_LEVEL));
	else
		ok = kind == CODEC_IDENTITY;
	if (!ok) {
		codec_encoder_free(e);
		return NULL;
	}
	return e;
}

/* Room for at least `want` more output bytes. */
static enum codec_result enc_room(struct codec_encoder *e, size_t want)
{
	size_t cap = e->cap ? e->cap : 64 * 1024;
	char *p;

	if (e->len + want <= e->cap)
		return CODEC_OK;
	while (cap < e->len + want)
		cap *= 2;
	if (cap > e->max_out + 64 * 1024)
		cap = e->max_out + 64 * 1024;
	if (cap < e->len + want)
		return CODEC_TOO_LARGE;
	if ((p = realloc(e->out, cap)) == NULL)
		return CODEC_NOMEM;
	e->out = p;
	e->cap = cap;
	return CODEC_OK;
}

static enum codec_result enc_zlib(struct codec_encoder *e, const char *in, size_t n, bool last)
{
	z_stream *z = &e->z;
	int r;

	z->next_in = (const Bytef *)in;
	z->avail_in = (uInt)n;
	do {
		enum codec_result room = enc_room(e, 64 * 1024);

		if (room != CODEC_OK)
			return room;
		z->next_out = (Bytef *)e->out + e->len;
		z->avail_out = (uInt)(e->cap - e->len);
		r = deflate(z, last ? Z_FINISH : Z_NO_FLUSH);
		e->len = e->cap - z->avail_out;
		if (r == Z_STREAM_ERROR)
			return CODEC_CORRUPT;
	} while (z->avail_in > 0 || (last && r != Z_STREAM_END) || z->avail_out == 0);
	return CODEC_OK;
}

static enum codec_result enc_br(struct codec_encoder *e, const char *in, size_t n, bool last)
{
	const uint8_t *next_in = (const uint8_t *)in;
	size_t avail_in = n;

	do {
		enum codec_result room = enc_room(e, 64 * 1024);
		uint8_t *next_out;
		size_t avail_out;

		if (room != CODEC_OK)
			return room;
		next_out = (uint8_t *)e->out + e->len;
		avail_out = e->cap - e->len;
		if (!BrotliEncoderCompressStream(e->br, last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS,
						 &avail_in, &next_in, &avail_out, &next_out, NULL))
			return CODEC_CORRUPT;
		e->len = e->cap - avail_out;
	} while (avail_in > 0 || BrotliEncoderHasMoreOutput(e->br) || (last && !BrotliEncoderIsFinished(e->br)));
	return CODEC_OK;
}

static enum codec_result enc_zstd(struct codec_encoder *e, const char *in, size_t n, bool last)
{
	ZSTD_inBuffer ib = { in, n, 0 };
	size_t left;

	do {
		enum codec_result room = enc_room(e, 64 * 1024);
		ZSTD_outBuffer ob;

		if (room != CODEC_OK)
			return room;
		ob = (ZSTD_outBuffer){ e->out, e->cap, e->len };
		left = ZSTD_compressStream2(e->zs, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
		e->len = ob.pos;
		if (ZSTD_isError(left))
			return CODEC_CORRUPT;
	} while (ib.pos < ib.size || (last && left != 0));
	return CODEC_OK;
}

enum codec_result codec_encoder_feed(struct codec_encoder *e, const char *in, size_t n, bool last)
{
	enum codec_result r;

	switch (e->kind) {
	case CODEC_GZIP:
	case CODEC_DEFLATE:
		r = enc_zlib(e, in, n, last);
		break;
	case CODEC_BR:
		r = enc_br(e, in, n, last);
		break;
	case CODEC_ZSTD:
		r = enc_zstd(e, in, n, last);
		break;
	default:
		if ((r = enc_room(e, n)) == CODEC_OK && n > 0) {
			memcpy(e->out + e->len, in, n);
			e->len += n;
		}
		break;
	}
	return r == CODEC_OK && e->len > e->max_out ? CODEC_TOO_LARGE : r;
}

char *codec_encoder_take(struct codec_encoder *e, size_t *len)
{
	char *out = e->out;

	*len = e->len;
	e->out = NULL;
	e->len = e->cap = 0;
	return out;
}

void codec_encoder_free(struct codec_encoder *e)
{
	if (e == NULL)
		return;
	if (e->kind == CODEC_GZIP || e->kind == CODEC_DEFLATE)
		deflateEnd(&e->z);
	if (e->br != NULL)
		BrotliEncoderDestroyInstance(e->br);
	ZSTD_freeCCtx(e->zs);
	free(e->out);
	free(e);
}
