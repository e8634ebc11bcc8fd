/* dg_store - SQLite for every durable state of deltagate.
 *
 * Opens a database in WAL mode with a busy timeout and foreign keys, brings
 * its schema up to date through an ordered list of migrations (PRAGMA
 * user_version counts those applied), and caches prepared statements.
 * A dg_store is used from one thread (the event loop's).
 *
 * Group commit (dg_store_batch): a daemon whose loop writes many small
 * records can have them share one transaction, committed once per loop
 * pass (or per interval), so one fsync covers them all instead of one
 * each. A write is durable only after that commit: whatever must wait for
 * durability (publishing a queued report, acknowledging a device) runs
 * from a dg_store_on_commit hook or after dg_store_sync.
 */
#ifndef DG_STORE_H
#define DG_STORE_H

#include <sqlite3.h>

#include <event2/event.h>

#include "dg_err.h"

typedef struct dg_store dg_store;

/* Migration i (0-based) takes the schema from version i to i+1. */
typedef struct dg_store_migration {
	const char *sql; /* one or more statements, run in one transaction */
} dg_store_migration;

/* Open (creating if needed) path, apply pending migrations. Returns NULL and
 * sets *err: DG_ERR_DB (cannot open / migration failed, logged),
 * DG_ERR_DB_SCHEMA (the file is newer than migrations know),
 * DG_ERR_DB_CORRUPT, DG_ERR_NOMEM. ":memory:" works for tests. */
dg_store *dg_store_open(const char *path, const dg_store_migration *migs,
    int nmigs, dg_err *err);
void dg_store_free(dg_store *st);

/* The raw handle, for modules that need the full SQLite API. */
sqlite3 *dg_store_db(dg_store *st);
/* Schema version after open. */
int dg_store_version(dg_store *st);

/* A cached, reset prepared statement for sql (compared by content); owned
 * by the store. It stays valid while fewer than 128 other distinct SQL
 * texts are prepared (the cache then finalizes its oldest entry): use it
 * at once, do not keep it. NULL on error (logged). */
sqlite3_stmt *dg_store_prepare(dg_store *st, const char *sql);

/* Run one or more statements with no results. */
dg_err dg_store_exec(dg_store *st, const char *sql);

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. Inside a batch they
 * nest into it as a savepoint: the commit releases the savepoint (durable
 * only with the batch), the rollback undoes this transaction's writes and
 * nothing else of the batch. */
dg_err dg_store_begin(dg_store *st);
dg_err dg_store_commit(dg_store *st);
void dg_store_rollback(dg_store *st);
/* Run fn(st, arg) inside a transaction: commit if it returns DG_OK,
 * roll back otherwise; returns fn's error or the commit's. */
dg_err dg_store_tx(dg_store *st, dg_err (*fn)(dg_store *st, void *arg), void *arg);

/* Group commit on base: from now on the first write statement
 * (dg_store_prepare of a statement that is not read-only, dg_store_exec,
 * dg_store_begin) opens a transaction that stays open until a commit event
 * fires: delay_ms 0 = after the callbacks already active in this loop pass,
 * > 0 = delay_ms after the first write. base NULL ends batch mode
 * (committing what is pending). The event is owned by the store: call with
 * NULL, or dg_store_free, before freeing base. Errors: DG_ERR_NOMEM, or the
 * commit's error when ending. */
dg_err dg_store_batch(dg_store *st, struct event_base *base, int delay_ms);

/* Commit the open batch now (a no-op without one) and run the commit
 * hooks; a durability barrier. On a failed commit (DG_ERR_DB, DG_ERR_IO,
 * DG_ERR_NOSPC, DG_ERR_DB_BUSY) that leaves SQLite's transaction open - a
 * full disk does - every write is kept and the commit is tried again each
 * second (the hooks run once it succeeds); when SQLite has rolled the batch
 * back, the dg_store_on_lost callback runs. */
dg_err dg_store_sync(dg_store *st);

/* fn(arg) runs when a batch's writes were lost (SQLite rolled them back):
 * the caller's memory is then ahead of the database. One callback; fn NULL
 * removes it. fn must not free the store. */
void dg_store_on_lost(dg_store *st, void (*fn)(void *arg), void *arg);

/* Whether writes wait in an open batch (not yet durable). */
int dg_store_pending(dg_store *st);

/* fn(arg) runs after every successful batch commit (at most 8 hooks; it
 * may write, which opens the next batch). Errors: DG_ERR_NOMEM (full).
 * dg_store_on_commit_remove drops the hook registered with fn and arg. */
dg_err dg_store_on_commit(dg_store *st, void (*fn)(void *arg), void *arg);
void dg_store_on_commit_remove(dg_store *st, void (*fn)(void *arg), void *arg);

/* Translate an SQLite result code (logging the handle's message). */
dg_err dg_store_error(dg_store *st, int rc, const char *what);

#endif
