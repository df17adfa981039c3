/* strmap.c - open addressing with linear probing, load kept at or below one half. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_PRIME 16777619u

struct slot {
	char *key;          /* NULL: free */
	void *value;
	unsigned hash;
};

struct strmap {
	struct slot *slots;
	size_t mask, count;
};

unsigned strmap_fnv(unsigned h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * FNV_PRIME;
	return h;
}

struct strmap *strmap_new(void)
{
	struct strmap *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->slots = calloc(8, sizeof(struct slot));
	if (m->slots == NULL) {
		free(m);
		return NULL;
	}
	m->mask = 7;
	return m;
}

void strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i <= m->mask; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}

static struct slot *find(const struct strmap *m, const char *key, unsigned h)
{
	size_t i = h & m->mask;

	while (m->slots[i].key != NULL && (m->slots[i].hash != h || strcmp(m->slots[i].key, key) != 0))
		i = (i + 1) & m->mask;
	return &m->slots[i];
}

static int grow(struct strmap *m)
{
	size_t cap = (m->mask + 1) * 2;
	struct slot *old = m->slots, *s;
	size_t old_cap = m->mask + 1;

	if (cap > SIZE_MAX / sizeof(struct slot) || (s = calloc(cap, sizeof(struct slot))) == NULL)
		return -1;
	m->slots = s;
	m->mask = cap - 1;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].key != NULL)
			*find(m, old[i].key, old[i].hash) = old[i];
	free(old);
	return 0;
}

enum strmap_result strmap_put(struct strmap *m, const char *key, void *value)
{
	unsigned h = strmap_fnv(STRMAP_FNV_SEED, key, strlen(key));
	struct slot *s = find(m, key, h);

	if (s->key != NULL)
		return STRMAP_EXISTS;
	if (2 * (m->count + 1) > m->mask + 1) {
		if (grow(m) != 0)
			return STRMAP_NOMEM;
		s = find(m, key, h);
	}
	if ((s->key = strdup(key)) == NULL)
		return STRMAP_NOMEM;
	s->value = value;
	s->hash = h;
	m->count++;
	return STRMAP_OK;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, strmap_fnv(STRMAP_FNV_SEED, key, strlen(key)));

	return s->key != NULL ? s->value : NULL;
}

/* Linear probing without tombstones: after a removal, later members of the same run move back
 * into the hole, so every look-up still finds its key before the first free slot. */
void *strmap_del(struct strmap *m, const char *key)
{
	struct slot *s = find(m, key, strmap_fnv(STRMAP_FNV_SEED, key, strlen(key)));
	size_t hole, i;
	void *value;

	if (s->key == NULL)
		return NULL;
	value = s->value;
	free(s->key);
	s->key = NULL;
	m->count--;
	hole = (size_t)(s - m->slots);
	for (i = (hole + 1) & m->mask; m->slots[i].key != NULL; i = (i + 1) & m->mask) {
		size_t home = m->slots[i].hash & m->mask;

		/* Stays when its home lies cyclically in (hole, i]; else it moves into the hole. */
		if (hole <= i ? (home > hole && home <= i) : (home > hole || home <= i))
			continue;
		m->slots[hole] = m->slots[i];
		m->slots[i].key = NULL;
		hole = i;
	}
	return value;
}

size_t strmap_count(const struct strmap *m)
{
	return m->count;
}
