/* Unit tests: dg_swu (cpio newc/crc parsing, bit-exact writing, name
 * rules, truncation, signing). Archives come from GNU cpio itself. */
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

#include "dg_swu.h"
#include "dg_util.h"

static char dir[64];

struct buf {
	uint8_t *p;
	size_t len, cap;
	int fail_at; /* return an error on this call (1-based; 0 never) */
	int calls;
};

static dg_err
put(void *arg, const void *d, size_t n)
{
	struct buf *b = arg;

	if (b->fail_at && ++b->calls >= b->fail_at)
		return DG_ERR_NOSPC;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return DG_OK;
}

static void
run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

static void
write_file(const char *name, const void *d, size_t n)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(dg_util_write_atomic(p, d, n, 0644), DG_OK);
}

static uint8_t *
read_file(const char *name, size_t *len)
{
	char p[256], *d;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(dg_util_read_file(p, 1 << 26, &d, len), DG_OK);
	return (uint8_t *)d;
}

static void
fill(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1664525 + 1013904223;
		p[i] = (uint8_t)(seed >> 24);
	}
}

/* sw-description, an odd-sized image, an empty file: cpio -H fmt. */
static uint8_t *
make_archive(const char *fmt, const char *out, size_t imglen, size_t *len)
{
	static const char desc[] = "software = { version = \"1.0\"; };\n";
	uint8_t *img = malloc(imglen ? imglen : 1);

	fill(img, imglen, (uint32_t)imglen);
	write_file("sw-description", desc, sizeof(desc) - 1);
	write_file("rootfs.ext4.gz", img, imglen);
	write_file("empty", "", 0);
	run("cd %s && touch -d @1700000000 sw-description rootfs.ext4.gz empty && "
	    "printf 'sw-description\\nrootfs.ext4.gz\\nempty\\n' | cpio --quiet -o -H %s > %s",
	    dir, fmt, out);
	free(img);
	return read_file(out, len);
}

/* Rewrite every member through the streaming writer, data in pieces. */
static void
rewrite(const dg_swu *swu, struct buf *out)
{
	dg_swu_writer *w;
	dg_err e;
	size_t i;

	w = dg_swu_writer_new(put, out, &e);
	assert_non_null(w);
	for (i = 0; i < dg_swu_count(swu); i++) {
		const dg_swu_member *m = dg_swu_member_at(swu, i);
		size_t off = 0;

		assert_int_equal(dg_swu_writer_begin(w, m), DG_OK);
		while (off < m->size) {
			size_t n = m->size - off < 777 ? m->size - off : 777;

			assert_int_equal(dg_swu_writer_data(w, m->data + off, n), DG_OK);
			off += n;
		}
		assert_int_equal(dg_swu_writer_end(w), DG_OK);
	}
	assert_int_equal(dg_swu_writer_finish(w, dg_swu_trailer(swu), dg_swu_block_size(swu)), DG_OK);
	assert_int_equal(dg_swu_writer_offset(w), out->len);
	dg_swu_writer_free(w);
}

static void
check_parse_and_rewrite(const char *fmt, dg_swu_format want)
{
	size_t len, imglen;
	uint8_t *a = make_archive(fmt, "a.swu", 10001, &len);
	uint8_t *img = read_file("rootfs.ext4.gz", &imglen);
	struct buf out = { 0 };
	char why[200];
	dg_swu *swu;
	const dg_swu_member *m;
	size_t idx;
	dg_err e;

	swu = dg_swu_parse(a, len, &e, why, sizeof(why));
	assert_non_null(swu);
	assert_int_equal(e, DG_OK);
	assert_int_equal(dg_swu_format_of(swu), want);
	assert_int_equal(dg_swu_count(swu), 3);
	assert_string_equal(dg_swu_member_at(swu, 0)->name, "sw-description");
	assert_int_equal(dg_swu_check_desc_first(swu), DG_OK);
	m = dg_swu_find(swu, "rootfs.ext4.gz", &idx);
	assert_non_null(m);
	assert_int_equal(idx, 1);
	assert_int_equal(m->size, 10001);
	assert_memory_equal(m->data, img, imglen);
	assert_int_equal(m->mtime, 1700000000);
	assert_int_equal(m->mode & 0170000, 0100000);
	assert_int_equal(m->data_offset % 4, 0);
	assert_true(m->data == a + m->data_offset);
	if (want == DG_SWU_CRC)
		assert_int_equal(m->check, dg_swu_checksum(0, img, imglen));
	assert_int_equal(dg_swu_member_at(swu, 2)->size, 0);
	assert_null(dg_swu_member_at(swu, 3));
	assert_null(dg_swu_find(swu, "nope", NULL));
	/* GNU cpio pads to 512-byte blocks */
	assert_int_equal(len % 512, 0);
	assert_int_equal(dg_swu_block_size(swu), 512);
	/* unchanged: both writers give the same bytes */
	assert_int_equal(dg_swu_write(swu, put, &out), DG_OK);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.p, a, len);
	out.len = 0;
	rewrite(swu, &out);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.p, a, len);
	free(out.p);
	dg_swu_free(swu);
	free(img);
	free(a);
}

