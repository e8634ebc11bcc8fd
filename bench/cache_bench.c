/* cache_bench - the driver of bench/cache.
 *
 *   cache_bench insert DIR N SIZE   insert N entries of SIZE bytes through
 *                                   dg_cache, then look each up; the same
 *                                   work done bare (write, fsync, rename,
 *                                   fsync dir; stat) is the reference
 *   cache_bench evict DIR N SIZE K  a cache of N entries, then K evictions:
 *                                   time per eviction (gc of one entry and
 *                                   insert that evicts one)
 * Figures go to stdout, one "name value unit" line each. */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dg_cache.h"
#include "dg_log.h"
#include "dg_util.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Entry i's content: SIZE bytes, unique per i and per run tag. */
static void
fill(unsigned char *buf, size_t size, uint64_t i, uint32_t tag)
{
	size_t k;

	memset(buf, (int)(i & 0xff), size);
	for (k = 0; k + 12 <= size && k < 12; k += 12) {
		memcpy(buf + k, &i, 8);
		memcpy(buf + k + 8, &tag, 4);
	}
}

static void
die(const char *what, dg_err err)
{
	fprintf(stderr, "cache_bench: %s: %s\n", what, dg_strerror(err));
	exit(1);
}

static void
put(dg_cache *c, const unsigned char *buf, size_t size, unsigned char *sha)
{
	dg_cache_writer *w;
	dg_cache_entry e;
	dg_err err;

	if (!(w = dg_cache_writer_new(c, "bench", NULL, size, &err)))
		die("writer", err);
	if ((err = dg_cache_writer_write(w, buf, size)) != DG_OK)
		die("write", err);
	if ((err = dg_cache_writer_commit(w, &e)) != DG_OK)
		die("commit", err);
	if (sha)
		memcpy(sha, e.sha256, 32);
}

static int
bench_insert(const char *dir, uint64_t n, size_t size)
{
	unsigned char *buf = malloc(size), (*shas)[32] = malloc(n * 32);
	char root[512], ref[512], path[1024];
	dg_cache *c;
	dg_err err;
	double t0, t;
	uint64_t i;

	if (!buf || !shas)
		return 1;
	snprintf(root, sizeof(root), "%s/insert", dir);
	snprintf(ref, sizeof(ref), "%s/reference", dir);
	if (!(c = dg_cache_new(root, 0, 0, NULL, &err)))
		die("open", err);
	t0 = now();
	for (i = 0; i < n; i++) {
		fill(buf, size, i, 1);
		put(c, buf, size, shas[i]);
	}
	t = now() - t0;
	printf("insert_total %.3f s\ninsert_rate %.0f entries/s\n", t, (double)n / t);
	t0 = now();
	for (i = 0; i < n; i++) {
		uint64_t j = (i * 7919u) % n; /* a fixed scattered order */

		if ((err = dg_cache_lookup(c, "bench", shas[j], NULL)) != DG_OK)
			die("lookup", err);
	}
	t = now() - t0;
	printf("lookup_rate %.0f lookups/s\n", (double)n / t);
	dg_cache_free(c);

	/* reference: the durable write any crash-safe store pays, no index */
	if (dg_util_mkdir_p(ref, 0755) != DG_OK)
		return 1;
	t0 = now();
	for (i = 0; i < n; i++) {
		char tmp[1100];
		int fd;

		fill(buf, size, i, 2);
		snprintf(path, sizeof(path), "%s/f%" PRIu64, ref, i);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
		    dg_util_write_all(fd, buf, size) != DG_OK || fsync(fd) < 0 ||
		    close(fd) < 0 || rename(tmp, path) < 0 || dg_util_fsync_dir(path) != DG_OK) {
			perror(tmp);
			return 1;
		}
	}
	t = now() - t0;
	printf("reference_write_rate %.0f files/s\n", (double)n / t);
	t0 = now();
	for (i = 0; i < n; i++) {
		struct stat sb;

		snprintf(path, sizeof(path), "%s/f%" PRIu64, ref, (i * 7919u) % n);
		if (stat(path, &sb) < 0)
			return 1;
	}
	t = now() - t0;
	printf("reference_stat_rate %.0f stats/s\n", (double)n / t);
	free(buf);
	free(shas);
	return 0;
}

