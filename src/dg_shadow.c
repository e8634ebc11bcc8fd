/* dg_shadow - the device shadow document model (AWS IoT Device Shadow).
 *
 * The state and metadata trees are kept as jansson objects of the same
 * shape. An update is validated completely, then merged into copies of the
 * sections it touches; the shadow is swapped to the copies only once every
 * check passed and every message was built, so a rejection (or ENOMEM)
 * leaves it as it was.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_json.h"
#include "dg_shadow.h"

/* Persisted documents: metadata can be many times the state's size (a
 * {"timestamp":T} per array element), so allow far more than max_doc_bytes. */
#define LOAD_MAX_BYTES (4u << 20)
#define LOAD_MAX_DEPTH 64
/* Requests are parsed this much deeper than allowed so that a too-deep
 * request still gets its clientToken echoed in the 400. */
#define PARSE_DEPTH_SLACK 16

#define ACK_PREFIX "jobID:"

struct dg_shadow {
	json_t *state;     /* {"desired"?:{..},"reported"?:{..}}, never empty sections */
	json_t *meta;      /* mirror of state */
	int64_t version;
	int64_t timestamp; /* of the last accepted update or delete */
	int exists;
	/* clientTokens of the last accepted updates (a ring, oldest first
	 * from tok_next): a request carrying one again is a replay */
	char *tokens[DG_SHADOW_TOKENS];
	unsigned tok_next;
};

static void
tokens_clear(dg_shadow *sh)
{
	unsigned i;

	for (i = 0; i < DG_SHADOW_TOKENS; i++) {
		free(sh->tokens[i]);
		sh->tokens[i] = NULL;
	}
	sh->tok_next = 0;
}

static int
token_seen(const dg_shadow *sh, const char *token)
{
	unsigned i;

	for (i = 0; i < DG_SHADOW_TOKENS; i++)
		if (sh->tokens[i] && strcmp(sh->tokens[i], token) == 0)
			return 1;
	return 0;
}

/* -1 on ENOMEM (the ring unchanged) */
static int
token_add(dg_shadow *sh, const char *token)
{
	char *c = strdup(token);

	if (!c)
		return -1;
	free(sh->tokens[sh->tok_next]);
	sh->tokens[sh->tok_next] = c;
	sh->tok_next = (sh->tok_next + 1) % DG_SHADOW_TOKENS;
	return 0;
}

static const char *const sections[] = { "desired", "reported" };

void
dg_shadow_limits_default(dg_shadow_limits *lim)
{
	lim->max_doc_bytes = 8192;
	lim->max_request_bytes = 65536;
	lim->max_depth = 6;
	lim->max_token_bytes = 64;
}

dg_shadow *
dg_shadow_new(void)
{
	dg_shadow *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return NULL;
	sh->state = json_object();
	sh->meta = json_object();
	if (!sh->state || !sh->meta) {
		dg_shadow_free(sh);
		return NULL;
	}
	return sh;
}

void
dg_shadow_free(dg_shadow *sh)
{
	if (!sh)
		return;
	tokens_clear(sh);
	json_decref(sh->state);
	json_decref(sh->meta);
	free(sh);
}

int64_t
dg_shadow_version(const dg_shadow *sh)
{
	return sh->version;
}

int
dg_shadow_exists(const dg_shadow *sh)
{
	return sh->exists;
}

/* Set key to v (stolen), failing on a NULL v: lets builders chain. */
static int
put(json_t *obj, const char *key, json_t *v)
{
	if (!v)
		return -1;
	return json_object_set_new(obj, key, v);
}

static int
put_token(json_t *obj, const char *token)
{
	return token ? put(obj, "clientToken", json_string(token)) : 0;
}

/* The metadata mirror of v: objects and arrays keep their shape, every
 * other value (null included: a deletion in a request) becomes
 * {"timestamp":now}. */
