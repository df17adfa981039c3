/* spool.h - the spool file: entries buffered while Redis is away, written when sentryq stops so
 * the next start takes them back. Pure file I/O; the file format is owned here. */
#ifndef SENTRYQ_SPOOL_H
#define SENTRYQ_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "entry.h"

#define SPOOL_PATH_MAX 4200

enum spool_result {
	SPOOL_OK = 0,
	SPOOL_ABSENT,     /* no such file */
	SPOOL_NOT_SPOOL,  /* the file is not a sentryq spool: left alone */
	SPOOL_DAMAGED,    /* read up to a damaged or torn record: what came before it was delivered */
	SPOOL_IO_ERROR,   /* cannot write or read (errno tells) */
	SPOOL_REFUSED,    /* the record callback refused a record */
};

/* Records to write: return false when there are no more. */
typedef bool (*spool_next_fn)(void *arg, const char **stream, const struct entry **e);
/* One record read back; its strings are valid during the call only. Non-zero refuses it. */
typedef int (*spool_record_fn)(void *arg, const char *stream, const struct entry *e);

/* Write every record to `path` atomically: a 0600 temp file (it holds auth headers and event
 * bodies), fsync, rename, fsync of the directory. */
enum spool_result spool_save(const char *path, spool_next_fn next, void *arg, long long now_ms);
/* Read `path`, calling fn per record in order. SPOOL_OK (whole file), or the reason it stopped. */
enum spool_result spool_load(const char *path, spool_record_fn fn, void *arg);

/* Where a start keeps what it took back until all of it is in Redis ("<path>.loaded"), and where
 * a damaged file is set aside ("<path>.damaged"). 0, or -1 when the name does not fit. */
int spool_loaded_path(const char *path, char *buf, size_t len);
int spool_damaged_path(const char *path, char *buf, size_t len);

#endif
