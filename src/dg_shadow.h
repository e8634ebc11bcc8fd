/* dg_shadow - the device shadow document model (AWS IoT Device Shadow
 * semantics), shared by deltagate-shadowd (authoritative copy) and the
 * gateway (mirror): one implementation of the merge, delta and version rules.
 *
 * Document: {"state":{"desired":{...},"reported":{...}},
 *            "metadata":{"desired":{...},"reported":{...}},
 *            "version":N,"timestamp":T}
 * A section (desired, reported) is present only when it is not empty.
 * metadata mirrors the state tree: each scalar leaf has {"timestamp":T};
 * an array (a leaf for merging: replaced whole) has, as AWS IoT does, an
 * array of its elements' metadata, all with the time the array was written
 * ("colors":["R","G"] -> "colors":[{"timestamp":T},{"timestamp":T}]).
 * Timestamps are Unix seconds, supplied by the caller.
 *
 * Not thread-safe; no callbacks. All json_t returned are new references
 * the caller owns (json_decref) and may modify.
 */
#ifndef DG_SHADOW_H
#define DG_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dg_err.h"

typedef struct dg_shadow dg_shadow;

typedef struct dg_shadow_limits {
	/* state {"desired":..,"reported":..} after the merge, compact JSON
	 * (metadata does not count, as in AWS): 8192; over it -> 413 */
	size_t max_doc_bytes;
	size_t max_request_bytes; /* request payload: 65536; over it -> 400 */
	/* container nesting of a desired/reported section, the section object
	 * itself counting 1 (6 = six levels of keys, as AWS): 6 */
	int max_depth;
	size_t max_token_bytes;   /* clientToken: 64 */
} dg_shadow_limits;

/* Largest id of the plain-text acknowledgement "jobID:<id> SUCCESS". */
#define DG_SHADOW_ACK_ID_MAX 64
/* Versions stop here (2^53-1, exact in every JSON reader). */
#define DG_SHADOW_VERSION_MAX INT64_C(9007199254740991)

/* The defaults above. */
void dg_shadow_limits_default(dg_shadow_limits *lim);

/* An empty shadow (version 0, no state): not yet "existing". NULL on ENOMEM. */
dg_shadow *dg_shadow_new(void);
void dg_shadow_free(dg_shadow *sh);

/* Load a persisted document (as made by dg_shadow_to_json), including the
 * tombstone of a deleted shadow ({"version":N,"timestamp":T}). NULL and
 * *err = DG_ERR_JSON (not JSON, over 4 MiB or nested over 64) /
 * DG_ERR_JSON_TYPE (JSON but not a valid document: see set_document) /
 * DG_ERR_NOMEM. */
dg_shadow *dg_shadow_from_json(const char *text, size_t len, dg_err *err);
/* Persisted form: the full document, compact; a shadow that does not exist
 * is {"version":N,"timestamp":T} so that its version survives a delete.
 * Caller frees. NULL on ENOMEM. */
char *dg_shadow_to_json(const dg_shadow *sh);

int64_t dg_shadow_version(const dg_shadow *sh);
/* 1 when the shadow has a document: an update was accepted since it was
 * created or last deleted (a deleted shadow keeps its version). */
int dg_shadow_exists(const dg_shadow *sh);

/* The full document (state, metadata, version, timestamp = time of the last
 * accepted update). For a shadow that does not exist: empty state and
 * metadata. NULL on ENOMEM. */
json_t *dg_shadow_document(const dg_shadow *sh);
/* The delta state: desired leaves missing from or different from
 * reported (JSON values: 1 equals 1.0 but not "1" or true), nested paths kept,
 * arrays whole; NULL when empty (or ENOMEM). */
json_t *dg_shadow_delta_state(const dg_shadow *sh);

/* The get/accepted message: the document with "state"."delta" when the
 * delta is not empty, "timestamp" = now (AWS: time of the response), and
 * "clientToken" when client_token is not NULL. Call only when
 * dg_shadow_exists (else reply 404). NULL on ENOMEM. */
json_t *dg_shadow_get_accepted(const dg_shadow *sh, const char *client_token, int64_t now);

/* Delete the shadow's document; the version is kept (AWS: the next update
 * makes version+1). DG_ERR_SHADOW_NOT_FOUND when it does not exist (reply
 * 404; nothing changes), DG_ERR_NOMEM. On DG_OK, *accepted (if accepted is
 * not NULL) is the delete/accepted message {"version":N,"timestamp":now
 * [,"clientToken"]}. */
