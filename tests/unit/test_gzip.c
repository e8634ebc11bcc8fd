/* Unit tests: dg_gzip (header parsing, parameter search, bit-exact
 * recompression, streaming, rejections). */
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
#include <zlib.h>

#include "dg_gzip.h"
#include "dg_util.h"

#define DATA_LEN 400000

static uint8_t *data;
static char tmpdir[64];

/* Deterministic test data that compresses like firmware: runs of words,
 * repeated structures with small changes, and some noise. */
static void
make_data(uint8_t *p, size_t len, uint32_t seed)
{
	static const char *const words[] = { "update", "gateway", "delta", "image",
		"firmware", "\x7f" "ELF", "\x00\x00\x00\x00", "mov r0, r1", "bl 0x8000",
		"swupdate", "\xff\xff\xff\xff", "ext4" };
	uint32_t x = seed ? seed : 1;
	size_t i = 0;

	while (i < len) {
		uint32_t r;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		r = x % 100;
		if (r < 60) {
			const char *w = words[x % (sizeof(words) / sizeof(words[0]))];
			size_t n = strlen(w) ? strlen(w) : 4;

			while (n-- && i < len)
				p[i++] = (uint8_t)*w++;
		} else if (r < 80 && i > 300) {
			size_t back = 1 + (x >> 8) % 300, n = 3 + (x >> 20) % 40;

			while (n-- && i < len) {
				p[i] = p[i - back];
				i++;
			}
		} else {
			p[i++] = (uint8_t)(x >> 24);
		}
	}
}

/* A gzip file made by zlib itself (deflateInit2 with the gzip wrapper). */
static uint8_t *
zlib_gzip(const uint8_t *in, size_t len, int level, int mem, int strategy, int wbits,
    gz_header *hd, size_t *outlen)
{
	z_stream z;
	size_t cap;
	uint8_t *out;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, wbits + 16, mem, strategy), Z_OK);
	cap = deflateBound(&z, (uLong)len) + 4096;
	out = malloc(cap);
	assert_non_null(out);
	if (hd)
		assert_int_equal(deflateSetHeader(&z, hd), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	*outlen = cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* Probe gz, recompress from the decompressed bytes and compare. */
static void
assert_round_trip(const uint8_t *gz, size_t len, const uint8_t *raw, size_t rawlen)
{
	dg_gzip_info info;
	uint8_t *out = NULL;
	size_t outlen = 0;

	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_OK);
	assert_int_equal(info.raw_len, rawlen);
	assert_int_equal(info.member_len, len);
	assert_int_equal(info.crc, (uint32_t)crc32(0, raw, (uInt)rawlen));
	assert_int_equal(dg_gzip_compress(raw, rawlen, &info.params, info.header.raw,
	    info.header.len, &out, &outlen), DG_OK);
	assert_int_equal(outlen, len);
	assert_memory_equal(out, gz, len);
	free(out);
}

static void
test_zlib_every_level(void **state)
{
	int level;

	for (level = 1; level <= 9; level++) {
		size_t len;
		uint8_t *gz = zlib_gzip(data, DATA_LEN, level, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);
		dg_gzip_info info;

		assert_round_trip(gz, len, data, DATA_LEN);
		/* on this much data every level makes distinct bytes */
		assert_int_equal(dg_gzip_probe(gz, len, &info), DG_OK);
		assert_int_equal(info.params.level, level);
		assert_int_equal(info.params.mem_level, 8);
		free(gz);
	}
}

static void
test_zlib_other_params(void **state)
{
	static const int combos[][4] = {
		/* level, memLevel, strategy, windowBits */
		{ 6, 9, Z_DEFAULT_STRATEGY, 15 },
		{ 9, 9, Z_DEFAULT_STRATEGY, 15 },
		{ 6, 8, Z_FILTERED, 15 },
		{ 9, 9, Z_FILTERED, 15 },
		{ 5, 4, Z_DEFAULT_STRATEGY, 15 },
		{ 1, 1, Z_DEFAULT_STRATEGY, 15 },
		{ 6, 8, Z_DEFAULT_STRATEGY, 12 },
		{ 9, 8, Z_DEFAULT_STRATEGY, 9 },
		{ 6, 8, Z_RLE, 15 },
		{ 6, 8, Z_HUFFMAN_ONLY, 15 },
	};
	size_t i;

	for (i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
		size_t len;
		uint8_t *gz = zlib_gzip(data, DATA_LEN, combos[i][0], combos[i][1], combos[i][2],
		    combos[i][3], NULL, &len);

		assert_round_trip(gz, len, data, DATA_LEN);
		free(gz);
	}
}

