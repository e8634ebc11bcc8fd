/* gzprobe - run dg_gzip_probe on files and print the verdict, the
 * parameters, the candidates tried and the time (bench/swu/gzip-repro.sh). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "dg_gzip.h"
#include "dg_util.h"

int
main(int argc, char **argv)
{
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		dg_gzip_info info;
		char ps[96] = "-", *buf;
		size_t len;
		uint64_t t0;
		dg_err e;

		if ((e = dg_util_read_file(argv[i], (size_t)1 << 31, &buf, &len)) != DG_OK) {
			fprintf(stderr, "%s: %s\n", argv[i], dg_strerror(e));
			rc = 1;
			continue;
		}
		t0 = dg_util_now_ms();
		e = dg_gzip_probe(buf, len, &info);
		if (e == DG_OK)
			dg_gzip_params_str(&info.params, ps, sizeof(ps));
		printf("%-28s %-14s tried=%-4u %6llu ms  raw=%llu  %s\n", argv[i],
		    e == DG_OK ? "reproduced" : e == DG_ERR_GZIP_NOT_REPRODUCIBLE ?
		    "not-reproduc." : dg_strerror(e), info.tried,
		    (unsigned long long)(dg_util_now_ms() - t0), (unsigned long long)info.raw_len, ps);
		free(buf);
	}
	return rc;
}
