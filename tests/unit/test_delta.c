/* Unit tests: dg_delta (format, differ, applier), dg_bcj, dg_bsdiff */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "dg_bcj.h"
#include "dg_delta.h"
#include "dg_gzip.h"
#include "dg_swu.h"
#include "dg_util.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static uint8_t *
random_bytes(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
	return p;
}

/* Text-like data: compressible, with repeats, like real files. */
static uint8_t *
texty_bytes(size_t n)
{
	static const char *words[] = { "alpha ", "beta ", "gamma ", "delta ", "update ",
				       "firmware ", "gateway ", "\n", "0x1234 ", "image " };
	uint8_t *p = malloc(n ? n : 1);
	size_t i = 0;

	assert_non_null(p);
	while (i < n) {
		const char *w = words[rnd() % 10];
		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = (uint8_t)w[k];
	}
	return p;
}

/* Diff (allowing larger deltas: tiny inputs), apply, compare. */
static size_t
roundtrip(const uint8_t *s, size_t n, const uint8_t *t, size_t m)
{
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;
	uint8_t *d = NULL, *out = NULL;
	size_t dl = 0, ol = 0;

	o.allow_larger = 1;
	o.level = 3;
	assert_int_equal(dg_delta_diff_mem(s, n, t, m, &o, &d, &dl, &st), DG_OK);
	assert_int_equal(st.delta_size, dl);
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol), DG_OK);
	assert_int_equal(ol, m);
	if (m)
		assert_memory_equal(out, t, m);
	free(d);
	free(out);
	return dl;
}

static void
test_roundtrip_edge_sizes(void **state)
{
	uint8_t one = 'x', other = 'y';
	uint8_t *big = texty_bytes(5000);

	(void)state;
	roundtrip(NULL, 0, NULL, 0);
	roundtrip(NULL, 0, &one, 1);
	roundtrip(&one, 1, NULL, 0);
	roundtrip(&one, 1, &one, 1);
	roundtrip(&one, 1, &other, 1);
	roundtrip(big, 5000, &one, 1);
	roundtrip(&one, 1, big, 5000);
	roundtrip(big, 5000, big, 5000);
	roundtrip(big, 5000, big, 100);   /* source larger */
	roundtrip(big, 100, big, 5000);   /* target larger */
	free(big);
}

static void
test_roundtrip_edits(void **state)
{
	size_t n = 200000, m, i, dl;
	uint8_t *s = texty_bytes(n), *t = malloc(n + 20000);

	(void)state;
	/* random byte edits */
	memcpy(t, s, n);
	for (i = 0; i < 300; i++)
		t[rnd() % n] = (uint8_t)rnd();
	dl = roundtrip(s, n, t, n);
	assert_true(dl < 4000);
	/* insertion of fresh bytes */
	memcpy(t, s, 50000);
	for (i = 0; i < 10000; i++)
		t[50000 + i] = (uint8_t)rnd();
	memcpy(t + 60000, s + 50000, n - 50000);
	m = n + 10000;
	dl = roundtrip(s, n, t, m);
	assert_true(dl < 12000);
	/* deletion */
	memcpy(t, s, 70000);
	memcpy(t + 70000, s + 90000, n - 90000);
	roundtrip(s, n, t, n - 20000);
	/* moved blocks: swap two halves */
	memcpy(t, s + n / 2, n - n / 2);
	memcpy(t + (n - n / 2), s, n / 2);
	dl = roundtrip(s, n, t, n);
	assert_true(dl < 2000);
	free(s);
	free(t);
}

static void
test_roundtrip_random_unrelated(void **state)
{
	uint8_t *s = random_bytes(30000), *t = random_bytes(20000);

	(void)state;
	roundtrip(s, 30000, t, 20000);
	free(s);
	free(t);
}

/* A fake ELF for machine `machine`: a 4 KiB "library" that stays put, then
 * `pad` inserted bytes, then code calling into the library. A new version
 * with more padding moves every call site: all relative operands change,
 * though nothing they point at did. */
