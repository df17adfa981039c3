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

bool budget_room_more(const struct budget *b, size_t held, size_t more)
{
	size_t cap = b->cap;

	if (held > b->small || more > b->small - held)
		cap -= cap / BUDGET_HOLDBACK;
	return more <= cap && b->used <= cap - more;
}

bool budget_room(const struct budget *b, size_t bytes)
{
	return budget_room_more(b, 0, bytes);
}

enum budget_result budget_take_more(struct budget *b, size_t held, size_t more)
{
	if (!budget_room_more(b, held, more))
		return BUDGET_FULL;
	b->used += more;
	return BUDGET_OK;
}

enum budget_result budget_take(struct budget *b, size_t bytes)
{
	return budget_take_more(b, 0, bytes);
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
