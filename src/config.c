/* config.c - load sentryq's libconfig file through declarative key tables: defaults, bounds, checks. */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "category.h"
#include "endpoint.h"
#include "log.h"
#include "sentinel.h"
#include "text.h"

#define CONFIG_FILE_MAX (16u << 20) /* a relay config is a few KiB; refuse anything absurd */
#define UPSTREAMS_MAX CONFIG_UPSTREAMS_MAX
#define PROJECTS_MAX CONFIG_PROJECTS_MAX /* per upstream */
#define NAME_MAX_LEN 64             /* upstream/project names become Redis key parts */
#define CRED_MAX_LEN 127            /* fits auth.h's AUTH_FIELD_MAX with its NUL */
#define KEY_DISP_MAX 192            /* "upstreams[255].projects[4095].connect_timeout" fits */
#define ID_MAX 9007199254740991.0   /* 2^53-1: exact as a double bound, above any Sentry id */

enum key_type { KT_STRING, KT_INT, KT_LONG, KT_SIZE, KT_DOUBLE, KT_BOOL, KT_STRLIST };

#define KEY_REQUIRED 0x1 /* must be present when its enclosing group / list entry is */
#define KEY_INHERIT 0x2  /* default is copied from the struct config field at .inherit */
#define KEY_SECRET 0x4   /* never printed: keys, secrets, passwords, project names */
#define KEY_NO_ENV 0x8   /* no SENTRYQ_* variable (the deprecated log_level: log.level has it) */

/* Extra check on a stored value; string keys get the string, others NULL. 0 or -1 with why. */
typedef int (*key_check_fn)(void *obj, const char *val, char *why, size_t whylen);

struct key_def {
	const char *name;   /* path inside its scope: "listen.port", "shutdown_timeout", "url" */
	enum key_type type;
	size_t offset;      /* into the scope's struct */
	const char *def_str;
	double def;         /* numbers and bools */
	double min, max;    /* value bounds; length bounds for strings */
	key_check_fn check;
	unsigned flags;
	size_t inherit;     /* offsetof(struct config, ...) with KEY_INHERIT */
};

/* The pointer comparison inside sizeof is never evaluated; it only makes the compiler warn when a
 * table entry's type disagrees with the field it writes. */
#define FIELD(st, f, ctype) (offsetof(st, f) + 0 * sizeof(&((st *)0)->f == (ctype *)0))
#define K_STR(n, st, f) .name = (n), .type = KT_STRING, .offset = FIELD(st, f, char *)
#define K_INT(n, st, f) .name = (n), .type = KT_INT, .offset = FIELD(st, f, int)
#define K_LONG(n, st, f) .name = (n), .type = KT_LONG, .offset = FIELD(st, f, long)
#define K_SIZE(n, st, f) .name = (n), .type = KT_SIZE, .offset = FIELD(st, f, size_t)
#define K_DBL(n, st, f) .name = (n), .type = KT_DOUBLE, .offset = FIELD(st, f, double)
#define K_BOOL(n, st, f) .name = (n), .type = KT_BOOL, .offset = FIELD(st, f, bool)
/* A list of strings: min/max bound the count, `check` runs on each element. */
#define K_LIST(n, st, f) .name = (n), .type = KT_STRLIST, .offset = FIELD(st, f, struct config_strlist)
#define CFG struct config
#define UPS struct config_upstream
#define PRJ struct config_project

static int check_name(void *obj, const char *val, char *why, size_t whylen);
static int check_credential(void *obj, const char *val, char *why, size_t whylen);
static int check_url(void *obj, const char *val, char *why, size_t whylen);
static int check_path(void *obj, const char *val, char *why, size_t whylen);
static int check_level(void *obj, const char *val, char *why, size_t whylen);
static int check_token(void *obj, const char *val, char *why, size_t whylen);
static int check_header_name(void *obj, const char *val, char *why, size_t whylen);
static int check_method(void *obj, const char *val, char *why, size_t whylen);
static int check_reply(void *obj, const char *val, char *why, size_t whylen);
static int check_category(void *obj, const char *val, char *why, size_t whylen);
static int check_pattern(void *obj, const char *val, char *why, size_t whylen);
static int check_hostport(void *obj, const char *val, char *why, size_t whylen);
static int check_format(void *obj, const char *val, char *why, size_t whylen);
static int check_seed(void *obj, const char *val, char *why, size_t whylen);
static int check_role(void *obj, const char *val, char *why, size_t whylen);

static const struct key_def top_keys[] = {
	{ K_STR("listen.address", CFG, listen_address), .def_str = "127.0.0.1", .min = 1, .max = 255 },
	{ K_INT("listen.port", CFG, listen_port), .def = 9000, .min = 1, .max = 65535 },
	{ K_SIZE("listen.max_body_size", CFG, max_body_size), .def = 209715200, .min = 1,
	  .max = 536870912 },  /* Redis keeps a string to 512 MiB (proto-max-bulk-len): a body, too */
	{ K_SIZE("listen.max_body_memory", CFG, max_body_memory), .def = 268435456, .min = 1048576,
	  .max = 1099511627776.0 },
	{ K_INT("listen.max_connections", CFG, listen_max_connections), .def = 0, .min = 0, .max = 1000000 },
	{ K_DBL("listen.head_timeout", CFG, head_timeout), .def = 5, .min = 0.001, .max = 3600 },
	{ K_DBL("listen.min_body_rate", CFG, min_body_rate), .def = 1024, .min = 0, .max = 1e12 },
	{ K_STR("listen.tunnel_path", CFG, tunnel_path), .def_str = "/tunnel", .min = 0, .max = 255,
	  .check = check_path },
	{ K_DBL("listen.client_timeout", CFG, client_timeout), .def = 30, .min = 0.001, .max = 3600 },
	{ K_BOOL("listen.reuse_port", CFG, listen_reuse_port), .def = 0 },
	{ K_STR("redis.host", CFG, redis_host), .def_str = "127.0.0.1", .min = 1, .max = 255 },
	{ K_INT("redis.port", CFG, redis_port), .def = 6379, .min = 1, .max = 65535 },
	{ K_STR("redis.password", CFG, redis_password), .min = 1, .max = 512, .flags = KEY_SECRET },
	{ K_INT("redis.db", CFG, redis_db), .def = 0, .min = 0, .max = 1000 },
	{ K_STR("redis.unix_socket", CFG, redis_unix_socket), .min = 1, .max = 107 /* sun_path */ },
	{ K_STR("redis.prefix", CFG, redis_prefix), .def_str = "sentryq:", .min = 0, .max = 128,
	  .check = check_token },
	{ K_DBL("redis.timeout", CFG, redis_timeout), .def = 5, .min = 0.001, .max = 3600 },
	{ K_SIZE("redis.buffer_bytes", CFG, redis_buffer_bytes), .def = 67108864, .min = 0,
	  .max = 68719476736.0 },
	{ K_DBL("redis.reconnect_max", CFG, redis_reconnect_max), .def = 5, .min = 0.001, .max = 3600 },
	{ K_STR("redis.spool_file", CFG, redis_spool_file), .min = 1, .max = 4096 },
	{ K_LIST("redis.sentinels", CFG, redis_sentinels), .min = 1, .max = 64, .check = check_hostport },
	{ K_STR("redis.master_name", CFG, redis_master_name), .min = 1, .max = 128, .check = check_token },
	{ K_STR("redis.sentinel_password", CFG, redis_sentinel_password), .min = 1, .max = 512 },
	{ K_LIST("redis.cluster", CFG, redis_cluster), .min = 1, .max = 64, .check = check_seed },
	{ K_INT("redis.wait_replicas", CFG, redis_wait_replicas), .def = 0, .min = 0, .max = 100 },
	{ K_DBL("redis.wait_timeout", CFG, redis_wait_timeout), .def = 1, .min = 0.001, .max = 3600 },
	{ K_LONG("queue.max_pending", CFG, queue_max_pending), .def = 1000000, .min = 1, .max = 1e9 },
	{ K_SIZE("queue.max_bytes", CFG, queue_max_bytes), .def = 1073741824, .min = 1,
	  .max = 1099511627776.0 },
	{ K_DBL("forward.timeout", CFG, forward_timeout), .def = 10, .min = 0.001, .max = 3600 },
	{ K_DBL("forward.connect_timeout", CFG, forward_connect_timeout), .def = 3, .min = 0.001,
	  .max = 3600 },
	{ K_INT("forward.max_connections", CFG, forward_max_connections), .def = 64, .min = 1,
	  .max = 1024 },
	{ K_INT("forward.batch", CFG, forward_batch), .def = 64, .min = 1, .max = 1000 },
	{ K_DBL("forward.retry_initial", CFG, forward_retry_initial), .def = 1, .min = 0.001,
	  .max = 86400 },
	{ K_DBL("forward.retry_max", CFG, forward_retry_max), .def = 60, .min = 0.001, .max = 86400 },
	{ K_DBL("forward.outage_grace", CFG, forward_outage_grace), .def = 10, .min = 0, .max = 86400 },
	{ K_INT("forward.max_attempts", CFG, forward_max_attempts), .def = 0, .min = 0, .max = 1000000 },
	{ K_DBL("forward.max_age", CFG, forward_max_age), .def = 86400, .min = 1, .max = 31536000 },
	{ K_DBL("forward.claim_idle", CFG, forward_claim_idle), .def = 60, .min = 0.001, .max = 86400 },
	{ K_STR("forward.consumer", CFG, forward_consumer), .min = 1, .max = 128, .check = check_token },
	{ K_DBL("forward.departed_after", CFG, forward_departed_after), .def = 600, .min = 0.001, .max = 31536000 },
	{ K_INT("forward.ingest_first", CFG, forward_ingest_first), .def = 8, .min = 0, .max = 1000000 },
	{ K_LIST("forward.headers", CFG, forward_headers), .min = 0, .max = 64, .check = check_header_name },
	{ K_SIZE("limits.max_event_size", CFG, limit_event), .def = 1048576, .min = 1, .max = 1099511627776.0 },
	{ K_SIZE("limits.max_envelope_size", CFG, limit_envelope), .def = 209715200, .min = 1,
	  .max = 1099511627776.0 },
	{ K_SIZE("limits.max_attachment_size", CFG, limit_attachment), .def = 209715200, .min = 1,
	  .max = 1099511627776.0 },
	{ K_SIZE("limits.max_attachments_size", CFG, limit_attachments), .def = 209715200, .min = 1,
	  .max = 1099511627776.0 },
	{ K_BOOL("rate_limits.passthrough", CFG, rate_limits_passthrough), .def = 0 },
	{ K_BOOL("fleet.sync", CFG, fleet_sync), .def = 1 },
	{ K_DBL("fleet.sync_period", CFG, fleet_sync_period), .def = 1, .min = 0.05, .max = 60 },
	{ K_DBL("shutdown_timeout", CFG, shutdown_timeout), .def = 10, .min = 0.001, .max = 3600 },
	{ K_STR("role", CFG, role_name), .def_str = "all", .min = 1, .max = 16, .check = check_role },
	{ K_STR("log.level", CFG, log_level), .min = 1, .max = 16, .check = check_level },
	{ K_STR("log.format", CFG, log_format), .def_str = "text", .min = 1, .max = 16, .check = check_format },
	{ K_DBL("log.stats_period", CFG, log_stats_period), .def = 60, .min = 0, .max = 86400 },
	{ K_STR("log_level", CFG, log_level_deprecated), .min = 1, .max = 16, .check = check_level,
	  .flags = KEY_NO_ENV },
	{ K_STR("metrics.address", CFG, metrics_address), .def_str = "127.0.0.1", .min = 1, .max = 255 },
	{ K_INT("metrics.port", CFG, metrics_port), .def = 0, .min = 0, .max = 65535 },
	{ K_BOOL("metrics.on_ingest", CFG, metrics_on_ingest), .def = 1 },
	{ K_STR("default_route.upstream", CFG, default_upstream), .min = 1, .max = NAME_MAX_LEN,
	  .check = check_name, .flags = KEY_REQUIRED },
	{ K_STR("default_route.project", CFG, default_project), .min = 1, .max = NAME_MAX_LEN,
	  .check = check_name, .flags = KEY_REQUIRED | KEY_SECRET },
};