static uint8_t *
fake_elf(unsigned machine, size_t n, size_t pad)
{
	uint8_t *p = calloc(1, n);
	uint64_t saved = rng_state;
	size_t i;

	assert_non_null(p);
	memcpy(p, "\177ELF\2\1\1", 7);
	p[18] = (uint8_t)machine;
	rng_state = 42;
	for (i = 64; i < 4096; i++)
		p[i] = (uint8_t)rnd();
	for (i = 4096; i < 4096 + pad && i < n; i++)
		p[i] = 0x90;
	for (i = 4096 + pad; i + 16 <= n; i += 16) {
		uint32_t target = 64 + (rnd() % 1000) * 4, w;
		int32_t rel;

		if (machine == 62) {
			rel = (int32_t)(target - (uint32_t)(i + 5));
			p[i] = 0xE8;
			memcpy(p + i + 1, &rel, 4);
		} else { /* ARM BL */
			w = 0xEB000000u | (((target - (uint32_t)(i + 8)) >> 2) & 0xFFFFFFu);
			memcpy(p + i, &w, 4);
		}
		for (size_t k = 5; k < 16; k++)
			p[i + k] = (uint8_t)(rnd() & 3);
	}
	rng_state = saved;
	return p;
}

static void
check_method(unsigned machine, const char *method)
{
	size_t n = 300000;
	uint8_t *s = fake_elf(machine, n, 0), *t = fake_elf(machine, n, 256);
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;
	uint8_t *d = NULL, *out = NULL;
	size_t dl, ol;

	o.level = 3;
	assert_int_equal(dg_delta_diff_mem(s, n, t, n, &o, &d, &dl, &st), DG_OK);
	assert_string_equal(st.method, method);
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol), DG_OK);
	assert_int_equal(ol, n);
	assert_memory_equal(out, t, n);
	free(d);
	free(out);
	free(s);
	free(t);
}

static void
test_filter_chosen_for_shifted_code(void **state)
{
	dg_bcj_filter g[2];
	uint8_t *e = fake_elf(62, 8192, 0);

	(void)state;
	assert_int_equal(dg_bcj_guess(e, 8192, g, 2), 1);
	assert_int_equal(g[0], DG_BCJ_X86_64);
	e[18] = 40;
	assert_int_equal(dg_bcj_guess(e, 8192, g, 2), 2);
	assert_int_equal(g[0], DG_BCJ_ARMT);
	assert_int_equal(g[1], DG_BCJ_ARM);
	free(e);
	/* moved call sites: the ARM filter, and the x86-64 prediction, win */
	check_method(40, "bsdiff+arm");
	check_method(62, "bsdiff+x86-64-predict");
}

/* The x86-64 prediction on a target large enough to be diffed in pieces by
 * two threads, its difference stream xz'd in two segments: the delta
 * rebuilds the target, and costs little more than the one-thread one. */
static void
test_predict_threads(void **state)
{
	size_t n = 1536u << 10, dl[2], ol;
	uint8_t *s = fake_elf(62, n, 0), *t = fake_elf(62, n, 256), *d[2] = { NULL, NULL }, *out;
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;

	(void)state;
	for (int k = 0; k < 2; k++) {
		o.threads = k ? 2 : 1;
		assert_int_equal(dg_delta_diff_mem(s, n, t, n, &o, &d[k], &dl[k], &st), DG_OK);
		assert_string_equal(st.method, "bsdiff+x86-64-predict");
		out = NULL;
		assert_int_equal(dg_delta_apply_mem(s, n, d[k], dl[k], NULL, &out, &ol), DG_OK);
		assert_int_equal(ol, n);
		assert_memory_equal(out, t, n);
		free(out);
	}
	/* a second LZMA2 chunk header and one control step */
	assert_true(dl[1] < dl[0] + 256);
	free(d[0]);
	free(d[1]);
	free(s);
	free(t);
}

