/* fleetsync.c - shared upstream knowledge: the records (pure), then the scripts that read and
 * write them on the loop (thin I/O over the owner's connection). */
#include "fleetsync.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "category.h"
#include "clock.h"
#include "config.h"
#include "entry.h"
#include "log.h"

/* ---- pure: the records ---- */

static bool reason_ok(const char *s, size_t len)
{
	if (len >= RATELIMIT_REASON_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* One field per name: the longest duration wins (with its reason). */
static size_t add_field(struct fleetsync_field *out, size_t n, size_t max, const char *scope, const char *cat,
			long long ms, const char *reason)
{
	char name[FLEETSYNC_NAME_MAX];

	snprintf(name, sizeof(name), "%s:%s", scope, cat);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(out[i].name, name) != 0)
			continue;
		if (ms > out[i].ms) {
			out[i].ms = ms;
			snprintf(out[i].reason, sizeof(out[i].reason), "%s", reason);
		}
		return n;
	}
	if (n == max)
		return n;
	snprintf(out[n].name, sizeof(out[n].name), "%s", name);
	out[n].ms = ms;
	snprintf(out[n].reason, sizeof(out[n].reason), "%s", reason);
	return n + 1;
}

size_t fleetsync_encode_limits(const struct ratelimit_set *set, struct fleetsync_field *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < set->n; i++) {
		const struct ratelimit *l = &set->l[i];
		const char *scope = ratelimit_scope_name(l->scope);
		const char *reason = reason_ok(l->reason, strlen(l->reason)) ? l->reason : "";
		long long ms = (long long)(l->seconds * 1000 + 0.5);

		if (ms <= 0)
			continue;
		if (l->all) {
			n = add_field(out, n, max, scope, "all", ms, reason);
			continue;
		}
		for (int c = 0; c < CAT__COUNT; c++)
			if (l->categories & CATEGORY_BIT(c))
				n = add_field(out, n, max, scope, category_name((enum category)c), ms, reason);
	}
	return n;
}

static bool scope_of(const char *s, size_t len, enum ratelimit_scope *out)
{
	static const enum ratelimit_scope all[] = { RATELIMIT_KEY, RATELIMIT_PROJECT, RATELIMIT_ORGANIZATION };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *name = ratelimit_scope_name(all[i]);

		if (strlen(name) == len && memcmp(name, s, len) == 0) {
			*out = all[i];
			return true;
		}
	}
	return false;
}

/* "<scope>:<category>" / "<scope>:all" and "<ms left> <reason>" into one limit of one field. */
static bool decode_field(const char *name, const char *value, struct ratelimit *l)
{
	const char *colon = name != NULL ? strchr(name, ':') : NULL, *cat, *sp;
	char *end;
	long long ms;

	if (colon == NULL || value == NULL || !scope_of(name, (size_t)(colon - name), &l->scope))
		return false;
	cat = colon + 1;
	l->all = strcmp(cat, "all") == 0;
	l->categories = l->all ? 0 : category_from_name(cat, strlen(cat));
	if (!l->all && l->categories == 0)
		return false;
	if (value[0] < '0' || value[0] > '9')
		return false;
	ms = strtoll(value, &end, 10);
	if (ms <= 0 || (*end != ' ' && *end != '\0'))
		return false;
	sp = *end == ' ' ? end + 1 : end;
	if (!reason_ok(sp, strlen(sp)))
		return false;
	snprintf(l->reason, sizeof(l->reason), "%s", sp);
	l->seconds = (double)ms / 1000;
	if (l->seconds > RATELIMIT_MAX_SECONDS)
		l->seconds = RATELIMIT_MAX_SECONDS;
	return true;
}

/* Fields of one 429 (same scope and reason, times within a second) become one limit again. */
static bool merge(struct ratelimit_set *out, const struct ratelimit *f)
{
	for (size_t i = 0; i < out->n; i++) {
		struct ratelimit *l = &out->l[i];

		if (l->scope != f->scope || strcmp(l->reason, f->reason) != 0 || fabs(l->seconds - f->seconds) > 1.0)
			continue;
		l->all = l->all || f->all;
		l->categories |= f->categories;
		if (f->seconds > l->seconds)
			l->seconds = f->seconds;
		return true;
	}
	if (out->n == RATELIMIT_MAX)
		return false;
	out->l[out->n++] = *f;
	return true;
}

