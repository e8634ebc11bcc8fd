/* Unit tests: dg_store */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <event2/event.h>

#include "dg_fault.h"
#ifdef DG_FAULT_INJECTION
#include <fiu-control.h>
#endif
#include "dg_log.h"
#include "dg_store.h"

static const dg_store_migration v1[] = {
	{ "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);" },
};
static const dg_store_migration v2[] = {
	{ "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);" },
	{ "ALTER TABLE t ADD COLUMN w TEXT; CREATE INDEX t_v ON t(v);" },
};
static const dg_store_migration bad[] = {
	{ "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);" },
	{ "ALTER TABLE t ADD COLUMN w TEXT; THIS IS NOT SQL;" },
};

static char path[64];

static int
setup(void **state)
{
	snprintf(path, sizeof(path), "/tmp/dg_store_XXXXXX");
	close(mkstemp(path));
	unlink(path);
	return 0;
}

static int
teardown(void **state)
{
	char p[80];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	return 0;
}

static int
count_rows(dg_store *st)
{
	sqlite3_stmt *s = dg_store_prepare(st, "SELECT count(*) FROM t");

	assert_non_null(s);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	return sqlite3_column_int(s, 0);
}

static void
test_migrations(void **state)
{
	dg_err err;
	dg_store *st = dg_store_open(path, v1, 1, &err);

	assert_non_null(st);
	assert_int_equal(dg_store_version(st), 1);
	assert_int_equal(dg_store_exec(st, "INSERT INTO t VALUES ('a', 1)"), DG_OK);
	dg_store_free(st);
	/* upgrade keeps data */
	st = dg_store_open(path, v2, 2, &err);
	assert_non_null(st);
	assert_int_equal(dg_store_version(st), 2);
	assert_int_equal(count_rows(st), 1);
	assert_int_equal(dg_store_exec(st, "UPDATE t SET w = 'x'"), DG_OK);
	dg_store_free(st);
	/* an older program refuses a newer file */
	assert_null(dg_store_open(path, v1, 1, &err));
	assert_int_equal(err, DG_ERR_DB_SCHEMA);
}

static void
test_failed_migration_rolls_back(void **state)
{
	dg_err err;
	dg_store *st = dg_store_open(path, bad, 2, &err);

	assert_null(st);
	assert_int_equal(err, DG_ERR_DB);
	st = dg_store_open(path, v1, 1, &err);
	assert_non_null(st);
	assert_int_equal(dg_store_version(st), 1);
	dg_store_free(st);
}

static void
test_wal(void **state)
{
	dg_err err;
	dg_store *st = dg_store_open(path, v1, 1, &err);
	sqlite3_stmt *s = dg_store_prepare(st, "PRAGMA journal_mode");

	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	dg_store_free(st);
}

static dg_err
insert_two(dg_store *st, void *arg)
{
	dg_err err;

	if ((err = dg_store_exec(st, "INSERT INTO t VALUES ('x', 1)")) != DG_OK)
		return err;
	return dg_store_exec(st, (const char *)arg);
}

static void
test_tx(void **state)
{
	dg_err err;
	dg_store *st = dg_store_open(path, v1, 1, &err);

	/* the second insert violates the primary key: nothing is kept */
	assert_int_not_equal(dg_store_tx(st, insert_two, "INSERT INTO t VALUES ('x', 2)"), DG_OK);
	assert_int_equal(count_rows(st), 0);
	assert_int_equal(dg_store_tx(st, insert_two, "INSERT INTO t VALUES ('y', 2)"), DG_OK);
	assert_int_equal(count_rows(st), 2);
	dg_store_free(st);
}

static void
test_prepare_cache(void **state)
{
	dg_err err;
	dg_store *st = dg_store_open(path, v1, 1, &err);
	sqlite3_stmt *a = dg_store_prepare(st, "SELECT 1");
	sqlite3_stmt *b = dg_store_prepare(st, "SELECT 1");

	assert_ptr_equal(a, b);
	assert_null(dg_store_prepare(st, "SELEKT nothing"));
	dg_store_free(st);
}


/* ------------------------------------------------------------ group commit */

/* Rows of t as another process sees them (its own connection). */
static int
count_outside(void)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int n;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

static void
put(dg_store *st, const char *k, int v, int want)
{
	sqlite3_stmt *s = dg_store_prepare(st, "INSERT INTO t (k, v) VALUES (?, ?)");

	assert_non_null(s);
	sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, v);
	assert_int_equal(sqlite3_step(s), want);
	sqlite3_reset(s);
}

struct hook_log {
	int calls;
	int seen;   /* rows the other connection saw from inside the hook */
};

static void
on_commit(void *arg)
{
	struct hook_log *h = arg;

	h->calls++;
	h->seen = count_outside();
}

