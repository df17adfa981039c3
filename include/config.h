/* config.h - sentryq configuration: a declarative key table walked once over a libconfig file. */
#ifndef SENTRYQ_CONFIG_H
#define SENTRYQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_UPSTREAMS_MAX 256   /* entries of the upstreams list */
#define CONFIG_PROJECTS_MAX 4096   /* projects of one upstream */

/* A list of strings from the file ( "a", "b" ). */
struct config_strlist {
	char **v;
	size_t n;
};

struct config_upstream;
struct config_project;

/* A further destination of a project's requests: another configured project (mirror routes). */
struct config_mirror {
	char *upstream;
	char *project;
	const struct config_upstream *up;   /* resolved when the file is loaded */
	const struct config_project *pr;
};

/* One Sentry project behind an upstream: the real credentials sentryq substitutes. */
struct config_project {
	char *name;    /* relay-side name, the DSN secret users already have ("vod_be") */
	char *key;     /* real public key (32 chars) */
	char *secret;  /* real secret, NULL when the project has none */
	long id;       /* real project id */
	struct config_mirror *mirrors;
	size_t nmirrors;
};

/* An ingest endpoint added by the file (the built-in table stays; these come after it). */
struct config_endpoint {
	char *name;                      /* label for logs and metrics */
	char *path;                      /* pattern after /api/<id>/: literal, "*", "{key}", trailing "/?" */
	struct config_strlist methods;   /* "POST", "GET", ... */
	int status;                      /* success status, 200 */
	char *reply;                     /* "id" | "uuid" | "empty" */
	size_t limit;                    /* decoded body limit, bytes */
	bool body_required;
	struct config_strlist categories;  /* data categories; empty: the request counts as "default" */
};

/* One Sentry server. `url` is split once at load time so forwarding never re-parses it. */
struct config_upstream {
	char *name;          /* relay-side name, the DSN public key users already have ("wow") */
	char *url;           /* as written, e.g. "https://sentry.example:8443/prefix" */
	bool tls;            /* scheme is https */
	char *host;          /* host part, without brackets for IPv6 */
	int port;            /* explicit port or the scheme's default */
	char *path_prefix;   /* "" or "/prefix" (no trailing slash) */
	double timeout;          /* seconds for one forward request (default forward.timeout) */
	double connect_timeout;  /* seconds (default forward.connect_timeout) */
	int max_connections;     /* concurrent requests to this upstream (default forward.max_connections) */
	bool verify;             /* verify the TLS certificate (default true) */
	char *ca_file;           /* PEM bundle, NULL = system store */
	struct config_project *projects;
	size_t nprojects;
};

/* What a process does (role): ingest and forward, or one of them. */
enum config_role {
	CONFIG_ROLE_ALL = 0,        /* the SDK listener, queueing and the forwarder */
	CONFIG_ROLE_INGEST,         /* the SDK listener and queueing: no forwarder, no upstream connection */
	CONFIG_ROLE_FORWARD,        /* the forwarder: no SDK listener (admin endpoints on metrics.port) */
};

struct config {
	char *file;                 /* path the config was read from */

	/* listen */
	char *listen_address;       /* "127.0.0.1" */
	int listen_port;            /* 9000 */
	size_t max_body_size;       /* 200 MiB: bodies above get 413 (the largest limits.* value) */
	size_t max_body_memory;     /* 256 MiB: request bodies held across connections; 503 above */
	int listen_max_connections; /* 0: derived from the fd limit */
	double head_timeout;        /* seconds a request head may take, 5 */
	double min_body_rate;       /* bytes/s a body must average, 1024; 0 off */
	char *tunnel_path;          /* "/tunnel": JavaScript SDK tunnel endpoint, "" disables */
	double client_timeout;      /* seconds an SDK connection may idle, 30 */
	bool listen_reuse_port;     /* SO_REUSEPORT on the ingest socket: processes share the port, false */

	/* redis */
	char *redis_host;           /* "127.0.0.1" */
	int redis_port;             /* 6379 */
	char *redis_password;       /* NULL */
	int redis_db;               /* 0 */
	char *redis_unix_socket;    /* NULL: use host/port */
	char *redis_prefix;         /* "sentryq:" */
	double redis_timeout;       /* seconds a command may go unanswered, 5 */
	size_t redis_buffer_bytes;  /* 64 MiB in-memory buffer while Redis is away */
	double redis_reconnect_max; /* seconds, cap of the reconnect backoff, 5 */
	char *redis_spool_file;     /* where buffered entries go if sentryq stops while Redis is away; NULL: nowhere */
	struct config_strlist redis_sentinels; /* "host:port" (v NULL-terminated); none: no Sentinel */
	char *redis_master_name;    /* the master the sentinels monitor; required with sentinels */
	char *redis_sentinel_password; /* AUTH to the sentinels; NULL: none */
	struct config_strlist redis_cluster;   /* seed nodes "host:port" (v NULL-terminated); none: no Cluster */
	int redis_wait_replicas;    /* replicas that must have a write before the SDK is answered, 0 */
	double redis_wait_timeout;  /* seconds WAIT may block, 1; below redis.timeout */

	/* queue */
	long queue_max_pending;     /* entries, 1000000 */
	size_t queue_max_bytes;     /* body bytes, 1 GiB */

