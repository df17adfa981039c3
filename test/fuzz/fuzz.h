/* fuzz.h - what every libFuzzer target here shares: the entry point's prototype, CHECK (an
 * invariant that failed is a crash libFuzzer keeps as an artifact), and a small PRNG seeded from
 * the input, so a target can derive piece sizes and choices from the bytes it was given. */
#ifndef SENTRYQ_FUZZ_H
#define SENTRYQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                 \
	do {                                                                                        \
		if (!(cond)) {                                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

/* A CHECK that also says which values disagreed. */
#define CHECK_EQ_U(a, b)                                                                            \
	do {                                                                                        \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);     \
		if (a_ != b_) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%llu != %llu)\n", __FILE__, \
				__LINE__, #a, #b, a_, b_);                                          \
			abort();                                                                    \
		}                                                                                   \
	} while (0)

struct fuzz_rng {
	uint64_t s;
};

static inline void fuzz_rng_init(struct fuzz_rng *r, uint64_t seed)
{
	r->s = seed * 0x9e3779b97f4a7c15ULL + 0x2545f4914f6cdd1dULL;
}

static inline uint64_t fuzz_rng_next(struct fuzz_rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dULL;
}

/* A piece size in 1..max, small ones far more often than large ones. */
static inline size_t fuzz_piece(struct fuzz_rng *r, size_t max)
{
	uint64_t v = fuzz_rng_next(r);
	size_t bits = (size_t)(v & 15), n;

	n = 1 + (size_t)((v >> 4) & (((uint64_t)1 << bits) - 1));
	return n > max ? max : n;
}

#endif
