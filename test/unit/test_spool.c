/* test_spool.c - the spool file: atomic 0600 saves, in-order loads, and every way a file can be
 * wrong (torn, damaged, not a spool, absent, an older format). Files live in a mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

#define B(x) CATEGORY_BIT(CAT_##x)
#define NOW_MS 1700000000500LL

struct dir {
	char path[64];
};

struct rec {
	const char *stream;
	struct entry e;
};

static const char body1[] = "{\"event_id\":\"0123456789abcdef0123456789abcdef\"}\n{\"type\":\"event\"}\n{}";
static const char body2[] = "\0\0\0\x01\xff\xfe\n\r\0binary";
static const char body3[] = "\xff";

static struct rec recs[] = {
	{ "sentryq:q:up:1", { "POST", "envelope/", "", "Content-Type: application/x-sentry-envelope\n", "198.51.100.1",
			      "k1", "0123456789abcdef0123456789abcdef", 1, false, B(ERROR) | B(DEFAULT), body1,
			      sizeof(body1) - 1, 1700000000001LL, 0, NULL, NULL } },
	{ "sentryq:q:up:2", { "POST", "minidump/", "a=1", "X-Sentry-Auth: Sentry sentry_key=k2, sentry_secret=s\n", "",
			      "k2", "", 2, true, B(OTHER) | B(SESSION), body2, sizeof(body2) - 1, 0, 1690000000000LL, NULL, NULL } },
	{ "sentryq:q:other:3", { "GET", "store/", "sentry_key=k3&sentry_data=x", "", "::1", "k3",
				 "fedcba9876543210fedcba9876543210", 0, false, CATEGORY_ALL, body3, 1, 5, 0, NULL, NULL } },
	{ "s", { "POST", "envelope/", "", "", "", "", "", 0, false, 0, "", 0, 7, 0, NULL, NULL } },
};
#define NRECS (sizeof(recs) / sizeof(recs[0]))

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/sentryq-spool-XXXXXX");
	if (mkdtemp(d->path) == NULL) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

/* Remove the directory and what the tests left in it (files, and empty directories). */
static int teardown(void **state)
{
	struct dir *d = *state;
	DIR *dh = opendir(d->path);
	struct dirent *de;
	int rc = 0;

	if (dh != NULL) {
		while ((de = readdir(dh)) != NULL) {
			char p[sizeof(d->path) + sizeof(de->d_name) + 2];

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, de->d_name);
			if (unlink(p) != 0 && rmdir(p) != 0)
				rc = -1;
		}
		closedir(dh);
	}
	if (rmdir(d->path) != 0)
		rc = -1;
	free(d);
	return rc;
}

static const char *in_dir(void **state, const char *name, char *buf, size_t len)
{
	const struct dir *d = *state;

	snprintf(buf, len, "%s/%s", d->path, name);
	return buf;
}

/* spool_next_fn over the first `n` of recs. */
struct feed {
	size_t i, n;
};

static bool next_rec(void *arg, const char **stream, const struct entry **e)
{
	struct feed *f = arg;

	if (f->i >= f->n)
		return false;
	*stream = recs[f->i].stream;
	*e = &recs[f->i].e;
	f->i++;
	return true;
}

static enum spool_result save(const char *path, size_t n)
{
	struct feed f = { 0, n };

	return spool_save(path, next_rec, &f, NOW_MS);
}

/* spool_record_fn: each record must be recs[n], in order; refuse (non-zero) at refuse_at. */
struct check {
	size_t n, refuse_at;
	bool v1;
};

