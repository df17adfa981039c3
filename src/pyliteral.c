/* pyliteral.c - a Python tokenizer just good enough to skip any module, and a recursive-descent
 * parser of plain literals on top of it. Nothing is evaluated. */
#include "pyliteral.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BRACKETS_MAX 200 /* Python's own limit on nested brackets in a module */

enum tok_kind { TK_EOF, TK_NEWLINE, TK_NAME, TK_NUMBER, TK_STRING, TK_OP };

#define STR_RAW 0x1
#define STR_BYTES 0x2
#define STR_FMT 0x4

struct token {
	enum tok_kind kind;
	const char *p;      /* first byte (a string's prefix included) */
	size_t n;           /* bytes in the token */
	unsigned line;
	bool line_start;    /* first token of its logical line */
	bool indented;      /* whitespace before it on its physical line */
	unsigned flags;     /* strings: STR_* */
	const char *body;   /* strings: between the quotes */
	size_t body_n;
};

struct lexer {
	const char *p, *end;
	const char *line_begin;  /* first byte of the current physical line */
	unsigned line;
	bool at_line_start;      /* no token yet on this logical line */
	char open[BRACKETS_MAX]; /* open brackets, innermost last */
	unsigned open_line[BRACKETS_MAX];
	size_t depth;
	struct pyliteral_error *err;
	enum pyliteral_result rc; /* first failure; PYLITERAL_OK while none */
};

struct parser {
	struct lexer lx;
	struct token tok; /* current token */
};

/* ---- errors ------------------------------------------------------------------------------ */

