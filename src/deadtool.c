/* deadtool.c - `sentryq dead list|replay|purge`: the dead-letter stream, page by page, over blocking hiredis. */
#include "deadtool.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "queue.h"

#define DT_PAGE 500                /* entries per XRANGE: the most this tool ever holds in memory */
#define DT_PAGE_STR "500"
#define DT_MAX_PAGES 1000000L      /* 500 M entries: beyond any real dead stream, still a bound */
#define DT_KEY_MAX 512             /* prefix (<= 128) + "q:" + two names (<= 64 each) fit */
#define DT_SHOW_MAX 128            /* longest field value echoed in output */

/* The fields queue_put writes; only these go back into a route's stream on replay. */
static const char *const orig_fields[] = { "v", "m", "e", "q", "h", "ip", "k", "id", "c", "s", "t", "b" };
#define NORIG (sizeof(orig_fields) / sizeof(orig_fields[0]))

struct dt {
	const struct config *cfg;
	redisContext *c;
	char key[DT_KEY_MAX];      /* <prefix>dead */
	char grouped[DT_KEY_MAX];  /* last source stream whose consumer group is known to exist */
	bool json;
	long long now_ms;
	long count;                /* listed / replayed / purged */
	bool failed;               /* an entry could not be handled: exit 1 once the rest is done */
};

/* Handlers: 0 done, 1 this entry failed (reported; go on), -1 Redis is gone (reported; stop). */
typedef int (*dt_page_fn)(struct dt *d, const redisReply *page);
typedef int (*dt_entry_fn)(struct dt *d, const redisReply *el);

