/* legacytool.h - `sentryq legacy drain`: what the old pipeline left in its Redis moved into sentryq's
 * queue, record by record, at least once (over redissync: one connection to each Redis). */
#ifndef SENTRYQ_LEGACYTOOL_H
#define SENTRYQ_LEGACYTOOL_H

struct config;

/* The old Redis's password, when it has one (an environment variable, kept off the command line). */
#define LEGACYTOOL_PASSWORD_ENV "SENTRYQ_LEGACY_REDIS_PASSWORD"

enum legacytool_exit {
	LEGACYTOOL_EXIT_OK = 0,     /* every record examined was moved (or, with --dry-run, would be) */
	LEGACYTOOL_EXIT_KEPT = 1,   /* a record was kept (unroutable, missing body, malformed), or a Redis failed */
	LEGACYTOOL_EXIT_USAGE = 2,
};

/*
 * argv[0] is "legacy", argv[1] "drain", then --from HOST:PORT[/DB] [--dry-run] [--list NAME]
 * [--body-prefix PREFIX]; the old Redis's password, if it has one, in LEGACYTOOL_PASSWORD_ENV. The
 * records in the old list when it starts are examined in list order, LRANGE page by page; each one
 * that routes is XADDed (with its body, byte for byte) to its route's stream in the Redis of cfg,
 * and only then removed from the old list (LREM of that element, count 1) with its body key, so a
 * crash leaves a record in the old list, in sentryq's queue, or in both. Every record kept is
 * reported on stdout with why; the counts close the output.
 */
enum legacytool_exit legacytool_run(const struct config *cfg, int argc, char **argv);

#endif
