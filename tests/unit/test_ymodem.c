/* dg_ymodem: the YMODEM sender engine against a receiver played here,
 * byte by byte, as the YMODEM specification has it. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dg_sproto.h"

#define SOH 0x01
#define STX 0x02
#define EOT 0x04
#define ACK 0x06
#define NAK 0x15
#define CAN 0x18

/* what the engine did */
static struct {
	uint8_t out[1 << 20];
	size_t wr, rd;          /* written by the engine, consumed by the test */
	int timer_ms;
	int done, ok;
	uint32_t ext;
	unsigned retransmits;
	uint64_t progress;
	int write_fails;
} io;

static int
io_write(void *arg, const void *buf, size_t n)
{
	(void)arg;
	if (io.write_fails)
		return -1;
	assert_true(io.wr + n <= sizeof(io.out));
	memcpy(io.out + io.wr, buf, n);
	io.wr += n;
	return 0;
}

static void
io_timer(void *arg, int ms)
{
	(void)arg;
	io.timer_ms = ms;
}

static void
io_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	assert_true(done >= io.progress);
	assert_true(done <= total);
	io.progress = done;
}

static void
io_done(void *arg, int ok, uint32_t ext, const char *detail, unsigned retransmits)
{
	(void)arg;
	assert_non_null(detail);
	assert_int_equal(io.done, 0); /* exactly once */
	io.done = 1;
	io.ok = ok;
	io.ext = ext;
	io.retransmits = retransmits;
}

static const dg_sproto_io fake_io = {
	.write = io_write, .timer = io_timer, .progress = io_progress, .done = io_done,
};

static uint16_t
ref_crc(const uint8_t *p, size_t n)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static dg_sproto *
mk(const uint8_t *img, uint64_t size, const char *name, const char *const *opts, unsigned retries)
{
	dg_sproto_params p;
	char why[160];
	dg_sproto *s;

	memset(&io, 0, sizeof(io));
	memset(&p, 0, sizeof(p));
	p.image = img;
	p.size = size;
	p.name = name;
	p.options = opts;
	p.unit_timeout_ms = 500;
	p.max_retries = retries;
	s = dg_sproto_ymodem.new(&p, &fake_io, why, sizeof(why));
	assert_non_null(s);
	dg_sproto_ymodem.start(s);
	assert_int_equal(io.timer_ms, 500);
	return s;
}

static void
feed(dg_sproto *s, uint8_t c)
{
	dg_sproto_ymodem.input(s, &c, 1);
}

/* Takes one block from the engine's output: returns its seq and copies
 * the payload (len set to 128/1024); crc says which check to verify. */
static int
take_block(uint8_t *payload, size_t *len, int crc)
{
	const uint8_t *p = io.out + io.rd;
	size_t bsz, tail = crc ? 2 : 1;

	assert_true(io.wr - io.rd >= 3);
	assert_true(p[0] == SOH || p[0] == STX);
	bsz = p[0] == STX ? 1024 : 128;
	assert_int_equal(io.wr - io.rd, 3 + bsz + tail);
	assert_int_equal((uint8_t)(p[1] ^ p[2]), 0xFF);
	if (crc) {
		uint16_t c = ref_crc(p + 3, bsz);

		assert_int_equal(p[3 + bsz], c >> 8);
		assert_int_equal(p[3 + bsz + 1], c & 0xFF);
	} else {
		uint8_t sum = 0;
		size_t i;

		for (i = 0; i < bsz; i++)
			sum = (uint8_t)(sum + p[3 + i]);
		assert_int_equal(p[3 + bsz], sum);
	}
	memcpy(payload, p + 3, bsz);
	*len = bsz;
	io.rd = io.wr;
	return p[1];
}

static void
take_byte(uint8_t want)
{
	assert_int_equal(io.wr - io.rd, 1);
	assert_int_equal(io.out[io.rd], want);
	io.rd++;
}

/* Plays a whole well-behaved receiver ('C' or NAK mode); returns the
 * received file in rx (size from block 0). */
