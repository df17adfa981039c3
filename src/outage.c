/* outage.c - the connection monitor: a failure wave counts once, blips retry fast, outages are probed. */
#include "outage.h"

static double jittered(double seconds, double cap, double rnd)
{
	double d = seconds * (1.0 + OUTAGE_JITTER * (2.0 * rnd - 1.0));

	return d > cap ? cap : d;
}

static void enter(struct outage *o, enum outage_state s, double now)
{
	o->state = s;
	o->since = now;
	o->stamp++;
}

void outage_init(struct outage *o, const struct outage_params *p, double now)
{
	o->p = *p;
	o->state = OUTAGE_UP;
	o->stamp = 0;
	o->since = now;
	o->first_failure = 0;
	o->next_at = 0;
	o->interval = p->retry_initial;
	o->failed_waves = 0;
}

unsigned outage_stamp(const struct outage *o)
{
	return o->stamp;
}

enum outage_change outage_failed(struct outage *o, unsigned stamp, double sent, double now, double rnd)
{
	/* Sent before the last change: this failure's wave was already counted (or an answer since
	 * proved the upstream reachable). Sixteen concurrent failures move the state once. */
	if (stamp != o->stamp)
		return OUTAGE_SAME;
	o->failed_waves++;
	switch (o->state) {
	case OUTAGE_UP:
		enter(o, OUTAGE_INTERRUPTED, now);
		o->first_failure = now;
		o->next_at = now + jittered(o->p.retry_initial, o->p.retry_max, rnd);
		return OUTAGE_BECAME_INTERRUPTED;
	case OUTAGE_INTERRUPTED:
		if (now - o->first_failure < o->p.grace) {
			o->stamp++;
			o->next_at = now + jittered(o->p.retry_initial, o->p.retry_max, rnd);
			return OUTAGE_RETRY_LATER;
		}
		enter(o, OUTAGE_DOWN, now);
		o->interval = o->p.retry_initial;
		o->next_at = now + jittered(o->interval, o->p.retry_max, rnd);
		return OUTAGE_BECAME_DOWN;
	case OUTAGE_DOWN:
		o->stamp++;
		o->interval *= OUTAGE_PROBE_FACTOR;
		if (o->interval > o->p.retry_max)
			o->interval = o->p.retry_max;
		/* From the probe's send: one that took long (forward.timeout) is followed at once. */
		o->next_at = (sent < now ? sent : now) + jittered(o->interval, o->p.retry_max, rnd);
		return OUTAGE_PROBE_FAILED;
	}
	return OUTAGE_SAME;
}

enum outage_change outage_reachable(struct outage *o, double now)
{
	if (o->state == OUTAGE_UP)
		return OUTAGE_SAME;
	/* The stamp moves too: failures of requests sent during the outage are stale news now. */
	enter(o, OUTAGE_UP, now);
	o->next_at = 0;
	o->interval = o->p.retry_initial;
	o->failed_waves = 0;
	return OUTAGE_RECOVERED;
}

enum outage_change outage_fleet_down(struct outage *o, double now, double rnd)
{
	if (o->state == OUTAGE_DOWN)
		return OUTAGE_SAME;
	if (o->state == OUTAGE_UP)
		o->first_failure = now;
	enter(o, OUTAGE_DOWN, now);
	o->interval = o->p.retry_initial;
	o->next_at = now + jittered(o->interval, o->p.retry_max, rnd);
	return OUTAGE_BECAME_DOWN;
}

int outage_slots(const struct outage *o, double now, int max)
{
	if (o->state == OUTAGE_UP)
		return max;
	if (now < o->next_at)
		return 0;
	return o->state == OUTAGE_DOWN ? 1 : max;
}

double outage_wait(const struct outage *o, double now)
{
	return o->state == OUTAGE_UP || now >= o->next_at ? 0 : o->next_at - now;
}

const char *outage_state_name(enum outage_state s)
{
	switch (s) {
	case OUTAGE_UP: return "up";
	case OUTAGE_INTERRUPTED: return "interrupted";
	case OUTAGE_DOWN: return "down";
	}
	return "?";
}