static json_t *
meta_for(const json_t *v, int64_t now)
{
	json_t *out, *m;
	const char *k;
	size_t i;

	if (json_is_object(v)) {
		if (!(out = json_object()))
			return NULL;
		json_object_foreach((json_t *)v, k, m) {
			if (put(out, k, meta_for(m, now)) != 0)
				goto fail;
		}
		return out;
	}
	if (json_is_array(v)) {
		if (!(out = json_array()))
			return NULL;
		json_array_foreach(v, i, m) {
			if (json_array_append_new(out, meta_for(m, now)) != 0)
				goto fail;
		}
		return out;
	}
	if (!(out = json_object()))
		return NULL;
	if (put(out, "timestamp", json_integer(now)) != 0)
		goto fail;
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* Merge the request section src into dst and its metadata dmeta (both
 * objects, owned by the caller). 0, or -1 on ENOMEM. */
static int
merge(json_t *dst, json_t *dmeta, const json_t *src, int64_t now)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)src, k, v) {
		if (json_is_null(v)) {
			json_object_del(dst, k);
			json_object_del(dmeta, k);
		} else if (json_is_object(v)) {
			json_t *d = json_object_get(dst, k);
			json_t *m = json_object_get(dmeta, k);

			if (!json_is_object(d) || !json_is_object(m)) {
				/* new, or a leaf becoming an object: start empty so
				 * that nulls inside v delete nothing */
				d = json_object();
				m = json_object();
				if (put(dst, k, d) != 0) {
					json_decref(m);
					return -1;
				}
				if (put(dmeta, k, m) != 0)
					return -1;
			}
			if (merge(d, m, v, now) != 0)
				return -1;
		} else {
			if (put(dst, k, json_deep_copy(v)) != 0 ||
			    put(dmeta, k, meta_for(v, now)) != 0)
				return -1;
		}
	}
	return 0;
}

/* 1 if a null occurs inside an array anywhere in v (AWS rejects those). */
static int
null_in_array(const json_t *v, int in_array)
{
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_null(v))
		return in_array;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m) {
			if (null_in_array(m, in_array))
				return 1;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			if (null_in_array(m, 1))
				return 1;
		}
	}
	return 0;
}

/* JSON equality with one number type (RFC 8259): 1 and 1.0 are the same
 * value, 1 and "1" or true are not. */
static int
same(const json_t *a, const json_t *b)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_integer(a) && json_is_integer(b))
		return json_integer_value(a) == json_integer_value(b);
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_is_object(a) && json_is_object(b)) {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, k, v) {
			json_t *w = json_object_get(b, k);

			if (!w || !same(v, w))
				return 0;
		}
		return 1;
	}
	if (json_is_array(a) && json_is_array(b)) {
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach(a, i, v) {
			if (!same(v, json_array_get(b, i)))
				return 0;
		}
		return 1;
	}
	return json_equal((json_t *)a, (json_t *)b);
}

/* Delta of the desired section des (metadata dmeta) against reported rep
 * (may be NULL) into out and outmeta. 0, or -1 on ENOMEM. */
static int
delta_of(const json_t *des, const json_t *dmeta, const json_t *rep,
    json_t *out, json_t *outmeta)
{
	const char *k;
	json_t *dv;

	json_object_foreach((json_t *)des, k, dv) {
		json_t *rv = json_object_get(rep, k);
		json_t *mv = json_object_get(dmeta, k);

		if (json_is_object(dv) && json_is_object(rv)) {
			json_t *sub = json_object(), *subm = json_object();

			if (!sub || !subm || delta_of(dv, mv, rv, sub, subm) != 0) {
				json_decref(sub);
				json_decref(subm);
				return -1;
			}
			if (json_object_size(sub) == 0) {
				json_decref(sub);
				json_decref(subm);
				continue;
			}
			if (put(out, k, sub) != 0) {
				json_decref(subm);
				return -1;
			}
			if (put(outmeta, k, subm) != 0)
				return -1;
			continue;
		}
		if (rv && same(dv, rv))
			continue;
		if (put(out, k, json_deep_copy(dv)) != 0 ||
		    put(outmeta, k, mv ? json_deep_copy(mv) : json_object()) != 0)
			return -1;
	}
	return 0;
}

