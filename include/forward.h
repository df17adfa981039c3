/* forward.h - take queued entries, rebuild each request for its upstream, ack on 2xx. */
#ifndef SENTRYQ_FORWARD_H
#define SENTRYQ_FORWARD_H

#include <stdbool.h>

#include <jansson.h>

struct relay;
struct forward;
struct config_upstream;
struct config_project;

struct forward *forward_new(struct relay *r);
void forward_free(struct forward *f);

/* Redis is (again) ready: rescan every route's own pending entries, then read new ones. */
void forward_resume(struct forward *f);
/* A local put landed on this route: read it now instead of at the next poll. */
void forward_kick(struct forward *f, const struct config_upstream *up, const struct config_project *pr);
/* Stop reading; done_cb runs once nothing is in flight and every ack is written (or on timeout). */
void forward_drain(struct forward *f, void (*done_cb)(void *arg), void *arg);

int forward_in_flight(const struct forward *f);
/* A 429 parked this project (or its whole upstream): seconds left and the limits Sentry sent. */
bool forward_parked(const struct forward *f, const struct config_upstream *up, const struct config_project *pr,
		    double *seconds, const char **limits);
json_t *forward_status_json(const struct forward *f);

#endif
