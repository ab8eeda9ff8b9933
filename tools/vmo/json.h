/* SPDX-License-Identifier: MIT */
/* --json output of the `vmo` tool: one JSON object written as it is built
 * (nothing is held in memory but the nesting), indented, numbers as numbers,
 * strings escaped.  json.c implements it. */
#ifndef VMO_TOOL_JSON_H
#define VMO_TOOL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 8

struct json {
	FILE *f;
	unsigned depth;                    /* open containers, the top object included */
	bool nonempty[JSON_MAX_DEPTH];     /* the container at that depth has a member */
	char closer[JSON_MAX_DEPTH];       /* '}' or ']' */
};

/* Write s as a JSON string, quotes included: '"' and '\' escaped, control
 * characters as \n, \t, ... or \u00XX, bytes that are not UTF-8 as U+FFFD
 * (a file name may hold any bytes; JSON must be UTF-8).  NULL: null. */
void json_string(FILE *f, const char *s);

/* The top-level object: "{" ... "}\n". */
void json_begin(struct json *j, FILE *f);
void json_finish(struct json *j);

/* Members: key is the member's name in an object, NULL in an array. */
void json_object(struct json *j, const char *key); /* opens a nested object */
void json_array(struct json *j, const char *key);  /* opens a nested array */
void json_end(struct json *j);                      /* closes the innermost one */
void json_str(struct json *j, const char *key, const char *s); /* NULL: null */
void json_u64(struct json *j, const char *key, uint64_t v);
void json_int(struct json *j, const char *key, long long v);
void json_bool(struct json *j, const char *key, bool v);
/* A number with up to 6 significant decimals after the point; NaN or an
 * infinity (not JSON) is written as null. */
void json_double(struct json *j, const char *key, double v);

#endif