/* Record the first failure; always -1. */
__attribute__((format(printf, 4, 5)))
static int fail(struct lexer *lx, enum pyliteral_result rc, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (lx->rc != PYLITERAL_OK)
		return -1;
	lx->rc = rc;
	lx->err->line = line;
	va_start(ap, fmt);
	vsnprintf(lx->err->msg, sizeof(lx->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- tokens ------------------------------------------------------------------------------ */

static bool name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool name_char(unsigned char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

static bool tok_is(const struct token *t, enum tok_kind kind, const char *s)
{
	return t->kind == kind && t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

static bool is_op(const struct token *t, const char *s)
{
	return tok_is(t, TK_OP, s);
}

/* At p: consume one newline ("\n", "\r\n" or "\r") and count it. */
static const char *newline(struct lexer *lx, const char *p)
{
	if (*p == '\r' && p + 1 < lx->end && p[1] == '\n')
		p++;
	lx->line++;
	lx->line_begin = p + 1;
	return p + 1;
}

static bool is_newline(char c)
{
	return c == '\n' || c == '\r';
}

/* String prefix flags for the name [p, p+n), or -1 when it is no string prefix. */
static int string_prefix(const char *p, size_t n)
{
	unsigned flags = 0;

	if (n > 2)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned f;

		switch (p[i] | 0x20) {
		case 'r': f = STR_RAW; break;
		case 'b': f = STR_BYTES; break;
		case 'f': f = STR_FMT; break;
		case 'u': f = n == 1 ? 0x8 : 0; break; /* u alone; "ur" is not Python 3 */
		default: f = 0;
		}
		if (f == 0 || (flags & f))
			return -1;
		flags |= f;
	}
	if ((flags & STR_BYTES) && (flags & STR_FMT))
		return -1;
	return (int)(flags & ~0x8u);
}

/* A string token whose opening quote is at q. */
static int lex_string(struct lexer *lx, struct token *t, const char *q, unsigned flags)
{
	char quote = *q;
	bool triple = lx->end - q >= 3 && q[1] == quote && q[2] == quote;
	const char *p = q + (triple ? 3 : 1);

	t->kind = TK_STRING;
	t->flags = flags;
	t->body = p;
	while (p < lx->end) {
		if (*p == '\\' && p + 1 < lx->end) {
			p = is_newline(p[1]) ? newline(lx, p + 1) : p + 2;
		} else if (is_newline(*p)) {
			if (!triple)
				break;
			p = newline(lx, p);
		} else if (*p == quote && (!triple || (lx->end - p >= 3 && p[1] == quote && p[2] == quote))) {
			t->body_n = (size_t)(p - t->body);
			lx->p = p + (triple ? 3 : 1);
			t->n = (size_t)(lx->p - t->p);
			return 0;
		} else {
			p++;
		}
	}
	return fail(lx, PYLITERAL_SYNTAX, t->line, "unterminated string");
}

static int lex_number(struct lexer *lx, struct token *t)
{
	const char *p = t->p;
	bool based = lx->end - p >= 2 && p[0] == '0' && p[1] != '\0' && strchr("xXoObB", p[1]) != NULL;

	t->kind = TK_NUMBER;
	while (p < lx->end && (name_char((unsigned char)*p) || *p == '.' ||
			       (!based && (*p == '+' || *p == '-') && (p[-1] | 0x20) == 'e')))
		p++;
	lx->p = p;
	t->n = (size_t)(p - t->p);
	return 0;
}

static int lex_open(struct lexer *lx, struct token *t)
{
	if (lx->depth == BRACKETS_MAX)
		return fail(lx, PYLITERAL_LIMIT, t->line, "more than %d nested brackets", BRACKETS_MAX);
	lx->open[lx->depth] = *t->p;
	lx->open_line[lx->depth++] = t->line;
	return 0;
}

static int lex_close(struct lexer *lx, struct token *t)
{
	char want = *t->p == ')' ? '(' : *t->p == ']' ? '[' : '{';

	if (lx->depth == 0)
		return fail(lx, PYLITERAL_SYNTAX, t->line, "unmatched '%c'", *t->p);
	if (lx->open[lx->depth - 1] != want)
		return fail(lx, PYLITERAL_SYNTAX, t->line, "'%c' does not close the '%c' opened at line %u",
			    *t->p, lx->open[lx->depth - 1], lx->open_line[lx->depth - 1]);
	lx->depth--;
	return 0;
}

static int lex_op(struct lexer *lx, struct token *t)
{
	static const char *const multi[] = { "**=", "//=", ">>=", "<<=", "...", "!=", "==", "<=",
		">=", "->", ":=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", "**", "//",
		"<<", ">>" };
	size_t left = (size_t)(lx->end - t->p);

	t->kind = TK_OP;
	t->n = 1;
	for (size_t i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		size_t n = strlen(multi[i]);

		if (n <= left && memcmp(t->p, multi[i], n) == 0) {
			t->n = n;
			break;
		}
	}
	lx->p = t->p + t->n;
	if (strchr("([{", *t->p))
		return lex_open(lx, t);
	if (strchr(")]}", *t->p))
		return lex_close(lx, t);
	return 0;
}

/* A name, or a string when the name is a prefix glued to a quote. */
static int lex_name(struct lexer *lx, struct token *t)
{
	const char *p = t->p;
	int flags;

	while (p < lx->end && name_char((unsigned char)*p))
		p++;
	flags = string_prefix(t->p, (size_t)(p - t->p));
	if (p < lx->end && (*p == '"' || *p == '\'') && flags >= 0)
		return lex_string(lx, t, p, (unsigned)flags);
	t->kind = TK_NAME;
	t->n = (size_t)(p - t->p);
	lx->p = p;
	return 0;
}

/* Skip blanks, comments, line joins and (inside brackets) newlines. 1: a token may start at
 * lx->p; 0: a logical NEWLINE was consumed; -1: error. */
static int skip_space(struct lexer *lx)
{
	for (;;) {
		const char *p = lx->p;

		while (p < lx->end && (*p == ' ' || *p == '\t' || *p == '\f'))
			p++;
		if (p < lx->end && *p == '#')
			while (p < lx->end && !is_newline(*p))
				p++;
		lx->p = p;
		if (p == lx->end)
			return 1;
		if (*p == '\\') {
			if (p + 1 == lx->end || !is_newline(p[1]))
				return fail(lx, PYLITERAL_SYNTAX, lx->line,
					    "a backslash outside a string must end its line");
			lx->p = newline(lx, p + 1);
			continue;
		}
		if (!is_newline(*p))
			return 1;
		lx->p = newline(lx, p);
		if (lx->depth == 0 && !lx->at_line_start) {
			lx->at_line_start = true;
			return 0;
		}
	}
}

/* The next token into t; -1 on error. */
static int lex_next(struct lexer *lx, struct token *t)
{
	int r;

	memset(t, 0, sizeof(*t));
	t->line = lx->line;
	if ((r = skip_space(lx)) < 0)
		return -1;
	if (r == 0) {
		t->kind = TK_NEWLINE;
		return 0;
	}
	t->line = lx->line;
	t->p = lx->p;
	if (lx->p == lx->end) {
		if (lx->depth > 0)
			return fail(lx, PYLITERAL_SYNTAX, lx->open_line[lx->depth - 1],
				    "'%c' is never closed", lx->open[lx->depth - 1]);
		t->kind = lx->at_line_start ? TK_EOF : TK_NEWLINE; /* the last line ends too */
		lx->at_line_start = true;
		return 0;
	}
	t->line_start = lx->at_line_start;
	t->indented = lx->p != lx->line_begin;
	lx->at_line_start = false;
	if (name_start((unsigned char)*lx->p))
		return lex_name(lx, t);
	if ((*lx->p >= '0' && *lx->p <= '9') ||
	    (*lx->p == '.' && lx->end - lx->p > 1 && lx->p[1] >= '0' && lx->p[1] <= '9'))
		return lex_number(lx, t);
	if (*lx->p == '"' || *lx->p == '\'')
		return lex_string(lx, t, lx->p, 0);
	return lex_op(lx, t);
}

static int advance(struct parser *ps)
{
	return lex_next(&ps->lx, &ps->tok);
}

/* ---- nodes ------------------------------------------------------------------------------- */

static struct pyliteral *node_new(struct parser *ps, enum pyliteral_kind kind, unsigned line)
{
	struct pyliteral *v = calloc(1, sizeof(*v));

	if (v == NULL) {
		fail(&ps->lx, PYLITERAL_NOMEM, line, "out of memory");
		return NULL;
	}
	v->kind = kind;
	v->line = line;
	return v;
}

/* Append (key, item) to a container; key NULL for lists and tuples. Takes both either way. */
static int node_add(struct parser *ps, struct pyliteral *c, struct pyliteral *key,
		    struct pyliteral *item)
{
	if (c->n == 0 || (c->n & (c->n - 1)) == 0) { /* capacity is the power of two above n: full */
		size_t cap = c->n ? c->n * 2 : 1;
		struct pyliteral **items = realloc(c->items, cap * sizeof(*items)), **keys;

		if (items != NULL)
			c->items = items;
		if (items != NULL && c->kind == PYLITERAL_DICT) {
			keys = realloc(c->keys, cap * sizeof(*keys));
			if (keys != NULL)
				c->keys = keys;
			else
				items = NULL;
		}
		if (items == NULL) {
			pyliteral_free(key);
			pyliteral_free(item);
			return fail(&ps->lx, PYLITERAL_NOMEM, c->line, "out of memory");
		}
	}
	if (c->kind == PYLITERAL_DICT)
		c->keys[c->n] = key;
	c->items[c->n++] = item;
	return 0;
}

/* ---- strings ----------------------------------------------------------------------------- */

/* A growing buffer for a decoded string; bounded by the text it comes from. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static int sbuf_put(struct parser *ps, struct sbuf *b, const char *s, size_t n, unsigned line)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *q;

		while (cap < b->n + n + 1)
			cap *= 2;
		if ((q = realloc(b->p, cap)) == NULL)
			return fail(&ps->lx, PYLITERAL_NOMEM, line, "out of memory");
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

static int sbuf_utf8(struct parser *ps, struct sbuf *b, uint32_t cp, unsigned line)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	return sbuf_put(ps, b, u, n, line);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* \x.. \u.... \U........ at p (just after the letter): the code point, or -1. */
static long hex_escape(const char *p, const char *end, int ndig)
{
	long cp = 0;

	if (end - p < ndig)
		return -1;
	for (int i = 0; i < ndig; i++) {
		int d = hex_digit(p[i]);

		if (d < 0)
			return -1;
		cp = cp * 16 + d;
	}
	return cp;
}

/* One escape; p is just after the backslash. The position after it, or NULL on error. */
static const char *escape(struct parser *ps, struct sbuf *b, const char *p, const char *end,
			  unsigned *line)
{
	static const char simple[] = "\\\\''\"\"a\ab\bf\fn\nr\rt\tv\v";
	char c = *p;
	long cp = 0;
	int ndig = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0, k = 0;

	if (is_newline(c)) { /* backslash-newline joins the lines */
		(*line)++;
		return c == '\r' && end - p > 1 && p[1] == '\n' ? p + 2 : p + 1;
	}
	for (size_t i = 0; simple[i] != '\0'; i += 2)
		if (simple[i] == c)
			return sbuf_put(ps, b, &simple[i + 1], 1, *line) < 0 ? NULL : p + 1;
	if (c >= '0' && c <= '7') {
		for (; k < 3 && p < end && *p >= '0' && *p <= '7'; k++)
			cp = cp * 8 + (*p++ - '0');
		return sbuf_utf8(ps, b, (uint32_t)cp, *line) < 0 ? NULL : p;
	}
	if (c == 'N')
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, *line, "\\N{...} escapes are not supported; "
			    "write the character itself or a \\u escape"), NULL;
	if (ndig == 0) /* an unknown escape keeps its backslash, as Python does */
		return sbuf_put(ps, b, p - 1, 2, *line) < 0 ? NULL : p + 1;
	if ((cp = hex_escape(p + 1, end, ndig)) < 0)
		return fail(&ps->lx, PYLITERAL_SYNTAX, *line, "truncated \\%c escape", c), NULL;
	if (cp > 0x10ffff)
		return fail(&ps->lx, PYLITERAL_SYNTAX, *line, "\\%c escape beyond U+10FFFF", c), NULL;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, *line,
			    "a surrogate escape (U+D800..U+DFFF) cannot be written as UTF-8"), NULL;
	return sbuf_utf8(ps, b, (uint32_t)cp, *line) < 0 ? NULL : p + 1 + ndig;
}

/* Append the decoded body of string token t; source newlines become "\n". */
static int decode_string(struct parser *ps, struct sbuf *b, const struct token *t)
{
	const char *p = t->body, *end = t->body + t->body_n;
	unsigned line = t->line;

	while (p < end) {
		const char *q = p;

		while (q < end && *q != '\\' && !is_newline(*q))
			q++;
		if (sbuf_put(ps, b, p, (size_t)(q - p), line) < 0)
			return -1;
		if (q == end)
			break;
		if (is_newline(*q)) {
			if (sbuf_put(ps, b, "\n", 1, line) < 0)
				return -1;
			p = *q == '\r' && end - q > 1 && q[1] == '\n' ? q + 2 : q + 1;
			line++;
		} else if ((t->flags & STR_RAW) || q + 1 == end) {
			if (sbuf_put(ps, b, "\\", 1, line) < 0)
				return -1;
			p = q + 1;
		} else if ((p = escape(ps, b, q + 1, end, &line)) == NULL) {
			return -1;
		}
	}
	return 0;
}

/* One string, or several adjacent ones concatenated ("a" 'b' """c"""). */
static int parse_strings(struct parser *ps, struct pyliteral **out)
{
	struct sbuf b = { NULL, 0, 0 };
	unsigned line = ps->tok.line;

	if (sbuf_put(ps, &b, "", 0, line) < 0)
		return -1;
	while (ps->tok.kind == TK_STRING) {
		if (ps->tok.flags & STR_FMT) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line, "an f-string is not a plain literal");
			break;
		}
		if (ps->tok.flags & STR_BYTES) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line,
			     "a bytes literal (b'...') is not accepted; write a string");
			break;
		}
		if (decode_string(ps, &b, &ps->tok) < 0 || advance(ps) < 0)
			break;
	}
	if (ps->lx.rc == PYLITERAL_OK && (*out = node_new(ps, PYLITERAL_STR, line)) != NULL) {
		(*out)->str = b.p;
		(*out)->len = b.n;
		return 0;
	}
	free(b.p);
	return -1;
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* Digits of `base` with single underscores between them (after a base prefix, before the first
 * digit too). 0 with *v (and *big on overflow), -1 malformed. */
