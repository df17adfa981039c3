/* buffer.c - a doubly linked FIFO of entry copies, each one allocation, with a send cursor. */
#include "buffer.h"

#include <stdlib.h>
#include <string.h>

struct buffer_item {
	struct buffer_item *prev, *next;
	const char *stream;
	struct entry e;                 /* strings point into the same allocation */
	size_t size;
};

struct buffer {
	struct buffer_item *head, *tail, *cursor;  /* cursor: first item not handed out */
	size_t bytes, count, max_bytes;
};

struct buffer *buffer_new(size_t max_bytes)
{
	struct buffer *b = calloc(1, sizeof(*b));

	if (b != NULL)
		b->max_bytes = max_bytes;
	return b;
}

void buffer_free(struct buffer *b)
{
	if (b == NULL)
		return;
	while (b->head != NULL)
		buffer_remove(b, b->head);
	free(b);
}

/* Copy s (NUL included) to *off and point *slot at it. */
static void put_str(char *base, size_t *off, const char **slot, const char *s)
{
	size_t l = strlen(s) + 1;

	memcpy(base + *off, s, l);
	*slot = base + *off;
	*off += l;
}

static size_t item_size(const char *stream, const struct entry *e, const char *rk)
{
	const char *src[] = { stream, e->method, e->endpoint, e->query, e->headers, e->client_ip, e->sdk_key,
			      e->event_id, rk };
	size_t size = sizeof(struct buffer_item) + e->body_len;

	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		size += strlen(src[i]) + 1;
	return size;
}

/* One allocation: the item, its strings, then the body. */
static struct buffer_item *make_item(const char *stream, const struct entry *e, const char *rk, size_t size,
				     long long now_ms)
{
	size_t off = sizeof(struct buffer_item);
	struct buffer_item *it = malloc(size);

	if (it == NULL)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->e = *e;
	it->size = size;
	if (it->e.received_ms <= 0)
		it->e.received_ms = now_ms;
	put_str((char *)it, &off, &it->stream, stream);
	put_str((char *)it, &off, &it->e.method, e->method);
	put_str((char *)it, &off, &it->e.endpoint, e->endpoint);
	put_str((char *)it, &off, &it->e.query, e->query);
	put_str((char *)it, &off, &it->e.headers, e->headers);
	put_str((char *)it, &off, &it->e.client_ip, e->client_ip);
	put_str((char *)it, &off, &it->e.sdk_key, e->sdk_key);
	put_str((char *)it, &off, &it->e.event_id, e->event_id);
	put_str((char *)it, &off, &it->e.rewritten_key, rk);
	memcpy((char *)it + off, e->body, e->body_len);
	it->e.body = (char *)it + off;
	return it;
}

static void link_tail(struct buffer *b, struct buffer_item *it)
{
	it->prev = b->tail;
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	if (b->cursor == NULL)
		b->cursor = it;
	b->bytes += it->size;
	b->count++;
}

enum buffer_result buffer_push(struct buffer *b, const char *stream, const struct entry *e, bool force,
			       long long now_ms)
{
	return buffer_push_each(b, &stream, 1, e, force, now_ms);
}

enum buffer_result buffer_push_each(struct buffer *b, const char *const *streams, size_t n, const struct entry *e,
				    bool force, long long now_ms)
{
	const char *rk = e->rewritten_key != NULL ? e->rewritten_key : "";
	struct buffer_item *items[BUFFER_STREAMS_MAX];
	size_t total = 0;

	if (n == 0 || n > BUFFER_STREAMS_MAX)
		return BUFFER_NOMEM;
	for (size_t i = 0; i < n; i++)
		total += item_size(streams[i], e, rk);
	if (!force && b->bytes + total > b->max_bytes)
		return BUFFER_FULL;
	for (size_t i = 0; i < n; i++) {
		if ((items[i] = make_item(streams[i], e, rk, item_size(streams[i], e, rk), now_ms)) == NULL) {
			while (i > 0)
				free(items[--i]);
			return BUFFER_NOMEM;
		}
	}
	for (size_t i = 0; i < n; i++)
		link_tail(b, items[i]);
	return BUFFER_OK;
}

struct buffer_item *buffer_take(struct buffer *b)
{
	struct buffer_item *it = b->cursor;

	if (it != NULL)
		b->cursor = it->next;
	return it;
}

void buffer_rewind(struct buffer *b)
{
	b->cursor = b->head;
}

bool buffer_all_taken(const struct buffer *b)
{
	return b->cursor == NULL;
}

void buffer_remove(struct buffer *b, struct buffer_item *it)
{
	if (it->prev != NULL)
		it->prev->next = it->next;
	else
		b->head = it->next;
	if (it->next != NULL)
		it->next->prev = it->prev;
	else
		b->tail = it->prev;
	if (b->cursor == it)
		b->cursor = it->next;
	b->bytes -= it->size;
	b->count--;
	free(it);
}

struct buffer_item *buffer_next(const struct buffer *b, const struct buffer_item *it)
{
	return it == NULL ? b->head : it->next;
}

const char *buffer_item_stream(const struct buffer_item *it)
{
	return it->stream;
}

const struct entry *buffer_item_entry(const struct buffer_item *it)
{
	return &it->e;
}

size_t buffer_count(const struct buffer *b)
{
	return b->count;
}

size_t buffer_bytes(const struct buffer *b)
{
	return b->bytes;
}
