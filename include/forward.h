/* forward.h - take queued entries, rebuild each request for its upstream, ack on 2xx; hold back
 * what a rate limit names, dead-letter what never will pass. */
#ifndef SENTRYQ_FORWARD_H
#define SENTRYQ_FORWARD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct relay;
struct forward;
struct upstream;

struct forward *forward_new(struct relay *r);
void forward_free(struct forward *f);

struct generation;
/*
 * A reload: read the routes of g (held) from now on. A kept route keeps its state (cursor,
 * calls, acks) and takes its new credentials for what it sends next; a kept server keeps its
 * upstream (connections, outage state); a removed route is retired: read with the credentials
 * its entries were queued under until its stream is empty, then dropped (queue_forget_stream).
 * 0, or -1 on allocation failure before anything changed.
 */
int forward_reload(struct forward *f, struct generation *g);
/* Routes removed by a reload whose streams are still being emptied. */
size_t forward_retired(const struct forward *f);

/* Redis is (again) ready: rescan every route's own pending entries, then read new ones. */
void forward_resume(struct forward *f);
/* An entry of this stream is in Redis (a local put): read it now instead of at the next poll. */
void forward_arrived(struct forward *f, const char *stream);
/* Stop reading; done_cb runs once nothing is in flight and every ack is written (or on timeout). */
void forward_drain(struct forward *f, void (*done_cb)(void *arg), void *arg);

/* The readers below take f NULL too (role ingest has no forwarder): 0, NULL, nothing in flight. */
int forward_in_flight(const struct forward *f);
/* The upstream of cfg->upstreams[i] (NULL past the end): /metrics reads its counts and state. */
const struct upstream *forward_upstream(const struct forward *f, size_t i);
/* The fleet (fleetsync.h): this process holds the probe lease of cfg->upstreams[i]; commands
 * of the shared knowledge that failed. */
bool forward_probing_here(const struct forward *f, size_t i);
unsigned long forward_fleet_errors(const struct forward *f);
/* {"in_flight", "upstreams": {name: upstream_status_json}, "held": {route: entries held back}}. */
json_t *forward_status_json(const struct forward *f);

#endif
