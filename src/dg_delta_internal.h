/* dg_delta_internal - what the files of the delta engine share: the
 * format's constants and structures, the part reader, the applier's state
 * and the generator's plans. Internal: only src/dg_delta*.c include it; the
 * API is dg_delta.h. Where each stage is: docs/delta-format.md. */
#ifndef DG_DELTA_INTERNAL_H
#define DG_DELTA_INTERNAL_H

#include <lzma.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "dg_bsdiff.h" /* dg_buf */
#include "dg_delta.h"
#include "dg_gzip.h"

/* ---- format constants (docs/delta-format.md) ---- */
#define MAGIC "DGDELTA\0"
#define FORMAT_VERSION 1u
#define HDR_SIZE 112u
#define ITEM_SIZE 108u
#define NPARTS 4
#define MAX_ITEMS (1u << 16)
#define MAX_CTRL_RATIO 64 /* control bytes per target byte, generous */

enum { KIND_RAW = 1, KIND_COPY = 2, KIND_BSDIFF = 3, KIND_ZPATCH = 4, KIND_BSDIFF_X64 = 5,
       KIND_ARCHIVE = 6, KIND_ARCHIVE_SPLIT = 7, KIND_BSDIFF_MCU = 8, KIND_MAX_ };

enum { CODEC_NONE = 0, CODEC_ZSTD = 1, CODEC_XZ = 2, CODEC_MAX_ };

/* Streamed parts (control, diff, extra) are encoded with windows of at most
 * 1 MiB so that three decoders fit in the default 8 MiB limit. */
#define STREAM_WINDOW_LOG 20
#define IOBUF (64u * 1024u)
/* The applier drops mapped pages after each this many output bytes. */
#define TRIM_EVERY (1u << 20)
#define MAX_TRIM 6

struct part {
	uint32_t codec;
	uint64_t clen, rlen;
	uint64_t off;      /* absolute offset in the delta (reader only) */
	dg_buf comp;       /* compressed bytes (writer only) */
};

struct item {
	uint8_t kind, filter;
	uint64_t out_len, src_off, src_len;
	struct part p[NPARTS];
};

/* Archive-aware deltas: the source is expanded (gzip members inflated)
 * into E(S); the other items rebuild E(T) from E(S); E(T) is folded back
 * into the target (gzip members recompressed with their parameters). */
struct aseg {
	uint8_t gz;
	uint64_t clen, rlen;    /* bytes in the file; bytes expanded */
	dg_gzip_params p;       /* target segments only */
	uint8_t *hdr;           /* raw gzip header (target segments only) */
	size_t hdrlen;
	dg_gzip_split *sp;      /* restart points (KIND_ARCHIVE_SPLIT), nsp of them */
	size_t nsp;
};

struct archive {
	struct aseg *s, *t;
	size_t ns, nt;
	uint64_t es, er;        /* sizes of E(S) and E(T) */
};

struct header {
	uint32_t version;
	uint64_t src_size, tgt_size;
	uint8_t src_sha[32], tgt_sha[32];
	uint32_t nitems;
	struct archive *ar;     /* when item 0 is KIND_ARCHIVE */
};

/* ---- delta input: memory or file descriptor ---- */
struct din {
	const uint8_t *mem;
	int fd;
	uint64_t size;
};

/* ---- streaming part reader ---- */
struct preader {
	const struct din *d;
	const struct part *p;
	uint64_t in_off, in_left, out_left;
	ZSTD_DCtx *z;
	lzma_stream x;
	int xinit, done;
	uint8_t *in, *ob;
	size_t in_pos, in_len, ob_pos, ob_len;
};

/* x86-64 and MCU prediction: part 3 read as a first-pass control stream
 * (dg_delta_xmap_build) */
struct xmap {
	struct block *b;
	size_t n;
};

struct pool;