enum fleetsync_decode fleetsync_decode_limits(const char *const *names, const char *const *values, size_t n,
					      struct ratelimit_set *out)
{
	enum fleetsync_decode r = FLEETSYNC_DECODED;

	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct ratelimit f;

		memset(&f, 0, sizeof(f));
		if (!decode_field(names[i], values[i], &f) || !merge(out, &f))
			r = FLEETSYNC_SKIPPED;
	}
	return r;
}

size_t fleetsync_format_state(enum fleetsync_state s, const char *id, char *buf, size_t len)
{
	int n;

	if (s == FLEETSYNC_UNKNOWN)
		return 0;
	n = snprintf(buf, len, "%s %s", fleetsync_state_name(s), id);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

static bool starts(const char *v, size_t len, const char *word)
{
	size_t w = strlen(word);

	return len >= w && memcmp(v, word, w) == 0 && (len == w || v[w] == ' ');
}

enum fleetsync_state fleetsync_parse_state(const char *v, size_t len)
{
	if (v == NULL)
		return FLEETSYNC_UNKNOWN;
	if (starts(v, len, "down"))
		return FLEETSYNC_DOWN;
	if (starts(v, len, "up"))
		return FLEETSYNC_UP;
	return FLEETSYNC_UNKNOWN;
}

const char *fleetsync_state_name(enum fleetsync_state s)
{
	switch (s) {
	case FLEETSYNC_UP: return "up";
	case FLEETSYNC_DOWN: return "down";
	case FLEETSYNC_UNKNOWN: break;
	}
	return "unknown";
}

bool fleetsync_gate(bool fresh, double held_until, double now)
{
	return !fresh || held_until > now;
}

/* ---- the I/O part ---- */

/*
 * Why one script read per period rather than pub/sub: hiredis's async context cannot take normal
 * commands once it subscribes, so pub/sub would need a second connection per Redis node (and, in
 * a cluster, per master), with its own reconnects; and a message published while a process was
 * disconnected is lost, where a record with an expiry is found by the next read. One EVAL over a
 * fixed key set (no SCAN, no KEYS) costs Redis a few GETs and HGETALLs per process and period, and
 * gives the expiry in Redis's own clock (TIME), so hosts whose clocks differ agree on "how long".
 * A limit or a recovery reaches the others within one period: fleet.sync_period (1 s).
 */
static const char POLL_LUA[] =
	"local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local n = tonumber(ARGV[1]) local out = {} "
	"for i = 1, 2 * n do out[i] = redis.call('GET', KEYS[i]) or '' end "
	"for i = 2 * n + 1, #KEYS do local h = redis.call('HGETALL', KEYS[i]) local r = {} "
	"for j = 1, #h, 2 do local u, why = string.match(h[j + 1], '^(%d+) ?(.*)$') u = tonumber(u) "
	"if u and u > now then r[#r + 1] = h[j] r[#r + 1] = string.format('%d %s', u - now, why) end end "
	"out[#out + 1] = r end return out";

/* A 429's fields: until = Redis's now + ms, extended never shortened (as throttle_apply does);
 * expired fields go; the hash expires with its longest field. */
static const char LIMITS_LUA[] =
	"if redis.replicate_commands then redis.replicate_commands() end "
	"local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
	"local h = redis.call('HGETALL', KEYS[1]) "
	"for j = 1, #h, 2 do local u = tonumber(string.match(h[j + 1], '^(%d+)')) "
	"if not u or u <= now then redis.call('HDEL', KEYS[1], h[j]) end end "
	"local longest = 0 "
	"for i = 1, #ARGV, 3 do local ms = tonumber(ARGV[i + 1]) "
	"local old = tonumber(string.match(redis.call('HGET', KEYS[1], ARGV[i]) or '', '^(%d+)')) "
	"if not old or old < now + ms then "
	"redis.call('HSET', KEYS[1], ARGV[i], string.format('%d %s', now + ms, ARGV[i + 2])) end "
	"if ms > longest then longest = ms end end "
	"if longest > 0 and redis.call('PTTL', KEYS[1]) < longest then redis.call('PEXPIRE', KEYS[1], longest) end "
	"return 1";

/* Take or renew the probe lease (KEYS[1]) and, holding it, keep "down" (KEYS[2]) alive. A fresh
 * "up" is not overwritten by a renewal (ARGV[5] = "0"): a process that has not yet read it would
 * undo a recovery; one that just went down by its own answers (ARGV[5] = "1") does overwrite. */
static const char LEASE_LUA[] =
	"local s = redis.call('GET', KEYS[2]) "
	"if ARGV[5] ~= '1' and s and string.sub(s, 1, 3) == 'up ' then return 0 end "
	"local h = redis.call('GET', KEYS[1]) if h and h ~= ARGV[1] then return 0 end "
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) "
	"return 1";

