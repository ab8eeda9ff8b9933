/* SPDX-License-Identifier: MIT */
/* --json output of the `vmo` tool; see json.h. */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* The length of the UTF-8 sequence at p (1 to 4), or 0 if it is not one: a
 * bad lead byte, a missing or wrong continuation byte, an overlong form, a
 * surrogate, or past U+10FFFF. */
static int utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	int n;
	unsigned min, cp;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) { /* a NUL ends the string: it is no continuation byte */
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		unsigned c = *p;
		int n = utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		if (n > 1) {
			fwrite(p, 1, (size_t)n, f);
			p += n;
			continue;
		}
		p++;
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc((int)c, f);
		}
	}
	fputc('"', f);
}

/* The separator, indentation and key before a member. */
static void member(struct json *j, const char *key)
{
	unsigned d = j->depth - 1;
	fputs(j->nonempty[d] ? ",\n" : "\n", j->f);
	j->nonempty[d] = true;
	for (unsigned i = 0; i < j->depth; i++)
		fputs("  ", j->f);
	if (key) {
		json_string(j->f, key);
		fputs(": ", j->f);
	}
}

static void open_container(struct json *j, const char *key, char open, char close)
{
	if (j->depth)
		member(j, key);
	fputc(open, j->f);
	if (j->depth < JSON_MAX_DEPTH) { /* deeper is a bug in the caller: keep writing, unindented */
		j->nonempty[j->depth] = false;
		j->closer[j->depth] = close;
	}
	j->depth++;
}

void json_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	open_container(j, NULL, '{', '}');
}

void json_end(struct json *j)
{
	if (!j->depth)
		return;
	unsigned d = --j->depth;
	if (j->nonempty[d]) {
		fputc('\n', j->f);
		for (unsigned i = 0; i < d; i++)
			fputs("  ", j->f);
	}
	fputc(j->closer[d], j->f);
}

void json_finish(struct json *j)
{
	while (j->depth)
		json_end(j);
	fputc('\n', j->f);
}

void json_object(struct json *j, const char *key) { open_container(j, key, '{', '}'); }
void json_array(struct json *j, const char *key) { open_container(j, key, '[', ']'); }

void json_str(struct json *j, const char *key, const char *s)
{
	member(j, key);
	json_string(j->f, s);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_int(struct json *j, const char *key, long long v)
{
	member(j, key);
	fprintf(j->f, "%lld", v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_double(struct json *j, const char *key, double v)
{
	member(j, key);
	if (!isfinite(v)) {
		fputs("null", j->f);
		return;
	}
	/* %.6f, then the trailing zeros (and a bare point) dropped: 12.5, 3, 0.000125.
	 * Finite doubles print in the C locale's digits, which is JSON's form. */
	char buf[512];
	int n = snprintf(buf, sizeof buf, "%.6f", v);
	if (n <= 0 || (size_t)n >= sizeof buf) {
		fprintf(j->f, "%.17g", v); /* huge: exponent form, also JSON */
		return;
	}
	while (n > 1 && buf[n - 1] == '0')
		buf[--n] = 0;
	if (buf[n - 1] == '.')
		buf[--n] = 0;
	if (!strcmp(buf, "-0"))
		strcpy(buf, "0");
	fputs(buf, j->f);
}