/* Delta of a state/metadata pair: 0 with dstate and dmeta (NULL when the
 * delta is empty), or -1 on ENOMEM. */
static int
delta_pair(const json_t *state, const json_t *meta, json_t **dstate, json_t **dmeta)
{
	const json_t *des = json_object_get(state, "desired");
	json_t *out = NULL, *outm = NULL;

	*dstate = *dmeta = NULL;
	if (!des)
		return 0;
	if (!(out = json_object()) || !(outm = json_object()))
		goto fail;
	if (delta_of(des, json_object_get(meta, "desired"),
	    json_object_get(state, "reported"), out, outm) != 0)
		goto fail;
	if (json_object_size(out) == 0) {
		json_decref(out);
		json_decref(outm);
		return 0;
	}
	*dstate = out;
	*dmeta = outm;
	return 0;
fail:
	json_decref(out);
	json_decref(outm);
	return -1;
}

json_t *
dg_shadow_delta_state(const dg_shadow *sh)
{
	json_t *d, *m;

	if (delta_pair(sh->state, sh->meta, &d, &m) != 0)
		return NULL;
	json_decref(m);
	return d;
}

/* {"state","metadata","version"[,"timestamp"]} from deep copies. */
static json_t *
build_doc(const json_t *state, const json_t *meta, int64_t version,
    int with_ts, int64_t ts)
{
	json_t *doc = json_object();

	if (!doc)
		return NULL;
	if (put(doc, "state", json_deep_copy(state)) != 0 ||
	    put(doc, "metadata", json_deep_copy(meta)) != 0 ||
	    put(doc, "version", json_integer(version)) != 0 ||
	    (with_ts && put(doc, "timestamp", json_integer(ts)) != 0)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

json_t *
dg_shadow_document(const dg_shadow *sh)
{
	return build_doc(sh->state, sh->meta, sh->version, 1, sh->timestamp);
}

char *
dg_shadow_to_json(const dg_shadow *sh)
{
	json_t *doc;
	char *s;

	if (sh->exists) {
		doc = dg_shadow_document(sh);
		if (doc && sh->tokens[(sh->tok_next + DG_SHADOW_TOKENS - 1) % DG_SHADOW_TOKENS]) {
			json_t *a = json_array();
			unsigned i;

			for (i = 0; a && i < DG_SHADOW_TOKENS; i++) {
				const char *t = sh->tokens[(sh->tok_next + i) % DG_SHADOW_TOKENS];

				if (t && json_array_append_new(a, json_string(t)) != 0) {
					json_decref(a);
					a = NULL;
				}
			}
			if (!a || put(doc, "clientTokens", a) != 0) {
				json_decref(doc);
				doc = NULL;
			}
		}
	} else {
		doc = json_object();
		if (doc && (put(doc, "version", json_integer(sh->version)) != 0 ||
		    put(doc, "timestamp", json_integer(sh->timestamp)) != 0)) {
			json_decref(doc);
			doc = NULL;
		}
	}
	if (!doc)
		return NULL;
	s = dg_json_dumps(doc);
	json_decref(doc);
	return s;
}

json_t *
dg_shadow_get_accepted(const dg_shadow *sh, const char *client_token, int64_t now)
{
	json_t *doc = dg_shadow_document(sh), *d = NULL, *m = NULL;

	if (!doc)
		return NULL;
	if (delta_pair(sh->state, sh->meta, &d, &m) != 0)
		goto fail;
	json_decref(m);
	if (d && put(json_object_get(doc, "state"), "delta", d) != 0)
		goto fail;
	if (put(doc, "timestamp", json_integer(now)) != 0 ||
	    put_token(doc, client_token) != 0)
		goto fail;
	return doc;
fail:
	json_decref(doc);
	return NULL;
}

dg_err
dg_shadow_delete(dg_shadow *sh, int64_t now, const char *client_token, json_t **accepted)
{
	json_t *msg = NULL, *st = NULL, *me = NULL;

	if (accepted)
		*accepted = NULL;
	if (!sh->exists)
		return DG_ERR_SHADOW_NOT_FOUND;
	if (!(st = json_object()) || !(me = json_object()))
		goto fail;
	if (accepted) {
		if (!(msg = json_object()) ||
		    put(msg, "version", json_integer(sh->version)) != 0 ||
		    put(msg, "timestamp", json_integer(now)) != 0 ||
		    put_token(msg, client_token) != 0)
			goto fail;
		*accepted = msg;
	}
	json_decref(sh->state);
	json_decref(sh->meta);
	sh->state = st;
	sh->meta = me;
	sh->exists = 0;
	sh->timestamp = now;
	return DG_OK;
fail:
	json_decref(msg);
	json_decref(st);
	json_decref(me);
	return DG_ERR_NOMEM;
}

json_t *
dg_shadow_error(int code, const char *msg, const char *client_token)
{
	json_t *e = json_object();

	if (!e)
		return NULL;
	if (put(e, "code", json_integer(code)) != 0 ||
	    put(e, "message", json_string(msg)) != 0 ||
	    put_token(e, client_token) != 0) {
		json_decref(e);
		return NULL;
	}
	return e;
}

void
dg_shadow_result_clear(dg_shadow_result *res)
{
	if (!res)
		return;
	json_decref(res->error);
	json_decref(res->accepted);
	json_decref(res->delta);
	json_decref(res->documents);
	memset(res, 0, sizeof(*res));
}

/* res becomes a rejection; DG_OK, or DG_ERR_NOMEM. */
static dg_err
reject(dg_shadow_result *res, int code, const char *msg, const char *token)
{
	if (!(res->error = dg_shadow_error(code, msg, token)))
		return DG_ERR_NOMEM;
	res->code = code;
	return DG_OK;
}

/* Parse the plain-text acknowledgement into a request object.
 * 1 with *req, 0 if malformed, -1 on ENOMEM. */
static int
parse_ack(const char *p, size_t len, json_t **req)
{
	size_t plen = sizeof(ACK_PREFIX) - 1, i = plen;
	const char *status;
	char id[DG_SHADOW_ACK_ID_MAX + 1];

	*req = NULL;
	while (i < len && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == plen || i - plen > DG_SHADOW_ACK_ID_MAX || i >= len || p[i] != ' ')
		return 0;
	memcpy(id, p + plen, i - plen);
	id[i - plen] = '\0';
	i++;
	if (len - i == 7 && memcmp(p + i, "SUCCESS", 7) == 0)
		status = "SUCCESS";
	else if (len - i == 7 && memcmp(p + i, "FAILURE", 7) == 0)
		status = "FAILURE";
	else
		return 0;
	*req = json_pack("{s:{s:{s:{s:s,s:s}}}}", "state", "reported", "job",
	    "id", id, "status", status);
	return *req ? 1 : -1;
}

/* Replace the sections the request state st names, on copies. 0 with
 * nstate and nmeta, -1 on ENOMEM. */
static int
apply(const dg_shadow *sh, const json_t *st, int64_t now, json_t **nstate, json_t **nmeta)
{
	json_t *ns = json_object(), *nm = json_object(), *s = NULL, *m = NULL;
	size_t i;

	if (!ns || !nm)
		goto fail;
	for (i = 0; i < 2; i++) {
		const char *name = sections[i];
		json_t *r = json_object_get(st, name);
		json_t *cur = json_object_get(sh->state, name);
		json_t *curm = json_object_get(sh->meta, name);

		if (!r) {
			/* untouched: share, never modified in place */
			if (cur && (json_object_set(ns, name, cur) != 0 ||
			    json_object_set(nm, name, curm) != 0))
				goto fail;
			continue;
		}
		if (json_is_null(r))
			continue;
		s = cur ? json_deep_copy(cur) : json_object();
		m = curm ? json_deep_copy(curm) : json_object();
		if (!s || !m || merge(s, m, r, now) != 0)
			goto fail;
		if (json_object_size(s) == 0) {
			json_decref(s);
			json_decref(m);
		} else if (json_object_set_new(ns, name, s) != 0) {
			s = NULL;
			goto fail;
		} else if (json_object_set_new(nm, name, m) != 0) {
			s = m = NULL;
			goto fail;
		}
		s = m = NULL;
	}
	*nstate = ns;
	*nmeta = nm;
	return 0;
fail:
	json_decref(s);
	json_decref(m);
	json_decref(ns);
	json_decref(nm);
	return -1;
}

dg_err
dg_shadow_update(dg_shadow *sh, const char *payload, size_t len,
    int64_t now, const dg_shadow_limits *lim, dg_shadow_result *res)
{
	dg_shadow_limits def;
	json_t *req = NULL, *st, *v, *ns = NULL, *nm = NULL, *dst = NULL, *dme = NULL;
	json_t *accepted = NULL, *delta = NULL, *documents = NULL;
	const char *token = NULL, *k;
	char msg[96];
	int64_t newver;
	dg_err err = DG_OK;
	size_t i;

	memset(res, 0, sizeof(*res));
	if (!lim) {
		dg_shadow_limits_default(&def);
		lim = &def;
	}
	if (len > lim->max_request_bytes) {
		snprintf(msg, sizeof(msg), "Payload exceeds the maximum request size of %zu bytes",
		    lim->max_request_bytes);
		return reject(res, 400, msg, NULL);
	}
	if (len >= sizeof(ACK_PREFIX) - 1 && memcmp(payload, ACK_PREFIX, sizeof(ACK_PREFIX) - 1) == 0) {
		int r = parse_ack(payload, len, &req);

		if (r < 0)
			return DG_ERR_NOMEM;
		if (r == 0)
			return reject(res, 400, "Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE", NULL);
	} else {
		req = dg_json_parse(payload, len, lim->max_request_bytes,
		    lim->max_depth + 2 + PARSE_DEPTH_SLACK, &err, NULL, 0);
		if (!req) {
			if (err == DG_ERR_JSON_UTF8)
				return reject(res, 400, "Unsupported documented encoding; supported encoding is UTF-8", NULL);
			if (err == DG_ERR_JSON_DEPTH) {
				snprintf(msg, sizeof(msg), "JSON contains too many levels of nesting; maximum is %d",
				    lim->max_depth);
				return reject(res, 400, msg, NULL);
			}
			return reject(res, 400, "Invalid JSON", NULL);
		}
	}
	if (!json_is_object(req)) {
		err = reject(res, 400, "Invalid JSON", NULL);
		goto done;
	}
	if ((v = json_object_get(req, "clientToken"))) {
		if (!json_is_string(v) || json_string_length(v) > lim->max_token_bytes) {
			err = reject(res, 400, "Invalid clientToken", NULL);
			goto done;
		}
		token = json_string_value(v);
	}
	/* request object + state object + the section */
	if (dg_json_depth(req) > lim->max_depth + 2) {
		snprintf(msg, sizeof(msg), "JSON contains too many levels of nesting; maximum is %d",
		    lim->max_depth);
		err = reject(res, 400, msg, token);
		goto done;
	}
	if ((v = json_object_get(req, "version")) &&
	    (!json_is_integer(v) || json_integer_value(v) < 0)) {
		err = reject(res, 400, "Invalid version", token);
		goto done;
	}
	if (!(st = json_object_get(req, "state"))) {
		err = reject(res, 400, "Missing required node: state", token);
		goto done;
	}
	if (!json_is_object(st)) {
		err = reject(res, 400, "State node must be an object", token);
		goto done;
	}
	json_object_foreach(st, k, v) {
		if (strcmp(k, "desired") != 0 && strcmp(k, "reported") != 0) {
			err = reject(res, 400, "State contains an invalid node", token);
			goto done;
		}
	}
	for (i = 0; i < 2; i++) {
		v = json_object_get(st, sections[i]);
		if (v && !json_is_object(v) && !json_is_null(v)) {
			err = reject(res, 400, i == 0 ? "Desired node must be an object" :
			    "Reported node must be an object", token);
			goto done;
		}
		if (null_in_array(v, 0)) {
			err = reject(res, 400, "Arrays cannot contain null values", token);
			goto done;
		}
	}
	if (token && sh->exists && token_seen(sh, token)) {
		/* the same request again (a publisher's at-least-once retry
		 * after a crash): accepted again, applied once */
		if (!(accepted = json_object()) ||
		    json_object_set(accepted, "state", st) != 0 ||
		    put(accepted, "version", json_integer(sh->version)) != 0 ||
		    put(accepted, "timestamp", json_integer(sh->timestamp)) != 0 ||
		    put_token(accepted, token) != 0)
			goto nomem;
		res->code = 0;
		res->replayed = 1;
		res->accepted = accepted;
		accepted = NULL;
		goto done;
	}
	if ((v = json_object_get(req, "version")) && json_integer_value(v) != sh->version) {
		err = reject(res, 409, "Version conflict", token);
		goto done;
	}
	if (sh->version >= DG_SHADOW_VERSION_MAX) {
		/* never reached in practice: versions are not allowed to wrap */
		err = reject(res, 409, "Version conflict", token);
		goto done;
	}
	newver = sh->version + 1;

	if (apply(sh, st, now, &ns, &nm) != 0)
		goto nomem;
	if (json_dumpb(ns, NULL, 0, JSON_COMPACT) > lim->max_doc_bytes) {
		err = reject(res, 413, "The payload exceeds the maximum size allowed", token);
		goto done;
	}

	/* every message, before touching the shadow */
	if (!(accepted = json_object()) ||
	    json_object_set(accepted, "state", st) != 0 ||
	    put(accepted, "metadata", meta_for(st, now)) != 0 ||
	    put(accepted, "version", json_integer(newver)) != 0 ||
	    put(accepted, "timestamp", json_integer(now)) != 0 ||
	    put_token(accepted, token) != 0)
		goto nomem;
	if (json_is_object(json_object_get(st, "desired"))) {
		if (delta_pair(ns, nm, &dst, &dme) != 0)
			goto nomem;
		if (dst) {
			if (!(delta = json_object()))
				goto nomem;
			if (put(delta, "state", dst) != 0) {
				dst = NULL;
				json_decref(dme);
				goto nomem;
			}
			dst = NULL;
			if (put(delta, "metadata", dme) != 0) {
				dme = NULL;
				goto nomem;
			}
			dme = NULL;
			if (put(delta, "version", json_integer(newver)) != 0 ||
			    put(delta, "timestamp", json_integer(now)) != 0 ||
			    put_token(delta, token) != 0)
				goto nomem;
		}
	}
	if (!(documents = json_object()) ||
	    put(documents, "previous", sh->exists ?
	        build_doc(sh->state, sh->meta, sh->version, 0, 0) : json_null()) != 0 ||
	    put(documents, "current", build_doc(ns, nm, newver, 0, 0)) != 0 ||
	    put(documents, "timestamp", json_integer(now)) != 0 ||
	    put_token(documents, token) != 0)
		goto nomem;

	json_decref(sh->state);
	json_decref(sh->meta);
	sh->state = ns;
	sh->meta = nm;
	ns = nm = NULL;
	if (token && token_add(sh, token) != 0)
		goto nomem;
	sh->version = newver;
	sh->timestamp = now;
	sh->exists = 1;
	res->code = 0;
	res->accepted = accepted;
	res->delta = delta;
	res->documents = documents;
	accepted = delta = documents = NULL;
	goto done;
nomem:
	err = DG_ERR_NOMEM;
	json_decref(res->error);
	memset(res, 0, sizeof(*res));
done:
	json_decref(dst);
	json_decref(dme);
	json_decref(accepted);
	json_decref(delta);
	json_decref(documents);
	json_decref(ns);
	json_decref(nm);
	json_decref(req);
	return err;
}

char *
dg_shadow_client_token(const char *payload, size_t len, const dg_shadow_limits *lim)
{
	dg_shadow_limits def;
	json_t *req, *v;
	char *out = NULL;
	dg_err err;

	if (!lim) {
		dg_shadow_limits_default(&def);
		lim = &def;
	}
	if (!payload || len == 0)
		return NULL;
	req = dg_json_parse(payload, len, lim->max_request_bytes,
	    lim->max_depth + 2 + PARSE_DEPTH_SLACK, &err, NULL, 0);
	if (!req)
		return NULL;
	v = json_object_get(req, "clientToken");
	if (json_is_string(v) && json_string_length(v) <= lim->max_token_bytes)
		out = strdup(json_string_value(v));
	json_decref(req);
	return out;
}

/* 1 if m is exactly the metadata mirror of the state value v. */
static int
mirrors(const json_t *v, const json_t *m)
{
	const char *k;
	json_t *e;
	size_t i;

	if (json_is_object(v)) {
		if (!json_is_object(m) || json_object_size(m) != json_object_size(v))
			return 0;
		json_object_foreach((json_t *)v, k, e) {
			if (!mirrors(e, json_object_get(m, k)))
				return 0;
		}
		return 1;
	}
	if (json_is_array(v)) {
		if (!json_is_array(m) || json_array_size(m) != json_array_size(v))
			return 0;
		json_array_foreach(v, i, e) {
			if (!mirrors(e, json_array_get(m, i)))
				return 0;
		}
		return 1;
	}
	if (json_is_null(v))
		return 0;
	return json_is_object(m) && json_object_size(m) == 1 &&
	    json_is_integer(json_object_get(m, "timestamp"));
}

/* Check a "state" or "metadata" container: only desired/reported objects
 * (and an ignored delta). */
static int
valid_container(const json_t *c)
{
	const char *k;
	json_t *v;

	if (!json_is_object(c))
		return 0;
	json_object_foreach((json_t *)c, k, v) {
		if (strcmp(k, "delta") == 0)
			continue;
		if ((strcmp(k, "desired") != 0 && strcmp(k, "reported") != 0) ||
		    !json_is_object(v))
			return 0;
	}
	return 1;
}

/* 1 if a null occurs anywhere in v (state never holds null). */
static int
has_null(const json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_null(v))
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m) {
			if (has_null(m))
				return 1;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			if (has_null(m))
				return 1;
		}
	}
	return 0;
}

