/* dg_store - SQLite for every durable state of deltagate. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_fault.h"
#include "dg_log.h"
#include "dg_store.h"

#define STMT_CACHE_MAX 128
#define BUSY_TIMEOUT_MS 5000
#define HOOKS_MAX 8

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
	/* group commit */
	struct event *commit_ev;  /* NULL: not batching */
	int delay_ms;
	int batch_open;           /* our BEGIN is open */
	int depth;                /* dg_store_begin savepoints inside it */
	int committing;           /* hooks running: no re-entry */
	struct { void (*fn)(void *); void *arg; } hooks[HOOKS_MAX];
	int nhooks;
	void (*lost_fn)(void *);  /* a batch was rolled back */
	void *lost_arg;
	int retrying;             /* a failed commit is tried again */
};

static dg_err batch_open(dg_store *st);

#define COMMIT_RETRY_MS 1000

/* SQLite rolled a batch back: what the process holds in memory is ahead
 * of the database; its owner decides (deltagated restarts to resume from
 * what is durable). */
static void
batch_lost(dg_store *st)
{
	st->retrying = 0;
	if (st->lost_fn)
		st->lost_fn(st->lost_arg);
}

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

static dg_err
exec_sql(dg_store *st, const char *sql)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? DG_OK : dg_store_error(st, rc, sql);
}

dg_err
dg_store_exec(dg_store *st, const char *sql)
{
	dg_err err;

	if (st->commit_ev && (err = batch_open(st)) != DG_OK)
		return err;
	return exec_sql(st, sql);
}

dg_err
dg_store_begin(dg_store *st)
{
	dg_err err;

	if (!st->commit_ev)
		return exec_sql(st, "BEGIN IMMEDIATE");
	if ((err = batch_open(st)) != DG_OK)
		return err;
	/* nests into the batch: its rollback undoes only its own writes */
	if ((err = exec_sql(st, "SAVEPOINT dg_tx")) == DG_OK)
		st->depth++;
	return err;
}

dg_err
dg_store_commit(dg_store *st)
{
	if (st->depth > 0) {
		st->depth--;
		return exec_sql(st, "RELEASE dg_tx");
	}
	DG_FAULT("store/commit", {
		dg_log_err("%s: commit: %s", st->path, strerror(errno));
		return dg_err_from_errno(errno);
	});
	return exec_sql(st, "COMMIT");
}