static int int_digits(const char *p, const char *end, int base, bool lead_us,
		      unsigned long long *v, bool *big)
{
	bool digit_before = lead_us;

	if (p == end)
		return -1;
	for (*v = 0, *big = false; p < end; p++) {
		int d = hex_digit(*p);

		if (*p == '_' && digit_before && p + 1 < end) {
			digit_before = false;
			continue;
		}
		if (d < 0 || d >= base)
			return -1;
		digit_before = true;
		if (*v > (ULLONG_MAX - (unsigned)d) / (unsigned)base)
			*big = true;
		*v = *v * (unsigned)base + (unsigned)d;
	}
	return 0;
}

/* 0: an int in *v; 1: a float or complex; -1: malformed. */
static int number_value(const char *p, size_t n, unsigned long long *v, bool *big)
{
	const char *end = p + n;
	int base = 10;

	if (n > 2 && p[0] == '0' && strchr("xob", p[1] | 0x20) != NULL)
		base = (p[1] | 0x20) == 'x' ? 16 : (p[1] | 0x20) == 'o' ? 8 : 2;
	if (base != 10)
		return int_digits(p + 2, end, base, true, v, big);
	if (strspn(p, "0123456789_") < n)
		return strspn(p, "0123456789_.eE+-jJ") >= n ? 1 : -1;
	if (int_digits(p, end, 10, false, v, big) < 0)
		return -1;
	return p[0] == '0' && *v != 0 ? -1 : 0; /* 007 is not Python 3 */
}

