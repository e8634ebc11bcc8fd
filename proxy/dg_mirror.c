/* dg_mirror - the gateway's local mirror of its devices' upstream shadows. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dg_json.h"
#include "dg_log.h"
#include "dg_mirror.h"
#include "dg_shadow.h"

const char dg_mirror_migration_sql[] =
	"CREATE TABLE mirror ("
	" id TEXT PRIMARY KEY,"
	" doc TEXT NOT NULL,"
	" updated INTEGER NOT NULL) WITHOUT ROWID;";

struct dg_mirror {
	dg_store *store;
	dg_mqtt *mqtt;
	const dg_topic *topic;
	dg_mirror_cb cb;
	void *arg;
	char **ids;
	size_t nids;
	dg_shadow_limits lim;
};

static const char *leaves[] = {
	"update/delta", "update/accepted", "update/rejected", "update/documents",
	"get/accepted", "get/rejected",
};

dg_mirror *
dg_mirror_new(dg_store *store, dg_mqtt *mqtt, const dg_topic *topic,
    dg_mirror_cb cb, void *arg, dg_err *err)
{
	dg_mirror *mi = calloc(1, sizeof(*mi));

	if (!mi) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	mi->store = store;
	mi->mqtt = mqtt;
	mi->topic = topic;
	mi->cb = cb;
	mi->arg = arg;
	dg_shadow_limits_default(&mi->lim);
	/* the mirror accepts what upstream accepted: no tighter limits */
	mi->lim.max_doc_bytes = 1 << 24;
	mi->lim.max_request_bytes = 1 << 24;
	mi->lim.max_depth = 64;
	*err = DG_OK;
	return mi;
}

void
dg_mirror_free(dg_mirror *mi)
{
	size_t i;

	if (!mi)
		return;
	for (i = 0; i < mi->nids; i++)
		free(mi->ids[i]);
	free(mi->ids);
	free(mi);
}

dg_err
dg_mirror_add(dg_mirror *mi, const char *id)
{
	char t[512];
	char **ids;
	size_t i;
	dg_err err;

	for (i = 0; i < mi->nids; i++)
		if (strcmp(mi->ids[i], id) == 0)
			return DG_OK;
	if (!(ids = realloc(mi->ids, (mi->nids + 1) * sizeof(*ids))))
		return DG_ERR_NOMEM;
	mi->ids = ids;
	if (!(ids[mi->nids] = strdup(id)))
		return DG_ERR_NOMEM;
	mi->nids++;
	for (i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
		if ((err = dg_topic_build(mi->topic, id, leaves[i], t, sizeof(t))) != DG_OK ||
		    (err = dg_mqtt_subscribe(mi->mqtt, t, 1)) != DG_OK)
			return err;
	}
	if (dg_mqtt_is_connected(mi->mqtt) &&
	    dg_topic_build(mi->topic, id, "get", t, sizeof(t)) == DG_OK)
		dg_mqtt_publish(mi->mqtt, t, "{}", 2, 1, 0, NULL, NULL);
	return DG_OK;
}

void
dg_mirror_resync(dg_mirror *mi)
{
	char t[512];
	size_t i;

	for (i = 0; i < mi->nids; i++)
		if (dg_topic_build(mi->topic, mi->ids[i], "get", t, sizeof(t)) == DG_OK)
			dg_mqtt_publish(mi->mqtt, t, "{}", 2, 1, 0, NULL, NULL);
}

static dg_shadow *
load(dg_mirror *mi, const char *id)
{
	sqlite3_stmt *s = dg_store_prepare(mi->store, "SELECT doc FROM mirror WHERE id = ?");
	dg_shadow *sh = NULL;
	dg_err err;

	if (!s)
		return NULL;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		sh = dg_shadow_from_json((const char *)sqlite3_column_text(s, 0),
		    (size_t)sqlite3_column_bytes(s, 0), &err);
	sqlite3_reset(s);
	return sh ? sh : dg_shadow_new();
}