static void
test_header_fields_survive(void **state)
{
	static char name[] = "rootfs.ext4", comment[] = "built by test";
	static unsigned char extra[] = { 'A', 'B', 4, 0, 1, 2, 3, 4 };
	gz_header hd;
	dg_gzip_info info;
	size_t len;
	uint8_t *gz;

	memset(&hd, 0, sizeof(hd));
	hd.time = 1700000000;
	hd.os = 3;
	hd.name = (Bytef *)name;
	hd.comment = (Bytef *)comment;
	hd.extra = extra;
	hd.extra_len = sizeof(extra);
	hd.hcrc = 1;
	gz = zlib_gzip(data, 5000, 9, 8, Z_DEFAULT_STRATEGY, 15, &hd, &len);
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_OK);
	assert_string_equal(info.header.name, name);
	assert_string_equal(info.header.comment, comment);
	assert_int_equal(info.header.extra_len, sizeof(extra));
	assert_memory_equal(info.header.extra, extra, sizeof(extra));
	assert_int_equal(info.header.mtime, 1700000000);
	assert_int_equal(info.header.os, 3);
	assert_true(info.header.flags & DG_GZIP_FHCRC);
	assert_round_trip(gz, len, data, 5000);
	/* a wrong header CRC is refused */
	gz[info.header.len - 1] ^= 1;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_FORMAT);
	free(gz);
}

static void
test_empty_and_tiny(void **state)
{
	size_t sizes[] = { 0, 1, 2, 100 }, i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len;
		uint8_t *gz = zlib_gzip(data, sizes[i], 6, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);

		assert_round_trip(gz, len, data, sizes[i]);
		free(gz);
	}
}

struct collect {
	uint8_t *p;
	size_t len, cap;
	int fail_after; /* fail the n-th call (0: never) */
	int calls;
};

static dg_err
collect(void *arg, const void *d, size_t n)
{
	struct collect *c = arg;

	if (c->fail_after && ++c->calls >= c->fail_after)
		return DG_ERR_NOSPC;
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->p = realloc(c->p, c->cap);
		assert_non_null(c->p);
	}
	memcpy(c->p + c->len, d, n);
	c->len += n;
	return DG_OK;
}

static void
test_stream_matches_one_shot(void **state)
{
	dg_gzip_params p = { 9, 8, DG_GZIP_DEFAULT, 15 };
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3 };
	struct collect c = { NULL, 0, 0, 0, 0 };
	uint8_t *one = NULL;
	size_t onelen, off = 0, step = 1;
	dg_gzip_stream *s;
	dg_err e;

	assert_int_equal(dg_gzip_compress(data, DATA_LEN, &p, hdr, sizeof(hdr), &one, &onelen), DG_OK);
	s = dg_gzip_stream_new(&p, hdr, sizeof(hdr), collect, &c, &e);
	assert_non_null(s);
	/* uneven pieces: 1, 3, 7, 15, ... bytes */
	while (off < DATA_LEN) {
		size_t n = step < DATA_LEN - off ? step : DATA_LEN - off;

		assert_int_equal(dg_gzip_stream_write(s, data + off, n), DG_OK);
		off += n;
		step = step * 2 + 1;
		if (step > 70000)
			step = 1;
	}
	assert_int_equal(dg_gzip_stream_finish(s), DG_OK);
	assert_int_equal(dg_gzip_stream_written(s), onelen);
	assert_int_equal(dg_gzip_stream_write(s, data, 1), DG_ERR_INVAL);
	dg_gzip_stream_free(s);
	assert_int_equal(c.len, onelen);
	assert_memory_equal(c.p, one, onelen);
	/* and the result is a gzip file zlib can read */
	{
		uLongf n = DATA_LEN;
		uint8_t *back = malloc(DATA_LEN);
		z_stream z;

		memset(&z, 0, sizeof(z));
		assert_int_equal(inflateInit2(&z, 31), Z_OK);
		z.next_in = one;
		z.avail_in = (uInt)onelen;
		z.next_out = back;
		z.avail_out = (uInt)n;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		assert_int_equal(z.total_out, DATA_LEN);
		assert_memory_equal(back, data, DATA_LEN);
		inflateEnd(&z);
		free(back);
	}
	free(c.p);
	free(one);
	/* a callback error stops the stream and sticks */
	memset(&c, 0, sizeof(c));
	c.fail_after = 2;
	s = dg_gzip_stream_new(&p, hdr, sizeof(hdr), collect, &c, &e);
	assert_non_null(s);
	e = dg_gzip_stream_write(s, data, DATA_LEN);
	if (e == DG_OK)
		e = dg_gzip_stream_finish(s);
	assert_int_equal(e, DG_ERR_NOSPC);
	assert_int_equal(dg_gzip_stream_finish(s), DG_ERR_NOSPC);
	dg_gzip_stream_free(s);
	free(c.p);
	dg_gzip_stream_free(NULL);
}