static void
receive_all(dg_sproto *s, int crc, const char *want_name, uint8_t *rx, uint64_t *rxsize)
{
	uint8_t blk[1024];
	size_t len, got = 0;
	uint64_t size;
	uint8_t seq = 1;
	char *end;

	feed(s, crc ? 'C' : NAK);
	assert_int_equal(take_block(blk, &len, crc), 0);
	assert_int_equal(len, 128);
	assert_string_equal((char *)blk, want_name);
	size = strtoull((char *)blk + strlen(want_name) + 1, &end, 10);
	assert_int_equal(*end, 0);
	feed(s, ACK);
	assert_int_equal(io.wr, io.rd); /* nothing until asked again */
	feed(s, crc ? 'C' : NAK);
	while (io.out[io.rd] != EOT) {
		int q = take_block(blk, &len, crc);

		assert_int_equal(q, seq);
		if (!crc)
			assert_int_equal(len, 128);
		memcpy(rx + got, blk, len);
		got += len;
		seq++;
		feed(s, ACK);
	}
	take_byte(EOT);
	feed(s, NAK);
	take_byte(EOT);
	feed(s, ACK);
	assert_int_equal(io.done, 0);
	feed(s, crc ? 'C' : NAK);
	assert_int_equal(take_block(blk, &len, crc), 0);
	assert_int_equal(len, 128);
	for (len = 0; len < 128; len++)
		assert_int_equal(blk[len], 0);
	feed(s, ACK);
	assert_true(got >= size);
	*rxsize = size;
}

static uint8_t img[50000], rx[60000];

static void
fill(void)
{
	size_t i;
	uint32_t x = 12345;

	for (i = 0; i < sizeof(img); i++) {
		x = x * 1103515245u + 12345u;
		img[i] = (uint8_t)(x >> 16);
	}
}

static void
test_crc_mode(void **state)
{
	uint64_t sizes[] = { 50000, 3072, 1, 130, 0 };
	size_t i;

	(void)state;
	fill();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		dg_sproto *s = mk(img, sizes[i], "dir/fw.bin", NULL, 0);
		uint64_t n;

		memset(rx, 0xEE, sizeof(rx));
		receive_all(s, 1, "fw.bin", rx, &n);
		assert_int_equal(io.done, 1);
		assert_int_equal(io.ok, 1);
		assert_int_equal(io.retransmits, 0);
		assert_int_equal(io.timer_ms, -1);
		assert_int_equal(n, sizes[i]);
		assert_int_equal(io.progress, sizes[i]);
		assert_memory_equal(rx, img, (size_t)n);
		dg_sproto_ymodem.free(s);
	}
}

static void
test_crc_1k_blocks_and_short_tail(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;

	(void)state;
	fill();
	s = mk(img, 1024 + 100, "a", NULL, 0);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	feed(s, 'C');
	assert_int_equal(take_block(blk, &len, 1), 1);
	assert_int_equal(len, 1024);
	feed(s, ACK);
	assert_int_equal(take_block(blk, &len, 1), 2);
	assert_int_equal(len, 128); /* the tail fits a SOH block */
	assert_int_equal(blk[100], 0x1A);
	dg_sproto_ymodem.free(s);
}

static void
test_nak_fallback(void **state)
{
	dg_sproto *s;
	uint64_t n;

	(void)state;
	fill();
	s = mk(img, 5000, "fw.bin", NULL, 0);
	receive_all(s, 0, "fw.bin", rx, &n);
	assert_int_equal(io.ok, 1);
	assert_int_equal(n, 5000);
	assert_memory_equal(rx, img, 5000);
	dg_sproto_ymodem.free(s);
}

static void
test_block128_option(void **state)
{
	const char *const opts[] = { "block=128", NULL };
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;

	(void)state;
	fill();
	s = mk(img, 2000, "fw.bin", opts, 0);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	feed(s, 'C');
	assert_int_equal(take_block(blk, &len, 1), 1);
	assert_int_equal(len, 128);
	dg_sproto_ymodem.free(s);
}

/* A damaged ACK is ignored; the timeout resends the same block, which a
 * receiver acknowledges again. */
