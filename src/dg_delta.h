/* dg_delta - the delta engine: generate a delta between two files (our
 * DiffGen), inspect one, and apply one (our delta processor). The format is
 * docs/delta-format.md.
 *
 * Apply is streaming: the source is mapped read-only, the target is produced
 * front to back into a temporary file next to the destination, its SHA-256
 * is checked against the delta's header, then it is fsync'ed and renamed.
 * On any error no target file is left behind. Working memory beyond the
 * mapped source and the output is bounded by a limit (default 8 MiB).
 *
 * Errors specific to deltas are DG_ERR_DELTA_* (dg_err.h); each maps to an
 * extended result code in the delta processor's space with
 * dg_delta_result_code().
 */
#ifndef DG_DELTA_H
#define DG_DELTA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

/* Extended result codes: 0x90A00000 | 20-bit code (0 means success). */
#define DG_DELTA_RESULT_BASE 0x90A00000u

/* Default working-memory limit of apply (beyond mapped source and output). */
#define DG_DELTA_DEFAULT_MEM_LIMIT (8u << 20)

/* Called with the bytes of target produced so far and the target's size;
 * it runs on the applying thread and must not call back into dg_delta. */
typedef void (*dg_delta_progress_fn)(void *arg, uint64_t done, uint64_t total);

typedef struct dg_delta_apply_opts {
	size_t mem_limit;               /* 0: DG_DELTA_DEFAULT_MEM_LIMIT */
	dg_delta_progress_fn progress;  /* may be NULL */
	void *progress_arg;
	const atomic_int *cancel;       /* may be NULL; non-zero stops apply
	                                 * with DG_ERR_CANCELED */
	uint64_t max_target_size;       /* 0: no limit; larger -> DG_ERR_TOOBIG */
	unsigned threads;               /* an archive's gzip members are inflated
	                                 * and deflated in chunks by this many
	                                 * threads; 0: the online CPUs (at most
	                                 * DG_DELTA_MAX_THREADS); 1: none; never
	                                 * more than mem_limit / DG_DELTA_THREAD_MEM */
} dg_delta_apply_opts;

#define DG_DELTA_MAX_THREADS 16
#define DG_DELTA_THREAD_MEM (4u << 20)
#define DG_DELTA_SPLIT_DEFAULT (2u << 20)
#define DG_DELTA_SPLIT_NONE UINT64_MAX

/* Online CPUs, at least 1. */
unsigned dg_delta_cpus(void);

/* Rebuild target_path from source_path and delta_path (opts may be NULL).
 * Errors: DG_ERR_DELTA_FORMAT (not a delta), DG_ERR_DELTA_VERSION,
 * DG_ERR_DELTA_RECIPE (unknown item, filter or codec), DG_ERR_DELTA_CORRUPT,
 * DG_ERR_DELTA_TRUNCATED, DG_ERR_DELTA_SOURCE (size or SHA-256 of the
 * source differ), DG_ERR_DELTA_TARGET (rebuilt target's SHA-256 differs),
 * DG_ERR_DELTA_MEMLIMIT, DG_ERR_TOOBIG, DG_ERR_CANCELED, DG_ERR_NOENT,
 * DG_ERR_IO, DG_ERR_NOSPC, DG_ERR_PERM, DG_ERR_NOMEM. */
dg_err dg_delta_apply_file(const char *source_path, const char *delta_path,
			   const char *target_path, const dg_delta_apply_opts *opts);

/* The same on memory: the target goes to a fresh buffer the caller frees
 * (*out may be NULL for an empty target). Errors as above, without the file
 * ones. Used by the generator's self-check and by the fuzz target. */
dg_err dg_delta_apply_mem(const uint8_t *src, size_t src_len,
			  const uint8_t *delta, size_t delta_len,
			  const dg_delta_apply_opts *opts,
			  uint8_t **out, size_t *out_len);