static void
test_bad_params(void **state)
{
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
	dg_gzip_params bad[] = {
		{ 0, 8, 0, 15 }, { 10, 8, 0, 15 }, { 6, 0, 0, 15 }, { 6, 10, 0, 15 },
		{ 6, 8, 4, 15 }, { 6, 8, 0, 8 }, { 6, 8, 0, 16 },
	};
	uint8_t *out;
	size_t outlen, i;
	dg_err e;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dg_gzip_params_check(&bad[i]), DG_ERR_INVAL);
		assert_int_equal(dg_gzip_compress(data, 10, &bad[i], hdr, sizeof(hdr), &out, &outlen),
		    DG_ERR_INVAL);
		assert_null(dg_gzip_stream_new(&bad[i], hdr, sizeof(hdr), collect, NULL, &e));
		assert_int_equal(e, DG_ERR_INVAL);
	}
	/* a header shorter than 10 bytes */
	assert_int_equal(dg_gzip_compress(data, 10, &(dg_gzip_params){ 6, 8, 0, 15 }, hdr, 9,
	    &out, &outlen), DG_ERR_INVAL);
}

static void
test_gzip_tool(void **state)
{
	/* GNU gzip's deflate is not zlib; which of its levels zlib rebuilds
	 * depends on the data (docs/swu.md). Whatever probe says must hold:
	 * DG_OK means a bit-exact rebuild, anything else is the documented
	 * "not reproducible" with the header and length still reported. */
	char path[128], cmd[600];
	int level;

	snprintf(path, sizeof(path), "%s/data", tmpdir);
	assert_int_equal(dg_util_write_atomic(path, data, DATA_LEN, 0644), DG_OK);
	for (level = 1; level <= 9; level++) {
		char gzpath[160];
		char *gz;
		size_t len;
		dg_gzip_info info;
		dg_err e;

		snprintf(gzpath, sizeof(gzpath), "%s/data.%d.gz", tmpdir, level);
		snprintf(cmd, sizeof(cmd), "gzip -n -%d -c %s > %s", level, path, gzpath);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(dg_util_read_file(gzpath, 1 << 24, &gz, &len), DG_OK);
		e = dg_gzip_probe(gz, len, &info);
		if (e == DG_OK) {
			assert_round_trip((uint8_t *)gz, len, data, DATA_LEN);
		} else {
			assert_int_equal(e, DG_ERR_GZIP_NOT_REPRODUCIBLE);
			assert_int_equal(info.raw_len, DATA_LEN);
			assert_int_equal(info.member_len, len);
			assert_int_equal(info.header.mtime, 0);
		}
		unlink(gzpath);
		free(gz);
	}
	unlink(path);
}

