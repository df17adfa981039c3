/* clock.h - the two clocks sentryq reads: monotonic seconds for waits, epoch milliseconds for records. */
#ifndef SENTRYQ_CLOCK_H
#define SENTRYQ_CLOCK_H

#include <sys/time.h>

/* Seconds on CLOCK_MONOTONIC: backoffs, timeouts, park expiry (immune to clock changes). */
double clock_mono(void);
/* Milliseconds since the epoch: times written into Redis entries and dead letters. */
long long clock_epoch_ms(void);
/* Seconds as the struct timeval libevent and hiredis take (negative becomes 0). */
struct timeval clock_timeval(double seconds);

#endif
