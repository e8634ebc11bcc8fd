/* cli_delta - `deltagate diff`, `diffgen`, `apply` and `inspect`.
 *
 * Exit status (also in docs/delta-format.md):
 *   0 success, 1 other failure, 2 usage,
 *   3 the source does not match the delta (apply),
 *   4 the delta is corrupt, truncated or not a delta,
 *   5 the rebuilt target does not match the delta's hash (apply),
 *   6 the delta needs a newer deltagate (unknown version, item, filter, codec),
 *   7 the delta would not be smaller than the compressed target (diff),
 *   8 apply needs more memory than --memory-limit allows.
 * Failures print the error and the extended result code (0x90A.....).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dg_cli.h"
#include "dg_delta.h"
#include "dg_mcu.h"
#include "dg_json.h"
#include "dg_log.h"
#include "dg_recomp.h"
#include "dg_util.h"

#define EXIT_SOURCE 3
#define EXIT_CORRUPT 4
#define EXIT_TARGET 5
#define EXIT_VERSION 6
#define EXIT_NOGAIN 7
#define EXIT_MEMLIMIT 8

static int
exit_for(dg_err err)
{
	switch (err) {
	case DG_OK: return DG_EXIT_OK;
	case DG_ERR_DELTA_SOURCE: return EXIT_SOURCE;
	case DG_ERR_DELTA_FORMAT:
	case DG_ERR_DELTA_CORRUPT:
	case DG_ERR_DELTA_TRUNCATED: return EXIT_CORRUPT;
	case DG_ERR_DELTA_TARGET: return EXIT_TARGET;
	case DG_ERR_DELTA_VERSION:
	case DG_ERR_DELTA_RECIPE: return EXIT_VERSION;
	case DG_ERR_DELTA_NOGAIN: return EXIT_NOGAIN;
	case DG_ERR_DELTA_MEMLIMIT: return EXIT_MEMLIMIT;
	default: return DG_EXIT_FAIL;
	}
}

static int
fail(const char *cmd, dg_err err)
{
	fprintf(stderr, "deltagate %s: %s (result code 0x%08X)\n", cmd, dg_strerror(err),
		dg_delta_result_code(err));
	return exit_for(err);
}

/* Progress on a terminal only; one line rewritten in place. */
struct meter {
	const char *what;
	int last;
};

static void
meter_cb(void *arg, uint64_t done, uint64_t total)
{
	struct meter *m = arg;
	int pct = total ? (int)(done * 100 / total) : 100;

	if (pct == m->last)
		return;
	m->last = pct;
	fprintf(stderr, "\r%s: %3d%%", m->what, pct);
	if (pct >= 100)
		fputc('\n', stderr);
	fflush(stderr);
}

static int
want_meter(const char *path, uint64_t min_size)
{
	struct stat st;

	return isatty(STDERR_FILENO) && stat(path, &st) == 0 && (uint64_t)st.st_size >= min_size;
}

/* --threads default: the online CPUs (at most 64, the option's bound) */
static unsigned
default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 64 ? 64 : (unsigned)n;
}

struct diff_args {
	const char *source, *target, *delta, *recompressed, *sign;
	const char *workdir; /* where the signing directory goes (NULL: TMPDIR) */
	dg_delta_diff_opts o;
};

/* A private directory for the signing command: mkdtemp (mode 0700). */
static char *
sign_dir(const char *parent)
{
	const char *t = parent ? parent : getenv("TMPDIR");
	char *d = NULL;

	if (!t || !*t)
		t = "/tmp";
	if (asprintf(&d, "%s/deltagate-sign.XXXXXX", t) < 0)
		return NULL;
	if (!mkdtemp(d)) {
		fprintf(stderr, "deltagate: cannot create a directory in %s: %s\n", t, strerror(errno));
		free(d);
		return NULL;
	}
	return d;
}