static void
store_and_notify(dg_mirror *mi, const char *id, dg_shadow *sh)
{
	sqlite3_stmt *s = dg_store_prepare(mi->store,
	    "INSERT INTO mirror (id, doc, updated) VALUES (?, ?, ?)"
	    " ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated = excluded.updated");
	char *text = dg_shadow_to_json(sh);
	json_t *doc;
	int rc;

	if (!s || !text) {
		free(text);
		return;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, text, -1, free);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		dg_store_error(mi->store, rc, "mirror save");
		return;
	}
	if ((doc = dg_shadow_document(sh))) {
		mi->cb(mi, id, doc, mi->arg);
		json_decref(doc);
	}
}

/* Apply {"state": <state>} to the mirror with the shadow's merge rules. */
static int
merge_state(dg_mirror *mi, dg_shadow *sh, json_t *state)
{
	dg_shadow_result res = { 0 };
	json_t *req = json_pack("{s:O}", "state", state);
	char *text = req ? dg_json_dumps(req) : NULL;
	int ok = 0;

	if (text && dg_shadow_update(sh, text, strlen(text), (int64_t)time(NULL), &mi->lim, &res) == DG_OK)
		ok = res.code == 0;
	dg_shadow_result_clear(&res);
	free(text);
	json_decref(req);
	return ok;
}

int
dg_mirror_handle(dg_mirror *mi, const char *topic, const void *payload, size_t len)
{
	char id[DG_TOPIC_ID_MAX + 1];
	const char *leaf;
	json_t *msg;
	dg_shadow *sh = NULL;
	dg_err err;

	if (!dg_topic_match(mi->topic, topic, id, &leaf))
		return 0;
	if (strcmp(leaf, "update/rejected") == 0) {
		dg_log_warn("%s: upstream rejected an update: %.*s", id, (int)(len > 200 ? 200 : len),
		    (const char *)payload);
		return 1;
	}
	msg = dg_json_parse(payload, len, 1 << 24, 64, &err, NULL, 0);
	if (strcmp(leaf, "get/rejected") == 0) {
		json_decref(msg);
		return 1; /* 404: no shadow yet, nothing to mirror */
	}
	if (!msg || !json_is_object(msg)) {
		dg_log_warn("%s: unreadable message on %s", id, topic);
		json_decref(msg);
		return 1;
	}
	if (strcmp(leaf, "get/accepted") == 0) {
		json_t *doc = json_deep_copy(msg);

		json_object_del(json_object_get(doc, "state"), "delta");
		json_object_del(doc, "clientToken");
		sh = dg_shadow_new();
		if (sh && dg_shadow_set_document(sh, doc) == DG_OK)
			store_and_notify(mi, id, sh);
		json_decref(doc);
	} else if (strcmp(leaf, "update/documents") == 0) {
		json_t *cur = json_object_get(msg, "current");

		sh = dg_shadow_new();
		if (sh && json_is_object(cur) && dg_shadow_set_document(sh, cur) == DG_OK)
			store_and_notify(mi, id, sh);
	} else if (strcmp(leaf, "update/delta") == 0) {
		json_t *st = json_object_get(msg, "state");

		sh = load(mi, id);
		if (sh && json_is_object(st)) {
			json_t *wrap = json_pack("{s:O}", "desired", st);

			if (wrap && merge_state(mi, sh, wrap))
				store_and_notify(mi, id, sh);
			json_decref(wrap);
		}
	} else if (strcmp(leaf, "update/accepted") == 0) {
		json_t *st = json_object_get(msg, "state");

		sh = load(mi, id);
		if (sh && json_is_object(st) && merge_state(mi, sh, st))
			store_and_notify(mi, id, sh);
	}
	dg_shadow_free(sh);
	json_decref(msg);
	return 1;
}

json_t *
dg_mirror_document(dg_mirror *mi, const char *id)
{
	dg_shadow *sh = load(mi, id);
	json_t *doc = sh && dg_shadow_exists(sh) ? dg_shadow_document(sh) : NULL;

	dg_shadow_free(sh);
	return doc;
}