static int
bench_evict(const char *dir, uint64_t n, size_t size, uint64_t k)
{
	unsigned char *buf = malloc(size), sha[32];
	char root[512], pdir[600], path[1024], name[DG_CACHE_NAME_MAX];
	dg_cache_report r;
	dg_cache *c;
	dg_err err;
	uint64_t i, bytes;
	double t0, t;

	if (!buf)
		return 1;
	snprintf(root, sizeof(root), "%s/evict-%" PRIu64, dir, n);
	snprintf(pdir, sizeof(pdir), "%s/bench", root);
	if (dg_util_mkdir_p(pdir, 0755) != DG_OK)
		return 1;
	/* populate fast: files under their layout names, adopted at open in
	 * one transaction (what a cache made by another tool goes through) */
	for (i = 0; i < n; i++) {
		int fd;

		fill(buf, size, i, 3);
		EVP_Digest(buf, size, sha, NULL, EVP_sha256(), NULL);
		dg_cache_name_encode(sha, name);
		snprintf(path, sizeof(path), "%s/%s", pdir, name);
		if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
		    dg_util_write_all(fd, buf, size) != DG_OK || close(fd) < 0) {
			perror(path);
			return 1;
		}
	}
	t0 = now();
	if (!(c = dg_cache_new(root, 0, 0, &r, &err)))
		die("open", err);
	t = now() - t0;
	printf("adopt_at_open %.3f s for %" PRIu64 " entries\n", t, r.adopted);
	if (r.adopted != n)
		die("adopt count", DG_ERR_INTERNAL);
	if ((err = dg_cache_usage(c, &bytes, NULL, NULL)) != DG_OK)
		die("usage", err);
	/* K single-entry gc passes: each evicts the least recently used */
	t0 = now();
	for (i = 0; i < k; i++) {
		dg_cache_report g;

		dg_cache_set_quota(c, bytes - (i + 1) * size);
		if ((err = dg_cache_gc(c, &g)) != DG_OK || g.evicted != 1)
			die("gc", err ? err : DG_ERR_INTERNAL);
	}
	t = now() - t0;
	printf("gc_evict_one %.1f us/eviction\n", t / (double)k * 1e6);
	/* K inserts at the quota: each evicts one entry */
	dg_cache_set_quota(c, bytes - k * size);
	t0 = now();
	for (i = 0; i < k; i++) {
		fill(buf, size, n + i, 4);
		put(c, buf, size, NULL);
	}
	t = now() - t0;
	printf("insert_evicting_one %.1f us/insert\n", t / (double)k * 1e6);
	/* the same inserts with no eviction, for the difference */
	dg_cache_set_quota(c, 0);
	t0 = now();
	for (i = 0; i < k; i++) {
		fill(buf, size, n + k + i, 4);
		put(c, buf, size, NULL);
	}
	t = now() - t0;
	printf("insert_no_eviction %.1f us/insert\n", t / (double)k * 1e6);
	dg_cache_free(c);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	uint64_t n, size, k = 0;

	dg_log_open("cache_bench", 0, DG_LOG_ERR);
	if (argc < 5 || dg_util_parse_u64(argv[3], 1, UINT64_C(10000000), &n) != DG_OK ||
	    dg_util_parse_u64(argv[4], 1, UINT64_C(1) << 30, &size) != DG_OK ||
	    (strcmp(argv[1], "evict") == 0 &&
	    (argc < 6 || dg_util_parse_u64(argv[5], 1, n, &k) != DG_OK))) {
		fprintf(stderr, "usage: cache_bench insert DIR N SIZE | evict DIR N SIZE K\n");
		return 2;
	}
	if (strcmp(argv[1], "insert") == 0)
		return bench_insert(argv[2], n, (size_t)size);
	if (strcmp(argv[1], "evict") == 0)
		return bench_evict(argv[2], n, (size_t)size, k);
	fprintf(stderr, "cache_bench: unknown mode '%s'\n", argv[1]);
	return 2;
}