static void
test_batch_commits_at_end_of_pass(void **state)
{
	dg_err err;
	struct event_base *base = event_base_new();
	dg_store *st = dg_store_open(path, v1, 1, &err);
	struct hook_log h = { 0, -1 };

	assert_non_null(base);
	assert_non_null(st);
	assert_int_equal(dg_store_batch(st, base, 0), DG_OK);
	assert_int_equal(dg_store_on_commit(st, on_commit, &h), DG_OK);
	/* reads open nothing */
	assert_int_equal(count_rows(st), 0);
	assert_int_equal(dg_store_pending(st), 0);
	put(st, "a", 1, SQLITE_DONE);
	put(st, "b", 2, SQLITE_DONE);
	/* this connection sees its writes, nobody else does yet */
	assert_int_equal(dg_store_pending(st), 1);
	assert_int_equal(count_rows(st), 2);
	assert_int_equal(count_outside(), 0);
	assert_int_equal(h.calls, 0);
	/* the loop's pass ends with the commit; the hook runs after it */
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(dg_store_pending(st), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.seen, 2);
	assert_int_equal(count_outside(), 2);
	/* the next write opens the next batch; sync is a barrier */
	put(st, "c", 3, SQLITE_DONE);
	assert_int_equal(count_outside(), 2);
	assert_int_equal(dg_store_sync(st), DG_OK);
	assert_int_equal(h.calls, 2);
	assert_int_equal(count_outside(), 3);
	assert_int_equal(dg_store_sync(st), DG_OK); /* nothing open: no-op */
	assert_int_equal(h.calls, 2);
	/* a removed hook no longer runs; ending batch mode commits */
	dg_store_on_commit_remove(st, on_commit, &h);
	put(st, "d", 4, SQLITE_DONE);
	assert_int_equal(count_outside(), 3);
	assert_int_equal(dg_store_batch(st, NULL, 0), DG_OK);
	assert_int_equal(count_outside(), 4);
	assert_int_equal(h.calls, 2);
	/* without batch mode every write is durable at once */
	put(st, "e", 5, SQLITE_DONE);
	assert_int_equal(dg_store_pending(st), 0);
	assert_int_equal(count_outside(), 5);
	dg_store_free(st);
	event_base_free(base);
}

static dg_err
insert_arg(dg_store *st, void *arg)
{
	return dg_store_exec(st, (const char *)arg);
}

static void
test_batch_nested_tx(void **state)
{
	dg_err err;
	struct event_base *base = event_base_new();
	dg_store *st = dg_store_open(path, v1, 1, &err);

	assert_int_equal(dg_store_batch(st, base, 0), DG_OK);
	put(st, "a", 1, SQLITE_DONE);
	/* a failed transaction inside the batch undoes its own writes only */
	assert_int_not_equal(dg_store_tx(st, insert_two, "INSERT INTO t VALUES ('x', 2)"), DG_OK);
	assert_int_equal(count_rows(st), 1);
	/* a failed statement fails alone: the batch goes on */
	put(st, "a", 9, SQLITE_CONSTRAINT_PRIMARYKEY);
	assert_int_equal(dg_store_pending(st), 1);
	/* a good one is kept, but durable only with the batch */
	assert_int_equal(dg_store_tx(st, insert_two, "INSERT INTO t VALUES ('y', 2)"), DG_OK);
	assert_int_equal(count_rows(st), 3);
	assert_int_equal(count_outside(), 0);
	/* explicit begin/commit nest too; a rollback keeps the batch */
	assert_int_equal(dg_store_begin(st), DG_OK);
	put(st, "z", 3, SQLITE_DONE);
	dg_store_rollback(st);
	assert_int_equal(dg_store_pending(st), 1);
	assert_int_equal(dg_store_tx(st, insert_arg, "INSERT INTO t VALUES ('w', 4)"), DG_OK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(count_outside(), 4); /* a, x, y, w */
	assert_int_equal(count_rows(st), 4);
	dg_store_free(st);
	event_base_free(base);
}

static void
test_batch_delay(void **state)
{
	dg_err err;
	struct event_base *base = event_base_new();
	dg_store *st = dg_store_open(path, v1, 1, &err);
	struct hook_log h = { 0, -1 };

	/* delay_ms > 0: the end of the pass does not commit, the timer does */
	assert_int_equal(dg_store_batch(st, base, 30), DG_OK);
	assert_int_equal(dg_store_on_commit(st, on_commit, &h), DG_OK);
	put(st, "a", 1, SQLITE_DONE);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(dg_store_pending(st), 1);
	assert_int_equal(count_outside(), 0);
	put(st, "b", 2, SQLITE_DONE);
	/* runs until no event is left: the commit timer was the last */
	event_base_dispatch(base);
	assert_int_equal(dg_store_pending(st), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.seen, 2);
	dg_store_free(st);
	event_base_free(base);
}

static void
test_batch_lost_without_commit(void **state)
{
	pid_t pid;
	int status;

	/* a process killed with an open batch: the committed batch is on
	 * disk, the open one is not (and nothing was published for it) */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dg_err err;
		struct event_base *base = event_base_new();
		dg_store *st = dg_store_open(path, v1, 1, &err);

		if (!base || !st || dg_store_batch(st, base, 0) != DG_OK)
			_exit(1);
		put(st, "a", 1, SQLITE_DONE);
		if (dg_store_sync(st) != DG_OK)
			_exit(1);
		put(st, "b", 2, SQLITE_DONE);
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(count_outside(), 1);
}

static void
test_concurrent_first_open(void **state)
{
#ifdef DG_FAULT_INJECTION
	dg_err err;
	dg_store *st;
	pid_t pid;
	int status;

	/* two processes opening a new database at once (two `deltagate deploy`
	 * runs on one state directory): the child read schema version 0 and is
	 * stopped before it locks; the parent migrates; the child, let go,
	 * finds the schema there and must not create the tables again */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (fiu_init(0) != 0 ||
		    fiu_enable("store/migrate/before-lock", DG_FAULT_PAUSE, NULL,
		    FIU_ONETIME) != 0)
			_exit(2);
		st = dg_store_open(path, v2, 2, &err);
		_exit(st && dg_store_version(st) == 2 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	st = dg_store_open(path, v2, 2, &err);
	assert_non_null(st);
	assert_int_equal(dg_store_version(st), 2);
	assert_int_equal(dg_store_exec(st, "INSERT INTO t VALUES ('a', 1, 'x')"), DG_OK);
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_rows(st), 1);
	dg_store_free(st);
#else
	skip(); /* needs ./configure --enable-fault-injection (scripts/check has it) */
#endif
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_commits_at_end_of_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_nested_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_lost_without_commit, setup, teardown),
	};

	dg_log_open("test_store", 0, DG_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
