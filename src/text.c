/* text.c - hex digit values and a base64 decoder. */
#include "text.h"

#include <stdint.h>
#include <string.h>

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

bool text_host_ok(const char *h, size_t n, bool bracketed)
{
	const char *ok = bracketed ? "0123456789abcdefABCDEF:." :
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strchr(ok, h[i]) == NULL)
			return false;
	return true;
}

int text_port(const char *p, const char *end)
{
	long v = 0;

	if (p == end || end - p > 5)
		return 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535 ? (int)v : 0;
}
