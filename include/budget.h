/* budget.h - the one bound on body memory, shared by everything that holds whole bodies: the
 * listener (bodies being received or waiting for Redis) and the forwarder (large bodies fetched
 * from Redis to be sent). Pure bookkeeping: callers take before they allocate, give back after. */
#ifndef SENTRYQ_BUDGET_H
#define SENTRYQ_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#define BUDGET_HOLDBACK 16   /* the last 1/16 of the bound is for small bodies only */

struct budget;

enum budget_result {
	BUDGET_OK = 0,
	BUDGET_FULL,         /* taking it would pass the bound: nothing was taken */
};

/* cap: bytes in all; bodies of up to `small` bytes may also use the last cap / BUDGET_HOLDBACK,
 * so events keep flowing while a few large uploads fill the rest. NULL when out of memory. */
struct budget *budget_new(size_t cap, size_t small);
void budget_free(struct budget *b);

/* Would a body of `bytes` fit now? */
bool budget_room(const struct budget *b, size_t bytes);
/* Would `more` bytes fit now for a body that holds `held` already (a chunked body growing as it
 * comes)? Its size class is held + more: a body past `small` never grows into the reserve. */
bool budget_room_more(const struct budget *b, size_t held, size_t more);
enum budget_result budget_take(struct budget *b, size_t bytes);
/* Takes `more` for a body holding `held` (budget_room_more), or nothing (BUDGET_FULL). */
enum budget_result budget_take_more(struct budget *b, size_t held, size_t more);
/* Takes even past the bound: for memory already held that changes hands (a body that must
 * outlive its request), so the count stays true. */
void budget_force(struct budget *b, size_t bytes);
/* Gives back what was taken (never below zero). */
void budget_give(struct budget *b, size_t bytes);
size_t budget_used(const struct budget *b);
size_t budget_cap(const struct budget *b);

#endif
