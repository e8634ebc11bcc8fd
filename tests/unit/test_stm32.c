/* test_stm32 - the STM32 ROM bootloader engine against the simulator's
 * AN3155 bootloader (flash model), in one process with virtual time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sproto_loop.h"

static uint8_t img[5000];

static void
sim_opts(const char *const *kv)
{
	char buf[128];

	assert_int_equal(sim_stm32.option(NULL, "defaults", ""), 0);
	for (; kv != NULL && *kv != NULL; kv++) {
		char *eq;

		strcpy(buf, *kv);
		eq = strchr(buf, '=');
		assert_non_null(eq);
		*eq = '\0';
		assert_int_equal(sim_stm32.option(NULL, buf, eq + 1), 0);
	}
	loop_clear_image();
}

static int
setup(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof img; i++)
		img[i] = (uint8_t)(i * 7 + (i >> 8));
	return 0;
}

static void
flashes(void **state)
{
	struct loop_result r;
	const uint8_t *got;
	size_t n;

	(void)state;
	sim_opts(NULL);
	assert_int_equal(loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r), 0);
	assert_int_equal(r.done_calls, 1);
	assert_true(r.ok);
	assert_int_equal(r.retransmits, 0);
	assert_int_equal(r.parity, DG_SPROTO_PARITY_EVEN);
	assert_int_equal(r.progress_done, sizeof img);
	assert_int_equal(r.progress_total, sizeof img);
	got = loop_image(&n);
	assert_int_equal(n, sizeof img);
	assert_memory_equal(got, img, sizeof img);
}

static void
legacy_erase_and_offset(void **state)
{
	static const char *sim[] = { "legacy=yes", NULL };
	static const char *opt[] = { "address=0x08000800", "go=no", NULL };
	struct loop_result r;
	const uint8_t *got;
	size_t n;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, opt, &r);
	assert_true(r.ok);
	got = loop_image(&n);
	assert_int_equal(n, 0x800 + sizeof img);
	assert_memory_equal(got + 0x800, img, sizeof img);
	assert_int_equal(got[0], 0xFF);         /* page 0..1 left erased */
}

static void
write_protected(void **state)
{
	static const char *sim[] = { "wp=3", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_REJECTED);
	assert_non_null(strstr(r.detail, "write-protected"));
}

static void
verify_mismatch(void **state)
{
	static const char *sim[] = { "corrupt=4000", NULL };
	static const char *noverify[] = { "verify=no", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_VERIFY);
	assert_non_null(strstr(r.detail, "0x08000fa0"));
	/* without the read back, the corruption goes unnoticed */
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, noverify, &r);
	assert_true(r.ok);
}

static void
nack_retries(void **state)
{
	static const char *two[] = { "nack-writes=2", NULL };
	static const char *many[] = { "nack-writes=100", NULL };
	struct loop_result r;
	const uint8_t *got;
	size_t n;

	(void)state;
	sim_opts(two);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_true(r.ok);
	assert_int_equal(r.retransmits, 2);
	got = loop_image(&n);
	assert_memory_equal(got, img, sizeof img);
	sim_opts(many);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_RETRIES);
	assert_int_equal(r.retransmits, 3);     /* max_retries of the loop */
}

static void
never_answers(void **state)
{
	static const char *sim[] = { "mute=yes", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_TIMEOUT);
	assert_int_equal(r.timeouts, 4);        /* first try + 3 retries */
}

static void
unknown_part_and_too_big(void **state)
{
	static const char *sim[] = { "pid=0x999", NULL };
	static const char *given[] = { "page-size=1024", NULL };
	static const char *small[] = { "pages=4x1K", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT(0x020));
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, given, &r);
	assert_true(r.ok);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, small, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_TOO_BIG);
}

static void
enter_sequence(void **state)
{
	static const char *opt[] = { "enter=-rts,dtr&rts,-dtr", "exit=rts", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(NULL);
	loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img, opt, &r);
	assert_true(r.ok);
	assert_int_equal(r.nlines, 4);
	assert_int_equal(r.lines[0][0], -1);
	assert_int_equal(r.lines[0][1], 0);
	assert_int_equal(r.lines[1][0], 1);
	assert_int_equal(r.lines[1][1], 1);
	assert_int_equal(r.lines[2][0], 0);
	assert_int_equal(r.lines[2][1], -1);
	assert_int_equal(r.lines[3][0], -1);    /* exit, after Go */
	assert_int_equal(r.lines[3][1], 1);
}

static void
bad_options(void **state)
{
	static const char *bad[][2] = { { "colour=blue", NULL }, { "address=0x3", NULL },
		{ "enter=dtr,cts", NULL }, { "pages=4y1K", NULL }, { "go=maybe", NULL },
		{ "novalue", NULL } };
	struct loop_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(loop_run(&dg_sproto_stm32, &sim_stm32, img, sizeof img,
		    bad[i], &r), -1);
		assert_non_null(strstr(r.detail, "stm32:"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(flashes),
		cmocka_unit_test(legacy_erase_and_offset),
		cmocka_unit_test(write_protected),
		cmocka_unit_test(verify_mismatch),
		cmocka_unit_test(nack_retries),
		cmocka_unit_test(never_answers),
		cmocka_unit_test(unknown_part_and_too_big),
		cmocka_unit_test(enter_sequence),
		cmocka_unit_test(bad_options),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
