/* redissync.h - blocking Redis calls for the command-line tools (`sentryq dead ...`), made by
 * running a private event loop over the same connection supervisor the relay uses, so the tools
 * reach Redis exactly as the relay does (AUTH, SELECT, and whatever redisconn learns later). */
#ifndef SENTRYQ_REDISSYNC_H
#define SENTRYQ_REDISSYNC_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "redisconn.h"

struct redissync;

/* Connect and wait (at most params->timeout) until ready. NULL with a message in err. */
struct redissync *redissync_open(const struct redisconn_params *p, char *err, size_t errlen);
void redissync_close(struct redissync *rs);
/* One command, waiting for its answer (at most params->timeout). The reply is the caller's
 * (freeReplyObject); NULL when the connection failed, with a message in err. */
redisReply *redissync_call(struct redissync *rs, int argc, const char **argv, const size_t *argvlen,
			   char *err, size_t errlen);

#endif
