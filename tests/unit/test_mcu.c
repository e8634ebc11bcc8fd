/* Unit tests: MCU firmware prediction (issue 15): item kind 8
 * (bsdiff-mcu-predict) for Thumb-2, Xtensa and RV32 on synthetic
 * instruction streams whose code shifts; wrong architecture / base guesses
 * that still round-trip; several images in one file (map version 3);
 * deltas without kind 8; damaged kind-8 items. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dg_delta.h"
#include "dg_err.h"
#include "dg_mcu.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint32_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

#define BASE 0x08000000u
#define NFUNC 600

static void
put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Thumb-2 BL from pc to dst */
static void
thumb_bl(uint8_t *p, uint32_t pc, uint32_t dst)
{
	int32_t off = (int32_t)(dst - (pc + 4));
	uint32_t u = (uint32_t)off, s = (u >> 24) & 1u, i1 = (u >> 23) & 1u, i2 = (u >> 22) & 1u;
	uint32_t j1 = (~(i1 ^ s)) & 1u, j2 = (~(i2 ^ s)) & 1u;

	put16(p, 0xF000u | s << 10 | ((u >> 12) & 0x3FFu));
	put16(p + 2, 0xD000u | j1 << 13 | j2 << 11 | ((u >> 1) & 0x7FFu));
}

/* Xtensa CALL0 from pc to dst (dst 4-aligned) */
static void
xt_call0(uint8_t *p, uint32_t pc, uint32_t dst)
{
	uint32_t off = ((dst - ((pc & ~3u) + 4)) >> 2) & 0x3FFFFu, w = 0x05u | off << 6;

	p[0] = (uint8_t)w;
	p[1] = (uint8_t)(w >> 8);
	p[2] = (uint8_t)(w >> 16);
}

/* RV32 JAL ra from pc to dst */
static void
rv_jal(uint8_t *p, uint32_t pc, uint32_t dst)
{
	uint32_t u = dst - pc;
	uint32_t w = 0xEFu | ((u >> 20) & 1u) << 31 | ((u >> 1) & 0x3FFu) << 21 | ((u >> 11) & 1u) << 20 |
		     ((u >> 12) & 0xFFu) << 12;

	dg_mcu_wr32(p, w);
}

/* A synthetic image: NFUNC functions of filler instructions, each calling
 * a few others; a table of function pointers at the end (abs32). With
 * insert, a new function of extra bytes goes in front of function 3, so
 * everything after it shifts. Function bodies are fixed by seed. */
static uint32_t insert_at; /* source offset where the insertion goes */
static int with_returns;   /* each function ends with a return (mixed images) */
static uint64_t seed_mix;  /* another image of the same shape */