static int parse_number(struct parser *ps, struct pyliteral **out, bool negative, unsigned line)
{
	unsigned long long v;
	bool big;
	int r = number_value(ps->tok.p, ps->tok.n, &v, &big);

	if (r > 0)
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line,
			    "a float is not accepted; write an int or a string");
	if (r < 0)
		return fail(&ps->lx, PYLITERAL_SYNTAX, ps->tok.line, "malformed number");
	if ((*out = node_new(ps, PYLITERAL_INT, line)) == NULL)
		return -1;
	if (big || v > (unsigned long long)LLONG_MAX + (negative ? 1u : 0u))
		(*out)->big = true;
	else
		(*out)->num = negative ? (long long)(0 - v) : (long long)v;
	return advance(ps);
}

/* ---- values ------------------------------------------------------------------------------ */

#define ACCEPTED "only strings, ints, True, False, None, dicts, lists and tuples are accepted"

/* The token after a value is none of those `want`ed: say why as precisely as possible. */
static int unexpected(struct parser *ps, const char *want)
{
	static const char *const words[] = { "if", "else", "and", "or", "not", "in", "is", "for",
		"lambda", "async", "await" };
	const struct token *t = &ps->tok;

	if (t->kind == TK_OP && strchr("+-*/%@|&^<>=!~.[(", *t->p) != NULL && !is_op(t, "="))
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, t->line,
			    "an expression ('%.*s') is not a plain literal; " ACCEPTED, (int)t->n, t->p);
	for (size_t i = 0; t->kind == TK_NAME && i < sizeof(words) / sizeof(words[0]); i++)
		if (tok_is(t, TK_NAME, words[i]))
			return fail(&ps->lx, PYLITERAL_NOT_LITERAL, t->line,
				    "an expression ('%s') is not a plain literal; " ACCEPTED, words[i]);
	if (t->kind == TK_OP && *t->p > ' ' && *t->p < 0x7f)
		return fail(&ps->lx, PYLITERAL_SYNTAX, t->line, "expected %s, found '%.*s'", want,
			    (int)t->n, t->p);
	return fail(&ps->lx, PYLITERAL_SYNTAX, t->line, "expected %s, found %s", want,
		    t->kind == TK_NAME ? "a name" : t->kind == TK_STRING ? "a string" :
		    t->kind == TK_NUMBER ? "a number" : t->kind == TK_OP ? "a stray character" :
		    "the end of the line");
}

