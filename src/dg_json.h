/* dg_json - thin helpers over jansson for untrusted input.
 *
 * Parsing always rejects duplicate keys, invalid UTF-8, input over a size
 * limit and nesting over a depth limit, before the caller sees a value.
 */
#ifndef DG_JSON_H
#define DG_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dg_err.h"

/* Parse len bytes (need not be NUL-terminated). Returns a new reference, or
 * NULL with *err set: DG_ERR_TOOBIG (len > max_size), DG_ERR_JSON_UTF8,
 * DG_ERR_JSON (syntax, duplicate key, trailing data), DG_ERR_JSON_DEPTH
 * (containers nested deeper than max_depth; a scalar is depth 0, {} is 1).
 * why, if not NULL, receives a one-line reason (whylen bytes). */
json_t *dg_json_parse(const char *buf, size_t len, size_t max_size,
    int max_depth, dg_err *err, char *why, size_t whylen);

/* Container nesting depth of v (scalar 0, {} or [] 1, {"a":{}} 2). */
int dg_json_depth(const json_t *v);

/* Compact, key-order-preserving serialisation; caller frees. NULL on ENOMEM. */
char *dg_json_dumps(const json_t *v);

/* Member accessors: NULL / default when absent or of another type. */
const char *dg_json_get_str(const json_t *obj, const char *key);
int dg_json_get_i64(const json_t *obj, const char *key, int64_t *out);

/* Check that len bytes are valid UTF-8 (no overlongs, no surrogates). */
int dg_json_utf8_valid(const char *buf, size_t len);

#endif