static uint8_t *
make_image(dg_mcu_arch a, int insert, size_t *len)
{
	uint32_t start[NFUNC + 1], flen[NFUNC], pos = 64, extra = insert ? 236 : 0;
	uint8_t *b = calloc(1, 1 << 20);
	uint64_t save = rng_state;
	unsigned step = a == DG_MCU_XTENSA ? 3 : a == DG_MCU_THUMB2 ? 2 : 4;

	assert_non_null(b);
	rng_state = 0x9E3779B97F4A7C15ull ^ seed_mix;
	for (int f = 0; f < NFUNC; f++) {
		if (f == 3)
			pos += extra;
		start[f] = pos;
		flen[f] = (uint32_t)(24 + (rnd() % 40) * 4) / 4 * 4 * (step == 3 ? 3 : 1);
		pos += flen[f];
		pos = (pos + 3u) & ~3u;
	}
	start[NFUNC] = pos;
	insert_at = start[3] - extra;
	/* vector-table-like head: pointers into the image */
	for (int k = 0; k < 16; k++)
		dg_mcu_wr32(b + 4 * k, (BASE + start[(k * 37) % NFUNC]) | (a == DG_MCU_THUMB2));
	if (insert) {
		for (uint32_t k = 0; k + 3 <= extra; k += step) {
			uint8_t *q = b + start[3] - extra + k;

			if (step == 3) {
				q[0] = 0xF0;
				q[1] = 0x20;
			} else {
				put16(q, 0x2001u + (k & 0x3Fu));
			}
		}
	}
	for (int f = 0; f < NFUNC; f++) {
		uint32_t o = start[f];

		for (uint32_t k = 0; k + step <= flen[f]; k += step) {
			uint32_t pc = BASE + o + k, r = rnd();

			if (with_returns && k + step == flen[f] && step != 3) {
				/* BX LR; C.JR ra + C.NOP */
				put16(b + o + k, step == 2 ? 0x4770u : 0x8082u);
				if (step == 4)
					put16(b + o + k + 2, 0x0001u);
			} else if (r % 5 == 0) {
				uint32_t dst = BASE + start[rnd() % NFUNC];

				if (step == 2 && k + 4 <= flen[f]) {
					thumb_bl(b + o + k, pc, dst);
					k += 2;
				} else if (step == 3) {
					xt_call0(b + o + k, pc, dst);
				} else if (step == 4) {
					rv_jal(b + o + k, pc, dst);
				}
			} else if (step == 2) {
				put16(b + o + k, 0x2000u | (r >> 8) % 8u << 8 | (r >> 12) % 4u);
			} else if (step == 3) {
				/* addi a2, a2, imm8 (RRI8, op0 2) */
				b[o + k] = 0x22;
				b[o + k + 1] = 0xC2;
				b[o + k + 2] = (uint8_t)((r >> 8) % 8u);
			} else {
				dg_mcu_wr32(b + o + k, 0x00050513u | ((r >> 8) % 8u) << 20);
			}
		}
		(void)rnd();
	}
	for (int f = 0; f < NFUNC; f++)
		dg_mcu_wr32(b + pos + 4 * (uint32_t)f, (BASE + start[f]) | (a == DG_MCU_THUMB2));
	pos += 4 * NFUNC;
	rng_state = save;
	*len = pos;
	return b;
}

static size_t
diff_apply(const uint8_t *s, size_t n, const uint8_t *t, size_t m, int arch, int base_set,
	   uint32_t base, char *method)
{
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;
	uint8_t *d = NULL, *out = NULL;
	size_t dl = 0, ol = 0;

	o.allow_larger = 1;
	o.level = 3;
	o.mcu_arch = arch;
	o.mcu_base_set = base_set;
	o.mcu_base = base;
	assert_int_equal(dg_delta_diff_mem(s, n, t, m, &o, &d, &dl, &st), DG_OK);
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol), DG_OK);
	assert_int_equal(ol, m);
	assert_memory_equal(out, t, m);
	if (method)
		snprintf(method, 64, "%s", st.method);
	free(d);
	free(out);
	return dl;
}

/* The prediction of each ISA is chosen on its shifted code and beats the
 * plain bsdiff of the same pair. */
static void
isa_case(dg_mcu_arch a, const char *want)
{
	size_t n, m, with, without;
	uint8_t *s = make_image(a, 0, &n), *t = make_image(a, 1, &m);
	char method[64];

	assert_true(m > n);
	with = diff_apply(s, n, t, m, (int)a, 1, BASE, method);
	without = diff_apply(s, n, t, m, DG_DELTA_MCU_OFF, 0, 0, NULL);
	print_message("%s: %zu bytes predicted (%s), %zu without\n", want, with, method, without);
	assert_non_null(strstr(method, want));
	assert_true(with < without);
	free(s);
	free(t);
}

static void test_thumb2(void **state) { isa_case(DG_MCU_THUMB2, "thumb2-predict"); }
static void test_xtensa(void **state) { isa_case(DG_MCU_XTENSA, "xtensa-predict"); }
static void test_rv32(void **state) { isa_case(DG_MCU_RV32, "rv32-predict"); }


