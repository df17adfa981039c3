/* fleetsync.h - shared upstream knowledge between the sentryq processes sharing one Redis.
 *
 * What one process learns, every process honours: an upstream found down (its outage state went
 * down after forward.outage_grace) and the rate limits of a 429 (per category, as ratelimit.h
 * parses them). Both are written to Redis with their expiry; every process reads the fleet's
 * records with one script call per fleet.sync_period and keeps local copies (its caller applies
 * them: the local state is the max of what it learned and what the fleet said). While an
 * upstream is down, one probe lease (a key taken with SET NX semantics, renewed by its holder)
 * says which process probes: the others send nothing until the holder's probe succeeds and it
 * writes "up". When Redis is away (no answered read for three periods) every process decides on
 * its own again, as a single process does.
 *
 * The module has a pure part (the records' encoding, cmocka-tested) and a thin I/O part (the
 * scripts, a timer). It sends through the connection its owner gives it (struct fleetsync_io:
 * the queue's, so standalone, Sentinel and Cluster work alike; the keys share one hash tag,
 * entry.h) and reports upwards through struct fleetsync_hooks. Key names are entry.h's.
 */
#ifndef SENTRYQ_FLEETSYNC_H
#define SENTRYQ_FLEETSYNC_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ratelimit.h"
#include "redisconn.h"

struct event_base;
struct config;
struct fleetsync;

/* ---- pure: the records ---- */

/* What the fleet's record of an upstream says. */
enum fleetsync_state {
	FLEETSYNC_UNKNOWN = 0,  /* no record (nobody found it down lately), or not known (Redis away, sync off) */
	FLEETSYNC_UP,           /* a process got an answer that proves it reachable after an outage */
	FLEETSYNC_DOWN,         /* a process found it down; its probe lease holder keeps the record alive */
};

#define FLEETSYNC_ID_MAX 160        /* a process's id: "<consumer>:<pid>" */
#define FLEETSYNC_NAME_MAX 48       /* "<scope>:<category>" */
#define FLEETSYNC_TAIL_MAX (RATELIMIT_REASON_MAX + 24)
/* Fields of one route's record: a scope and a category (or "all") each. */
#define FLEETSYNC_FIELDS_MAX (3 * (CAT__COUNT + 1))

/* One field of a route's rate-limit record (a Redis hash): name "<scope>:<category>" or
 * "<scope>:all"; the write script stores "<until ms> <reason>" (until from Redis's own clock),
 * the read script answers "<ms left> <reason>". */
struct fleetsync_field {
	char name[FLEETSYNC_NAME_MAX];
	long long ms;                       /* how long it holds from now */
	char reason[RATELIMIT_REASON_MAX];  /* "" when none */
};

/* The limits of one 429 as fields: one per scope and category, the longest duration of each.
 * Returns the number written (at most max). */
size_t fleetsync_encode_limits(const struct ratelimit_set *set, struct fleetsync_field *out, size_t max);

enum fleetsync_decode {
	FLEETSYNC_DECODED = 0,   /* every field was read */
	FLEETSYNC_SKIPPED,       /* some fields were not sentryq's (or expired): left out, the rest decoded */
};
/* A route's record as the read script answers it (names[i], values[i] = "<ms left> <reason>")
 * into limits: fields of the same scope and reason whose times are within a second of each
 * other become one limit (what one 429 said), its seconds the longest of them. */
enum fleetsync_decode fleetsync_decode_limits(const char *const *names, const char *const *values, size_t n,
					      struct ratelimit_set *out);

/* An upstream's record: "down <id>" / "up <id>". Returns the length written (0: does not fit). */
size_t fleetsync_format_state(enum fleetsync_state s, const char *id, char *buf, size_t len);
/* FLEETSYNC_UNKNOWN for anything else (no record: ""). */
enum fleetsync_state fleetsync_parse_state(const char *v, size_t len);
const char *fleetsync_state_name(enum fleetsync_state s);

/* May this process probe a down upstream now? fresh: the fleet's records were read lately (else
 * every process decides on its own); held_until: the lease this process holds is valid until
 * then (0: none), by the monotonic clock. */
bool fleetsync_gate(bool fresh, double held_until, double now);

/* ---- the I/O part ---- */

/* How commands reach Redis (the owner passes queue_command): true when cb will run exactly once. */
struct fleetsync_io {
	bool (*send)(void *arg, redisconn_reply_cb cb, void *cbarg, int argc, const char **argv, const size_t *lens);
	void *arg;
};

/* Upward notifications (the forwarder). Upstreams and projects are indexes into cfg->upstreams
 * and its projects. */
struct fleetsync_hooks {
	/* The fleet says the upstream is down. */
	void (*on_down)(void *arg, size_t upstream);
	/* The fleet says it is reachable again; asked_at: when the read that says so was sent
	 * (monotonic), so a state that began after it is not undone by it. */
	void (*on_up)(void *arg, size_t upstream, double asked_at);
	/* Limits in force for a project (seconds: what is left of each). */
	void (*on_limits)(void *arg, size_t upstream, size_t project, const struct ratelimit_set *set);
	/* Is the upstream down here (then this process takes or renews the probe lease)? */
	bool (*local_down)(void *arg, size_t upstream);
	void *arg;
};

/* NULL when fleet.sync is off or memory is short (the functions below take NULL: no fleet). id:
 * this process's id in the fleet (unique per process). Starts its timer at once. */
struct fleetsync *fleetsync_new(struct event_base *base, const struct config *cfg, const char *id,
				const struct fleetsync_io *io, const struct fleetsync_hooks *hooks);
/* Commands still in flight keep what they need until their callbacks ran. */
void fleetsync_free(struct fleetsync *fs);

/* The upstream went down here (its own answers): take the probe lease if free, write "down". */
void fleetsync_note_down(struct fleetsync *fs, size_t upstream);
/* An answer proved it reachable after an outage: write "up", give the probe lease back. */
void fleetsync_note_up(struct fleetsync *fs, size_t upstream);
/* A 429 for a project: its limits for the fleet, each with its own expiry. */
void fleetsync_note_limits(struct fleetsync *fs, size_t upstream, size_t project, const struct ratelimit_set *set);

/* True when this process may probe the down upstream (it holds the lease, or the fleet is not
 * reachable: then it decides alone). True for a NULL fs. */
bool fleetsync_may_probe(const struct fleetsync *fs, size_t upstream);
/* What the fleet's record said at the last read: DOWN, else UP (no record, or "up"); UNKNOWN
 * when not read lately (Redis away) or for a NULL fs. */
enum fleetsync_state fleetsync_state(const struct fleetsync *fs, size_t upstream);
/* This process holds the upstream's probe lease. */
bool fleetsync_probing_here(const struct fleetsync *fs, size_t upstream);
/* Commands that failed (error reply, or the connection lost before the answer). */
unsigned long fleetsync_errors(const struct fleetsync *fs);

#endif
