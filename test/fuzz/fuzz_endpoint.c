/* fuzz_endpoint.c - endpoint_normalise, then endpoint_match on the built-in table.
 *
 * Input: one byte choosing the output size of endpoint_normalise (its real ENDPOINT_PATH_MAX most of
 * the time, small sizes to try the truncation), then the request path (up to a NUL).
 *
 * Invariants: the normalised path is the input with runs of '/' collapsed (a prefix of that when
 * truncated), NUL-terminated inside the buffer, without "//". A match has an endpoint of the table,
 * a project id in 1..2^63-1 equal to the digits of the last "/api/<digits>/", and an endpoint as
 * stored that is the path after "/api/<id>/" with the {key} segment, and only it, replaced: the
 * key itself is not in the stored form. No match leaves path_key and stored empty.
 */
#include <stdbool.h>
#include <string.h>

#include "endpoint.h"
#include "fuzz.h"

/* Collapse runs of '/' without a length limit: what endpoint_normalise must produce (a prefix of). */
static size_t collapse(const char *in, char *out)
{
	size_t n = 0;

	for (; *in; in++)
		if (!(*in == '/' && n > 0 && out[n - 1] == '/'))
			out[n++] = *in;
	out[n] = '\0';
	return n;
}

/* The last "/api/<digit>" of path: where the id starts, NULL when none. */
static const char *last_api(const char *path)
{
	const char *p = NULL;

	/* += 4: the '/' that ends one "/api/" can start the next ("/api/api/3/"). */
	for (const char *s = path; (s = strstr(s, "/api/")) != NULL; s += 4)
		if (s[5] >= '0' && s[5] <= '9')
			p = s + 5;
	return p;
}

/* Segment i ('/'-separated) of s as [*b, *e); false when s has fewer. */
static bool segment(const char *s, size_t i, const char **b, const char **e)
{
	for (; i > 0; i--) {
		s = strchr(s, '/');
		if (s == NULL)
			return false;
		s++;
	}
	*b = s;
	*e = s + strcspn(s, "/");
	return true;
}

static void check_match(const char *path, const struct endpoint_match *m)
{
	const struct endpoint_table *t = endpoint_builtin();
	const char *id = last_api(path), *rest, *pat;
	unsigned long long v = 0;

	CHECK(m->ep >= t->v && m->ep < t->v + t->n);
	CHECK(m->project_id >= 1);
	CHECK(id != NULL);
	for (rest = id; *rest >= '0' && *rest <= '9'; rest++) {
		CHECK(v <= (9223372036854775807ULL - (unsigned)(*rest - '0')) / 10);
		v = v * 10 + (unsigned)(*rest - '0');
	}
	CHECK_EQ_U(v, m->project_id);
	CHECK(*rest == '/');
	rest++;
	CHECK(memchr(m->path_key, '\0', sizeof(m->path_key)) != NULL);
	CHECK(memchr(m->stored, '\0', sizeof(m->stored)) != NULL);

	pat = m->ep->pattern;
	if (strstr(pat, "{key}") == NULL) {
		CHECK(m->path_key[0] == '\0');
		CHECK(strcmp(m->stored, rest) == 0);
		return;
	}
	/* Which segment of the pattern is the key. */
	size_t ki = 0;
	for (const char *p = pat; p < strstr(pat, "{key}"); p++)
		ki += *p == '/';
	CHECK(m->path_key[0] != '\0' && strchr(m->path_key, '/') == NULL);
	for (size_t i = 0;; i++) {
		const char *sb, *se, *rb, *re;
		bool hs = segment(m->stored, i, &sb, &se), hr = segment(rest, i, &rb, &re);

		CHECK(hs == hr);
		if (!hs)
			break;
		if (i == ki) {
			/* the key's segment is "{key}" in the stored form, the key in the path */
			CHECK((size_t)(se - sb) == 5 && memcmp(sb, "{key}", 5) == 0);
			CHECK((size_t)(re - rb) == strlen(m->path_key) && memcmp(rb, m->path_key, (size_t)(re - rb)) == 0);
		} else {
			CHECK(se - sb == re - rb && memcmp(sb, rb, (size_t)(se - sb)) == 0);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[8] = { ENDPOINT_PATH_MAX, ENDPOINT_PATH_MAX, ENDPOINT_PATH_MAX, ENDPOINT_PATH_MAX,
					 1, 2, 16, 64 };
	char *in, *ref, *norm;
	size_t len, outlen, reflen;
	struct endpoint_match m;
	enum endpoint_result r;

	if (size < 1)
		return 0;
	outlen = sizes[data[0] & 7];
	in = malloc(size);
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	len = strlen(in);

	ref = malloc(len + 1);
	reflen = collapse(in, ref);
	norm = malloc(outlen);
	memset(norm, 'x', outlen);
	endpoint_normalise(in, norm, outlen);
	CHECK(memchr(norm, '\0', outlen) != NULL);
	CHECK(strstr(norm, "//") == NULL);
	if (reflen < outlen)
		CHECK(strcmp(norm, ref) == 0);
	else
		CHECK(strlen(norm) == outlen - 1 && memcmp(norm, ref, outlen - 1) == 0);
	endpoint_normalise(in, norm, 0);  /* no room: writes nothing */

	memset(&m, 0x55, sizeof(m));
	r = endpoint_match(endpoint_builtin(), norm, &m);
	CHECK(r == EP_MATCHED || r == EP_NOT_FOUND || r == EP_BAD_PROJECT_ID);
	if (r == EP_MATCHED) {
		check_match(norm, &m);
	} else {
		CHECK(m.ep == NULL && m.path_key[0] == '\0' && m.stored[0] == '\0');
		if (r == EP_BAD_PROJECT_ID)
			CHECK(last_api(norm) != NULL);
	}
	/* The matcher takes any string, normalised or not. */
	memset(&m, 0x55, sizeof(m));
	r = endpoint_match(endpoint_builtin(), in, &m);
	if (r == EP_MATCHED)
		check_match(in, &m);

	CHECK(endpoint_tunnel() != NULL && endpoint_tunnel()->kind == EP_KIND_ENVELOPE);
	free(norm);
	free(ref);
	free(in);
	return 0;
}
