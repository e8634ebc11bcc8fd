/* Unit tests: dg_cache */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "dg_cache.h"
#include "dg_log.h"
#include "dg_util.h"

static char root[64];

static void
rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/dg_cache_XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	rm_rf(root);
	return 0;
}

static void
sha(const void *data, size_t len, unsigned char out[32])
{
	assert_int_equal(EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL), 1);
}

/* Deterministic content of n bytes for seed k. */
static unsigned char *
content(unsigned k, size_t n)
{
	unsigned char *b = malloc(n ? n : 1);
	uint32_t x = 2463534242u ^ (k * 2654435761u);
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
	return b;
}

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

/* Number of directory entries under dir whose names start with prefix. */
static int
count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Insert n bytes of content(k) under provider through a writer. */
static void
put(dg_cache *c, const char *prov, unsigned k, size_t n, unsigned char digest[32])
{
	unsigned char *b = content(k, n);
	dg_cache_writer *w;
	dg_err err;

	sha(b, n, digest);
	w = dg_cache_writer_new(c, prov, digest, n, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, b, n), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_OK);
	free(b);
}

static void
check_totals(dg_cache *c);

/* ------------------------------------------------------------- naming */

struct vector {
	const char *input;
	const char *name;
};

/* Expected names verified with: printf %s INPUT | openssl dgst -sha256
 * -binary | base64, then the escapes applied by hand. */
static const struct vector vectors[] = {
	/* base64 UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ+8pHvo= : '+' and '=' */
	{ "deltagate-1", "sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo_3D" },
	/* 58JNVz2ps5KYmVU7fPENNpyne3oNTM/5jRFAiMC291k= : '/' and '=' */
	{ "deltagate-3", "sha256-58JNVz2ps5KYmVU7fPENNpyne3oNTM_2F5jRFAiMC291k_3D" },
	/* gYlDC89V3KrYv0XaSM8L/+a99WcapFPZ4sz9XVtd/pg= : all three */
	{ "deltagate-8", "sha256-gYlDC89V3KrYv0XaSM8L_2F_2Ba99WcapFPZ4sz9XVtd_2Fpg_3D" },
	/* the empty file: 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= */
	{ "", "sha256-47DEQpj8HBSa_2B_2FTImW_2B5JCeuQeRkm5NMpJWZG3hSuFU_3D" },
};

static void
test_name_encoding(void **state)
{
	unsigned char d[32], back[32];
	char name[DG_CACHE_NAME_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		sha(vectors[i].input, strlen(vectors[i].input), d);
		dg_cache_name_encode(d, name);
		assert_string_equal(name, vectors[i].name);
		assert_int_equal(dg_cache_name_decode(name, back), DG_OK);
		assert_memory_equal(back, d, 32);
	}
}

