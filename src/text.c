/* text.c - hex digit values and a base64 decoder. */
#include "text.h"

#include <stdint.h>

int text_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum text_result text_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t o = 0, bits = 0;

	while (n > 0 && (is_ws(in[n - 1]) || in[n - 1] == '='))
		n--;
	for (size_t i = 0; i < n; i++) {
		int v = b64val(in[i]);

		if (v < 0)
			return TEXT_MALFORMED;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return TEXT_TOO_LONG;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (bits >= 6)  /* a lone trailing character carries no whole byte */
		return TEXT_MALFORMED;
	*outlen = o;
	return TEXT_OK;
}
