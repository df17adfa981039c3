/* health.c - liveness and readiness as decisions over numbers the caller gathered. */
#include "health.h"

enum health_ready health_ready(const struct health_input *in)
{
	bool buffering = !in->redis_ready || in->buffered > 0;

	if (in->stopping)
		return HEALTH_STOPPING;
	if (in->forward_only)
		return in->redis_ready ? HEALTH_READY : HEALTH_REDIS_DOWN;
	/* The same test ingest makes before it queues (backpressure). */
	if (in->pending >= in->max_pending || in->bytes >= in->max_bytes)
		return HEALTH_QUEUE_FULL;
	/* While Redis is away, and while what the buffer holds drains, new entries go to the buffer. */
	if (buffering && (in->buffer_bytes >= in->buffer_max || in->buffer_max - in->buffer_bytes < HEALTH_SMALL_REQUEST))
		return HEALTH_BUFFER_FULL;
	if (!in->body_room)
		return HEALTH_BODY_MEMORY;
	return HEALTH_READY;
}

enum health_live health_live(double last_beat, double last_gap, double now)
{
	return now - last_beat > HEALTH_STALE_AFTER || last_gap > HEALTH_STALE_AFTER ? HEALTH_STUCK : HEALTH_LIVE;
}

const char *health_ready_name(enum health_ready r)
{
	switch (r) {
	case HEALTH_READY: return "ready";
	case HEALTH_STOPPING: return "stopping";
	case HEALTH_QUEUE_FULL: return "queue_full";
	case HEALTH_BUFFER_FULL: return "buffer_full";
	case HEALTH_BODY_MEMORY: return "body_memory";
	case HEALTH_REDIS_DOWN: return "redis_down";
	}
	return "?";
}

const char *health_status_word(enum health_ready r, bool redis_ready)
{
	if (r == HEALTH_STOPPING)
		return "stopping";
	return r == HEALTH_READY && redis_ready ? "ok" : "degraded";
}
