/* apply_bench - the delta processor's own apply time, as the gateway
 * calls it (dg_delta_apply_file: mapped source, streamed target, SHA-256
 * checked, fsync of the target and its directory, rename), without a
 * process start-up per run.
 *
 *   apply_bench SOURCE DELTA TARGET RUNS
 *
 * Prints the fastest, median and slowest run in milliseconds. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dg_delta.h"
#include "dg_err.h"
#include "dg_util.h"

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	uint64_t *us;
	int64_t runs;
	dg_err err;

	if (argc != 5 || dg_util_parse_i64(argv[4], 1, 10000, &runs) != DG_OK) {
		fprintf(stderr, "usage: apply_bench SOURCE DELTA TARGET RUNS (1-10000)\n");
		return 2;
	}
	if (!(us = calloc((size_t)runs, sizeof(*us))))
		return 1;
	for (int64_t i = 0; i < runs; i++) {
		uint64_t t0 = now_us();

		if ((err = dg_delta_apply_file(argv[1], argv[2], argv[3], NULL)) != DG_OK) {
			fprintf(stderr, "apply_bench: %s\n", dg_strerror(err));
			free(us);
			return 1;
		}
		us[i] = now_us() - t0;
	}
	qsort(us, (size_t)runs, sizeof(*us), cmp_u64);
	printf("dg_delta_apply_file x%lld: fastest %.2f ms, median %.2f ms, slowest %.2f ms\n",
	    (long long)runs, us[0] / 1000.0, us[runs / 2] / 1000.0, us[runs - 1] / 1000.0);
	free(us);
	return 0;
}
