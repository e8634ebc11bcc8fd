/* dg_store - SQLite for every durable state of deltagate. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_log.h"
#include "dg_store.h"

#define STMT_CACHE_MAX 128
#define BUSY_TIMEOUT_MS 5000

struct stmt_entry {
	char *sql;
	sqlite3_stmt *stmt;
};

struct dg_store {
	sqlite3 *db;
	char *path;
	int version;
	int nstmts;
	struct stmt_entry stmts[STMT_CACHE_MAX];
};

dg_err
dg_store_error(dg_store *st, int rc, const char *what)
{
	dg_err err;

	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return DG_OK;
	case SQLITE_BUSY: case SQLITE_LOCKED: err = DG_ERR_DB_BUSY; break;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: err = DG_ERR_DB_CORRUPT; break;
	case SQLITE_NOMEM: err = DG_ERR_NOMEM; break;
	case SQLITE_FULL: err = DG_ERR_NOSPC; break;
	case SQLITE_IOERR: err = DG_ERR_IO; break;
	case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_CANTOPEN: err = DG_ERR_PERM; break;
	default: err = DG_ERR_DB; break;
	}
	dg_log_err("%s: %s: %s", st && st->path ? st->path : "sqlite",
	    what ? what : "query", st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	return err;
}

dg_err
dg_store_exec(dg_store *st, const char *sql)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? DG_OK : dg_store_error(st, rc, sql);
}

dg_err
dg_store_begin(dg_store *st)
{
	return dg_store_exec(st, "BEGIN IMMEDIATE");
}

dg_err
dg_store_commit(dg_store *st)
{
	return dg_store_exec(st, "COMMIT");
}

void
dg_store_rollback(dg_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

dg_err
dg_store_tx(dg_store *st, dg_err (*fn)(dg_store *, void *), void *arg)
{
	dg_err err;

	if ((err = dg_store_begin(st)) != DG_OK)
		return err;
	if ((err = fn(st, arg)) != DG_OK) {
		dg_store_rollback(st);
		return err;
	}
	if ((err = dg_store_commit(st)) != DG_OK)
		dg_store_rollback(st);
	return err;
}

static dg_err
migrate(dg_store *st, const dg_store_migration *migs, int nmigs)
{
	sqlite3_stmt *s;
	int v, rc;
	dg_err err;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return dg_store_error(st, rc, "read schema version");
	rc = sqlite3_step(s);
	v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (v < 0)
		return dg_store_error(st, rc, "read schema version");
	if (v > nmigs) {
		dg_log_err("%s: schema version %d is newer than this program's %d",
		    st->path, v, nmigs);
		return DG_ERR_DB_SCHEMA;
	}
	for (; v < nmigs; v++) {
		char pragma[64];

		if ((err = dg_store_begin(st)) != DG_OK)
			return err;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if ((err = dg_store_exec(st, migs[v].sql)) != DG_OK ||
		    (err = dg_store_exec(st, pragma)) != DG_OK ||
		    (err = dg_store_commit(st)) != DG_OK) {
			dg_store_rollback(st);
			dg_log_err("%s: migration to schema version %d failed", st->path, v + 1);
			return err;
		}
	}
	st->version = v;
	return DG_OK;
}

dg_store *
dg_store_open(const char *path, const dg_store_migration *migs, int nmigs, dg_err *err)
{
	dg_store *st;
	int rc;

	if (!(st = calloc(1, sizeof(*st))) || !(st->path = strdup(path))) {
		free(st);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	rc = sqlite3_open_v2(path, &st->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		*err = dg_store_error(st, rc, "open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(st->db, 1);
	/* WAL + synchronous=FULL: a commit is durable when it returns, which is
	 * what "accepted only after it is on disk" needs */
	if ((*err = dg_store_exec(st, "PRAGMA journal_mode=WAL")) != DG_OK ||
	    (*err = dg_store_exec(st, "PRAGMA synchronous=FULL")) != DG_OK ||
	    (*err = dg_store_exec(st, "PRAGMA foreign_keys=ON")) != DG_OK)
		goto fail;
	if ((*err = migrate(st, migs, nmigs)) != DG_OK)
		goto fail;
	*err = DG_OK;
	return st;
fail:
	dg_store_free(st);
	return NULL;
}

void
dg_store_free(dg_store *st)
{
	int i;

	if (!st)
		return;
	for (i = 0; i < st->nstmts; i++) {
		sqlite3_finalize(st->stmts[i].stmt);
		free(st->stmts[i].sql);
	}
	if (st->db)
		sqlite3_close_v2(st->db);
	free(st->path);
	free(st);
}

sqlite3 *
dg_store_db(dg_store *st)
{
	return st->db;
}

int
dg_store_version(dg_store *st)
{
	return st->version;
}

sqlite3_stmt *
dg_store_prepare(dg_store *st, const char *sql)
{
	sqlite3_stmt *s;
	int i, rc;

	for (i = 0; i < st->nstmts; i++) {
		if (strcmp(st->stmts[i].sql, sql) == 0) {
			sqlite3_reset(st->stmts[i].stmt);
			sqlite3_clear_bindings(st->stmts[i].stmt);
			return st->stmts[i].stmt;
		}
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		dg_store_error(st, rc, sql);
		return NULL;
	}
	if (st->nstmts == STMT_CACHE_MAX) {
		/* full: evict the oldest; callers hold a statement only until
		 * their next dg_store_prepare, which the header implies */
		sqlite3_finalize(st->stmts[0].stmt);
		free(st->stmts[0].sql);
		memmove(&st->stmts[0], &st->stmts[1], sizeof(st->stmts[0]) * (STMT_CACHE_MAX - 1));
		st->nstmts--;
	}
	st->stmts[st->nstmts].sql = strdup(sql);
	if (!st->stmts[st->nstmts].sql) {
		sqlite3_finalize(s);
		return NULL;
	}
	st->stmts[st->nstmts++].stmt = s;
	return s;
}