static void
sign_dir_remove(char *d)
{
	char *p = NULL;

	if (!d)
		return;
	if (asprintf(&p, "%s/%s", d, "sw-description") >= 0) {
		unlink(p);
		free(p);
	}
	if (asprintf(&p, "%s/%s", d, "sw-description.sig") >= 0) {
		unlink(p);
		free(p);
	}
	if (rmdir(d) != 0)
		dg_log_warn("%s: left behind: %s", d, strerror(errno));
	free(d);
}

/* The generator proper, shared by diff and diffgen. The delta is made
 * against the recompressed target (dg_recomp.h): the target itself when
 * zlib rebuilds all its gzip members and nothing is signed, else a
 * rebuilt one, which then must be written to --recompressed-target. */
static dg_err
run_diff(struct diff_args *a, dg_delta_diff_stats *st, const char *cmd)
{
	struct meter m = { "diff", -1 };
	dg_recomp_opts ro = { a->sign, NULL };
	uint8_t *rt = NULL;
	char *data = NULL;
	size_t rlen = 0, len = 0;
	int changed = 0;
	unsigned nre = 0;
	dg_err err;

	if (want_meter(a->target, 8u << 20)) {
		a->o.progress = meter_cb;
		a->o.progress_arg = &m;
	}
	if ((err = dg_util_read_file(a->target, SIZE_MAX / 2, &data, &len))) {
		dg_log_err("%s: %s", a->target, dg_strerror(err));
		return err;
	}
	if (a->sign && !(ro.workdir = sign_dir(a->workdir))) {
		err = DG_ERR_IO;
		goto fail;
	}
	err = dg_recomp_build((const uint8_t *)data, len, &ro, &rt, &rlen, &changed, &nre);
	sign_dir_remove((char *)ro.workdir);
	if (err)
		goto fail;
	if (changed && !a->recompressed) {
		fprintf(stderr, "deltagate %s: %s: %s; the delta must be made against a "
			"recompressed target: give --recompressed-target FILE%s\n", cmd, a->target,
			a->sign ? "sw-description is to be signed" :
				  "a gzip member cannot be rebuilt bit for bit with zlib",
			strcmp(cmd, "diffgen") == 0 ? " (diffgen: RECOMPRESSED)" : "");
		err = DG_ERR_INVAL;
		goto fail;
	}
	if (changed) {
		dg_log_info("%s: %u gzip member(s) recompressed%s; recompressed target %s", a->target,
			    nre, a->sign ? ", sw-description signed" : "", a->recompressed);
		if ((err = dg_util_write_atomic(a->recompressed, rt, rlen, 0644))) {
			dg_log_err("%s: %s", a->recompressed, dg_strerror(err));
			goto fail;
		}
		if ((err = dg_delta_diff_file(a->source, a->recompressed, a->delta, &a->o, st)))
			unlink(a->recompressed); /* not published without its delta */
		goto fail;
	}
	if ((err = dg_delta_diff_file(a->source, a->target, a->delta, &a->o, st)))
		goto fail;
	/* nothing to rebuild: the target itself is the recompressed target */
	if (a->recompressed && (err = dg_util_write_atomic(a->recompressed, data, len, 0644)))
		dg_log_err("%s: %s", a->recompressed, dg_strerror(err));
fail:
	free(rt);
	free(data);
	return err;
}

static void
diff_usage(FILE *f)
{
	fprintf(f, "usage: deltagate diff SOURCE TARGET DELTA [--recompressed-target FILE]\n"
		   "       [--sign-command CMD] [--level N] [--threads N] [--split-every SIZE]\n"
		   "       [--arch thumb2|xtensa|rv32|none] [--base ADDR] [--force] [--verbose]\n"
		   "Write a delta that rebuilds TARGET from SOURCE; it is verified before\n"
		   "it is written. --force writes it even if it is not smaller than the\n"
		   "compressed target. When TARGET has gzip members zlib cannot rebuild\n"
		   "bit for bit, or with --sign-command (run as `/bin/sh -c \"CMD\n"
		   "sw-description\"` in a private directory, it must make\n"
		   "sw-description.sig), the delta rebuilds a recompressed target, which\n"
		   "is written to the --recompressed-target FILE (then required).\n"
		   "--split-every: restart points in gzip members about every SIZE\n"
		   "expanded bytes (default 2M; 0: none), so that apply can inflate and\n"
		   "deflate a member in several threads.\n"
		   "--arch, --base: microcontroller firmware: predict that architecture's\n"
		   "branches and addresses over a flat image loaded at ADDR (default:\n"
		   "detected from ESP app images, ELF, a Cortex-M vector table; none:\n"
		   "no prediction). A wrong guess costs size, never correctness.\n");
}