/* Reachable again: "up" for a few periods (every process reads it), the lease given back. */
static const char UP_LUA[] = "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) redis.call('DEL', KEYS[1]) return 1";

/* In periods of fleet.sync_period: how long the lease and the records live, and how long the
 * fleet's records stay trusted without a read answered. */
#define LEASE_PERIODS 3
#define LEASE_TRUST_PERIODS 2  /* the holder trusts its lease for less than it lives */
#define DOWN_PERIODS 5
#define UP_PERIODS 5
#define FRESH_PERIODS 3

struct fs_up {
	char state_key[ENTRY_KEY_MAX];
	char probe_key[ENTRY_KEY_MAX];
	enum fleetsync_state state;
	double held_until;     /* the probe lease is ours until then (monotonic), 0: not ours */
	bool leasing;          /* a lease command in flight */
};

struct fs_route {
	size_t up, pr;
	char key[ENTRY_KEY_MAX];
};

struct fleetsync {
	const struct config *cfg;
	struct event *timer;
	struct fleetsync_io io;
	struct fleetsync_hooks hooks;
	char id[FLEETSYNC_ID_MAX];
	char down_rec[FLEETSYNC_ID_MAX + 8], up_rec[FLEETSYNC_ID_MAX + 8];
	struct fs_up *ups;
	size_t nups;
	struct fs_route *routes;
	size_t nroutes;
	const char **poll_argv;
	int poll_argc;
	char nups_arg[24];
	char numkeys[24];
	double period;
	double last_ok;        /* send time of the last read answered (monotonic), 0: none */
	bool polling;
	long in_flight;        /* commands whose callbacks have not run */
	bool freed;            /* fleetsync_free ran: the last callback frees */
	unsigned long errors;
};

enum fs_kind { FS_POLL, FS_LEASE, FS_WRITE };

struct fs_cmd {
	struct fleetsync *fs;
	enum fs_kind kind;
	size_t up;
	double sent;
};

static void destroy(struct fleetsync *fs)
{
	free(fs->poll_argv);
	free(fs->routes);
	free(fs->ups);
	free(fs);
}

static bool fresh(const struct fleetsync *fs, double now)
{
	return fs->last_ok > 0 && now - fs->last_ok < FRESH_PERIODS * fs->period;
}

static void reply_cb(void *arg, redisReply *reply);

static bool send_cmd(struct fleetsync *fs, enum fs_kind kind, size_t up, int argc, const char **argv,
		     const size_t *lens)
{
	struct fs_cmd *c = malloc(sizeof(*c));

	if (c == NULL)
		return false;
	*c = (struct fs_cmd){ fs, kind, up, clock_mono() };
	if (!fs->io.send(fs->io.arg, reply_cb, c, argc, argv, lens)) {
		free(c);
		return false;
	}
	fs->in_flight++;
	return true;
}

static void ms_arg(char *buf, size_t len, double seconds)
{
	snprintf(buf, len, "%lld", (long long)(seconds * 1000 + 0.5));
}

