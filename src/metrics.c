/* metrics.c - histograms, a scrape's families and series, and the text exposition format 0.0.4. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

#define KEY_SEP '\x1f'   /* joins label values into a series key */

struct series {
	char **values;                 /* one per label of the family */
	double v;
	struct metrics_histogram *h;   /* histograms only */
};

struct family {
	char *name, *help;
	enum metrics_type type;
	char *labels[METRICS_LABELS_MAX];
	size_t nlabels;
	struct series *series;
	size_t nseries, cap;
	struct strmap *index;          /* joined values -> series index + 1 */
};

struct metrics {
	struct family *fam;
	size_t nfam, cap;
	struct strmap *by_name;        /* family name -> family index + 1 */
	size_t dropped;
};

/* ---- histograms ---- */

void metrics_histogram_init(struct metrics_histogram *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = nbounds > METRICS_BUCKETS_MAX ? METRICS_BUCKETS_MAX : nbounds;
}

void metrics_histogram_observe(struct metrics_histogram *h, double v)
{
	size_t i = 0;

	if (isnan(v))
		return;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

/* ---- names ---- */

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return (!first && c >= '0' && c <= '9') || (colon && c == ':');
}

static bool valid_name(const char *s, bool colon)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (!name_char(*p, p == s, colon))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

static enum metrics_result check_names(const char *name, enum metrics_type type, const char *const *labels,
				       size_t *nlabels)
{
	*nlabels = 0;
	if (!valid_name(name, true) || (type == METRICS_COUNTER && !ends_with(name, "_total")))
		return METRICS_BAD_NAME;
	for (size_t i = 0; labels != NULL && labels[i] != NULL; i++) {
		if (i == METRICS_LABELS_MAX || !valid_name(labels[i], false) || strncmp(labels[i], "__", 2) == 0 ||
		    (type == METRICS_HISTOGRAM && strcmp(labels[i], "le") == 0))
			return METRICS_BAD_NAME;
		*nlabels = i + 1;
	}
	return METRICS_OK;
}

/* ---- the set ---- */

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m != NULL && (m->by_name = strmap_new()) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

static void free_family(struct family *f)
{
	for (size_t i = 0; i < f->nseries; i++) {
		for (size_t j = 0; j < f->nlabels; j++)
			free(f->series[i].values[j]);
		free(f->series[i].values);
		free(f->series[i].h);
	}
	for (size_t j = 0; j < f->nlabels; j++)
		free(f->labels[j]);
	free(f->series);
	strmap_free(f->index);
	free(f->name);
	free(f->help);
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nfam; i++)
		free_family(&m->fam[i]);
	free(m->fam);
	strmap_free(m->by_name);
	free(m);
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? *cap * 2 : 16;
	void *p;

	if (n < *cap)
		return 0;
	if ((p = realloc(*arr, want * size)) == NULL)
		return -1;
	*arr = p;
	*cap = want;
	return 0;
}

enum metrics_result metrics_declare(struct metrics *m, const char *name, enum metrics_type type, const char *help,
				    const char *const *labels)
{
	struct family *f;
	size_t nlabels;
	enum metrics_result r = check_names(name, type, labels, &nlabels);

	if (r != METRICS_OK)
		return r;
	if (strmap_get(m->by_name, name) != NULL)
		return METRICS_DUPLICATE;
	if (grow((void **)&m->fam, &m->cap, m->nfam, sizeof(*m->fam)) != 0)
		return METRICS_NOMEM;
	f = &m->fam[m->nfam];
	memset(f, 0, sizeof(*f));
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help != NULL ? help : "");
	f->index = strmap_new();
	for (f->nlabels = 0; f->nlabels < nlabels; f->nlabels++)
		if ((f->labels[f->nlabels] = strdup(labels[f->nlabels])) == NULL)
			break;
	if (f->name == NULL || f->help == NULL || f->index == NULL || f->nlabels < nlabels ||
	    strmap_put(m->by_name, name, (void *)(uintptr_t)(m->nfam + 1)) != STRMAP_OK) {
		free_family(f);
		return METRICS_NOMEM;
	}
	m->nfam++;
	return METRICS_OK;
}

