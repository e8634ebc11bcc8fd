/* dg_outbox - durable, ordered, rate-capped publishing of reports upstream.
 *
 * A report is first committed to SQLite, then published with QoS 1, and
 * deleted only after its PUBACK. While the broker is unreachable reports
 * wait; after a crash they are sent on the next start. Per device at most
 * one report is in flight and they leave in the order they were queued, so
 * nothing is lost or reordered per device. Progress reports are coalesced:
 * a new progress report replaces a device's progress report still waiting.
 * A token bucket caps the publish rate. When the store batches its
 * commits (dg_store_batch), a report is published only after the commit
 * that makes it durable (the outbox registers a dg_store_on_commit hook).
 *
 * The outbox shares the daemon's dg_store (its table is created by the
 * daemon's migrations: see dg_outbox_migration_sql) and its dg_mqtt.
 */
#ifndef DG_OUTBOX_H
#define DG_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "dg_err.h"
#include "dg_mqtt.h"
#include "dg_store.h"

typedef struct dg_outbox dg_outbox;

/* The SQL that creates the outbox's table (one migration step). */
extern const char dg_outbox_migration_sql[];

/* rate: publishes per second (token bucket of the same depth). */
dg_outbox *dg_outbox_new(struct event_base *base, dg_store *store, dg_mqtt *mqtt,
    double rate, dg_err *err);
/* Frees before the store: it removes its commit hook. */
void dg_outbox_free(dg_outbox *ob);

/* Queue payload for topic on behalf of key (a device id, or the gateway's
 * own id). coalesce: replace key's waiting report of the same kind (use it
 * for progress). Durable when this returns DG_OK, or, in a batch, at
 * the batch's commit (published only after it). Errors: DG_ERR_DB, NOMEM. */
dg_err dg_outbox_put(dg_outbox *ob, const char *key, const char *topic,
    const char *payload, int coalesce);

/* Change the publish rate (SIGHUP). */
void dg_outbox_set_rate(dg_outbox *ob, double rate);

/* Try to send what waits (call after a reconnect; also runs by itself). */
void dg_outbox_kick(dg_outbox *ob);

/* Reports waiting or in flight. */
int64_t dg_outbox_pending(dg_outbox *ob);

#endif
