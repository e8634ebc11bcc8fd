/* Fuzz target: dg_shadow_update on untrusted payloads.
 *
 * The input is split at 0x1e (ASCII record separator) into up to 8 update
 * requests, applied in order to two shadows that already hold some state:
 * one with the default limits, one with tight limits (so that 413, depth
 * and token rejections are reached by small inputs). After each request:
 * - a rejection has a well-formed error and leaves the persisted form
 *   byte-for-byte unchanged;
 * - an acceptance adds 1 to the version, keeps the state within
 *   max_doc_bytes and max_depth, re-serialises and loads back equal (by
 *   from_json and by set_document), and its messages agree with the
 *   document (documents.current, delta).
 * Any broken invariant aborts.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_json.h"
#include "dg_shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEP 0x1e
#define MAX_STEPS 8

static const char *const seed_updates[] = {
	"{\"state\":{\"desired\":{\"fw\":\"2.0\",\"l\":{\"c\":[1,2],\"on\":1}}},\"clientToken\":\"s1\"}",
	"{\"state\":{\"reported\":{\"fw\":\"1.0\",\"l\":{\"on\":1},\"t\":21.5}}}",
	"jobID:seed SUCCESS",
};

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "shadow_fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* The seed state fits the tight limits too. */
static dg_shadow *
seeded(const dg_shadow_limits *lim)
{
	dg_shadow *sh = dg_shadow_new();
	dg_shadow_result res;
	size_t i;

	CHECK(sh != NULL);
	for (i = 0; i < sizeof(seed_updates) / sizeof(seed_updates[0]); i++) {
		CHECK(dg_shadow_update(sh, seed_updates[i], strlen(seed_updates[i]), 10 + (int64_t)i,
		    lim, &res) == DG_OK);
		CHECK(res.code == 0);
		dg_shadow_result_clear(&res);
	}
	return sh;
}

static void
check_accepted(dg_shadow *sh, const dg_shadow_result *res, int64_t before_version,
    const dg_shadow_limits *lim, int64_t now)
{
	json_t *doc = dg_shadow_document(sh), *state, *d, *back_doc, *get;
	char *text;
	dg_shadow *back, *mirror;
	dg_err err;
	const char *sec;
	json_t *v;

	CHECK(doc != NULL);
	CHECK(res->error == NULL && res->accepted != NULL && res->documents != NULL);
	CHECK(dg_shadow_exists(sh));
	CHECK(dg_shadow_version(sh) == before_version + 1);
	CHECK(json_integer_value(json_object_get(res->accepted, "version")) == before_version + 1);
	CHECK(json_integer_value(json_object_get(doc, "timestamp")) == now);

	/* within limits */
	state = json_object_get(doc, "state");
	CHECK(json_dumpb(state, NULL, 0, JSON_COMPACT) <= lim->max_doc_bytes);
	json_object_foreach(state, sec, v) {
		CHECK(strcmp(sec, "desired") == 0 || strcmp(sec, "reported") == 0);
		CHECK(json_is_object(v) && json_object_size(v) > 0);
		CHECK(dg_json_depth(v) <= lim->max_depth);
	}

	/* persisted form loads back equal */
	text = dg_shadow_to_json(sh);
	CHECK(text != NULL);
	back = dg_shadow_from_json(text, strlen(text), &err);
	CHECK(back != NULL);
	back_doc = dg_shadow_document(back);
	CHECK(json_equal(doc, back_doc));
	CHECK(dg_shadow_version(back) == dg_shadow_version(sh));
	json_decref(back_doc);
	dg_shadow_free(back);
	free(text);

	/* the mirror side takes the get/accepted message and gets the same */
	get = dg_shadow_get_accepted(sh, "g", now);
	CHECK(get != NULL);
	mirror = dg_shadow_new();
	CHECK(mirror != NULL);
	CHECK(dg_shadow_set_document(mirror, get) == DG_OK);
	back_doc = dg_shadow_document(mirror);
	json_object_set_new(back_doc, "timestamp", json_integer(now));
	CHECK(json_equal(doc, back_doc));
	json_decref(back_doc);
	json_decref(get);
	dg_shadow_free(mirror);

	/* messages agree with the document */
	json_object_del(doc, "timestamp");
	CHECK(json_equal(json_object_get(res->documents, "current"), doc));
	d = dg_shadow_delta_state(sh);
	if (res->delta) {
		CHECK(d != NULL);
		CHECK(json_equal(json_object_get(res->delta, "state"), d));
		CHECK(json_is_object(json_object_get(res->delta, "metadata")));
	}
	json_decref(d);
	json_decref(doc);
}

static void
step(dg_shadow *sh, const char *p, size_t len, const dg_shadow_limits *lim, int64_t now)
{
	dg_shadow_result res;
	int64_t ver = dg_shadow_version(sh);
	char *before = dg_shadow_to_json(sh), *after, *tok;

	CHECK(before != NULL);
	CHECK(dg_shadow_update(sh, p, len, now, lim, &res) == DG_OK);
	CHECK(res.code == 0 || res.code == 400 || res.code == 409 || res.code == 413);
	if (res.code != 0) {
		CHECK(res.error != NULL && res.accepted == NULL && res.delta == NULL &&
		    res.documents == NULL);
		CHECK(json_integer_value(json_object_get(res.error, "code")) == res.code);
		CHECK(json_is_string(json_object_get(res.error, "message")));
		after = dg_shadow_to_json(sh);
		CHECK(after != NULL && strcmp(before, after) == 0);
		free(after);
	} else {
		check_accepted(sh, &res, ver, lim, now);
	}
	dg_shadow_result_clear(&res);
	free(before);
	/* never crashes, never returns an over-long token */
	tok = dg_shadow_client_token(p, len, lim);
	CHECK(tok == NULL || strlen(tok) <= lim->max_token_bytes);
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dg_shadow_limits def, tight;
	dg_shadow *a, *b;
	size_t start = 0, i;
	int steps = 0;

	dg_shadow_limits_default(&def);
	tight = def;
	tight.max_doc_bytes = 256;
	tight.max_depth = 3;
	tight.max_token_bytes = 8;
	tight.max_request_bytes = 1024;
	a = seeded(&def);
	b = seeded(&tight);
	for (i = 0; i <= size && steps < MAX_STEPS; i++) {
		if (i == size || data[i] == SEP) {
			const char *p = (const char *)data + start;

			step(a, p, i - start, &def, 100 + steps);
			step(b, p, i - start, &tight, 100 + steps);
			steps++;
			start = i + 1;
		}
	}
	dg_shadow_free(a);
	dg_shadow_free(b);
	return 0;
}