static int parse_value(struct parser *ps, unsigned depth, struct pyliteral **out);

/* Items up to `closer` into c (already holding any first item), the closer consumed. Takes c:
 * *out on success, freed on failure. */
static int parse_items(struct parser *ps, unsigned depth, struct pyliteral *c, const char *closer,
		       struct pyliteral **out)
{
	char want[16];
	struct pyliteral *v;

	snprintf(want, sizeof(want), "',' or '%s'", closer);
	while (!is_op(&ps->tok, closer)) {
		if (is_op(&ps->tok, "*") || is_op(&ps->tok, "**")) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line,
			     "unpacking ('%.*s') is not a plain literal", (int)ps->tok.n, ps->tok.p);
			goto fail;
		}
		if (parse_value(ps, depth + 1, &v) < 0 || node_add(ps, c, NULL, v) < 0)
			goto fail;
		if (tok_is(&ps->tok, TK_NAME, "for")) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line, "a comprehension is not a plain literal");
			goto fail;
		}
		if (is_op(&ps->tok, ",") ? advance(ps) < 0 : !is_op(&ps->tok, closer) && unexpected(ps, want))
			goto fail;
	}
	*out = c;
	return advance(ps);
fail:
	pyliteral_free(c);
	return -1;
}

/* key: value pairs up to '}' into d. Takes d like parse_items. */
static int parse_pairs(struct parser *ps, unsigned depth, struct pyliteral *d, struct pyliteral **out)
{
	struct pyliteral *k = NULL, *v;

	while (!is_op(&ps->tok, "}")) {
		if (is_op(&ps->tok, "**")) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line, "'**' unpacking is not a plain literal");
			goto fail;
		}
		if (parse_value(ps, depth + 1, &k) < 0)
			goto fail;
		if (!is_op(&ps->tok, ":")) {
			if (d->n == 0 && (is_op(&ps->tok, ",") || is_op(&ps->tok, "}")))
				fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line,
				     "a set is not a plain literal; write a list");
			unexpected(ps, "':' after a dict key");
			goto fail;
		}
		if (advance(ps) < 0 || parse_value(ps, depth + 1, &v) < 0)
			goto fail;
		if (node_add(ps, d, k, v) < 0)
			return k = NULL, pyliteral_free(d), -1;
		k = NULL;
		if (tok_is(&ps->tok, TK_NAME, "for")) {
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line, "a comprehension is not a plain literal");
			goto fail;
		}
		if (is_op(&ps->tok, ",") ? advance(ps) < 0 : !is_op(&ps->tok, "}") && unexpected(ps, "',' or '}'"))
			goto fail;
	}
	*out = d;
	return advance(ps);