void
dg_store_rollback(dg_store *st)
{
	if (st->depth > 0) {
		st->depth--;
		if (!sqlite3_get_autocommit(st->db) &&
		    exec_sql(st, "ROLLBACK TO dg_tx") == DG_OK)
			exec_sql(st, "RELEASE dg_tx");
		return;
	}
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

/* ------------------------------------------------------------ group commit */

static void
on_commit_ev(evutil_socket_t fd, short what, void *arg)
{
	dg_store_sync(arg);
}

/* Open the batch's transaction if none is open, and schedule its commit. */
static dg_err
batch_open(dg_store *st)
{
	dg_err err;

	if (!sqlite3_get_autocommit(st->db))
		return DG_OK; /* ours, or a failed statement left SQLite's open */
	if (st->batch_open) {
		/* SQLite rolled the batch back by itself (I/O error, disk
		 * full): what it held is lost, say so once */
		dg_log_err("%s: a batch of writes was rolled back by SQLite", st->path);
		st->batch_open = 0;
		st->depth = 0;
		batch_lost(st);
	}
	if ((err = exec_sql(st, "BEGIN IMMEDIATE")) != DG_OK)
		return err;
	st->batch_open = 1;
	if (st->delay_ms > 0) {
		struct timeval tv = { st->delay_ms / 1000, (st->delay_ms % 1000) * 1000 };

		evtimer_add(st->commit_ev, &tv);
	} else {
		event_active(st->commit_ev, EV_TIMEOUT, 0);
	}
	return DG_OK;
}

dg_err
dg_store_sync(dg_store *st)
{
	dg_err err;
	int i, n;

	if (!st->batch_open)
		return DG_OK;
	if (st->commit_ev)
		event_del(st->commit_ev);
	st->batch_open = 0;
	if (st->depth > 0) {
		/* an explicit transaction is still open: it must not be
		 * committed half-done; its dg_store_commit ends it */
		dg_log_err("%s: commit of a batch inside an open transaction", st->path);
		st->batch_open = 1;
		return DG_ERR_DB;
	}
	if (sqlite3_get_autocommit(st->db)) {
		dg_log_err("%s: a batch of writes was rolled back by SQLite", st->path);
		batch_lost(st);
		return DG_ERR_DB;
	}
	DG_FAULT("store/batch-commit", {
		err = dg_err_from_errno(errno);
		goto failed;
	});
	if ((err = exec_sql(st, "COMMIT")) != DG_OK)
		goto failed;
	if (st->retrying)
		dg_log_info("%s: the batch is committed", st->path);
	st->retrying = 0;
	if (st->committing)
		return DG_OK;
	st->committing = 1;
	/* a hook may remove itself or write (opening the next batch) */
	n = st->nhooks;
	for (i = 0; i < n && i < st->nhooks; i++)
		st->hooks[i].fn(st->hooks[i].arg);
	st->committing = 0;
	return DG_OK;
failed:
	if (!sqlite3_get_autocommit(st->db) && st->commit_ev) {
		/* still open (disk full, I/O error, busy): every write is kept
		 * and the commit tried again; later writes join the batch */
		struct timeval tv = { COMMIT_RETRY_MS / 1000, (COMMIT_RETRY_MS % 1000) * 1000 };

		dg_log_err("%s: commit failed (%s); the writes are kept, retrying every %d ms",
		    st->path, dg_strerror(err), COMMIT_RETRY_MS);
		st->batch_open = 1;
		st->retrying = 1;
		evtimer_add(st->commit_ev, &tv);
		return err;
	}
	dg_log_err("%s: commit failed (%s): the batch is lost", st->path, dg_strerror(err));
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	batch_lost(st);
	return err;
}

void
dg_store_on_lost(dg_store *st, void (*fn)(void *arg), void *arg)
{
	st->lost_fn = fn;
	st->lost_arg = arg;
}

int
dg_store_pending(dg_store *st)
{
	return st->batch_open;
}

dg_err
dg_store_batch(dg_store *st, struct event_base *base, int delay_ms)
{
	dg_err err = DG_OK;

	if (st->commit_ev) {
		err = dg_store_sync(st);
		event_free(st->commit_ev);
		st->commit_ev = NULL;
	}
	if (!base)
		return err;
	if (!(st->commit_ev = event_new(base, -1, 0, on_commit_ev, st)))
		return DG_ERR_NOMEM;
	st->delay_ms = delay_ms > 0 ? delay_ms : 0;
	return err;
}

dg_err
dg_store_on_commit(dg_store *st, void (*fn)(void *), void *arg)
{
	if (st->nhooks == HOOKS_MAX)
		return DG_ERR_NOMEM;
	st->hooks[st->nhooks].fn = fn;
	st->hooks[st->nhooks++].arg = arg;
	return DG_OK;
}

void
dg_store_on_commit_remove(dg_store *st, void (*fn)(void *), void *arg)
{
	int i;

	for (i = 0; i < st->nhooks; i++) {
		if (st->hooks[i].fn == fn && st->hooks[i].arg == arg) {
			memmove(&st->hooks[i], &st->hooks[i + 1], sizeof(st->hooks[0]) * (size_t)(st->nhooks - i - 1));
			st->nhooks--;
			return;
		}
	}
}

static dg_err
read_version(dg_store *st, int *v)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return dg_store_error(st, rc, "read schema version");
	rc = sqlite3_step(s);
	*v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	return *v < 0 ? dg_store_error(st, rc, "read schema version") : DG_OK;
}

/* Each step reads the version inside its own write transaction, so two
 * processes opening a new database at once (two `deltagate deploy` runs
 * sharing a state directory) apply every migration exactly once: the second
 * waits on the first's lock and then finds the schema already there. */
static dg_err
migrate(dg_store *st, const dg_store_migration *migs, int nmigs)
{
	int v;
	dg_err err;

	/* up to date (the usual case): no write lock taken, so a database on
	 * read-only storage, or one another process is writing, opens at once */
	if ((err = read_version(st, &v)) != DG_OK)
		return err;
	if (v != nmigs)
		DG_FAULT("store/migrate/before-lock", {
			dg_log_err("%s: migrate: %s", st->path, strerror(errno));
			return dg_err_from_errno(errno);
		});
	while (v != nmigs) {
		char pragma[64];

		if ((err = dg_store_begin(st)) != DG_OK)
			return err;
		if ((err = read_version(st, &v)) != DG_OK) {
			dg_store_rollback(st);
			return err;
		}
		if (v > nmigs) {
			dg_store_rollback(st);
			dg_log_err("%s: schema version %d is newer than this program's %d",
			    st->path, v, nmigs);
			return DG_ERR_DB_SCHEMA;
		}
		if (v == nmigs) { /* the other process did it */
			dg_store_rollback(st);
			break;
		}
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
	if (st->commit_ev)
		dg_store_batch(st, NULL, 0);
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
			s = st->stmts[i].stmt;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			goto found;
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
found:
	/* a write joins the open batch (or opens one); if that fails it
	 * runs on its own, durable at once, which is still correct */
	if (st->commit_ev && !sqlite3_stmt_readonly(s))
		batch_open(st);
	return s;
}