static void
test_gzip_tool_single_block(void **state)
{
	/* Measured (docs/swu.md): while the whole input fits in one deflate
	 * block, GNU gzip -1..-9 emit exactly what zlib does; its block
	 * splitting differs from zlib's after that. */
	static const char *const lines[] = { "The quick brown fox jumps over the lazy dog.\n",
		"Permission is hereby granted, free of charge, to any person\n",
		"THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND\n" };
	char path[128], cmd[600], gzpath[160];
	size_t len = 200000, i = 0, k = 0;
	uint8_t *text = malloc(len);
	uint32_t x = 7;
	int level;

	assert_non_null(text);
	while (i < len) {
		const char *l = lines[k++ % 3];
		size_t n;

		x = x * 1103515245 + 12345;
		n = strlen(l) - (x >> 16) % 8;
		while (n-- && i < len)
			text[i++] = (uint8_t)*l++;
		if (i < len)
			text[i++] = (uint8_t)('a' + (x >> 8) % 26);
	}
	snprintf(path, sizeof(path), "%s/text", tmpdir);
	assert_int_equal(dg_util_write_atomic(path, text, len, 0644), DG_OK);
	for (level = 1; level <= 9; level++) {
		char *gz;
		size_t gzlen;
		dg_gzip_info info;

		snprintf(gzpath, sizeof(gzpath), "%s/text.gz", tmpdir);
		snprintf(cmd, sizeof(cmd), "gzip -n -%d -c %s > %s", level, path, gzpath);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(dg_util_read_file(gzpath, 1 << 24, &gz, &gzlen), DG_OK);
		assert_int_equal(dg_gzip_probe(gz, gzlen, &info), DG_OK);
		assert_round_trip((uint8_t *)gz, gzlen, text, len);
		free(gz);
		unlink(gzpath);
	}
	unlink(path);
	free(text);
}

static void
test_not_reproducible(void **state)
{
	/* a full flush in the middle (as pigz and some tools emit) */
	z_stream z;
	uint8_t *out = malloc(DATA_LEN + 1024);
	size_t len;
	dg_gzip_info info;

	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = data;
	z.avail_in = 100000;
	z.next_out = out;
	z.avail_out = DATA_LEN + 1024;
	assert_int_equal(deflate(&z, Z_FULL_FLUSH), Z_OK);
	z.avail_in = 100000;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	len = DATA_LEN + 1024 - z.avail_out;
	deflateEnd(&z);
	assert_int_equal(dg_gzip_probe(out, len, &info), DG_ERR_GZIP_NOT_REPRODUCIBLE);
	assert_int_equal(info.raw_len, 200000);
	assert_true(info.tried > 100);
	free(out);
}

static void
test_multi_member_and_trailing(void **state)
{
	size_t l1, l2;
	uint8_t *a = zlib_gzip(data, 1000, 6, 8, Z_DEFAULT_STRATEGY, 15, NULL, &l1);
	uint8_t *b = zlib_gzip(data + 1000, 1000, 6, 8, Z_DEFAULT_STRATEGY, 15, NULL, &l2);
	uint8_t *both = malloc(l1 + l2 + 1);
	struct collect c = { NULL, 0, 0, 0, 0 };
	dg_gzip_info info;
	uint64_t n;

	memcpy(both, a, l1);
	memcpy(both + l1, b, l2);
	assert_int_equal(dg_gzip_probe(both, l1 + l2, &info), DG_ERR_GZIP_MULTI);
	assert_int_equal(info.raw_len, 1000);
	assert_int_equal(info.member_len, l1);
	/* one stray byte after the member */
	both[l1] = 0;
	assert_int_equal(dg_gzip_probe(both, l1 + 1, &info), DG_ERR_GZIP_MULTI);
	/* inflate reads the first member only */
	assert_int_equal(dg_gzip_inflate(both, l1 + l2, collect, &c, &n), DG_OK);
	assert_int_equal(n, 1000);
	assert_int_equal(c.len, 1000);
	assert_memory_equal(c.p, data, 1000);
	free(c.p);
	free(a);
	free(b);
	free(both);
}

