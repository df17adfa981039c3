/* auth.h - Sentry credentials: parse every carrier an SDK uses into one struct, and rewrite it. */
#ifndef SENTRYQ_AUTH_H
#define SENTRYQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_FIELD_MAX 128

/* Where the credentials came from. The forwarder rewrites exactly this carrier and adds no other. */
enum auth_carrier {
	AUTH_NONE = 0,
	AUTH_X_SENTRY_AUTH,   /* X-Sentry-Auth: Sentry sentry_key=..., ... */
	AUTH_AUTHORIZATION,   /* Authorization: Sentry sentry_key=..., ... */
	AUTH_BASIC,           /* Authorization: Basic base64(key:secret) */
	AUTH_QUERY,           /* ?sentry_key=...&sentry_secret=... */
	AUTH_PATH,            /* /unreal/<key>/, /cron/<slug>/<key> */
	AUTH_ENVELOPE,        /* envelope header "dsn" (JavaScript tunnel) */
};

struct auth_info {
	enum auth_carrier carrier;
	char key[AUTH_FIELD_MAX];     /* sentry_key, never empty after a successful parse */
	char secret[AUTH_FIELD_MAX];  /* sentry_secret, "" when absent */
	bool has_secret;              /* a non-empty secret was sent */
	int version;                  /* sentry_version, 7 when absent */
};

/*
 * The carriers of one request, as raw header values / query string (NULL when absent).
 * Sentry's rules: X-Sentry-Auth and Authorization count only when they start with
 * "Sentry " (case-insensitive) or, for Authorization, "Basic "; the query counts when it
 * contains "sentry_" anywhere. Two carriers present -> 401; none -> 401 "missing
 * authorization information"; unparsable -> 401; bad key or version too high -> 400.
 *
 * Returns 0 with *out filled (carrier AUTH_NONE when nothing was sent and none_ok is set,
 * which the tunnel/envelope-dsn path uses), or -1 with *status (400/401) and *why set to
 * a static message that never contains a credential.
 */
int auth_from_request(const char *x_sentry_auth, const char *authorization, const char *query,
		      bool none_ok, struct auth_info *out, int *status, const char **why);


/*
 * Rewrites; each returns a malloc'd string or NULL on allocation failure.
 * new_secret NULL drops sentry_secret; otherwise it is replaced (or added when the
 * original had none only in auth_rewrite_header/query if add_secret is true).
 * Every other field / parameter is kept in its original order and spelling (a rewritten query
 * parameter is named as Sentry spells it: "sentry_key", never a percent-encoded "sentry%5Fkey").
 */
char *auth_rewrite_header(const char *value, const char *new_key, const char *new_secret);
char *auth_rewrite_query(const char *query, const char *new_key, const char *new_secret);
char *auth_rewrite_basic(const char *new_key, const char *new_secret);


#endif