dg_err dg_shadow_delete(dg_shadow *sh, int64_t now, const char *client_token, json_t **accepted);

/* Outcome of one update request. code 0 = accepted; else 400/409/413 and
 * error is {"code":N,"message":"...","clientToken":"..."} (clientToken only
 * when the request had a valid one). On acceptance:
 * - accepted: the update/accepted message {"state":<the request's state, as
 *   sent, nulls included>,"metadata":<its mirror, every leaf and null at
 *   now>,"version":N,"timestamp":now[,"clientToken"]};
 * - delta: the update/delta message {"state":<whole delta>,"metadata":
 *   <desired metadata of the delta leaves>,"version":N,"timestamp":now
 *   [,"clientToken"]}, or NULL. As AWS, it is made only when the request
 *   has a "desired" object and the resulting delta is not empty (a device
 *   reporting progress does not get the pending delta again);
 * - documents: the update/documents message {"previous":doc|null,
 *   "current":doc,"timestamp":now[,"clientToken"]}, doc being
 *   {"state","metadata","version"} (AWS's shape); previous is null when
 *   the shadow did not exist before. */
typedef struct dg_shadow_result {
	int code;
	int replayed;  /* accepted as a repeat of a recent request (same
	                * clientToken): nothing applied, no delta or documents */
	json_t *error;
	json_t *accepted;
	json_t *delta;
	json_t *documents;
} dg_shadow_result;

/* Apply an update request (payload, len bytes, untrusted) at time now;
 * lim NULL means the defaults. Rules (AWS IoT's, messages as AWS words them):
 * objects merge recursively, arrays and scalars replace, null deletes the
 * key and its metadata ("desired":null deletes the whole section); unknown
 * top-level members are ignored (as AWS); each acceptance adds 1 to the
 * version. 400: payload over max_request_bytes, not UTF-8, not JSON, not an
 * object, nesting over max_depth in a section, clientToken not a string or
 * over max_token_bytes, version not an integer >= 0, state missing or not an
 * object, state members other than desired/reported, desired/reported not an
 * object or null, null inside an array, a malformed acknowledgement.
 * 409: version given and != the current one. 413: merged state over
 * max_doc_bytes. {"state":{}} is accepted (creates the shadow, version+1).
 * The pattern's plain-text acknowledgement "jobID:<id> SUCCESS|FAILURE"
 * (exactly that: <id> 1..DG_SHADOW_ACK_ID_MAX printable ASCII bytes
 * without spaces, one space, no trailing bytes) is accepted as
 * {"state":{"reported":{"job":{"id":"<id>","status":"SUCCESS|FAILURE"}}}};
 * a payload starting with "jobID:" otherwise is 400.
 * On rejection the shadow is unchanged. Returns DG_OK (whatever the code;
 * see res->code) or DG_ERR_NOMEM (shadow unchanged, res empty). Release res
 * with dg_shadow_result_clear. */
/* The clientTokens of the last DG_SHADOW_TOKENS accepted updates are kept
 * (and persisted by dg_shadow_to_json): a valid request carrying one of them
 * again is a publisher's retry - accepted (res->replayed, the accepted
 * message with the current version) without being applied again. */
#define DG_SHADOW_TOKENS 16
dg_err dg_shadow_update(dg_shadow *sh, const char *payload, size_t len,
    int64_t now, const dg_shadow_limits *lim, dg_shadow_result *res);
void dg_shadow_result_clear(dg_shadow_result *res);

/* An error message {"code":code,"message":msg[,"clientToken":token]}.
 * NULL on ENOMEM. */
json_t *dg_shadow_error(int code, const char *msg, const char *client_token);

/* The clientToken of a request payload if it is JSON with a string token
 * of at most lim->max_token_bytes (lim NULL: defaults); else NULL. Caller
 * frees. Used for get/delete, whose payload may be empty. */
char *dg_shadow_client_token(const char *payload, size_t len, const dg_shadow_limits *lim);

/* Mirror side (the gateway): replace the whole document with one received
 * on get/accepted or update/documents "current". A document is an object
 * with "state" and "metadata" objects whose members are only "desired" and
 * "reported" objects (a "delta" member is ignored), metadata mirroring
 * state exactly, no null in state, "version" an integer in
 * 1..DG_SHADOW_VERSION_MAX, optional integer "timestamp" (else 0) and
 * "clientToken" (ignored). DG_ERR_JSON_TYPE if doc is not a document,
 * DG_ERR_NOMEM; the shadow is unchanged then. doc is not modified. */
dg_err dg_shadow_set_document(dg_shadow *sh, const json_t *doc);

#endif