static void
test_newc_round_trip(void **state)
{
	check_parse_and_rewrite("newc", DG_SWU_NEWC);
}

static void
test_crc_round_trip(void **state)
{
	check_parse_and_rewrite("crc", DG_SWU_CRC);
}

/* Replacing a member's data gives exactly what cpio writes for the new
 * file (same inode and mtime): sizes, checksum and padding are right. */
static void
check_changed_member(const char *fmt)
{
	size_t alen, blen, newlen;
	uint8_t *a = make_archive(fmt, "a.swu", 5000, &alen);
	uint8_t *b, *newimg;
	char p[256];
	struct buf out = { 0 };
	dg_swu *swu;
	dg_swu_writer *w;
	dg_err e;
	size_t i;

	/* same inode: rewrite the file in place */
	newimg = malloc(70003);
	fill(newimg, 70003, 99);
	snprintf(p, sizeof(p), "%s/rootfs.ext4.gz", dir);
	{
		FILE *f = fopen(p, "r+b");

		assert_non_null(f);
		assert_int_equal(fwrite(newimg, 1, 70003, f), 70003);
		fclose(f);
	}
	run("cd %s && touch -d @1700000000 rootfs.ext4.gz && "
	    "printf 'sw-description\\nrootfs.ext4.gz\\nempty\\n' | cpio --quiet -o -H %s > b.swu", dir, fmt);
	b = read_file("b.swu", &blen);
	newlen = 70003;
	swu = dg_swu_parse(a, alen, &e, NULL, 0);
	assert_non_null(swu);
	w = dg_swu_writer_new(put, &out, &e);
	assert_non_null(w);
	for (i = 0; i < dg_swu_count(swu); i++) {
		dg_swu_member m = *dg_swu_member_at(swu, i);

		if (strcmp(m.name, "rootfs.ext4.gz") == 0) {
			dg_swu_member_init(&m, &m, m.name, (uint32_t)newlen,
			    m.format == DG_SWU_CRC ? dg_swu_checksum(0, newimg, newlen) : 0);
			assert_int_equal(dg_swu_writer_add(w, &m, newimg), DG_OK);
		} else {
			assert_int_equal(dg_swu_writer_add(w, &m, m.data), DG_OK);
		}
	}
	assert_int_equal(dg_swu_writer_finish(w, dg_swu_trailer(swu), dg_swu_block_size(swu)), DG_OK);
	dg_swu_writer_free(w);
	assert_int_equal(out.len, blen);
	assert_memory_equal(out.p, b, blen);
	/* and cpio lists and extracts it */
	write_file("out.swu", out.p, out.len);
	run("cd %s && cpio --quiet -it < out.swu | tr '\\n' ' ' | grep -qx 'sw-description rootfs.ext4.gz empty '", dir);
	run("cd %s && mkdir -p x && cd x && cpio --quiet -id rootfs.ext4.gz < ../out.swu && cmp rootfs.ext4.gz ../rootfs.ext4.gz && rm -rf ../x", dir);
	dg_swu_free(swu);
	free(out.p);
	free(newimg);
	free(a);
	free(b);
}

static void
test_changed_member_newc(void **state)
{
	check_changed_member("newc");
}

static void
test_changed_member_crc(void **state)
{
	check_changed_member("crc");
}