static int check_rec(void *arg, const char *stream, const struct entry *e)
{
	struct check *c = arg;
	const struct rec *w;

	assert_true(c->n < NRECS);
	w = &recs[c->n];
	assert_string_equal(stream, w->stream);
	assert_string_equal(e->method, w->e.method);
	assert_string_equal(e->endpoint, w->e.endpoint);
	assert_string_equal(e->query, w->e.query);
	assert_string_equal(e->headers, w->e.headers);
	assert_string_equal(e->client_ip, w->e.client_ip);
	assert_string_equal(e->sdk_key, w->e.sdk_key);
	assert_string_equal(e->event_id, w->e.event_id);
	assert_int_equal(e->carrier, w->e.carrier);
	assert_int_equal(e->has_secret, w->e.has_secret);
	assert_int_equal(e->body_len, w->e.body_len);
	assert_memory_equal(e->body, w->e.body, w->e.body_len);
	/* v2 saves fill a zero received_ms with now_ms; v1 files hold whatever was written */
	assert_int_equal(e->received_ms, w->e.received_ms > 0 || c->v1 ? w->e.received_ms : NOW_MS);
	/* v1 had neither categories nor first times */
	assert_int_equal(e->categories, c->v1 ? CATEGORY_ALL : w->e.categories);
	assert_int_equal(e->first_ms, c->v1 ? 0 : w->e.first_ms);
	return c->n++ == c->refuse_at;
}

static enum spool_result load(const char *path, size_t *n)
{
	struct check c = { 0, (size_t)-1, false };
	enum spool_result r = spool_load(path, check_rec, &c);

	*n = c.n;
	return r;
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_true(len == 0 || fwrite(p, len, 1, f) == 1);
	assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_true(n == 0 || fread(p, (size_t)n, 1, f) == 1);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static size_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (size_t)st.st_size;
}

static void test_round_trip(void **state)
{
	char path[128], tmp[160];
	size_t n, len;
	char *raw;

	assert_int_equal(save(in_dir(state, "spool", path, sizeof(path)), NRECS), SPOOL_OK);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_false(exists(tmp));
	raw = read_all(path, &len);
	assert_true(len > 16);
	assert_memory_equal(raw, "sentryq-spool-2\n", 16);
	free(raw);
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, NRECS);
	/* loading does not consume the file */
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, NRECS);
	/* a second save replaces the first */
	assert_int_equal(save(path, 1), SPOOL_OK);
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, 1);
}

static void test_empty_spool(void **state)
{
	char path[128];
	size_t n = 99;

	assert_int_equal(save(in_dir(state, "empty", path, sizeof(path)), 0), SPOOL_OK);
	assert_int_equal(file_size(path), 16);
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, 0);
}

