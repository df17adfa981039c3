/* report.h - the periodic stats line (log.stats_period seconds; 0: none), as pgbouncer logs one:
 * requests/s, forwards/s, queue depth, dead letters, and one line per upstream that forwarded,
 * failed or is not up in the period, with what it forwarded. Reads stats, the queue and the
 * upstreams; writes only the log. */
#ifndef SENTRYQ_REPORT_H
#define SENTRYQ_REPORT_H

struct relay;
struct report;

/* Starts the timer when log.stats_period > 0. NULL on allocation failure. */
struct report *report_new(struct relay *r);
void report_free(struct report *rp);
/* After a reload: the upstreams' baselines again (their list may have changed), log.stats_period. */
void report_reload(struct report *rp);

#endif