static void
test_name_decode_rejects(void **state)
{
	unsigned char d[32];
	static const char *bad[] = {
		"",
		"sha256-",
		"UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo_3D",       /* no prefix */
		"sha1-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo_3D",
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ+8pHvo_3D",  /* raw '+' */
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo=",  /* raw '=' */
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2b8pHvo_3D", /* lower-case escape */
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo",    /* no padding */
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvp_3D", /* stray low bits */
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo_3DA",
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pH!o_3D",
		"sha256-UPV2NGLp0j5xyrvmf2BsvPEsgsnXRwlP8KVuZ_2B8pHvo_3D.tmp",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(dg_cache_name_decode(bad[i], d), DG_ERR_CACHE_NAME);
}

static void
test_provider_check(void **state)
{
	char longname[300];

	(void)state;
	memset(longname, 'a', sizeof(longname));
	longname[256] = '\0';
	assert_int_equal(dg_cache_provider_check("contoso"), DG_OK);
	assert_int_equal(dg_cache_provider_check("a b_c-1.2"), DG_OK);
	assert_int_equal(dg_cache_provider_check(NULL), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check(""), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check("."), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check(".."), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check("a/b"), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check("/"), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check(".partial"), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_provider_check(longname), DG_ERR_CACHE_PROVIDER);
	longname[255] = '\0';
	assert_int_equal(dg_cache_provider_check(longname), DG_OK);
}

/* ------------------------------------------------------ insert, lookup */

static void
test_insert_lookup(void **state)
{
	unsigned char *b = content(1, 100000), d[32], other[32];
	char src[128], *p;
	dg_cache_entry e, e2;
	uint64_t bytes, n;
	dg_cache *c;
	dg_err err;
	size_t len;
	char *data;

	(void)state;
	sha(b, 100000, d);
	snprintf(src, sizeof(src), "%s/src.bin", root);
	write_file(src, b, 100000);
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	assert_int_equal(dg_cache_lookup(c, "contoso", d, &e), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_insert_file(c, "contoso", src, NULL, &e), DG_OK);
	assert_memory_equal(e.sha256, d, 32);
	assert_int_equal(e.size, 100000);
	assert_string_equal(e.provider, "contoso");
	/* the file is at its layout path with the same bytes */
	p = dg_cache_path(c, "contoso", d, &err);
	assert_non_null(p);
	assert_int_equal(dg_util_read_file(p, 1 << 20, &data, &len), DG_OK);
	assert_int_equal(len, 100000);
	assert_memory_equal(data, b, len);
	free(data);
	assert_int_equal(count_prefix(root, "contoso"), 1);
	/* lookups: by provider, any provider; a miss elsewhere */
	assert_int_equal(dg_cache_lookup(c, "contoso", d, &e2), DG_OK);
	assert_int_equal(e2.size, 100000);
	assert_int_equal(dg_cache_lookup(c, "fabrikam", d, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "../x", d, NULL), DG_ERR_CACHE_PROVIDER);
	assert_int_equal(dg_cache_lookup_any(c, d, &e2), DG_OK);
	assert_string_equal(e2.provider, "contoso");
	memset(other, 7, sizeof(other));
	assert_int_equal(dg_cache_lookup_any(c, other, NULL), DG_ERR_CACHE_MISS);
	/* identical insert is a no-op; with the digest given, no copy at all */
	assert_int_equal(dg_cache_insert_file(c, "contoso", src, NULL, NULL), DG_OK);
	assert_int_equal(dg_cache_insert_file(c, "contoso", src, d, NULL), DG_OK);
	assert_int_equal(dg_cache_usage(c, &bytes, NULL, &n), DG_OK);
	assert_int_equal(bytes, 100000);
	assert_int_equal(n, 1);
	/* the same content under a second provider is a second entry */
	assert_int_equal(dg_cache_insert_file(c, "fabrikam", src, d, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "fabrikam", d, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup_any(c, d, &e2), DG_OK);
	assert_string_equal(e2.provider, "fabrikam"); /* most recently used */
	/* wrong expected hash: refused, nothing left, index unchanged */
	assert_int_equal(dg_cache_insert_file(c, "wrong", src, other, NULL), DG_ERR_CACHE_HASH);
	{
		char dir[128];

		snprintf(dir, sizeof(dir), "%s/wrong", root);
		assert_int_equal(count_prefix(dir, ""), 0);
	}
	assert_int_equal(dg_cache_usage(c, &bytes, NULL, &n), DG_OK);
	assert_int_equal(n, 2);
	/* a vanished file is a miss, and its entry goes */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(dg_cache_lookup(c, "contoso", d, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_usage(c, &bytes, NULL, &n), DG_OK);
	assert_int_equal(n, 1);
	check_totals(c);
	free(p);
	free(b);
	dg_cache_free(c);
	dg_cache_free(NULL);
}

static void
test_writer_sizes(void **state)
{
	unsigned char *b = content(2, 5000), d[32];
	dg_cache_writer *w;
	dg_cache_entry e;
	dg_cache *c;
	dg_err err;
	char dir[128];
	size_t i;

	(void)state;
	sha(b, 5000, d);
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	snprintf(dir, sizeof(dir), "%s/p", root);
	/* chunk by chunk, as libcurl writes */
	w = dg_cache_writer_new(c, "p", d, 5000, &err);
	assert_non_null(w);
	assert_int_equal(count_prefix(dir, ".tmp-"), 1);
	for (i = 0; i < 5000; i += 333)
		assert_int_equal(dg_cache_writer_write(w, b + i, i + 333 > 5000 ? 5000 - i : 333), DG_OK);
	assert_int_equal(dg_cache_writer_offset(w), 5000);
	assert_int_equal(dg_cache_writer_commit(w, &e), DG_OK);
	assert_int_equal(e.size, 5000);
	assert_int_equal(count_prefix(dir, ".tmp-"), 0);
	assert_int_equal(count_prefix(dir, "sha256-"), 1);
	/* more bytes than announced */
	w = dg_cache_writer_new(c, "q", NULL, 10, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, b, 11), DG_ERR_CACHE_SIZE);
	assert_int_equal(dg_cache_writer_write(w, b, 1), DG_ERR_CACHE_SIZE); /* stays failed */
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_SIZE);
	/* fewer */
	w = dg_cache_writer_new(c, "q", NULL, 10, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, b, 9), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_SIZE);
	/* abandoned */
	w = dg_cache_writer_new(c, "q", NULL, 0, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, b, 9), DG_OK);
	dg_cache_writer_abort(w);
	dg_cache_writer_abort(NULL);
	snprintf(dir, sizeof(dir), "%s/q", root);
	assert_int_equal(count_prefix(dir, ""), 0);
	/* bad provider */
	assert_null(dg_cache_writer_new(c, "..", NULL, 0, &err));
	assert_int_equal(err, DG_ERR_CACHE_PROVIDER);
	assert_null(dg_cache_writer_new(c, "a/b", NULL, 0, &err));
	assert_int_equal(err, DG_ERR_CACHE_PROVIDER);
	check_totals(c);
	free(b);
	dg_cache_free(c);
}

