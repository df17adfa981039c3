/* deadtool.h - `sentryq dead ...`: list, replay and purge the dead-letter stream (synchronous, no loop). */
#ifndef SENTRYQ_DEADTOOL_H
#define SENTRYQ_DEADTOOL_H

struct config;

/*
 * argv[0] is "dead", argv[1] the verb: list [--json] | replay (--all | ID...) | purge (--all | ID...).
 * Talks to Redis with hiredis' blocking API. Returns the process exit code:
 * 0 success, 1 error (Redis unreachable, unknown id, route no longer configured), 2 bad usage.
 */
int deadtool_run(const struct config *cfg, int argc, char **argv);

#endif