static int64_t
shift_insert(void *ctx, uint64_t pos)
{
	return pos >= *(uint32_t *)ctx ? 236 : 0;
}

/* The prediction alone, with the exact shift of the insertion: the
 * predicted source equals the target everywhere (code and pointer table)
 * but the inserted function. */
static void
exact_case(dg_mcu_arch a)
{
	size_t n, m, bad = 0;
	uint8_t *s = make_image(a, 0, &n), *t = make_image(a, 1, &m);
	uint32_t at = insert_at;
	dg_mcu_map map;

	dg_mcu_flat(&map, a, BASE, n);
	assert_int_not_equal(memcmp(s + at, t + at + 236, n - at), 0);
	dg_mcu_predict(s, n, &map, shift_insert, &at);
	for (size_t k = 0; k < at; k++)
		bad += s[k] != t[k];
	for (size_t k = at; k < n; k++)
		bad += s[k] != t[k + 236];
	print_message("%s: %zu bytes differ after prediction\n", dg_mcu_arch_name(a), bad);
	assert_int_equal(bad, 0);
	free(s);
	free(t);
}

static void test_exact(void **state)
{
	exact_case(DG_MCU_THUMB2);
	exact_case(DG_MCU_RV32);
	exact_case(DG_MCU_XTENSA);
}

/* Wrong guesses: every arch over random bytes and over another ISA's code,
 * garbage bases: all round-trip. */
static void
test_wrong_guess(void **state)
{
	size_t n = 70000, m, sn;
	uint8_t *r = malloc(n), *r2 = malloc(n), *s, *t;
	const uint32_t bases[] = { 0, 0xFFFFFFF0u, 0x7FFFFFFFu, 0x12345677u };

	for (size_t i = 0; i < n; i++)
		r[i] = (uint8_t)rnd();
	memcpy(r2, r, n);
	memmove(r2 + 1000, r + 900, n - 1000);
	for (int a = 1; a < DG_MCU_ARCH_MAX_; a++) {
		diff_apply(r, n, r2, n, a, 0, 0, NULL);
		for (size_t k = 0; k < sizeof(bases) / sizeof(bases[0]); k++)
			diff_apply(r, n, r2, n, a, 1, bases[k], NULL);
	}
	/* Thumb-2 code predicted as Xtensa and RV32 at the wrong base */
	s = make_image(DG_MCU_THUMB2, 0, &sn);
	t = make_image(DG_MCU_THUMB2, 1, &m);
	diff_apply(s, sn, t, m, DG_MCU_XTENSA, 1, 0x40000000u, NULL);
	diff_apply(s, sn, t, m, DG_MCU_RV32, 1, 3, NULL);
	diff_apply(s, sn, t, m, DG_MCU_THUMB2, 1, 0xFFFFF000u, NULL);
	free(s);
	free(t);
	free(r);
	free(r2);
}

static int64_t
shift_half(void *ctx, uint64_t pos)
{
	return pos >= *(uint32_t *)ctx ? 1200 : 0;
}

/* Map versions 1 and 2 on Xtensa: an L32R whose literal is more than
 * 16 KiB back, or a J of more than 4 KiB, across a shift is rewritten by
 * version 1 only; nearer ones (up to both ends of the near range) and
 * CALL0 the same way by both. The cases sit at multiples of 3 so that the
 * decoder, stepping over zero bytes, meets them. */
