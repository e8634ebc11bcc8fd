/* Unit tests: dg_util */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "dg_util.h"

static void
test_parse_i64(void **state)
{
	int64_t v = 7;

	assert_int_equal(dg_util_parse_i64("42", 0, 100, &v), DG_OK);
	assert_int_equal(v, 42);
	assert_int_equal(dg_util_parse_i64("-5", -10, 10, &v), DG_OK);
	assert_int_equal(v, -5);
	assert_int_equal(dg_util_parse_i64("0x10", 0, 100, &v), DG_OK);
	assert_int_equal(v, 16);
	v = 7;
	assert_int_equal(dg_util_parse_i64("", 0, 100, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_i64("12abc", 0, 100, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_i64(" 12", 0, 100, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_i64("101", 0, 100, &v), DG_ERR_RANGE);
	assert_int_equal(dg_util_parse_i64("99999999999999999999", 0, INT64_MAX, &v), DG_ERR_RANGE);
	assert_int_equal(v, 7);
}

static void
test_parse_u64_and_size(void **state)
{
	uint64_t v = 0;

	assert_int_equal(dg_util_parse_u64("-1", 0, UINT64_MAX, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_u64("+1", 0, UINT64_MAX, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), DG_OK);
	assert_true(v == UINT64_MAX);
	assert_int_equal(dg_util_parse_size("4K", UINT64_MAX, &v), DG_OK);
	assert_int_equal(v, 4096);
	assert_int_equal(dg_util_parse_size("3m", UINT64_MAX, &v), DG_OK);
	assert_int_equal(v, 3u << 20);
	assert_int_equal(dg_util_parse_size("2G", 1u << 30, &v), DG_ERR_RANGE);
	assert_int_equal(dg_util_parse_size("K", UINT64_MAX, &v), DG_ERR_INVAL);
	assert_int_equal(dg_util_parse_size("1KB", UINT64_MAX, &v), DG_ERR_INVAL);
}

static void
test_hex(void **state)
{
	unsigned char in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
	char hex[9];

	dg_util_hex_encode(in, 4, hex);
	assert_string_equal(hex, "00ab7fff");
	assert_int_equal(dg_util_hex_decode("00AB7fff", out, 4), DG_OK);
	assert_memory_equal(in, out, 4);
	assert_int_equal(dg_util_hex_decode("00ab7f", out, 4), DG_ERR_INVAL);
	assert_int_equal(dg_util_hex_decode("00ab7fzz", out, 4), DG_ERR_INVAL);
}

static void
test_write_atomic(void **state)
{
	char dir[] = "/tmp/dg_util_XXXXXX", path[256], *buf = NULL;
	size_t len = 0;
	struct stat st;
	DIR *d;
	struct dirent *e;
	int n = 0;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/file", dir);
	assert_int_equal(dg_util_write_atomic(path, "x", 1, 0600), DG_ERR_NOENT);
	snprintf(path, sizeof(path), "%s/a/b", dir);
	assert_int_equal(dg_util_mkdir_p(path, 0700), DG_OK);
	snprintf(path, sizeof(path), "%s/a/b/file", dir);
	assert_int_equal(dg_util_write_atomic(path, "hello", 5, 0640), DG_OK);
	assert_int_equal(dg_util_write_atomic(path, "world!", 6, 0640), DG_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(dg_util_read_file(path, 100, &buf, &len), DG_OK);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "world!");
	free(buf);
	assert_int_equal(dg_util_read_file(path, 3, &buf, &len), DG_ERR_TOOBIG);
	/* no temp file is left next to it */
	snprintf(path, sizeof(path), "%s/a/b", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 1);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_i64),
		cmocka_unit_test(test_parse_u64_and_size),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_write_atomic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