static void
test_filters_roundtrip(void **state)
{
	size_t n = 65536;
	uint8_t *a = random_bytes(n), *b = malloc(n);

	(void)state;
	for (int f = DG_BCJ_NONE; f < DG_BCJ_MAX_; f++) {
		memcpy(b, a, n);
		dg_bcj_encode((dg_bcj_filter)f, b, n);
		if (f != DG_BCJ_NONE)
			assert_memory_not_equal(a, b, n); /* random data has branch patterns */
		dg_bcj_decode((dg_bcj_filter)f, b, n);
		assert_memory_equal(a, b, n);
		assert_string_not_equal(dg_bcj_name((dg_bcj_filter)f), "unknown");
	}
	free(a);
	free(b);
}

static void
test_threads_chunks(void **state)
{
	size_t n = 9u << 20, i;
	uint8_t *s = texty_bytes(n), *t = malloc(n), *d = NULL, *out = NULL;
	dg_delta_diff_opts o = { 0 };
	dg_delta_diff_stats st;
	size_t dl, ol;

	(void)state;
	memcpy(t, s, n);
	for (i = 0; i < 1000; i++)
		t[rnd() % n] ^= 0x5A;
	o.threads = 2;
	o.level = 3;
	assert_int_equal(dg_delta_diff_mem(s, n, t, n, &o, &d, &dl, &st), DG_OK);
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol), DG_OK);
	assert_int_equal(ol, n);
	assert_memory_equal(out, t, n);
	free(d);
	free(out);
	free(s);
	free(t);
}

/* ---- error paths ---- */
struct fixture {
	uint8_t *s, *t, *d;
	size_t n, m, dl;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	dg_delta_diff_opts o = { 0 };

	f->n = f->m = 100000;
	f->s = texty_bytes(f->n);
	f->t = malloc(f->m);
	memcpy(f->t, f->s, f->m);
	for (int i = 0; i < 50; i++)
		f->t[rnd() % f->m] = (uint8_t)rnd();
	o.level = 3;
	if (dg_delta_diff_mem(f->s, f->n, f->t, f->m, &o, &f->d, &f->dl, NULL) != DG_OK)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	free(f->s);
	free(f->t);
	free(f->d);
	free(f);
	return 0;
}

static dg_err
try_apply(const struct fixture *f, const uint8_t *d, size_t dl, const dg_delta_apply_opts *o)
{
	uint8_t *out = NULL;
	size_t ol = 0;
	dg_err err = dg_delta_apply_mem(f->s, f->n, d, dl, o, &out, &ol);

	if (err)
		assert_null(out);
	free(out);
	return err;
}

static void
fix_crc(uint8_t *d)
{
	uint32_t c = (uint32_t)crc32(0, d, 108);

	d[108] = (uint8_t)c;
	d[109] = (uint8_t)(c >> 8);
	d[110] = (uint8_t)(c >> 16);
	d[111] = (uint8_t)(c >> 24);
}

static void
test_err_format_version_crc(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = malloc(f->dl);

	assert_int_equal(try_apply(f, f->d, f->dl, NULL), DG_OK);
	memcpy(d, f->d, f->dl);
	d[0] = 'X';
	assert_int_equal(try_apply(f, d, f->dl, NULL), DG_ERR_DELTA_FORMAT);
	assert_int_equal(try_apply(f, d, 3, NULL), DG_ERR_DELTA_FORMAT);
	memcpy(d, f->d, f->dl);
	d[8] = 2; /* version 2 */
	fix_crc(d);
	assert_int_equal(try_apply(f, d, f->dl, NULL), DG_ERR_DELTA_VERSION);
	memcpy(d, f->d, f->dl);
	d[12] = 1; /* unknown header flag */
	fix_crc(d);
	assert_int_equal(try_apply(f, d, f->dl, NULL), DG_ERR_DELTA_VERSION);
	memcpy(d, f->d, f->dl);
	d[20] ^= 1; /* header damaged, CRC not fixed */
	assert_int_equal(try_apply(f, d, f->dl, NULL), DG_ERR_DELTA_CORRUPT);
	free(d);
}

static void
test_err_truncated_and_trailing(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = malloc(f->dl + 1);

	assert_int_equal(try_apply(f, f->d, 50, NULL), DG_ERR_DELTA_TRUNCATED);
	assert_int_equal(try_apply(f, f->d, 112, NULL), DG_ERR_DELTA_TRUNCATED);
	assert_int_equal(try_apply(f, f->d, f->dl - 1, NULL), DG_ERR_DELTA_TRUNCATED);
	memcpy(d, f->d, f->dl);
	d[f->dl] = 0;
	assert_int_equal(try_apply(f, d, f->dl + 1, NULL), DG_ERR_DELTA_CORRUPT);
	free(d);
}