static void
test_xtensa_map_versions(void **state)
{
	enum { N = 65536, CUT = 30000 };
	uint32_t cut = CUT;
	dg_mcu_map m1, m2;
	static const struct { uint32_t at; int32_t d; int j; int near; } c[] = {
		{ 45000, -20480, 0, 0 }, /* L32R, literal 20 KiB back */
		{ 42000, -16388, 0, 0 }, /* L32R, 16 KiB + 4 back */
		{ 40002, -16384, 0, 1 }, /* L32R, exactly 16 KiB back */
		{ 34002, -8192, 0, 1 },  /* L32R, 8 KiB back */
		{ 36000, -8192, 1, 0 },  /* J offset 8 KiB back */
		{ 26001, 4100, 1, 0 },   /* J offset 4 KiB + 4 forward */
		{ 25998, 4096, 1, 1 },   /* J offset exactly 4 KiB forward */
		{ 33000, -4096, 1, 1 },  /* J offset exactly 4 KiB back */
		{ 33501, -4100, 1, 0 },  /* J offset 4 KiB + 4 back */
		{ 30501, -1024, 1, 1 },  /* J offset 1 KiB back */
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint8_t *b0 = calloc(1, N), *b1 = calloc(1, N), *b2 = calloc(1, N);
		uint8_t *q = b0 + c[i].at;

		assert_true(b0 && b1 && b2);
		if (c[i].j) { /* J: target pc + 4 + offset d */
			uint32_t off = (uint32_t)c[i].d & 0x3FFFFu;

			q[0] = (uint8_t)(0x06u | off << 6);
			q[1] = (uint8_t)(off >> 2);
			q[2] = (uint8_t)(off >> 10);
		} else { /* L32R a2: literal ((pc + 3) & ~3) + d */
			uint32_t imm = ((uint32_t)c[i].d >> 2) & 0xFFFFu;

			q[0] = 0x21;
			q[1] = (uint8_t)imm;
			q[2] = (uint8_t)(imm >> 8);
		}
		xt_call0(b0 + 60000, BASE + 60000, BASE + 1000);
		memcpy(b1, b0, N);
		memcpy(b2, b0, N);
		dg_mcu_flat(&m2, DG_MCU_XTENSA, BASE, N);
		assert_int_equal(dg_mcu_map_version(&m2), DG_MCU_MAP_V2);
		m1 = m2;
		m1.version = DG_MCU_MAP_V1;
		dg_mcu_predict(b1, N, &m1, shift_half, &cut);
		dg_mcu_predict(b2, N, &m2, shift_half, &cut);
		/* version 1 rewrote it (it crosses the cut) */
		assert_int_not_equal(memcmp(b1 + c[i].at, b0 + c[i].at, 3), 0);
		if (c[i].near)
			assert_memory_equal(b2 + c[i].at, b1 + c[i].at, 3);
		else
			assert_memory_equal(b2 + c[i].at, b0 + c[i].at, 3);
		/* CALL0 across the cut: both moved it, the same way */
		assert_int_not_equal(memcmp(b1 + 60000, b0 + 60000, 3), 0);
		assert_memory_equal(b2 + 60000, b1 + 60000, 3);
		free(b0);
		free(b1);
		free(b2);
	}
}

/* Map bytes: valid ones parse, damaged ones are refused. */
static void
test_map_rw(void **state)
{
	dg_mcu_map m, back;
	uint8_t buf[512];
	size_t used, sz;

	memset(&m, 0, sizeof(m));
	dg_mcu_flat(&m, DG_MCU_RV32, 0x42000000u, 4096);
	sz = dg_mcu_map_size(&m);
	assert_true(sz <= sizeof(buf));
	dg_mcu_map_write(&m, buf);
	assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), 0);
	assert_int_equal(used, sz);
	assert_int_equal(back.arch, DG_MCU_RV32);
	assert_int_equal(back.n, 1);
	assert_int_equal(back.r[0].vaddr, 0x42000000u);
	/* a region past the source */
	assert_int_equal(dg_mcu_map_read(buf, sz, 100, &back, &used), -1);
	/* truncated */
	for (size_t k = 0; k < sz; k++)
		assert_int_equal(dg_mcu_map_read(buf, k, 4096, &back, &used), -1);
	/* versions: RV32 and Thumb-2 maps are written as 1, Xtensa as 2;
	 * both read back with their version; 2 is refused for non-Xtensa, 0
	 * and 3 for all */
	assert_int_equal(buf[0], DG_MCU_MAP_V1);
	assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), 0);
	assert_int_equal(back.version, DG_MCU_MAP_V1);
	buf[0] = DG_MCU_MAP_V2;
	assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), -1);
	dg_mcu_flat(&m, DG_MCU_XTENSA, 0x40201010u, 4096);
	dg_mcu_map_write(&m, buf);
	assert_int_equal(buf[0], DG_MCU_MAP_V2);
	assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), 0);
	assert_int_equal(back.version, DG_MCU_MAP_V2);
	buf[0] = DG_MCU_MAP_V1;
	assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), 0);
	assert_int_equal(back.version, DG_MCU_MAP_V1);
	for (unsigned v = 0; v < 256; v += 3) {
		buf[0] = (uint8_t)v;
		if (v != DG_MCU_MAP_V1 && v != DG_MCU_MAP_V2)
			assert_int_equal(dg_mcu_map_read(buf, sz, 4096, &back, &used), -1);
	}
	assert_int_equal(dg_mcu_arch_from_name("thumb2"), DG_MCU_THUMB2);
	assert_int_equal(dg_mcu_arch_from_name("bogus"), DG_MCU_NONE);
}

