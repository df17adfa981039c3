/* category.h - Sentry's data categories: what a rate limit names, and what each request carries (pure). */
#ifndef SENTRYQ_CATEGORY_H
#define SENTRYQ_CATEGORY_H

#include <stddef.h>
#include <stdint.h>

/* One bit per category a limit can hold back. Names and meanings: relay-base-schema data_category.rs. */
enum category {
	CAT_DEFAULT = 0,
	CAT_ERROR,
	CAT_TRANSACTION,
	CAT_SECURITY,
	CAT_ATTACHMENT,
	CAT_ATTACHMENT_ITEM,
	CAT_SESSION,
	CAT_PROFILE,
	CAT_PROFILE_CHUNK,
	CAT_PROFILE_CHUNK_UI,
	CAT_REPLAY,
	CAT_MONITOR,
	CAT_SPAN,
	CAT_LOG_ITEM,
	CAT_LOG_BYTE,
	CAT_FEEDBACK,
	CAT_METRIC_BUCKET,
	CAT_TRACE_METRIC,
	CAT_UPTIME,
	CAT_OTHER,      /* an item type sentryq does not know: only an all-categories limit holds it */
	CAT__COUNT
};

typedef uint32_t category_mask;

#define CATEGORY_BIT(c) ((category_mask)1 << (c))
#define CATEGORY_ALL (CATEGORY_BIT(CAT__COUNT) - 1)
/* Longest category_format output: every name joined. */
#define CATEGORY_LIST_MAX 256

/* The bit of a category name ("transaction"); 0 for a name sentryq does not hold anything by
 * (unknown names, the *_indexed categories, which never stop an SDK's request). */
category_mask category_from_name(const char *name, size_t len);
const char *category_name(enum category c);
/* A ';'- or ','-separated list of names into a mask; unknown names are skipped, as SDKs do. */
category_mask category_parse(const char *list, size_t len);
/* The mask as names joined by sep (';' in X-Sentry-Rate-Limits, ',' in the queue entry) into buf
 * (NUL-terminated, truncated to len). Returns the length written. */
size_t category_format(category_mask m, char sep, char *buf, size_t len);

/* What an envelope item of this "type" counts as (an unknown type is CAT_OTHER, client_report
 * nothing: Relay never holds client reports). */
category_mask category_of_item(const char *type, size_t len);
/* An event (a store body, an envelope "event" item) by its top-level "type" (NULL when absent):
 * transaction for "transaction", else error plus default (a limit naming either holds it). */
category_mask category_of_event(const char *type);

#endif