static void test_mode_0600(void **state)
{
	char path[128];
	struct stat st;
	mode_t old = umask(0);  /* nothing masked: the mode must come from the spool itself */

	assert_int_equal(save(in_dir(state, "mode", path, sizeof(path)), 2), SPOOL_OK);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* A temp file left behind (a crash mid-save, or somebody else's) must not lend the spool its
 * mode, nor, as a symlink, get the spool written through it. */
static void test_stale_temp_file(void **state)
{
	char path[128], tmp[160], victim[128];
	struct stat st;
	size_t n, len;
	char *raw;
	mode_t old = umask(0);

	in_dir(state, "stale", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_file(tmp, "junk", 4);
	assert_int_equal(chmod(tmp, 0644), 0);
	assert_int_equal(save(path, 2), SPOOL_OK);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_false(exists(tmp));
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, 2);
	/* the temp name is a symlink to another file: that file is not overwritten */
	write_file(in_dir(state, "victim", victim, sizeof(victim)), "keep me", 7);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(save(path, 1), SPOOL_OK);
	raw = read_all(victim, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(raw, "keep me", 7);
	free(raw);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(load(path, &n), SPOOL_OK);
	assert_int_equal(n, 1);
}

static void test_paths(void **state)
{
	char buf[SPOOL_PATH_MAX], longp[SPOOL_PATH_MAX + 10];

	(void)state;
	assert_int_equal(spool_loaded_path("/var/lib/sentryq/spool", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/lib/sentryq/spool.loaded");
	assert_int_equal(spool_damaged_path("/var/lib/sentryq/spool", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/lib/sentryq/spool.damaged");
	assert_int_equal(spool_loaded_path("s", buf, 9), 0);   /* "s.loaded" + NUL */
	assert_string_equal(buf, "s.loaded");
	assert_int_equal(spool_loaded_path("s", buf, 8), -1);
	assert_int_equal(spool_damaged_path("s", buf, 10), 0);
	assert_int_equal(spool_damaged_path("s", buf, 9), -1);
	assert_int_equal(spool_damaged_path("s", buf, 0), -1);
	/* a path that leaves no room for the suffix */
	memset(longp, 'a', SPOOL_PATH_MAX - 4);
	longp[SPOOL_PATH_MAX - 4] = '\0';
	assert_int_equal(spool_loaded_path(longp, buf, sizeof(buf)), -1);
	assert_int_equal(spool_damaged_path(longp, buf, sizeof(buf)), -1);
	assert_int_equal(buf[sizeof(buf) - 1], '\0');
}

/* Cut the file anywhere: the records wholly before the cut are delivered, and a cut inside a
 * record is SPOOL_DAMAGED; a cut at a record boundary is a shorter, good spool. */
static void test_torn_records(void **state)
{
	char path[128], cut[128], part[128];
	size_t bound[NRECS + 1], len, n;
	char *raw;

	in_dir(state, "full", path, sizeof(path));
	in_dir(state, "cut", cut, sizeof(cut));
	in_dir(state, "part", part, sizeof(part));
	for (size_t k = 0; k <= NRECS; k++) {
		assert_int_equal(save(part, k), SPOOL_OK);
		bound[k] = file_size(part);
	}
	assert_int_equal(save(path, NRECS), SPOOL_OK);
	raw = read_all(path, &len);
	assert_int_equal(len, bound[NRECS]);
	/* a few bytes off the end: the first NRECS - 1 delivered */
	write_file(cut, raw, len - 3);
	assert_int_equal(load(cut, &n), SPOOL_DAMAGED);
	assert_int_equal(n, NRECS - 1);
	for (size_t at = 16; at < len; at++) {
		size_t whole = 0;
		enum spool_result r;

		while (whole < NRECS && bound[whole + 1] <= at)
			whole++;
		write_file(cut, raw, at);
		r = load(cut, &n);
		if (n != whole || r != (bound[whole] == at ? SPOOL_OK : SPOOL_DAMAGED))
			fail_msg("cut at %zu: result %d after %zu records, want %zu", at, (int)r, n, whole);
	}
	free(raw);
}

static void put_u32(char *p, uint32_t v)
{
	p[0] = (char)(v & 0xff);
	p[1] = (char)((v >> 8) & 0xff);
	p[2] = (char)((v >> 16) & 0xff);
	p[3] = (char)(v >> 24);
}

static void test_damaged_in_the_middle(void **state)
{
	char path[128], bad[128], one[128];
	size_t len, n, at;
	char *raw;

	in_dir(state, "good", path, sizeof(path));
	in_dir(state, "bad", bad, sizeof(bad));
	in_dir(state, "one", one, sizeof(one));
	assert_int_equal(save(path, NRECS), SPOOL_OK);
	assert_int_equal(save(one, 1), SPOOL_OK);
	at = file_size(one);  /* where the second record starts */
	raw = read_all(path, &len);
	/* the second record's stream length flipped to a huge value */
	put_u32(raw + at, 0xffffffffu);
	write_file(bad, raw, len);
	assert_int_equal(load(bad, &n), SPOOL_DAMAGED);
	assert_int_equal(n, 1);
	free(raw);
	/* its field count */
	raw = read_all(path, &len);
	put_u32(raw + at + 4 + strlen(recs[1].stream), 0xffffffffu);
	write_file(bad, raw, len);
	assert_int_equal(load(bad, &n), SPOOL_DAMAGED);
	assert_int_equal(n, 1);
	free(raw);
	/* the length of its first field's name */
	raw = read_all(path, &len);
	put_u32(raw + at + 4 + strlen(recs[1].stream) + 4, 0x80000000u);
	write_file(bad, raw, len);
	assert_int_equal(load(bad, &n), SPOOL_DAMAGED);
	assert_int_equal(n, 1);
	free(raw);
	/* a length that runs past the end of the file */
	raw = read_all(path, &len);
	put_u32(raw + at, (uint32_t)len);
	write_file(bad, raw, len);
	assert_int_equal(load(bad, &n), SPOOL_DAMAGED);
	assert_int_equal(n, 1);
	free(raw);
	/* the first record's field count, right after the magic: nothing delivered */
	raw = read_all(path, &len);
	put_u32(raw + 16 + 4 + strlen(recs[0].stream), 17);
	write_file(bad, raw, len);
	assert_int_equal(load(bad, &n), SPOOL_DAMAGED);
	assert_int_equal(n, 0);
	free(raw);
}

/* A record whose fields are not an entry (no body) is damage too. */
static void test_record_without_body(void **state)
{
	static const char magic[] = "sentryq-spool-2\n";
	char path[128], buf[256];
	size_t n = 0, got;

	memcpy(buf, magic, 16), n = 16;
	put_u32(buf + n, 1), n += 4, buf[n++] = 's';
	put_u32(buf + n, 2), n += 4;
	put_u32(buf + n, 1), n += 4, buf[n++] = 'm';
	put_u32(buf + n, 4), n += 4, memcpy(buf + n, "POST", 4), n += 4;
	put_u32(buf + n, 1), n += 4, buf[n++] = 'e';
	put_u32(buf + n, 6), n += 4, memcpy(buf + n, "store/", 6), n += 6;
	write_file(in_dir(state, "nobody", path, sizeof(path)), buf, n);
	assert_int_equal(load(path, &got), SPOOL_DAMAGED);
	assert_int_equal(got, 0);
}

static void test_not_a_spool(void **state)
{
	static const char *const files[] = { "", "hello", "not a spool, just some text\n", "sentryq-spool-3\nxxxx",
					     "sentryq-spool-2", "SENTRYQ-SPOOL-2\n" };
	char path[128];

	in_dir(state, "notspool", path, sizeof(path));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t n = 99, len;
		char *raw;

		write_file(path, files[i], strlen(files[i]));
		if (load(path, &n) != SPOOL_NOT_SPOOL)
			fail_msg("\"%s\" taken for a spool", files[i]);
		assert_int_equal(n, 0);  /* the callback never ran */
		raw = read_all(path, &len);  /* and the file was left alone */
		assert_int_equal(len, strlen(files[i]));
		assert_memory_equal(raw, files[i], len);
		free(raw);
	}
}

static void test_absent(void **state)
{
	char path[128];
	size_t n = 99;

	assert_int_equal(load(in_dir(state, "no-such-file", path, sizeof(path)), &n), SPOOL_ABSENT);
	assert_int_equal(n, 0);
	assert_int_equal(load(in_dir(state, "no-such-dir/spool", path, sizeof(path)), &n), SPOOL_ABSENT);
}

static void test_refused(void **state)
{
	char path[128];
	struct check c = { 0, 1, false };

	assert_int_equal(save(in_dir(state, "refuse", path, sizeof(path)), NRECS), SPOOL_OK);
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_REFUSED);
	assert_int_equal(c.n, 2);  /* the refused one was the last one offered */
	c = (struct check){ 0, 0, false };
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_REFUSED);
	assert_int_equal(c.n, 1);
}

/* A sentryq 0.1 file of the first nrec records: ten length-prefixed fields per record, "carrier
 * has_secret received_ms" as one of them (cst, when not NULL, replaces that field's text). */
static size_t v1_file(char *buf, size_t nrec, const char *cst)
{
	size_t n = 16;

	memcpy(buf, "sentryq-spool-1\n", 16);
	for (size_t k = 0; k < nrec; k++) {
		const struct rec *r = &recs[k];
		char own[64];
		const char *f[10];
		size_t fl[10];

		snprintf(own, sizeof(own), "%d %d %lld", r->e.carrier, r->e.has_secret ? 1 : 0, r->e.received_ms);
		f[0] = r->stream, f[1] = r->e.method, f[2] = r->e.endpoint, f[3] = r->e.query;
		f[4] = r->e.headers, f[5] = r->e.client_ip, f[6] = r->e.sdk_key, f[7] = r->e.event_id;
		f[8] = cst != NULL ? cst : own, f[9] = r->e.body;
		for (int i = 0; i < 9; i++)
			fl[i] = strlen(f[i]);
		fl[9] = r->e.body_len;
		for (int i = 0; i < 10; i++) {
			put_u32(buf + n, (uint32_t)fl[i]);
			n += 4;
			memcpy(buf + n, f[i], fl[i]);
			n += fl[i];
		}
	}
	return n;
}

static void test_v1_file(void **state)
{
	char path[128], buf[4096];
	struct check c = { 0, (size_t)-1, true };
	size_t n;

	in_dir(state, "v1", path, sizeof(path));
	n = v1_file(buf, NRECS, NULL);
	write_file(path, buf, n);
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_OK);
	assert_int_equal(c.n, NRECS);  /* every field, categories CATEGORY_ALL (check_rec, v1) */
	/* torn: what came before is delivered */
	n = v1_file(buf, 2, NULL);
	write_file(path, buf, n - 2);
	c = (struct check){ 0, (size_t)-1, true };
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_DAMAGED);
	assert_int_equal(c.n, 1);
	/* refused, as for v2 */
	n = v1_file(buf, NRECS, NULL);
	write_file(path, buf, n);
	c = (struct check){ 0, 0, true };
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_REFUSED);
	assert_int_equal(c.n, 1);
	/* a "carrier has_secret received_ms" field that is not three numbers */
	n = v1_file(buf, 1, "x y z");
	write_file(path, buf, n);
	c = (struct check){ 0, (size_t)-1, true };
	assert_int_equal(spool_load(path, check_rec, &c), SPOOL_DAMAGED);
	assert_int_equal(c.n, 0);
}

static void test_save_failures(void **state)
{
	char path[128], tmp[160], dirpath[128], good[128], longp[SPOOL_PATH_MAX + 16];
	struct stat st;
	size_t n;

	/* a directory that does not exist: nothing can be written, nothing is left */
	in_dir(state, "no-such-dir/spool", path, sizeof(path));
	assert_int_equal(save(path, 2), SPOOL_IO_ERROR);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_false(exists(tmp));
	/* the path is a directory: the temp file is written, the rename fails, the temp file goes */
	in_dir(state, "isdir", dirpath, sizeof(dirpath));
	assert_int_equal(mkdir(dirpath, 0700), 0);
	assert_int_equal(save(dirpath, 2), SPOOL_IO_ERROR);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dirpath);
	assert_false(exists(tmp));
	assert_int_equal(stat(dirpath, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* the temp name is taken by a directory: the previous spool is untouched */
	assert_int_equal(save(in_dir(state, "kept", good, sizeof(good)), 2), SPOOL_OK);
	snprintf(tmp, sizeof(tmp), "%s.tmp", good);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(save(good, NRECS), SPOOL_IO_ERROR);
	assert_int_equal(load(good, &n), SPOOL_OK);
	assert_int_equal(n, 2);
	assert_int_equal(rmdir(tmp), 0);
	/* a path too long for its temp name */
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	memcpy(longp, "/tmp/", 5);
	assert_int_equal(save(longp, 1), SPOOL_IO_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_0600, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temp_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_in_the_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_without_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v1_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