static const struct key_def upstream_keys[] = {
	{ K_STR("name", UPS, name), .min = 1, .max = NAME_MAX_LEN, .check = check_name,
	  .flags = KEY_REQUIRED },
	{ K_STR("url", UPS, url), .min = 1, .max = 2048, .check = check_url, .flags = KEY_REQUIRED },
	{ K_DBL("timeout", UPS, timeout), .min = 0.001, .max = 3600, .flags = KEY_INHERIT,
	  .inherit = FIELD(CFG, forward_timeout, double) },
	{ K_DBL("connect_timeout", UPS, connect_timeout), .min = 0.001, .max = 3600,
	  .flags = KEY_INHERIT, .inherit = FIELD(CFG, forward_connect_timeout, double) },
	{ K_INT("max_connections", UPS, max_connections), .min = 1, .max = 1024, .flags = KEY_INHERIT,
	  .inherit = FIELD(CFG, forward_max_connections, int) },
	{ K_BOOL("verify", UPS, verify), .def = 1 },
	{ K_STR("ca_file", UPS, ca_file), .min = 1, .max = 4096 },
};

static const struct key_def project_keys[] = {
	{ K_STR("name", PRJ, name), .min = 1, .max = NAME_MAX_LEN, .check = check_name,
	  .flags = KEY_REQUIRED | KEY_SECRET },
	{ K_STR("key", PRJ, key), .min = 1, .max = CRED_MAX_LEN, .check = check_credential,
	  .flags = KEY_REQUIRED | KEY_SECRET },
	{ K_STR("secret", PRJ, secret), .min = 1, .max = CRED_MAX_LEN, .check = check_credential,
	  .flags = KEY_SECRET },
	{ K_LONG("id", PRJ, id), .min = 1, .max = ID_MAX, .flags = KEY_REQUIRED },
};

#define MIR struct config_mirror
#define EPT struct config_endpoint

static const struct key_def mirror_keys[] = {
	{ K_STR("upstream", MIR, upstream), .min = 1, .max = NAME_MAX_LEN, .check = check_name, .flags = KEY_REQUIRED },
	{ K_STR("project", MIR, project), .min = 1, .max = NAME_MAX_LEN, .check = check_name,
	  .flags = KEY_REQUIRED | KEY_SECRET },  /* a project name is a DSN secret */
};