/* Validate doc and build the normalised state, metadata, version,
 * timestamp and existence into out (whose state/meta must be NULL).
 * tombstone_ok: a document without state and metadata is a deleted
 * shadow. DG_OK, DG_ERR_JSON_TYPE, DG_ERR_NOMEM. */
static dg_err
load_doc(const json_t *doc, int tombstone_ok, dg_shadow *out)
{
	const json_t *state, *meta, *v;
	const char *k;
	size_t i;

	if (!json_is_object(doc))
		return DG_ERR_JSON_TYPE;
	json_object_foreach((json_t *)doc, k, v) {
		if (strcmp(k, "state") != 0 && strcmp(k, "metadata") != 0 &&
		    strcmp(k, "version") != 0 && strcmp(k, "timestamp") != 0 &&
		    strcmp(k, "clientToken") != 0 && !(tombstone_ok && strcmp(k, "clientTokens") == 0))
			return DG_ERR_JSON_TYPE;
	}
	if ((v = json_object_get(doc, "clientTokens"))) {
		size_t n;
		json_t *t;

		if (!json_is_array(v) || json_array_size(v) > DG_SHADOW_TOKENS)
			return DG_ERR_JSON_TYPE;
		json_array_foreach(v, n, t) {
			if (!json_is_string(t) || json_string_length(t) > 256)
				return DG_ERR_JSON_TYPE;
			if (token_add(out, json_string_value(t)) != 0)
				return DG_ERR_NOMEM;
		}
	}
	v = json_object_get(doc, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > DG_SHADOW_VERSION_MAX)
		return DG_ERR_JSON_TYPE;
	out->version = json_integer_value(v);
	out->timestamp = 0;
	if ((v = json_object_get(doc, "timestamp"))) {
		if (!json_is_integer(v))
			return DG_ERR_JSON_TYPE;
		out->timestamp = json_integer_value(v);
	}
	state = json_object_get(doc, "state");
	meta = json_object_get(doc, "metadata");
	if (!state && !meta && tombstone_ok) {
		out->exists = 0;
		out->state = json_object();
		out->meta = json_object();
		return out->state && out->meta ? DG_OK : DG_ERR_NOMEM;
	}
	if (!valid_container(state) || !valid_container(meta) || out->version == 0)
		return DG_ERR_JSON_TYPE;
	for (i = 0; i < 2; i++) {
		const json_t *s = json_object_get(state, sections[i]);
		const json_t *m = json_object_get(meta, sections[i]);

		if (!s && !m)
			continue;
		if (!s || !m || has_null(s) || !mirrors(s, m))
			return DG_ERR_JSON_TYPE;
	}
	out->exists = 1;
	if (!(out->state = json_object()) || !(out->meta = json_object()))
		return DG_ERR_NOMEM;
	for (i = 0; i < 2; i++) {
		const json_t *s = json_object_get(state, sections[i]);
		const json_t *m = json_object_get(meta, sections[i]);

		if (!s || json_object_size(s) == 0)
			continue; /* an empty section is omitted */
		if (put(out->state, sections[i], json_deep_copy(s)) != 0 ||
		    put(out->meta, sections[i], json_deep_copy(m)) != 0)
			return DG_ERR_NOMEM;
	}
	return DG_OK;
}