/* force: this process went down by its own answers (it may overwrite a fresh "up"). */
static void send_lease(struct fleetsync *fs, size_t i, bool force)
{
	struct fs_up *u = &fs->ups[i];
	char lease[24], down[24];
	const char *argv[] = { "EVAL", LEASE_LUA, "2", u->probe_key, u->state_key, fs->id, lease, fs->down_rec, down,
			       force ? "1" : "0" };

	if (u->leasing)
		return;
	ms_arg(lease, sizeof(lease), LEASE_PERIODS * fs->period);
	ms_arg(down, sizeof(down), DOWN_PERIODS * fs->period);
	u->leasing = send_cmd(fs, FS_LEASE, i, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL);
}

static void on_lease(struct fleetsync *fs, const struct fs_cmd *c, const redisReply *reply)
{
	struct fs_up *u = &fs->ups[c->up];

	u->leasing = false;
	if (reply->type != REDIS_REPLY_INTEGER)
		return;
	u->held_until = reply->integer == 1 ? c->sent + LEASE_TRUST_PERIODS * fs->period : 0;
	if (reply->integer == 1)
		u->state = FLEETSYNC_DOWN;
}

/* A route's record: [name, "<ms> <reason>", ...]. */
static void apply_limits(struct fleetsync *fs, const struct fs_route *rt, const redisReply *r)
{
	const char *names[FLEETSYNC_FIELDS_MAX], *values[FLEETSYNC_FIELDS_MAX];
	struct ratelimit_set set;
	size_t n = 0;

	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
		return;
	for (size_t j = 0; j + 1 < r->elements && n < FLEETSYNC_FIELDS_MAX; j += 2) {
		if (r->element[j]->type != REDIS_REPLY_STRING || r->element[j + 1]->type != REDIS_REPLY_STRING)
			continue;
		names[n] = r->element[j]->str;
		values[n++] = r->element[j + 1]->str;
	}
	if (fleetsync_decode_limits(names, values, n, &set) != FLEETSYNC_DECODED)
		log_debug("fleetsync: a rate-limit record of %s has fields sentryq did not write", rt->key);
	if (set.n > 0 && fs->hooks.on_limits != NULL)
		fs->hooks.on_limits(fs->hooks.arg, rt->up, rt->pr, &set);
}

static void on_poll(struct fleetsync *fs, const struct fs_cmd *c, const redisReply *reply)
{
	fs->polling = false;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * fs->nups + fs->nroutes) {
		fs->errors++;
		return;
	}
	fs->last_ok = c->sent;
	for (size_t i = 0; i < fs->nups; i++) {
		struct fs_up *u = &fs->ups[i];
		const redisReply *st = reply->element[2 * i], *pr = reply->element[2 * i + 1];

		u->state = st->type == REDIS_REPLY_STRING ? fleetsync_parse_state(st->str, st->len) : FLEETSYNC_UNKNOWN;
		if (!u->leasing && (pr->type != REDIS_REPLY_STRING || strcmp(pr->str, fs->id) != 0))
			u->held_until = 0;  /* expired, or another process holds it */
		if (u->state == FLEETSYNC_DOWN && fs->hooks.on_down != NULL)
			fs->hooks.on_down(fs->hooks.arg, i);
		else if (u->state == FLEETSYNC_UP && fs->hooks.on_up != NULL)
			fs->hooks.on_up(fs->hooks.arg, i, c->sent);
	}
	for (size_t k = 0; k < fs->nroutes; k++)
		apply_limits(fs, &fs->routes[k], reply->element[2 * fs->nups + k]);
	/* Lease after the read: a process that just read "up" is no longer down and does not ask. */
	for (size_t i = 0; i < fs->nups; i++)
		if (fs->hooks.local_down != NULL && fs->hooks.local_down(fs->hooks.arg, i))
			send_lease(fs, i, false);
}