int
dg_cli_diff(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "recompressed-target", required_argument, NULL, 'r' },
		{ "sign-command", required_argument, NULL, 's' },
		{ "level", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "split-every", required_argument, NULL, 'S' },
		{ "force", no_argument, NULL, 'f' },
		{ "arch", required_argument, NULL, 'A' },
		{ "base", required_argument, NULL, 'B' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct diff_args a;
	dg_delta_diff_stats st;
	int64_t v;
	uint64_t sz;
	int c, verbose = 0;
	dg_err err;

	memset(&a, 0, sizeof(a));
	a.o.threads = default_threads();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': a.recompressed = optarg; break;
		case 's': a.sign = optarg; break;
		case 'l':
			if (dg_util_parse_i64(optarg, 1, 22, &v)) {
				fprintf(stderr, "deltagate diff: --level must be 1..22\n");
				return DG_EXIT_USAGE;
			}
			a.o.level = (int)v;
			break;
		case 't':
			if (dg_util_parse_i64(optarg, 1, 64, &v)) {
				fprintf(stderr, "deltagate diff: --threads must be 1..64\n");
				return DG_EXIT_USAGE;
			}
			a.o.threads = (unsigned)v;
			break;
		case 'S':
			if (dg_util_parse_size(optarg, 1ull << 40, &sz) || (sz && sz < 65536)) {
				fprintf(stderr, "deltagate diff: --split-every must be 0 or a size of at least 64K\n");
				return DG_EXIT_USAGE;
			}
			a.o.split_every = sz ? sz : DG_DELTA_SPLIT_NONE;
			break;
		case 'f': a.o.allow_larger = 1; break;
		case 'A':
			if (!strcmp(optarg, "none")) {
				a.o.mcu_arch = DG_DELTA_MCU_OFF;
			} else if ((a.o.mcu_arch = (int)dg_mcu_arch_from_name(optarg)) == 0) {
				fprintf(stderr, "deltagate diff: --arch must be thumb2, xtensa, rv32 or none\n");
				return DG_EXIT_USAGE;
			}
			break;
		case 'B':
			if (dg_util_parse_i64(optarg, 0, 0xFFFFFFFFll, &v)) {
				fprintf(stderr, "deltagate diff: --base must be an address below 4G\n");
				return DG_EXIT_USAGE;
			}
			a.o.mcu_base = (uint32_t)v;
			a.o.mcu_base_set = 1;
			break;
		case 'v':
			verbose = 1;
			dg_log_set_level(DG_LOG_DEBUG);
			break;
		case 'h': diff_usage(stdout); return DG_EXIT_OK;
		default: diff_usage(stderr); return DG_EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		diff_usage(stderr);
		return DG_EXIT_USAGE;
	}
	a.source = argv[optind];
	a.target = argv[optind + 1];
	a.delta = argv[optind + 2];
	if ((err = run_diff(&a, &st, "diff")))
		return fail("diff", err);
	if (verbose)
		printf("delta %llu bytes (compressed target %llu bytes), %u item(s), %s\n",
		       (unsigned long long)st.delta_size, (unsigned long long)st.compressed_target,
		       st.items, st.method);
	return DG_EXIT_OK;
}