static void
test_corrupted_ack(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024], first[1024];
	size_t len;

	(void)state;
	fill();
	s = mk(img, 3000, "fw.bin", NULL, 0);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	feed(s, 'C');
	assert_int_equal(take_block(first, &len, 1), 1);
	feed(s, ACK ^ 0x80);
	assert_int_equal(io.wr, io.rd);
	dg_sproto_ymodem.timeout(s);
	assert_int_equal(take_block(blk, &len, 1), 1);
	assert_memory_equal(blk, first, len);
	feed(s, ACK);
	assert_int_equal(take_block(blk, &len, 1), 2);
	/* a NAK resends at once */
	feed(s, NAK);
	assert_int_equal(take_block(blk, &len, 1), 2);
	feed(s, ACK);
	assert_int_equal(take_block(blk, &len, 1), 3);
	feed(s, ACK);
	take_byte(EOT);
	feed(s, NAK);
	take_byte(EOT);
	feed(s, ACK);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	assert_int_equal(io.ok, 1);
	assert_int_equal(io.retransmits, 2);
	dg_sproto_ymodem.free(s);
}

/* After the acknowledged EOT the file is complete: a receiver that never
 * asks for (or acknowledges) the closing block does not fail it. */
static void
test_unacknowledged_batch_end(void **state)
{
	int ask;

	(void)state;
	fill();
	for (ask = 0; ask < 2; ask++) {
		dg_sproto *s = mk(img, 100, "fw.bin", NULL, 0);
		uint8_t blk[1024];
		size_t len;

		feed(s, 'C');
		take_block(blk, &len, 1);
		feed(s, ACK);
		feed(s, 'C');
		take_block(blk, &len, 1);
		feed(s, ACK);
		take_byte(EOT);
		feed(s, ACK); /* lrzsz acknowledges the first EOT at once */
		if (ask) {
			feed(s, 'C');
			take_block(blk, &len, 1);
		}
		assert_int_equal(io.done, 0);
		dg_sproto_ymodem.timeout(s);
		assert_int_equal(io.done, 1);
		assert_int_equal(io.ok, 1);
		dg_sproto_ymodem.free(s);
	}
}

static void
test_can_can(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;

	(void)state;
	fill();
	s = mk(img, 3000, "fw.bin", NULL, 0);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	feed(s, 'C');
	take_block(blk, &len, 1);
	/* a single CAN (line noise) is not a cancel */
	feed(s, CAN);
	feed(s, ACK);
	assert_int_equal(io.done, 0);
	take_block(blk, &len, 1);
	{
		const uint8_t cc[] = { CAN, CAN, ACK };

		dg_sproto_ymodem.input(s, cc, sizeof(cc));
	}
	assert_int_equal(io.done, 1);
	assert_int_equal(io.ok, 0);
	assert_int_equal(io.ext, DG_SPROTO_EXT_CANCELED);
	assert_int_equal(io.wr, io.rd); /* nothing after the cancel */
	assert_int_equal(io.timer_ms, -1);
	dg_sproto_ymodem.free(s);
}

static void
test_abort_sends_can(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;

	(void)state;
	fill();
	s = mk(img, 3000, "fw.bin", NULL, 0);
	feed(s, 'C');
	take_block(blk, &len, 1);
	dg_sproto_ymodem.abort(s);
	assert_true(io.wr - io.rd >= 2);
	assert_int_equal(io.out[io.rd], CAN);
	assert_int_equal(io.out[io.rd + 1], CAN);
	assert_int_equal(io.done, 0); /* abort does not report */
	assert_int_equal(io.timer_ms, -1);
	io.rd = io.wr;
	feed(s, ACK);
	assert_int_equal(io.wr, io.rd);
	dg_sproto_ymodem.free(s);
}

