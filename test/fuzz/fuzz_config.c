/* fuzz_config.c - config_load on arbitrary files.
 *
 * The input is written to one fixed file per process (/tmp/sentryq-fuzz-config.<pid>/sentryq.conf)
 * and loaded. Beside it lies inc.conf, so `@include "inc.conf"` works; an input naming any other
 * include is skipped (it could name /dev/zero or a fifo and hang the fuzzer on purpose-less I/O).
 *
 * Invariants: a success has upstreams with projects, hosts and ports, and a default route that
 * exists; a failure writes a non-empty, NUL-terminated message inside the buffer that starts with
 * the file's name and does not echo a credential: a `secret`, `password` or `key` string of the
 * input (8 characters or more, appearing nowhere else in the input) never shows in it.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static char dir[64], path[96], inc[96];

static void cleanup(void)
{
	unlink(path);
	unlink(inc);
	rmdir(dir);
}

static void setup(void)
{
	FILE *f;

	if (dir[0] != '\0')
		return;
	snprintf(dir, sizeof(dir), "/tmp/sentryq-fuzz-config.%ld", (long)getpid());
	snprintf(path, sizeof(path), "%s/sentryq.conf", dir);
	snprintf(inc, sizeof(inc), "%s/inc.conf", dir);
	mkdir(dir, 0700);
	atexit(cleanup);
	f = fopen(inc, "w");
	CHECK(f != NULL);
	fputs("id = 42;\nkey = \"0123456789abcdef0123456789abcdef\";\n", f);
	fclose(f);
}

/* Only `@include "inc.conf"` (libconfig reads the file name after @include and blanks). */
static bool includes_ok(const char *s, size_t n)
{
	static const char dir_[] = "@include", want[] = "\"inc.conf\"";

	for (size_t i = 0; i + sizeof(dir_) - 1 <= n; i++) {
		if (strncasecmp(s + i, dir_, sizeof(dir_) - 1) != 0)
			continue;
		size_t j = i + sizeof(dir_) - 1;
		while (j < n && (s[j] == ' ' || s[j] == '\t'))
			j++;
		if (n - j < sizeof(want) - 1 || memcmp(s + j, want, sizeof(want) - 1) != 0)
			return false;
	}
	return true;
}

static size_t count(const char *hay, size_t n, const char *needle, size_t nl)
{
	size_t c = 0;

	for (size_t i = 0; i + nl <= n; i++)
		c += memcmp(hay + i, needle, nl) == 0;
	return c;
}

/* Every plain "..." literal right after `secret`, `password` or `key`. (Project names are DSN
 * secrets too, but upstream names are public and quoted back in messages: telling the two apart
 * needs the parser, so names are left to the unit tests.) */
static void check_no_secret(const char *in, size_t n, const char *err)
{
	static const char *const keys[] = { "secret", "password", "key" };

	for (size_t k = 0; k < 3; k++) {
		size_t kl = strlen(keys[k]);

		for (size_t i = 0; i + kl < n; i++) {
			size_t j, s, e;

			if (memcmp(in + i, keys[k], kl) != 0)
				continue;
			for (j = i + kl; j < n && (in[j] == ' ' || in[j] == '\t'); j++)
				;
			if (j >= n || (in[j] != '=' && in[j] != ':'))
				continue;
			for (j++; j < n && (in[j] == ' ' || in[j] == '\t'); j++)
				;
			if (j >= n || in[j] != '"')
				continue;
			s = j + 1;
			for (e = s; e < n && in[e] != '"' && in[e] != '\\' && in[e] != '\n'; e++)
				;
			if (e >= n || in[e] != '"' || e - s < 8 || e - s > 200)
				continue;
			char secret[256];
			memcpy(secret, in + s, e - s);
			secret[e - s] = '\0';
			/* Not a secret for this check: the same text elsewhere (a key name, a route) may
			 * legitimately be quoted back, and the path is always in the message. */
			if (count(in, n, secret, e - s) != 1 || strstr(path, secret) != NULL)
				continue;
			if (strstr(err, secret) != NULL) {
				fprintf(stderr, "FUZZ: error message echoes the secret [%s]: %s\n", secret, err);
				abort();
			}
		}
	}
}

static void check_config(const struct config *c)
{
	CHECK(c->nupstreams >= 1 && c->upstreams != NULL);
	CHECK(c->listen_address != NULL && c->listen_port >= 1 && c->listen_port <= 65535);
	CHECK(c->redis_host != NULL && c->redis_prefix != NULL && c->log_level != NULL);
	CHECK(c->tunnel_path != NULL && (c->tunnel_path[0] == '\0' || c->tunnel_path[0] == '/'));
	for (size_t i = 0; i < c->nupstreams; i++) {
		const struct config_upstream *u = &c->upstreams[i];

		CHECK(u->name != NULL && u->name[0] != '\0' && u->url != NULL);
		CHECK(u->host != NULL && u->host[0] != '\0' && u->path_prefix != NULL);
		CHECK(u->port >= 1 && u->port <= 65535);
		CHECK(u->nprojects >= 1 && u->projects != NULL);
		CHECK(config_upstream_by_name(c, u->name) != NULL);
		for (size_t j = 0; j < u->nprojects; j++) {
			const struct config_project *p = &u->projects[j];

			CHECK(p->name != NULL && p->key != NULL && strlen(p->key) < 128);
			CHECK(p->secret == NULL || strlen(p->secret) < 128);
			CHECK(p->id >= 1);
			CHECK(config_project_by_name(u, p->name) == p);
		}
	}
	CHECK((c->default_upstream == NULL) == (c->default_project == NULL));
	if (c->default_upstream != NULL)
		CHECK(config_project_by_name(config_upstream_by_name(c, c->default_upstream), c->default_project) !=
		      NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct config *c;
	FILE *f;

	setup();
	if (!includes_ok((const char *)data, size))
		return 0;
	f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fwrite(data, 1, size, f) == size);
	CHECK(fclose(f) == 0);

	memset(err, 'x', sizeof(err));
	c = config_load(path, err, sizeof(err));
	if (c != NULL) {
		check_config(c);
		config_free(c);
		return 0;
	}
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	CHECK(err[0] != '\0');
	CHECK(strncmp(err, dir, strlen(dir)) == 0);
	check_no_secret((const char *)data, size, err);

	/* A small buffer truncates the message and still terminates it; no buffer is allowed.
	 * (Two more loads: for one input in eight, picked by its bytes.) */
	if (size == 0 || ((data[size / 2] ^ data[size - 1]) & 7) != 0)
		return 0;
	char small[8];
	memset(small, 'x', sizeof(small));
	CHECK(config_load(path, small, sizeof(small)) == NULL);
	CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	CHECK(config_load(path, NULL, 0) == NULL);
	return 0;
}