static void reply_cb(void *arg, redisReply *reply)
{
	struct fs_cmd *c = arg;
	struct fleetsync *fs = c->fs;

	fs->in_flight--;
	if (fs->freed) {
		if (fs->in_flight == 0)
			destroy(fs);
		free(c);
		return;
	}
	if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
		fs->errors++;
		if (reply != NULL)
			log_debug("fleetsync: %s", reply->str);
		if (c->kind == FS_POLL)
			fs->polling = false;
		else if (c->kind == FS_LEASE)
			fs->ups[c->up].leasing = false;
	} else if (c->kind == FS_POLL) {
		on_poll(fs, c, reply);
	} else if (c->kind == FS_LEASE) {
		on_lease(fs, c, reply);
	}
	free(c);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleetsync *fs = arg;

	(void)fd;
	(void)what;
	if (fs->polling)
		return;  /* one read at a time: a slow Redis is not asked twice */
	fs->polling = send_cmd(fs, FS_POLL, 0, fs->poll_argc, fs->poll_argv, NULL);
}

static int init_keys(struct fleetsync *fs)
{
	const struct config *cfg = fs->cfg;
	const char *prefix = cfg->redis_prefix;
	size_t k = 0, a = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++) {
		fs->nroutes += cfg->upstreams[i].nprojects;
		if (entry_fleet_state_key(prefix, cfg->upstreams[i].name, fs->ups[i].state_key, ENTRY_KEY_MAX) != 0 ||
		    entry_fleet_probe_key(prefix, cfg->upstreams[i].name, fs->ups[i].probe_key, ENTRY_KEY_MAX) != 0)
			return -1;
	}
	fs->routes = calloc(fs->nroutes ? fs->nroutes : 1, sizeof(*fs->routes));
	fs->poll_argc = (int)(4 + 2 * fs->nups + fs->nroutes);  /* EVAL, script, numkeys, keys, ARGV[1] */
	fs->poll_argv = calloc((size_t)fs->poll_argc, sizeof(*fs->poll_argv));
	if (fs->routes == NULL || fs->poll_argv == NULL)
		return -1;
	snprintf(fs->nups_arg, sizeof(fs->nups_arg), "%zu", fs->nups);
	fs->poll_argv[a++] = "EVAL";
	fs->poll_argv[a++] = POLL_LUA;
	fs->poll_argv[a++] = NULL;  /* numkeys, below */
	for (size_t i = 0; i < fs->nups; i++) {
		fs->poll_argv[a++] = fs->ups[i].state_key;
		fs->poll_argv[a++] = fs->ups[i].probe_key;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		for (size_t j = 0; j < cfg->upstreams[i].nprojects; j++, k++) {
			fs->routes[k].up = i;
			fs->routes[k].pr = j;
			if (entry_fleet_limits_key(prefix, cfg->upstreams[i].name, cfg->upstreams[i].projects[j].name,
						   fs->routes[k].key, ENTRY_KEY_MAX) != 0)
				return -1;
			fs->poll_argv[a++] = fs->routes[k].key;
		}
	}
	fs->poll_argv[a++] = fs->nups_arg;
	return 0;
}

struct fleetsync *fleetsync_new(struct event_base *base, const struct config *cfg, const char *id,
				const struct fleetsync_io *io, const struct fleetsync_hooks *hooks)
{
	struct fleetsync *fs;
	struct timeval tv;

	if (!cfg->fleet_sync || (fs = calloc(1, sizeof(*fs))) == NULL)
		return NULL;
	fs->cfg = cfg;
	fs->io = *io;
	fs->hooks = *hooks;
	fs->period = cfg->fleet_sync_period;
	fs->nups = cfg->nupstreams;
	snprintf(fs->id, sizeof(fs->id), "%s", id);
	if (fleetsync_format_state(FLEETSYNC_DOWN, fs->id, fs->down_rec, sizeof(fs->down_rec)) == 0 ||
	    fleetsync_format_state(FLEETSYNC_UP, fs->id, fs->up_rec, sizeof(fs->up_rec)) == 0 ||
	    (fs->ups = calloc(fs->nups ? fs->nups : 1, sizeof(*fs->ups))) == NULL || init_keys(fs) != 0)
		goto fail;
	snprintf(fs->numkeys, sizeof(fs->numkeys), "%zu", 2 * fs->nups + fs->nroutes);
	fs->poll_argv[2] = fs->numkeys;
	fs->timer = event_new(base, -1, EV_PERSIST, tick_cb, fs);
	tv = clock_timeval(fs->period);
	if (fs->timer == NULL || evtimer_add(fs->timer, &tv) != 0)
		goto fail;
	return fs;
fail:
	if (fs->timer != NULL)
		event_free(fs->timer);
	destroy(fs);
	return NULL;
}