/* ------------------------------------------------------------- quota */

struct sum {
	uint64_t bytes, pinned, n;
};

static int
sum_entry(const dg_cache_entry *e, void *arg)
{
	struct sum *s = arg;

	s->bytes += e->size;
	s->pinned += e->pins ? e->size : 0;
	s->n++;
	return 0;
}

/* The trigger-kept totals agree with the rows. */
static void
check_totals(dg_cache *c)
{
	struct sum s = { 0, 0, 0 };
	uint64_t bytes, pinned, n;

	assert_int_equal(dg_cache_foreach(c, sum_entry, &s), DG_OK);
	assert_int_equal(dg_cache_usage(c, &bytes, &pinned, &n), DG_OK);
	assert_int_equal(bytes, s.bytes);
	assert_int_equal(pinned, s.pinned);
	assert_int_equal(n, s.n);
}

static void
test_eviction_order(void **state)
{
	unsigned char a[32], b[32], cc[32], d[32], e[32];
	char *pb;
	dg_cache *c;
	dg_err err;
	uint64_t bytes;

	(void)state;
	c = dg_cache_new(root, 3000, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 1, 1000, a);
	put(c, "p", 2, 1000, b);
	put(c, "p", 3, 1000, cc);
	pb = dg_cache_path(c, "p", b, &err);
	/* use A: B is now the least recently used */
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_OK);
	put(c, "p", 4, 1000, d);
	assert_int_equal(dg_cache_lookup(c, "p", b, NULL), DG_ERR_CACHE_MISS);
	assert_false(exists(pb));
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", cc, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_OK);
	/* used in the order A, C, D: A and C are the oldest now */
	put(c, "p", 5, 1500, e);
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", cc, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", e, NULL), DG_OK);
	assert_int_equal(dg_cache_usage(c, &bytes, NULL, NULL), DG_OK);
	assert_int_equal(bytes, 2500);
	check_totals(c);
	/* larger than the whole quota: refused before anything is evicted */
	assert_null(dg_cache_writer_new(c, "p", NULL, 3001, &err));
	assert_int_equal(err, DG_ERR_CACHE_FULL);
	/* gc with a smaller quota evicts oldest first */
	dg_cache_set_quota(c, 1500);
	assert_int_equal(dg_cache_gc(c, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", e, NULL), DG_OK);
	free(pb);
	dg_cache_free(c);
}

/* A row whose file was removed by hand, re-inserted under quota pressure:
 * the stale row is replaced, not evicted (which would unlink the new file). */
static void
test_reinsert_stale_row(void **state)
{
	unsigned char a[32], b[32];
	char *pa;
	dg_cache *c;
	dg_err err;

	(void)state;
	c = dg_cache_new(root, 2000, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 1, 1000, a);
	put(c, "p", 2, 1000, b);
	pa = dg_cache_path(c, "p", a, &err);
	assert_int_equal(unlink(pa), 0);
	put(c, "p", 1, 1000, a);
	assert_true(exists(pa));
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", b, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_verify(c, NULL), DG_OK);
	check_totals(c);
	free(pa);
	dg_cache_free(c);
}

static void
test_pins(void **state)
{
	unsigned char a[32], b[32], x[32];
	unsigned char *bx = content(9, 1000);
	dg_cache_writer *w;
	uint64_t count, n, pinned;
	dg_cache *c;
	dg_err err;

	(void)state;
	c = dg_cache_new(root, 2000, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 1, 1000, a);
	put(c, "p", 2, 1000, b);
	assert_int_equal(dg_cache_pin(c, "p", a, ""), DG_ERR_INVAL);
	assert_int_equal(dg_cache_pin(c, "p", x, "dev:1"), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_pin(c, "p", a, "dev:1"), DG_OK);
	assert_int_equal(dg_cache_pin(c, "p", a, "dev:1"), DG_OK);
	assert_int_equal(dg_cache_pin(c, "p", a, "xfer:7"), DG_OK);
	assert_int_equal(dg_cache_pin(c, "p", b, "xfer:8"), DG_OK);
	assert_int_equal(dg_cache_pins(c, "p", a, "dev:1", &count), DG_OK);
	assert_int_equal(count, 2);
	assert_int_equal(dg_cache_pins(c, "p", a, NULL, &count), DG_OK);
	assert_int_equal(count, 3);
	assert_int_equal(dg_cache_usage(c, NULL, &pinned, NULL), DG_OK);
	assert_int_equal(pinned, 2000);
	check_totals(c);
	/* everything pinned: the insert fails, nothing cached is lost */
	sha(bx, 1000, x);
	assert_null(dg_cache_writer_new(c, "p", x, 1000, &err));
	assert_int_equal(err, DG_ERR_CACHE_FULL);
	w = dg_cache_writer_new(c, "p", NULL, 0, &err); /* size unknown up front */
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, bx, 1000), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_FULL);
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", b, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", x, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_remove(c, "p", a), DG_ERR_BUSY);
	/* pins count per holder */
	assert_int_equal(dg_cache_unpin(c, "p", a, "dev:2"), DG_ERR_CACHE_NOT_PINNED);
	assert_int_equal(dg_cache_unpin(c, "p", a, "dev:1"), DG_OK);
	assert_int_equal(dg_cache_pins(c, "p", a, NULL, &count), DG_OK);
	assert_int_equal(count, 2);
	assert_int_equal(dg_cache_unpin(c, "p", a, "dev:1"), DG_OK);
	assert_int_equal(dg_cache_unpin(c, "p", a, "dev:1"), DG_ERR_CACHE_NOT_PINNED);
	/* still held by xfer:7 */
	assert_null(dg_cache_writer_new(c, "p", x, 1000, &err));
	assert_int_equal(err, DG_ERR_CACHE_FULL);
	/* a process-lifetime holder family released at once */
	assert_int_equal(dg_cache_unpin_holder(c, "xfer:", &n), DG_OK);
	assert_int_equal(n, 2);
	assert_int_equal(dg_cache_pins(c, "p", a, NULL, &count), DG_OK);
	assert_int_equal(count, 0);
	check_totals(c);
	/* pin b again: now the insert evicts a, the only unpinned one */
	assert_int_equal(dg_cache_pin(c, "p", b, "dev:3"), DG_OK);
	put(c, "p", 9, 1000, x);
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", b, NULL), DG_OK);
	/* pins survive a reopen */
	dg_cache_free(c);
	c = dg_cache_new(root, 2000, 0, NULL, &err);
	assert_non_null(c);
	assert_int_equal(dg_cache_pins(c, "p", b, "dev:3", &count), DG_OK);
	assert_int_equal(count, 1);
	check_totals(c);
	free(bx);
	dg_cache_free(c);
}

