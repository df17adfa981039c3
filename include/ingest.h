/* ingest.h - the SDK-facing HTTP server: parse, authenticate, route, queue, answer once. */
#ifndef SENTRYQ_INGEST_H
#define SENTRYQ_INGEST_H

struct relay;
struct ingest;

/* Binds listen.address:port; NULL (with the reason logged) when it cannot. */
struct ingest *ingest_new(struct relay *r);
void ingest_free(struct ingest *in);

/* SIGTERM: close the listening socket; requests already read are still answered. */
void ingest_stop_accepting(struct ingest *in);
/* Requests waiting for Redis to acknowledge their write. */
int ingest_in_flight(const struct ingest *in);

#endif