void fleetsync_free(struct fleetsync *fs)
{
	if (fs == NULL)
		return;
	if (fs->timer != NULL)
		event_free(fs->timer);
	fs->timer = NULL;
	fs->freed = true;
	if (fs->in_flight == 0)
		destroy(fs);
}

void fleetsync_note_down(struct fleetsync *fs, size_t upstream)
{
	if (fs == NULL || upstream >= fs->nups)
		return;
	send_lease(fs, upstream, true);
}

void fleetsync_note_up(struct fleetsync *fs, size_t upstream)
{
	struct fs_up *u;
	char ttl[24];

	if (fs == NULL || upstream >= fs->nups)
		return;
	u = &fs->ups[upstream];
	ms_arg(ttl, sizeof(ttl), UP_PERIODS * fs->period);
	u->held_until = 0;
	u->state = FLEETSYNC_UP;
	send_cmd(fs, FS_WRITE, upstream, 7,
		 (const char *[]){ "EVAL", UP_LUA, "2", u->probe_key, u->state_key, fs->up_rec, ttl }, NULL);
}

void fleetsync_note_limits(struct fleetsync *fs, size_t upstream, size_t project, const struct ratelimit_set *set)
{
	struct fleetsync_field f[FLEETSYNC_FIELDS_MAX];
	char ms[FLEETSYNC_FIELDS_MAX][24];
	const char *argv[4 + 3 * FLEETSYNC_FIELDS_MAX];
	const struct fs_route *rt = NULL;
	size_t n, a = 0;

	if (fs == NULL)
		return;
	for (size_t k = 0; k < fs->nroutes && rt == NULL; k++)
		if (fs->routes[k].up == upstream && fs->routes[k].pr == project)
			rt = &fs->routes[k];
	if (rt == NULL || (n = fleetsync_encode_limits(set, f, FLEETSYNC_FIELDS_MAX)) == 0)
		return;
	argv[a++] = "EVAL", argv[a++] = LIMITS_LUA, argv[a++] = "1", argv[a++] = rt->key;
	for (size_t i = 0; i < n; i++) {
		snprintf(ms[i], sizeof(ms[i]), "%lld", f[i].ms);
		argv[a++] = f[i].name, argv[a++] = ms[i], argv[a++] = f[i].reason;
	}
	send_cmd(fs, FS_WRITE, upstream, (int)a, argv, NULL);
}

bool fleetsync_may_probe(const struct fleetsync *fs, size_t upstream)
{
	double now = clock_mono();

	if (fs == NULL || upstream >= fs->nups)
		return true;
	return fleetsync_gate(fresh(fs, now), fs->ups[upstream].held_until, now);
}

enum fleetsync_state fleetsync_state(const struct fleetsync *fs, size_t upstream)
{
	if (fs == NULL || upstream >= fs->nups || !fresh(fs, clock_mono()))
		return FLEETSYNC_UNKNOWN;
	/* Read lately and no record: nobody found it down. */
	return fs->ups[upstream].state == FLEETSYNC_DOWN ? FLEETSYNC_DOWN : FLEETSYNC_UP;
}

bool fleetsync_probing_here(const struct fleetsync *fs, size_t upstream)
{
	return fs != NULL && upstream < fs->nups && fs->ups[upstream].held_until > clock_mono();
}

unsigned long fleetsync_errors(const struct fleetsync *fs)
{
	return fs != NULL ? fs->errors : 0;
}