/* ------------------------------------------------------------- reading */

static void
test_map(void **state)
{
	unsigned char *b = content(4, 70000), d[32], z[32], big[32];
	const void *data, *zdata;
	size_t len, zlen;
	char *p;
	dg_cache *c;
	dg_err err;
	int fd;

	(void)state;
	c = dg_cache_new(root, 100000, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 4, 70000, d);
	assert_int_equal(dg_cache_map(c, "p", d, &data, &len), DG_ERR_CACHE_NOT_PINNED);
	assert_int_equal(dg_cache_pin(c, "p", d, "xfer:1"), DG_OK);
	assert_int_equal(dg_cache_map(c, "p", d, &data, &len), DG_OK);
	assert_int_equal(len, 70000);
	assert_memory_equal(data, b, len);
	/* eviction attempted meanwhile: the pinned entry stays */
	{
		dg_cache_writer *w = dg_cache_writer_new(c, "p", NULL, 0, &err);
		unsigned char *b2 = content(5, 50000);

		assert_non_null(w);
		assert_int_equal(dg_cache_writer_write(w, b2, 50000), DG_OK);
		assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_FULL);
		sha(b2, 50000, big);
		free(b2);
	}
	assert_memory_equal(data, b, len);
	/* and even if the entry goes, the mapping keeps its bytes */
	assert_int_equal(dg_cache_unpin(c, "p", d, "xfer:1"), DG_OK);
	assert_int_equal(dg_cache_remove(c, "p", d), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_ERR_CACHE_MISS);
	assert_memory_equal(data, b, len);
	dg_cache_unmap(data, len);
	/* an empty entry maps too */
	put(c, "p", 0, 0, z);
	assert_int_equal(dg_cache_pin(c, "p", z, "h"), DG_OK);
	assert_int_equal(dg_cache_map(c, "p", z, &zdata, &zlen), DG_OK);
	assert_non_null(zdata);
	assert_int_equal(zlen, 0);
	dg_cache_unmap(zdata, zlen);
	/* fd access */
	put(c, "p", 4, 70000, d);
	assert_int_equal(dg_cache_open_fd(c, "p", d, &fd), DG_OK);
	{
		unsigned char buf[16];

		assert_int_equal(read(fd, buf, 16), 16);
		assert_memory_equal(buf, b, 16);
	}
	close(fd);
	dg_cache_free(c);
	/* re-hash on read: same-size damage is caught and quarantined */
	c = dg_cache_new(root, 0, DG_CACHE_VERIFY_ON_READ, NULL, &err);
	assert_non_null(c);
	p = dg_cache_path(c, "p", d, &err);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 1234), 1);
	close(fd);
	assert_int_equal(dg_cache_pin(c, "p", d, "xfer:2"), DG_OK);
	assert_int_equal(dg_cache_map(c, "p", d, &data, &len), DG_ERR_CACHE_CORRUPT);
	assert_false(exists(p));
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_ERR_CACHE_MISS);
	{
		char q[128];

		snprintf(q, sizeof(q), "%s/.quarantine", root);
		assert_int_equal(count_prefix(q, "p_sha256-"), 1);
	}
	check_totals(c);
	free(p);
	free(b);
	dg_cache_free(c);
}