static void
test_timeouts_exhaust_retries(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;
	unsigned i;

	(void)state;
	fill();
	s = mk(img, 3000, "fw.bin", NULL, 4);
	feed(s, 'C');
	take_block(blk, &len, 1);
	feed(s, ACK);
	feed(s, 'C');
	take_block(blk, &len, 1);
	for (i = 0; i < 4; i++) {
		dg_sproto_ymodem.timeout(s);
		assert_int_equal(take_block(blk, &len, 1), 1);
		assert_int_equal(io.done, 0);
	}
	dg_sproto_ymodem.timeout(s);
	assert_int_equal(io.done, 1);
	assert_int_equal(io.ok, 0);
	assert_int_equal(io.ext, DG_SPROTO_EXT_RETRIES);
	assert_int_equal(io.retransmits, 4);
	dg_sproto_ymodem.free(s);
}

static void
test_nak_exhaust_retries(void **state)
{
	dg_sproto *s;
	uint8_t blk[1024];
	size_t len;
	unsigned i;

	(void)state;
	fill();
	s = mk(img, 3000, "fw.bin", NULL, 3);
	feed(s, 'C');
	take_block(blk, &len, 1);
	for (i = 0; i < 3; i++) {
		feed(s, NAK);
		assert_int_equal(take_block(blk, &len, 1), 0);
	}
	feed(s, NAK);
	assert_int_equal(io.ext, DG_SPROTO_EXT_RETRIES);
	dg_sproto_ymodem.free(s);
}

static void
test_silent_receiver_times_out(void **state)
{
	dg_sproto *s;
	unsigned i;

	(void)state;
	s = mk(img, 10, "fw.bin", NULL, 3);
	for (i = 0; i < 3; i++) {
		dg_sproto_ymodem.timeout(s);
		assert_int_equal(io.wr, 0);
		assert_int_equal(io.timer_ms, 500);
	}
	feed(s, 'x'); /* noise does not start the session */
	assert_int_equal(io.wr, 0);
	dg_sproto_ymodem.timeout(s);
	assert_int_equal(io.done, 1);
	assert_int_equal(io.ext, DG_SPROTO_EXT_TIMEOUT);
	dg_sproto_ymodem.free(s);
}

static void
test_write_failure_is_line_gone(void **state)
{
	dg_sproto *s;

	(void)state;
	s = mk(img, 10, "fw.bin", NULL, 0);
	io.write_fails = 1;
	feed(s, 'C');
	assert_int_equal(io.done, 1);
	assert_int_equal(io.ext, DG_SPROTO_EXT_LINE_GONE);
	dg_sproto_ymodem.free(s);
}

static void
test_bad_params(void **state)
{
	const char *const bad[] = { "block=512", NULL };
	const char *const unk[] = { "speed=9", NULL };
	char longname[200], why[160];
	dg_sproto_params p;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.image = img;
	p.size = 1;
	p.name = "fw.bin";
	p.options = bad;
	assert_null(dg_sproto_ymodem.new(&p, &fake_io, why, sizeof(why)));
	assert_non_null(strstr(why, "block=512"));
	p.options = unk;
	assert_null(dg_sproto_ymodem.new(&p, &fake_io, why, sizeof(why)));
	assert_non_null(strstr(why, "speed=9"));
	p.options = NULL;
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	p.name = longname;
	assert_null(dg_sproto_ymodem.new(&p, &fake_io, why, sizeof(why)));
	assert_non_null(strstr(why, "name"));
}

static void
test_find(void **state)
{
	(void)state;
	assert_ptr_equal(dg_sproto_find("ymodem"), &dg_sproto_ymodem);
	assert_null(dg_sproto_find("zmodem"));
	assert_null(dg_sproto_find(NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc_mode),
		cmocka_unit_test(test_crc_1k_blocks_and_short_tail),
		cmocka_unit_test(test_nak_fallback),
		cmocka_unit_test(test_block128_option),
		cmocka_unit_test(test_corrupted_ack),
		cmocka_unit_test(test_unacknowledged_batch_end),
		cmocka_unit_test(test_can_can),
		cmocka_unit_test(test_abort_sends_can),
		cmocka_unit_test(test_timeouts_exhaust_retries),
		cmocka_unit_test(test_nak_exhaust_retries),
		cmocka_unit_test(test_silent_receiver_times_out),
		cmocka_unit_test(test_write_failure_is_line_gone),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
