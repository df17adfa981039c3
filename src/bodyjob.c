/* bodyjob.c - a request body read in bounded steps: measured, scanned, and rewritten if it must be. */
#include "bodyjob.h"

#include <stdlib.h>
#include <string.h>

#define SCRATCH (64 * 1024)
#define EVENT_TYPE_MAX 32

struct bodyjob {
	enum endpoint_kind kind;
	enum codec_kind codec;
	const char *body;
	size_t len, limit;
	struct codec_stream *dec;    /* phase one's decoder; NULL for an identity body */
	size_t pos;                  /* identity: bytes scanned */
	bool done;
	char *scratch;
	/* envelope */
	struct envelope_scan *scan;
	char *header;                /* the decoded header line */
	size_t header_len;
	bool header_complete;        /* its '\n' was seen (or the body ended) */
	/* store */
	char *store;                 /* a compressed store body, decoded (at most `limit` bytes) */
	size_t store_len;
	category_mask cats;
	/* phase two */
	struct codec_stream *redec;
	struct codec_encoder *enc;
	char *line;                  /* the rewritten header line */
	size_t line_len;
	size_t skip;                 /* decoded bytes of the old header line (and its '\n') still to drop */
	char *out;
	size_t out_len;
};

struct bodyjob *bodyjob_new(enum endpoint_kind kind, enum codec_kind codec, const char *body, size_t len,
			    size_t limit)
{
	struct bodyjob *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->kind = kind, j->codec = codec, j->body = body, j->len = len, j->limit = limit;
	if ((j->scratch = malloc(SCRATCH)) == NULL || (kind == EP_KIND_ENVELOPE &&
	    ((j->scan = malloc(sizeof(*j->scan))) == NULL || (j->header = malloc(ENVELOPE_HEADER_PEEK + 1)) == NULL)) ||
	    (codec != CODEC_IDENTITY && (j->dec = codec_stream_new(codec, body, len, limit)) == NULL)) {
		bodyjob_free(j);
		return NULL;
	}
	if (j->scan != NULL)
		envelope_scan_init(j->scan);
	return j;
}

void bodyjob_free(struct bodyjob *j)
{
	if (j == NULL)
		return;
	codec_stream_free(j->dec);
	codec_stream_free(j->redec);
	codec_encoder_free(j->enc);
	free(j->scratch);
	free(j->scan);
	free(j->header);
	free(j->store);
	free(j->line);
	free(j->out);
	free(j);
}

/* The header line as decoded bytes pass: kept until its '\n', at most ENVELOPE_HEADER_PEEK. */
static void take_header(struct bodyjob *j, const char *p, size_t n)
{
	const char *nl;
	size_t take;

	if (j->header_complete || n == 0 || j->header_len == ENVELOPE_HEADER_PEEK)
		return;
	nl = memchr(p, '\n', n);
	take = nl != NULL ? (size_t)(nl - p) : n;
	if (j->header_len + take > ENVELOPE_HEADER_PEEK) {
		take = ENVELOPE_HEADER_PEEK - j->header_len;
		nl = NULL;  /* its end lies past what is kept: the line is too long */
	}
	memcpy(j->header + j->header_len, p, take);
	j->header_len += take;
	j->header[j->header_len] = '\0';
	j->header_complete = nl != NULL;
}

/* Decoded (or, for identity, plain) bytes of phase one. */
static enum bodyjob_result consume(struct bodyjob *j, const char *p, size_t n)
{
	if (j->kind == EP_KIND_ENVELOPE) {
		take_header(j, p, n);
		envelope_scan_feed(j->scan, p, n);
	} else if (j->kind == EP_KIND_STORE && j->dec != NULL) {
		char *grown = realloc(j->store, j->store_len + n + 1);

		if (grown == NULL)
			return BODYJOB_NOMEM;
		j->store = grown;
		memcpy(j->store + j->store_len, p, n);
		j->store_len += n;
		j->store[j->store_len] = '\0';
	}
	return BODYJOB_MORE;
}

static enum bodyjob_result of_codec(enum codec_result r)
{
	switch (r) {
	case CODEC_MORE: return BODYJOB_MORE;
	case CODEC_OK: return BODYJOB_DONE;
	case CODEC_TOO_LARGE: return BODYJOB_TOO_LARGE;
	case CODEC_CORRUPT: return BODYJOB_CORRUPT;
	case CODEC_NOMEM: return BODYJOB_NOMEM;
	}
	return BODYJOB_CORRUPT;
}

static enum bodyjob_result finish(struct bodyjob *j)
{
	char type[EVENT_TYPE_MAX];
	const char *b = j->store != NULL ? j->store : j->body;
	size_t n = j->store != NULL ? j->store_len : j->len;

	j->done = true;
	if (j->kind == EP_KIND_ENVELOPE) {
		j->cats = envelope_scan_end(j->scan);
		/* A header line longer than what is read cannot be parsed, so its dsn could not be
		 * rewritten and the relay-side one would reach Sentry: refused. */
		if (!j->header_complete && j->header_len >= ENVELOPE_HEADER_PEEK)
			return BODYJOB_CORRUPT;
	} else if (j->kind == EP_KIND_STORE) {
		j->cats = category_of_event(envelope_store_type(b, n, type, sizeof(type)) == ENVELOPE_OK ? type : NULL);
	}
	return BODYJOB_DONE;
}