static void
test_truncated_and_corrupt(void **state)
{
	size_t len, i;
	uint8_t *gz = zlib_gzip(data, 20000, 6, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);
	dg_gzip_info info;
	dg_err e;

	/* every prefix is refused: header cut -> truncated, stream cut -> truncated */
	for (i = 0; i < len; i += (i < 64 ? 1 : 97)) {
		e = dg_gzip_probe(gz, i, &info);
		assert_int_equal(e, DG_ERR_GZIP_TRUNCATED);
	}
	assert_int_equal(dg_gzip_probe(gz, len - 1, &info), DG_ERR_GZIP_TRUNCATED);
	/* CRC and ISIZE */
	gz[len - 8] ^= 0x40;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_CRC);
	gz[len - 8] ^= 0x40;
	gz[len - 1] ^= 0x01;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_CRC);
	gz[len - 1] ^= 0x01;
	/* header: magic, method, reserved flags */
	gz[0] = 0x1e;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_FORMAT);
	assert_false(dg_gzip_is_gzip(gz, len));
	gz[0] = 0x1f;
	assert_true(dg_gzip_is_gzip(gz, len));
	gz[2] = 7;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_FORMAT);
	gz[2] = 8;
	gz[3] = 0x20;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_FORMAT);
	gz[3] = 0;
	/* an invalid deflate block type */
	gz[10] = 0x07;
	assert_int_equal(dg_gzip_probe(gz, len, &info), DG_ERR_GZIP_FORMAT);
	free(gz);
}

static void
test_header_limits(void **state)
{
	uint8_t h[64] = { 0x1f, 0x8b, 8, DG_GZIP_FNAME, 0, 0, 0, 0, 0, 3, 'a', 'b' };
	uint8_t *big;
	dg_gzip_header hd;

	/* name without its NUL inside the buffer */
	assert_int_equal(dg_gzip_parse_header(h, 12, &hd), DG_ERR_GZIP_TRUNCATED);
	assert_int_equal(dg_gzip_parse_header(h, 13, &hd), DG_OK);
	assert_string_equal(hd.name, "ab");
	assert_int_equal(hd.len, 13);
	/* FEXTRA longer than the buffer */
	h[3] = DG_GZIP_FEXTRA;
	h[10] = 0xff;
	h[11] = 0xff;
	assert_int_equal(dg_gzip_parse_header(h, sizeof(h), &hd), DG_ERR_GZIP_TRUNCATED);
	/* a name longer than DG_GZIP_FIELD_MAX */
	big = malloc(DG_GZIP_FIELD_MAX + 100);
	memset(big, 'x', DG_GZIP_FIELD_MAX + 100);
	memcpy(big, h, 10);
	big[3] = DG_GZIP_FNAME;
	assert_int_equal(dg_gzip_parse_header(big, DG_GZIP_FIELD_MAX + 100, &hd), DG_ERR_GZIP_FORMAT);
	free(big);
}

static void
test_inflate_stream(void **state)
{
	size_t len;
	uint8_t *gz = zlib_gzip(data, DATA_LEN, 9, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);
	struct collect c = { NULL, 0, 0, 0, 0 };
	uint64_t n = 0;

	assert_int_equal(dg_gzip_inflate(gz, len, collect, &c, &n), DG_OK);
	assert_int_equal(n, DATA_LEN);
	assert_memory_equal(c.p, data, DATA_LEN);
	free(c.p);
	memset(&c, 0, sizeof(c));
	c.fail_after = 3;
	assert_int_equal(dg_gzip_inflate(gz, len, collect, &c, &n), DG_ERR_NOSPC);
	free(c.p);
	free(gz);
}


/* ---- restart points ---- */

#define BIG_LEN 2000000
static uint8_t *big;            /* enough data for a dozen deflate blocks */

struct sink {
	uint8_t *p;
	size_t len, cap;
};

static dg_err
sink_put(void *arg, const void *d, size_t n)
{
	struct sink *s = arg;

	if (n > s->cap - s->len)
		return DG_ERR_INTERNAL;
	memcpy(s->p + s->len, d, n);
	s->len += n;
	return DG_OK;
}

/* The raw deflate data of a zlib-made gzip file. */
static void
deflate_of(const uint8_t *gzb, size_t len, const uint8_t **def, size_t *dlen)
{
	dg_gzip_header h;

	assert_int_equal(dg_gzip_parse_header(gzb, len, &h), DG_OK);
	*def = gzb + h.len;
	*dlen = len - h.len - 8;
}

