/* Unit tests: dg_err */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "dg_err.h"

static void
test_every_code_has_text(void **state)
{
	int i;

	for (i = 0; i < DG_ERR_MAX_; i++) {
		const char *t = dg_strerror((dg_err)i);

		assert_non_null(t);
		assert_true(strlen(t) > 0);
	}
	assert_string_equal(dg_strerror(DG_OK), "success");
	assert_string_equal(dg_strerror(DG_ERR_NOSPC), "no space left on device");
	assert_string_equal(dg_strerror((dg_err)99999), "unknown error");
}

static void
test_numbers_are_stable(void **state)
{
	/* the values are part of the interface: never renumber */
	assert_int_equal(DG_ERR_NOMEM, 1);
	assert_int_equal(DG_ERR_IO, 3);
	assert_int_equal(DG_ERR_CONFIG, 50);
	assert_int_equal(DG_ERR_JSON, 70);
	assert_int_equal(DG_ERR_DB, 90);
	assert_int_equal(DG_ERR_MQTT, 110);
	assert_int_equal(DG_ERR_SHADOW_BAD_REQUEST, 130);
}

static void
test_from_errno(void **state)
{
	assert_int_equal(dg_err_from_errno(0), DG_OK);
	assert_int_equal(dg_err_from_errno(ENOSPC), DG_ERR_NOSPC);
	assert_int_equal(dg_err_from_errno(EACCES), DG_ERR_PERM);
	assert_int_equal(dg_err_from_errno(ENOENT), DG_ERR_NOENT);
	assert_int_equal(dg_err_from_errno(EIO), DG_ERR_IO);
	assert_int_equal(dg_err_from_errno(EXDEV), DG_ERR_SYSTEM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_has_text),
		cmocka_unit_test(test_numbers_are_stable),
		cmocka_unit_test(test_from_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