size_t metrics_dropped(const struct metrics *m)
{
	return m->dropped;
}

/* ---- series ---- */

static struct family *family_of(const struct metrics *m, const char *name)
{
	uintptr_t i = (uintptr_t)strmap_get(m->by_name, name);

	return i > 0 ? &m->fam[i - 1] : NULL;
}

/* The label values joined into buf; -1 when they do not fit. */
static int series_key(const struct family *f, const char *const *values, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < f->nlabels; i++) {
		int w = snprintf(buf + n, len - n, "%s%c", values[i] != NULL ? values[i] : "", KEY_SEP);

		if (w < 0 || (size_t)w >= len - n)
			return -1;
		n += (size_t)w;
	}
	return 0;
}

static enum metrics_result new_series(struct family *f, const char *const *values, const char *key,
				      struct series **out)
{
	struct series *s;

	if (grow((void **)&f->series, &f->cap, f->nseries, sizeof(*f->series)) != 0)
		return METRICS_NOMEM;
	s = &f->series[f->nseries];
	memset(s, 0, sizeof(*s));
	if (f->nlabels > 0 && (s->values = calloc(f->nlabels, sizeof(char *))) == NULL)
		return METRICS_NOMEM;
	for (size_t i = 0; i < f->nlabels; i++)
		if ((s->values[i] = strdup(values[i] != NULL ? values[i] : "")) == NULL)
			goto nomem;
	if (f->type == METRICS_HISTOGRAM && (s->h = calloc(1, sizeof(*s->h))) == NULL)
		goto nomem;
	if (strmap_put(f->index, key, (void *)(uintptr_t)(f->nseries + 1)) != STRMAP_OK)
		goto nomem;
	f->nseries++;
	*out = s;
	return METRICS_OK;
nomem:
	for (size_t i = 0; s->values != NULL && i < f->nlabels; i++)
		free(s->values[i]);
	free(s->values);
	free(s->h);
	return METRICS_NOMEM;
}

static enum metrics_result find_series(struct metrics *m, struct family *f, const char *const *values,
				       struct series **out)
{
	char key[2048];
	uintptr_t i;

	if (f->nlabels > 0 && values == NULL)
		return METRICS_BAD_SAMPLE;
	if (series_key(f, values, key, sizeof(key)) != 0)
		return METRICS_BAD_SAMPLE;
	if ((i = (uintptr_t)strmap_get(f->index, key)) > 0) {
		*out = &f->series[i - 1];
		return METRICS_OK;
	}
	if (f->nseries >= METRICS_SERIES_MAX) {
		m->dropped++;
		return METRICS_FULL;
	}
	return new_series(f, values, key, out);
}

enum metrics_result metrics_add(struct metrics *m, const char *name, const char *const *values, double v)
{
	struct family *f = family_of(m, name);
	struct series *s;
	enum metrics_result r;

	if (f == NULL || f->type == METRICS_HISTOGRAM)
		return METRICS_BAD_SAMPLE;
	if ((r = find_series(m, f, values, &s)) != METRICS_OK)
		return r;
	s->v += v;
	return METRICS_OK;
}

static bool same_bounds(const struct metrics_histogram *a, const struct metrics_histogram *b)
{
	return a->nbounds == b->nbounds && memcmp(a->bounds, b->bounds, a->nbounds * sizeof(double)) == 0;
}

enum metrics_result metrics_add_histogram(struct metrics *m, const char *name, const char *const *values,
					  const struct metrics_histogram *h)
{
	struct family *f = family_of(m, name);
	struct series *s;
	enum metrics_result r;

	if (f == NULL || f->type != METRICS_HISTOGRAM)
		return METRICS_BAD_SAMPLE;
	if ((r = find_series(m, f, values, &s)) != METRICS_OK)
		return r;
	if (s->h->count == 0 && s->h->bounds == NULL)
		metrics_histogram_init(s->h, h->bounds, h->nbounds);
	else if (!same_bounds(s->h, h))
		return METRICS_BAD_SAMPLE;
	for (size_t i = 0; i <= h->nbounds; i++)
		s->h->counts[i] += h->counts[i];
	s->h->count += h->count;
	s->h->sum += h->sum;
	return METRICS_OK;
}