static int
count_block(void *arg, uint64_t bit, uint64_t raw)
{
	(void)bit;
	(void)raw;
	(*(int *)arg)++;
	return 0;
}

/* Rebuild def from its restart points, in pieces, as the processor does. */
static void
assert_chunks_rebuild(const uint8_t *def, size_t dlen, const dg_gzip_params *p,
    const dg_gzip_split *v, size_t nv)
{
	uint8_t *out = calloc(1, dlen);

	assert_non_null(out);
	for (size_t j = 0; j <= nv; j++) {
		uint64_t b0 = j ? v[j - 1].bit / 8 : 0, b1 = j < nv ? v[j].bit / 8 : dlen;
		uint64_t from = j ? v[j - 1].raw : 0;
		uint64_t limit = j < nv ? v[j].raw + DG_GZIP_SLACK : BIG_LEN;

		if (limit > BIG_LEN)
			limit = BIG_LEN;
		assert_int_equal(dg_gzip_deflate_from(NULL, p, big, from, limit,
		    j ? (unsigned)(v[j - 1].bit % 8) : 0, j ? v[j - 1].bits : 0, j == nv,
		    out + b0, (size_t)(b1 - b0)), DG_OK);
	}
	assert_memory_equal(out, def, dlen);
	free(out);
}

static void
assert_chunks_inflate(const uint8_t *def, size_t dlen, const dg_gzip_split *v, size_t nv)
{
	struct sink s = { calloc(1, BIG_LEN), 0, BIG_LEN };
	dg_gzip_ctx *c = dg_gzip_ctx_new();

	assert_non_null(s.p);
	assert_non_null(c);
	for (size_t j = 0; j <= nv; j++) {
		uint64_t c0 = j ? v[j - 1].clean : 0, c1 = j < nv ? v[j].clean : BIG_LEN;

		assert_int_equal(s.len, c0);
		/* every other chunk with the reused context */
		assert_int_equal(dg_gzip_inflate_from(j % 2 ? c : NULL, def, dlen,
		    j ? v[j - 1].bit : 0, c0 - (j ? v[j - 1].raw : 0), c1 - c0, j == nv,
		    sink_put, &s), DG_OK);
	}
	assert_int_equal(s.len, BIG_LEN);
	assert_memory_equal(s.p, big, BIG_LEN);
	dg_gzip_ctx_free(c);
	free(s.p);
}

static void
test_restart_points(void **state)
{
	static const int combos[][4] = {
		/* level, memLevel, strategy, windowBits */
		{ 9, 8, Z_DEFAULT_STRATEGY, 15 },
		{ 6, 8, Z_DEFAULT_STRATEGY, 15 },
		{ 9, 9, Z_FILTERED, 15 },
		{ 6, 4, Z_DEFAULT_STRATEGY, 15 },
		{ 9, 8, Z_DEFAULT_STRATEGY, 12 },
		{ 6, 8, Z_RLE, 15 },
		{ 6, 8, Z_HUFFMAN_ONLY, 15 },
	};

	(void)state;
	/* level 1 (deflate_fast) skips hash inserts inside long matches, so a
	 * dictionary does not restore its state: no point survives the check */
	{
		dg_gzip_params p1 = { 1, 8, DG_GZIP_DEFAULT, 15 };
		size_t len, dlen, nv;
		uint8_t *g = zlib_gzip(big, BIG_LEN, 1, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);
		const uint8_t *def;
		dg_gzip_split *v = NULL;

		deflate_of(g, len, &def, &dlen);
		assert_int_equal(dg_gzip_plan_deflate(def, dlen, big, BIG_LEN, &p1, 65536, 2, &v, &nv),
		    DG_OK);
		if (nv)
			assert_chunks_rebuild(def, dlen, &p1, v, nv);
		free(v);
		free(g);
	}
	for (size_t i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
		dg_gzip_params p = { (uint8_t)combos[i][0], (uint8_t)combos[i][1],
				     (uint8_t)combos[i][2], (uint8_t)combos[i][3] };
		size_t len, dlen, nv, ni;
		uint8_t *g = zlib_gzip(big, BIG_LEN, combos[i][0], combos[i][1], combos[i][2],
				       combos[i][3], NULL, &len);
		const uint8_t *def;
		dg_gzip_split *v = NULL, *vi = NULL;
		int blocks = 0;

		deflate_of(g, len, &def, &dlen);
		assert_int_equal(dg_gzip_blocks(def, dlen, count_block, &blocks), DG_OK);
		assert_true(blocks >= 3);
		assert_int_equal(dg_gzip_plan_deflate(def, dlen, big, BIG_LEN, &p, 65536, 2, &v,
		    &nv), DG_OK);
		assert_true(nv >= 2);
		for (size_t j = 0; j < nv; j++) {
			assert_true(v[j].raw > (j ? v[j - 1].raw : 0));
			assert_true(v[j].bit > (j ? v[j - 1].bit : 0) && v[j].bit < dlen * 8);
		}
		assert_chunks_rebuild(def, dlen, &p, v, nv);
		assert_int_equal(dg_gzip_plan_inflate(def, dlen, big, BIG_LEN, 65536, &vi, &ni),
		    DG_OK);
		assert_true(ni >= 2);
		for (size_t j = 0; j < ni; j++)
			assert_true(vi[j].clean >= vi[j].raw &&
			    vi[j].clean - vi[j].raw <= DG_GZIP_MAX_DIRTY);
		assert_chunks_inflate(def, dlen, vi, ni);
		free(v);
		free(vi);
		free(g);
	}
}