fail:
	pyliteral_free(k);
	pyliteral_free(d);
	return -1;
}

/* '(' starts a tuple, or just parenthesizes one value: ("a" "b") is a string. */
static int parse_paren(struct parser *ps, unsigned depth, struct pyliteral **out)
{
	unsigned line = ps->tok.line;
	struct pyliteral *v, *tup;

	if (advance(ps) < 0)
		return -1;
	if (is_op(&ps->tok, ")")) {
		if ((*out = node_new(ps, PYLITERAL_TUPLE, line)) == NULL)
			return -1;
		return advance(ps);
	}
	if (parse_value(ps, depth + 1, &v) < 0)
		return -1;
	if (is_op(&ps->tok, ")")) {
		*out = v;
		return advance(ps);
	}
	if (!is_op(&ps->tok, ",")) {
		pyliteral_free(v);
		return tok_is(&ps->tok, TK_NAME, "for") ?
			fail(&ps->lx, PYLITERAL_NOT_LITERAL, ps->tok.line, "a comprehension is not a plain literal") :
			unexpected(ps, "',' or ')'");
	}
	if ((tup = node_new(ps, PYLITERAL_TUPLE, line)) == NULL) {
		pyliteral_free(v);
		return -1;
	}
	if (node_add(ps, tup, NULL, v) < 0 || advance(ps) < 0) {
		pyliteral_free(tup);
		return -1;
	}
	return parse_items(ps, depth, tup, ")", out);
}

/* A container opened by the current token. */
static int parse_container(struct parser *ps, unsigned depth, struct pyliteral **out)
{
	bool dict = is_op(&ps->tok, "{");
	struct pyliteral *c;

	if (is_op(&ps->tok, "("))
		return parse_paren(ps, depth, out);
	if ((c = node_new(ps, dict ? PYLITERAL_DICT : PYLITERAL_LIST, ps->tok.line)) == NULL)
		return -1;
	if (advance(ps) < 0) {
		pyliteral_free(c);
		return -1;
	}
	return dict ? parse_pairs(ps, depth, c, out) : parse_items(ps, depth, c, "]", out);
}