/* Rewrite the (zstd-compressed) recipe of the fixture's delta through fn. */
static uint8_t *
edit_recipe(const struct fixture *f, void (*fn)(uint8_t *rec), size_t *outlen)
{
	uint32_t clen = (uint32_t)f->d[96] | (uint32_t)f->d[97] << 8 | (uint32_t)f->d[98] << 16;
	uint32_t rlen = (uint32_t)f->d[100] | (uint32_t)f->d[101] << 8;
	uint8_t rec[4096], comp[4096], *d;
	size_t nc;

	assert_true(rlen <= sizeof(rec));
	assert_int_equal(ZSTD_decompress(rec, rlen, f->d + 112, clen), rlen);
	fn(rec);
	nc = ZSTD_compress(comp, sizeof(comp), rec, rlen, 3);
	assert_false(ZSTD_isError(nc));
	*outlen = f->dl - clen + nc;
	d = malloc(*outlen);
	memcpy(d, f->d, 112);
	d[96] = (uint8_t)nc;
	d[97] = (uint8_t)(nc >> 8);
	d[98] = (uint8_t)(nc >> 16);
	d[99] = 0;
	fix_crc(d);
	memcpy(d + 112, comp, nc);
	memcpy(d + 112 + nc, f->d + 112 + clen, f->dl - 112 - clen);
	return d;
}

static void set_kind_unknown(uint8_t *rec) { rec[0] = 99; }
static void set_filter_unknown(uint8_t *rec) { rec[1] = 42; }
static void set_codec_unknown(uint8_t *rec) { rec[28] = 9; }
static void set_outlen_wrong(uint8_t *rec) { rec[4] ^= 1; }
static void set_srclen_huge(uint8_t *rec) { rec[27] = 0x7f; }

static void
test_err_recipe(void **state)
{
	struct fixture *f = *state;
	size_t dl;
	uint8_t *d;

	d = edit_recipe(f, set_kind_unknown, &dl);
	assert_int_equal(try_apply(f, d, dl, NULL), DG_ERR_DELTA_RECIPE);
	free(d);
	d = edit_recipe(f, set_filter_unknown, &dl);
	assert_int_equal(try_apply(f, d, dl, NULL), DG_ERR_DELTA_RECIPE);
	free(d);
	d = edit_recipe(f, set_codec_unknown, &dl);
	assert_int_equal(try_apply(f, d, dl, NULL), DG_ERR_DELTA_RECIPE);
	free(d);
	d = edit_recipe(f, set_outlen_wrong, &dl);
	assert_int_equal(try_apply(f, d, dl, NULL), DG_ERR_DELTA_CORRUPT);
	free(d);
	d = edit_recipe(f, set_srclen_huge, &dl);
	assert_int_equal(try_apply(f, d, dl, NULL), DG_ERR_DELTA_CORRUPT);
	free(d);
}

static void
test_err_source_target(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = malloc(f->dl), *out = NULL;
	size_t ol;

	/* wrong source: same size, other bytes */
	f->s[10] ^= 1;
	assert_int_equal(try_apply(f, f->d, f->dl, NULL), DG_ERR_DELTA_SOURCE);
	f->s[10] ^= 1;
	/* wrong source size */
	assert_int_equal(dg_delta_apply_mem(f->s, f->n - 1, f->d, f->dl, NULL, &out, &ol),
			 DG_ERR_DELTA_SOURCE);
	/* the header's target hash disagrees with what the recipe builds */
	memcpy(d, f->d, f->dl);
	d[64] ^= 0xFF;
	fix_crc(d);
	assert_int_equal(try_apply(f, d, f->dl, NULL), DG_ERR_DELTA_TARGET);
	free(d);
}