/* Append a hand-made member: lower-case hex when lower is set. */
static void
add_raw(struct buf *b, const char *magic, const char *name, uint32_t namesize,
    const void *d, uint32_t size, uint32_t check, int lower)
{
	char h[DG_SWU_HDR_LEN + 1];
	static const uint8_t z[4];

	snprintf(h, sizeof(h), lower ? "%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x" :
	    "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
	    magic, 7u, 0100644u, 0u, 0u, 1u, 0xabcdefu, size, 0u, 0u, 0u, 0u, namesize, check);
	put(b, h, DG_SWU_HDR_LEN);
	put(b, name, strlen(name) + 1);
	put(b, z, (4 - b->len % 4) % 4);
	put(b, d, size);
	put(b, z, (4 - b->len % 4) % 4);
}

static void
add_trailer(struct buf *b, const char *magic)
{
	add_raw(b, magic, "TRAILER!!!", 11, "", 0, 0, 0);
}

static dg_err
parse_err(const struct buf *b)
{
	dg_err e = DG_OK;
	dg_swu *s = dg_swu_parse(b->p, b->len, &e, NULL, 0);

	if (s) {
		dg_swu_free(s);
		return DG_OK;
	}
	assert_int_not_equal(e, DG_OK);
	return e;
}

static void
one_member(struct buf *b, const char *name)
{
	b->len = 0;
	add_raw(b, "070701", name, (uint32_t)strlen(name) + 1, "data", 4, 0, 0);
	add_trailer(b, "070701");
}

static void
test_names(void **state)
{
	static const char *const bad[] = { "../etc/passwd", "/etc/passwd", "a/../b", "..",
		"x/..", "/", "a/b/../../c" };
	static const char *const good[] = { "a..b", "..a", "b..", "./x", "dir/file", ".x" };
	struct buf b = { 0 };
	char why[200];
	dg_err e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		one_member(&b, bad[i]);
		assert_null(dg_swu_parse(b.p, b.len, &e, why, sizeof(why)));
		assert_int_equal(e, DG_ERR_SWU_NAME);
		assert_non_null(strstr(why, bad[i]));
		assert_int_equal(dg_swu_name_check(bad[i]), DG_ERR_SWU_NAME);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		one_member(&b, good[i]);
		assert_int_equal(parse_err(&b), DG_OK);
		assert_int_equal(dg_swu_name_check(good[i]), DG_OK);
	}
	assert_int_equal(dg_swu_name_check(""), DG_ERR_SWU_NAME);
	/* namesize disagreeing with the NUL, zero, or beyond the limit */
	b.len = 0;
	add_raw(&b, "070701", "abc", 3, "", 0, 0, 0);
	add_trailer(&b, "070701");
	assert_int_equal(parse_err(&b), DG_ERR_SWU_NAME);
	b.len = 0;
	add_raw(&b, "070701", "abc", 0, "", 0, 0, 0);
	assert_int_equal(parse_err(&b), DG_ERR_SWU_NAME);
	b.len = 0;
	add_raw(&b, "070701", "abc", DG_SWU_NAME_MAX + 2, "", 0, 0, 0);
	assert_int_equal(parse_err(&b), DG_ERR_SWU_NAME);
	/* duplicates */
	b.len = 0;
	add_raw(&b, "070701", "a", 2, "1", 1, 0, 0);
	add_raw(&b, "070701", "b", 2, "2", 1, 0, 0);
	add_raw(&b, "070701", "a", 2, "3", 1, 0, 0);
	add_trailer(&b, "070701");
	assert_int_equal(parse_err(&b), DG_ERR_SWU_DUPLICATE);
	free(b.p);
}