static void dt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void dt_err(const char *fmt, ...)
{
	va_list ap;

	fputs("sentryq: dead: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void dt_usage(void)
{
	dt_err("usage: sentryq -c FILE dead list [--json] | dead replay (--all | ID...) | "
	       "dead purge (--all | ID...)");
}

/* NULL (reported) when the connection failed; an error reply is returned to the caller. */
static redisReply *dt_cmdv(struct dt *d, int argc, const char **argv, const size_t *lens)
{
	redisReply *rep = redisCommandArgv(d->c, argc, argv, lens);

	if (rep == NULL)
		dt_err("redis: %s", d->c->errstr[0] != '\0' ? d->c->errstr : "no reply");
	return rep;
}

static redisReply *dt_cmd(struct dt *d, int argc, ...)
{
	const char *argv[8];
	va_list ap;

	if (argc > 8)
		return NULL;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, const char *);
	va_end(ap);
	return dt_cmdv(d, argc, argv, NULL);
}

/* Consume a reply that only has to be not-an-error. */
static int dt_ok(redisReply *rep, const char *what)
{
	int rc = 0;

	if (rep == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_ERROR) {
		dt_err("redis %s failed: %s", what, rep->str);
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

static int dt_connect(struct dt *d)
{
	const struct config *cfg = d->cfg;
	struct timeval tv;
	char db[16];

	tv.tv_sec = (long)cfg->redis_timeout;
	tv.tv_usec = (long)((cfg->redis_timeout - (double)tv.tv_sec) * 1e6);
	if (cfg->redis_unix_socket != NULL)
		d->c = redisConnectUnixWithTimeout(cfg->redis_unix_socket, tv);
	else
		d->c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
	if (d->c == NULL || d->c->err) {
		if (cfg->redis_unix_socket != NULL)
			dt_err("cannot connect to redis at %s: %s", cfg->redis_unix_socket,
			       d->c != NULL ? d->c->errstr : "out of memory");
		else
			dt_err("cannot connect to redis at %s:%d: %s", cfg->redis_host, cfg->redis_port,
			       d->c != NULL ? d->c->errstr : "out of memory");
		return -1;
	}
	if (redisSetTimeout(d->c, tv) != REDIS_OK) {
		dt_err("redis: cannot set the command timeout");
		return -1;
	}
	if (cfg->redis_password != NULL && dt_ok(dt_cmd(d, 2, "AUTH", cfg->redis_password), "AUTH") != 0)
		return -1;
	snprintf(db, sizeof(db), "%d", cfg->redis_db);
	if (cfg->redis_db != 0 && dt_ok(dt_cmd(d, 2, "SELECT", db), "SELECT") != 0)
		return -1;
	return 0;
}

/* ---- entries ---- */

/* A stream entry as XRANGE returns it: [id, [k, v, ...]]. */
static bool dt_valid(const redisReply *el)
{
	return el->type == REDIS_REPLY_ARRAY && el->elements == 2 && el->element[0]->type == REDIS_REPLY_STRING &&
	       el->element[1]->type == REDIS_REPLY_ARRAY;
}

static const redisReply *dt_field(const redisReply *el, const char *name)
{
	const redisReply *kv = el->element[1];
	size_t nlen = strlen(name);

	for (size_t i = 0; i + 1 < kv->elements; i += 2) {
		const redisReply *k = kv->element[i], *v = kv->element[i + 1];

		if (k->type == REDIS_REPLY_STRING && k->len == nlen && memcmp(k->str, name, nlen) == 0 &&
		    v->type == REDIS_REPLY_STRING)
			return v;
	}
	return NULL;
}

static long long dt_num(const redisReply *el, const char *name)
{
	const redisReply *v = dt_field(el, name);

	return v != NULL ? strtoll(v->str, NULL, 10) : 0;
}

/* A value fit for one output line: bounded, control bytes shown as '?'. */
static const char *dt_show(const redisReply *v, char *buf, size_t len)
{
	size_t n = 0;

	for (; v != NULL && n < v->len && n + 1 < len; n++) {
		unsigned char ch = (unsigned char)v->str[n];

		buf[n] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	buf[n] = '\0';
	return buf;
}

static json_t *dt_jstr(const redisReply *v)
{
	char buf[DT_SHOW_MAX];
	json_t *j = json_string(dt_show(v, buf, sizeof(buf)));

	if (j != NULL)
		return j;
	/* Not UTF-8 (or cut inside a character): JSON output must stay valid. */
	for (char *p = buf; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(buf);
}

/* Walk the dead stream DT_PAGE entries at a time; an id range that moves on, so the loop ends. */
static int dt_each(struct dt *d, dt_page_fn fn)
{
	char start[QUEUE_ID_MAX + 2] = "-";

	for (long page = 0; page < DT_MAX_PAGES; page++) {
		redisReply *rep = dt_cmd(d, 6, "XRANGE", d->key, start, "+", "COUNT", DT_PAGE_STR);
		const redisReply *last;
		size_t n;
		int rc;

		if (rep == NULL)
			return -1;
		if (rep->type != REDIS_REPLY_ARRAY) {
			dt_err("redis XRANGE %s failed: %s", d->key,
			       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
			freeReplyObject(rep);
			return -1;
		}
		n = rep->elements;
		rc = fn(d, rep);
		last = n > 0 ? rep->element[n - 1] : NULL;
		if (last != NULL && dt_valid(last))
			snprintf(start, sizeof(start), "(%s", last->element[0]->str);
		else
			n = 0;  /* nothing to continue from */
		freeReplyObject(rep);
		if (rc < 0 || n < DT_PAGE)
			return rc < 0 ? -1 : 0;
	}
	return 0;
}

static int dt_entries(struct dt *d, const redisReply *page, dt_entry_fn fn)
{
	for (size_t i = 0; i < page->elements; i++)
		if (dt_valid(page->element[i]) && fn(d, page->element[i]) < 0)
			return -1;
	return 0;
}

/* Run fn on the entry whose id is exactly `id`. */
static int dt_by_id(struct dt *d, const char *id, dt_entry_fn fn)
{
	redisReply *rep;
	int rc;

	if (strlen(id) >= QUEUE_ID_MAX || id[0] == '\0') {
		dt_err("%.*s: no such dead letter", QUEUE_ID_MAX, id);
		d->failed = true;
		return 1;
	}
	rep = dt_cmd(d, 6, "XRANGE", d->key, id, id, "COUNT", "1");
	if (rep == NULL)
		return -1;
	/* An incomplete id ("5") would match a range: only the exact id counts. */
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 || !dt_valid(rep->element[0]) ||
	    strcmp(rep->element[0]->element[0]->str, id) != 0) {
		dt_err("%s: no such dead letter", id);
		d->failed = true;
		rc = 1;
	} else {
		rc = fn(d, rep->element[0]);
	}
	freeReplyObject(rep);
	return rc;
}

static int dt_ids(struct dt *d, int argc, char **argv, dt_entry_fn fn)
{
	for (int i = 2; i < argc; i++)
		if (dt_by_id(d, argv[i], fn) < 0)
			return -1;
	return 0;
}

/* ---- list ---- */

static int list_json(struct dt *d, const redisReply *el, long long age, size_t size)
{
	json_t *o = json_object();
	char *s;

	if (o == NULL)
		return -1;
	json_object_set_new(o, "id", dt_jstr(el->element[0]));
	json_object_set_new(o, "upstream", dt_jstr(dt_field(el, "up")));
	json_object_set_new(o, "project", dt_jstr(dt_field(el, "pr")));
	json_object_set_new(o, "reason", dt_jstr(dt_field(el, "reason")));
	json_object_set_new(o, "status", json_integer(dt_num(el, "status")));
	json_object_set_new(o, "attempts", json_integer(dt_num(el, "attempts")));
	json_object_set_new(o, "age_s", json_integer(age));
	json_object_set_new(o, "size", json_integer((json_int_t)size));
	json_object_set_new(o, "event_id", dt_jstr(dt_field(el, "id")));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL) {
		dt_err("out of memory");
		return -1;
	}
	printf("%s\n%s", d->count > 0 ? "," : "", s);
	free(s);
	return 0;
}

static int list_one(struct dt *d, const redisReply *el)
{
	const redisReply *b = dt_field(el, "b");
	char up[DT_SHOW_MAX], pr[DT_SHOW_MAX], reason[DT_SHOW_MAX];
	long long age = (d->now_ms - dt_num(el, "dead_at")) / 1000;
	size_t size = b != NULL ? b->len : 0;

	if (age < 0)
		age = 0;  /* clocks of relay and operator host disagree */
	if (d->json) {
		if (list_json(d, el, age, size) != 0)
			return -1;
	} else {
		printf("%s %s/%s reason=%s status=%lld attempts=%lld age=%llds size=%zu\n",
		       el->element[0]->str, dt_show(dt_field(el, "up"), up, sizeof(up)),
		       dt_show(dt_field(el, "pr"), pr, sizeof(pr)),
		       dt_show(dt_field(el, "reason"), reason, sizeof(reason)), dt_num(el, "status"),
		       dt_num(el, "attempts"), age, size);
	}
	d->count++;
	return 0;
}

static int list_page(struct dt *d, const redisReply *page)
{
	return dt_entries(d, page, list_one);
}

static int dt_list(struct dt *d)
{
	int rc;

	if (d->json)
		fputs("[", stdout);
	rc = dt_each(d, list_page);
	if (d->json)
		puts(d->count > 0 ? "\n]" : "]");
	else if (rc == 0)
		printf("%ld dead letters\n", d->count);
	return rc;
}

/* ---- replay ---- */

/* The entry must still name a configured route, and src must be that route's stream. */
static int replay_route(const struct dt *d, const redisReply *el, char *src, size_t len)
{
	const redisReply *up = dt_field(el, "up"), *pr = dt_field(el, "pr"), *have = dt_field(el, "src");
	const struct config_upstream *u = NULL;
	const char *id = el->element[0]->str;
	char us[DT_SHOW_MAX], ps[DT_SHOW_MAX];
	int n;

	if (up == NULL || pr == NULL || have == NULL) {
		dt_err("%s: entry lacks up/pr/src; left in place", id);
		return -1;
	}
	dt_show(up, us, sizeof(us));
	dt_show(pr, ps, sizeof(ps));
	if (strlen(up->str) == up->len && strlen(pr->str) == pr->len)
		u = config_upstream_by_name(d->cfg, up->str);
	if (u == NULL || config_project_by_name(u, pr->str) == NULL) {
		dt_err("%s: route %s/%s is no longer in the configuration; left in place", id, us, ps);
		return -1;
	}
	n = snprintf(src, len, "%sq:%s:%s", d->cfg->redis_prefix, up->str, pr->str);
	if (n < 0 || (size_t)n >= len || have->len != (size_t)n || memcmp(have->str, src, (size_t)n) != 0) {
		dt_err("%s: source stream is not the stream of route %s/%s; left in place", id, us, ps);
		return -1;
	}
	return 0;
}

/* A stream this XADD creates would have no group, and the running relay would never read it.
 * Creating it first also refuses a src key that is not a stream, before anything is deleted. */
static int replay_group(struct dt *d, const char *src)
{
	redisReply *rep;
	int rc = 0;

	if (strcmp(d->grouped, src) == 0)
		return 0;
	rep = dt_cmd(d, 6, "XGROUP", "CREATE", src, QUEUE_GROUP, "0", "MKSTREAM");
	if (rep == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0) {
		dt_err("redis XGROUP CREATE %s failed: %s", src, rep->str);
		rc = 1;
	} else {
		snprintf(d->grouped, sizeof(d->grouped), "%s", src);
	}
	freeReplyObject(rep);
	return rc;
}

/*
 * The XADD of the original fields only: the dead-letter bookkeeping stays out of the route's
 * stream. The received time restarts now (kept as t0), or an entry dead for max_age would die
 * again on its first read.
 */
static int replay_args(const redisReply *el, const char *src, char *now, const char **argv, size_t *lens)
{
	int argc = 0;

	argv[argc] = "XADD", lens[argc++] = 4;
	argv[argc] = src, lens[argc++] = strlen(src);
	argv[argc] = "*", lens[argc++] = 1;
	for (size_t i = 0; i < NORIG; i++) {
		const redisReply *v = dt_field(el, orig_fields[i]);

		if (v == NULL)
			continue;
		argv[argc] = orig_fields[i], lens[argc++] = strlen(orig_fields[i]);
		if (strcmp(orig_fields[i], "t") == 0) {
			/* A letter replayed before keeps its first received time. */
			const redisReply *t0 = dt_field(el, "t0");

			argv[argc] = now, lens[argc++] = strlen(now);
			argv[argc] = "t0", lens[argc++] = 2;
			if (t0 != NULL)
				v = t0;
		}
		argv[argc] = v->str, lens[argc++] = v->len;
	}
	return argc;
}

/* MULTI; XADD src * <original fields>; XDEL dead id; EXEC: the entry is in exactly one of the two. */
static int replay_exec(struct dt *d, const redisReply *el, int argc, const char **argv, const size_t *lens)
{
	const char *del[3] = { "XDEL", d->key, el->element[0]->str };
	const redisReply *body = dt_field(el, "b");
	char bytes_key[DT_KEY_MAX], len[24];
	const char *incr[3] = { "INCRBY", bytes_key, len };
	redisReply *rep = NULL;
	int rc = 1;

	/* Queued again: its body counts against queue.max_bytes again (the dead-lettering took it off). */
	snprintf(bytes_key, sizeof(bytes_key), "%sbytes", d->cfg->redis_prefix);
	snprintf(len, sizeof(len), "%zu", body != NULL ? (size_t)body->len : 0);
	if (redisAppendCommand(d->c, "MULTI") != REDIS_OK ||
	    redisAppendCommandArgv(d->c, argc, argv, lens) != REDIS_OK ||
	    redisAppendCommandArgv(d->c, 3, incr, NULL) != REDIS_OK ||
	    redisAppendCommandArgv(d->c, 3, del, NULL) != REDIS_OK || redisAppendCommand(d->c, "EXEC") != REDIS_OK) {
		dt_err("out of memory");
		return -1;
	}
	for (int i = 0; i < 5; i++) {
		freeReplyObject(rep);
		rep = NULL;
		if (redisGetReply(d->c, (void **)&rep) != REDIS_OK) {
			dt_err("redis: %s", d->c->errstr);
			return -1;
		}
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 && rep->element[0]->type == REDIS_REPLY_STRING)
		rc = 0;
	else
		dt_err("%s: replay to %s failed: %s", el->element[0]->str, argv[1],
		       rep->type == REDIS_REPLY_ERROR ? rep->str : "transaction aborted");
	freeReplyObject(rep);
	return rc;
}

static int replay_one(struct dt *d, const redisReply *el)
{
	const char *argv[5 + 2 * NORIG];
	size_t lens[5 + 2 * NORIG];
	char src[DT_KEY_MAX], now[24];
	int argc, rc;

	if (replay_route(d, el, src, sizeof(src)) != 0) {
		rc = 1;
	} else if (snprintf(now, sizeof(now), "%lld", d->now_ms) < 0 ||
		   (argc = replay_args(el, src, now, argv, lens)) == 3) {
		dt_err("%s: entry has none of the original fields; left in place", el->element[0]->str);
		rc = 1;
	} else if ((rc = replay_group(d, src)) == 0) {
		rc = replay_exec(d, el, argc, argv, lens);
	}
	if (rc > 0)
		d->failed = true;
	else if (rc == 0)
		d->count++;
	return rc;
}

static int replay_page(struct dt *d, const redisReply *page)
{
	return dt_entries(d, page, replay_one);
}

/* ---- purge ---- */

static int purge_page(struct dt *d, const redisReply *page)
{
	const char *argv[2 + DT_PAGE];
	int argc = 2, rc = 0;
	redisReply *rep;

	argv[0] = "XDEL";
	argv[1] = d->key;
	for (size_t i = 0; i < page->elements && argc < 2 + DT_PAGE; i++)
		if (dt_valid(page->element[i]))
			argv[argc++] = page->element[i]->element[0]->str;
	if (argc == 2)
		return 0;
	if ((rep = dt_cmdv(d, argc, argv, NULL)) == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_INTEGER) {
		d->count += (long)rep->integer;
	} else {
		dt_err("redis XDEL %s failed: %s", d->key, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

static int purge_one(struct dt *d, const redisReply *el)
{
	redisReply *rep = dt_cmd(d, 3, "XDEL", d->key, el->element[0]->str);

	if (rep == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
		d->count++;
	} else {
		dt_err("%s: not deleted: %s", el->element[0]->str,
		       rep->type == REDIS_REPLY_ERROR ? rep->str : "already gone");
		d->failed = true;
	}
	freeReplyObject(rep);
	return 0;
}

/* ---- command line ---- */

static bool dt_args_ok(int argc, char **argv)
{
	if (argc < 2)
		return false;
	if (strcmp(argv[1], "list") == 0)
		return argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0);
	if (strcmp(argv[1], "replay") != 0 && strcmp(argv[1], "purge") != 0)
		return false;
	if (argc < 3)
		return false;
	if (strcmp(argv[2], "--all") == 0)
		return argc == 3;
	for (int i = 2; i < argc; i++)
		if (argv[i][0] == '-')  /* ids never start with '-': an option where none is known */
			return false;
	return true;
}

static int dt_verb(struct dt *d, int argc, char **argv)
{
	bool all = argc == 3 && strcmp(argv[2], "--all") == 0;
	int rc;

	if (strcmp(argv[1], "list") == 0) {
		d->json = argc == 3;
		return dt_list(d);
	}
	if (strcmp(argv[1], "replay") == 0) {
		rc = all ? dt_each(d, replay_page) : dt_ids(d, argc, argv, replay_one);
		printf("replayed %ld\n", d->count);
		return rc;
	}
	rc = all ? dt_each(d, purge_page) : dt_ids(d, argc, argv, purge_one);
	printf("purged %ld\n", d->count);
	return rc;
}

int deadtool_run(const struct config *cfg, int argc, char **argv)
{
	struct dt d;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.now_ms = clock_epoch_ms();
	if (!dt_args_ok(argc, argv)) {
		dt_usage();
		return 2;
	}
	if ((size_t)snprintf(d.key, sizeof(d.key), "%sdead", cfg->redis_prefix) >= sizeof(d.key)) {
		dt_err("redis.prefix is too long");
		return 1;
	}
	if (dt_connect(&d) == 0)
		rc = dt_verb(&d, argc, argv);
	if (d.c != NULL)
		redisFree(d.c);
	fflush(stdout);
	return rc != 0 || d.failed ? 1 : 0;
}