static void
test_err_payload_damage(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = malloc(f->dl);
	size_t i, ok = 0;
	dg_err err;

	/* every single-byte flip in the payload is caught, by the stream
	 * decoder or the target hash: never a success, never a crash */
	for (i = f->dl - 1; i > f->dl - 200 && i > 160; i--) {
		memcpy(d, f->d, f->dl);
		d[i] ^= 0x21;
		err = try_apply(f, d, f->dl, NULL);
		assert_true(err == DG_ERR_DELTA_CORRUPT || err == DG_ERR_DELTA_TRUNCATED ||
			    err == DG_ERR_DELTA_TARGET);
		ok++;
	}
	assert_true(ok > 0);
	free(d);
}

static void
test_err_memlimit_cancel_toobig(void **state)
{
	struct fixture *f = *state;
	dg_delta_apply_opts o;
	atomic_int cancel = 1;
	size_t n = 3u << 20;
	uint8_t *s = texty_bytes(n), *t = malloc(n), *d = NULL, *out = NULL;
	dg_delta_diff_opts dopt = { 0 };
	size_t dl, ol;

	memset(&o, 0, sizeof(o));
	o.cancel = &cancel;
	assert_int_equal(try_apply(f, f->d, f->dl, &o), DG_ERR_CANCELED);
	memset(&o, 0, sizeof(o));
	o.max_target_size = f->m - 1;
	assert_int_equal(try_apply(f, f->d, f->dl, &o), DG_ERR_TOOBIG);
	/* a large diff stream needs a 1 MiB zstd window: 64 KiB is too little */
	for (size_t i = 0; i < n; i++)
		t[i] = (uint8_t)(s[i] + (i % 3 == 0));
	dopt.level = 3;
	dopt.allow_larger = 1;
	assert_int_equal(dg_delta_diff_mem(s, n, t, n, &dopt, &d, &dl, NULL), DG_OK);
	memset(&o, 0, sizeof(o));
	o.mem_limit = 64 * 1024;
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, &o, &out, &ol), DG_ERR_DELTA_MEMLIMIT);
	o.mem_limit = 0;
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, &o, &out, &ol), DG_OK);
	free(out);
	free(d);
	free(s);
	free(t);
}

static void
test_err_nogain(void **state)
{
	uint8_t *s = random_bytes(10000), *t = random_bytes(10000), *d = NULL;
	size_t dl = 0;

	(void)state;
	assert_int_equal(dg_delta_diff_mem(s, 10000, t, 10000, NULL, &d, &dl, NULL),
			 DG_ERR_DELTA_NOGAIN);
	assert_null(d);
	free(s);
	free(t);
}

