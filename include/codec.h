/* codec.h - Content-Encoding decode/encode with output caps (a gzip bomb stops at the cap). */
#ifndef SENTRYQ_CODEC_H
#define SENTRYQ_CODEC_H

#include <stddef.h>

enum codec_kind {
	CODEC_IDENTITY = 0,
	CODEC_GZIP,      /* gzip, x-gzip */
	CODEC_DEFLATE,   /* zlib wrapper (RFC 1950); raw deflate accepted on decode as a fallback */
	CODEC_BR,        /* brotli */
	CODEC_ZSTD,
	CODEC_UNKNOWN,
};

/* Map a Content-Encoding value: NULL, "", "identity" and "UTF-8" mean identity (Sentry does so). */
enum codec_kind codec_from_name(const char *content_encoding);

/*
 * Decode in[0..inlen) into a malloc'd buffer. Returns 0 with *out, *outlen set, -1 when the
 * data is corrupt, -2 when the output would exceed max_out (the caller answers 413).
 * If prefix_only is non-zero, stop successfully once the output holds a '\n' or
 * max_out bytes (used to read just an envelope header line).
 */
int codec_decode(enum codec_kind kind, const char *in, size_t inlen, size_t max_out,
		 int prefix_only, char **out, size_t *outlen);

/*
 * Decoded size without keeping the output (a 64 KiB scratch window): 0 with *size, -1 corrupt,
 * -2 larger than max_out. How ingest enforces per-endpoint limits on compressed bodies.
 */
int codec_measure(enum codec_kind kind, const char *in, size_t inlen, size_t max_out, size_t *size);

/* Encode in the same format. 0 / -1. */
int codec_encode(enum codec_kind kind, const char *in, size_t inlen, char **out, size_t *outlen);

#endif