/* A Cortex-M image (vector table: SP, then odd handlers) or an RV32 one
 * (no header), ending in zero padding as images written to flash are */
static uint8_t *
mixed_part(dg_mcu_arch a, int insert, size_t *len)
{
	uint8_t *b;

	with_returns = 1;
	b = make_image(a, insert, len);
	with_returns = 0;
	if (a == DG_MCU_THUMB2) {
		/* initial SP; the reset handler is the first function */
		dg_mcu_wr32(b, 0x20008000u);
		dg_mcu_wr32(b + 4, (BASE + 64u) | 1u);
	}
	*len = (*len + 32 + 255) & ~(size_t)255; /* calloc'd: zeros */
	return b;
}

/* thumb2 + rv32 + thumb2, v1 or v2 (insert); offsets of the parts */
static uint8_t *
mixed_file(int insert, size_t *len, size_t off[3])
{
	static const dg_mcu_arch arch[3] = { DG_MCU_THUMB2, DG_MCU_RV32, DG_MCU_THUMB2 };
	uint8_t *f = malloc(3 << 20);
	size_t pos = 0;

	assert_non_null(f);
	for (int i = 0; i < 3; i++) {
		size_t l;
		uint8_t *p;

		seed_mix = (uint64_t)i << 40;
		p = mixed_part(arch[i], insert, &l);
		seed_mix = 0;

		off[i] = pos;
		memcpy(f + pos, p, l);
		pos += l;
		free(p);
	}
	*len = pos;
	return f;
}

/* Several images in one file: found where they start, each with its own
 * architecture and base; a single image is one image; the mixed
 * prediction is chosen and beats one flat map over the whole file. */
static void
test_mixed(void **state)
{
	size_t n, m, so[3], to[3], mixed, flat, none, l;
	uint8_t *s = mixed_file(0, &n, so), *t = mixed_file(1, &m, to), *one;
	dg_mcu_map map;
	char method[64];

	assert_int_equal(dg_mcu_detect_mixed(s, n, &map), 3);
	assert_int_equal(map.version, DG_MCU_MAP_V3);
	assert_int_equal(map.n, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(map.r[i].image, i);
		assert_int_equal(map.r[i].soff, so[i]);
		assert_int_equal(map.r[i].len, (i < 2 ? so[i + 1] : n) - so[i]);
		assert_int_equal(map.r[i].vaddr, BASE);
		assert_int_equal(map.r[i].flags, DG_MCU_CODE | DG_MCU_ABS);
	}
	assert_int_equal(map.r[0].arch, DG_MCU_THUMB2);
	assert_int_equal(map.r[1].arch, DG_MCU_RV32);
	assert_int_equal(map.r[2].arch, DG_MCU_THUMB2);
	assert_int_equal(dg_mcu_detect_mixed(t, m, &map), 3);
	assert_int_equal(map.r[1].soff, to[1]);
	assert_int_equal(map.r[2].soff, to[2]);
	/* one image alone is not a mixed one */
	one = mixed_part(DG_MCU_THUMB2, 0, &l);
	assert_int_equal(dg_mcu_detect_mixed(one, l, &map), 1);
	free(one);

	mixed = diff_apply(s, n, t, m, 0, 0, 0, method);
	flat = diff_apply(s, n, t, m, DG_MCU_THUMB2, 1, BASE, NULL);
	none = diff_apply(s, n, t, m, DG_DELTA_MCU_OFF, 0, 0, NULL);
	print_message("mixed: %zu bytes (%s), one thumb2 map %zu, none %zu\n", mixed, method, flat,
		      none);
	assert_non_null(strstr(method, "mixed-predict"));
	assert_true(mixed < flat);
	assert_true(mixed < none);
	free(s);
	free(t);
}

