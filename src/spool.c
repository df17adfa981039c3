/* spool.c - length-prefixed records in a file: save atomically, load in order, stop at damage. */
#include "spool.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* v2: "<magic>" then records: u32 stream length, stream, u32 field count, then per field
 * u32 name length, name, u32 value length, value (the entry's own field list, entry.h).
 * v1 (sentryq 0.1): ten fields in a fixed order, still read so an upgrade loses nothing. */
#define MAGIC_V1 "sentryq-spool-1\n"
#define MAGIC_V2 "sentryq-spool-2\n"
#define MAGIC_LEN 16
#define FIELD_MAX (1u << 30)
#define V1_FIELDS 10

static int fits(int n, size_t len)
{
	return n >= 0 && (size_t)n < len ? 0 : -1;
}

int spool_loaded_path(const char *path, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s.loaded", path), len);
}

int spool_damaged_path(const char *path, char *buf, size_t len)
{
	return fits(snprintf(buf, len, "%s.damaged", path), len);
}

static int put_u32(FILE *f, size_t v)
{
	uint32_t n = (uint32_t)v;

	return fwrite(&n, sizeof(n), 1, f) == 1 ? 0 : -1;
}

static int put_bytes(FILE *f, const char *p, size_t len)
{
	return put_u32(f, len) == 0 && (len == 0 || fwrite(p, len, 1, f) == 1) ? 0 : -1;
}

static int put_record(FILE *f, const char *stream, const struct entry *e, long long now_ms)
{
	struct entry_fields ef;

	entry_fields(e, now_ms, false, &ef);
	if (put_bytes(f, stream, strlen(stream)) != 0 || put_u32(f, ef.n) != 0)
		return -1;
	for (size_t i = 0; i < ef.n; i++)
		if (put_bytes(f, ef.name[i], strlen(ef.name[i])) != 0 || put_bytes(f, ef.val[i], ef.len[i]) != 0)
			return -1;
	return 0;
}

/* fsync the directory holding path, so a rename into it survives a power loss. */
static void sync_dir(const char *path)
{
	char dir[SPOOL_PATH_MAX];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

enum spool_result spool_save(const char *path, spool_next_fn next, void *arg, long long now_ms)
{
	char tmp[SPOOL_PATH_MAX];
	const struct entry *e;
	const char *stream;
	FILE *f = NULL;
	int fd, rc = -1;

	if (fits(snprintf(tmp, sizeof(tmp), "%s.tmp", path), sizeof(tmp)) != 0)
		return SPOOL_IO_ERROR;
	/* A fresh file, never one left behind: O_TRUNC on a stale temp file kept its mode (a 0644
	 * spool of auth headers), and followed a symlink there to overwrite whatever it named. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
		if (fd >= 0)
			close(fd);
		return SPOOL_IO_ERROR;
	}
	if (fwrite(MAGIC_V2, MAGIC_LEN, 1, f) != 1)
		goto out;
	while (next(arg, &stream, &e))
		if (put_record(f, stream, e, now_ms) != 0)
			goto out;
	if (fflush(f) == 0 && fsync(fileno(f)) == 0)
		rc = 0;
out:
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	else
		sync_dir(path);
	return rc == 0 ? SPOOL_OK : SPOOL_IO_ERROR;
}

/* A length-prefixed value, NUL-terminated; NULL at a torn or absurd record. */
static char *get_bytes(FILE *f, size_t *len)
{
	uint32_t n;
	char *p;

	if (fread(&n, sizeof(n), 1, f) != 1 || n > FIELD_MAX || (p = malloc((size_t)n + 1)) == NULL)
		return NULL;
	if (n > 0 && fread(p, n, 1, f) != 1) {
		free(p);
		return NULL;
	}
	p[n] = '\0';
	*len = n;
	return p;
}

/* Strings of one record, freed together. */
struct rec {
	char *s[2 * ENTRY_FIELDS_MAX + 1];
	size_t len[2 * ENTRY_FIELDS_MAX + 1];
	size_t n;
};

static void rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->s[i]);
	r->n = 0;
}

static int rec_get(struct rec *r, FILE *f)
{
	if (r->n == sizeof(r->s) / sizeof(r->s[0]) || (r->s[r->n] = get_bytes(f, &r->len[r->n])) == NULL)
		return -1;
	r->n++;
	return 0;
}

/* v2 record: stream, then the entry's field list. */
static int read_v2(FILE *f, struct rec *r, struct entry *e)
{
	const char *names[ENTRY_FIELDS_MAX], *vals[ENTRY_FIELDS_MAX];
	size_t nl[ENTRY_FIELDS_MAX], vl[ENTRY_FIELDS_MAX];
	uint32_t nf;

	if (rec_get(r, f) != 0 || fread(&nf, sizeof(nf), 1, f) != 1 || nf > ENTRY_FIELDS_MAX)
		return -1;
	for (uint32_t i = 0; i < nf; i++) {
		if (rec_get(r, f) != 0 || rec_get(r, f) != 0)
			return -1;
		names[i] = r->s[r->n - 2], nl[i] = r->len[r->n - 2];
		vals[i] = r->s[r->n - 1], vl[i] = r->len[r->n - 1];
	}
	return entry_from_fields(e, names, nl, vals, vl, nf) == ENTRY_OK ? 0 : -1;
}

/* v1 record: stream, method, endpoint, query, headers, ip, key, event id, "c s t", body. */
static int read_v1(FILE *f, struct rec *r, struct entry *e)
{
	int c, s;
	long long t;

	for (int i = 0; i < V1_FIELDS; i++)
		if (rec_get(r, f) != 0)
			return -1;
	if (sscanf(r->s[8], "%d %d %lld", &c, &s, &t) != 3)
		return -1;
	memset(e, 0, sizeof(*e));
	e->method = r->s[1], e->endpoint = r->s[2], e->query = r->s[3], e->headers = r->s[4];
	e->client_ip = r->s[5], e->sdk_key = r->s[6], e->event_id = r->s[7];
	e->carrier = c, e->has_secret = s != 0, e->received_ms = t;
	e->categories = CATEGORY_ALL;  /* written before categories existed */
	e->body = r->s[9], e->body_len = r->len[9];
	return 0;
}

static enum spool_result read_records(FILE *f, bool v2, spool_record_fn fn, void *arg)
{
	struct rec r = { .n = 0 };
	struct entry e;
	int ch, bad;

	while ((ch = fgetc(f)) != EOF) {
		ungetc(ch, f);
		bad = v2 ? read_v2(f, &r, &e) : read_v1(f, &r, &e);
		if (bad != 0) {
			rec_free(&r);
			return SPOOL_DAMAGED;
		}
		bad = fn(arg, r.s[0], &e);
		rec_free(&r);
		if (bad != 0)
			return SPOOL_REFUSED;
	}
	return SPOOL_OK;
}

enum spool_result spool_load(const char *path, spool_record_fn fn, void *arg)
{
	char magic[MAGIC_LEN];
	FILE *f = fopen(path, "rb");
	enum spool_result rc;
	bool v2;

	if (f == NULL)
		return SPOOL_ABSENT;
	if (fread(magic, 1, MAGIC_LEN, f) != MAGIC_LEN ||
	    (memcmp(magic, MAGIC_V2, MAGIC_LEN) != 0 && memcmp(magic, MAGIC_V1, MAGIC_LEN) != 0)) {
		fclose(f);
		return SPOOL_NOT_SPOOL;
	}
	v2 = memcmp(magic, MAGIC_V2, MAGIC_LEN) == 0;
	rc = read_records(f, v2, fn, arg);
	fclose(f);
	return rc;
}
