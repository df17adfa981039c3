/* legacyconf.h - `sentryq import-legacy-config OLD.py`: the Python forwarder's `config = {...}`
 * mapped to a sentryq libconfig file. Pure: the Python file is parsed (pyliteral), never run. */
#ifndef SENTRYQ_LEGACYCONF_H
#define SENTRYQ_LEGACYCONF_H

#include <stddef.h>
#include <stdio.h>

enum legacyconf_result {
	LEGACYCONF_OK = 0,
	LEGACYCONF_REFUSED,  /* the text cannot be mapped; err says where and why */
	LEGACYCONF_NOMEM,
};

struct legacyconf_error {
	unsigned line;   /* line in the Python text; 0 when none applies */
	char msg[256];   /* never holds a key, a secret or a project name */
};

/*
 * Map the Python text[0..len) to sentryq configuration text. `source` is named in the output's
 * header comment. Each top-level name but `default` is an upstream with its `url`; its other
 * entries are projects {key, secret, num}, names kept exactly (they are the DSNs' key and secret).
 * `default` becomes default_route: to the upstream/project with the same url, key and num, or a
 * project "default" added to the upstream with that url, or an upstream "default" with a project
 * "default". OK with *out (malloc'd, NUL-terminated, *outlen bytes), or REFUSED/NOMEM with err.
 */
enum legacyconf_result legacyconf_convert(const char *text, size_t len, const char *source,
					  char **out, size_t *outlen, struct legacyconf_error *err);

enum legacyconf_exit {
	LEGACYCONF_EXIT_OK = 0,
	LEGACYCONF_EXIT_REFUSED = 1,  /* unreadable or refused input, or stdout failed */
	LEGACYCONF_EXIT_USAGE = 2,
};

/*
 * The subcommand: argv[0] is "import-legacy-config", argv[1] the Python file. Writes the
 * configuration to `out` only when all of it could be mapped, and "sentryq: FILE:LINE: why"
 * to `errout` otherwise.
 */
enum legacyconf_exit legacyconf_run(int argc, char **argv, FILE *out, FILE *errout);

#endif