/* ---- applier ---- */
struct applier {
	const uint8_t *src;
	const struct din *d;
	const struct header *h;
	const dg_delta_apply_opts *o;
	size_t mem_limit;
	const char *scratch_dir; /* NULL: memory only */
	uint8_t *out;
	uint64_t done, next_point;
	unsigned threads;        /* for an archive's inflate and deflate chunks */
	int out_trim;            /* out is a mapping dg_delta_trim_maps drops */
	int out_fd;              /* out's file, for pwrite; else -1 */
	struct pool *pool;       /* folding E(T) while items 1.. write it */
	uint64_t wm_base, wm_end; /* the item being applied: E(T) range */
	int wm_hold;             /* its bytes are final only at its end (filter) */
	uint64_t populate;       /* E(T) is a mapped file of this size */
	size_t src_len;
	int src_deferred;        /* the source's hash is checked while expanding */
	int tgt_hashed;          /* tgt_sha was computed while folding */
	uint64_t et_len;         /* archive: E(T)'s size, for progress */
	uint64_t folded;         /* archive: target bytes final, for progress */
	uint8_t tgt_sha[32];
	/* file-backed mappings whose pages dg_delta_trim_maps drops */
	struct {
		void *p;
		size_t len;
	} maps[MAX_TRIM];
	int nmaps;
};
/* A filtered copy of the source region: heap when small, else an unlinked
 * temporary file mapped next to the target, so that a large filtered
 * source costs page cache rather than the working-memory budget. */
struct scratch {
	uint8_t *p;
	size_t len;
	int mapped;
	int fd;                 /* the mapped file, for pwrite; else -1 */
};

/* A candidate recipe: items covering the whole target. */
struct plan {
	struct item *items;
	size_t n;
	char method[48];
	uint64_t size;
	int final;     /* compressed at the full level */
	dg_err err;
};

/* zstd level of the generator's estimates */
#define ESTIMATE_LEVEL 3

/* ---- dg_delta_format.c: reading a delta ---- */
void dg_delta_put32(uint8_t *p, uint32_t v);
void dg_delta_put64(uint8_t *p, uint64_t v);
uint32_t dg_delta_get32(const uint8_t *p);
size_t dg_delta_xz_dict(uint64_t rlen);
dg_err dg_delta_parse(const struct din *d, uint64_t max_target, struct header *h,
		      struct item **items_out);
void dg_delta_archive_free(struct archive *ar);
dg_err dg_delta_zstd_err(size_t r);
dg_err dg_delta_preader_open(struct preader *r, const struct din *d, const struct part *p,
			     size_t mem_limit, int stable);
void dg_delta_preader_close(struct preader *r);
dg_err dg_delta_fill_in(struct preader *r);
dg_err dg_delta_preader_read(struct preader *r, uint8_t *dst, size_t n);
dg_err dg_delta_preader_varint(struct preader *r, uint64_t *v);
dg_err dg_delta_preader_finish(struct preader *r);
uint64_t dg_delta_rd_varint(const uint8_t *p, size_t len, size_t *pos, int *bad);
int64_t dg_delta_xmap_shift(void *ctx, uint64_t pos);
dg_err dg_delta_xmap_build(const uint8_t *ctrl, size_t len, uint64_t n, struct xmap *m);

/* ---- dg_delta_apply.c: the streaming applier ---- */
void dg_delta_trim_maps(struct applier *a);
dg_err dg_delta_check_cancel(struct applier *a);
dg_err dg_delta_sha256_trim(struct applier *a, const uint8_t *data, size_t len, uint8_t out[32]);
dg_err dg_delta_scratch_new(struct applier *a, size_t len, struct scratch *s);
void dg_delta_scratch_free(struct applier *a, struct scratch *s);
dg_err dg_delta_apply_items(struct applier *a, const struct item *items, uint32_t nitems);
dg_err dg_delta_map_file(const char *path, int *fd_out, const uint8_t **map, size_t *len);

/* ---- dg_delta_apply_archive.c: archive items, in threads ---- */
dg_err dg_delta_archive_expand(struct applier *a, const struct archive *ar, const uint8_t *src,
			       uint8_t *dst);
dg_err dg_delta_member_deflate(const uint8_t *gz, uint64_t clen, const uint8_t **def,
			       size_t *dlen);
void dg_delta_pool_advance(struct pool *p, uint64_t wm);
int dg_delta_pool_stopped(struct pool *p);
dg_err dg_delta_pool_hash_done(struct pool *p);
dg_err dg_delta_apply_archive(struct applier *a, const struct item *items);

/* ---- dg_delta_gen.c: the generator ---- */
dg_err dg_delta_compress_part(const uint8_t *data, size_t len, int level, int streamed,
			      int try_xz, struct part *p);
void dg_delta_plan_free(struct plan *pl);
dg_err dg_delta_serialize(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
			  const struct plan *pl, uint8_t **out, size_t *out_len);
dg_err dg_delta_diff_plain(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
			   const dg_delta_diff_opts *opts, uint8_t **out, size_t *out_len,
			   dg_delta_diff_stats *stats);

#endif