	/* forward */
	double forward_timeout;          /* 10 */
	double forward_connect_timeout;  /* 3 */
	int forward_max_connections;     /* 16 per upstream */
	int forward_batch;               /* entries read from Redis per read, 64 */
	double forward_retry_initial;    /* seconds, 1: retry after a blip, first probe interval */
	double forward_retry_max;        /* seconds, 60: cap of the probe interval while an upstream is down */
	double forward_outage_grace;     /* seconds, 10: failures for longer than this mark an upstream down */
	int forward_max_attempts;        /* 0 = unlimited, default 0 (max_age bounds instead) */
	double forward_max_age;          /* seconds, 86400 */
	double forward_claim_idle;       /* seconds before another consumer's pending entry is taken over, 60 */
	char *forward_consumer;          /* consumer name in the group; NULL = config_default_consumer */
	double forward_departed_after;   /* seconds idle after which another consumer with nothing pending
					  * is removed from the group, 600 */
	int forward_ingest_first;        /* SDK requests waiting for Redis above which reads wait for the tick, 8; 0 off */

	/* limits: per-endpoint body limits after decompression (Sentry's defaults); 413 above */
	size_t limit_event;         /* store, security, csp-report, nel, cron: 1 MiB */
	size_t limit_envelope;      /* envelope, tunnel: 200 MiB */
	size_t limit_attachment;    /* minidump: 200 MiB */
	size_t limit_attachments;   /* unreal, events/<id>/attachments: 200 MiB */

	/* rate_limits */
	bool rate_limits_passthrough;    /* false */

	/* fleet: shared upstream knowledge between the processes sharing a Redis (fleetsync.h) */
	bool fleet_sync;                 /* true */
	double fleet_sync_period;        /* seconds between reads of the fleet's records, 1 */

	/* top level */
	double shutdown_timeout;    /* seconds forwards in flight get on SIGTERM, 10 */
	char *role_name;            /* "all" | "ingest" | "forward", default "all" */
	enum config_role role;      /* role_name, parsed */

	/* log */
	char *log_level;            /* "debug" | "info" | "warn" | "error": log.level, else the deprecated
				     * top-level log_level, else "info" */
	char *log_level_deprecated; /* the top-level log_level as written; NULL when absent */
	char *log_format;           /* "text" | "json", default "text" */
	double log_stats_period;    /* seconds between two stats lines, 60; 0 off */

	/* metrics */
	char *metrics_address;      /* "127.0.0.1": the internal listener, when metrics.port is set */
	int metrics_port;           /* 0: no internal listener */
	bool metrics_on_ingest;     /* true: /metrics is served on the ingest listener too */

	struct config_upstream *upstreams;
	size_t nupstreams;

	struct config_strlist forward_headers;   /* request headers kept besides the built-in list */
	struct config_endpoint *endpoints;      /* endpoints added to the built-in table */
	size_t nendpoints;

	/* default_route: both NULL when absent; validated to name an existing upstream/project */
	char *default_upstream;
	char *default_project;
};

/*
 * Read and validate `path`. On failure returns NULL and writes a one-line
 * message "FILE:LINE: key 'a.b': what is wrong" (LINE omitted when libconfig
 * cannot tell) into err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Look-ups used by routing and forwarding; NULL when absent. */
const struct config_upstream *config_upstream_by_name(const struct config *cfg, const char *name);
const struct config_project *config_project_by_name(const struct config_upstream *up, const char *name);

/* The consumer name used when forward.consumer is not set, unique per process on one host:
 * "<host>:<listen.port>"; "<host>:<metrics.port>" for role forward (it has no listen port) and
 * with listen.reuse_port (processes share listen.port), or, without metrics.port there,
 * "<host>:<listen.port>:<pid>". Returns buf. */
const char *config_default_consumer(const struct config *cfg, const char *host, long pid, char *buf, size_t len);
/* "all", "ingest", "forward". */
const char *config_role_name(enum config_role r);

/* What config_check_string / config_check_integer found. */
enum config_check {
	CONFIG_VALUE_OK = 0,
	CONFIG_VALUE_BAD,      /* the loader would refuse it; why says so (never quoting the value) */
	CONFIG_KEY_UNKNOWN,    /* no such key in the table, or not of that type */
};

/*
 * Check one value as config_load would check it at `key` (a name from config_key_names():
 * "upstreams.[].url", "upstreams.[].projects.[].id", ...): length and value bounds, control
 * characters, and the key's own check (names, credentials, urls). For tools that write a config.
 */
enum config_check config_check_string(const char *key, const char *val, char *why, size_t whylen);
enum config_check config_check_integer(const char *key, long long val, char *why, size_t whylen);

/*
 * The environment variable that overrides a key: "listen.port" -> SENTRYQ_LISTEN_PORT,
 * "shutdown_timeout" -> SENTRYQ_SHUTDOWN_TIMEOUT. CONFIG_VALUE_OK with the name in buf, or
 * CONFIG_KEY_UNKNOWN for a key no variable overrides (list entries, the deprecated log_level).
 * config_load applies every such variable that is set, after the file and before the checks
 * across keys; a bad value is refused naming the variable, never quoting the value.
 */
enum config_check config_env_name(const char *key, char *buf, size_t len);

/* What config_print did. */
enum config_print {
	CONFIG_PRINT_OK = 0,
	CONFIG_PRINT_FAILED,   /* the stream reported an error */
};

/* Every key's effective value, one "key = value;" line each (display names as in errors:
 * "upstreams[0].projects[0].id"), keys, secrets, passwords and project names masked. */
enum config_print config_print(const struct config *cfg, FILE *out);

/* Who may read the config file (it holds every project's Sentry secret). */
enum config_perm {
	CONFIG_PERM_PRIVATE = 0,  /* not readable by others */
	CONFIG_PERM_OTHERS,       /* readable by every user of the machine */
	CONFIG_PERM_UNKNOWN,      /* stat failed */
};

enum config_perm config_permissions(const char *path);

/* Name of every key the table knows, NULL-terminated ("listen.port", "upstreams.[].projects.[].id", ...),
 * so a test can check that etc/sentryq.conf documents each one. */
const char *const *config_key_names(void);

#endif
