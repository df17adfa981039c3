/* fuzz_envelope.c - everything envelope.c reads from a body, the header rewrite, and the item scan.
 *
 * Input: two control bytes, then the body.
 *   byte 0: bits 0-1 which new dsn the rewrite gets (none, a Sentry one, one with a secret and a
 *           path, the body's own), bit 2 the old key is the body's dsn key (else "wow"),
 *           bits 3-4 the type buffer size for envelope_store_type
 *   byte 1: seed of the piece sizes the streaming scan is fed in
 *
 * Invariants: the header length is the first line; ids are 32 lowercase hex; a dsn has a key and a
 * project id > 0; a successful rewrite changes the header line only (every byte after it compares
 * equal), its header still parses as a JSON object with the new dsn / public key; the item scan
 * fed in pieces finds the same categories and items as on the whole body.
 */
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

static const char *const new_dsns[] = {
	NULL,
	"https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42",
	"http://fedcba9876543210fedcba9876543210:secret@sentry.example:8443/prefix/path/7",
};

static void check_id(const char id[ENVELOPE_ID_LEN + 1])
{
	CHECK(strlen(id) == ENVELOPE_ID_LEN);
	for (int i = 0; i < ENVELOPE_ID_LEN; i++)
		CHECK((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'));
}

static void scan_pieces(const char *body, size_t len, uint8_t seed, struct envelope_scan *s)
{
	struct fuzz_rng r;
	size_t off = 0;

	fuzz_rng_init(&r, seed ^ ((uint64_t)len << 8));
	envelope_scan_init(s);
	while (off < len) {
		size_t n = fuzz_piece(&r, len - off);

		envelope_scan_feed(s, body + off, n);
		off += n;
	}
	envelope_scan_end(s);
}

static void check_rewrite(const char *body, size_t len, const char *new_dsn, const char *old_key,
			  const char *new_key)
{
	size_t hlen = envelope_header_len(body, len), rest = len - hlen, outlen = 0;
	char *out = NULL;
	enum envelope_result rc = envelope_rewrite(body, len, new_dsn, old_key, new_key, &out, &outlen);
	json_t *before, *after;

	CHECK(rc == ENVELOPE_OK || rc == ENVELOPE_NONE || rc == ENVELOPE_MALFORMED);
	if (rc != ENVELOPE_OK) {
		CHECK(out == NULL);
		return;
	}
	CHECK(out != NULL && outlen >= rest && out[outlen] == '\0');
	/* Every byte after the header line is the body's, unchanged. */
	if (memcmp(out + outlen - rest, body + hlen, rest) != 0) {
		fprintf(stderr, "FUZZ: rewrite changed bytes after the header line\n");
		abort();
	}
	/* The new header is one line, and still a JSON object. */
	CHECK(envelope_header_len(out, outlen) == outlen - rest);
	after = json_loadb(out, outlen - rest, 0, NULL);
	CHECK(after != NULL && json_is_object(after));
	before = json_loadb(body, hlen, 0, NULL);
	CHECK(before != NULL && json_is_object(before));
	/* What was asked for is what it says now. */
	if (new_dsn != NULL && json_is_string(json_object_get(before, "dsn")))
		CHECK(strcmp(json_string_value(json_object_get(after, "dsn")), new_dsn) == 0);
	const char *pk = json_string_value(json_object_get(json_object_get(before, "trace"), "public_key"));
	if (pk != NULL && old_key != NULL && strcmp(pk, old_key) == 0)
		CHECK(strcmp(json_string_value(json_object_get(json_object_get(after, "trace"), "public_key")),
			     new_key) == 0);
	/* Nothing else in the header changed: every other top-level member compares equal. */
	const char *k;
	json_t *v;
	json_object_foreach(before, k, v) {
		if (strcmp(k, "dsn") == 0 || strcmp(k, "trace") == 0)
			continue;
		CHECK(json_equal(v, json_object_get(after, k)));
	}
	CHECK(json_object_size(before) == json_object_size(after));
	json_decref(before);
	json_decref(after);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[ENVELOPE_ID_LEN + 1], type[64], key[128];
	static const size_t typelens[] = { 1, 8, 12, 64 };
	struct envelope_scan whole, pieces;
	enum envelope_result rc, dsn_rc;
	long pid = 0;
	unsigned flags;
	uint8_t seed;
	char *body;
	size_t len, hlen;

	if (size < 2)
		return 0;
	flags = data[0];
	seed = data[1];
	len = size - 2;
	/* An exact-size copy, so ASan sees a read past the end of the body. */
	body = malloc(len ? len : 1);
	memcpy(body, data + 2, len);

	hlen = envelope_header_len(body, len);
	CHECK(hlen <= len);
	CHECK(memchr(body, '\n', hlen) == NULL);
	CHECK(hlen == len || body[hlen] == '\n');

	memset(id, 'x', sizeof(id));
	rc = envelope_event_id(body, len, id);
	CHECK(rc == ENVELOPE_OK || rc == ENVELOPE_NONE || rc == ENVELOPE_MALFORMED);
	if (rc == ENVELOPE_OK)
		check_id(id);
	memset(id, 'x', sizeof(id));
	rc = envelope_store_event_id(body, len, id);
	CHECK(rc == ENVELOPE_OK || rc == ENVELOPE_NONE || rc == ENVELOPE_MALFORMED);
	if (rc == ENVELOPE_OK)
		check_id(id);

	size_t typelen = typelens[(flags >> 3) & 3];
	rc = envelope_store_type(body, len, type, typelen);
	CHECK(rc == ENVELOPE_OK || rc == ENVELOPE_NONE || rc == ENVELOPE_MALFORMED);
	if (rc == ENVELOPE_OK)
		CHECK(strlen(type) < typelen);

	dsn_rc = envelope_dsn(body, len, key, sizeof(key), &pid);
	CHECK(dsn_rc == ENVELOPE_OK || dsn_rc == ENVELOPE_NONE || dsn_rc == ENVELOPE_MALFORMED);
	if (dsn_rc == ENVELOPE_OK) {
		CHECK(key[0] != '\0' && strlen(key) < sizeof(key));
		CHECK(pid > 0);
	}

	/* The rewrite: the new dsn of flags, and trace.public_key from the old key to a new one. */
	const char *new_dsn = (flags & 3) < 3 ? new_dsns[flags & 3] : NULL;
	char own_dsn[256];
	if ((flags & 3) == 3) {
		/* the body's own dsn: a rewrite to what is already there changes nothing */
		json_t *h = json_loadb(body, hlen, 0, NULL);
		const char *d = json_string_value(json_object_get(h, "dsn"));
		snprintf(own_dsn, sizeof(own_dsn), "%s", d ? d : "");
		new_dsn = own_dsn;
		json_decref(h);
	}
	const char *old_key = (flags & 4) && dsn_rc == ENVELOPE_OK ? key : "wow";
	check_rewrite(body, len, new_dsn, old_key, "0123456789abcdef0123456789abcdef");

	/* The streaming scan: any split of the body gives what the whole body gives. */
	envelope_scan_init(&whole);
	envelope_scan_feed(&whole, body, len);
	envelope_scan_end(&whole);
	scan_pieces(body, len, seed, &pieces);
	CHECK_EQ_U(pieces.cats, whole.cats);
	CHECK_EQ_U(pieces.items, whole.items);
	CHECK_EQ_U(envelope_categories(body, len), whole.cats);
	CHECK((whole.cats & ~CATEGORY_ALL) == 0);

	free(body);
	return 0;
}
