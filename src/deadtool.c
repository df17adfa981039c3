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
#include "entry.h"
#include "redissync.h"

#define DT_PAGE 500                /* entries per XRANGE: the most this tool ever holds in memory */
#define DT_PAGE_STR "500"
#define DT_MAX_PAGES 1000000L      /* 500 M entries: beyond any real dead stream, still a bound */
#define DT_KEY_MAX 512             /* prefix (<= 128) + "q:" + two names (<= 64 each) fit */
#define DT_SHOW_MAX 128            /* longest field value echoed in output */

struct dt {
	const struct config *cfg;
	struct redissync *rs;
	char key[DT_KEY_MAX];      /* the dead-letter stream being walked */
	char bytes_key[DT_KEY_MAX];
	char (*keys)[DT_KEY_MAX];  /* every dead-letter stream: one, or with a cluster one per route */
	size_t nkeys;
	char grouped[DT_KEY_MAX];  /* last source stream whose consumer group is known to exist */
	bool json;
	const char *route;         /* --route UPSTREAM/PROJECT: only that destination's dead letters */
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
	dt_err("usage: sentryq -c FILE dead list [--json] [--route UPSTREAM/PROJECT] | "
	       "dead replay (--all [--route UPSTREAM/PROJECT] | ID...) | "
	       "dead purge (--all [--route UPSTREAM/PROJECT] | ID...)");
}