static void
test_format_errors(void **state)
{
	struct buf b = { 0 };
	dg_swu *s;
	size_t end;
	dg_err e;

	one_member(&b, "file");
	assert_int_equal(parse_err(&b), DG_OK);
	/* bad magic, then a non-hex digit in each field */
	b.p[5] = '7';
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	b.p[5] = '1';
	for (int f = 0; f < 13; f++) {
		char c = (char)b.p[6 + 8 * f + 3];

		b.p[6 + 8 * f + 3] = 'g';
		assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
		b.p[6 + 8 * f + 3] = (uint8_t)c;
	}
	/* non-zero padding after the name ("file\0" + 3 pad) and the data */
	b.p[DG_SWU_HDR_LEN + 5] = 1;
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	b.p[DG_SWU_HDR_LEN + 5] = 0;
	/* data after the trailer: non-zero, or zeros no block explains */
	put(&b, "x", 1);
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	b.p[b.len - 1] = 0;
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	/* zeros up to 512 are a block */
	end = b.len - 1;
	while (b.len % 512)
		put(&b, "", 1);
	s = dg_swu_parse(b.p, b.len, &e, NULL, 0);
	assert_non_null(s);
	assert_int_equal(dg_swu_block_size(s), 512);
	assert_int_equal(dg_swu_tail_padding(s), 512 - end);
	dg_swu_free(s);
	/* trailer with data */
	b.len = 0;
	add_raw(&b, "070701", "TRAILER!!!", 11, "abcd", 4, 0, 0);
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	/* mixed 070701 / 070702 */
	b.len = 0;
	add_raw(&b, "070701", "a", 2, "1", 1, 0, 0);
	add_raw(&b, "070702", "b", 2, "2", 1, '2', 0);
	add_trailer(&b, "070702");
	assert_int_equal(parse_err(&b), DG_ERR_SWU_FORMAT);
	/* 070702 checksum */
	b.len = 0;
	add_raw(&b, "070702", "b", 2, "22", 2, 2 * '2', 0);
	add_trailer(&b, "070702");
	assert_int_equal(parse_err(&b), DG_OK);
	b.len = 0;
	add_raw(&b, "070702", "b", 2, "22", 2, 2 * '2' + 1, 0);
	add_trailer(&b, "070702");
	assert_int_equal(parse_err(&b), DG_ERR_SWU_CHECKSUM);
	/* empty input, garbage, NULL */
	assert_null(dg_swu_parse("", 0, &e, NULL, 0));
	assert_int_equal(e, DG_ERR_SWU_TRUNCATED);
	assert_null(dg_swu_parse(NULL, 5, &e, NULL, 0));
	assert_int_equal(e, DG_ERR_INVAL);
	free(b.p);
	dg_swu_free(NULL);
}

static void
test_truncated(void **state)
{
	size_t len, i, end;
	uint8_t *a = make_archive("crc", "t.swu", 3000, &len);
	dg_swu *s;
	dg_err e;

	s = dg_swu_parse(a, len, &e, NULL, 0);
	assert_non_null(s);
	end = len - dg_swu_tail_padding(s);
	dg_swu_free(s);
	for (i = 0; i < len; i++) {
		s = dg_swu_parse(a, i, &e, NULL, 0);
		if (i == end) {
			/* exactly up to the trailer: valid, no padding */
			assert_non_null(s);
			assert_int_equal(dg_swu_block_size(s), 0);
			dg_swu_free(s);
			continue;
		}
		assert_null(s);
		assert_int_equal(e, i < end ? DG_ERR_SWU_TRUNCATED : DG_ERR_SWU_FORMAT);
	}
	free(a);
}

static void
test_lower_case_hex_kept(void **state)
{
	struct buf b = { 0 }, out = { 0 };
	dg_swu *s;
	dg_swu_writer *w;
	dg_swu_member m;
	dg_err e;

	add_raw(&b, "070701", "sw-description", 15, "desc", 4, 0, 1);
	add_raw(&b, "070701", "img", 4, "abcdefghijk", 11, 0, 1);
	add_raw(&b, "070701", "TRAILER!!!", 11, "", 0, 0, 1);
	s = dg_swu_parse(b.p, b.len, &e, NULL, 0);
	assert_non_null(s);
	rewrite(s, &out);
	assert_int_equal(out.len, b.len);
	assert_memory_equal(out.p, b.p, b.len);
	/* a changed size is written in the archive's case */
	out.len = 0;
	w = dg_swu_writer_new(put, &out, &e);
	m = *dg_swu_member_at(s, 1);
	dg_swu_member_init(&m, &m, "img", 0xabc, 0);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_OK);
	assert_memory_equal(out.p + 6 + 8 * 6, "00000abc", 8);
	assert_memory_equal(out.p + 6 + 8 * 5, "00abcdef", 8);
	dg_swu_writer_free(w);
	/* a new member without a template: GNU cpio style upper case */
	out.len = 0;
	w = dg_swu_writer_new(put, &out, &e);
	dg_swu_member_init(&m, NULL, "new", 0xabc, 0);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_OK);
	assert_memory_equal(out.p, "070701", 6);
	assert_memory_equal(out.p + 6 + 8 * 6, "00000ABC", 8);
	assert_memory_equal(out.p + 6 + 8 * 1, "000081A4", 8);
	dg_swu_writer_free(w);
	dg_swu_free(s);
	free(b.p);
	free(out.p);
}

