/* Crash test: dg_cache under kill -9.
 *
 * A child process inserts (plain and resumable writers), looks up, pins
 * and evicts in a loop; the parent SIGKILLs it at a random moment, then
 * opens the cache as a fresh process would and checks that every entry
 * present is complete and correct, that no temp file is left to be served,
 * and that every partial download is a correct prefix that can be
 * finished. Repeated many times (bounded by count and by a deadline). */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "dg_cache.h"
#include "dg_log.h"
#include "dg_util.h"

#define NCONTENT 24
#define ITERATIONS 200
#define DEADLINE_MS 90000u
#define QUOTA (3u << 20)

static char root[64];
static unsigned char *data[NCONTENT];
static size_t sizes[NCONTENT];
static unsigned char digests[NCONTENT][32];

static uint32_t
rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static int
setup(void **state)
{
	uint32_t x = 12345;
	size_t i, k;

	(void)state;
	snprintf(root, sizeof(root), "/tmp/dg_cache_crash_XXXXXX");
	assert_non_null(mkdtemp(root));
	for (k = 0; k < NCONTENT; k++) {
		sizes[k] = 1 + rnd(&x) % (400 * 1024);
		data[k] = malloc(sizes[k]);
		assert_non_null(data[k]);
		for (i = 0; i < sizes[k]; i++)
			data[k][i] = (unsigned char)rnd(&x);
		assert_int_equal(EVP_Digest(data[k], sizes[k], digests[k], NULL,
		    EVP_sha256(), NULL), 1);
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	size_t k;

	(void)state;
	for (k = 0; k < NCONTENT; k++)
		free(data[k]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int
find_digest(const unsigned char *d)
{
	int k;

	for (k = 0; k < NCONTENT; k++)
		if (memcmp(digests[k], d, 32) == 0)
			return k;
	return -1;
}

/* Write data[k] from offset into w in random chunks. */
static dg_err
feed(dg_cache_writer *w, int k, uint64_t from, uint32_t *x)
{
	uint64_t off = from;
	dg_err err;

	while (off < sizes[k]) {
		size_t n = 1 + rnd(x) % 65536;

		if (n > sizes[k] - off)
			n = (size_t)(sizes[k] - off);
		if ((err = dg_cache_writer_write(w, data[k] + off, n)) != DG_OK)
			return err;
		off += n;
	}
	return DG_OK;
}

static void
child(uint32_t seed)
{
	uint32_t x = seed | 1;
	dg_cache *c;
	dg_err err;

	if (!(c = dg_cache_new(root, QUOTA, 0, NULL, &err)))
		_exit(3);
	for (;;) {
		int k = (int)(rnd(&x) % NCONTENT);
		dg_cache_writer *w;
		uint64_t have;

		switch (rnd(&x) % 6) {
		case 0: case 1:
			w = dg_cache_writer_new(c, "p", digests[k], sizes[k], &err);
			if (w && feed(w, k, 0, &x) == DG_OK)
				dg_cache_writer_commit(w, NULL);
			else
				dg_cache_writer_abort(w);
			break;
		case 2: case 3:
			w = dg_cache_writer_resume(c, "q", digests[k], sizes[k], &have, &err);
			if (!w)
				break;
			/* sometimes stop half-way, as a dropped connection does */
			if (rnd(&x) % 2 && have < sizes[k]) {
				dg_cache_writer_write(w, data[k] + have, (size_t)(sizes[k] - have) / 2);
				dg_cache_writer_abort(w);
			} else if (feed(w, k, have, &x) == DG_OK) {
				dg_cache_writer_commit(w, NULL);
			} else {
				dg_cache_writer_abort(w);
			}
			break;
		case 4:
			if (dg_cache_lookup_any(c, digests[k], NULL) == DG_OK &&
			    dg_cache_pin(c, "p", digests[k], "crash") == DG_OK)
				dg_cache_unpin(c, "p", digests[k], "crash");
			break;
		case 5:
			dg_cache_remove(c, "q", digests[k]);
			break;
		}
	}
}

static int
count_entry(const dg_cache_entry *e, void *arg)
{
	int k = find_digest(e->sha256);

	/* every indexed entry is one of ours, with its full size */
	assert_true(k >= 0);
	assert_int_equal(e->size, sizes[k]);
	(*(int *)arg)++;
	return 0;
}

/* No temp file anywhere a reader could be given one. */
static void
check_no_temps(const char *prov)
{
	char dir[128];
	DIR *d;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "%s/%s", root, prov);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		unsigned char sha[32];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_int_equal(dg_cache_name_decode(de->d_name, sha), DG_OK);
	}
	closedir(d);
}

/* Every partial is a correct prefix: finishing it must succeed. */
static int
finish_partials(dg_cache *c)
{
	char dir[128];
	DIR *d;
	struct dirent *de;
	int done = 0;

	snprintf(dir, sizeof(dir), "%s/.partial", root);
	if (!(d = opendir(dir)))
		return 0;
	while ((de = readdir(d))) {
		unsigned char sha[32];
		dg_cache_writer *w;
		uint64_t have;
		uint32_t x = 7;
		dg_err err;
		int k;

		if (de->d_name[0] == '.')
			continue;
		assert_int_equal(dg_util_hex_decode(de->d_name, sha, 32), DG_OK);
		k = find_digest(sha);
		assert_true(k >= 0);
		w = dg_cache_writer_resume(c, "q", sha, sizes[k], &have, &err);
		assert_non_null(w);
		assert_true(have <= sizes[k]);
		assert_int_equal(feed(w, k, have, &x), DG_OK);
		err = dg_cache_writer_commit(w, NULL);
		/* FULL can happen only if pins fill the quota, which the child's
		 * pins (one entry at a time) cannot */
		assert_int_equal(err, DG_OK);
		done++;
	}
	closedir(d);
	return done;
}

static void
test_kill9(void **state)
{
	uint64_t start = dg_util_now_ms();
	uint32_t x = (uint32_t)time(NULL);
	int i, entries_seen = 0, partials = 0, iterations = 0;

	(void)state;
	for (i = 0; i < ITERATIONS && dg_util_now_ms() - start < DEADLINE_MS; i++) {
		dg_cache_report r;
		dg_cache *c;
		uint64_t unpinned;
		dg_err err;
		int status, n = 0;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			child(rnd(&x));
		usleep(1000 + rnd(&x) % 40000);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* it died of the kill, not of its own failure */
		assert_true(WIFSIGNALED(status));
		c = dg_cache_new(root, QUOTA, 0, &r, &err);
		assert_non_null(c);
		/* a process crash damages nothing: no file needed quarantine */
		assert_int_equal(r.quarantined, 0);
		check_no_temps("p");
		check_no_temps("q");
		assert_int_equal(dg_cache_verify(c, &r), DG_OK);
		assert_int_equal(dg_cache_foreach(c, count_entry, &n), DG_OK);
		entries_seen += n;
		/* the child's transient pins are what a restart releases */
		assert_int_equal(dg_cache_unpin_holder(c, "crash", &unpinned), DG_OK);
		if (i % 4 == 0)
			partials += finish_partials(c);
		dg_cache_free(c);
		iterations++;
	}
	print_message("# %d kill -9 iterations, %d entries checked, %d partials finished\n",
	    iterations, entries_seen, partials);
	assert_true(iterations >= 20);
	assert_true(entries_seen > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
	};

	dg_log_open("test_cache_crash", 0, DG_LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