static enum bodyjob_result step_identity(struct bodyjob *j)
{
	size_t n = j->len - j->pos < BODYJOB_STEP ? j->len - j->pos : BODYJOB_STEP;

	if (j->len > j->limit)
		return BODYJOB_TOO_LARGE;
	if (j->kind == EP_KIND_ENVELOPE)
		consume(j, j->body + j->pos, n);
	j->pos = j->kind == EP_KIND_ENVELOPE ? j->pos + n : j->len;
	return j->pos == j->len ? finish(j) : BODYJOB_MORE;
}

enum bodyjob_result bodyjob_step(struct bodyjob *j)
{
	size_t produced = 0, got;
	enum codec_result r;

	if (j->done)
		return BODYJOB_DONE;
	if (j->dec == NULL)
		return step_identity(j);
	do {
		r = codec_stream_next(j->dec, j->scratch, SCRATCH, &got);
		if ((r == CODEC_MORE || r == CODEC_OK) && got > 0 && consume(j, j->scratch, got) == BODYJOB_NOMEM)
			return BODYJOB_NOMEM;
		produced += got;
	} while (r == CODEC_MORE && produced < BODYJOB_STEP);
	return r == CODEC_OK ? finish(j) : of_codec(r);
}

category_mask bodyjob_categories(const struct bodyjob *j)
{
	return j->cats;
}

size_t bodyjob_decoded_len(const struct bodyjob *j)
{
	return j->dec != NULL ? codec_stream_produced(j->dec) : j->len;
}

int bodyjob_event_id(const struct bodyjob *j, char id[ENVELOPE_ID_LEN + 1])
{
	if (j->kind == EP_KIND_ENVELOPE)
		return envelope_event_id(j->header, j->header_len, id) == ENVELOPE_OK ? 0 : -1;
	if (j->kind == EP_KIND_STORE)
		return envelope_store_event_id(j->store != NULL ? j->store : j->body,
					       j->store != NULL ? j->store_len : j->len, id) == ENVELOPE_OK ? 0 : -1;
	return -1;
}

const char *bodyjob_header(const struct bodyjob *j, size_t *len)
{
	*len = j->header != NULL ? j->header_len : 0;
	return j->header != NULL ? j->header : "";
}

/* ---- phase two ---- */

enum bodyjob_result bodyjob_rewrite_start(struct bodyjob *j, const char *new_dsn, const char *old_key,
					  const char *new_key, size_t max_out)
{
	enum envelope_result r;

	if (j->kind != EP_KIND_ENVELOPE || j->header_len == 0)
		return BODYJOB_NONE;
	r = envelope_rewrite(j->header, j->header_len, new_dsn, old_key, new_key, &j->line, &j->line_len);
	if (r == ENVELOPE_NONE || r == ENVELOPE_MALFORMED)
		return BODYJOB_NONE;  /* a header that is not JSON has nothing sentryq could rewrite */
	if (r != ENVELOPE_OK)
		return BODYJOB_NOMEM;
	j->skip = j->header_len + (j->header_complete ? 1 : 0);
	if ((j->redec = codec_stream_new(j->codec, j->body, j->len, j->limit)) == NULL ||
	    (j->enc = codec_encoder_new(j->codec, max_out)) == NULL)
		return BODYJOB_NOMEM;
	if (codec_encoder_feed(j->enc, j->line, j->line_len, false) != CODEC_OK ||
	    (j->header_complete && codec_encoder_feed(j->enc, "\n", 1, false) != CODEC_OK))
		return BODYJOB_NOMEM;
	return BODYJOB_MORE;
}

/* Decoded bytes of phase two: the old header line is dropped, the rest encoded as it comes. */
static enum codec_result reencode(struct bodyjob *j, const char *p, size_t n)
{
	size_t drop = j->skip < n ? j->skip : n;

	j->skip -= drop;
	return codec_encoder_feed(j->enc, p + drop, n - drop, false);
}

enum bodyjob_result bodyjob_rewrite_step(struct bodyjob *j)
{
	size_t produced = 0, got;
	enum codec_result r, w = CODEC_OK;

	if (j->enc == NULL)
		return BODYJOB_DONE;
	do {
		r = codec_stream_next(j->redec, j->scratch, SCRATCH, &got);
		if ((r == CODEC_MORE || r == CODEC_OK) && got > 0)
			w = reencode(j, j->scratch, got);
		produced += got;
	} while (r == CODEC_MORE && w == CODEC_OK && produced < BODYJOB_STEP);
	if (w != CODEC_OK)
		return of_codec(w);
	if (r != CODEC_OK)
		return of_codec(r);
	if ((w = codec_encoder_feed(j->enc, NULL, 0, true)) != CODEC_OK)
		return of_codec(w);
	j->out = codec_encoder_take(j->enc, &j->out_len);
	codec_encoder_free(j->enc);
	j->enc = NULL;
	return BODYJOB_DONE;
}

char *bodyjob_rewritten(struct bodyjob *j, size_t *len)
{
	char *out = j->out;

	*len = j->out_len;
	j->out = NULL;
	j->out_len = 0;
	return out;
}