static int parse_name(struct parser *ps, struct pyliteral **out)
{
	const struct token *t = &ps->tok;
	const char *after = t->p + t->n;
	enum pyliteral_kind kind = tok_is(t, TK_NAME, "None") ? PYLITERAL_NONE : PYLITERAL_BOOL;

	if (tok_is(t, TK_NAME, "True") || tok_is(t, TK_NAME, "False") || tok_is(t, TK_NAME, "None")) {
		if ((*out = node_new(ps, kind, t->line)) == NULL)
			return -1;
		(*out)->truth = tok_is(t, TK_NAME, "True");
		return advance(ps);
	}
	while (after < ps->lx.end && (*after == ' ' || *after == '\t'))
		after++;
	if (after < ps->lx.end && *after == '(')
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, t->line,
			    "a function call is not a plain literal; " ACCEPTED);
	return fail(&ps->lx, PYLITERAL_NOT_LITERAL, t->line, "a name (a variable) is not a plain literal; "
		    ACCEPTED);
}

/* One value of any kind at the current token; *out may be set even when it fails after. */
static int parse_any(struct parser *ps, unsigned depth, struct pyliteral **out)
{
	const struct token *t = &ps->tok;
	unsigned line = t->line;

	if (t->kind == TK_STRING)
		return parse_strings(ps, out);
	if (t->kind == TK_NUMBER)
		return parse_number(ps, out, false, line);
	if (t->kind == TK_NAME)
		return parse_name(ps, out);
	if (is_op(t, "{") || is_op(t, "[") || is_op(t, "("))
		return parse_container(ps, depth, out);
	if (is_op(t, "-") || is_op(t, "+")) { /* a signed int, as ast.literal_eval allows */
		bool negative = *t->p == '-';

		if (advance(ps) < 0)
			return -1;
		if (t->kind == TK_NUMBER)
			return parse_number(ps, out, negative, line);
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, line,
			    "an expression ('%c') is not a plain literal; " ACCEPTED, negative ? '-' : '+');
	}
	if (is_op(t, "*") || is_op(t, "**"))
		return fail(&ps->lx, PYLITERAL_NOT_LITERAL, line, "unpacking ('%.*s') is not a plain literal",
			    (int)t->n, t->p);
	return unexpected(ps, "a value");
}

/* One value into *out, the token after it current. On failure *out is NULL. */
static int parse_value(struct parser *ps, unsigned depth, struct pyliteral **out)
{
	*out = NULL;
	if (depth > PYLITERAL_DEPTH_MAX)
		return fail(&ps->lx, PYLITERAL_LIMIT, ps->tok.line, "nested deeper than %d levels",
			    PYLITERAL_DEPTH_MAX);
	if (parse_any(ps, depth, out) == 0)
		return 0;
	pyliteral_free(*out); /* built, but the token after it could not be read */
	*out = NULL;
	return -1;
}

/* ---- statements -------------------------------------------------------------------------- */

static int parser_init(struct parser *ps, const char *text, size_t len, struct pyliteral_error *err)
{
	const char *nul;
	unsigned line = 1;

	memset(ps, 0, sizeof(*ps));
	memset(err, 0, sizeof(*err));
	ps->lx.err = err;
	ps->lx.p = ps->lx.line_begin = text;
	ps->lx.end = text + len;
	ps->lx.line = 1;
	ps->lx.at_line_start = true;
	if (len > PYLITERAL_TEXT_MAX)
		return fail(&ps->lx, PYLITERAL_LIMIT, 0, "larger than %u MiB", PYLITERAL_TEXT_MAX >> 20);
	if ((nul = memchr(text, '\0', len)) != NULL) {
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		return fail(&ps->lx, PYLITERAL_SYNTAX, line, "contains a NUL byte");
	}
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) /* UTF-8 signature */
		ps->lx.p = ps->lx.line_begin = text + 3;
	return 0;
}

static bool statement_end(const struct token *t)
{
	return t->kind == TK_NEWLINE || t->kind == TK_EOF || is_op(t, ";");
}

enum pyliteral_result pyliteral_parse(const char *text, size_t len, struct pyliteral **out,
				      struct pyliteral_error *err)
{
	struct parser ps;

	*out = NULL;
	if (parser_init(&ps, text, len, err) < 0 || advance(&ps) < 0)
		return ps.lx.rc;
	if (ps.tok.kind == TK_EOF)
		return fail(&ps.lx, PYLITERAL_SYNTAX, ps.tok.line, "no value"), ps.lx.rc;
	if (parse_value(&ps, 0, out) == 0 && (ps.tok.kind != TK_NEWLINE || advance(&ps) == 0) &&
	    ps.tok.kind != TK_EOF)
		unexpected(&ps, "the end of the text");
	if (ps.lx.rc != PYLITERAL_OK) {
		pyliteral_free(*out);
		*out = NULL;
	}
	return ps.lx.rc;
}