/* DiffGen's argument order, for migrated scripts. */
int
dg_cli_diffgen(int argc, char **argv)
{
	struct diff_args a;
	dg_delta_diff_stats st;
	char *logpath = NULL, line[1024], when[32];
	time_t now = time(NULL);
	struct tm tm;
	uint64_t t0 = dg_util_now_ms();
	dg_err err;
	int n;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: deltagate diffgen SOURCE TARGET OUTPUT LOG_DIR WORK_DIR RECOMPRESSED [\"SIGNING_COMMAND\"]\n");
		return DG_EXIT_OK;
	}
	if (argc != 7 && argc != 8) {
		fprintf(stderr, "usage: deltagate diffgen SOURCE TARGET OUTPUT LOG_DIR WORK_DIR RECOMPRESSED [\"SIGNING_COMMAND\"]\n");
		return DG_EXIT_USAGE;
	}
	memset(&a, 0, sizeof(a));
	a.o.threads = default_threads();
	a.source = argv[1];
	a.target = argv[2];
	a.delta = argv[3];
	a.recompressed = argv[6];
	a.sign = argc == 8 && argv[7][0] ? argv[7] : NULL;
	a.workdir = argv[5];
	if ((err = dg_util_mkdir_p(argv[4], 0755)) || (err = dg_util_mkdir_p(argv[5], 0755))) {
		fprintf(stderr, "deltagate diffgen: cannot create %s or %s: %s\n", argv[4], argv[5],
			dg_strerror(err));
		return DG_EXIT_FAIL;
	}
	err = run_diff(&a, &st, "diffgen");
	if (asprintf(&logpath, "%s/deltagate-diffgen.log", argv[4]) < 0)
		return fail("diffgen", DG_ERR_NOMEM);
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (err)
		n = snprintf(line, sizeof(line), "%s diffgen source=%s target=%s output=%s: failed: %s "
			     "(result code 0x%08X)\n", when, a.source, a.target, a.delta,
			     dg_strerror(err), dg_delta_result_code(err));
	else
		n = snprintf(line, sizeof(line), "%s diffgen source=%s target=%s output=%s: ok, "
			     "%llu bytes (compressed target %llu), method %s, %llu ms\n",
			     when, a.source, a.target, a.delta, (unsigned long long)st.delta_size,
			     (unsigned long long)st.compressed_target, st.method,
			     (unsigned long long)(dg_util_now_ms() - t0));
	{
		FILE *f = fopen(logpath, "a");

		if (!f || fwrite(line, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0)
			fprintf(stderr, "deltagate diffgen: cannot write %s: %s\n", logpath, strerror(errno));
	}
	free(logpath);
	if (err)
		return fail("diffgen", err);
	return DG_EXIT_OK;
}

static void
apply_usage(FILE *f)
{
	fprintf(f, "usage: deltagate apply SOURCE DELTA TARGET [--memory-limit SIZE]\n"
		   "       [--max-target-size SIZE] [--threads N]\n"
		   "Rebuild TARGET from SOURCE and DELTA, verifying both hashes. Gzip\n"
		   "members with restart points are inflated and deflated by N threads\n"
		   "(default: the online CPUs).\n");
}

int
dg_cli_apply(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "memory-limit", required_argument, NULL, 'm' },
		{ "max-target-size", required_argument, NULL, 'x' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	dg_delta_apply_opts o;
	int64_t n;
	struct meter m = { "apply", -1 };
	uint64_t v;
	int c;
	dg_err err;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (dg_util_parse_size(optarg, SIZE_MAX, &v) || v < (1u << 20)) {
				fprintf(stderr, "deltagate apply: --memory-limit must be a size of at least 1M\n");
				return DG_EXIT_USAGE;
			}
			o.mem_limit = (size_t)v;
			break;
		case 'x':
			if (dg_util_parse_size(optarg, UINT64_MAX, &v) || v == 0) {
				fprintf(stderr, "deltagate apply: bad --max-target-size\n");
				return DG_EXIT_USAGE;
			}
			o.max_target_size = v;
			break;
		case 't':
			if (dg_util_parse_i64(optarg, 1, DG_DELTA_MAX_THREADS, &n)) {
				fprintf(stderr, "deltagate apply: --threads must be 1..%d\n",
					DG_DELTA_MAX_THREADS);
				return DG_EXIT_USAGE;
			}
			o.threads = (unsigned)n;
			break;
		case 'h': apply_usage(stdout); return DG_EXIT_OK;
		default: apply_usage(stderr); return DG_EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		apply_usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (want_meter(argv[optind], 8u << 20)) {
		o.progress = meter_cb;
		o.progress_arg = &m;
	}
	err = dg_delta_apply_file(argv[optind], argv[optind + 1], argv[optind + 2], &o);
	if (err)
		return fail("apply", err);
	return DG_EXIT_OK;
}