/* Version 3 maps: each region's architecture and image round-trip; an
 * architecture of 0 in a version 3 region, image bytes in a version 1
 * map, more than 16 regions below version 3 and more than 32 are refused. */
static void
test_map_v3(void **state)
{
	dg_mcu_map m, back;
	uint8_t buf[4 + 20 * 40];
	size_t used, sz;

	memset(&m, 0, sizeof(m));
	m.version = DG_MCU_MAP_V3;
	m.arch = DG_MCU_THUMB2;
	m.n = 20;
	for (unsigned i = 0; i < m.n; i++)
		m.r[i] = (dg_mcu_region){ 1000 * i, 1100 * i, 1000, BASE, DG_MCU_CODE | DG_MCU_ABS,
					  (uint8_t)(i % 2 ? DG_MCU_RV32 : DG_MCU_XTENSA),
					  (uint8_t)(i / 2) };
	sz = dg_mcu_map_size(&m);
	dg_mcu_map_write(&m, buf);
	assert_int_equal(buf[0], DG_MCU_MAP_V3);
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), 0);
	assert_int_equal(used, sz);
	assert_int_equal(back.n, 20);
	for (unsigned i = 0; i < m.n; i++) {
		assert_int_equal(back.r[i].arch, m.r[i].arch);
		assert_int_equal(back.r[i].image, m.r[i].image);
		assert_int_equal(back.r[i].toff, m.r[i].toff);
	}
	/* Xtensa regions of a version 3 map take the version 2 rules */
	assert_true(dg_mcu_map_version(&back) >= DG_MCU_MAP_V2);
	/* 20 regions: only version 3 */
	buf[0] = DG_MCU_MAP_V1;
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), -1);
	buf[0] = DG_MCU_MAP_V3;
	buf[4 + 20 * 5 + 17] = 0;
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), -1);
	buf[4 + 20 * 5 + 17] = DG_MCU_ARCH_MAX_;
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), -1);
	buf[4 + 20 * 5 + 17] = DG_MCU_RV32;
	buf[4 + 20 * 5 + 19] = 1;
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), -1);
	buf[4 + 20 * 5 + 19] = 0;
	assert_int_equal(dg_mcu_map_read(buf, sz, 20000, &back, &used), 0);
	buf[2] = 33;
	assert_int_equal(dg_mcu_map_read(buf, sizeof(buf), 40000, &back, &used), -1);
	/* a version 1 map with an image byte */
	dg_mcu_flat(&m, DG_MCU_THUMB2, BASE, 4096);
	dg_mcu_map_write(&m, buf);
	assert_int_equal(dg_mcu_map_read(buf, dg_mcu_map_size(&m), 4096, &back, &used), 0);
	buf[4 + 18] = 1;
	assert_int_equal(dg_mcu_map_read(buf, dg_mcu_map_size(&m), 4096, &back, &used), -1);
}

/* A delta without kind 8 (prediction off) applies as before; a kind-8
 * delta with any byte changed never yields a wrong target and never
 * crashes: it is refused or (the change is in slack) gives the target. */
