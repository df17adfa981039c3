/* pyliteral.h - Python literals (dicts, lists, tuples, strings, ints, True/False/None) parsed into a
 * tree with line numbers, and a module's top-level `NAME = <literal>` found among other code.
 * Pure: nothing is evaluated, imported or run. */
#ifndef SENTRYQ_PYLITERAL_H
#define SENTRYQ_PYLITERAL_H

#include <stdbool.h>
#include <stddef.h>

#define PYLITERAL_TEXT_MAX (16u << 20) /* bytes of Python text accepted */
#define PYLITERAL_DEPTH_MAX 64         /* nesting of dicts, lists and tuples inside the literal */

enum pyliteral_kind {
	PYLITERAL_DICT,
	PYLITERAL_LIST,
	PYLITERAL_TUPLE,
	PYLITERAL_STR,
	PYLITERAL_INT,
	PYLITERAL_BOOL,
	PYLITERAL_NONE,
};

/* One value. Containers own their children; pyliteral_free releases the whole tree. */
struct pyliteral {
	enum pyliteral_kind kind;
	unsigned line;             /* line of the value's first token, 1-based */
	char *str;                 /* STR: decoded (escapes, concatenation), UTF-8, NUL-terminated */
	size_t len;                /* STR: bytes in str; a "\0" escape makes it differ from strlen */
	long long num;             /* INT */
	bool big;                  /* INT: does not fit in 64 bits (num is then 0) */
	bool truth;                /* BOOL */
	struct pyliteral **keys;   /* DICT: the n keys in source order, duplicates kept */
	struct pyliteral **items;  /* DICT: the n values; LIST, TUPLE: the n items */
	size_t n;
};

enum pyliteral_result {
	PYLITERAL_OK = 0,
	PYLITERAL_NOT_FOUND,    /* no top-level assignment to the name */
	PYLITERAL_SYNTAX,       /* not valid Python as far as the scanner can tell */
	PYLITERAL_NOT_LITERAL,  /* valid Python but not a plain literal: a name, a call, an f-string,
	                         * an expression, a set, a float, bytes, unpacking, a comprehension */
	PYLITERAL_AMBIGUOUS,    /* the name is assigned twice or used by other top-level statements */
	PYLITERAL_LIMIT,        /* text over PYLITERAL_TEXT_MAX, or nesting over PYLITERAL_DEPTH_MAX */
	PYLITERAL_NOMEM,
};

struct pyliteral_error {
	unsigned line;   /* where; 0 when no line applies (nothing found, text too large) */
	char msg[200];   /* never quotes the text's strings, numbers or names */
};

/*
 * Parse text[0..len) as one literal (surrounding blank lines and comments allowed). OK with *out
 * set (free it with pyliteral_free), or another result with err filled and *out NULL.
 */
enum pyliteral_result pyliteral_parse(const char *text, size_t len, struct pyliteral **out,
				      struct pyliteral_error *err);

/*
 * Find the top-level statement `name = <literal>` (or `name: T = <literal>`) in a Python module
 * and parse its value. Every other statement is tokenized and skipped; statements inside blocks
 * (indented) are ignored. Refused as AMBIGUOUS: a second top-level assignment, or another
 * top-level statement starting with the name (`name[...] = ...`, `name.update(...)`, `name += ...`).
 * OK with *out and *line (of the assignment) set, or another result with err filled.
 */
enum pyliteral_result pyliteral_find(const char *text, size_t len, const char *name,
				     struct pyliteral **out, unsigned *line,
				     struct pyliteral_error *err);

void pyliteral_free(struct pyliteral *v);

/* "a dict", "a list", "a tuple", "a string", "an int", "a bool", "None": for messages. */
const char *pyliteral_kind_name(enum pyliteral_kind kind);

/* v is a string equal to the NUL-terminated s (false for NULL or any other kind). */
bool pyliteral_is_str(const struct pyliteral *v, const char *s);

#endif
