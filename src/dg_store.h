/* dg_store - SQLite for every durable state of deltagate.
 *
 * Opens a database in WAL mode with a busy timeout and foreign keys, brings
 * its schema up to date through an ordered list of migrations (PRAGMA
 * user_version counts those applied), and caches prepared statements.
 * A dg_store is used from one thread (the event loop's).
 */
#ifndef DG_STORE_H
#define DG_STORE_H

#include <sqlite3.h>

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

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
dg_err dg_store_begin(dg_store *st);
dg_err dg_store_commit(dg_store *st);
void dg_store_rollback(dg_store *st);
/* Run fn(st, arg) inside a transaction: commit if it returns DG_OK,
 * roll back otherwise; returns fn's error or the commit's. */
dg_err dg_store_tx(dg_store *st, dg_err (*fn)(dg_store *st, void *arg), void *arg);

/* Translate an SQLite result code (logging the handle's message). */
dg_err dg_store_error(dg_store *st, int rc, const char *what);

#endif
