/* strmap.h - a string-keyed hash map (open addressing, FNV-1a) for look-ups on the hot path:
 * a stream name to its forwarding route, a route to its rate-limit state (pure). */
#ifndef SENTRYQ_STRMAP_H
#define SENTRYQ_STRMAP_H

#include <stddef.h>

struct strmap;

enum strmap_result {
	STRMAP_OK = 0,
	STRMAP_EXISTS,    /* the key is already there: the first value stays */
	STRMAP_NOMEM,
};

struct strmap *strmap_new(void);
/* Frees the map and its copies of the keys; values are the caller's. */
void strmap_free(struct strmap *m);
/* The key is copied. */
enum strmap_result strmap_put(struct strmap *m, const char *key, void *value);
/* The value, or NULL when absent. */
void *strmap_get(const struct strmap *m, const char *key);
/* Remove the key; its value (returned, NULL when absent) is the caller's. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* FNV-1a of n bytes, continuing from h (start with STRMAP_FNV_SEED). */
#define STRMAP_FNV_SEED 2166136261u
unsigned strmap_fnv(unsigned h, const void *p, size_t n);

#endif