dg_shadow *
dg_shadow_from_json(const char *text, size_t len, dg_err *err)
{
	dg_shadow *sh = NULL;
	json_t *doc;

	doc = dg_json_parse(text, len, LOAD_MAX_BYTES, LOAD_MAX_DEPTH, err, NULL, 0);
	if (!doc) {
		*err = DG_ERR_JSON;
		return NULL;
	}
	if (!(sh = calloc(1, sizeof(*sh)))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((*err = load_doc(doc, 1, sh)) != DG_OK)
		goto fail;
	json_decref(doc);
	return sh;
fail:
	json_decref(doc);
	dg_shadow_free(sh);
	return NULL;
}

dg_err
dg_shadow_set_document(dg_shadow *sh, const json_t *doc)
{
	dg_shadow tmp = { 0 };
	dg_err err = load_doc(doc, 0, &tmp);

	if (err != DG_OK) {
		json_decref(tmp.state);
		json_decref(tmp.meta);
		return err;
	}
	json_decref(sh->state);
	json_decref(sh->meta);
	/* the replay ring is this shadow's, not the document's */
	memcpy(tmp.tokens, sh->tokens, sizeof(tmp.tokens));
	tmp.tok_next = sh->tok_next;
	*sh = tmp;
	return DG_OK;
}
