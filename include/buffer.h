/* buffer.h - entries held in memory while Redis is away: a bounded FIFO of copies (pure). */
#ifndef SENTRYQ_BUFFER_H
#define SENTRYQ_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

#include "entry.h"

struct buffer;
struct buffer_item;

#define BUFFER_STREAMS_MAX 16   /* copies of one entry pushed at once */

enum buffer_result {
	BUFFER_OK = 0,
	BUFFER_FULL,      /* over max_bytes: the caller answers 503 */
	BUFFER_NOMEM,
};

struct buffer *buffer_new(size_t max_bytes);
void buffer_free(struct buffer *b);

/* Copy the entry (one allocation) to the tail. force: already accepted (from the spool), the bound
 * does not apply. A zero received_ms becomes now_ms, so the copy keeps the time it was accepted. */
enum buffer_result buffer_push(struct buffer *b, const char *stream, const struct entry *e, bool force,
			       long long now_ms);
/* One copy per stream (a request and its mirrors), all or none: BUFFER_FULL when the copies
 * together do not fit. 1..BUFFER_STREAMS_MAX streams. */
enum buffer_result buffer_push_each(struct buffer *b, const char *const *streams, size_t n, const struct entry *e,
				    bool force, long long now_ms);

/* Draining in order: the cursor walks items not yet handed out; items leave only by
 * buffer_remove (Redis confirmed the write), so a lost connection sends them again. */
struct buffer_item *buffer_take(struct buffer *b);
void buffer_rewind(struct buffer *b);        /* hand everything out again from the head */
bool buffer_all_taken(const struct buffer *b);
void buffer_remove(struct buffer *b, struct buffer_item *it);

/* Walk every item in order (spool writes): NULL starts. */
struct buffer_item *buffer_next(const struct buffer *b, const struct buffer_item *it);
const char *buffer_item_stream(const struct buffer_item *it);
const struct entry *buffer_item_entry(const struct buffer_item *it);

size_t buffer_count(const struct buffer *b);
size_t buffer_bytes(const struct buffer *b);   /* what counts against max_bytes */

#endif
