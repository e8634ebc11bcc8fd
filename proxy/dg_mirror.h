/* dg_mirror - the gateway's local mirror of its devices' upstream shadows.
 *
 * For each device it subscribes to <root>/update/delta, update/accepted,
 * update/rejected, update/documents, get/accepted and get/rejected, asks
 * for the whole document (get) at start and after every reconnect, and
 * keeps the document in SQLite. Merges use dg_shadow, the same rules as the
 * shadow service. After every change of a device's document it calls the
 * owner's callback with the document, from the loop thread; the callback
 * must not call dg_mirror_free().
 */
#ifndef DG_MIRROR_H
#define DG_MIRROR_H

#include <jansson.h>

#include "dg_err.h"
#include "dg_mqtt.h"
#include "dg_store.h"
#include "dg_topic.h"

typedef struct dg_mirror dg_mirror;

/* doc: the whole mirrored document ({"state":{"desired","reported"},...});
 * borrowed for the call. */
typedef void (*dg_mirror_cb)(dg_mirror *mi, const char *id, const json_t *doc, void *arg);

extern const char dg_mirror_migration_sql[];

dg_mirror *dg_mirror_new(dg_store *store, dg_mqtt *mqtt, const dg_topic *topic,
    dg_mirror_cb cb, void *arg, dg_err *err);
void dg_mirror_free(dg_mirror *mi);

/* Mirror device id (subscribe now and after each reconnect). */
dg_err dg_mirror_add(dg_mirror *mi, const char *id);
/* Send get for every device (call when MQTT connects). */
void dg_mirror_resync(dg_mirror *mi);
/* Offer an incoming message; returns 1 if it was a mirror topic. */
int dg_mirror_handle(dg_mirror *mi, const char *topic, const void *payload, size_t len);
/* The mirrored document of id (new reference), NULL if none yet. */
json_t *dg_mirror_document(dg_mirror *mi, const char *id);

#endif