static void
test_result_codes(void **state)
{
	(void)state;
	assert_int_equal(dg_delta_result_code(DG_OK), 0);
	assert_int_equal(dg_delta_result_code(DG_ERR_DELTA_SOURCE), 0x90A000CDu);
	assert_int_equal(dg_delta_result_code(DG_ERR_DELTA_TARGET) & 0xFFF00000u, 0x90A00000u);
	assert_string_equal(dg_strerror(DG_ERR_DELTA_CORRUPT), "corrupt delta");
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
			n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void
count_progress(void *arg, uint64_t done, uint64_t total)
{
	assert_true(done <= total);
	(*(int *)arg)++;
}

static void
test_files(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/dgdeltaXXXXXX", p[4][256];
	dg_delta_info *info;
	dg_delta_item_info it;
	uint8_t *d2;
	char *got;
	size_t gl;
	int progress_calls = 0;
	dg_delta_apply_opts o;

	assert_non_null(mkdtemp(dir));
	snprintf(p[0], 256, "%s/src", dir);
	snprintf(p[1], 256, "%s/tgt", dir);
	snprintf(p[2], 256, "%s/delta", dir);
	snprintf(p[3], 256, "%s/out", dir);
	assert_int_equal(dg_util_write_atomic(p[0], f->s, f->n, 0644), DG_OK);
	assert_int_equal(dg_util_write_atomic(p[1], f->t, f->m, 0644), DG_OK);
	assert_int_equal(dg_delta_diff_file(p[0], p[1], p[2], NULL, NULL), DG_OK);
	assert_int_equal(dg_delta_inspect_file(p[2], &info), DG_OK);
	assert_int_equal(dg_delta_info_version(info), 1);
	assert_int_equal(dg_delta_info_source_size(info), f->n);
	assert_int_equal(dg_delta_info_target_size(info), f->m);
	assert_true(dg_delta_info_items(info) >= 1);
	dg_delta_info_item(info, 0, &it);
	assert_true(it.out_len > 0);
	dg_delta_info_free(info);
	dg_delta_info_free(NULL);

	memset(&o, 0, sizeof(o));
	o.progress = count_progress;
	o.progress_arg = &progress_calls;
	assert_int_equal(dg_delta_apply_file(p[0], p[2], p[3], &o), DG_OK);
	assert_true(progress_calls >= 2);
	assert_int_equal(dg_util_read_file(p[3], 1u << 30, &got, &gl), DG_OK);
	assert_int_equal(gl, f->m);
	assert_memory_equal(got, f->t, gl);
	free(got);
	unlink(p[3]);

	/* a corrupt delta leaves no target and no temporary file behind */
	assert_int_equal(dg_util_read_file(p[2], 1u << 30, (char **)&d2, &gl), DG_OK);
	d2[gl - 3] ^= 0x40;
	assert_int_equal(dg_util_write_atomic(p[2], d2, gl, 0644), DG_OK);
	free(d2);
	assert_true(dg_delta_apply_file(p[0], p[2], p[3], NULL) != DG_OK);
	assert_int_equal(access(p[3], F_OK), -1);
	assert_int_equal(count_entries(dir), 3);
	/* wrong source */
	assert_int_equal(dg_delta_apply_file(p[1], p[2], p[3], NULL), DG_ERR_DELTA_SOURCE);
	assert_int_equal(count_entries(dir), 3);
	/* missing files */
	snprintf(p[3], 256, "%s/none", dir);
	assert_int_equal(dg_delta_apply_file(p[3], p[2], p[1], NULL), DG_ERR_NOENT);
	assert_int_equal(dg_delta_inspect_file(p[3], &info), DG_ERR_NOENT);
	for (int i = 0; i < 3; i++)
		unlink(p[i]);
	rmdir(dir);
}

static uint8_t *
gz(const uint8_t *raw, size_t len, size_t *outlen)
{
	static const uint8_t hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3 };
	dg_gzip_params p = { 9, 8, DG_GZIP_DEFAULT, 15 };
	uint8_t *out = NULL;

	assert_int_equal(dg_gzip_compress(raw, len, &p, hdr, sizeof(hdr), &out, outlen), DG_OK);
	return out;
}

static void
archive_roundtrip(const uint8_t *s, size_t n, const uint8_t *t, size_t m, size_t max_delta)
{
	dg_delta_diff_stats st;
	uint8_t *d = NULL, *out = NULL;
	size_t dl, ol;

	assert_int_equal(dg_delta_diff_mem(s, n, t, m, NULL, &d, &dl, &st), DG_OK);
	assert_true(strncmp(st.method, "archive(1 gzip)", 15) == 0);
	assert_true(dl <= max_delta);
	assert_int_equal(dg_delta_apply_mem(s, n, d, dl, NULL, &out, &ol), DG_OK);
	assert_int_equal(ol, m);
	assert_memory_equal(out, t, m);
	/* a damaged archive spec or payload never yields a wrong target */
	for (size_t i = 112; i < dl; i += 7) {
		uint8_t *o2 = NULL;
		size_t l2;
		dg_err e;

		d[i] ^= 0x10;
		e = dg_delta_apply_mem(s, n, d, dl, NULL, &o2, &l2);
		assert_true(e != DG_OK || (l2 == m && memcmp(o2, t, m) == 0));
		free(o2);
		d[i] ^= 0x10;
	}
	free(d);
	free(out);
}

