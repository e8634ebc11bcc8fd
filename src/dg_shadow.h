/* dg_shadow - the device shadow document model (AWS IoT Device Shadow
 * semantics), shared by deltagate-shadowd (authoritative copy) and the
 * gateway (mirror): one implementation of the merge, delta and version rules.
 *
 * Document: {"state":{"desired":{...},"reported":{...}},
 *            "metadata":{"desired":{...},"reported":{...}},
 *            "version":N,"timestamp":T}
 * metadata mirrors the state tree and holds {"timestamp":T} at each leaf
 * (arrays are leaves). Timestamps are Unix seconds, supplied by the caller.
 *
 * Not thread-safe; no callbacks. All json_t returned are new references.
 */
#ifndef DG_SHADOW_H
#define DG_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dg_err.h"

typedef struct dg_shadow dg_shadow;

typedef struct dg_shadow_limits {
	size_t max_doc_bytes;  /* merged desired+reported, serialised: 8192 */
	size_t max_request_bytes; /* request payload: 65536 */
	int max_depth;         /* nesting of desired/reported values: 6 */
	size_t max_token_bytes;   /* clientToken: 64 */
} dg_shadow_limits;

/* The defaults above. */
void dg_shadow_limits_default(dg_shadow_limits *lim);

/* An empty shadow (version 0, no state): not yet "existing". */
dg_shadow *dg_shadow_new(void);
void dg_shadow_free(dg_shadow *sh);

/* Load a persisted document (as made by dg_shadow_to_json). NULL and *err
 * = DG_ERR_JSON / DG_ERR_JSON_TYPE when it is not a valid document. */
dg_shadow *dg_shadow_from_json(const char *text, size_t len, dg_err *err);
/* Persisted form: the full document, compact. Caller frees. */
char *dg_shadow_to_json(const dg_shadow *sh);

int64_t dg_shadow_version(const dg_shadow *sh);
/* 1 once any update has been accepted (version > 0). */
int dg_shadow_exists(const dg_shadow *sh);

/* The full document (state, metadata, version, timestamp). */
json_t *dg_shadow_document(const dg_shadow *sh);
/* The delta state: desired leaves missing from or different from
 * reported, nested paths kept; NULL when empty. */
json_t *dg_shadow_delta_state(const dg_shadow *sh);

/* Outcome of one update request. code 0 = accepted; else 400/409/413 and
 * error is {"code":N,"message":"...","clientToken":"..."} (clientToken only
 * when the request had a usable one). On acceptance: accepted is the
 * update/accepted message (the request's state, metadata of the updated
 * leaves, version, timestamp, clientToken if given); delta is the
 * update/delta message ({"state":<delta>,"metadata":...,"version":N,
 * "timestamp":T}) or NULL if the delta is empty; documents is the
 * update/documents message ({"previous":doc|null,"current":doc,
 * "timestamp":T, "clientToken"?}). */
typedef struct dg_shadow_result {
	int code;
	json_t *error;
	json_t *accepted;
	json_t *delta;
	json_t *documents;
} dg_shadow_result;

/* Apply an update request (payload, len bytes, untrusted) at time now.
 * The pattern's plain-text acknowledgement "jobID:<id> SUCCESS|FAILURE" is
 * accepted as {"state":{"reported":{"job":{"id":..,"status":..}}}}.
 * On rejection the shadow is unchanged. Returns DG_OK (whatever the code;
 * see res->code) or DG_ERR_NOMEM. Release res with dg_shadow_result_clear. */
dg_err dg_shadow_update(dg_shadow *sh, const char *payload, size_t len,
    int64_t now, const dg_shadow_limits *lim, dg_shadow_result *res);
void dg_shadow_result_clear(dg_shadow_result *res);

/* An error message {"code":code,"message":msg[,"clientToken":token]}. */
json_t *dg_shadow_error(int code, const char *msg, const char *client_token);

/* The clientToken of a request payload if it is JSON with a string token
 * of at most lim->max_token_bytes; else NULL. Caller frees. Used for
 * get/delete, whose payload may be empty. */
char *dg_shadow_client_token(const char *payload, size_t len, const dg_shadow_limits *lim);

/* Mirror side (the gateway): replace the whole document with one received
 * on get/accepted or update/documents "current". DG_ERR_JSON_TYPE if doc
 * is not a document; the shadow is unchanged then. */
dg_err dg_shadow_set_document(dg_shadow *sh, const json_t *doc);

#endif
