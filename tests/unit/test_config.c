/* Unit tests: dg_config */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dg_config.h"
#include "dg_log.h"

struct cfg {
	char *broker;
	int64_t port;
	uint64_t quota;
	int verbose;
	dg_config_list devices;
};

static int
no_spaces(const char *v, char *why, size_t whylen)
{
	if (strchr(v, ' ')) {
		snprintf(why, whylen, "must not contain spaces");
		return -1;
	}
	return 0;
}

static const dg_option tab[] = {
	{ "broker", DG_OPT_STR, offsetof(struct cfg, broker), 0, 0, "mqtt://127.0.0.1:1883", 0, no_spaces, "broker URL" },
	{ "port", DG_OPT_INT, offsetof(struct cfg, port), 1, 65535, "5683", 0, NULL, "port" },
	{ "quota", DG_OPT_SIZE, offsetof(struct cfg, quota), 1024, 0, "1M", 1, NULL, "quota" },
	{ "verbose", DG_OPT_BOOL, offsetof(struct cfg, verbose), 0, 0, "no", 1, NULL, "verbose" },
	{ "device", DG_OPT_LIST, offsetof(struct cfg, devices), 0, 0, NULL, 1, NULL, "device" },
};
#define NTAB (sizeof(tab) / sizeof(tab[0]))

static char *
write_tmp(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/dg_cfg_XXXXXX");
	close(mkstemp(path));
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_defaults(void **state)
{
	struct cfg c = { 0 };

	assert_int_equal(dg_config_defaults(tab, NTAB, &c), DG_OK);
	assert_string_equal(c.broker, "mqtt://127.0.0.1:1883");
	assert_int_equal(c.port, 5683);
	assert_int_equal(c.quota, 1 << 20);
	assert_int_equal(c.verbose, 0);
	assert_int_equal(c.devices.count, 0);
	dg_config_free(tab, NTAB, &c);
}

static void
test_file(void **state)
{
	struct cfg c = { 0 };
	char *p = write_tmp("# comment\n\nbroker mqtt://h:1\nport 1884  \n"
	    "verbose yes\ndevice \"d1 coap://x\"\ndevice d2\n");

	dg_config_defaults(tab, NTAB, &c);
	assert_int_equal(dg_config_load_file(tab, NTAB, &c, p), DG_OK);
	assert_string_equal(c.broker, "mqtt://h:1");
	assert_int_equal(c.port, 1884);
	assert_int_equal(c.verbose, 1);
	assert_int_equal(c.devices.count, 2);
	assert_string_equal(c.devices.items[0], "d1 coap://x");
	assert_string_equal(c.devices.items[1], "d2");
	assert_null(c.devices.items[2]);
	unlink(p);
	dg_config_free(tab, NTAB, &c);
}

static void
test_file_errors(void **state)
{
	static const struct { const char *text; dg_err want; } cases[] = {
		{ "bogus 1\n", DG_ERR_CONFIG_UNKNOWN },
		{ "port 0\n", DG_ERR_CONFIG_VALUE },
		{ "port 70000\n", DG_ERR_CONFIG_VALUE },
		{ "port 12x\n", DG_ERR_CONFIG_VALUE },
		{ "port\n", DG_ERR_CONFIG },
		{ "verbose maybe\n", DG_ERR_CONFIG_VALUE },
		{ "quota 10\n", DG_ERR_CONFIG_VALUE },
		{ "broker \"unterminated\n", DG_ERR_CONFIG },
		{ "broker \"a b\"\n", DG_ERR_CONFIG_VALUE },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg c = { 0 };
		char *p = write_tmp(cases[i].text);

		dg_config_defaults(tab, NTAB, &c);
		assert_int_equal(dg_config_load_file(tab, NTAB, &c, p), cases[i].want);
		unlink(p);
		dg_config_free(tab, NTAB, &c);
	}
	{
		struct cfg c = { 0 };

		assert_int_equal(dg_config_load_file(tab, NTAB, &c, "/nonexistent/x.conf"), DG_ERR_NOENT);
	}
}

static void
test_args(void **state)
{
	struct cfg c = { 0 };
	char *argv[] = { "prog", "--port", "99", "--verbose", "--quota=2K",
	    "--device", "a", "--", "rest", NULL };
	int optind = 1;

	dg_config_defaults(tab, NTAB, &c);
	assert_int_equal(dg_config_parse_args(tab, NTAB, &c, 9, argv, &optind), DG_OK);
	assert_int_equal(optind, 8);
	assert_int_equal(c.port, 99);
	assert_int_equal(c.verbose, 1);
	assert_int_equal(c.quota, 2048);
	assert_int_equal(c.devices.count, 1);
	dg_config_free(tab, NTAB, &c);
}

static void
test_args_errors(void **state)
{
	struct cfg c = { 0 };
	char *a1[] = { "prog", "--nope", "1", NULL };
	char *a2[] = { "prog", "--port", NULL };
	char *a3[] = { "prog", "--port", "-3", NULL };
	int optind;

	dg_config_defaults(tab, NTAB, &c);
	optind = 1;
	assert_int_equal(dg_config_parse_args(tab, NTAB, &c, 3, a1, &optind), DG_ERR_CONFIG_UNKNOWN);
	optind = 1;
	assert_int_equal(dg_config_parse_args(tab, NTAB, &c, 2, a2, &optind), DG_ERR_USAGE);
	optind = 1;
	assert_int_equal(dg_config_parse_args(tab, NTAB, &c, 3, a3, &optind), DG_ERR_CONFIG_VALUE);
	assert_int_equal(c.port, 5683);
	dg_config_free(tab, NTAB, &c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_args_errors),
	};

	dg_log_open("test_config", 0, DG_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
