/* fuzz_auth.c - auth_from_request over every carrier, and the three rewrites.
 *
 * Input: one flags byte, then up to five parts separated by '\n' (a header value cannot hold one):
 *   X-Sentry-Auth \n Authorization \n query \n new key \n new secret
 * flags: bit 0 X-Sentry-Auth present, bit 1 Authorization present, bit 2 query present (absent
 * carriers are NULL), bit 3 none_ok, bit 4 drop the secret (new_secret NULL). The new key and secret
 * are what a configuration may hold: config_load decides (on a one-project file written per
 * process); a pair it refuses is replaced by a fixed valid one.
 *
 * Invariants: a success has a valid key and a bounded version; a failure says 400 or 401 with a
 * message; the rewrite of the carrier that was used parses back, alone, as the same carrier with
 * the new key (and the new secret where one was sent, none when it was dropped).
 */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "fuzz.h"

#define DEFAULT_KEY "0123456789abcdef0123456789abcdef"
#define DEFAULT_SECRET "fedcba9876543210fedcba9876543210"

/* A libconfig string literal of v (printable ASCII only: the caller checked). */
static void put_string(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

static char path[64];

static void remove_file(void)
{
	unlink(path);
}

/* Would config_load take this key and secret for a project? The rewrite must carry anything it does. */
static bool config_accepts(const char *key, const char *secret)
{
	struct config *c;
	bool ok;
	FILE *f;

	for (const char *p = key; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	for (const char *p = secret; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/tmp/sentryq-fuzz-auth.%ld.conf", (long)getpid());
		atexit(remove_file);
	}
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("upstreams = ( { name = \"up\"; url = \"http://h\";\n projects = ( { name = \"p\"; id = 1; key = ", f);
	put_string(f, key);
	fputs("; secret = ", f);
	put_string(f, secret);
	fputs("; } ); } );\n", f);
	CHECK(fclose(f) == 0);
	c = config_load(path, NULL, 0);
	ok = c != NULL;
	config_free(c);
	return ok;
}

static void check_info(const struct auth_info *a)
{
	CHECK(a->key[0] != '\0');
	CHECK(memchr(a->key, '\0', sizeof(a->key)) != NULL);
	CHECK(memchr(a->secret, '\0', sizeof(a->secret)) != NULL);
	for (const char *p = a->key; *p; p++)
		CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
	CHECK(a->has_secret == (a->secret[0] != '\0'));
	CHECK(a->version >= 0 && a->version <= 7);
}

/* The rewritten carrier, parsed on its own, names the new credentials. */
static void check_reparse(const char *xsa, const char *authz, const char *query, enum auth_carrier want,
			  const struct auth_info *orig, const char *nk, const char *ns)
{
	struct auth_info a;
	const char *why = NULL;
	int status = 0;

	if (auth_from_request(xsa, authz, query, false, &a, &status, &why) != 0) {
		fprintf(stderr, "FUZZ: rewritten carrier does not parse (%d %s): xsa=[%s] authz=[%s] query=[%s]\n",
			status, why, xsa ? xsa : "(null)", authz ? authz : "(null)", query ? query : "(null)");
		abort();
	}
	check_info(&a);
	CHECK(a.carrier == want);
	if (strcmp(a.key, nk) != 0) {
		fprintf(stderr, "FUZZ: rewritten key [%s], wanted [%s]: xsa=[%s] authz=[%s] query=[%s]\n", a.key, nk,
			xsa ? xsa : "(null)", authz ? authz : "(null)", query ? query : "(null)");
		abort();
	}
	if (ns == NULL)
		CHECK(a.secret[0] == '\0');
	else if (orig->has_secret || want == AUTH_BASIC)
		CHECK(strcmp(a.secret, ns) == 0);
	else
		CHECK(a.secret[0] == '\0' || strcmp(a.secret, ns) == 0);
	if (want != AUTH_BASIC)
		CHECK(a.version == orig->version);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *part[5] = { NULL };
	struct auth_info info;
	const char *why = NULL, *xsa, *authz, *query, *nk, *ns;
	int status = 0, rc;
	unsigned flags;

	if (size < 1)
		return 0;
	flags = data[0];
	buf = malloc(size);
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	/* Split on '\n'; an embedded NUL just ends that part early, as in a C string. */
	for (size_t i = 0, p = 0; i < 5; i++) {
		part[i] = buf + p;
		char *nl = memchr(buf + p, '\n', size - 1 - p);
		if (nl == NULL) {
			for (size_t j = i + 1; j < 5; j++)
				part[j] = buf + size - 1;  /* "" */
			break;
		}
		*nl = '\0';
		p = (size_t)(nl - buf) + 1;
	}
	xsa = (flags & 1) ? part[0] : NULL;
	authz = (flags & 2) ? part[1] : NULL;
	query = (flags & 4) ? part[2] : NULL;
	nk = DEFAULT_KEY;
	ns = DEFAULT_SECRET;
	if ((part[3][0] != '\0' || part[4][0] != '\0') &&
	    config_accepts(part[3][0] ? part[3] : DEFAULT_KEY, part[4][0] ? part[4] : DEFAULT_SECRET)) {
		nk = part[3][0] ? part[3] : DEFAULT_KEY;
		ns = part[4][0] ? part[4] : DEFAULT_SECRET;
	}
	if (flags & 16)
		ns = NULL;

	rc = auth_from_request(xsa, authz, query, (flags & 8) != 0, &info, &status, &why);
	if (rc != 0) {
		CHECK(rc == -1);
		CHECK(status == 400 || status == 401);
		CHECK(why != NULL && why[0] != '\0' && strlen(why) < 100);
		free(buf);
		return 0;
	}
	if (info.carrier == AUTH_NONE) {
		CHECK(flags & 8);
		free(buf);
		return 0;
	}
	check_info(&info);

	/* Every rewrite runs on what it can take; the carrier that was used must come back right. */
	char *rx = xsa ? auth_rewrite_header(xsa, nk, ns) : NULL;
	char *ra = authz ? auth_rewrite_header(authz, nk, ns) : NULL;
	char *rq = query ? auth_rewrite_query(query, nk, ns) : NULL;
	char *rb = auth_rewrite_basic(nk, ns);

	CHECK(rb != NULL && (xsa == NULL || rx != NULL) && (authz == NULL || ra != NULL) &&
	      (query == NULL || rq != NULL));
	switch (info.carrier) {
	case AUTH_X_SENTRY_AUTH:
		check_reparse(rx, NULL, NULL, AUTH_X_SENTRY_AUTH, &info, nk, ns);
		break;
	case AUTH_AUTHORIZATION:
		check_reparse(NULL, ra, NULL, AUTH_AUTHORIZATION, &info, nk, ns);
		break;
	case AUTH_BASIC:
		check_reparse(NULL, rb, NULL, AUTH_BASIC, &info, nk, ns);
		break;
	case AUTH_QUERY:
		check_reparse(NULL, NULL, rq, AUTH_QUERY, &info, nk, ns);
		break;
	default:
		CHECK(!"unexpected carrier");
	}
	free(rx);
	free(ra);
	free(rq);
	free(rb);
	free(buf);
	return 0;
}
