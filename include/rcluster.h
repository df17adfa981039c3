/* rcluster.h - Redis Cluster over the connection supervisor: the slot map from CLUSTER SLOTS, one
 * supervised connection (redisconn.h) per master, every command sent to the master of its key's
 * slot (slot.h), -MOVED and -ASK followed (ASK: ASKING first, on the target), -TRYAGAIN and
 * -CLUSTERDOWN retried within redis.timeout (after a -CLUSTERDOWN, new commands are refused for a
 * moment: the cluster serves no slot until a failed master is replaced). A MOVED, a lost master
 * (every 0.25 s until its slots have one again) and a 10 s timer refresh the map; a master that no
 * longer serves slots is dropped. hiredis 0.14 knows no Cluster: it is
 * all built here, on its async API, and nothing blocks the loop.
 *
 * Layering: redisconn reports to this module through its hooks; this module reports to its owner
 * (queue, redissync) through struct rcluster_hooks. */
#ifndef SENTRYQ_RCLUSTER_H
#define SENTRYQ_RCLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "redisconn.h"

struct event_base;
struct rcluster;

/* Upward notifications, all optional. */
struct rcluster_hooks {
	/* Every slot has a connected master: the first time, and again each time after one was away. */
	void (*on_ready)(void *arg);
	/* A master's connection is gone (the callbacks of its commands ran with a NULL reply); node is
	 * the id rcluster_reply_node gave for it, never used again. */
	void (*on_node_lost)(void *arg, unsigned node);
	void *arg;
};

enum rcluster_send {
	RCLUSTER_SENT = 0,         /* cb will run exactly once */
	RCLUSTER_UNAVAILABLE,      /* the slot's master (or that node) is not connected, or out of
				    * memory: cb will not run */
};

/* p->cluster holds the seeds; host, port, unix_socket, db and the sentinel keys are not used.
 * Starts connecting at once. NULL on allocation failure. */
struct rcluster *rcluster_new(struct event_base *base, const struct redisconn_params *p,
			      const struct rcluster_hooks *hooks);
/* Closes every connection; callbacks in flight run with a NULL reply. */
void rcluster_free(struct rcluster *cl);

/* Every slot's master is connected. */
bool rcluster_ready(const struct rcluster *cl);
/* The slot map is known and at least one master is connected (some commands can go). */
bool rcluster_usable(const struct rcluster *cl);
/* The master of this key's slot is connected. */
bool rcluster_key_ready(const struct rcluster *cl, const char *key, size_t len);

/* One command to the master of its key's slot (slot_command_key), or, without a key, to any
 * connected master. The reply the callback gets is the final one: redirections were followed
 * (at most a few, within redis.timeout); NULL when the connection was lost first, or the
 * redirections did not end in time (the outcome is unknown). */
enum rcluster_send rcluster_send(struct rcluster *cl, redisconn_reply_cb cb, void *arg, int argc, const char **argv,
				 const size_t *argvlen);
/* One command to one connection (the id of rcluster_reply_node), e.g. WAIT after the writes that
 * connection took; not redirected. UNAVAILABLE when that connection is gone. */
enum rcluster_send rcluster_send_node(struct rcluster *cl, unsigned node, redisconn_reply_cb cb, void *arg, int argc,
				      const char **argv, const size_t *argvlen);
/* Inside a reply callback of rcluster_send: the id of the connection that answered (a connection
 * of a master, new for every connect); 0 for a NULL reply or outside a callback. */
unsigned rcluster_reply_node(const struct rcluster *cl);

/* What the cluster layer did, for /status and /metrics. */
struct rcluster_counters {
	unsigned long moved;       /* -MOVED replies followed */
	unsigned long ask;         /* -ASK replies followed */
	unsigned long retried;     /* -TRYAGAIN / -CLUSTERDOWN replies retried */
	unsigned long refreshes;   /* slot maps read (CLUSTER SLOTS answered) */
	unsigned long masters_lost;/* master connections lost */
	size_t masters;            /* masters in the map */
	size_t masters_ready;      /* of those, connected */
};
void rcluster_counters(const struct rcluster *cl, struct rcluster_counters *out);

/* The masters as "host:port,host:port,..." (the map's order), "" before the first map. */
const char *rcluster_address(const struct rcluster *cl, char *buf, size_t len);
/* The master of a slot as "host:port", "" when none is known. */
const char *rcluster_slot_master(const struct rcluster *cl, unsigned slot, char *buf, size_t len);
/* The last connect or map failure, "" when none (for a tool's one-line error). */
const char *rcluster_last_error(const struct rcluster *cl);

#endif