static void
test_archive_gzip(void **state)
{
	size_t n = 400000, gal, gbl;
	uint8_t *a = texty_bytes(n), *b = malloc(n), *ga, *gb;

	(void)state;
	memcpy(b, a, n);
	for (int i = 0; i < 40; i++)
		b[rnd() % n] = 'Z';
	ga = gz(a, n, &gal);
	gb = gz(b, n, &gbl);
	/* the compressed bytes differ almost everywhere; the delta must not */
	archive_roundtrip(ga, gal, gb, gbl, 3000);
	free(a);
	free(b);
	free(ga);
	free(gb);
}

struct wbuf {
	uint8_t *p;
	size_t len;
};

static dg_err
wbuf_write(void *arg, const void *data, size_t len)
{
	struct wbuf *w = arg;

	w->p = realloc(w->p, w->len + len);
	memcpy(w->p + w->len, data, len);
	w->len += len;
	return DG_OK;
}

static uint8_t *
make_swu(const char *desc, const uint8_t *img, size_t imglen, size_t *len)
{
	struct wbuf w = { NULL, 0 };
	dg_swu_writer *sw;
	dg_swu_member m;
	dg_err err;

	sw = dg_swu_writer_new(wbuf_write, &w, &err);
	assert_non_null(sw);
	dg_swu_member_init(&m, NULL, "sw-description", (uint32_t)strlen(desc), 0);
	assert_int_equal(dg_swu_writer_add(sw, &m, desc), DG_OK);
	dg_swu_member_init(&m, NULL, "rootfs.ext4.gz", (uint32_t)imglen, 0);
	assert_int_equal(dg_swu_writer_add(sw, &m, img), DG_OK);
	assert_int_equal(dg_swu_writer_finish(sw, NULL, 512), DG_OK);
	dg_swu_writer_free(sw);
	*len = w.len;
	return w.p;
}

static void
test_archive_swu(void **state)
{
	size_t n = 300000, gal, gbl, sal, sbl;
	uint8_t *a = texty_bytes(n), *b = malloc(n), *ga, *gb, *sa, *sb;

	(void)state;
	memcpy(b, a, n);
	memcpy(b + 1000, "new version", 11);
	ga = gz(a, n, &gal);
	gb = gz(b, n, &gbl);
	sa = make_swu("software = { version = \"1\"; };\n", ga, gal, &sal);
	sb = make_swu("software = { version = \"2\"; };\n", gb, gbl, &sbl);
	archive_roundtrip(sa, sal, sb, sbl, 2000);
	free(a);
	free(b);
	free(ga);
	free(gb);
	free(sa);
	free(sb);
}


struct prog {
	uint64_t last, total;
	int calls, bad;
};

/* progress never goes back, never past the total */
static void
prog_cb(void *arg, uint64_t done, uint64_t total)
{
	struct prog *p = arg;

	if (done < p->last || done > total || (p->total && total != p->total))
		p->bad++;
	p->last = done;
	p->total = total;
	p->calls++;
}

/* A gzip pair with restart points (item kind 7): applied with 1, 2 and 5
 * threads to the same bytes; damage anywhere never gives a wrong target. */