static const struct key_def endpoint_keys[] = {
	{ K_STR("name", EPT, name), .min = 1, .max = 32, .check = check_name, .flags = KEY_REQUIRED },
	{ K_STR("path", EPT, path), .min = 1, .max = 256, .check = check_pattern, .flags = KEY_REQUIRED },
	{ K_LIST("methods", EPT, methods), .min = 1, .max = 8, .check = check_method, .flags = KEY_REQUIRED },
	{ K_INT("status", EPT, status), .def = 200, .min = 200, .max = 299 },
	{ K_STR("reply", EPT, reply), .def_str = "empty", .min = 1, .max = 8, .check = check_reply },
	{ K_SIZE("limit", EPT, limit), .def = 1048576, .min = 1, .max = 1099511627776.0 },
	{ K_BOOL("body_required", EPT, body_required), .def = 1 },
	{ K_LIST("categories", EPT, categories), .min = 0, .max = 32, .check = check_category },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A table scope: its keys plus the list members (NULL-terminated names) the caller loads after
 * the scalars, each with its own table. */
struct scope {
	const struct key_def *keys;
	size_t nkeys;
	const char *const *lists;
};

#define SCOPE_LISTS_MAX 4
static const char *const top_lists[] = { "upstreams", "endpoints", NULL };
static const char *const upstream_lists[] = { "projects", NULL };
static const char *const project_lists[] = { "mirror", NULL };
static const struct scope top_scope = { top_keys, NELEM(top_keys), top_lists };
static const struct scope upstream_scope = { upstream_keys, NELEM(upstream_keys), upstream_lists };
static const struct scope project_scope = { project_keys, NELEM(project_keys), project_lists };
static const struct scope mirror_scope = { mirror_keys, NELEM(mirror_keys), NULL };
static const struct scope endpoint_scope = { endpoint_keys, NELEM(endpoint_keys), NULL };

/* Which keys of a scope a group named: a small bitset, one bit per key of the table. */
#define SEEN_MAX 256
struct seen {
	uint64_t w[SEEN_MAX / 64];
};

static void seen_set(struct seen *s, size_t i)
{
	s->w[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool seen_has(const struct seen *s, size_t i)
{
	return (s->w[i / 64] >> (i % 64)) & 1;
}

_Static_assert(NELEM(top_keys) <= SEEN_MAX && NELEM(upstream_keys) <= SEEN_MAX && NELEM(project_keys) <= SEEN_MAX,
	       "key table too large for the seen set");

/* A config file's text, kept to re-read integer literals (see literal_wrapped). */
struct source {
	char *name;          /* @include name as libconfig reports it; NULL for the main file */
	char *text;
	size_t *lines;       /* offset of each line start in text */
	size_t nlines;
};

struct loader {
	config_t lc;
	struct config *cfg;
	const char *path;
	struct source main;
	struct source inc;   /* the last @include file consulted */
	char dir[4096];      /* include directory: the config file's own */
	char *err;
	size_t errlen;
};

/* ---- errors ---------------------------------------------------------------------------- */

/* Name of the file `f` came from: the main path, or an @include made relative to its directory. */
static const char *file_label(const struct loader *ld, const char *f, char *buf, size_t len)
{
	if (f == NULL)
		return ld->path;
	if (f[0] == '/' || ld->dir[0] == '\0')
		return f;
	snprintf(buf, len, "%s/%s", ld->dir, f);
	return buf;
}

/* "FILE:LINE: key 'k': msg"; LINE omitted when libconfig has none (root, absent keys). */
__attribute__((format(printf, 4, 5)))
static int fail(struct loader *ld, const config_setting_t *s, const char *key, const char *fmt, ...)
{
	char msg[512], fbuf[4200];
	const char *file = file_label(ld, s ? config_setting_source_file(s) : NULL, fbuf, sizeof(fbuf));
	unsigned line = s ? config_setting_source_line(s) : 0;
	va_list ap;

	if (ld->err == NULL || ld->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ld->err, ld->errlen, "%s:%u: key '%s': %s", file, line, key, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: key '%s': %s", file, key, msg);
	return -1;
}

static const char *type_got(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT: return "an integer";
	case CONFIG_TYPE_INT64: return "a 64-bit integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

/* ---- validators --------------------------------------------------------------------------- */

static int check_name(void *obj, const char *val, char *why, size_t whylen)
{
	for (const char *p = val; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '_' || *p == '.' || *p == '-')
			continue;
		snprintf(why, whylen, "may contain only letters, digits, '_', '.' and '-'");
		return -1;
	}
	return 0;
}

/* Sentry keys and secrets are 32 hex chars. The real ones are written, unencoded, into every
 * carrier: an X-Sentry-Auth / Authorization header (where ',' ends a field, '=' ends the value and
 * quotes are stripped: fuzz_auth found a key with '=' that came back cut short), a DSN user part
 * and the unreal/cron path (where '?', '#', '%' and '/' mean something else). So only RFC 3986
 * unreserved characters, which mean the same everywhere. */
static int check_credential(void *obj, const char *val, char *why, size_t whylen)
{
	for (const char *p = val; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~')
			continue;
		snprintf(why, whylen, "may contain only letters, digits, '-', '.', '_' and '~'");
		return -1;
	}
	return 0;
}

static int check_path(void *obj, const char *val, char *why, size_t whylen)
{
	if (*val == '\0' || (*val == '/' && strpbrk(val, " ?#") == NULL))
		return 0;
	snprintf(why, whylen, "must be \"\" or a path starting with '/' (no spaces, '?' or '#')");
	return -1;
}

static int check_level(void *obj, const char *val, char *why, size_t whylen)
{
	if (log_level_of(val, NULL) == 0)
		return 0;
	snprintf(why, whylen, "must be one of debug, info, warn, error");
	return -1;
}

static int check_format(void *obj, const char *val, char *why, size_t whylen)
{
	if (log_format_of(val, NULL) == 0)
		return 0;
	snprintf(why, whylen, "must be \"text\" or \"json\"");
	return -1;
}

static int role_of(const char *val, enum config_role *out)
{
	static const char *const names[] = { "all", "ingest", "forward" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(val, names[i]) == 0) {
			if (out != NULL)
				*out = (enum config_role)i;
			return 0;
		}
	}
	return -1;
}

static int check_role(void *obj, const char *val, char *why, size_t whylen)
{
	if (role_of(val, NULL) == 0)
		return 0;
	snprintf(why, whylen, "must be \"all\", \"ingest\" or \"forward\"");
	return -1;
}

static int check_token(void *obj, const char *val, char *why, size_t whylen)
{
	if (strchr(val, ' ') == NULL)
		return 0;
	snprintf(why, whylen, "must not contain spaces");
	return -1;
}

/* An HTTP header name (RFC 9110 token); hop-by-hop and framing headers are sentryq's own. */
static int check_header_name(void *obj, const char *val, char *why, size_t whylen)
{
	static const char *const own[] = { "Host", "Content-Length", "Transfer-Encoding", "Connection",
					   "Upgrade", "TE", "Trailer", "Keep-Alive", "X-Forwarded-For",
					   "X-Sentry-Auth", "Authorization", "Proxy-Authorization" };

	if (*val == '\0' || val[strspn(val, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
					"ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0')
		return snprintf(why, whylen, "must be a header name"), -1;
	for (size_t i = 0; i < NELEM(own); i++)
		if (strcasecmp(val, own[i]) == 0)
			return snprintf(why, whylen, "names a header sentryq sets itself"), -1;
	return 0;
}

static int check_method(void *obj, const char *val, char *why, size_t whylen)
{
	static const char *const ok[] = { "GET", "POST", "PUT", "PATCH" };

	for (size_t i = 0; i < NELEM(ok); i++)
		if (strcmp(val, ok[i]) == 0)
			return 0;
	return snprintf(why, whylen, "must be GET, POST, PUT or PATCH"), -1;
}

static int check_reply(void *obj, const char *val, char *why, size_t whylen)
{
	if (strcmp(val, "id") == 0 || strcmp(val, "uuid") == 0 || strcmp(val, "empty") == 0)
		return 0;
	return snprintf(why, whylen, "must be \"id\", \"uuid\" or \"empty\""), -1;
}

static int check_category(void *obj, const char *val, char *why, size_t whylen)
{
	if (category_from_name(val, strlen(val)) != 0)
		return 0;
	return snprintf(why, whylen, "is not a data category sentryq knows"), -1;
}

static int check_pattern(void *obj, const char *val, char *why, size_t whylen)
{
	const char *bad = endpoint_pattern_check(val);

	if (bad == NULL)
		return 0;
	return snprintf(why, whylen, "%s", bad), -1;
}

static int check_hostport(void *obj, const char *val, char *why, size_t whylen)
{
	char host[SENTINEL_HOST_MAX];
	int port;

	return sentinel_parse_addr(val, host, sizeof(host), &port, why, whylen) == SENTINEL_OK ? 0 : -1;
}

/* A Redis Cluster seed: "host:port" with the port (no default port is right for every node). */
static int check_seed(void *obj, const char *val, char *why, size_t whylen)
{
	const char *rb = strrchr(val, ']'), *colon = strrchr(val, ':');

	if (check_hostport(obj, val, why, whylen) != 0)
		return -1;
	if (colon == NULL || (rb != NULL && colon < rb))
		return snprintf(why, whylen, "must be \"host:port\" (a cluster node's port is required)"), -1;
	return 0;
}

/* ---- url ---------------------------------------------------------------------------------- */

/* Find host and port in the authority [p, end). */
static int url_authority(const char *p, const char *end, const char **host, size_t *hostlen,
			 int *port, char *why, size_t whylen)
{
	const char *colon;

	if (memchr(p, '@', (size_t)(end - p)) != NULL)
		return snprintf(why, whylen, "must not contain user info (user@host)"), -1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL || !text_host_ok(p + 1, (size_t)(rb - p - 1), true))
			return snprintf(why, whylen, "has a bad IPv6 literal"), -1;
		*host = p + 1;
		*hostlen = (size_t)(rb - p - 1);
		colon = rb + 1;
		if (colon != end && *colon != ':')
			return snprintf(why, whylen, "has junk after the IPv6 literal"), -1;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		colon = colon ? colon : end;
		*host = p;
		*hostlen = (size_t)(colon - p);
		if (!text_host_ok(p, *hostlen, false))
			return snprintf(why, whylen, "must name a host (letters, digits, '.', '-')"), -1;
	}
	if (colon != end && (*port = text_port(colon + 1, end)) == 0)
		return snprintf(why, whylen, "port must be between 1 and 65535"), -1;
	return 0;
}

/* Split "http[s]://host[:port][/prefix]" into the upstream's fields once, at load time. */
static int check_url(void *obj, const char *val, char *why, size_t whylen)
{
	struct config_upstream *up = obj;
	const char *p, *auth_end, *host;
	size_t hostlen, plen;
	int port;

	if (strncasecmp(val, "http://", 7) == 0) {
		up->tls = false, port = 80, p = val + 7;
	} else if (strncasecmp(val, "https://", 8) == 0) {
		up->tls = true, port = 443, p = val + 8;
	} else {
		return snprintf(why, whylen, "must start with http:// or https://"), -1;
	}
	if (strpbrk(val, "?# ") != NULL)
		return snprintf(why, whylen, "must not contain spaces, a query or a fragment"), -1;
	auth_end = p + strcspn(p, "/");
	if (url_authority(p, auth_end, &host, &hostlen, &port, why, whylen) < 0)
		return -1;
	plen = strlen(auth_end);
	while (plen > 0 && auth_end[plen - 1] == '/')
		plen--;
	free(up->host);
	free(up->path_prefix);
	up->host = strndup(host, hostlen);
	up->path_prefix = strndup(auth_end, plen);
	up->port = port;
	if (up->host == NULL || up->path_prefix == NULL)
		return snprintf(why, whylen, "out of memory"), -1;
	return 0;
}

/* ---- source text ---------------------------------------------------------------------------- */

/* Read the whole file (bounded) and index its lines. 0, or -1 with a message in err. */
static int source_read(struct source *src, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	size_t n = 0, cap = 4096, nl = 1;
	char *grown;

	if (fp == NULL)
		return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
	errno = 0;
	while ((grown = realloc(src->text, cap + 1)) != NULL) {
		src->text = grown;
		n += fread(src->text + n, 1, cap - n, fp);
		if (n < cap || cap > CONFIG_FILE_MAX)
			break;
		cap = cap * 2 > CONFIG_FILE_MAX ? CONFIG_FILE_MAX + 1 : cap * 2;
	}
	if (grown == NULL || ferror(fp) || n > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "%s: cannot read: %s", path, grown == NULL ? "out of memory" :
			 n > CONFIG_FILE_MAX ? "larger than 16 MiB" : strerror(errno ? errno : EIO));
		fclose(fp);
		return -1;
	}
	fclose(fp);
	src->text[n] = '\0';
	if (strlen(src->text) != n)
		return snprintf(err, errlen, "%s: contains a NUL byte", path), -1;
	for (size_t i = 0; i < n; i++)
		nl += src->text[i] == '\n';
	if ((src->lines = malloc(nl * sizeof(*src->lines))) == NULL)
		return snprintf(err, errlen, "%s: out of memory", path), -1;
	src->lines[src->nlines++] = 0;
	for (size_t i = 0; i < n; i++)
		if (src->text[i] == '\n')
			src->lines[src->nlines++] = i + 1;
	return 0;
}

static void source_free(struct source *src)
{
	free(src->name);
	free(src->text);
	free(src->lines);
	memset(src, 0, sizeof(*src));
}

/* The text a setting came from: the main file, or an @include file read on first need. */
static const struct source *setting_source(struct loader *ld, const config_setting_t *s)
{
	const char *f = config_setting_source_file(s);
	char fbuf[4200], dummy[1];

	if (f == NULL)
		return &ld->main;
	if (ld->inc.name != NULL && strcmp(ld->inc.name, f) == 0)
		return &ld->inc;
	source_free(&ld->inc);
	if (source_read(&ld->inc, file_label(ld, f, fbuf, sizeof(fbuf)), dummy, sizeof(dummy)) < 0 ||
	    (ld->inc.name = strdup(f)) == NULL) {
		source_free(&ld->inc);
		return NULL;
	}
	return &ld->inc;
}

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '*';
}

/* libconfig 1.5 wraps a plain integer literal beyond 32 bits without a word (4294967297 reads
 * as 1, a 16-digit Sentry project id as garbage). Re-read the literals of the setting's name on its
 * line so such a value is refused rather than silently changed. libconfig gives the line, not the
 * column, and one line may hold several settings of that name ("{ id = 1; }, { id = 2; }"): the
 * value is wrapped when it is the 32-bit wrap of one of those literals that does not fit (without
 * the L suffix), or when none of them is the value read. */
static int literal_wrapped(struct loader *ld, const config_setting_t *s)
{
	unsigned line = config_setting_source_line(s);
	const char *name = config_setting_name(s), *p, *end, *q;
	const struct source *src = setting_source(ld, s);
	bool seen = false, same = false;
	size_t nl;

	if (src == NULL || name == NULL || line == 0 || line > src->nlines)
		return 0; /* cannot tell */
	nl = strlen(name);
	p = src->text + src->lines[line - 1];
	end = p + strcspn(p, "\n");
	for (; p + nl <= end; p++) {
		char *e;
		long long v;

		if (memcmp(p, name, nl) != 0 || (p > src->text && name_char(p[-1])) || name_char(p[nl]))
			continue;
		for (q = p + nl; *q == ' ' || *q == '\t'; q++)
			;
		if (*q != '=' && *q != ':')
			continue;
		for (q++; *q == ' ' || *q == '\t'; q++)
			;
		errno = 0;
		v = strtoll(q, &e, strncasecmp(q, "0x", 2) == 0 ? 16 : 10);
		if (e == q)
			continue;
		if (*e != 'L' && (errno == ERANGE || v > 2147483647LL || v < -2147483648LL)) {
			/* too large for 32 bits: this setting is that literal when it holds its wrap */
			if (errno == ERANGE || (long long)(int32_t)(uint32_t)(unsigned long long)v == config_setting_get_int64(s))
				return 1;
			continue;
		}
		seen = true;
		same = same || v == config_setting_get_int64(s);
	}
	return seen && !same;
}

/* ---- storing values --------------------------------------------------------------------------- */

#define AT(obj, k, t) ((t *)(void *)((char *)(obj) + (k)->offset))

/* Length and character bounds of a string key (shared with config_check_string). */
static int string_bounds(const struct key_def *k, const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (len < (size_t)k->min)
		return snprintf(why, whylen, "must not be empty"), -1;
	if (len > (size_t)k->max)
		return snprintf(why, whylen, "must be at most %.0f characters", k->max), -1;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return snprintf(why, whylen, "must not contain control characters"), -1;
	return 0;
}

static int integer_bounds(const struct key_def *k, long long v, char *why, size_t whylen)
{
	if ((double)v < k->min || (double)v > k->max)
		return snprintf(why, whylen, "must be between %.0f and %.0f", k->min, k->max), -1;
	return 0;
}

/* ---- ${NAME} references --------------------------------------------------------------------- */

#define REF_NAME_MAX 64

/* The name of a "${NAME}" reference starting at p (p[0..1] == "${"): its length, 0 when bad. */
static size_t ref_name(const char *p)
{
	size_t n = 0;

	for (p += 2; p[n] != '}'; n++)
		if (n == REF_NAME_MAX || !((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') || p[n] == '_' ||
					   (n > 0 && p[n] >= '0' && p[n] <= '9')))
			return 0;
	return n;
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t want = (*len + n + 1) * 2;
		char *p = realloc(*buf, want);

		if (p == NULL)
			return -1;
		*buf = p;
		*cap = want;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * A string value with its "${NAME}" references replaced by the environment's values ("$${" is a
 * literal "${", any other '$' stays). An unset variable is an error naming it, never its value.
 */
static int expand_refs(const char *v, char **out, char *why, size_t whylen)
{
	size_t len = 0, cap = 0, n;
	char *buf = NULL, name[REF_NAME_MAX + 1];
	const char *val;
	int rc = 0;

	rc = append(&buf, &len, &cap, "", 0);
	while (rc == 0 && *v) {
		if (v[0] == '$' && v[1] == '$' && v[2] == '{') {
			rc = append(&buf, &len, &cap, "${", 2), v += 3;
		} else if (v[0] != '$' || v[1] != '{') {
			rc = append(&buf, &len, &cap, v, 1), v++;
		} else if ((n = ref_name(v)) == 0) {
			snprintf(why, whylen, "has a bad ${NAME} reference (letters, digits and '_'; $${ is a literal ${)");
			rc = -1;
		} else if (memcpy(name, v + 2, n), name[n] = '\0', (val = getenv(name)) == NULL) {
			snprintf(why, whylen, "environment variable '%s' is not set", name);
			rc = -1;
		} else {
			rc = append(&buf, &len, &cap, val, strlen(val)), v += n + 3;
		}
	}
	if (rc != 0 && why[0] == '\0')
		snprintf(why, whylen, "out of memory");
	if (rc != 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return 0;
}

/* Expand, bound and keep a string value (from the file or the environment). */
static int keep_string(const struct key_def *k, void *obj, const char *v, char *why, size_t whylen)
{
	char **field = AT(obj, k, char *), *x;

	why[0] = '\0';
	if (expand_refs(v, &x, why, whylen) < 0)
		return -1;
	if (string_bounds(k, x, why, whylen) < 0) {
		free(x);
		return -1;
	}
	free(*field);
	*field = x;
	return 0;
}

static int store_string(struct loader *ld, const config_setting_t *s, const struct key_def *k,
			void *obj, const char *disp)
{
	char why[128];

	if (keep_string(k, obj, config_setting_get_string(s), why, sizeof(why)) < 0)
		return fail(ld, s, disp, "%s", why);
	return 0;
}

static int store_integer(struct loader *ld, const config_setting_t *s, const struct key_def *k,
			 void *obj, const char *disp)
{
	int t = config_setting_type(s);
	char why[128];
	long long v;

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
		return fail(ld, s, disp, "expected an integer, got %s", type_got(s));
	if (t == CONFIG_TYPE_INT && literal_wrapped(ld, s))
		return fail(ld, s, disp, "integer does not fit in 32 bits; write it with the L suffix "
			    "(e.g. 4294967296L)");
	v = config_setting_get_int64(s);
	if (integer_bounds(k, v, why, sizeof(why)) < 0)
		return fail(ld, s, disp, "%s", why);
	if (k->type == KT_INT)
		*AT(obj, k, int) = (int)v;
	else if (k->type == KT_LONG)
		*AT(obj, k, long) = (long)v;
	else
		*AT(obj, k, size_t) = (size_t)v;
	return 0;
}

/* ( "a", "b" ) or [ "a", "b" ]: each a string the key's check accepts. */
static int store_list(struct loader *ld, const config_setting_t *s, const struct key_def *k, void *obj,
		      const char *disp)
{
	struct config_strlist *l = AT(obj, k, struct config_strlist);
	int n = config_setting_length(s);
	char why[256], edisp[KEY_DISP_MAX + 16];

	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return fail(ld, s, disp, "expected a list of strings ( \"a\", \"b\" ), got %s", type_got(s));
	if (n < k->min || n > k->max)
		return fail(ld, s, disp, "must list between %.0f and %.0f strings", k->min, k->max);
	if ((l->v = calloc((size_t)n + 1, sizeof(char *))) == NULL)
		return fail(ld, s, disp, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);

		snprintf(edisp, sizeof(edisp), "%.*s[%d]", KEY_DISP_MAX, disp, i);
		if (v == NULL)
			return fail(ld, e, edisp, "expected a string, got %s", type_got(e));
		if (k->check != NULL && k->check(obj, v, why, sizeof(why)) < 0)
			return fail(ld, e, edisp, "\"%s\" %s", v, why);
		if ((l->v[l->n++] = strdup(v)) == NULL)
			return fail(ld, e, edisp, "out of memory");
	}
	return 0;
}

static int store_value(struct loader *ld, const config_setting_t *s, const struct key_def *k,
		       void *obj, const char *disp)
{
	int t = config_setting_type(s);
	char why[256];
	double d;

	if (k->type == KT_STRLIST)
		return store_list(ld, s, k, obj, disp);
	if (k->type == KT_STRING) {
		if (t != CONFIG_TYPE_STRING)
			return fail(ld, s, disp, "expected a string, got %s", type_got(s));
		if (store_string(ld, s, k, obj, disp) < 0)
			return -1;
	} else if (k->type == KT_BOOL) {
		if (t != CONFIG_TYPE_BOOL)
			return fail(ld, s, disp, "expected true or false, got %s", type_got(s));
		*AT(obj, k, bool) = config_setting_get_bool(s) != 0;
	} else if (k->type == KT_DOUBLE) {
		if (t == CONFIG_TYPE_FLOAT)
			d = config_setting_get_float(s);
		else if (t == CONFIG_TYPE_INT64 || (t == CONFIG_TYPE_INT && !literal_wrapped(ld, s)))
			d = (double)config_setting_get_int64(s); /* "timeout = 5" means 5.0 */
		else if (t == CONFIG_TYPE_INT)
			return fail(ld, s, disp, "integer does not fit in 32 bits; write it as a float");
		else
			return fail(ld, s, disp, "expected a number, got %s", type_got(s));
		if (!(d >= k->min && d <= k->max))
			return fail(ld, s, disp, "must be between %g and %g", k->min, k->max);
		*AT(obj, k, double) = d;
	} else if (store_integer(ld, s, k, obj, disp) < 0) {
		return -1;
	}
	if (k->check && k->check(obj, k->type == KT_STRING ? *AT(obj, k, char *) : NULL, why,
				 sizeof(why)) < 0)
		return fail(ld, s, disp, "%s", why);
	return 0;
}

static size_t key_size(enum key_type t)
{
	switch (t) {
	case KT_INT: return sizeof(int);
	case KT_LONG: return sizeof(long);
	case KT_SIZE: return sizeof(size_t);
	case KT_DOUBLE: return sizeof(double);
	case KT_BOOL: return sizeof(bool);
	case KT_STRLIST: return sizeof(struct config_strlist);
	default: return sizeof(char *);
	}
}

static int apply_defaults(struct loader *ld, const struct scope *sc, void *obj)
{
	for (size_t i = 0; i < sc->nkeys; i++) {
		const struct key_def *k = &sc->keys[i];

		/* inherited values are numbers and bools only: a string would need its own copy */
		if (k->flags & KEY_INHERIT)
			memcpy(AT(obj, k, char), (const char *)ld->cfg + k->inherit, key_size(k->type));
		else if (k->type == KT_STRING && k->def_str != NULL &&
			 (*AT(obj, k, char *) = strdup(k->def_str)) == NULL)
			return snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path), -1;
		else if (k->type == KT_INT)
			*AT(obj, k, int) = (int)k->def;
		else if (k->type == KT_LONG)
			*AT(obj, k, long) = (long)k->def;
		else if (k->type == KT_SIZE)
			*AT(obj, k, size_t) = (size_t)k->def;
		else if (k->type == KT_DOUBLE)
			*AT(obj, k, double) = k->def;
		else if (k->type == KT_BOOL)
			*AT(obj, k, bool) = k->def != 0;
	}
	return 0;
}

static void free_strings(const struct scope *sc, void *obj)
{
	for (size_t i = 0; i < sc->nkeys; i++) {
		if (sc->keys[i].type == KT_STRING) {
			free(*AT(obj, &sc->keys[i], char *));
		} else if (sc->keys[i].type == KT_STRLIST) {
			struct config_strlist *l = AT(obj, &sc->keys[i], struct config_strlist);

			for (size_t j = 0; j < l->n; j++)
				free(l->v[j]);
			free(l->v);
		}
	}
}

/* ---- walking the tree ------------------------------------------------------------------------ */

static void key_display(char *buf, size_t len, const char *prefix, const char *name)
{
	snprintf(buf, len, "%s%s%s", prefix, *prefix ? "." : "", name);
}

static int find_key(const struct scope *sc, const char *name)
{
	for (size_t i = 0; i < sc->nkeys; i++)
		if (strcmp(sc->keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* True when some key of the scope lives in group `g` ("listen" for "listen.port"). */
static bool is_group_name(const struct scope *sc, const char *g)
{
	size_t n = strlen(g);

	for (size_t i = 0; i < sc->nkeys; i++)
		if (strncmp(sc->keys[i].name, g, n) == 0 && sc->keys[i].name[n] == '.')
			return true;
	return false;
}

static int set_key(struct loader *ld, const config_setting_t *s, const struct scope *sc,
		   const char *fullname, void *obj, const char *prefix, struct seen *seen)
{
	char disp[KEY_DISP_MAX];
	int i = find_key(sc, fullname);

	key_display(disp, sizeof(disp), prefix, fullname);
	if (i < 0)
		return fail(ld, s, disp, "unknown key");
	seen_set(seen, (size_t)i);
	return store_value(ld, s, &sc->keys[i], obj, disp);
}

/* Required keys of group `g` ("" = the scope itself) that never appeared, reported at `where`. */
static int check_required(struct loader *ld, const config_setting_t *where, const struct scope *sc,
			  const char *g, const char *prefix, const struct seen *seen)
{
	size_t gl = strlen(g);
	char disp[KEY_DISP_MAX];

	for (size_t i = 0; i < sc->nkeys; i++) {
		const char *name = sc->keys[i].name;

		if (!(sc->keys[i].flags & KEY_REQUIRED) || seen_has(seen, i))
			continue;
		if (gl ? (strncmp(name, g, gl) != 0 || name[gl] != '.') : strchr(name, '.') != NULL)
			continue;
		key_display(disp, sizeof(disp), prefix, name);
		return fail(ld, where, disp, "missing");
	}
	return 0;
}

static int walk_group(struct loader *ld, const config_setting_t *g, const struct scope *sc,
		      void *obj, const char *prefix, struct seen *seen)
{
	const char *gname = config_setting_name(g);
	char full[KEY_DISP_MAX];
	int n = config_setting_length(g);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);

		snprintf(full, sizeof(full), "%s.%s", gname, config_setting_name(s));
		if (set_key(ld, s, sc, full, obj, prefix, seen) < 0)
			return -1;
	}
	return check_required(ld, g, sc, gname, prefix, seen);
}

/* Index of a scope's list member named `name`, -1 when it is none. */
static int list_index(const struct scope *sc, const char *name)
{
	for (int i = 0; sc->lists != NULL && sc->lists[i] != NULL; i++)
		if (strcmp(sc->lists[i], name) == 0)
			return i;
	return -1;
}

/* Walk one group's members once; the scope's list members are handed back (lists[i] for
 * sc->lists[i], NULL when absent), not loaded. */
static int walk_scope(struct loader *ld, const config_setting_t *group, const struct scope *sc,
		      void *obj, const char *prefix, config_setting_t **lists)
{
	struct seen seen = { { 0 } };
	char disp[KEY_DISP_MAX];
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);

		int li = list_index(sc, name);

		if (li >= 0) {
			lists[li] = s;
			continue;
		}
		if (!is_group_name(sc, name)) {
			if (set_key(ld, s, sc, name, obj, prefix, &seen) < 0)
				return -1;
			continue;
		}
		key_display(disp, sizeof(disp), prefix, name);
		if (!config_setting_is_group(s))
			return fail(ld, s, disp, "expected a group { ... }, got %s", type_got(s));
		if (walk_group(ld, s, sc, obj, prefix, &seen) < 0)
			return -1;
	}
	return check_required(ld, group, sc, "", prefix, &seen);
}

/* ---- lists ------------------------------------------------------------------------------------- */

struct list_spec {
	const char *what;   /* "upstream" */
	int max;
	size_t size;        /* element size */
	int (*load)(struct loader *ld, config_setting_t *elem, const char *prefix, void *base, size_t i);
	bool optional;      /* may be absent or empty */
};

static int load_list(struct loader *ld, const config_setting_t *list, const config_setting_t *owner,
		     const char *disp, const struct list_spec *ls, void **arr, size_t *n)
{
	char prefix[KEY_DISP_MAX];
	int len;

	if (list == NULL && ls->optional)
		return 0;
	if (list == NULL)
		return fail(ld, owner, disp, "missing: at least one %s is required", ls->what);
	if (!config_setting_is_list(list))
		return fail(ld, list, disp, "expected a list ( { ... }, ... ), got %s", type_got(list));
	len = config_setting_length(list);
	if (len == 0 && ls->optional)
		return 0;
	if (len == 0)
		return fail(ld, list, disp, "must list at least one %s", ls->what);
	if (len > ls->max)
		return fail(ld, list, disp, "at most %d entries", ls->max);
	*arr = calloc((size_t)len, ls->size);
	if (*arr == NULL)
		return fail(ld, list, disp, "out of memory");
	for (int i = 0; i < len; i++) {
		config_setting_t *elem = config_setting_get_elem(list, (unsigned)i);

		snprintf(prefix, sizeof(prefix), "%s[%d]", disp, i);
		if (!config_setting_is_group(elem))
			return fail(ld, elem, prefix, "expected a group { ... }, got %s", type_got(elem));
		*n = (size_t)i + 1; /* count it now so config_free releases a half-loaded entry */
		if (ls->load(ld, elem, prefix, *arr, (size_t)i) < 0)
			return -1;
	}
	return 0;
}

/* Entry i's name must differ from entries 0..i-1 of the same list (names are at offset `off`). */
static int check_unique(struct loader *ld, const config_setting_t *elem, const char *prefix,
			const void *base, size_t size, size_t i, const char *what, bool show)
{
	const char *name = *(char *const *)(const void *)((const char *)base + i * size);
	const config_setting_t *list = config_setting_parent(elem);
	char disp[KEY_DISP_MAX];

	for (size_t j = 0; j < i; j++) {
		const char *other = *(char *const *)(const void *)((const char *)base + j * size);
		const config_setting_t *first;

		if (strcmp(name, other) != 0)
			continue;
		first = config_setting_get_member(config_setting_get_elem(list, (unsigned)j), "name");
		key_display(disp, sizeof(disp), prefix, "name");
		/* project names are the DSN secret users hold: never echo them */
		return fail(ld, config_setting_get_member(elem, "name"), disp,
			    "duplicate %s name%s%s%s (first at line %u)", what, show ? " '" : "",
			    show ? name : "", show ? "'" : "", config_setting_source_line(first));
	}
	return 0;
}

static int load_mirror(struct loader *ld, config_setting_t *elem, const char *prefix, void *base, size_t i)
{
	struct config_mirror *m = (struct config_mirror *)base + i;
	config_setting_t *none[SCOPE_LISTS_MAX] = { NULL };

	return apply_defaults(ld, &mirror_scope, m) < 0 ? -1 : walk_scope(ld, elem, &mirror_scope, m, prefix, none);
}

static const struct list_spec mirror_list = { "mirror", 8, sizeof(struct config_mirror), load_mirror, true };

static int load_project(struct loader *ld, config_setting_t *elem, const char *prefix, void *base,
			size_t i)
{
	struct config_project *p = (struct config_project *)base + i;
	config_setting_t *lists[SCOPE_LISTS_MAX] = { NULL };
	char disp[KEY_DISP_MAX];

	_Static_assert(offsetof(struct config_project, name) == 0, "check_unique reads name first");
	if (apply_defaults(ld, &project_scope, p) < 0 ||
	    walk_scope(ld, elem, &project_scope, p, prefix, lists) < 0)
		return -1;
	key_display(disp, sizeof(disp), prefix, "mirror");
	if (lists[0] != NULL &&
	    load_list(ld, lists[0], elem, disp, &mirror_list, (void **)&p->mirrors, &p->nmirrors) < 0)
		return -1;
	return check_unique(ld, elem, prefix, base, sizeof(*p), i, "project", false);
}

static const struct list_spec project_list = { "project", PROJECTS_MAX,
	sizeof(struct config_project), load_project, false };

static int load_upstream(struct loader *ld, config_setting_t *elem, const char *prefix, void *base,
			 size_t i)
{
	struct config_upstream *up = (struct config_upstream *)base + i;
	config_setting_t *lists[SCOPE_LISTS_MAX] = { NULL };
	char disp[KEY_DISP_MAX];

	_Static_assert(offsetof(struct config_upstream, name) == 0, "check_unique reads name first");
	if (apply_defaults(ld, &upstream_scope, up) < 0 ||
	    walk_scope(ld, elem, &upstream_scope, up, prefix, lists) < 0)
		return -1;
	key_display(disp, sizeof(disp), prefix, "projects");
	if (load_list(ld, lists[0], elem, disp, &project_list, (void **)&up->projects,
		      &up->nprojects) < 0)
		return -1;
	return check_unique(ld, elem, prefix, base, sizeof(*up), i, "upstream", true);
}

static const struct list_spec upstream_list = { "upstream", UPSTREAMS_MAX,
	sizeof(struct config_upstream), load_upstream, false };

static int load_endpoint(struct loader *ld, config_setting_t *elem, const char *prefix, void *base, size_t i)
{
	struct config_endpoint *e = (struct config_endpoint *)base + i;
	config_setting_t *none[SCOPE_LISTS_MAX] = { NULL };

	return apply_defaults(ld, &endpoint_scope, e) < 0 ? -1 : walk_scope(ld, elem, &endpoint_scope, e, prefix, none);
}

static const struct list_spec endpoint_list = { "endpoint", 64, sizeof(struct config_endpoint), load_endpoint,
						true };

/* ---- the environment: SENTRYQ_<SECTION>_<KEY> overrides ------------------------------------- */

static void env_var(const char *key, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "SENTRYQ_");

	for (const char *p = key; *p && n + 1 < len; p++)
		buf[n++] = *p == '.' ? '_' : (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
	buf[n < len ? n : len - 1] = '\0';
}

static int env_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < NELEM(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

/* A list from the environment: "a,b" (spaces around items dropped), each item checked. */
static int env_list(const struct key_def *k, void *obj, const char *v, char *why, size_t whylen)
{
	struct config_strlist *l = AT(obj, k, struct config_strlist), nl = { NULL, 0 };
	size_t cap = 1;
	const char *p;

	for (p = v; *p; p++)
		cap += *p == ',';
	if ((nl.v = calloc(cap + 1, sizeof(char *))) == NULL)
		return snprintf(why, whylen, "out of memory"), -1;
	for (p = v;;) {
		size_t n = strcspn(p, ","), b = 0, e = n;

		while (b < e && p[b] == ' ')
			b++;
		while (e > b && p[e - 1] == ' ')
			e--;
		if (e > b) {
			if ((nl.v[nl.n] = strndup(p + b, e - b)) == NULL) {
				snprintf(why, whylen, "out of memory");
				goto bad;
			}
			if (k->check != NULL && k->check(obj, nl.v[nl.n++], why, whylen) < 0)
				goto bad;
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	if (nl.n < k->min || nl.n > k->max) {
		snprintf(why, whylen, "must list between %.0f and %.0f items, comma-separated", k->min, k->max);
		goto bad;
	}
	for (size_t j = 0; j < l->n; j++)
		free(l->v[j]);
	free(l->v);
	*l = nl;
	return 0;
bad:
	for (size_t j = 0; j < nl.n; j++)
		free(nl.v[j]);
	free(nl.v);
	return -1;
}

/* One variable's text as the key's type, bounded and checked as a file value would be. */
static int env_value(const struct key_def *k, void *obj, const char *v, char *why, size_t whylen)
{
	char *end;
	long long i;
	double d;

	errno = 0;
	if (k->type == KT_STRLIST)
		return env_list(k, obj, v, why, whylen);
	if (k->type == KT_STRING) {
		if (keep_string(k, obj, v, why, whylen) < 0)
			return -1;
	} else if (k->type == KT_BOOL) {
		if (env_bool(v, AT(obj, k, bool)) < 0)
			return snprintf(why, whylen, "expected true or false"), -1;
	} else if (k->type == KT_DOUBLE) {
		d = strtod(v, &end);
		if (end == v || *end != '\0' || errno == ERANGE)
			return snprintf(why, whylen, "expected a number"), -1;
		if (!(d >= k->min && d <= k->max))
			return snprintf(why, whylen, "must be between %g and %g", k->min, k->max), -1;
		*AT(obj, k, double) = d;
	} else {
		i = strtoll(v, &end, 10);
		if (end == v || *end != '\0' || errno == ERANGE)
			return snprintf(why, whylen, "expected an integer"), -1;
		if (integer_bounds(k, i, why, whylen) < 0)
			return -1;
		if (k->type == KT_INT)
			*AT(obj, k, int) = (int)i;
		else if (k->type == KT_LONG)
			*AT(obj, k, long) = (long)i;
		else
			*AT(obj, k, size_t) = (size_t)i;
	}
	return k->check != NULL ? k->check(obj, k->type == KT_STRING ? *AT(obj, k, char *) : NULL, why, whylen) : 0;
}

/* Every top-level scalar key whose variable is set, over what the file said. */
static int apply_env(struct loader *ld)
{
	char var[KEY_DISP_MAX + 16], why[256];

	for (size_t i = 0; i < NELEM(top_keys); i++) {
		const struct key_def *k = &top_keys[i];
		const char *v;

		if (k->flags & KEY_NO_ENV)
			continue;
		env_var(k->name, var, sizeof(var));
		if ((v = getenv(var)) == NULL)
			continue;
		if (env_value(k, ld->cfg, v, why, sizeof(why)) < 0) {
			snprintf(ld->err, ld->errlen, "environment %s: key '%s': %s", var, k->name, why);
			return -1;
		}
	}
	return 0;
}

enum config_check config_env_name(const char *key, char *buf, size_t len)
{
	int i = find_key(&top_scope, key);

	if (i < 0 || (top_keys[i].flags & KEY_NO_ENV) || len == 0)
		return CONFIG_KEY_UNKNOWN;
	env_var(key, buf, len);
	return CONFIG_VALUE_OK;
}

/* ---- checks across keys ---------------------------------------------------------------------- */

/* Each mirror names another configured project, once. */
static int check_mirrors(struct loader *ld, size_t ui, size_t pi)
{
	struct config_project *pr = &ld->cfg->upstreams[ui].projects[pi];
	char path[KEY_DISP_MAX], disp[KEY_DISP_MAX];

	for (size_t m = 0; m < pr->nmirrors; m++) {
		struct config_mirror *mi = &pr->mirrors[m];
		const char *why = NULL;

		snprintf(path, sizeof(path), "upstreams.[%zu].projects.[%zu].mirror.[%zu]", ui, pi, m);
		snprintf(disp, sizeof(disp), "upstreams[%zu].projects[%zu].mirror[%zu]", ui, pi, m);
		mi->up = config_upstream_by_name(ld->cfg, mi->upstream);
		mi->pr = config_project_by_name(mi->up, mi->project);
		if (mi->up == NULL)
			why = "names no configured upstream";
		else if (mi->pr == NULL)
			why = "names no project of that upstream";
		else if (mi->pr == pr)
			why = "names the project itself";
		for (size_t o = 0; why == NULL && o < m; o++)
			if (pr->mirrors[o].pr == mi->pr)
				why = "names the same project as an earlier mirror";
		/* the project name is a DSN secret: the upstream is named, the project is not */
		if (why != NULL)
			return fail(ld, config_lookup(&ld->lc, path), disp, "mirror to upstream '%s' %s", mi->upstream, why);
	}
	return 0;
}

/* redis.cluster: the nodes name the masters, every key is hash-tagged, and a cluster has db 0 only. */
static int check_cluster(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const char *with = cfg->redis_sentinels.n > 0 ? "redis.sentinels" :
			   cfg->redis_unix_socket != NULL ? "redis.unix_socket" : NULL;

	if (cfg->redis_cluster.n == 0)
		return 0;
	if (with != NULL)
		return fail(ld, config_lookup(&ld->lc, with), with,
			    "cannot be combined with redis.cluster (the cluster names its masters)");
	if (cfg->redis_db != 0)
		return fail(ld, config_lookup(&ld->lc, "redis.db"), "redis.db",
			    "must be 0 with redis.cluster (a cluster has one database)");
	if (strpbrk(cfg->redis_prefix, "{}") != NULL)
		return fail(ld, config_lookup(&ld->lc, "redis.prefix"), "redis.prefix",
			    "must not contain '{' or '}' with redis.cluster (sentryq's keys carry their own hash tag)");
	return 0;
}

/* redis.sentinels and the keys that go with it; WAIT must end before the command watchdog fires. */
static int check_redis(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const char *alone = cfg->redis_master_name != NULL ? "redis.master_name" :
			    cfg->redis_sentinel_password != NULL ? "redis.sentinel_password" : NULL;

	if (cfg->redis_sentinels.n > 0 && cfg->redis_master_name == NULL)
		return fail(ld, config_lookup(&ld->lc, "redis.sentinels"), "redis.master_name",
			    "missing: required with redis.sentinels");
	if (cfg->redis_sentinels.n == 0 && alone != NULL)
		return fail(ld, config_lookup(&ld->lc, alone), alone, "needs redis.sentinels");
	if (cfg->redis_sentinels.n > 0 && cfg->redis_unix_socket != NULL)
		return fail(ld, config_lookup(&ld->lc, "redis.unix_socket"), "redis.unix_socket",
			    "cannot be combined with redis.sentinels (the sentinels name the master)");
	if (check_cluster(ld) < 0)
		return -1;
	if (cfg->redis_wait_replicas > 0 && cfg->redis_wait_timeout >= cfg->redis_timeout)
		return fail(ld, config_lookup(&ld->lc, "redis.wait_timeout"), "redis.wait_timeout",
			    "must be below redis.timeout (%g): WAIT blocks the connection, the watchdog would drop it",
			    cfg->redis_timeout);
	return 0;
}

/* log.level wins over the deprecated top-level log_level; both in the file is an error. */
static int settle_log(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->log_level_deprecated != NULL && config_lookup(&ld->lc, "log.level") != NULL)
		return fail(ld, config_lookup(&ld->lc, "log_level"), "log_level",
			    "deprecated, and log.level is set too: keep log.level only");
	if (cfg->log_level == NULL &&
	    (cfg->log_level = strdup(cfg->log_level_deprecated ? cfg->log_level_deprecated : "info")) == NULL)
		return fail(ld, NULL, "log.level", "out of memory");
	return 0;
}

/* role: a forward-only process has no ingest listener, so health and /metrics need metrics.port. */
static int check_metrics(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	role_of(cfg->role_name, &cfg->role);
	if (cfg->role == CONFIG_ROLE_FORWARD && cfg->metrics_port == 0)
		return fail(ld, config_lookup(&ld->lc, "role"), "role",
			    "\"forward\" needs metrics.port: health checks, /status and /metrics are served there "
			    "(a forward-only process has no ingest listener)");
	if (cfg->role == CONFIG_ROLE_FORWARD)
		return 0;  /* listen.* is not used */
	if (!cfg->metrics_on_ingest && cfg->metrics_port == 0)
		return fail(ld, config_lookup(&ld->lc, "metrics.on_ingest"), "metrics.on_ingest",
			    "false needs metrics.port: /metrics would be served nowhere");
	if (cfg->metrics_port == cfg->listen_port && strcmp(cfg->metrics_address, cfg->listen_address) == 0)
		return fail(ld, config_lookup(&ld->lc, "metrics.port"), "metrics.port",
			    "must differ from listen.port (%d) on the same address", cfg->listen_port);
	return 0;
}

static int check_default_route(struct loader *ld)
{
	const struct config *cfg = ld->cfg;
	const struct config_upstream *up;

	if (cfg->default_upstream == NULL && cfg->default_project == NULL)
		return 0;
	/* A group in the file has both (KEY_REQUIRED); the environment may have set only one. */
	if (cfg->default_upstream == NULL || cfg->default_project == NULL)
		return fail(ld, NULL, cfg->default_upstream == NULL ? "default_route.upstream" : "default_route.project",
			    "missing (default_route needs both upstream and project)");
	up = config_upstream_by_name(cfg, cfg->default_upstream);
	if (up == NULL)
		return fail(ld, config_lookup(&ld->lc, "default_route.upstream"),
			    "default_route.upstream", "no upstream named '%s'", cfg->default_upstream);
	if (config_project_by_name(up, cfg->default_project) == NULL)
		return fail(ld, config_lookup(&ld->lc, "default_route.project"),
			    "default_route.project", "upstream '%s' has no such project", up->name);
	return 0;
}

static int check_cross(struct loader *ld)
{
	const struct config *cfg = ld->cfg;

	if (cfg->forward_retry_initial > cfg->forward_retry_max)
		return fail(ld, config_lookup(&ld->lc, "forward.retry_initial"), "forward.retry_initial",
			    "must not exceed forward.retry_max (%g)", cfg->forward_retry_max);
	if (settle_log(ld) < 0 || check_metrics(ld) < 0 || check_redis(ld) < 0)
		return -1;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		for (size_t j = 0; j < cfg->upstreams[i].nprojects; j++)
			if (check_mirrors(ld, i, j) < 0)
				return -1;
	return check_default_route(ld);
}

/* ---- public ------------------------------------------------------------------------------------ */

static int parse(struct loader *ld)
{
	const char *slash = strrchr(ld->path, '/');
	char fbuf[4200];

	if (source_read(&ld->main, ld->path, ld->err, ld->errlen) < 0)
		return -1;
	/* @include paths are relative to the config file, not to the working directory */
	if (slash != NULL && (size_t)(slash - ld->path) < sizeof(ld->dir)) {
		memcpy(ld->dir, ld->path, (size_t)(slash - ld->path));
		ld->dir[slash - ld->path] = '\0';
		config_set_include_dir(&ld->lc, *ld->dir ? ld->dir : "/");
	}
	if (config_read_string(&ld->lc, ld->main.text) == CONFIG_TRUE)
		return 0;
	snprintf(ld->err, ld->errlen, "%s:%d: %s",
		 file_label(ld, config_error_file(&ld->lc), fbuf, sizeof(fbuf)),
		 config_error_line(&ld->lc), config_error_text(&ld->lc));
	return -1;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	char dummy[1];
	struct loader ld = { .path = path, .err = err ? err : dummy, .errlen = err ? errlen : 1 };
	config_setting_t *lists[SCOPE_LISTS_MAX] = { NULL };
	int rc = -1;

	if (ld.errlen > 0)
		ld.err[0] = '\0';
	config_init(&ld.lc);
	if (parse(&ld) < 0)
		goto out;
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (ld.cfg == NULL || (ld.cfg->file = strdup(path)) == NULL) {
		snprintf(ld.err, ld.errlen, "%s: out of memory", path);
		goto out;
	}
	/* upstreams come back unloaded from the walk: their defaults need forward.* settled, the
	 * environment's overrides included */
	if (apply_defaults(&ld, &top_scope, ld.cfg) < 0 ||
	    walk_scope(&ld, config_root_setting(&ld.lc), &top_scope, ld.cfg, "", lists) < 0 ||
	    apply_env(&ld) < 0 ||
	    load_list(&ld, lists[0], config_root_setting(&ld.lc), "upstreams", &upstream_list,
		      (void **)&ld.cfg->upstreams, &ld.cfg->nupstreams) < 0 ||
	    load_list(&ld, lists[1], config_root_setting(&ld.lc), "endpoints", &endpoint_list,
		      (void **)&ld.cfg->endpoints, &ld.cfg->nendpoints) < 0 ||
	    check_cross(&ld) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		config_free(ld.cfg);
		ld.cfg = NULL;
	}
	config_destroy(&ld.lc);
	source_free(&ld.main);
	source_free(&ld.inc);
	return ld.cfg;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		struct config_upstream *up = &cfg->upstreams[i];

		for (size_t j = 0; j < up->nprojects; j++) {
			struct config_project *pr = &up->projects[j];

			for (size_t m = 0; m < pr->nmirrors; m++)
				free_strings(&mirror_scope, &pr->mirrors[m]);
			free(pr->mirrors);
			free_strings(&project_scope, pr);
		}
		free(up->projects);
		free(up->host);
		free(up->path_prefix);
		free_strings(&upstream_scope, up);
	}
	free(cfg->upstreams);
	for (size_t i = 0; i < cfg->nendpoints; i++)
		free_strings(&endpoint_scope, &cfg->endpoints[i]);
	free(cfg->endpoints);
	free_strings(&top_scope, cfg);
	free(cfg->file);
	free(cfg);
}

const char *config_role_name(enum config_role r)
{
	switch (r) {
	case CONFIG_ROLE_ALL: return "all";
	case CONFIG_ROLE_INGEST: return "ingest";
	case CONFIG_ROLE_FORWARD: return "forward";
	}
	return "?";
}

const char *config_default_consumer(const struct config *cfg, const char *host, long pid, char *buf, size_t len)
{
	bool shared = cfg->role == CONFIG_ROLE_FORWARD || cfg->listen_reuse_port;

	if (host == NULL || *host == '\0')
		host = "sentryq";
	if (!shared)
		snprintf(buf, len, "%s:%d", host, cfg->listen_port);
	else if (cfg->metrics_port > 0)
		snprintf(buf, len, "%s:%d", host, cfg->metrics_port);
	else
		snprintf(buf, len, "%s:%d:%ld", host, cfg->listen_port, pid);
	return buf;
}

const struct config_upstream *config_upstream_by_name(const struct config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->nupstreams; i++)
		if (strcmp(cfg->upstreams[i].name, name) == 0)
			return &cfg->upstreams[i];
	return NULL;
}

const struct config_project *config_project_by_name(const struct config_upstream *up,
						    const char *name)
{
	for (size_t i = 0; up && name && i < up->nprojects; i++)
		if (strcmp(up->projects[i].name, name) == 0)
			return &up->projects[i];
	return NULL;
}

/* The table entry behind a config_key_names() name, and its scope. */
static const struct key_def *key_by_name(const char *key, const struct scope **sc)
{
	static const char up[] = "upstreams.[].", pr[] = "upstreams.[].projects.[].";
	int i;

	if (strncmp(key, pr, sizeof(pr) - 1) == 0)
		*sc = &project_scope, key += sizeof(pr) - 1;
	else if (strncmp(key, up, sizeof(up) - 1) == 0)
		*sc = &upstream_scope, key += sizeof(up) - 1;
	else
		*sc = &top_scope;
	i = find_key(*sc, key);
	return i < 0 ? NULL : &(*sc)->keys[i];
}

enum config_check config_check_string(const char *key, const char *val, char *why, size_t whylen)
{
	const struct scope *sc;
	const struct key_def *k = key_by_name(key, &sc);
	union { struct config c; struct config_upstream u; struct config_project p; } obj;
	int rc;

	if (k == NULL || k->type != KT_STRING)
		return snprintf(why, whylen, "unknown string key"), CONFIG_KEY_UNKNOWN;
	if (string_bounds(k, val, why, whylen) < 0)
		return CONFIG_VALUE_BAD;
	if (k->check == NULL)
		return CONFIG_VALUE_OK;
	memset(&obj, 0, sizeof(obj));
	rc = k->check(&obj, val, why, whylen);
	if (sc == &upstream_scope) { /* check_url splits into host and path_prefix */
		free(obj.u.host);
		free(obj.u.path_prefix);
	}
	return rc < 0 ? CONFIG_VALUE_BAD : CONFIG_VALUE_OK;
}

enum config_check config_check_integer(const char *key, long long val, char *why, size_t whylen)
{
	const struct scope *sc;
	const struct key_def *k = key_by_name(key, &sc);

	if (k == NULL || (k->type != KT_INT && k->type != KT_LONG && k->type != KT_SIZE))
		return snprintf(why, whylen, "unknown integer key"), CONFIG_KEY_UNKNOWN;
	return integer_bounds(k, val, why, whylen) < 0 ? CONFIG_VALUE_BAD : CONFIG_VALUE_OK;
}

/* The names of a list scope's keys under a prefix ("upstreams.[]."), into names from *n. */
static void list_names(const struct scope *sc, const char *prefix, const char **names, size_t *n,
		       char (*buf)[80], size_t *b)
{
	for (size_t i = 0; i < sc->nkeys; i++, (*b)++) {
		snprintf(buf[*b], sizeof(buf[*b]), "%s%s", prefix, sc->keys[i].name);
		names[(*n)++] = buf[*b];
	}
}

const char *const *config_key_names(void)
{
#define SCOPED (NELEM(upstream_keys) + NELEM(project_keys) + NELEM(mirror_keys) + NELEM(endpoint_keys))
	static const char *names[NELEM(top_keys) + SCOPED + 8];
	static char buf[SCOPED][80];
	size_t n = 0, b = 0;

	if (names[0] != NULL)
		return names;
	for (size_t i = 0; i < NELEM(top_keys); i++)
		names[n++] = top_keys[i].name;
	names[n++] = "upstreams";
	list_names(&upstream_scope, "upstreams.[].", names, &n, buf, &b);
	names[n++] = "upstreams.[].projects";
	list_names(&project_scope, "upstreams.[].projects.[].", names, &n, buf, &b);
	names[n++] = "upstreams.[].projects.[].mirror";
	list_names(&mirror_scope, "upstreams.[].projects.[].mirror.[].", names, &n, buf, &b);
	names[n++] = "endpoints";
	list_names(&endpoint_scope, "endpoints.[].", names, &n, buf, &b);
	names[n] = NULL;
	return names;
#undef SCOPED
}

/* ---- printing the effective configuration ------------------------------------------------------ */

static void print_string(FILE *out, const char *v)
{
	fputc('"', out);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

/* The shortest text that reads back as the same number. */
static void print_double(FILE *out, double d)
{
	char buf[40];

	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, sizeof(buf), "%.17g", d);
	fputs(buf, out);
	if (strpbrk(buf, ".eEn") == NULL)
		fputs(".0", out);  /* libconfig reads "5" as an integer, "5.0" as a float */
}

static void print_list(FILE *out, const struct config_strlist *l)
{
	fputs("(", out);
	for (size_t i = 0; i < l->n; i++) {
		fputs(i > 0 ? ", " : " ", out);
		print_string(out, l->v[i]);
	}
	fputs(l->n > 0 ? " )" : ")", out);
}

static void print_key(FILE *out, const struct key_def *k, const void *obj, const char *disp)
{
	const char *str = k->type == KT_STRING ? *(char *const *)(const void *)((const char *)obj + k->offset) : NULL;
	const void *at = (const char *)obj + k->offset;

	if ((k->type == KT_STRING && str == NULL) ||
	    (k->type == KT_STRLIST && ((const struct config_strlist *)at)->n == 0)) {
		fprintf(out, "# %s is not set\n", disp);
		return;
	}
	fprintf(out, "%s = ", disp);
	if (k->flags & KEY_SECRET)
		fputs("\"********\"", out);
	else if (k->type == KT_STRING)
		print_string(out, str);
	else if (k->type == KT_INT)
		fprintf(out, "%d", *(const int *)at);
	else if (k->type == KT_LONG)
		fprintf(out, "%ld", *(const long *)at);
	else if (k->type == KT_SIZE)
		fprintf(out, "%zu", *(const size_t *)at);
	else if (k->type == KT_DOUBLE)
		print_double(out, *(const double *)at);
	else if (k->type == KT_STRLIST)
		print_list(out, at);
	else
		fputs(*(const bool *)at ? "true" : "false", out);
	fputs(";\n", out);
}

static void print_scope(FILE *out, const struct scope *sc, const void *obj, const char *prefix)
{
	char disp[KEY_DISP_MAX];

	for (size_t i = 0; i < sc->nkeys; i++) {
		if (sc->keys[i].flags & KEY_NO_ENV && sc == &top_scope)
			continue;  /* the deprecated spelling: log.level shows the value in force */
		key_display(disp, sizeof(disp), prefix, sc->keys[i].name);
		print_key(out, &sc->keys[i], obj, disp);
	}
}

enum config_print config_print(const struct config *cfg, FILE *out)
{
	char prefix[KEY_DISP_MAX];

	fprintf(out, "# sentryq: the configuration in force from %s (SENTRYQ_* variables and ${NAME} references\n"
		     "# applied); keys, secrets, passwords and project names are masked.\n", cfg->file);
	print_scope(out, &top_scope, cfg, "");
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct config_upstream *up = &cfg->upstreams[i];

		snprintf(prefix, sizeof(prefix), "upstreams[%zu]", i);
		print_scope(out, &upstream_scope, up, prefix);
		for (size_t j = 0; j < up->nprojects; j++) {
			snprintf(prefix, sizeof(prefix), "upstreams[%zu].projects[%zu]", i, j);
			print_scope(out, &project_scope, &up->projects[j], prefix);
			for (size_t m = 0; m < up->projects[j].nmirrors; m++) {
				snprintf(prefix, sizeof(prefix), "upstreams[%zu].projects[%zu].mirror[%zu]", i, j, m);
				print_scope(out, &mirror_scope, &up->projects[j].mirrors[m], prefix);
			}
		}
	}
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		snprintf(prefix, sizeof(prefix), "endpoints[%zu]", i);
		print_scope(out, &endpoint_scope, &cfg->endpoints[i], prefix);
	}
	return fflush(out) == 0 && !ferror(out) ? CONFIG_PRINT_OK : CONFIG_PRINT_FAILED;
}

enum config_perm config_permissions(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return CONFIG_PERM_UNKNOWN;
	return (st.st_mode & S_IROTH) ? CONFIG_PERM_OTHERS : CONFIG_PERM_PRIVATE;
}
