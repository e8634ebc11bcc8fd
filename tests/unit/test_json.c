/* Unit tests: dg_json */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dg_json.h"

static json_t *
parse(const char *s, dg_err *err)
{
	char why[128];

	return dg_json_parse(s, strlen(s), 1024, 3, err, why, sizeof(why));
}

static void
test_parse_ok(void **state)
{
	dg_err err;
	json_t *v = parse("{\"a\":{\"b\":[1]}}", &err);
	int64_t i = 0;

	assert_non_null(v);
	assert_int_equal(err, DG_OK);
	assert_int_equal(dg_json_depth(v), 3);
	json_decref(v);
	v = parse("{\"s\":\"x\",\"n\":5}", &err);
	assert_string_equal(dg_json_get_str(v, "s"), "x");
	assert_null(dg_json_get_str(v, "n"));
	assert_true(dg_json_get_i64(v, "n", &i));
	assert_int_equal(i, 5);
	assert_false(dg_json_get_i64(v, "s", &i));
	json_decref(v);
}

static void
test_parse_rejects(void **state)
{
	static const struct { const char *in; dg_err want; } cases[] = {
		{ "{\"a\":1,\"a\":2}", DG_ERR_JSON },
		{ "{\"a\":", DG_ERR_JSON },
		{ "{} x", DG_ERR_JSON },
		{ "{\"a\":{\"b\":{\"c\":{}}}}", DG_ERR_JSON_DEPTH },
		{ "[[[[1]]]]", DG_ERR_JSON_DEPTH },
		{ "{\"a\":\"\xc3\x28\"}", DG_ERR_JSON_UTF8 },
		{ "{\"a\":\"\xed\xa0\x80\"}", DG_ERR_JSON_UTF8 },
		{ "{\"a\":\"\xc0\xaf\"}", DG_ERR_JSON_UTF8 },
		{ "{\"a\":\"\xe2\x82\"}", DG_ERR_JSON_UTF8 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dg_err err = DG_OK;

		assert_null(parse(cases[i].in, &err));
		assert_int_equal(err, cases[i].want);
	}
}

static void
test_size_limit(void **state)
{
	char *big = malloc(2000);
	dg_err err;

	memset(big, ' ', 1999);
	big[0] = '{';
	big[1998] = '}';
	big[1999] = '\0';
	assert_null(parse(big, &err));
	assert_int_equal(err, DG_ERR_TOOBIG);
	free(big);
}

static void
test_utf8_valid(void **state)
{
	assert_true(dg_json_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
	assert_false(dg_json_utf8_valid("\xff", 1));
	assert_false(dg_json_utf8_valid("\xf4\x90\x80\x80", 4));
}

static void
test_dumps(void **state)
{
	dg_err err;
	json_t *v = parse("{\"z\":1,\"a\":[true,null]}", &err);
	char *s = dg_json_dumps(v);

	assert_string_equal(s, "{\"z\":1,\"a\":[true,null]}");
	free(s);
	json_decref(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_dumps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
