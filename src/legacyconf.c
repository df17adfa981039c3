/* legacyconf.c - the legacy forwarder's config dict (a pyliteral tree) mapped to upstreams,
 * projects and a default route, checked with config.c's own rules, written as libconfig text. */
#include "legacyconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "pyliteral.h"

#ifndef SENTRYQ_VERSION
#define SENTRYQ_VERSION "?"
#endif

#define DEFAULT_NAME "default"  /* the legacy entry, and the names created for it */
#define LABEL_MAX 112

struct lc_project {
	const char *name;    /* the DSN secret users hold: never in a message */
	const char *key;
	const char *secret;  /* NULL: none */
	long long id;
	unsigned line;
};

struct lc_upstream {
	const char *name;
	const char *url;
	unsigned line;
	struct lc_project *projects;
	size_t n;
};

struct lc_model {
	struct lc_upstream *ups;  /* room for every top-level entry plus a created "default" */
	size_t n;
	const struct lc_upstream *route_up;
	const struct lc_project *route_project;
	const char *route_note;   /* how default_route was resolved, for the output's comment */
	unsigned route_line;
	bool oom;
	struct legacyconf_error *err;
};

/* The default entry's project, before it is matched or created. */
struct lc_default {
	const char *url;
	struct lc_project p;
	unsigned line;
};