static void
test_restart_errors(void **state)
{
	size_t len, dlen, nv;
	uint8_t *g = zlib_gzip(big, BIG_LEN, 9, 8, Z_DEFAULT_STRATEGY, 15, NULL, &len);
	const uint8_t *def;
	dg_gzip_params p = { 9, 8, DG_GZIP_DEFAULT, 15 }, bad = { 10, 8, 0, 15 };
	dg_gzip_split *v = NULL;
	struct sink s = { malloc(BIG_LEN), 0, BIG_LEN };
	uint8_t *buf = malloc(dlen = len);
	dg_err e;

	(void)state;
	assert_non_null(s.p);
	assert_non_null(buf);
	deflate_of(g, len, &def, &dlen);
	assert_int_equal(dg_gzip_plan_deflate(def, dlen, big, BIG_LEN, &p, 65536, 1, &v, &nv),
	    DG_OK);
	assert_true(nv >= 2);
	/* a boundary past the end, an empty or cut stream */
	assert_int_equal(dg_gzip_inflate_from(NULL, def, dlen, dlen * 8 + 1, 0, 10, 0, sink_put, &s),
	    DG_ERR_GZIP_FORMAT);
	s.len = 0;
	e = dg_gzip_inflate_from(NULL, def, dlen / 2, 0, 0, BIG_LEN, 1, sink_put, &s);
	assert_true(e == DG_ERR_GZIP_TRUNCATED || e == DG_ERR_GZIP_FORMAT);
	/* more output than the stream has; a stream that goes on when it must end */
	s.len = 0;
	assert_int_equal(dg_gzip_inflate_from(NULL, def, dlen, 0, 0, BIG_LEN + 1, 1, sink_put, &s),
	    DG_ERR_GZIP_TRUNCATED);
	s.len = 0;
	assert_int_equal(dg_gzip_inflate_from(NULL, def, dlen, 0, 0, BIG_LEN - 1, 1, sink_put, &s),
	    DG_ERR_GZIP_FORMAT);
	/* garbage in the middle of a block: an error or other bytes, no crash */
	for (uint64_t bit = 1001; bit < dlen * 8; bit += dlen * 8 / 7) {
		s.len = 0;
		e = dg_gzip_inflate_from(NULL, def, dlen, bit, 0, 100000, 0, sink_put, &s);
		assert_true(e != DG_OK || memcmp(s.p, big, 100000) != 0);
	}
	/* deflating: wrong params, bits, too little input, wrong length */
	assert_int_equal(dg_gzip_deflate_from(NULL, &bad, big, 0, BIG_LEN, 0, 0, 1, buf, dlen),
	    DG_ERR_INVAL);
	assert_int_equal(dg_gzip_deflate_from(NULL, &p, big, 0, BIG_LEN, 3, 8, 1, buf, dlen),
	    DG_ERR_INVAL);
	assert_int_equal(dg_gzip_deflate_from(NULL, &p, big, 0, v[0].raw / 2, 0, 0, 0, buf,
	    (size_t)(v[0].bit / 8)), DG_ERR_GZIP_NOT_REPRODUCIBLE);
	assert_int_equal(dg_gzip_deflate_from(NULL, &p, big, 0, BIG_LEN, 0, 0, 1, buf, dlen - 1),
	    DG_ERR_GZIP_NOT_REPRODUCIBLE);
	assert_int_equal(dg_gzip_deflate_from(NULL, &p, big, 0, BIG_LEN, 0, 0, 1, buf, dlen + 1),
	    DG_ERR_GZIP_NOT_REPRODUCIBLE);
	assert_int_equal(dg_gzip_deflate_from(NULL, &p, big, 0, BIG_LEN, 0, 0, 1, buf, dlen),
	    DG_OK);
	assert_memory_equal(buf, def, dlen);
	/* a deflate from a point that is not a boundary does not give the stream */
	e = dg_gzip_deflate_from(NULL, &p, big, v[0].raw + 1, BIG_LEN, (unsigned)(v[0].bit % 8),
	    v[0].bits, 1, buf, dlen - (size_t)(v[0].bit / 8));
	assert_true(e != DG_OK || memcmp(buf, def + v[0].bit / 8, dlen - v[0].bit / 8) != 0);
	/* no points in members too small for two chunks, or when asked for none */
	free(v);
	assert_int_equal(dg_gzip_plan_deflate(def, dlen, big, BIG_LEN, &p, BIG_LEN, 1, &v, &nv),
	    DG_OK);
	assert_int_equal(nv, 0);
	assert_null(v);
	assert_int_equal(dg_gzip_plan_inflate(def, dlen, big, BIG_LEN, 0, &v, &nv), DG_OK);
	assert_int_equal(nv, 0);
	/* a corrupt stream is an error, not a plan */
	memcpy(buf, def, dlen);
	memset(buf + dlen / 3, 0xff, 64);
	e = dg_gzip_plan_deflate(buf, dlen, big, BIG_LEN, &p, 65536, 1, &v, &nv);
	assert_true(e == DG_ERR_GZIP_FORMAT || e == DG_ERR_GZIP_TRUNCATED ||
	    (e == DG_OK && nv <= 8));
	free(v);
	free(buf);
	free(s.p);
	free(g);
}

