/* legacytool.c - `sentryq legacy drain`: the old list paged through, each record translated by
 * legacyq, queued in sentryq's Redis, then removed from the old one. */
#include "legacytool.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "entry.h"
#include "legacyq.h"
#include "redissync.h"
#include "route.h"
#include "strmap.h"

#define LT_PAGE 100                /* records examined per LRANGE */
#define LT_AHEAD 100               /* records read beyond them: a later one of the same second overwrote a body */
#define LT_HOST_MAX 256

/* What one record came to. */
enum lt_step {
	LT_STAYS = 0,   /* still in the old list where it was (kept, or a dry run) */
	LT_REMOVED,     /* moved: queued in sentryq's Redis, then removed from the old list */
	LT_STOP,        /* a Redis failed or memory ran out (reported): stop, the rest stays */
};

struct lt {
	const struct config *cfg;
	struct route *routes;
	struct redissync *old, *sq;
	char host[LT_HOST_MAX];
	int port, db;
	const char *list, *prefix;
	bool dry;
	char bytes_key[ENTRY_KEY_MAX];
	struct strmap *grouped;   /* streams whose consumer group is known to exist */
	char (*suffix)[LEGACYQ_SUFFIX_MAX];  /* the body key suffix of each record of a page, */
	const char **later;                  /* pointing there, NULL for one that is no record */
	long **moved_to;          /* [upstream][project]: records moved to each route */
	long moved, unroutable, missing, malformed, gone;
	long long total, examined;
};

/* Queue one entry, unless sentryq's queue is over queue.max_bytes (what ingest answers 429 for):
 * XADD and the byte count in one script. KEYS: the route's stream, the byte counter; ARGV: the
 * body length, queue.max_bytes, then the entry's fields. 1 queued, 0 full. */
static const char put_script[] =
	"local max = tonumber(ARGV[2])\n"
	"if max > 0 and (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) >= max then return 0 end\n"
	"local f = {}\n"
	"for i = 3, #ARGV do f[#f + 1] = ARGV[i] end\n"
	"redis.call('XADD', KEYS[1], '*', unpack(f))\n"
	"redis.call('INCRBY', KEYS[2], ARGV[1])\n"
	"return 1\n";

/* The record out of the old list, and its body with it when it was there to remove. KEYS: the
 * list, the body key; ARGV: the element. Returns how many elements were removed (0 or 1). */
static const char take_script[] =
	"local n = redis.call('LREM', KEYS[1], 1, ARGV[1])\n"
	"if n > 0 then redis.call('DEL', KEYS[2]) end\n"
	"return n\n";

