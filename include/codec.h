/* codec.h - Content-Encoding decode/encode with output caps (a gzip bomb stops at the cap). */
#ifndef SENTRYQ_CODEC_H
#define SENTRYQ_CODEC_H

#include <stdbool.h>
#include <stddef.h>

enum codec_kind {
	CODEC_IDENTITY = 0,
	CODEC_GZIP,      /* gzip, x-gzip */
	CODEC_DEFLATE,   /* zlib wrapper (RFC 1950); raw deflate accepted on decode as a fallback */
	CODEC_BR,        /* brotli */
	CODEC_ZSTD,
	CODEC_UNKNOWN,
};

/* Every codec call answers with one of these. */
enum codec_result {
	CODEC_OK = 0,
	CODEC_MORE,        /* codec_stream_next: there is more to decode */
	CODEC_CORRUPT,     /* not valid data in that encoding (or an unknown encoding): 400 */
	CODEC_TOO_LARGE,   /* the output would exceed max_out: 413 */
	CODEC_NOMEM,
};

enum codec_mode {
	CODEC_WHOLE = 0,   /* the whole body */
	CODEC_FIRST_LINE,  /* stop once the output holds a '\n' or max_out bytes (an envelope header) */
};

/* Map a Content-Encoding value: NULL, "", "identity" and "UTF-8" mean identity (Sentry does so). */
enum codec_kind codec_from_name(const char *content_encoding);

/* Decode in[0..inlen) into a malloc'd, NUL-terminated buffer (*out, *outlen). */
enum codec_result codec_decode(enum codec_kind kind, const char *in, size_t inlen, size_t max_out,
			       enum codec_mode mode, char **out, size_t *outlen);
/* Decoded size without keeping the output (a 64 KiB scratch window). */
enum codec_result codec_measure(enum codec_kind kind, const char *in, size_t inlen, size_t max_out, size_t *size);
/* Encode in the same format (CODEC_OK or CODEC_NOMEM). */
enum codec_result codec_encode(enum codec_kind kind, const char *in, size_t inlen, char **out, size_t *outlen);

/* A decoder taken a piece at a time, so a caller can bound the work it does per step (identity
 * included: it hands the input out in pieces). NULL for an unknown kind or out of memory. */
struct codec_stream;
struct codec_stream *codec_stream_new(enum codec_kind kind, const char *in, size_t inlen, size_t max_out);
/* The next piece into dst[0..cap): *got bytes. CODEC_MORE while there is more, CODEC_OK at the
 * end, CODEC_TOO_LARGE once more than max_out bytes came out, CODEC_CORRUPT. */
enum codec_result codec_stream_next(struct codec_stream *s, char *dst, size_t cap, size_t *got);
/* Bytes produced so far. */
size_t codec_stream_produced(const struct codec_stream *s);
void codec_stream_free(struct codec_stream *s);

/* An encoder fed a piece at a time; the output collects in one buffer of at most max_out bytes
 * (CODEC_TOO_LARGE past it). `last` finishes the stream. */
struct codec_encoder;
struct codec_encoder *codec_encoder_new(enum codec_kind kind, size_t max_out);
enum codec_result codec_encoder_feed(struct codec_encoder *e, const char *in, size_t n, bool last);
/* The output so far (malloc'd, the caller's); the encoder keeps nothing. */
char *codec_encoder_take(struct codec_encoder *e, size_t *len);
void codec_encoder_free(struct codec_encoder *e);

#endif