int
dg_cli_inspect(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	dg_delta_info *info = NULL;
	dg_delta_item_info it;
	char ssha[65], tsha[65], *s;
	json_t *root = NULL, *items;
	int c, as_json = 0;
	size_t i;
	dg_err err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = 1; break;
		case 'h': printf("usage: deltagate inspect DELTA [--json]\n"); return DG_EXIT_OK;
		default: fprintf(stderr, "usage: deltagate inspect DELTA [--json]\n"); return DG_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: deltagate inspect DELTA [--json]\n");
		return DG_EXIT_USAGE;
	}
	if ((err = dg_delta_inspect_file(argv[optind], &info)))
		return fail("inspect", err);
	dg_util_hex_encode(dg_delta_info_source_sha256(info), 32, ssha);
	dg_util_hex_encode(dg_delta_info_target_sha256(info), 32, tsha);
	if (!as_json) {
		printf("format version: %u\ndelta size: %llu\nsource size: %llu\nsource sha256: %s\n"
		       "target size: %llu\ntarget sha256: %s\nitems: %zu\n",
		       dg_delta_info_version(info), (unsigned long long)dg_delta_info_delta_size(info),
		       (unsigned long long)dg_delta_info_source_size(info), ssha,
		       (unsigned long long)dg_delta_info_target_size(info), tsha,
		       dg_delta_info_items(info));
		for (i = 0; i < dg_delta_info_items(info); i++) {
			dg_delta_info_item(info, i, &it);
			printf("  %zu: %s filter=%s out=%llu src=%llu+%llu payload=%llu codecs=%s\n", i,
			       it.kind, it.filter, (unsigned long long)it.out_len,
			       (unsigned long long)it.src_off, (unsigned long long)it.src_len,
			       (unsigned long long)it.payload, it.codecs);
		}
		dg_delta_info_free(info);
		return DG_EXIT_OK;
	}
	items = json_array();
	root = json_pack("{s:I, s:I, s:I, s:s, s:I, s:s, s:o}", "formatVersion",
			 (json_int_t)dg_delta_info_version(info), "deltaSize",
			 (json_int_t)dg_delta_info_delta_size(info), "sourceSize",
			 (json_int_t)dg_delta_info_source_size(info), "sourceSha256", ssha,
			 "targetSize", (json_int_t)dg_delta_info_target_size(info), "targetSha256",
			 tsha, "items", items);
	if (!root) {
		dg_delta_info_free(info);
		return fail("inspect", DG_ERR_NOMEM);
	}
	for (i = 0; i < dg_delta_info_items(info); i++) {
		dg_delta_info_item(info, i, &it);
		json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "kind",
						       it.kind, "filter", it.filter, "outLen",
						       (json_int_t)it.out_len, "srcOff",
						       (json_int_t)it.src_off, "srcLen",
						       (json_int_t)it.src_len, "payload",
						       (json_int_t)it.payload, "codecs", it.codecs));
	}
	s = dg_json_dumps(root);
	json_decref(root);
	dg_delta_info_free(info);
	if (!s)
		return fail("inspect", DG_ERR_NOMEM);
	printf("%s\n", s);
	free(s);
	return DG_EXIT_OK;
}