static void
test_archive_chunked(void **state)
{
	size_t n = 1500000, gal, gbl, dl, ol;
	uint8_t *a = malloc(n), *b, *ga, *gb, *d = NULL, *out = NULL;
	dg_delta_diff_opts o = { 0 };
	dg_delta_apply_opts ao;
	dg_delta_diff_stats st;
	dg_delta_info *info;
	dg_delta_item_info ii;
	char path[64];
	int fd;

	(void)state;
	assert_non_null(a);
	/* sections of noise and text: restarts in both directions exist */
	for (size_t off = 0; off < n; off += 100000) {
		uint8_t *r = random_bytes(30000), *t = texty_bytes(70000);

		memcpy(a + off, r, 30000);
		memcpy(a + off + 30000, t, 70000);
		free(r);
		free(t);
	}
	b = malloc(n);
	assert_non_null(b);
	memcpy(b, a, n);
	for (int i = 0; i < 60; i++)
		b[rnd() % n] = 'Z';
	memmove(b + 500000, b + 500100, 100000);
	ga = gz(a, n, &gal);
	gb = gz(b, n, &gbl);
	o.split_every = 65536;
	o.threads = 2;
	assert_int_equal(dg_delta_diff_mem(ga, gal, gb, gbl, &o, &d, &dl, &st), DG_OK);
	/* item 0 is the chunked archive */
	snprintf(path, sizeof(path), "/tmp/dg_chunked_XXXXXX");
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, d, dl), (ssize_t)dl);
	close(fd);
	assert_int_equal(dg_delta_inspect_file(path, &info), DG_OK);
	dg_delta_info_item(info, 0, &ii);
	assert_string_equal(ii.kind, "archive-chunked");
	dg_delta_info_free(info);
	unlink(path);
	for (unsigned th = 1; th <= 5; th += 2) {
		struct prog pr = { 0, 0, 0, 0 };

		memset(&ao, 0, sizeof(ao));
		ao.threads = th;
		ao.progress = prog_cb;
		ao.progress_arg = &pr;
		assert_int_equal(dg_delta_apply_mem(ga, gal, d, dl, &ao, &out, &ol), DG_OK);
		assert_int_equal(ol, gbl);
		assert_memory_equal(out, gb, gbl);
		/* an archive's progress is in target bytes and ends at 100% */
		assert_true(pr.calls > 0);
		assert_int_equal(pr.bad, 0);
		assert_int_equal(pr.last, gbl);
		free(out);
		out = NULL;
	}
	/* without restart points: kind 6, the same target */
	{
		uint8_t *d6 = NULL;
		size_t dl6;

		o.split_every = DG_DELTA_SPLIT_NONE;
		assert_int_equal(dg_delta_diff_mem(ga, gal, gb, gbl, &o, &d6, &dl6, &st), DG_OK);
		assert_true(dl6 < dl);
		assert_int_equal(dg_delta_apply_mem(ga, gal, d6, dl6, NULL, &out, &ol), DG_OK);
		assert_memory_equal(out, gb, gbl);
		free(out);
		out = NULL;
		free(d6);
	}
	/* damage: an error, never a wrong target, with threads */
	memset(&ao, 0, sizeof(ao));
	ao.threads = 3;
	for (size_t i = 112; i < dl; i += (i < 2000 ? 3 : 997)) {
		uint8_t *o2 = NULL;
		size_t l2;
		dg_err e;

		d[i] ^= 0x24;
		e = dg_delta_apply_mem(ga, gal, d, dl, &ao, &o2, &l2);
		assert_true(e != DG_OK || (l2 == gbl && memcmp(o2, gb, gbl) == 0));
		free(o2);
		d[i] ^= 0x24;
	}
	/* cancellation stops the threads too */
	{
		atomic_int stop = 1;

		memset(&ao, 0, sizeof(ao));
		ao.threads = 4;
		ao.cancel = &stop;
		assert_int_equal(dg_delta_apply_mem(ga, gal, d, dl, &ao, &out, &ol), DG_ERR_CANCELED);
		assert_null(out);
		ao.cancel = NULL;
		ao.threads = 3;
	}
	/* a wrong source is DG_ERR_DELTA_SOURCE even while threads expand it */
	ga[gal / 2] ^= 1;
	assert_int_equal(dg_delta_apply_mem(ga, gal, d, dl, &ao, &out, &ol), DG_ERR_DELTA_SOURCE);
	free(d);
	free(a);
	free(b);
	free(ga);
	free(gb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_edge_sizes),
		cmocka_unit_test(test_archive_chunked),
		cmocka_unit_test(test_roundtrip_edits),
		cmocka_unit_test(test_roundtrip_random_unrelated),
		cmocka_unit_test(test_filters_roundtrip),
		cmocka_unit_test(test_filter_chosen_for_shifted_code),
		cmocka_unit_test(test_threads_chunks),
		cmocka_unit_test(test_predict_threads),
		cmocka_unit_test_setup_teardown(test_err_format_version_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_err_truncated_and_trailing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_err_recipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_err_source_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_err_payload_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_err_memlimit_cancel_toobig, setup, teardown),
		cmocka_unit_test(test_err_nogain),
		cmocka_unit_test(test_result_codes),
		cmocka_unit_test(test_archive_gzip),
		cmocka_unit_test(test_archive_swu),
		cmocka_unit_test_setup_teardown(test_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