static void lt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void lt_err(const char *fmt, ...)
{
	va_list ap;

	fputs("sentryq: legacy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void lt_usage(void)
{
	lt_err("usage: sentryq -c FILE legacy drain --from HOST:PORT[/DB] [--dry-run] [--list NAME] "
	       "[--body-prefix PREFIX]  (the old Redis's password, if any, in $" LEGACYTOOL_PASSWORD_ENV ")");
}

/* NULL (reported) when the connection failed; an error reply is the caller's to judge. */
static redisReply *lt_cmd(struct redissync *rs, const char *which, int argc, const char **argv, const size_t *lens)
{
	char err[256];
	redisReply *rep = redissync_call(rs, argc, argv, lens, err, sizeof(err));

	if (rep == NULL)
		lt_err("%s: %s", which, err);
	return rep;
}

static const char *reply_error(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply";
}

/* ---- the command line ---- */

/* "--name VALUE" or "--name=VALUE": the value, or NULL when argv[*i] is not that option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

static int lt_args(struct lt *d, int argc, char **argv)
{
	const char *from = NULL, *v;
	char why[128];

	if (argc < 2 || strcmp(argv[1], "drain") != 0)
		return -1;
	for (int i = 2; i < argc; i++) {
		bool missing = false;

		if (strcmp(argv[i], "--dry-run") == 0)
			d->dry = true;
		else if ((v = opt_value(argc, argv, &i, "--from", &missing)) != NULL)
			from = v;
		else if ((v = opt_value(argc, argv, &i, "--list", &missing)) != NULL)
			d->list = v;
		else if ((v = opt_value(argc, argv, &i, "--body-prefix", &missing)) != NULL)
			d->prefix = v;
		else
			return -1;
		if (missing)
			return -1;
	}
	if (from == NULL || d->list[0] == '\0' || d->prefix[0] == '\0' || strlen(d->list) >= LEGACYQ_NAME_MAX ||
	    strlen(d->prefix) >= LEGACYQ_NAME_MAX)
		return -1;
	if (legacyq_parse_address(from, d->host, sizeof(d->host), &d->port, &d->db, why, sizeof(why)) != LEGACYQ_OK) {
		lt_err("--from: %s", why);
		return -1;
	}
	return 0;
}

/* ---- connections ---- */

static int lt_connect(struct lt *d)
{
	struct redisconn_params p;
	char err[512];

	memset(&p, 0, sizeof(p));
	p.host = d->host;
	p.port = d->port;
	p.db = d->db;
	p.timeout = d->cfg->redis_timeout;
	p.reconnect_max = d->cfg->redis_reconnect_max;
	p.name = "old redis";
	/* From the environment, never the command line (where ps shows it). */
	p.password = getenv(LEGACYTOOL_PASSWORD_ENV);
	if (p.password != NULL && p.password[0] == '\0')
		p.password = NULL;
	if ((d->old = redissync_open(&p, err, sizeof(err))) == NULL) {
		lt_err("the old pipeline's Redis: %s", err);
		return -1;
	}
	if (d->dry)  /* a dry run writes nothing and reads nothing of sentryq's */
		return 0;
	redisconn_params_of(d->cfg, &p);
	if ((d->sq = redissync_open(&p, err, sizeof(err))) == NULL) {
		lt_err("sentryq's Redis: %s", err);
		return -1;
	}
	return 0;
}

/* ---- one record ---- */

static void kept(struct lt *d, const struct legacyq_record *rec, const char *what, const char *why)
{
	if (rec != NULL)
		printf("record %lld (timestamp %s) kept, %s: %s\n", d->examined + 1, rec->suffix, what, why);
	else
		printf("record %lld kept, %s: %s\n", d->examined + 1, what, why);
}

static void count_moved(struct lt *d, const struct legacyq_entry *le)
{
	size_t u = (size_t)(le->upstream - d->cfg->upstreams), p = (size_t)(le->project - le->upstream->projects);

	d->moved++;
	d->moved_to[u][p]++;
}

/* The consumer group first: a stream the XADD created would have none, and the relay reads with it. */
static int ensure_group(struct lt *d, const char *stream)
{
	const char *argv[] = { "XGROUP", "CREATE", stream, ENTRY_GROUP, "0", "MKSTREAM" };
	redisReply *rep;
	int rc = 0;

	if (strmap_get(d->grouped, stream) != NULL)
		return 0;
	if ((rep = lt_cmd(d->sq, "sentryq's Redis", 6, argv, NULL)) == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "BUSYGROUP", 9) != 0) {
		lt_err("sentryq's Redis: XGROUP CREATE %s failed: %s", stream, rep->str);
		rc = -1;
	} else if (strmap_put(d->grouped, stream, d) == STRMAP_NOMEM) {
		lt_err("out of memory");
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

static enum lt_step put(struct lt *d, const struct legacyq_entry *le)
{
	const char *argv[6 + 2 * ENTRY_FIELDS_MAX];
	size_t lens[6 + 2 * ENTRY_FIELDS_MAX];
	char len[24], max[24], bk[ENTRY_KEY_MAX];
	const char *bytes_key = d->bytes_key;
	struct entry_fields f;
	redisReply *rep;
	enum lt_step step = LT_STOP;
	int argc = 0;

	/* With a cluster, the route's own counter, in its stream's slot. */
	if (d->cfg->redis_cluster.n > 0 &&
	    entry_cluster_sibling_key(le->stream, ENTRY_CLUSTER_BYTES, bk, sizeof(bk)) == 0)
		bytes_key = bk;
	entry_fields(&le->e, clock_epoch_ms(), false, &f);
	snprintf(len, sizeof(len), "%zu", le->e.body_len);
	snprintf(max, sizeof(max), "%zu", d->cfg->queue_max_bytes);
#define ARG(s, l) (argv[argc] = (s), lens[argc++] = (l))
	ARG("EVAL", 4), ARG(put_script, strlen(put_script)), ARG("2", 1);
	ARG(le->stream, strlen(le->stream)), ARG(bytes_key, strlen(bytes_key));
	ARG(len, strlen(len)), ARG(max, strlen(max));
	for (size_t i = 0; i < f.n; i++)
		ARG(f.name[i], strlen(f.name[i])), ARG(f.val[i], f.len[i]);
#undef ARG
	if ((rep = lt_cmd(d->sq, "sentryq's Redis", argc, argv, lens)) == NULL)
		return LT_STOP;
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
		step = LT_REMOVED;
	else if (rep->type == REDIS_REPLY_INTEGER)
		lt_err("sentryq's queue holds queue.max_bytes of bodies: stopped; run again once it has forwarded them");
	else
		lt_err("sentryq's Redis: queueing to %s failed: %s", le->route, reply_error(rep));
	freeReplyObject(rep);
	return step;
}

static enum lt_step take(struct lt *d, const redisReply *el, const char *body_key)
{
	const char *argv[] = { "EVAL", take_script, "2", d->list, body_key, el->str };
	size_t lens[] = { 4, strlen(take_script), 1, strlen(d->list), strlen(body_key), el->len };
	redisReply *rep = lt_cmd(d->old, "the old pipeline's Redis", 6, argv, lens);
	enum lt_step step = LT_REMOVED;

	if (rep == NULL)
		return LT_STOP;
	if (rep->type != REDIS_REPLY_INTEGER) {
		lt_err("the old pipeline's Redis: removing a moved record failed: %s (it is now in both queues)",
		       reply_error(rep));
		step = LT_STOP;
	} else if (rep->integer == 0) {
		d->gone++;  /* someone else took it from the list meanwhile: queued here all the same */
	}
	freeReplyObject(rep);
	return step;
}

/* The body at the record's key: *body NULL when there is none (a key of another type counts so). */
static int get_body(struct lt *d, const char *key, redisReply **rep, const char **body, size_t *len)
{
	const char *argv[] = { "GET", key };

	*body = NULL;
	*len = 0;
	if ((*rep = lt_cmd(d->old, "the old pipeline's Redis", 2, argv, NULL)) == NULL)
		return -1;
	if ((*rep)->type == REDIS_REPLY_STRING) {
		*body = (*rep)->str;
		*len = (*rep)->len;
	}
	return 0;
}

/* Translate, then queue and remove (unless a dry run). */
static enum lt_step move(struct lt *d, const redisReply *el, const struct legacyq_record *rec,
			 const char *const *later, size_t nlater)
{
	char key[LEGACYQ_KEY_MAX], why[LEGACYQ_WHY_MAX];
	struct legacyq_entry le;
	enum legacyq_result r;
	enum lt_step step = LT_STAYS;
	redisReply *brep = NULL;
	const char *body;
	size_t blen;

	if (legacyq_body_key(d->prefix, rec, key, sizeof(key)) != 0) {
		kept(d, rec, "malformed", "its body key is too long");
		d->malformed++;
		return LT_STAYS;
	}
	if (get_body(d, key, &brep, &body, &blen) != 0)
		return LT_STOP;
	if (legacyq_pair(rec, later, nlater, body, blen, why, sizeof(why)) != LEGACYQ_OK) {
		kept(d, rec, "missing body (unpairable)", why);
		d->missing++;
		freeReplyObject(brep);
		return LT_STAYS;
	}
	r = legacyq_translate(rec, d->cfg, d->routes, body, blen, &le, why, sizeof(why));
	switch (r) {
	case LEGACYQ_OK:
		if (d->dry) {
			count_moved(d, &le);
		} else if (ensure_group(d, le.stream) != 0) {
			step = LT_STOP;
		} else if ((step = put(d, &le)) == LT_REMOVED && (step = take(d, el, key)) == LT_REMOVED) {
			count_moved(d, &le);
		}
		break;
	case LEGACYQ_UNROUTABLE:
		kept(d, rec, "unroutable", why);
		d->unroutable++;
		break;
	case LEGACYQ_REFUSED:
		{
			char msg[LEGACYQ_WHY_MAX + 32];

			snprintf(msg, sizeof(msg), "ingest would answer %s", why);
			kept(d, rec, "malformed", msg);
			d->malformed++;
		}
		break;
	case LEGACYQ_MALFORMED:
	case LEGACYQ_UNPAIRED:
		kept(d, rec, "malformed", why);
		d->malformed++;
		break;
	case LEGACYQ_NOMEM:
		lt_err("out of memory");
		step = LT_STOP;
		break;
	}
	legacyq_entry_free(&le);
	freeReplyObject(brep);
	return step;
}

static enum lt_step one(struct lt *d, const redisReply *el, const char *const *later, size_t nlater)
{
	struct legacyq_record rec;
	char why[LEGACYQ_WHY_MAX];
	enum legacyq_result r = legacyq_parse(el->str, el->len, &rec, why, sizeof(why));
	enum lt_step step = LT_STAYS;

	if (r == LEGACYQ_NOMEM) {
		lt_err("out of memory");
		step = LT_STOP;
	} else if (r != LEGACYQ_OK) {
		kept(d, rec.suffix[0] != '\0' ? &rec : NULL, "malformed", why);
		d->malformed++;
	} else {
		step = move(d, el, &rec, later, nlater);
	}
	legacyq_record_free(&rec);
	return step;
}

/* The body key suffix of every record of a page (a record pairs with its body only when no later
 * one has the same). -1 when memory ran out (reported). */
static int page_suffixes(struct lt *d, const redisReply *rep)
{
	for (size_t j = 0; j < rep->elements; j++) {
		const redisReply *el = rep->element[j];
		struct legacyq_record rec;
		char ignored[8];
		enum legacyq_result r = el->type == REDIS_REPLY_STRING
						? legacyq_parse(el->str, el->len, &rec, ignored, sizeof(ignored))
						: LEGACYQ_MALFORMED;

		d->later[j] = NULL;
		if (r == LEGACYQ_OK) {
			memcpy(d->suffix[j], rec.suffix, sizeof(d->suffix[j]));
			d->later[j] = d->suffix[j];
		}
		if (el->type == REDIS_REPLY_STRING)
			legacyq_record_free(&rec);
		if (r == LEGACYQ_NOMEM) {
			lt_err("out of memory");
			return -1;
		}
	}
	return 0;
}

/* ---- the list ---- */

static int lt_len(struct lt *d)
{
	const char *argv[] = { "LLEN", d->list };
	redisReply *rep = lt_cmd(d->old, "the old pipeline's Redis", 2, argv, NULL);
	int rc = 0;

	if (rep == NULL)
		return -1;
	if (rep->type == REDIS_REPLY_INTEGER) {
		d->total = rep->integer;
	} else {
		lt_err("the old pipeline's Redis: LLEN %s failed: %s", d->list, reply_error(rep));
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

/*
 * The records there at the start, in list order. Kept ones stay at the head, moved ones leave it,
 * so the next unexamined record is at index `pos` (the records kept so far; all examined ones in a
 * dry run). Each page reads LT_AHEAD records more than it examines: a later record of the same
 * second among them overwrote the body. The loop examines at least one record per page or ends,
 * so it ends within `total` pages.
 */
static int lt_drain(struct lt *d)
{
	long long pos = 0;
	char start[24], stop[24];

	while (d->examined < d->total) {
		const char *argv[] = { "LRANGE", d->list, start, stop };
		long long want = d->total - d->examined < LT_PAGE ? d->total - d->examined : LT_PAGE;
		redisReply *rep;
		size_t n;
		int rc = 0;

		snprintf(start, sizeof(start), "%lld", pos);
		snprintf(stop, sizeof(stop), "%lld", pos + want + LT_AHEAD - 1);  /* inclusive */
		if ((rep = lt_cmd(d->old, "the old pipeline's Redis", 4, argv, NULL)) == NULL)
			return -1;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements > (size_t)(LT_PAGE + LT_AHEAD)) {
			lt_err("the old pipeline's Redis: LRANGE %s failed: %s", d->list, reply_error(rep));
			freeReplyObject(rep);
			return -1;
		}
		n = rep->elements < (size_t)want ? rep->elements : (size_t)want;
		if (page_suffixes(d, rep) != 0)
			rc = -1;
		for (size_t i = 0; i < n && rc == 0; i++) {
			const redisReply *el = rep->element[i];
			enum lt_step step;

			if (el->type != REDIS_REPLY_STRING) {
				lt_err("the old pipeline's Redis: LRANGE %s: unexpected reply", d->list);
				rc = -1;
				break;
			}
			step = one(d, el, d->later + i + 1, rep->elements - i - 1);
			if (step == LT_STOP) {
				rc = -1;
				break;
			}
			d->examined++;
			if (step == LT_STAYS)
				pos++;
		}
		freeReplyObject(rep);
		if (rc != 0)
			return -1;
		if (n == 0)  /* the list got shorter than it was (someone else takes from it) */
			break;
	}
	return 0;
}

/* ---- the report ---- */

static void lt_report(const struct lt *d, bool stopped)
{
	const struct config *cfg = d->cfg;

	for (size_t u = 0; u < cfg->nupstreams; u++)
		for (size_t p = 0; p < cfg->upstreams[u].nprojects; p++)
			if (d->moved_to[u][p] > 0)
				printf("%s %ld to %.64s/%ld\n", d->dry ? "would move" : "moved", d->moved_to[u][p],
				       cfg->upstreams[u].name, cfg->upstreams[u].projects[p].id);
	if (d->gone > 0)
		printf("%ld of the moved records had already left the old list (someone else takes from it)\n", d->gone);
	printf("%s%s %ld, unroutable %ld (kept), missing body %ld (kept), malformed %ld (kept)%s\n",
	       d->dry ? "dry run: " : "", d->dry ? "would move" : "moved", d->moved, d->unroutable, d->missing,
	       d->malformed, d->dry ? "; nothing was moved" : "");
	if (stopped)
		lt_err("stopped after %lld of %lld records; the %lld not examined are still in the old list", d->examined,
		       d->total, d->total - d->examined);
}

static int lt_alloc(struct lt *d)
{
	const struct config *cfg = d->cfg;

	if ((d->routes = route_new(cfg)) == NULL || (d->grouped = strmap_new()) == NULL ||
	    (d->suffix = calloc(LT_PAGE + LT_AHEAD, sizeof(*d->suffix))) == NULL ||
	    (d->later = calloc(LT_PAGE + LT_AHEAD, sizeof(*d->later))) == NULL ||
	    (d->moved_to = calloc(cfg->nupstreams + 1, sizeof(*d->moved_to))) == NULL)
		return -1;
	for (size_t u = 0; u < cfg->nupstreams; u++)
		if ((d->moved_to[u] = calloc(cfg->upstreams[u].nprojects + 1, sizeof(**d->moved_to))) == NULL)
			return -1;
	return 0;
}

static void lt_free(struct lt *d)
{
	for (size_t u = 0; d->moved_to != NULL && u < d->cfg->nupstreams; u++)
		free(d->moved_to[u]);
	free(d->moved_to);
	free(d->suffix);
	free(d->later);
	strmap_free(d->grouped);
	route_free(d->routes);
	redissync_close(d->old);
	redissync_close(d->sq);
}

enum legacytool_exit legacytool_run(const struct config *cfg, int argc, char **argv)
{
	struct lt d;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.list = LEGACYQ_LIST;
	d.prefix = LEGACYQ_BODY_PREFIX;
	if (lt_args(&d, argc, argv) != 0) {
		lt_usage();
		return LEGACYTOOL_EXIT_USAGE;
	}
	if (entry_bytes_key(cfg->redis_prefix, d.bytes_key, sizeof(d.bytes_key)) != 0) {
		lt_err("redis.prefix is too long");
		return LEGACYTOOL_EXIT_KEPT;
	}
	if (lt_alloc(&d) != 0)
		lt_err("out of memory");
	else if (lt_connect(&d) == 0 && lt_len(&d) == 0) {
		rc = lt_drain(&d);
		lt_report(&d, rc != 0);
	}
	lt_free(&d);
	fflush(stdout);
	if (rc != 0 || d.unroutable > 0 || d.missing > 0 || d.malformed > 0)
		return LEGACYTOOL_EXIT_KEPT;
	return LEGACYTOOL_EXIT_OK;
}