static void
test_damaged_kind8(void **state)
{
	size_t n, m, dl = 0, ol;
	uint8_t *s = make_image(DG_MCU_THUMB2, 0, &n), *t = make_image(DG_MCU_THUMB2, 1, &m);
	uint8_t *d = NULL, *out = NULL;
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;
	int refused = 0;

	diff_apply(s, n, t, m, DG_DELTA_MCU_OFF, 0, 0, NULL);
	o.allow_larger = 1;
	o.mcu_arch = DG_MCU_THUMB2;
	o.mcu_base_set = 1;
	o.mcu_base = BASE;
	assert_int_equal(dg_delta_diff_mem(s, n, t, m, &o, &d, &dl, &st), DG_OK);
	assert_non_null(strstr(st.method, "thumb2-predict"));
	for (int i = 0; i < 400; i++) {
		size_t at = i < 200 ? (size_t)i : rnd() % dl;
		uint8_t save = d[at];
		dg_err e;

		d[at] ^= (uint8_t)(1u + rnd() % 255u);
		e = dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol);
		if (e == DG_OK) {
			assert_int_equal(ol, m);
			assert_memory_equal(out, t, m);
			free(out);
		} else {
			assert_null(out);
			assert_non_null(dg_strerror(e));
			refused++;
		}
		out = NULL;
		d[at] = save;
	}
	assert_true(refused > 300);
	/* truncations */
	for (size_t k = 0; k < dl; k += 1 + dl / 97) {
		assert_int_not_equal(dg_delta_apply_mem(s, n, d, k, NULL, &out, &ol), DG_OK);
		assert_null(out);
	}
	free(d);
	free(s);
	free(t);
}

/* Deltas written before kind 8 existed (committed with the fuzz corpus on
 * 2026-11-23: kinds 3, 5, 6, 7) still apply: DG_OK means the target's
 * SHA-256 in the header matched. mcu-xtensa-map1 is a kind-8 Xtensa delta
 * with a version-1 map (60000 bytes of the lx106 corpus's IROM, --arch
 * xtensa --base 0x40201010, written before version 2): it fails with the
 * version-2 rules, so it checks that version 1 keeps its own.
 * mcu-mixed-map3 is a version-3 map (several images in one file: a
 * Cortex-M image, an ESP32-C3 app image, the Cortex-M image again, made by
 * tests/mcu-fw.py with 90 functions), as written on 2026-12-08. */
static void
test_older_deltas(void **state)
{
	static const char *names[] = { "elf-x86", "elf-x86-64-predict", "archive-gzip",
				       "archive-chunked", "mcu-xtensa-map1", "mcu-mixed-map3" };
	const char *top = getenv("top_srcdir");
	char path[4096];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		FILE *f;
		uint8_t *b = malloc(1 << 20), *out = NULL;
		size_t n, l, ol = 0;

		assert_non_null(b);
		snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/delta/%s", top ? top : "..",
			 names[i]);
		f = fopen(path, "rb");
		assert_non_null(f);
		n = fread(b, 1, 1 << 20, f);
		fclose(f);
		assert_true(n > 2);
		l = (size_t)b[0] | (size_t)b[1] << 8;
		assert_true(l <= n - 2);
		assert_int_equal(dg_delta_apply_mem(b + 2, l, b + 2 + l, n - 2 - l, NULL, &out, &ol),
				 DG_OK);
		assert_true(ol > 0);
		free(out);
		free(b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact),
		cmocka_unit_test(test_thumb2),
		cmocka_unit_test(test_xtensa),
		cmocka_unit_test(test_rv32),
		cmocka_unit_test(test_wrong_guess),
		cmocka_unit_test(test_xtensa_map_versions),
		cmocka_unit_test(test_map_rw),
		cmocka_unit_test(test_mixed),
		cmocka_unit_test(test_map_v3),
		cmocka_unit_test(test_damaged_kind8),
		cmocka_unit_test(test_older_deltas),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
