/* sentinel.h - the pure parts of Redis Sentinel: "host:port" addresses, and the replies sentryq
 * reads (SENTINEL get-master-addr-by-name, ROLE, a +switch-master message). No sockets: the
 * connection supervisor (redisconn.h) speaks to the sentinels and hands the replies here. */
#ifndef SENTRYQ_SENTINEL_H
#define SENTRYQ_SENTINEL_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define SENTINEL_DEFAULT_PORT 26379
#define SENTINEL_HOST_MAX 256       /* a host name (253) or an IPv6 literal, with its NUL */
#define SENTINEL_CHANNEL "+switch-master"

/* What a parse found. */
enum sentinel_parse {
	SENTINEL_OK = 0,
	SENTINEL_BAD,          /* not what was expected; why (when given) says what is wrong */
};

/* "host:port", "host" (port 26379), "[v6]:port" or "[v6]" into host (no brackets) and port.
 * why may be NULL. */
enum sentinel_parse sentinel_parse_addr(const char *s, char *host, size_t hostlen, int *port, char *why,
					size_t whylen);

/* What SENTINEL get-master-addr-by-name answered. */
enum sentinel_master {
	SENTINEL_MASTER_OK = 0,   /* host and port filled */
	SENTINEL_MASTER_UNKNOWN,  /* a nil reply: this sentinel does not monitor that name */
	SENTINEL_MASTER_ERROR,    /* an error reply (NOAUTH, not a sentinel, ...): why has its text */
	SENTINEL_MASTER_BAD,      /* not an [ip, port] pair */
};
enum sentinel_master sentinel_master_reply(const redisReply *r, char *host, size_t hostlen, int *port, char *why,
					   size_t whylen);

/* What ROLE answered. */
enum sentinel_role {
	SENTINEL_ROLE_MASTER = 0,
	SENTINEL_ROLE_REPLICA,    /* "slave" (a replica, or a master being demoted) */
	SENTINEL_ROLE_OTHER,      /* "sentinel", an error reply, or anything unreadable */
};
enum sentinel_role sentinel_role_reply(const redisReply *r);

/* A message of the +switch-master subscription: "<name> <old ip> <old port> <new ip> <new port>". */
enum sentinel_switch {
	SENTINEL_SWITCH_OURS = 0,  /* master_name moved: host and port are its new address */
	SENTINEL_SWITCH_OTHER,     /* another master moved, or the subscribe confirmation */
	SENTINEL_SWITCH_BAD,       /* not a pub/sub message sentryq understands */
};
enum sentinel_switch sentinel_switch_message(const redisReply *r, const char *master_name, char *host, size_t hostlen,
					     int *port);

#endif
