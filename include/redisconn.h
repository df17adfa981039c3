/* redisconn.h - the Redis connection supervisor: one hiredis async connection on the loop, its
 * handshake (AUTH, SELECT, the caller's setup commands), reconnects with jittered backoff, and a
 * watchdog for commands that go unanswered (hiredis 0.14 has no timeouts). The one place that
 * knows how sentryq reaches Redis.
 *
 * With Sentinel (params.sentinels), every connect first asks the sentinels in turn for the master
 * (SENTINEL get-master-addr-by-name, each under the same timeout), connects to the address named
 * and checks ROLE says master (a replica: ask again after the reconnect backoff). The master may
 * have moved when the connection is lost, when a reply is a -READONLY error, or when the sentinel
 * followed on a second connection (params.follow_failover) publishes +switch-master for it: the
 * connection is dropped and the sentinels are asked again. hiredis 0.14 knows no Sentinel: it is
 * all built here, on its async API. */
#ifndef SENTRYQ_REDISCONN_H
#define SENTRYQ_REDISCONN_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct event_base;
struct redisconn;

/* Where Redis is and how to treat it (taken from the config's redis.* keys). */
struct redisconn_params {
	const char *host;
	int port;
	const char *unix_socket;   /* NULL: host/port */
	const char *password;      /* NULL: no AUTH */
	int db;
	double timeout;            /* seconds a connect or a command may go unanswered */
	double reconnect_max;      /* cap of the reconnect backoff, seconds */
	const char *name;          /* for log lines: "redis" */
	bool quiet;                /* a command-line tool: log only at debug, report through last_error */
	const char *const *sentinels;  /* NULL-terminated "host:port" list (host/port unused); NULL: none */
	const char *master_name;       /* with sentinels: the name they monitor the master under */
	const char *sentinel_password; /* AUTH to the sentinels; NULL: none */
	bool follow_failover;      /* with sentinels: subscribe to +switch-master (the relay, not a tool) */
	const char *const *cluster;    /* NULL-terminated "host:port" seed nodes of a Redis Cluster; NULL:
					* none (rcluster.h uses them; one redisconn is one node) */
};

struct config;
/* The redis.* keys of a config as connection parameters. */
void redisconn_params_of(const struct config *cfg, struct redisconn_params *p);

/* Upward notifications, all optional. */
struct redisconn_hooks {
	/* Connected and authenticated: queue setup commands now with redisconn_setup(). */
	void (*on_handshake)(void *arg, struct redisconn *rc);
	/* Every setup command answered: commands may be sent. */
	void (*on_ready)(void *arg);
	/* The connection is gone (callbacks of commands in flight have run with a NULL reply), or a
	 * connect attempt failed; a reconnect follows by itself. */
	void (*on_lost)(void *arg);
	void *arg;
};

/* reply is NULL when the connection was lost before the answer (the outcome is unknown), and,
 * with sentinels, for a -READONLY error (the server is no longer the master: nothing was written;
 * the connection is dropped right after). It is freed by hiredis after the callback returns. */
typedef void (*redisconn_reply_cb)(void *arg, redisReply *reply);

enum redisconn_send {
	REDISCONN_SENT = 0,        /* cb will run exactly once */
	REDISCONN_UNAVAILABLE,     /* not connected (or out of memory): cb will not run */
};

/* Starts connecting at once. NULL on allocation failure. */
struct redisconn *redisconn_new(struct event_base *base, const struct redisconn_params *p,
				const struct redisconn_hooks *hooks);
/* Closes the connection; callbacks in flight run with a NULL reply. */
void redisconn_free(struct redisconn *rc);

bool redisconn_ready(const struct redisconn *rc);
/* Commands sent and not yet answered. */
long redisconn_outstanding(const struct redisconn *rc);

/* Send one command (argvlen NULL: every argument is a NUL-terminated string). Only when ready. */
enum redisconn_send redisconn_send(struct redisconn *rc, redisconn_reply_cb cb, void *arg, int argc,
				   const char **argv, const size_t *argvlen);
/* The same with a command formatted already (redisFormatCommandArgv): what a cluster client
 * keeps to send again after a redirection. */
enum redisconn_send redisconn_send_formatted(struct redisconn *rc, redisconn_reply_cb cb, void *arg, const char *cmd,
					     size_t len);
/* From on_handshake only: a command that must succeed before the connection is ready. An error
 * reply starting with ok_error (e.g. "BUSYGROUP"; NULL: none) counts as success. */
enum redisconn_send redisconn_setup(struct redisconn *rc, int argc, const char **argv, const char *ok_error);
/* Drop the connection and reconnect (after backoff), e.g. when a reply says it is stale. */
void redisconn_reset(struct redisconn *rc, const char *why);

/* Where Redis is: "host:port" (IPv6 in brackets) or the unix socket path; with sentinels, the
 * master they named last ("" before the first answer). Into buf, which is returned. */
const char *redisconn_address(const struct redisconn *rc, char *buf, size_t len);
/* With follow_failover: the sentinel whose +switch-master messages are followed, "" when none. */
const char *redisconn_sentinel(const struct redisconn *rc, char *buf, size_t len);

/* The last connect or handshake failure, "" when none (for a tool's one-line error). */
const char *redisconn_last_error(const struct redisconn *rc);

/* Deep copy of a reply (hiredis frees its own after the callback). NULL on allocation failure. */
redisReply *redisconn_reply_clone(const redisReply *r);

#endif