static int
setup(void **state)
{
	data = malloc(DATA_LEN);
	if (!data)
		return -1;
	make_data(data, DATA_LEN, 12345);
	if (!(big = malloc(BIG_LEN)))
		return -1;
	/* sections: noise, then firmware-like bytes; a restart in the noise
	 * or soon after it is clean at once, elsewhere it may never be */
	for (size_t off = 0; off < BIG_LEN; off += 131072) {
		size_t n = BIG_LEN - off < 131072 ? BIG_LEN - off : 131072;
		uint32_t x = (uint32_t)off + 1;

		for (size_t i = 0; i < n && i < 40000; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			big[off + i] = (uint8_t)x;
		}
		if (n > 40000)
			make_data(big + off + 40000, n - 40000, (uint32_t)off + 7);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dg_gzip_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	free(data);
	free(big);
	rmdir(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zlib_every_level),
		cmocka_unit_test(test_zlib_other_params),
		cmocka_unit_test(test_header_fields_survive),
		cmocka_unit_test(test_empty_and_tiny),
		cmocka_unit_test(test_stream_matches_one_shot),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_gzip_tool),
		cmocka_unit_test(test_gzip_tool_single_block),
		cmocka_unit_test(test_not_reproducible),
		cmocka_unit_test(test_multi_member_and_trailing),
		cmocka_unit_test(test_truncated_and_corrupt),
		cmocka_unit_test(test_header_limits),
		cmocka_unit_test(test_inflate_stream),
		cmocka_unit_test(test_restart_points),
		cmocka_unit_test(test_restart_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
