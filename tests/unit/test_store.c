/* Unit tests: dg_store */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_cache, setup, teardown),
	};

	dg_log_open("test_store", 0, DG_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