static void
test_desc_first(void **state)
{
	struct buf b = { 0 };
	dg_swu *s;
	dg_err e;

	add_raw(&b, "070701", "img", 4, "x", 1, 0, 0);
	add_raw(&b, "070701", "sw-description", 15, "d", 1, 0, 0);
	add_trailer(&b, "070701");
	s = dg_swu_parse(b.p, b.len, &e, NULL, 0);
	assert_non_null(s);
	assert_int_equal(dg_swu_check_desc_first(s), DG_ERR_SWU_NO_DESC);
	dg_swu_free(s);
	b.len = 0;
	add_trailer(&b, "070701");
	s = dg_swu_parse(b.p, b.len, &e, NULL, 0);
	assert_non_null(s);
	assert_int_equal(dg_swu_count(s), 0);
	assert_int_equal(dg_swu_check_desc_first(s), DG_ERR_SWU_NO_DESC);
	dg_swu_free(s);
	free(b.p);
}

static void
test_find_many(void **state)
{
	struct buf b = { 0 };
	char name[32];
	dg_swu *s;
	size_t i, idx;
	dg_err e;

	/* names in an order unlike their sorted one */
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "m%zu/%zu", (i * 7919) % 300, i);
		add_raw(&b, "070701", name, (uint32_t)strlen(name) + 1, "x", 1, 0, 0);
	}
	add_trailer(&b, "070701");
	s = dg_swu_parse(b.p, b.len, &e, NULL, 0);
	assert_non_null(s);
	assert_int_equal(dg_swu_count(s), 300);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "m%zu/%zu", (i * 7919) % 300, i);
		assert_non_null(dg_swu_find(s, name, &idx));
		assert_int_equal(idx, i);
		assert_string_equal(dg_swu_member_at(s, idx)->name, name);
		snprintf(name, sizeof(name), "m%zu/%zu", (i * 7919) % 300, i + 1);
		assert_null(dg_swu_find(s, name, NULL));
	}
	assert_null(dg_swu_find(s, "", NULL));
	dg_swu_free(s);
	free(b.p);
}

static void
test_writer_misuse(void **state)
{
	struct buf out = { 0 };
	dg_swu_writer *w;
	dg_swu_member m;
	dg_err e;

	assert_null(dg_swu_writer_new(NULL, NULL, &e));
	assert_int_equal(e, DG_ERR_INVAL);
	w = dg_swu_writer_new(put, &out, &e);
	assert_non_null(w);
	assert_int_equal(dg_swu_writer_data(w, "x", 1), DG_ERR_INVAL);
	assert_int_equal(dg_swu_writer_end(w), DG_ERR_INVAL);
	dg_swu_member_init(&m, NULL, "../x", 1, 0);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_ERR_SWU_NAME);
	dg_swu_member_init(&m, NULL, "TRAILER!!!", 0, 0);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_ERR_INVAL);
	dg_swu_member_init(&m, NULL, "f", 3, 0);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_OK);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_ERR_INVAL);
	assert_int_equal(dg_swu_writer_data(w, "abcd", 4), DG_ERR_SWU_SIZE);
	assert_int_equal(dg_swu_writer_data(w, "ab", 2), DG_OK);
	assert_int_equal(dg_swu_writer_end(w), DG_ERR_SWU_SIZE);
	assert_int_equal(dg_swu_writer_finish(w, NULL, 512), DG_ERR_INVAL);
	assert_int_equal(dg_swu_writer_data(w, "c", 1), DG_OK);
	assert_int_equal(dg_swu_writer_end(w), DG_OK);
	/* 070702 member whose data does not sum to its check */
	dg_swu_member_init(&m, NULL, "g", 2, 1);
	m.format = DG_SWU_CRC;
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_ERR_SWU_FORMAT);
	dg_swu_writer_free(w);
	out.len = 0;
	w = dg_swu_writer_new(put, &out, &e);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_OK);
	assert_int_equal(dg_swu_writer_data(w, "zz", 2), DG_OK);
	assert_int_equal(dg_swu_writer_end(w), DG_ERR_SWU_CHECKSUM);
	dg_swu_writer_free(w);
	/* finish with a generated trailer, padded to 512; output parses */
	out.len = 0;
	w = dg_swu_writer_new(put, &out, &e);
	dg_swu_member_init(&m, NULL, "sw-description", 3, 0);
	assert_int_equal(dg_swu_writer_add(w, &m, "abc"), DG_OK);
	assert_int_equal(dg_swu_writer_finish(w, NULL, 512), DG_OK);
	assert_int_equal(dg_swu_writer_finish(w, NULL, 512), DG_ERR_INVAL);
	assert_int_equal(out.len, 512);
	assert_int_equal(parse_err(&out), DG_OK);
	dg_swu_writer_free(w);
	/* a callback error is returned and sticks */
	out.len = 0;
	out.fail_at = 2;
	out.calls = 0;
	w = dg_swu_writer_new(put, &out, &e);
	assert_int_equal(dg_swu_writer_begin(w, &m), DG_ERR_NOSPC);
	assert_int_equal(dg_swu_writer_finish(w, NULL, 0), DG_ERR_NOSPC);
	dg_swu_writer_free(w);
	dg_swu_writer_free(NULL);
	free(out.p);
}

