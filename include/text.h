/* text.h - the small decoders several parsers share: hex digits, base64, host names and ports
 * (pure). */
#ifndef SENTRYQ_TEXT_H
#define SENTRYQ_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* 0..15 for a hex digit (either case), -1 otherwise. */
int text_hexval(int c);

enum text_result {
	TEXT_OK = 0,
	TEXT_MALFORMED,
	TEXT_TOO_LONG,       /* the output does not fit in cap bytes */
};

/* Base64, standard or URL alphabet, padding and trailing white space optional. */
enum text_result text_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen);

/* A host name (letters, digits, ".-_") or, bracketed, the inside of an IPv6 literal, 1..253
 * bytes. */
bool text_host_ok(const char *h, size_t n, bool bracketed);
/* Decimal 1..65535 filling [p, end) exactly; 0 when not. */
int text_port(const char *p, const char *end);

#endif