__attribute__((format(printf, 3, 4)))
static int refuse(struct lc_model *m, unsigned line, const char *fmt, ...)
{
	va_list ap;

	m->err->line = line;
	va_start(ap, fmt);
	vsnprintf(m->err->msg, sizeof(m->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int nomem(struct lc_model *m, unsigned line)
{
	m->oom = true;
	return refuse(m, line, "out of memory");
}

/* ---- values ------------------------------------------------------------------------------ */

/* v is a string sentryq accepts at config key `key`; `what` names it in the message. */
static int check_str(struct lc_model *m, const struct pyliteral *v, const char *key,
		     const char *label, const char *what)
{
	char why[128];

	if (v->kind != PYLITERAL_STR)
		return refuse(m, v->line, "%s: %s must be a string, got %s", label, what,
			      pyliteral_kind_name(v->kind));
	if (strlen(v->str) != v->len)
		return refuse(m, v->line, "%s: %s must not contain control characters", label, what);
	if (config_check_string(key, v->str, why, sizeof(why)) != CONFIG_VALUE_OK)
		return refuse(m, v->line, "%s: %s %s", label, what, why);
	return 0;
}

/* `num`: the real project id, digits in a string (the legacy form) or an int. */
static int check_num(struct lc_model *m, const struct pyliteral *v, const char *label, long long *id)
{
	char why[128];
	bool digits = v->kind == PYLITERAL_STR && v->len > 0 && v->len <= 18 &&
		      strspn(v->str, "0123456789") == v->len;

	if (v->kind == PYLITERAL_INT && !v->big)
		*id = v->num;
	else if (digits)
		*id = strtoll(v->str, NULL, 10);
	else if (v->kind == PYLITERAL_STR && v->len > 18 && strspn(v->str, "0123456789") == v->len)
		*id = INT64_MAX; /* refused by the bound below */
	else
		return refuse(m, v->line, "%s: num must be a number (digits in a string, or an int), "
			      "got %s", label, v->kind == PYLITERAL_STR ? "other text" :
			      v->kind == PYLITERAL_INT ? "a huge int" : pyliteral_kind_name(v->kind));
	if (config_check_integer("upstreams.[].projects.[].id", *id, why, sizeof(why)) != CONFIG_VALUE_OK)
		return refuse(m, v->line, "%s: num %s", label, why);
	return 0;
}

/* None, "" or absent: no value. */
static bool empty(const struct pyliteral *v)
{
	return v == NULL || v->kind == PYLITERAL_NONE || (v->kind == PYLITERAL_STR && v->len == 0);
}

/* ---- projects ---------------------------------------------------------------------------- */

/* The dict's key, secret and num into p; `at` is the line of the project's name. */
static int map_fields(struct lc_model *m, const struct pyliteral *d, const char *label,
		      struct lc_project *p, unsigned at)
{
	static const char *const names[] = { "key", "secret", "num" };
	const struct pyliteral *f[3] = { NULL, NULL, NULL };

	if (d->kind != PYLITERAL_DICT)
		return refuse(m, d->line, "%s must be a dict with key, secret and num, got %s", label,
			      pyliteral_kind_name(d->kind));
	for (size_t i = 0; i < d->n; i++) {
		size_t k = 0;

		while (k < 3 && !pyliteral_is_str(d->keys[i], names[k]))
			k++;
		if (k == 3)
			return refuse(m, d->keys[i]->line, "%s: unknown field (only key, secret and num "
				      "are read)", label);
		if (f[k] != NULL)
			return refuse(m, d->keys[i]->line, "%s: '%s' appears twice (first at line %u); "
				      "Python would silently keep the last one", label, names[k], f[k]->line);
		f[k] = d->items[i];
	}
	if (empty(f[0]))
		return refuse(m, f[0] ? f[0]->line : at, "%s has no key", label);
	if (f[2] == NULL)
		return refuse(m, at, "%s has no num (the real project id)", label);
	if (check_str(m, f[0], "upstreams.[].projects.[].key", label, "key") < 0 ||
	    (!empty(f[1]) && check_str(m, f[1], "upstreams.[].projects.[].secret", label, "secret") < 0) ||
	    check_num(m, f[2], label, &p->id) < 0)
		return -1;
	p->key = f[0]->str;
	p->secret = empty(f[1]) ? NULL : f[1]->str;
	p->line = at;
	return 0;
}

static int map_project(struct lc_model *m, struct lc_upstream *up, const char *uplabel,
		       const struct pyliteral *name, const struct pyliteral *val)
{
	char label[LABEL_MAX + 32];
	struct lc_project *p = &up->projects[up->n];

	snprintf(label, sizeof(label), "project #%zu of %s", up->n + 1, uplabel);
	if (check_str(m, name, "upstreams.[].projects.[].name", label, "the name") < 0)
		return -1;
	for (size_t j = 0; j < up->n; j++)
		if (strcmp(up->projects[j].name, name->str) == 0)
			return refuse(m, name->line, "%s has the same name as project #%zu (line %u); "
				      "Python would silently keep only the last one", label, j + 1,
				      up->projects[j].line);
	if (up->n == CONFIG_PROJECTS_MAX)
		return refuse(m, name->line, "%s: at most %d projects per upstream", uplabel,
			      CONFIG_PROJECTS_MAX);
	p->name = name->str;
	if (map_fields(m, val, label, p, name->line) < 0)
		return -1;
	up->n++;
	return 0;
}

/* ---- upstreams --------------------------------------------------------------------------- */

/* "upstream 'wow'", or "upstream #3" while the name is not known to be a valid one. */
static void upstream_label(char *buf, size_t len, size_t index, const char *name)
{
	if (name != NULL)
		snprintf(buf, len, "upstream '%s'", name);
	else
		snprintf(buf, len, "upstream #%zu", index + 1);
}

static int map_url(struct lc_model *m, const struct pyliteral *d, const char *label, unsigned at,
		   const char **url)
{
	const struct pyliteral *found = NULL;

	for (size_t i = 0; i < d->n; i++) {
		if (!pyliteral_is_str(d->keys[i], "url"))
			continue;
		if (found != NULL)
			return refuse(m, d->keys[i]->line, "%s has a second url (first at line %u)", label,
				      found->line);
		found = d->items[i];
	}
	if (found == NULL)
		return refuse(m, at, "%s has no url", label);
	if (check_str(m, found, "upstreams.[].url", label, "url") < 0)
		return -1;
	*url = found->str;
	return 0;
}

static int map_upstream(struct lc_model *m, size_t index, const struct pyliteral *name,
			const struct pyliteral *d)
{
	struct lc_upstream *up = &m->ups[m->n];
	char label[LABEL_MAX];

	upstream_label(label, sizeof(label), index, NULL);
	if (check_str(m, name, "upstreams.[].name", label, "the name") < 0)
		return -1;
	upstream_label(label, sizeof(label), index, name->str);
	for (size_t j = 0; j < m->n; j++)
		if (strcmp(m->ups[j].name, name->str) == 0)
			return refuse(m, name->line, "duplicate %s (first at line %u); Python would silently "
				      "keep only the last one", label, m->ups[j].line);
	if (d->kind != PYLITERAL_DICT)
		return refuse(m, d->line, "%s must be a dict with a url and projects, got %s", label,
			      pyliteral_kind_name(d->kind));
	up->name = name->str;
	up->line = name->line;
	if (map_url(m, d, label, name->line, &up->url) < 0)
		return -1;
	if ((up->projects = calloc(d->n + 1, sizeof(*up->projects))) == NULL)
		return nomem(m, name->line);
	m->n++; /* counted now so that a failure below still frees its projects */
	for (size_t i = 0; i < d->n; i++)
		if (!pyliteral_is_str(d->keys[i], "url") &&
		    map_project(m, up, label, d->keys[i], d->items[i]) < 0)
			return -1;
	return 0;
}

/* ---- the default route ------------------------------------------------------------------- */

/* Same server: scheme and host compared without case, trailing slashes ignored. */
static bool url_same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), ha, hb;
	const char *sa = strstr(a, "://"), *sb = strstr(b, "://");

	while (la > 0 && a[la - 1] == '/')
		la--;
	while (lb > 0 && b[lb - 1] == '/')
		lb--;
	if (la != lb || sa == NULL || sb == NULL)
		return false;
	ha = (size_t)(sa - a) + 3 + strcspn(sa + 3, "/");
	hb = (size_t)(sb - b) + 3 + strcspn(sb + 3, "/");
	if (ha > la || hb > lb)
		ha = la, hb = lb;
	return ha == hb && strncasecmp(a, b, ha) == 0 && memcmp(a + ha, b + ha, la - ha) == 0;
}

/* The default entry: a url and exactly one project (its name is not used). */
static int read_default(struct lc_model *m, const struct pyliteral *name, const struct pyliteral *d,
			struct lc_default *def)
{
	const char *label = "the 'default' entry";
	const struct pyliteral *pname = NULL, *pval = NULL;

	if (d->kind != PYLITERAL_DICT)
		return refuse(m, d->line, "%s must be a dict with a url and one project, got %s", label,
			      pyliteral_kind_name(d->kind));
	if (map_url(m, d, label, name->line, &def->url) < 0)
		return -1;
	for (size_t i = 0; i < d->n; i++) {
		if (pyliteral_is_str(d->keys[i], "url"))
			continue;
		if (pname != NULL)
			return refuse(m, d->keys[i]->line, "%s has a second project (first at line %u); "
				      "a default route goes to one project", label, pname->line);
		pname = d->keys[i];
		pval = d->items[i];
	}
	if (pname == NULL)
		return refuse(m, name->line, "%s has no project (one with key, secret and num)", label);
	if (pname->kind != PYLITERAL_STR)
		return refuse(m, pname->line, "the project of %s: the name must be a string, got %s", label,
			      pyliteral_kind_name(pname->kind));
	def->line = name->line;
	def->p.name = DEFAULT_NAME;
	return map_fields(m, pval, "the project of the 'default' entry", &def->p, pname->line);
}

static void route_to(struct lc_model *m, const struct lc_upstream *up, const struct lc_project *p,
		     const char *note)
{
	m->route_up = up;
	m->route_project = p;
	m->route_note = note;
}

/* The first upstream with def's url (NULL: none); *match its project with def's key and num. */
static struct lc_upstream *find_default(struct lc_model *m, const struct lc_default *def,
					 const struct lc_upstream **mup, const struct lc_project **match)
{
	struct lc_upstream *first = NULL;

	*mup = NULL, *match = NULL;
	for (size_t i = 0; i < m->n; i++) {
		if (!url_same(m->ups[i].url, def->url))
			continue;
		first = first ? first : &m->ups[i];
		for (size_t j = 0; j < m->ups[i].n && *match == NULL; j++)
			if (strcmp(m->ups[i].projects[j].key, def->p.key) == 0 &&
			    m->ups[i].projects[j].id == def->p.id)
				*mup = &m->ups[i], *match = &m->ups[i].projects[j];
		if (*match != NULL)
			break;
	}
	return first;
}

/* Point default_route at the project with def's url, key and num, or create what is missing. */
static int resolve_default(struct lc_model *m, const struct lc_default *def)
{
	const struct lc_upstream *mup;
	const struct lc_project *match;
	struct lc_upstream *up = find_default(m, def, &mup, &match);

	m->route_line = def->line;
	if (match != NULL)
		return route_to(m, mup, match, "the same url, key and num as this project"), 0;
	if (up != NULL) {
		for (size_t j = 0; j < up->n; j++)
			if (strcmp(up->projects[j].name, DEFAULT_NAME) == 0)
				return refuse(m, def->line, "the 'default' entry has the url of upstream '%s', "
					      "whose project named '" DEFAULT_NAME "' (line %u) has another key "
					      "or num: the default project cannot be added under that name",
					      up->name, up->projects[j].line);
		if (up->n == CONFIG_PROJECTS_MAX)
			return refuse(m, def->line, "upstream '%s': at most %d projects per upstream",
				      up->name, CONFIG_PROJECTS_MAX);
		up->projects[up->n] = def->p;
		return route_to(m, up, &up->projects[up->n++],
				"its url matched this upstream; its project was added as 'default'"), 0;
	}
	up = &m->ups[m->n];
	if ((up->projects = calloc(1, sizeof(*up->projects))) == NULL)
		return nomem(m, def->line);
	m->n++;
	up->name = DEFAULT_NAME, up->url = def->url, up->line = def->line;
	up->projects[0] = def->p;
	up->n = 1;
	return route_to(m, up, &up->projects[0],
			"no upstream had its url: upstream and project 'default' were added"), 0;
}

/* ---- the whole dict ---------------------------------------------------------------------- */

static int map_config(struct lc_model *m, const struct pyliteral *root, unsigned at)
{
	const struct pyliteral *dname = NULL, *dval = NULL;
	struct lc_default def;

	if (root->kind != PYLITERAL_DICT)
		return refuse(m, root->line, "config must be a dict, got %s", pyliteral_kind_name(root->kind));
	if ((m->ups = calloc(root->n + 1, sizeof(*m->ups))) == NULL)
		return nomem(m, at);
	for (size_t i = 0; i < root->n; i++) {
		if (!pyliteral_is_str(root->keys[i], DEFAULT_NAME)) {
			if (map_upstream(m, i, root->keys[i], root->items[i]) < 0)
				return -1;
			continue;
		}
		if (dname != NULL)
			return refuse(m, root->keys[i]->line, "a second 'default' entry (first at line %u); "
				      "Python would silently keep the last one", dname->line);
		dname = root->keys[i], dval = root->items[i];
	}
	memset(&def, 0, sizeof(def));
	if (dname != NULL && (read_default(m, dname, dval, &def) < 0 || resolve_default(m, &def) < 0))
		return -1;
	if (m->n == 0)
		return refuse(m, root->line, "config has no upstreams");
	if (m->n > CONFIG_UPSTREAMS_MAX)
		return refuse(m, m->ups[CONFIG_UPSTREAMS_MAX].line, "at most %d upstreams",
			      CONFIG_UPSTREAMS_MAX);
	for (size_t i = 0; i < m->n; i++)
		if (m->ups[i].n == 0)
			return refuse(m, m->ups[i].line, "upstream '%s' has no projects", m->ups[i].name);
	return 0;
}

static void model_free(struct lc_model *m)
{
	for (size_t i = 0; m->ups != NULL && i < m->n; i++)
		free(m->ups[i].projects);
	free(m->ups);
}

/* ---- output ------------------------------------------------------------------------------ */

struct obuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void obuf_reserve(struct obuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *q;

	if (b->oom || b->n + more + 1 <= b->cap)
		return;
	while (cap < b->n + more + 1)
		cap *= 2;
	if ((q = realloc(b->p, cap)) == NULL) {
		b->oom = true;
		return;
	}
	b->p = q;
	b->cap = cap;
}

__attribute__((format(printf, 2, 3)))
static void obuf_printf(struct obuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	obuf_reserve(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

/* s as a libconfig string literal: quotes, backslashes and control bytes escaped. */
static void obuf_string(struct obuf *b, const char *s)
{
	obuf_printf(b, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			obuf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			obuf_printf(b, "\\x%02x", c);
		else
			obuf_printf(b, "%c", c);
	}
	obuf_printf(b, "\"");
}

/* A file name inside a comment: one line, printable. */
static void obuf_comment_text(struct obuf *b, const char *s)
{
	for (; *s != '\0'; s++)
		obuf_printf(b, "%c", (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void write_header(struct obuf *b, const char *source)
{
	obuf_printf(b, "# sentryq configuration imported from ");
	obuf_comment_text(b, source);
	obuf_printf(b, "\n# by `sentryq import-legacy-config` (sentryq %s); the Python file was read, "
		    "not run.\n", SENTRYQ_VERSION);
	obuf_printf(b,
		"# Upstream and project names are kept exactly: they are the DSN key and secret\n"
		"# (http://<upstream>:<project>@<relay>/<n>) the applications already use.\n"
		"# This file holds the real keys and secrets: keep it private.\n"
		"#\n"
		"# listen and redis keep their defaults (listen on 127.0.0.1:9000, Redis at\n"
		"# 127.0.0.1:6379). To change them, for example:\n"
		"#   listen = { address = \"0.0.0.0\"; port = 9000; };\n"
		"#   redis  = { host = \"127.0.0.1\"; port = 6379; };\n"
		"# etc/sentryq.conf documents every key.\n\n");
}

static void write_project(struct obuf *b, const struct lc_project *p, bool last)
{
	obuf_printf(b, "      { name = ");
	obuf_string(b, p->name);
	obuf_printf(b, "; key = ");
	obuf_string(b, p->key);
	if (p->secret != NULL) {
		obuf_printf(b, "; secret = ");
		obuf_string(b, p->secret);
	}
	/* libconfig reads a plain integer as 32 bits: larger ids need the L suffix */
	obuf_printf(b, "; id = %lld%s; }%s\n", p->id, p->id > INT32_MAX ? "L" : "", last ? "" : ",");
}

static void write_config(struct obuf *b, const struct lc_model *m, const char *source)
{
	write_header(b, source);
	obuf_printf(b, "upstreams = (\n");
	for (size_t i = 0; i < m->n; i++) {
		const struct lc_upstream *up = &m->ups[i];

		obuf_printf(b, "  { name = ");
		obuf_string(b, up->name);
		obuf_printf(b, "; url = ");
		obuf_string(b, up->url);
		obuf_printf(b, ";\n    projects = (\n");
		for (size_t j = 0; j < up->n; j++)
			write_project(b, &up->projects[j], j + 1 == up->n);
		obuf_printf(b, "    ); }%s\n", i + 1 == m->n ? "" : ",");
	}
	obuf_printf(b, ");\n");
	if (m->route_up == NULL)
		return;
	obuf_printf(b, "\n# The legacy 'default' entry (line %u): %s.\ndefault_route = { upstream = ",
		    m->route_line, m->route_note);
	obuf_string(b, m->route_up->name);
	obuf_printf(b, "; project = ");
	obuf_string(b, m->route_project->name);
	obuf_printf(b, "; };\n");
}

/* ---- public ------------------------------------------------------------------------------ */

static enum legacyconf_result from_pyliteral(enum pyliteral_result r, const struct pyliteral_error *pe,
					     struct legacyconf_error *err)
{
	err->line = pe->line;
	snprintf(err->msg, sizeof(err->msg), "%s", pe->msg);
	return r == PYLITERAL_NOMEM ? LEGACYCONF_NOMEM : LEGACYCONF_REFUSED;
}

enum legacyconf_result legacyconf_convert(const char *text, size_t len, const char *source,
					  char **out, size_t *outlen, struct legacyconf_error *err)
{
	struct pyliteral *root = NULL;
	struct pyliteral_error pe;
	struct lc_model m;
	struct obuf b = { NULL, 0, 0, false };
	unsigned line = 0;
	enum pyliteral_result r;

	*out = NULL;
	*outlen = 0;
	memset(err, 0, sizeof(*err));
	memset(&m, 0, sizeof(m));
	m.err = err;
	if ((r = pyliteral_find(text, len, "config", &root, &line, &pe)) != PYLITERAL_OK)
		return from_pyliteral(r, &pe, err);
	if (map_config(&m, root, line) < 0) {
		model_free(&m);
		pyliteral_free(root);
		return m.oom ? LEGACYCONF_NOMEM : LEGACYCONF_REFUSED;
	}
	write_config(&b, &m, source);
	model_free(&m);
	pyliteral_free(root);
	if (b.oom) {
		free(b.p);
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return LEGACYCONF_NOMEM;
	}
	*out = b.p;
	*outlen = b.n;
	return LEGACYCONF_OK;
}

/* The whole file, bounded: 0 with *text (NUL-terminated) and *len, or -1 with why. */
static int read_text(const char *path, char **text, size_t *len, char *why, size_t whylen)
{
	FILE *fp = fopen(path, "rb");
	size_t cap = 65536, n = 0;
	char *buf = NULL, *grown;

	if (fp == NULL)
		return snprintf(why, whylen, "cannot open: %s", strerror(errno)), -1;
	while ((grown = realloc(buf, cap + 1)) != NULL) {
		buf = grown;
		n += fread(buf + n, 1, cap - n, fp);
		if (n < cap || cap > PYLITERAL_TEXT_MAX)
			break;
		cap *= 2;
	}
	if (grown == NULL || ferror(fp) || n > PYLITERAL_TEXT_MAX) {
		snprintf(why, whylen, "cannot read: %s", grown == NULL ? "out of memory" :
			 n > PYLITERAL_TEXT_MAX ? "larger than 16 MiB" : strerror(errno ? errno : EIO));
		fclose(fp);
		free(buf);
		return -1;
	}
	fclose(fp);
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: sentryq import-legacy-config OLD.py > sentryq.conf\n"
		"  Reads the legacy Python forwarder's `config = {...}` (never runs the file) and writes\n"
		"  the equivalent sentryq configuration on stdout. Exit 0 ok, 1 refused, 2 usage.\n");
}

enum legacyconf_exit legacyconf_run(int argc, char **argv, FILE *out, FILE *errout)
{
	struct legacyconf_error err;
	char *text = NULL, *conf = NULL, why[256];
	size_t len, conflen;
	enum legacyconf_result r;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		return usage(out), LEGACYCONF_EXIT_OK;
	if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0')
		return usage(errout), LEGACYCONF_EXIT_USAGE;
	if (read_text(argv[1], &text, &len, why, sizeof(why)) < 0)
		return fprintf(errout, "sentryq: %s: %s\n", argv[1], why), LEGACYCONF_EXIT_REFUSED;
	r = legacyconf_convert(text, len, argv[1], &conf, &conflen, &err);
	free(text);
	if (r != LEGACYCONF_OK) {
		if (err.line > 0)
			fprintf(errout, "sentryq: %s:%u: %s\n", argv[1], err.line, err.msg);
		else
			fprintf(errout, "sentryq: %s: %s\n", argv[1], err.msg);
		return LEGACYCONF_EXIT_REFUSED;
	}
	if (fwrite(conf, 1, conflen, out) != conflen || fflush(out) != 0) {
		fprintf(errout, "sentryq: cannot write the configuration: %s\n", strerror(errno));
		free(conf);
		return LEGACYCONF_EXIT_REFUSED;
	}
	free(conf);
	return LEGACYCONF_EXIT_OK;
}