/* NULL (reported) when the connection failed; an error reply is returned to the caller. */
static redisReply *dt_cmdv(struct dt *d, int argc, const char **argv, const size_t *lens)
{
	char err[256];
	redisReply *rep = redissync_call(d->rs, argc, argv, lens, err, sizeof(err));

	if (rep == NULL)
		dt_err("%s", err);
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

/* Through the relay's own connection supervisor: AUTH, SELECT and the timeouts as the relay has them. */
static int dt_connect(struct dt *d)
{
	struct redisconn_params p;
	char err[256];

	redisconn_params_of(d->cfg, &p);
	if ((d->rs = redissync_open(&p, err, sizeof(err))) == NULL) {
		dt_err("%s", err);
		return -1;
	}
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
	return entry_reply_field(el->element[1], name);
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

/* Walk the dead-letter stream `key` (and count its bytes in `bytes_key`) from now on: with a
 * cluster each route has its own, beside its counter in the same slot. */
static int dt_use(struct dt *d, size_t i)
{
	snprintf(d->key, sizeof(d->key), "%s", d->keys[i]);
	if (d->cfg->redis_cluster.n > 0 &&
	    entry_cluster_sibling_key(d->key, ENTRY_CLUSTER_BYTES, d->bytes_key, sizeof(d->bytes_key)) != 0)
		return -1;
	return 0;
}

static int dt_each_one(struct dt *d, dt_page_fn fn);

/* Every dead-letter stream in turn. */
static int dt_each(struct dt *d, dt_page_fn fn)
{
	for (size_t i = 0; i < d->nkeys; i++)
		if (dt_use(d, i) != 0 || dt_each_one(d, fn) < 0)
			return -1;
	return 0;
}

/* Walk the dead stream DT_PAGE entries at a time; an id range that moves on, so the loop ends. */
static int dt_each_one(struct dt *d, dt_page_fn fn)
{
	char start[ENTRY_ID_MAX + 2] = "-";

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

/* Run fn on the entry whose id is exactly `id` in the current dead stream; 2 when it has none. */
static int dt_by_id_one(struct dt *d, const char *id, dt_entry_fn fn)
{
	redisReply *rep = dt_cmd(d, 6, "XRANGE", d->key, id, id, "COUNT", "1");
	int rc;

	if (rep == NULL)
		return -1;
	/* An incomplete id ("5") would match a range: only the exact id counts. */
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 || !dt_valid(rep->element[0]) ||
	    strcmp(rep->element[0]->element[0]->str, id) != 0)
		rc = 2;
	else
		rc = fn(d, rep->element[0]);
	freeReplyObject(rep);
	return rc;
}

/* Run fn on the entry whose id is exactly `id`, in every dead stream that has one (with a cluster,
 * two routes' streams on different masters may hold the same id). */
static int dt_by_id(struct dt *d, const char *id, dt_entry_fn fn)
{
	int rc = 2, one;

	if (strlen(id) >= ENTRY_ID_MAX || id[0] == '\0') {
		dt_err("%.*s: no such dead letter", ENTRY_ID_MAX, id);
		d->failed = true;
		return 1;
	}
	for (size_t i = 0; i < d->nkeys; i++) {
		if (dt_use(d, i) != 0 || (one = dt_by_id_one(d, id, fn)) < 0)
			return -1;
		if (one != 2)
			rc = rc == 1 ? 1 : one;
	}
	if (rc == 2) {
		dt_err("%s: no such dead letter", id);
		d->failed = true;
		rc = 1;
	}
	return rc;
}

static int dt_ids(struct dt *d, int argc, char **argv, dt_entry_fn fn)
{
	for (int i = 2; i < argc; i++)
		if (dt_by_id(d, argv[i], fn) < 0)
			return -1;
	return 0;
}

/* ---- the --route filter ---- */

static bool field_is(const redisReply *f, const char *s, size_t len)
{
	return f != NULL && f->type == REDIS_REPLY_STRING && f->len == len && memcmp(f->str, s, len) == 0;
}

/* The project --route names: "UPSTREAM/PROJECT", or "UPSTREAM/ID" with the real id, as /status
 * and /metrics name routes. NULL when the upstream has neither. */
static const char *route_project(const struct dt *d, const char *up, size_t uplen, const char *pr)
{
	char name[128];
	const struct config_upstream *u;

	snprintf(name, sizeof(name), "%.*s", (int)uplen, up);
	if ((u = config_upstream_by_name(d->cfg, name)) == NULL)
		return pr;  /* a route no longer configured: its dead letters still carry the name */
	if (config_project_by_name(u, pr) != NULL || pr[0] == '\0' || strspn(pr, "0123456789") != strlen(pr))
		return pr;
	for (size_t i = 0; i < u->nprojects; i++)
		if (u->projects[i].id == atol(pr))
			return u->projects[i].name;
	return pr;
}

/* Whether a dead letter belongs to the --route destination (every one without --route). */
static bool dt_wanted(const struct dt *d, const redisReply *el)
{
	const char *slash, *pr;

	if (d->route == NULL)
		return true;
	slash = strchr(d->route, '/');
	pr = route_project(d, d->route, (size_t)(slash - d->route), slash + 1);
	return field_is(dt_field(el, "up"), d->route, (size_t)(slash - d->route)) &&
	       field_is(dt_field(el, "pr"), pr, strlen(pr));
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
	size_t size = b != NULL ? b->len : (size_t)dt_num(el, "bl");

	if (!dt_wanted(d, el))
		return 0;
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

static bool same(const redisReply *have, const char *s)
{
	return have->len == strlen(s) && memcmp(have->str, s, have->len) == 0;
}

/* With a cluster, src is the route's stream, or the mirror stream of a configured source route
 * that mirrors to it (queued in the source's slot); either way in the slot of this dead stream. */
static int replay_cluster_route(const struct dt *d, const redisReply *el, const struct config_upstream *u,
				const redisReply *have, char *src, size_t len)
{
	const char *prefix = d->cfg->redis_prefix, *up = u->name, *pr = dt_field(el, "pr")->str;
	char dead[DT_KEY_MAX];
	bool ok = entry_cluster_stream_key(prefix, up, pr, src, len) == 0 && same(have, src);

	for (size_t i = 0; !ok && i < d->cfg->nupstreams; i++) {
		const struct config_upstream *su = &d->cfg->upstreams[i];

		for (size_t j = 0; !ok && j < su->nprojects; j++)
			for (size_t m = 0; !ok && m < su->projects[j].nmirrors; m++)
				ok = strcmp(su->projects[j].mirrors[m].up->name, up) == 0 &&
				     strcmp(su->projects[j].mirrors[m].pr->name, pr) == 0 &&
				     entry_cluster_mirror_key(prefix, su->name, su->projects[j].name, up, pr, src, len) == 0 &&
				     same(have, src);
	}
	if (!ok || entry_cluster_sibling_key(src, ENTRY_CLUSTER_DEAD, dead, sizeof(dead)) != 0 || strcmp(dead, d->key) != 0) {
		dt_err("%s: source stream is not a stream of its route (upstream %s); left in place", el->element[0]->str, up);
		return -1;
	}
	return 0;
}

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
	if (d->cfg->redis_cluster.n > 0)
		return replay_cluster_route(d, el, u, have, src, len);
	n = entry_stream_key(d->cfg->redis_prefix, up->str, pr->str, src, len) == 0 ? (int)strlen(src) : -1;
	if (n < 0 || have->len != (size_t)n || memcmp(have->str, src, (size_t)n) != 0) {
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
	rep = dt_cmd(d, 6, "XGROUP", "CREATE", src, ENTRY_GROUP, "0", "MKSTREAM");
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

/* Back into its stream, the dead letter deleted and its bytes counted again, in one script: the
 * entry is in exactly one of the two. KEYS: route stream, dead stream, bytes counter; ARGV: the
 * dead letter's id, the body length, then the entry's fields. */
static const char replay_script[] =
	"local f = {}\n"
	"for i = 3, #ARGV do f[#f + 1] = ARGV[i] end\n"
	"redis.call('XADD', KEYS[1], '*', unpack(f))\n"
	"redis.call('INCRBY', KEYS[3], ARGV[2])\n"
	"redis.call('XDEL', KEYS[2], ARGV[1])\n"
	"return 1\n";

/*
 * Only the entry's own fields go back (the dead-letter bookkeeping stays out of the route's
 * stream). The received time restarts now, the first one kept as t0, or an entry dead for max_age
 * would die again on its first read.
 */
static int replay_exec(struct dt *d, const redisReply *el, const char *src)
{
	const char *argv[10 + 2 * ENTRY_FIELDS_MAX];
	size_t lens[10 + 2 * ENTRY_FIELDS_MAX];
	struct entry_fields f;
	struct entry e;
	char len[24];
	redisReply *rep;
	int argc = 0, rc = 1;

	if (entry_from_reply(&e, el->element[1]) != ENTRY_OK) {
		dt_err("%s: entry has none of the original fields; left in place", el->element[0]->str);
		return 1;
	}
	e.first_ms = e.first_ms > 0 ? e.first_ms : e.received_ms;
	e.received_ms = d->now_ms;
	entry_fields(&e, d->now_ms, e.body_key != NULL, &f);
	snprintf(len, sizeof(len), "%zu", e.body_len);
#define ARG(s, l) (argv[argc] = (s), lens[argc++] = (l))
	ARG("EVAL", 4), ARG(replay_script, strlen(replay_script)), ARG("3", 1);
	ARG(src, strlen(src)), ARG(d->key, strlen(d->key)), ARG(d->bytes_key, strlen(d->bytes_key));
	ARG(el->element[0]->str, el->element[0]->len), ARG(len, strlen(len));
	for (size_t i = 0; i < f.n; i++)
		ARG(f.name[i], strlen(f.name[i])), ARG(f.val[i], f.len[i]);
	if (e.body_key != NULL)  /* a large body stays under its key: the entry takes it back */
		ARG(ENTRY_FIELD_BODY_KEY, strlen(ENTRY_FIELD_BODY_KEY)), ARG(e.body_key, strlen(e.body_key));
#undef ARG
	if ((rep = dt_cmdv(d, argc, argv, lens)) == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_INTEGER)
		rc = 0;
	else
		dt_err("%s: replay to %s failed: %s", el->element[0]->str, src,
		       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	freeReplyObject(rep);
	return rc;
}

static int replay_one(struct dt *d, const redisReply *el)
{
	char src[DT_KEY_MAX];
	int rc;

	if (!dt_wanted(d, el))
		return 0;
	if (replay_route(d, el, src, sizeof(src)) != 0)
		rc = 1;
	else if ((rc = replay_group(d, src)) == 0)
		rc = replay_exec(d, el, src);
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

/* Delete dead letters and the keys of their large bodies, together: no body outlives its entry. */
static const char purge_script[] =
	"local n = 0\n"
	"for i = 1, #ARGV do\n"
	"  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])\n"
	"  if #e == 1 then\n"
	"    local f = e[1][2]\n"
	"    for j = 1, #f, 2 do if f[j] == '" ENTRY_FIELD_BODY_KEY "' then redis.call('DEL', f[j + 1]) end end\n"
	"    n = n + redis.call('XDEL', KEYS[1], ARGV[i])\n"
	"  end\n"
	"end\n"
	"return n\n";

/* Purge ids (at most DT_PAGE); the number deleted, or -1 (reported). */
static long long purge_ids(struct dt *d, const char **ids, int n)
{
	const char *argv[4 + DT_PAGE];
	long long deleted = -1;
	int argc = 0;
	redisReply *rep;

	argv[argc++] = "EVAL";
	argv[argc++] = purge_script;
	argv[argc++] = "1";
	argv[argc++] = d->key;
	for (int i = 0; i < n && i < DT_PAGE; i++)
		argv[argc++] = ids[i];
	if ((rep = dt_cmdv(d, argc, argv, NULL)) == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_INTEGER)
		deleted = rep->integer;
	else
		dt_err("purge of %s failed: %s", d->key, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	freeReplyObject(rep);
	return deleted;
}

static int purge_page(struct dt *d, const redisReply *page)
{
	const char *ids[DT_PAGE];
	int n = 0;
	long long deleted;

	for (size_t i = 0; i < page->elements && n < DT_PAGE; i++)
		if (dt_valid(page->element[i]) && dt_wanted(d, page->element[i]))
			ids[n++] = page->element[i]->element[0]->str;
	if (n == 0)
		return 0;
	if ((deleted = purge_ids(d, ids, n)) < 0)
		return -1;
	d->count += (long)deleted;
	return 0;
}

static int purge_one(struct dt *d, const redisReply *el)
{
	const char *id = el->element[0]->str;
	long long deleted = purge_ids(d, &id, 1);

	if (deleted < 0)
		return -1;
	if (deleted == 1) {
		d->count++;
	} else {
		dt_err("%s: not deleted: already gone", id);
		d->failed = true;
	}
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

/* Takes "--route UPSTREAM/PROJECT" out of argv (list, and replay or purge with --all only). */
static int take_route(struct dt *d, int *argc, char **argv)
{
	for (int i = 2; i < *argc; i++) {
		if (strcmp(argv[i], "--route") != 0)
			continue;
		if (i + 1 >= *argc || strchr(argv[i + 1], '/') == NULL || d->route != NULL)
			return -1;
		d->route = argv[i + 1];
		memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(*argv));
		*argc -= 2;
		i--;
	}
	if (d->route != NULL && strcmp(argv[1], "list") != 0 && !(*argc == 3 && strcmp(argv[2], "--all") == 0))
		return -1;  /* ids name their entries already */
	return 0;
}

/* The dead-letter streams: the one, or with a cluster every configured route's. */
static int dt_keys(struct dt *d)
{
	const struct config *cfg = d->cfg;
	char q[DT_KEY_MAX];
	size_t n = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++)
		n += cfg->upstreams[i].nprojects;
	if ((d->keys = calloc(n + 1, sizeof(*d->keys))) == NULL)
		return -1;
	if (cfg->redis_cluster.n == 0) {
		d->nkeys = 1;
		return entry_dead_key(cfg->redis_prefix, d->keys[0], sizeof(d->keys[0])) != 0 ||
		       entry_bytes_key(cfg->redis_prefix, d->bytes_key, sizeof(d->bytes_key)) != 0 ? -1 : 0;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++)
		for (size_t j = 0; j < cfg->upstreams[i].nprojects; j++)
			if (entry_cluster_stream_key(cfg->redis_prefix, cfg->upstreams[i].name, cfg->upstreams[i].projects[j].name,
						     q, sizeof(q)) != 0 ||
			    entry_cluster_sibling_key(q, ENTRY_CLUSTER_DEAD, d->keys[d->nkeys++], sizeof(d->keys[0])) != 0)
				return -1;
	return 0;
}

int deadtool_run(const struct config *cfg, int argc, char **argv)
{
	struct dt d;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.now_ms = clock_epoch_ms();
	if (argc < 2 || take_route(&d, &argc, argv) != 0 || !dt_args_ok(argc, argv)) {
		dt_usage();
		return 2;
	}
	if (dt_keys(&d) != 0) {
		dt_err("redis.prefix is too long (or out of memory)");
		free(d.keys);
		return 1;
	}
	if (dt_connect(&d) == 0)
		rc = dt_verb(&d, argc, argv);
	redissync_close(d.rs);
	free(d.keys);
	fflush(stdout);
	return rc != 0 || d.failed ? 1 : 0;
}
