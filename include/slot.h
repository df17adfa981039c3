/* slot.h - the pure parts of Redis Cluster: a key's hash slot (CRC16/XMODEM of the key, or of
 * its hash tag, mod 16384), the key a command is routed by, the -MOVED / -ASK redirections, and
 * the CLUSTER SLOTS reply. No sockets: the cluster connection layer (rcluster.h) asks here. */
#ifndef SENTRYQ_SLOT_H
#define SENTRYQ_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define SLOT_COUNT 16384
#define SLOT_HOST_MAX 256           /* a host name (253) or an IPv6 literal, with its NUL */

/* CRC16/XMODEM (poly 0x1021, init 0, no reflection): "123456789" is 0x31C3. */
uint16_t slot_crc16(const char *buf, size_t len);

/* The hash slot of a key: of the part between the first '{' and the first '}' after it when that
 * part is not empty (the hash tag), else of the whole key. */
unsigned slot_of(const char *key, size_t len);

/* The argument a command is routed by: its first key (EVAL/EVALSHA: the first of KEYS, XGROUP
 * and XINFO: the one after the subcommand, XREAD/XREADGROUP: the first after STREAMS, most
 * others: argv[1]). -1 for a command without a key (WAIT, PING, INFO, CLUSTER, EVAL with no
 * keys): it goes to whichever node the caller chooses. */
int slot_command_key(int argc, const char *const *argv, const size_t *lens);

/* What an error reply means for the routing. */
enum slot_redirect {
	SLOT_REDIRECT_NONE = 0,    /* not a redirection */
	SLOT_REDIRECT_MOVED,       /* "MOVED <slot> <host>:<port>": the slot lives there now */
	SLOT_REDIRECT_ASK,         /* "ASK <slot> <host>:<port>": this once, there, after ASKING */
	SLOT_REDIRECT_TRYAGAIN,    /* "TRYAGAIN": keys of one command split by a migration: retry soon */
	SLOT_REDIRECT_DOWN,        /* "CLUSTERDOWN": the cluster cannot serve the slot now */
	SLOT_REDIRECT_BAD,         /* MOVED or ASK, but unreadable */
};
/* host gets the address without brackets; an empty host ("MOVED 1 :6380") is left "" for the
 * caller to take as the node that answered. */
enum slot_redirect slot_redirect_parse(const char *err, size_t len, unsigned *slot, char *host, size_t hostlen,
				       int *port);

/* One range of slots and the master serving it, from CLUSTER SLOTS. */
struct slot_range {
	unsigned start, end;        /* inclusive */
	char host[SLOT_HOST_MAX];   /* "" when Redis gave none (the node that answered) */
	int port;
};

enum slot_map {
	SLOT_MAP_OK = 0,            /* *out (malloc'ed, free() it) holds *n ranges */
	SLOT_MAP_BAD,               /* not a CLUSTER SLOTS reply (an error, ranges out of bounds) */
	SLOT_MAP_NOMEM,
};
enum slot_map slot_map_parse(const redisReply *r, struct slot_range **out, size_t *n);

/* Slots no range covers (0: the whole map is served). */
size_t slot_map_uncovered(const struct slot_range *ranges, size_t n);

#endif