/* ------------------------------------------------------ reconciliation */

static void
test_reconcile(void **state)
{
	unsigned char dgone[32], dshort[32], dflip[32], dorph[32], dlie[32], dkeep[32];
	unsigned char *b;
	char path[512], *p;
	dg_cache_report r;
	dg_cache *c;
	dg_err err;
	int fd;

	(void)state;
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 10, 3000, dgone);
	put(c, "p", 11, 3000, dshort);
	put(c, "p", 12, 3000, dflip);
	put(c, "p", 13, 3000, dkeep);
	/* indexed, file removed */
	p = dg_cache_path(c, "p", dgone, &err);
	assert_int_equal(unlink(p), 0);
	free(p);
	/* indexed, file truncated */
	p = dg_cache_path(c, "p", dshort, &err);
	assert_int_equal(truncate(p, 100), 0);
	free(p);
	/* indexed, same size, one byte flipped */
	p = dg_cache_path(c, "p", dflip, &err);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 10), 1);
	close(fd);
	free(p);
	dg_cache_free(c);
	/* orphan under its right name (a crash after rename, or another tool) */
	b = content(14, 2000);
	sha(b, 2000, dorph);
	{
		char name[DG_CACHE_NAME_MAX];

		snprintf(path, sizeof(path), "%s/q", root);
		assert_int_equal(mkdir(path, 0755), 0);
		dg_cache_name_encode(dorph, name);
		snprintf(path, sizeof(path), "%s/q/%s", root, name);
		write_file(path, b, 2000);
		/* orphan whose content lies about its name */
		sha("lie", 3, dlie);
		dg_cache_name_encode(dlie, name);
		snprintf(path, sizeof(path), "%s/q/%s", root, name);
		write_file(path, b, 2000);
	}
	/* stale temp files, a foreign file, a partial download and junk */
	snprintf(path, sizeof(path), "%s/p/.tmp-abcdef", root);
	write_file(path, b, 10);
	snprintf(path, sizeof(path), "%s/q/README", root);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/.partial", root);
	assert_int_equal(mkdir(path, 0755), 0);
	{
		char hex[65];

		dg_util_hex_encode(dkeep, 32, hex);
		snprintf(path, sizeof(path), "%s/.partial/%s", root, hex);
		write_file(path, b, 10);
		snprintf(path, sizeof(path), "%s/.partial/%s.tmp", root, hex);
		write_file(path, b, 10);
	}

	c = dg_cache_new(root, 0, 0, &r, &err);
	assert_non_null(c);
	assert_int_equal(r.dropped, 1);
	assert_int_equal(r.quarantined, 2); /* truncated + lying orphan */
	assert_int_equal(r.adopted, 1);
	assert_int_equal(r.temps, 2);
	assert_int_equal(r.skipped, 1);     /* README */
	assert_int_equal(dg_cache_lookup(c, "p", dgone, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", dshort, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "q", dorph, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "q", dlie, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "p", dkeep, NULL), DG_OK);
	/* the flip is the same size: only a re-hash finds it */
	assert_int_equal(dg_cache_lookup(c, "p", dflip, NULL), DG_OK);
	snprintf(path, sizeof(path), "%s/p", root);
	assert_int_equal(count_prefix(path, ".tmp-"), 0);
	snprintf(path, sizeof(path), "%s/q/README", root);
	assert_true(exists(path));
	snprintf(path, sizeof(path), "%s/.partial", root);
	assert_int_equal(count_prefix(path, ""), 1);
	snprintf(path, sizeof(path), "%s/.quarantine", root);
	assert_int_equal(count_prefix(path, ""), 2);
	check_totals(c);
	dg_cache_free(c);

	/* a reopen finds nothing more to do */
	c = dg_cache_new(root, 0, 0, &r, &err);
	assert_non_null(c);
	assert_int_equal(r.dropped + r.quarantined + r.adopted + r.temps, 0);
	dg_cache_free(c);
	/* re-hash at open finds the flip */
	c = dg_cache_new(root, 0, DG_CACHE_VERIFY_AT_OPEN, &r, &err);
	assert_non_null(c);
	assert_int_equal(r.quarantined, 1);
	assert_int_equal(dg_cache_lookup(c, "p", dflip, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_verify(c, &r), DG_OK);
	assert_int_equal(r.checked, 2);
	assert_int_equal(dg_cache_lookup(c, "q", dorph, NULL), DG_OK); /* newest use */
	dg_cache_free(c);
	/* over the quota at open: the oldest go */
	c = dg_cache_new(root, 2500, 0, &r, &err);
	assert_non_null(c);
	assert_int_equal(r.evicted, 1);
	assert_int_equal(dg_cache_lookup(c, "p", dkeep, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_lookup(c, "q", dorph, NULL), DG_OK);
	check_totals(c);
	free(b);
	dg_cache_free(c);
}

static void
test_verify(void **state)
{
	unsigned char a[32], b[32], cc[32];
	dg_cache_report r;
	char *p;
	dg_cache *c;
	dg_err err;
	int fd;

	(void)state;
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 1, 4000, a);
	put(c, "p", 2, 4000, b);
	put(c, "p", 3, 4000, cc);
	assert_int_equal(dg_cache_verify(c, &r), DG_OK);
	assert_int_equal(r.checked, 3);
	p = dg_cache_path(c, "p", b, &err);
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "Y", 1, 3999), 1);
	close(fd);
	free(p);
	p = dg_cache_path(c, "p", cc, &err);
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(dg_cache_verify(c, &r), DG_ERR_CACHE_CORRUPT);
	assert_int_equal(r.checked, 3);
	assert_int_equal(r.quarantined, 1);
	assert_int_equal(r.dropped, 1);
	assert_int_equal(dg_cache_lookup(c, "p", a, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", b, NULL), DG_ERR_CACHE_MISS);
	assert_int_equal(dg_cache_verify(c, &r), DG_OK);
	check_totals(c);
	dg_cache_free(c);
}

/* ---------------------------------------------------------- resumable */

static void
test_resume(void **state)
{
	unsigned char *b = content(20, 300000), d[32];
	dg_cache_writer *w, *w2;
	char part[256], hex[65];
	dg_cache_entry e;
	uint64_t have;
	dg_cache *c;
	dg_err err;

	(void)state;
	sha(b, 300000, d);
	dg_util_hex_encode(d, 32, hex);
	snprintf(part, sizeof(part), "%s/.partial/%s", root, hex);
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	assert_null(dg_cache_writer_resume(c, "p", NULL, 0, &have, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	w = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w);
	assert_int_equal(have, 0);
	assert_int_equal(dg_cache_writer_write(w, b, 123457), DG_OK);
	/* a second writer of the same download is refused */
	assert_null(dg_cache_writer_resume(c, "p", d, 300000, &have, &err));
	assert_int_equal(err, DG_ERR_CACHE_LOCKED);
	assert_int_equal(dg_cache_partial_remove(c, d), DG_ERR_CACHE_LOCKED);
	dg_cache_writer_abort(w);
	assert_true(exists(part));
	dg_cache_free(c);
	/* a new process: reconciliation keeps the partial, resume continues */
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	w = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w);
	assert_int_equal(have, 123457);
	assert_int_equal(dg_cache_writer_offset(w), 123457);
	assert_int_equal(dg_cache_writer_write(w, b + have, 300000 - have), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, &e), DG_OK);
	assert_int_equal(e.size, 300000);
	assert_false(exists(part));
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_OK);
	assert_int_equal(dg_cache_verify(c, NULL), DG_OK);
	assert_int_equal(dg_cache_remove(c, "p", d), DG_OK);

	/* a partial with wrong bytes fails at commit and is deleted */
	w = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, "garbage", 7), DG_OK);
	dg_cache_writer_abort(w);
	w = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w);
	assert_int_equal(have, 7);
	assert_int_equal(dg_cache_writer_write(w, b + 7, 300000 - 7), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_HASH);
	assert_false(exists(part));
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_ERR_CACHE_MISS);
	/* a partial longer than expected starts over */
	{
		unsigned char *longer = malloc(300001);

		assert_non_null(longer);
		memcpy(longer, b, 300000);
		longer[300000] = 'x';
		write_file(part, longer, 300001);
		free(longer);
	}
	w = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w);
	assert_int_equal(have, 0);
	dg_cache_writer_abort(w);
	assert_int_equal(dg_cache_partial_remove(c, d), DG_OK);
	assert_false(exists(part));
	assert_int_equal(dg_cache_partial_remove(c, d), DG_OK);
	dg_cache_free(c);

	/* complete but no room (pinned): the bytes are kept for later */
	c = dg_cache_new(root, 350000, 0, NULL, &err);
	assert_non_null(c);
	{
		unsigned char x[32];

		put(c, "p", 21, 100000, x);
		assert_int_equal(dg_cache_pin(c, "p", x, "dev:1"), DG_OK);
		w = dg_cache_writer_resume(c, "p", d, 0, &have, &err);
		assert_non_null(w);
		assert_int_equal(dg_cache_writer_write(w, b, 300000), DG_OK);
		assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_CACHE_FULL);
		assert_true(exists(part));
		assert_int_equal(dg_cache_lookup(c, "p", x, NULL), DG_OK);
		assert_int_equal(dg_cache_unpin(c, "p", x, "dev:1"), DG_OK);
	}
	w2 = dg_cache_writer_resume(c, "p", d, 300000, &have, &err);
	assert_non_null(w2);
	assert_int_equal(have, 300000);
	assert_int_equal(dg_cache_writer_commit(w2, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_OK);
	check_totals(c);
	free(b);
	dg_cache_free(c);
}