/* Augmented assignments and what may change a value in place: name[...], name.x, name, other. */
static bool changes(const struct token *t)
{
	return is_op(t, "[") || is_op(t, ".") || is_op(t, ",") ||
	       (t->kind == TK_OP && t->n >= 2 && t->p[t->n - 1] == '=' &&
		!is_op(t, "==") && !is_op(t, "!=") && !is_op(t, "<=") && !is_op(t, ">="));
}

/* The current token is `name` starting a top-level statement. Parse `name [: T] = <literal>`
 * into *found; leave other statements to the caller's skipping. */
static int assignment(struct parser *ps, const char *name, struct pyliteral **found, unsigned *at)
{
	unsigned line = ps->tok.line;

	if (advance(ps) < 0)
		return -1;
	if (is_op(&ps->tok, ":")) /* annotated: skip the annotation to its '=' */
		while (!statement_end(&ps->tok) && !(ps->lx.depth == 0 && is_op(&ps->tok, "=")))
			if (advance(ps) < 0)
				return -1;
	if (changes(&ps->tok) && !is_op(&ps->tok, "="))
		return fail(&ps->lx, PYLITERAL_AMBIGUOUS, line, "a top-level statement other than "
			    "'%s = {...}' changes '%s'; its value cannot be known without running the file",
			    name, name);
	if (!is_op(&ps->tok, "="))
		return 0;
	if (*found != NULL)
		return fail(&ps->lx, PYLITERAL_AMBIGUOUS, line, "'%s' is assigned again (first at line "
			    "%u); Python would keep the last one silently: keep only one", name, *at);
	*at = line;
	if (advance(ps) < 0 || parse_value(ps, 0, found) < 0)
		return -1;
	return statement_end(&ps->tok) ? 0 : unexpected(ps, "the end of the statement");
}

enum pyliteral_result pyliteral_find(const char *text, size_t len, const char *name,
				     struct pyliteral **out, unsigned *line,
				     struct pyliteral_error *err)
{
	struct parser ps;
	bool stmt = false, top = false, colon = false;

	*out = NULL;
	if (parser_init(&ps, text, len, err) < 0 || advance(&ps) < 0)
		return ps.lx.rc;
	while (ps.tok.kind != TK_EOF) {
		if (ps.tok.line_start) /* a new logical line: top-level when not indented */
			stmt = true, top = !ps.tok.indented, colon = false;
		if (stmt && top && tok_is(&ps.tok, TK_NAME, name)) {
			stmt = false;
			if (assignment(&ps, name, out, line) < 0)
				break;
			continue;
		}
		stmt = false;
		/* after "if x:" the rest of the line is a block; "a; b" are two top-level statements */
		colon |= ps.lx.depth == 0 && is_op(&ps.tok, ":");
		stmt = ps.lx.depth == 0 && is_op(&ps.tok, ";") && !colon;
		if (advance(&ps) < 0)
			break;
	}
	if (ps.lx.rc == PYLITERAL_OK && *out == NULL)
		fail(&ps.lx, PYLITERAL_NOT_FOUND, 0, "no top-level '%s = {...}' assignment", name);
	if (ps.lx.rc != PYLITERAL_OK) {
		pyliteral_free(*out);
		*out = NULL;
	}
	return ps.lx.rc;
}

void pyliteral_free(struct pyliteral *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		if (v->keys != NULL)
			pyliteral_free(v->keys[i]);
		pyliteral_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

const char *pyliteral_kind_name(enum pyliteral_kind kind)
{
	switch (kind) {
	case PYLITERAL_DICT: return "a dict";
	case PYLITERAL_LIST: return "a list";
	case PYLITERAL_TUPLE: return "a tuple";
	case PYLITERAL_STR: return "a string";
	case PYLITERAL_INT: return "an int";
	case PYLITERAL_BOOL: return "a bool";
	case PYLITERAL_NONE: return "None";
	}
	return "a value";
}

bool pyliteral_is_str(const struct pyliteral *v, const char *s)
{
	return v != NULL && v->kind == PYLITERAL_STR && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}