/* ---- rendering ---- */

struct out {
	char *p;
	size_t len, cap;
	bool nomem;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->nomem)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		char *p;

		while (o->len + n + 1 > cap)
			cap *= 2;
		if ((p = realloc(o->p, cap)) == NULL) {
			o->nomem = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* HELP text escapes '\' and newline; label values also escape '"'. */
static void put_escaped(struct out *o, const char *s, bool quote)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			put(o, "\\\\", 2);
		else if (*p == '\n')
			put(o, "\\n", 2);
		else if (quote && *p == '"')
			put(o, "\\\"", 2);
		else
			put(o, p, 1);
	}
}

/* The shortest text that reads back as the same double; integers without a fraction. */
static void put_number(struct out *o, double v)
{
	char buf[40];

	if (isnan(v))
		snprintf(buf, sizeof(buf), "NaN");
	else if (isinf(v))
		snprintf(buf, sizeof(buf), "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(buf, sizeof(buf), "%.0f", v);
	else if (snprintf(buf, sizeof(buf), "%.15g", v), strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	puts_(o, buf);
}

/* name{l1="v1",...,extra} value\n; extra is an already formatted label (le="...") or NULL. */
static void put_sample(struct out *o, const struct family *f, const char *suffix, const struct series *s,
		       const char *extra, double v)
{
	puts_(o, f->name);
	puts_(o, suffix);
	if (f->nlabels > 0 || extra != NULL) {
		put(o, "{", 1);
		for (size_t i = 0; i < f->nlabels; i++) {
			if (i > 0)
				put(o, ",", 1);
			puts_(o, f->labels[i]);
			put(o, "=\"", 2);
			put_escaped(o, s->values[i], true);
			put(o, "\"", 1);
		}
		if (extra != NULL) {
			if (f->nlabels > 0)
				put(o, ",", 1);
			puts_(o, extra);
		}
		put(o, "}", 1);
	}
	put(o, " ", 1);
	put_number(o, v);
	put(o, "\n", 1);
}

static void put_histogram(struct out *o, const struct family *f, const struct series *s)
{
	const struct metrics_histogram *h = s->h;
	uint64_t cum = 0;
	char le[48];

	for (size_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof(le), "le=\"%g\"", h->bounds[i]);
		put_sample(o, f, "_bucket", s, le, (double)cum);
	}
	put_sample(o, f, "_bucket", s, "le=\"+Inf\"", (double)h->count);
	put_sample(o, f, "_sum", s, NULL, h->sum);
	put_sample(o, f, "_count", s, NULL, (double)h->count);
}

static const char *type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

static void put_family(struct out *o, const struct family *f)
{
	puts_(o, "# HELP ");
	puts_(o, f->name);
	put(o, " ", 1);
	put_escaped(o, f->help, false);
	puts_(o, "\n# TYPE ");
	puts_(o, f->name);
	put(o, " ", 1);
	puts_(o, type_name(f->type));
	put(o, "\n", 1);
	for (size_t i = 0; i < f->nseries; i++) {
		if (f->type == METRICS_HISTOGRAM)
			put_histogram(o, f, &f->series[i]);
		else
			put_sample(o, f, "", &f->series[i], NULL, f->series[i].v);
	}
}

enum metrics_result metrics_render(const struct metrics *m, char **out, size_t *len)
{
	struct out o = { NULL, 0, 0, false };

	put(&o, "", 0);  /* an empty set is "" */
	for (size_t i = 0; i < m->nfam; i++)
		put_family(&o, &m->fam[i]);
	if (m->dropped > 0) {
		char note[96];

		snprintf(note, sizeof(note), "# %zu samples dropped: a family reached %d series\n", m->dropped,
			 METRICS_SERIES_MAX);
		puts_(&o, note);
	}
	if (o.nomem) {
		free(o.p);
		return METRICS_NOMEM;
	}
	*out = o.p;
	*len = o.len;
	return METRICS_OK;
}
