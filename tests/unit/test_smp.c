/* test_smp - SMP console framing (against the published capture of an
 * mcumgr reset request) and the SMP engine against the simulator's MCUboot
 * serial recovery target, in one process with virtual time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../proxy/dg_smpframe.h"
#include "sproto_loop.h"

static uint8_t img[3000];

static void
sim_opts(const char *const *kv)
{
	char buf[128];

	assert_int_equal(sim_smp.option(NULL, "defaults", ""), 0);
	for (; kv != NULL && *kv != NULL; kv++) {
		char *eq;

		strcpy(buf, *kv);
		eq = strchr(buf, '=');
		*eq = '\0';
		assert_int_equal(sim_smp.option(NULL, buf, eq + 1), 0);
	}
	loop_clear_image();
}

static int
setup(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof img; i++)
		img[i] = (uint8_t)(i * 13 + 5);
	return 0;
}

static void
crc_check_value(void **state)
{
	(void)state;
	/* CRC-16/XMODEM check value */
	assert_int_equal(dg_smpframe_crc16((const uint8_t *)"123456789", 9), 0x31C3);
}

/* mcumgr's reset request as captured on a UART (Nordic DevZone thread
 * 102545): header 02 00 00 01 00 00 8a 05, body a0 (empty map), sent as
 * 06 09 "AAsCAAABAACKBaA1Qw==" 0a */
static void
published_reset_frame(void **state)
{
	static const uint8_t pkt[] = { 0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x8a, 0x05, 0xa0 };
	static const char want[] = "\x06\x09" "AAsCAAABAACKBaA1Qw==\n";
	dg_smpframe_dec *d = dg_smpframe_dec_new(256);
	uint8_t *out;
	size_t n, i, pn;
	int r = 0;
	const uint8_t *p;

	(void)state;
	assert_int_equal(dg_smpframe_encode(pkt, sizeof pkt, &out, &n), 0);
	assert_int_equal(n, sizeof want - 1);
	assert_memory_equal(out, want, n);
	free(out);
	for (i = 0; i < sizeof want - 1; i++)
		r = dg_smpframe_dec_push(d, (uint8_t)want[i]);
	assert_int_equal(r, 1);
	p = dg_smpframe_dec_packet(d, &pn);
	assert_int_equal(pn, sizeof pkt);
	assert_memory_equal(p, pkt, sizeof pkt);
	dg_smpframe_dec_free(d);
}

static void
multi_frame_and_bad_crc(void **state)
{
	uint8_t pkt[700], *out;
	size_t n, i, pn, frames = 0, linestart = 0;
	dg_smpframe_dec *d = dg_smpframe_dec_new(1024);
	int r = 0, got = 0;
	const uint8_t *p;

	(void)state;
	for (i = 0; i < sizeof pkt; i++)
		pkt[i] = (uint8_t)(i * 31);
	assert_int_equal(dg_smpframe_encode(pkt, sizeof pkt, &out, &n), 0);
	for (i = 0; i < n; i++) {
		if (i == linestart) {
			assert_int_equal(out[i], frames == 0 ? 0x06 : 0x04);
			assert_int_equal(out[i + 1], frames == 0 ? 0x09 : 0x14);
		}
		if (out[i] == '\n') {
			assert_true(i + 1 - linestart <= DG_SMPFRAME_MAX);
			linestart = i + 1;
			frames++;
		}
		r = dg_smpframe_dec_push(d, out[i]);
		if (r == 1)
			got++;
		else
			assert_int_equal(r, 0);
	}
	assert_int_equal(frames, (sizeof pkt + 4 + 92) / 93);
	assert_int_equal(got, 1);
	p = dg_smpframe_dec_packet(d, &pn);
	assert_int_equal(pn, sizeof pkt);
	assert_memory_equal(p, pkt, sizeof pkt);
	/* console text between packets is ignored; a flipped bit is dropped */
	for (i = 0; i < 6; i++)
		assert_int_equal(dg_smpframe_dec_push(d, (uint8_t)"hello\n"[i]), 0);
	out[10] = out[10] == 'A' ? 'B' : 'A';
	for (i = 0, r = 0; i < n; i++) {
		int x = dg_smpframe_dec_push(d, out[i]);

		if (x != 0)
			r = x;
	}
	assert_int_equal(r, -1);
	free(out);
	dg_smpframe_dec_free(d);
}

static void
uploads_and_installs(void **state)
{
	struct loop_result r;
	const uint8_t *got;
	size_t n;

	(void)state;
	sim_opts(NULL);
	assert_int_equal(loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, NULL, &r), 0);
	assert_int_equal(r.done_calls, 1);
	assert_true(r.ok);
	assert_int_equal(r.retransmits, 0);
	assert_int_equal(r.progress_done, sizeof img);
	got = loop_image(&n);
	assert_int_equal(n, sizeof img);
	assert_memory_equal(got, img, sizeof img);
}

static void
resumes_from_device_offset(void **state)
{
	static const char *sim[] = { "lose-answer=4", NULL };
	static const char *opt[] = { "chunk=100", NULL };
	struct loop_result r;
	const uint8_t *got;
	size_t n;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, opt, &r);
	assert_true(r.ok);
	assert_int_equal(r.retransmits, 1);
	got = loop_image(&n);
	assert_int_equal(n, sizeof img);
	assert_memory_equal(got, img, sizeof img);
}

static void
hash_mismatch(void **state)
{
	static const char *corrupt[] = { "corrupt=1234", NULL };
	static const char *checked[] = { "corrupt=1234", "check-sha=yes", NULL };
	struct loop_result r;
	size_t n;

	(void)state;
	sim_opts(corrupt);
	loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_VERIFY);
	loop_image(&n);
	assert_int_equal(n, 0);                 /* not reset, not installed */
	sim_opts(checked);
	loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_REJECTED);
	assert_non_null(strstr(r.detail, "rc 9"));
}

static void
never_answers(void **state)
{
	static const char *sim[] = { "mute=yes", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_TIMEOUT);
	assert_int_equal(r.timeouts, 4);
}

static void
too_big_for_slot(void **state)
{
	static const char *sim[] = { "slot-size=1K", NULL };
	struct loop_result r;

	(void)state;
	sim_opts(sim);
	loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img, NULL, &r);
	assert_false(r.ok);
	assert_int_equal(r.ext, DG_SPROTO_EXT_REJECTED);
}

static void
bad_options(void **state)
{
	static const char *bad[][2] = { { "chunk=1", NULL }, { "verify=perhaps", NULL },
		{ "mtu=9", NULL }, { "reset", NULL } };
	struct loop_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(loop_run(&dg_sproto_smp, &sim_smp, img, sizeof img,
		    bad[i], &r), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc_check_value),
		cmocka_unit_test(published_reset_frame),
		cmocka_unit_test(multi_frame_and_bad_crc),
		cmocka_unit_test(uploads_and_installs),
		cmocka_unit_test(resumes_from_device_offset),
		cmocka_unit_test(hash_mismatch),
		cmocka_unit_test(never_answers),
		cmocka_unit_test(too_big_for_slot),
		cmocka_unit_test(bad_options),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