typedef struct dg_delta_diff_opts {
	int level;          /* 1..22; 0: 19. Compression effort of the parts */
	unsigned threads;   /* 0 or 1: one thread */
	uint64_t split_every; /* restart points in gzip members about every
	                       * this many expanded bytes, for the processor's
	                       * threads; 0: DG_DELTA_SPLIT_DEFAULT,
	                       * DG_DELTA_SPLIT_NONE: none */
	int allow_larger;   /* emit even if not smaller than the zstd-compressed
	                     * target (otherwise DG_ERR_DELTA_NOGAIN) */
	dg_delta_progress_fn progress; /* may be NULL */
	void *progress_arg;
	const atomic_int *cancel;      /* may be NULL */
	/* MCU firmware prediction (issue 15): 0 = detect the image
	 * (ESP app image, ELF, Cortex-M vector table, instruction mix);
	 * 1 thumb2, 2 xtensa, 3 rv32 (dg_mcu_arch) = that architecture over
	 * a flat image; DG_DELTA_MCU_OFF = none */
	int mcu_arch;
	int mcu_base_set;   /* mcu_base given: the image loads there */
	uint32_t mcu_base;
} dg_delta_diff_opts;

#define DG_DELTA_MCU_OFF (-1)

/* What the generator chose, for reports and benchmarks. */
typedef struct dg_delta_diff_stats {
	uint64_t delta_size;       /* bytes of the delta file */
	uint64_t compressed_target;/* bytes of zstd(target) at the same level */
	unsigned items;            /* recipe items */
	char method[64];           /* e.g. "bsdiff+x86/xz", "zstd-patch-from" */
} dg_delta_diff_stats;

/* Make a delta from src to tgt into a fresh buffer the caller frees. It is
 * verified by applying it before it is returned. opts and stats may be NULL.
 * Errors: DG_ERR_DELTA_NOGAIN, DG_ERR_DELTA_VERIFY (self-check failed: a
 * bug), DG_ERR_DELTA_CODEC (compressor failure), DG_ERR_TOOBIG (source of
 * 2 GiB or more), DG_ERR_CANCELED, DG_ERR_NOMEM. */
dg_err dg_delta_diff_mem(const uint8_t *src, size_t src_len,
			 const uint8_t *tgt, size_t tgt_len,
			 const dg_delta_diff_opts *opts,
			 uint8_t **out, size_t *out_len, dg_delta_diff_stats *stats);

/* The same on files; the delta is written durably (temp file, fsync,
 * rename). Errors as dg_delta_diff_mem plus DG_ERR_NOENT, DG_ERR_IO,
 * DG_ERR_NOSPC, DG_ERR_PERM. */
dg_err dg_delta_diff_file(const char *source_path, const char *target_path,
			  const char *delta_path, const dg_delta_diff_opts *opts,
			  dg_delta_diff_stats *stats);

/* A parsed delta header and recipe, for `deltagate inspect`. */
typedef struct dg_delta_info dg_delta_info;

typedef struct dg_delta_item_info {
	const char *kind;     /* "raw", "copy", "bsdiff", "zstd-patch-from" */
	const char *filter;   /* dg_bcj_name() */
	uint64_t out_len;     /* target bytes this item produces */
	uint64_t src_off, src_len;
	uint64_t payload;     /* compressed bytes of its parts */
	const char *codecs;   /* e.g. "zstd,xz,zstd" */
} dg_delta_item_info;

/* Parse and check the header and recipe of the delta at path (no source
 * needed). Errors: as dg_delta_apply_file's format errors, DG_ERR_NOENT,
 * DG_ERR_IO, DG_ERR_NOMEM. Free with dg_delta_info_free (NULL is a no-op). */
dg_err dg_delta_inspect_file(const char *path, dg_delta_info **out);
void dg_delta_info_free(dg_delta_info *info);
uint32_t dg_delta_info_version(const dg_delta_info *info);
uint64_t dg_delta_info_source_size(const dg_delta_info *info);
uint64_t dg_delta_info_target_size(const dg_delta_info *info);
uint64_t dg_delta_info_delta_size(const dg_delta_info *info);
/* 32-byte SHA-256 digests, owned by info. */
const uint8_t *dg_delta_info_source_sha256(const dg_delta_info *info);
const uint8_t *dg_delta_info_target_sha256(const dg_delta_info *info);
size_t dg_delta_info_items(const dg_delta_info *info);
/* Item i (< dg_delta_info_items), strings owned by info. */
void dg_delta_info_item(const dg_delta_info *info, size_t i, dg_delta_item_info *out);

/* 0 for DG_OK, otherwise DG_DELTA_RESULT_BASE | err. */
uint32_t dg_delta_result_code(dg_err err);

#endif
