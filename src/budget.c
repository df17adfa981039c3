/* budget.c - a counter against a bound, with a reserve for small bodies. */
#include "budget.h"

#include <stdlib.h>

struct budget {
	size_t cap, small, used;
};

struct budget *budget_new(size_t cap, size_t small)
{
	struct budget *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->cap = cap;
		b->small = small;
	}
	return b;
}

void budget_free(struct budget *b)
{
	free(b);
}

bool budget_room(const struct budget *b, size_t bytes)
{
	size_t cap = b->cap;

	if (bytes > b->small)
		cap -= cap / BUDGET_HOLDBACK;
	return bytes <= cap && b->used <= cap - bytes;
}

enum budget_result budget_take(struct budget *b, size_t bytes)
{
	if (!budget_room(b, bytes))
		return BUDGET_FULL;
	b->used += bytes;
	return BUDGET_OK;
}

void budget_force(struct budget *b, size_t bytes)
{
	b->used += bytes;
}

void budget_give(struct budget *b, size_t bytes)
{
	b->used = b->used > bytes ? b->used - bytes : 0;
}

size_t budget_used(const struct budget *b)
{
	return b->used;
}

size_t budget_cap(const struct budget *b)
{
	return b->cap;
}