/* ------------------------------------------------------------ errors */

static void
test_error_paths(void **state)
{
	unsigned char *b = content(30, 1 << 20), d[32], ok[32];
	char path[256];
	dg_cache_writer *w;
	uint64_t bytes, n, have;
	struct rlimit old, small;
	dg_cache *c;
	dg_err err;

	(void)state;
	c = dg_cache_new(root, 0, 0, NULL, &err);
	assert_non_null(c);
	put(c, "p", 31, 1000, ok);
	/* a provider directory that is a file: ENOTDIR, nothing left */
	snprintf(path, sizeof(path), "%s/blocked", root);
	write_file(path, "x", 1);
	assert_null(dg_cache_writer_new(c, "blocked", NULL, 0, &err));
	assert_int_not_equal(err, DG_OK);
	assert_int_equal(dg_cache_insert_file(c, "blocked", path, NULL, NULL) == DG_OK, 0);
	/* a missing source file */
	snprintf(path, sizeof(path), "%s/nope", root);
	assert_int_equal(dg_cache_insert_file(c, "p", path, NULL, NULL), DG_ERR_NOENT);
	/* a directory is not a file to insert */
	assert_int_equal(dg_cache_insert_file(c, "p", root, NULL, NULL), DG_ERR_INVAL);

	/* a full disk (file size limit: the kernel's EFBIG, which is what
	 * ENOSPC looks like to a writer): clear error, no partial file,
	 * index unchanged */
	sha(b, 1 << 20, d);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 256 * 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	w = dg_cache_writer_new(c, "p", d, 1 << 20, &err);
	assert_non_null(w);
	err = dg_cache_writer_write(w, b, 1 << 20);
	assert_int_equal(err, DG_ERR_NOSPC);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_ERR_NOSPC);
	/* resumable: keeps only whole chunks that were written */
	w = dg_cache_writer_resume(c, "p", d, 1 << 20, &have, &err);
	assert_non_null(w);
	assert_int_equal(dg_cache_writer_write(w, b, 200 * 1024), DG_OK);
	assert_int_equal(dg_cache_writer_write(w, b + 200 * 1024, 100 * 1024), DG_ERR_NOSPC);
	dg_cache_writer_abort(w);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	snprintf(path, sizeof(path), "%s/p", root);
	assert_int_equal(count_prefix(path, ".tmp-"), 0);
	assert_int_equal(count_prefix(path, "sha256-"), 1);
	assert_int_equal(dg_cache_usage(c, &bytes, NULL, &n), DG_OK);
	assert_int_equal(bytes, 1000);
	assert_int_equal(n, 1);
	w = dg_cache_writer_resume(c, "p", d, 1 << 20, &have, &err);
	assert_non_null(w);
	assert_int_equal(have, 200 * 1024);
	assert_int_equal(dg_cache_writer_write(w, b + have, (1 << 20) - have), DG_OK);
	assert_int_equal(dg_cache_writer_commit(w, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "p", d, NULL), DG_OK);
	check_totals(c);
	dg_cache_free(c);

	/* a root that is a file */
	snprintf(path, sizeof(path), "%s/blocked/cache", root);
	assert_null(dg_cache_new(path, 0, 0, NULL, &err));
	assert_int_not_equal(err, DG_OK);
	assert_null(dg_cache_new("", 0, 0, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	free(b);
}

static void
test_adopt(void **state)
{
	unsigned char *b = content(40, 5000), d[32], lie[32];
	char foreign[128], path[512], name[DG_CACHE_NAME_MAX];
	dg_cache_report r;
	dg_cache *c;
	dg_err err;

	(void)state;
	sha(b, 5000, d);
	sha("x", 1, lie);
	snprintf(foreign, sizeof(foreign), "%s/foreign", root);
	snprintf(path, sizeof(path), "%s/contoso", foreign);
	assert_int_equal(dg_util_mkdir_p(path, 0755), DG_OK);
	dg_cache_name_encode(d, name);
	snprintf(path, sizeof(path), "%s/contoso/%s", foreign, name);
	write_file(path, b, 5000);
	dg_cache_name_encode(lie, name);
	snprintf(path, sizeof(path), "%s/contoso/%s", foreign, name);
	write_file(path, b, 5000);
	snprintf(path, sizeof(path), "%s/contoso/notes.txt", foreign);
	write_file(path, "x", 1);

	snprintf(path, sizeof(path), "%s/cache", root);
	c = dg_cache_new(path, 0, 0, NULL, &err);
	assert_non_null(c);
	assert_int_equal(dg_cache_adopt(c, foreign, NULL, &r), DG_ERR_CACHE_HASH);
	assert_int_equal(r.adopted, 1);
	assert_int_equal(r.quarantined, 1);
	assert_int_equal(r.skipped, 1);
	assert_int_equal(dg_cache_lookup(c, "contoso", d, NULL), DG_OK);
	assert_int_equal(dg_cache_lookup(c, "contoso", lie, NULL), DG_ERR_CACHE_MISS);
	/* the source is untouched */
	snprintf(path, sizeof(path), "%s/contoso", foreign);
	assert_int_equal(count_prefix(path, "sha256-"), 2);
	/* one provider directory under a chosen provider */
	assert_int_equal(dg_cache_adopt(c, path, "fabrikam", &r), DG_ERR_CACHE_HASH);
	assert_int_equal(r.adopted, 1);
	assert_int_equal(dg_cache_lookup(c, "fabrikam", d, NULL), DG_OK);
	assert_int_equal(dg_cache_adopt(c, path, "..", &r), DG_ERR_CACHE_PROVIDER);
	snprintf(path, sizeof(path), "%s/none", root);
	assert_int_equal(dg_cache_adopt(c, path, NULL, &r), DG_ERR_NOENT);
	check_totals(c);
	free(b);
	dg_cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_encoding),
		cmocka_unit_test(test_name_decode_rejects),
		cmocka_unit_test(test_provider_check),
		cmocka_unit_test_setup_teardown(test_insert_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reinsert_stale_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
	};

	dg_log_open("test_cache", 0, DG_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
