/* Unit tests: dg_log */
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

static void
test_level_parse(void **state)
{
	assert_int_equal(dg_log_level_parse("err"), DG_LOG_ERR);
	assert_int_equal(dg_log_level_parse("warn"), DG_LOG_WARN);
	assert_int_equal(dg_log_level_parse("info"), DG_LOG_INFO);
	assert_int_equal(dg_log_level_parse("debug"), DG_LOG_DEBUG);
	assert_int_equal(dg_log_level_parse("verbose"), -1);
	assert_int_equal(dg_log_level_parse(""), -1);
	assert_int_equal(dg_log_level_parse(NULL), -1);
}

static void
test_redact(void **state)
{
	char buf[64];

	assert_string_equal(dg_log_redact_url("https://h/fw.bin?md5=SECRET&expires=1", buf, sizeof(buf)),
	    "https://h/fw.bin?<redacted>");
	assert_string_equal(dg_log_redact_url("https://h/fw.bin", buf, sizeof(buf)), "https://h/fw.bin");
	assert_string_equal(dg_log_redact_url(NULL, buf, sizeof(buf)), "(null)");
	/* truncation never lets the secret through */
	dg_log_redact_url("https://host/a-long-path-name?sig=SECRET", buf, 12);
	assert_int_equal(strlen(buf), 11);
	assert_null(strstr(buf, "SECRET"));
}

/* Messages above the level are dropped; the rest reach stderr, one line
 * each, with the level's tag. */
static void
test_levels_filter(void **state)
{
	char path[] = "/tmp/dg_log_XXXXXX", line[512];
	int fd = mkstemp(path), saved = dup(2);
	FILE *f;
	int n = 0, seen_warn = 0, seen_debug = 0;

	assert_true(fd >= 0);
	dup2(fd, 2);
	dg_log_open("test", 0, DG_LOG_WARN);
	dg_log_err("an error %d", 1);
	dg_log_warn("a warning");
	dg_log_info("an info");
	dg_log_debug("a debug");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	f = fdopen(fd, "r");
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		n++;
		seen_warn |= strstr(line, "test[warning]: a warning") != NULL;
		seen_debug |= strstr(line, "a debug") != NULL;
	}
	fclose(f);
	unlink(path);
	assert_int_equal(n, 2);
	assert_true(seen_warn);
	assert_false(seen_debug);
	assert_int_equal(dg_log_get_level(), DG_LOG_WARN);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_levels_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