static void
test_sign(void **state)
{
	static const char desc[] = "software = { version = \"2.0\"; };\n";
	char cmd[512], sigdir[128];
	uint8_t *sig = NULL;
	size_t siglen = 0;

	snprintf(sigdir, sizeof(sigdir), "%s/sign", dir);
	run("mkdir -p %s && cd %s && openssl genrsa -out key.pem 2048 2>/dev/null && "
	    "openssl rsa -in key.pem -pubout -out pub.pem 2>/dev/null", sigdir, sigdir);
	/* the SWUpdate way: CMD sw-description makes sw-description.sig */
	snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -sign %s/key.pem -out sw-description.sig", sigdir);
	assert_int_equal(dg_swu_sign(cmd, sigdir, desc, sizeof(desc) - 1, &sig, &siglen), DG_OK);
	assert_int_equal(siglen, 256);
	write_file("sign/check.sig", sig, siglen);
	write_file("sign/check.desc", desc, sizeof(desc) - 1);
	run("cd %s && openssl dgst -sha256 -verify pub.pem -signature check.sig check.desc >/dev/null", sigdir);
	free(sig);
	/* failing command, command making no .sig (the old one is removed first),
	 * an empty .sig, a killed command */
	assert_int_equal(dg_swu_sign("false", sigdir, desc, 3, &sig, &siglen), DG_ERR_SWU_SIGN);
	assert_null(sig);
	assert_int_equal(dg_swu_sign("true", sigdir, desc, 3, &sig, &siglen), DG_ERR_SWU_SIGN);
	assert_int_equal(dg_swu_sign(": > sw-description.sig; true", sigdir, desc, 3, &sig, &siglen),
	    DG_ERR_SWU_SIGN);
	assert_int_equal(dg_swu_sign("kill -9 $$; true", sigdir, desc, 3, &sig, &siglen),
	    DG_ERR_SWU_SIGN);
	/* the command sees exactly the bytes given */
	assert_int_equal(dg_swu_sign("cp", sigdir, desc, 3, &sig, &siglen), DG_ERR_SWU_SIGN);
	assert_int_equal(dg_swu_sign("cp sw-description sw-description.sig; test -s", sigdir, desc, 5,
	    &sig, &siglen), DG_OK);
	assert_int_equal(siglen, 5);
	assert_memory_equal(sig, desc, 5);
	free(sig);
	assert_int_equal(dg_swu_sign("", sigdir, desc, 3, &sig, &siglen), DG_ERR_INVAL);
	run("rm -rf %s", sigdir);
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/dg_swu_XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_newc_round_trip),
		cmocka_unit_test(test_crc_round_trip),
		cmocka_unit_test(test_changed_member_newc),
		cmocka_unit_test(test_changed_member_crc),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_format_errors),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_lower_case_hex_kept),
		cmocka_unit_test(test_desc_first),
		cmocka_unit_test(test_find_many),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_sign),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
