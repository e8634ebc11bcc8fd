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

/* --- option table: groups, duplicates, example file (issue 14) */
static const dg_option gtab[] = {
	DG_OPTION_GROUP("upstream"),
	{ "broker", DG_OPT_STR, offsetof(struct cfg, broker), 0, 0, NULL, 0, no_spaces, "broker URL" },
	{ "port", DG_OPT_INT, offsetof(struct cfg, port), 1, 65535, "5683", 0, NULL, "port" },
	DG_OPTION_GROUP("limits"),
	{ "quota", DG_OPT_SIZE, offsetof(struct cfg, quota), 1024, 0, "1M", 1, NULL, "quota" },
	{ "verbose", DG_OPT_BOOL, offsetof(struct cfg, verbose), 0, 0, "no", 1, NULL, "verbose" },
	{ "device", DG_OPT_LIST, offsetof(struct cfg, devices), 0, 0, NULL, 1, NULL, "device" },
};
#define NGTAB (sizeof(gtab) / sizeof(gtab[0]))

static void
test_table_checks(void **state)
{
	static const dg_option dup[] = {
		{ "port", DG_OPT_INT, offsetof(struct cfg, port), 1, 65535, "5683", 0, NULL, "port" },
		{ "verbose", DG_OPT_BOOL, offsetof(struct cfg, verbose), 0, 0, "no", 1, NULL, "verbose" },
		{ "port", DG_OPT_INT, offsetof(struct cfg, port), 1, 65535, "1", 0, NULL, "port again" },
	};
	static const dg_option early[] = {
		{ "port", DG_OPT_INT, offsetof(struct cfg, port), 1, 65535, "5683", 0, NULL, "port" },
		DG_OPTION_GROUP("limits"),
		{ "verbose", DG_OPT_BOOL, offsetof(struct cfg, verbose), 0, 0, "no", 1, NULL, "verbose" },
	};
	struct cfg c = { 0 };

	assert_int_equal(dg_config_check_table(tab, NTAB), DG_OK);
	assert_int_equal(dg_config_check_table(gtab, NGTAB), DG_OK);
	assert_int_equal(dg_config_check_table(dup, 3), DG_ERR_INTERNAL);
	assert_int_equal(dg_config_defaults(dup, 3, &c), DG_ERR_INTERNAL);
	assert_int_equal(dg_config_check_table(early, 3), DG_ERR_INTERNAL);
	dg_config_free(dup, 3, &c);
}

static void
test_groups_are_not_options(void **state)
{
	struct cfg c = { 0 };
	char *argv[] = { "prog", "--upstream", "x", NULL };
	int optind = 1;

	assert_int_equal(dg_config_defaults(gtab, NGTAB, &c), DG_OK);
	assert_int_equal(c.port, 5683);
	assert_int_equal(dg_config_set(gtab, NGTAB, &c, "limits", "1", "test"), DG_ERR_CONFIG_UNKNOWN);
	assert_int_equal(dg_config_parse_args(gtab, NGTAB, &c, 3, argv, &optind), DG_ERR_CONFIG_UNKNOWN);
	assert_int_equal(dg_config_load_file(gtab, NGTAB, &c, write_tmp("upstream yes\n")), DG_ERR_CONFIG_UNKNOWN);
	dg_config_free(gtab, NGTAB, &c);
}

/* Run print_example with stdout into a file; returns its path. */
static dg_err
example_to_file(const dg_config_example *ex, size_t nex, char *path, size_t len)
{
	int fd, saved;
	dg_err err;

	snprintf(path, len, "/tmp/dg_ex_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(1);
	dup2(fd, 1);
	err = dg_config_print_example(gtab, NGTAB, ex, nex, "# header\n");
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	return err;
}

static void
test_example_file(void **state)
{
	static const dg_config_example ex[] = {
		{ "broker", "mqtt://h:1", 1 },
		{ "device", "d1 version=1 2", 0 },
	};
	static const dg_config_example unknown[] = {
		{ "broker", "mqtt://h:1", 1 }, { "device", "d1", 0 }, { "nosuch", "x", 0 },
	};
	char path[64], line[256], cmd[200];
	struct cfg c = { 0 };
	FILE *f;
	int groups = 0;

	assert_int_equal(example_to_file(ex, 2, path, sizeof(path)), DG_OK);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		groups += strncmp(line, "# ---- ", 7) == 0;
	fclose(f);
	assert_int_equal(groups, 2);
	/* as written: only the active example is set */
	assert_int_equal(dg_config_defaults(gtab, NGTAB, &c), DG_OK);
	assert_int_equal(dg_config_load_file(gtab, NGTAB, &c, path), DG_OK);
	assert_string_equal(c.broker, "mqtt://h:1");
	assert_int_equal(c.devices.count, 0);
	dg_config_free(gtab, NGTAB, &c);
	/* every "#name value" line uncommented: defaults and examples parse */
	snprintf(cmd, sizeof(cmd), "sed -i 's/^#\\([a-z]\\)/\\1/' %s", path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(dg_config_defaults(gtab, NGTAB, &c), DG_OK);
	assert_int_equal(dg_config_load_file(gtab, NGTAB, &c, path), DG_OK);
	assert_int_equal(c.port, 5683);
	assert_int_equal(c.quota, 1 << 20);
	assert_int_equal(c.devices.count, 1);
	assert_string_equal(c.devices.items[0], "d1 version=1 2");
	dg_config_free(gtab, NGTAB, &c);
	unlink(path);
	/* an option without default or example, an example of no option */
	assert_int_equal(example_to_file(ex, 1, path, sizeof(path)), DG_ERR_INTERNAL);
	unlink(path);
	assert_int_equal(example_to_file(unknown, 3, path, sizeof(path)), DG_ERR_INTERNAL);
	unlink(path);
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
		cmocka_unit_test(test_table_checks),
		cmocka_unit_test(test_groups_are_not_options),
		cmocka_unit_test(test_example_file),
	};

	dg_log_open("test_config", 0, DG_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
