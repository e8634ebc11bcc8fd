/* dg_delta_gen - the generator: candidate recipes (bsdiff per filter,
 * x86-64 and MCU prediction, zstd patch-from, raw), ranked on estimates,
 * the best compressed for real, the smallest kept (see dg_delta.h). */
#include "config.h"

#include <lzma.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>
#include <zstd.h>

#include "dg_bcj.h"
#include "dg_bsdiff.h"
#include "dg_delta_internal.h"
#include "dg_log.h"
#include "dg_mcu.h"
#include "dg_util.h"

static dg_err
sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		return DG_ERR_CRYPTO;
	return DG_OK;
}

/* zstd alone (streamed: a window the applier's memory limit allows). */
static dg_err
zstd_part(const uint8_t *data, size_t len, int level, int streamed, struct part *p)
{
	ZSTD_CCtx *c = NULL;
	size_t bound, r;
	dg_err err = DG_OK;

	memset(p, 0, sizeof(*p));
	p->rlen = len;
	if (len == 0)
		return DG_OK;
	bound = ZSTD_compressBound(len);
	p->comp.data = malloc(bound);
	if (!p->comp.data)
		return DG_ERR_NOMEM;
	p->comp.cap = bound;
	c = ZSTD_createCCtx();
	if (!c) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0)) ||
	    (streamed && ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, STREAM_WINDOW_LOG)))) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	r = ZSTD_compress2(c, p->comp.data, bound, data, len);
	if (ZSTD_isError(r)) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	p->codec = CODEC_ZSTD;
	p->comp.len = p->clen = r;
fail:
	ZSTD_freeCCtx(c);
	if (err)
		dg_buf_free(&p->comp);
	return err;
}

/* A part in one segment above this gets a shallower match search (depth
 * 64: on the 2 MB MCU pair's difference stream 24% less time, 1.8% larger) */
#define XZ_SHALLOW_MIN (1u << 20)
#define XZ_SHALLOW_DEPTH 64

/* Raw LZMA2 (xz preset 9e) of data[0..len) with the dictionary the applier
 * derives from the whole part's length (dict). A part may be encoded in
 * several segments, each by a different thread: an LZMA2 stream may reset
 * its dictionary at any chunk, so the segments are concatenated with the
 * end marker (one 0x00 byte) dropped from all but the last. shallow: the
 * match finder searches XZ_SHALLOW_DEPTH nodes, not 9e's 512. */
static dg_err
xz_segment(const uint8_t *data, size_t len, size_t dict, int last, int sparse, int shallow,
	   struct part *p)
{
	lzma_options_lzma opt;
	lzma_filter f[2];
	size_t cap = len + len / 16 + 4096, pos = 0;

	memset(p, 0, sizeof(*p));
	p->rlen = len;
	if (len == 0)
		return DG_OK;
	if (lzma_lzma_preset(&opt, 9 | LZMA_PRESET_EXTREME))
		return DG_ERR_DELTA_CODEC;
	opt.dict_size = (uint32_t)dict;
	if (shallow)
		opt.depth = XZ_SHALLOW_DEPTH;
	if (sparse) {
		/* difference bytes: no alignment, little literal context */
		opt.lc = 1;
		opt.pb = 0;
	}
	f[0].id = LZMA_FILTER_LZMA2;
	f[0].options = &opt;
	f[1].id = LZMA_VLI_UNKNOWN;
	f[1].options = NULL;
	p->comp.data = malloc(cap);
	if (!p->comp.data)
		return DG_ERR_NOMEM;
	p->comp.cap = cap;
	if (lzma_raw_buffer_encode(f, NULL, data, len, p->comp.data, &pos, cap) != LZMA_OK ||
	    pos == 0 || p->comp.data[pos - 1] != 0) {
		dg_buf_free(&p->comp);
		return DG_ERR_DELTA_CODEC;
	}
	if (!last)
		pos--;
	p->codec = CODEC_XZ;
	p->comp.len = p->clen = pos;
	return DG_OK;
}

/* Keep the smallest of zstd (*p), xz (xz[0..nseg), concatenated) and
 * stored; xz's buffers are freed. */
static dg_err
choose_part(const uint8_t *data, size_t len, struct part *p, struct part *xz, size_t nseg)
{
	uint64_t xlen = 0;
	size_t i, pos = 0;
	int have_zstd = p->comp.data != NULL;
	dg_err err = DG_OK;

	for (i = 0; i < nseg; i++)
		xlen += xz[i].clen;
	if (!have_zstd && len) {
		/* zstd was not tried: room for xz or stored */
		memset(p, 0, sizeof(*p));
		p->rlen = len;
		p->comp.data = malloc(len);
		if (!p->comp.data) {
			err = DG_ERR_NOMEM;
			goto out;
		}
		p->comp.cap = len;
		p->clen = len;
	}
	if (nseg && len && xlen < p->clen) {
		for (i = 0; i < nseg; i++) {
			memcpy(p->comp.data + pos, xz[i].comp.data, (size_t)xz[i].clen);
			pos += (size_t)xz[i].clen;
		}
		p->comp.len = p->clen = pos;
		p->codec = CODEC_XZ;
	} else if (len && (p->clen >= len || !have_zstd)) {
		memcpy(p->comp.data, data, len);
		p->comp.len = p->clen = len;
		p->codec = CODEC_NONE;
	}
out:
	for (i = 0; i < nseg; i++)
		dg_buf_free(&xz[i].comp);
	return err;
}

/* Compress one part, keeping the smallest of zstd, xz and stored. */
dg_err
dg_delta_compress_part(const uint8_t *data, size_t len, int level, int streamed, int try_xz, struct part *p)
{
	struct part xz;
	dg_err err;

	if ((err = zstd_part(data, len, level, streamed, p)) || len == 0)
		return err;
	memset(&xz, 0, sizeof(xz));
	if (try_xz && (err = xz_segment(data, len, dg_delta_xz_dict(len), 1, 0, 0, &xz))) {
		dg_buf_free(&p->comp);
		return err;
	}
	if ((err = choose_part(data, len, p, &xz, try_xz ? 1 : 0)))
		dg_buf_free(&p->comp);
	return err;
}

static int
log2_ceil(uint64_t v)
{
	int l = 0;

	while (((uint64_t)1 << l) < v)
		l++;
	return l;
}

/* zstd with the source as prefix and long-distance matching. ultra: level
 * 22 with a longer target match length and denser long-distance hashing
 * (0.6% smaller on ext4 image pairs than zstd -22's own settings). */
static dg_err
compress_zpatch(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m, int level, int ultra,
		struct part *p)
{
	ZSTD_CCtx *c = NULL;
	size_t bound, r;
	int wlog = log2_ceil((uint64_t)n + m + 1);
	dg_err err = DG_OK;

	memset(p, 0, sizeof(*p));
	p->rlen = m;
	if (m == 0)
		return DG_OK;
	if (wlog < 10)
		wlog = 10;
	if (wlog > 30)
		wlog = 30;
	bound = ZSTD_compressBound(m);
	p->comp.data = malloc(bound);
	c = ZSTD_createCCtx();
	if (!p->comp.data || !c) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, wlog)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0)) ||
	    (n && ZSTD_isError(ZSTD_CCtx_refPrefix(c, src, n)))) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	if (ultra && (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_targetLength, 4096)) ||
		      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_ldmHashRateLog, 4)))) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	r = ZSTD_compress2(c, p->comp.data, bound, tgt, m);
	if (ZSTD_isError(r)) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	p->codec = CODEC_ZSTD;
	p->comp.len = p->clen = r;
fail:
	ZSTD_freeCCtx(c);
	if (err)
		dg_buf_free(&p->comp);
	return err;
}

static void
item_free(struct item *it)
{
	for (int k = 0; k < NPARTS; k++)
		dg_buf_free(&it->p[k].comp);
}

static uint64_t
item_payload(const struct item *it)
{
	return it->p[0].clen + it->p[1].clen + it->p[2].clen + it->p[3].clen;
}

void
dg_delta_plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		item_free(&pl->items[i]);
	free(pl->items);
	pl->items = NULL;
	pl->n = 0;
}

dg_err
dg_delta_serialize(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m, const struct plan *pl,
	  uint8_t **out, size_t *out_len)
{
	uint8_t hdr[HDR_SIZE], *rec = NULL, *buf = NULL;
	size_t rlen = pl->n * ITEM_SIZE, cb, clen = 0, total, i, pos;
	dg_err err;

	*out = NULL;
	rec = calloc(1, rlen ? rlen : 1);
	if (!rec)
		return DG_ERR_NOMEM;
	for (i = 0; i < pl->n; i++) {
		const struct item *it = &pl->items[i];
		uint8_t *r = rec + i * ITEM_SIZE;

		r[0] = it->kind;
		r[1] = it->filter;
		dg_delta_put64(r + 4, it->out_len);
		dg_delta_put64(r + 12, it->src_off);
		dg_delta_put64(r + 20, it->src_len);
		for (int k = 0; k < NPARTS; k++) {
			dg_delta_put32(r + 28 + 20 * k, it->p[k].codec);
			dg_delta_put64(r + 32 + 20 * k, it->p[k].clen);
			dg_delta_put64(r + 40 + 20 * k, it->p[k].rlen);
		}
	}
	cb = ZSTD_compressBound(rlen);
	total = HDR_SIZE + cb;
	for (i = 0; i < pl->n; i++)
		total += (size_t)item_payload(&pl->items[i]);
	buf = malloc(total);
	if (!buf) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if (rlen) {
		clen = ZSTD_compress(buf + HDR_SIZE, cb, rec, rlen, 19);
		if (ZSTD_isError(clen)) {
			err = DG_ERR_DELTA_CODEC;
			goto fail;
		}
	}
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, MAGIC, 8);
	dg_delta_put32(hdr + 8, FORMAT_VERSION);
	dg_delta_put64(hdr + 16, n);
	if ((err = sha256(src, n, hdr + 24)))
		goto fail;
	dg_delta_put64(hdr + 56, m);
	if ((err = sha256(tgt, m, hdr + 64)))
		goto fail;
	dg_delta_put32(hdr + 96, (uint32_t)clen);
	dg_delta_put32(hdr + 100, (uint32_t)rlen);
	dg_delta_put32(hdr + 104, (uint32_t)pl->n);
	dg_delta_put32(hdr + 108, (uint32_t)crc32(0, hdr, HDR_SIZE - 4));
	memcpy(buf, hdr, HDR_SIZE);
	pos = HDR_SIZE + clen;
	for (i = 0; i < pl->n; i++)
		for (int k = 0; k < NPARTS; k++) {
			const struct part *p = &pl->items[i].p[k];

			if (p->clen) {
				memcpy(buf + pos, p->comp.data, (size_t)p->clen);
				pos += (size_t)p->clen;
			}
		}
	free(rec);
	*out = buf;
	*out_len = pos;
	return DG_OK;
fail:
	free(rec);
	free(buf);
	return err;
}

/* ---- jobs, run by a small thread pool ---- */
struct gen;

struct job {
	void (*run)(struct gen *g, struct job *j);
	struct plan *plan;
	size_t item;           /* which item of the plan */
	const dg_bsdiff_index *idx;
	const uint8_t *s, *t;  /* (filtered) source and target */
	size_t sn, off, len;   /* chunk of the target */
	dg_buf st[NPARTS];     /* bsdiff jobs: the uncompressed streams, kept
	                        * from the estimate for the final compression */
	uint8_t xz_only[NPARTS]; /* the final compression tries only xz */
	/* part jobs: compress data[0..len) into *res with codec (xz: segment
	 * of a part, dict from the whole part; last: keeps the end marker) */
	const uint8_t *data;
	struct part *res;
	uint32_t codec;
	size_t dict;
	int last, sparse, shallow;
	struct job *twin;      /* predict: the unfiltered bsdiff job its first
	                        * pass also does (its run is run_twin) */
	const dg_mcu_map *mcu; /* MCU prediction: the source's address map */
	dg_err err;
};

struct gen {
	const uint8_t *src, *tgt;
	size_t n, m;
	int level;
	int final; /* 0: fast estimates to rank candidates; 1: the real thing */
	unsigned threads;
	const dg_delta_diff_opts *o;
	struct job *jobs;
	size_t njobs, next;
	pthread_mutex_t lock;
};

/* Candidates are ranked on fast zstd sizes of their streams (at
 * ESTIMATE_LEVEL, dg_delta_internal.h); only the
 * best are then compressed at the requested level with xz tried per part,
 * from the streams kept by the estimate (not diffed again). */
#define LEVEL(g) ((g)->final ? (g)->level : ESTIMATE_LEVEL)
#define XZ(g) ((g)->final)
/* Parts below this are never left to xz alone (estimate_parts). */
#define XZ_SEGMENT_MIN (256u << 10)
/* Parts above this are xz'd in segments by several threads; up to it in one
 * (each segment starts with an empty dictionary: a file of several images,
 * or of repeated ones, lost a third of its difference stream's xz size in
 * two segments; giving each segment the bytes before it as preset
 * dictionary kept the size but took more CPU time and was not faster on
 * the shared 2-CPU machine) */
#define XZ_ONE_MAX (4u << 20)
/* Streams above this go without xz (time) */
#define XZ_MAX (32u << 20)
/* Targets above this get zstd patch-from at level 9 (time) */
#define ZPATCH_FAST_MIN (64u << 20)
/* and up to this, at level 22 in the final compression */
#define ZPATCH_ULTRA_MAX (48u << 20)

static void
job_free_streams(struct job *j)
{
	for (int k = 0; k < NPARTS; k++)
		dg_buf_free(&j->st[k]);
}

/* The estimate: compress the streams fast and keep them in the job. A
 * large part that is nine tenths zero bytes (the difference stream of
 * similar builds) is left to xz in the final compression: there zstd at
 * its full level has always been a fifth or more larger than xz's best,
 * and it would take a thread for as long as an xz segment. */
static dg_err
estimate_parts(struct gen *g, struct job *j, struct item *it)
{
	dg_err err = DG_OK;

	for (int k = 0; k < NPARTS && !err; k++) {
		const uint8_t *d = j->st[k].data;
		size_t len = j->st[k].len, zeros = 0;

		err = dg_delta_compress_part(d, len, LEVEL(g), 1, XZ(g) && len <= XZ_MAX, &it->p[k]);
		j->xz_only[k] = 0;
		if (err || len < XZ_SEGMENT_MIN || len > XZ_MAX)
			continue;
		for (size_t i = 0; i < len; i++)
			zeros += d[i] == 0;
		j->xz_only[k] = zeros >= len - len / 10;
	}
	return err;
}

static dg_err diff_split(const dg_bsdiff_index *idx, const uint8_t *t, size_t m,
			 unsigned threads, dg_buf *ctrl, dg_buf *diff, dg_buf *extra);

static void
run_bsdiff(struct gen *g, struct job *j)
{
	struct item *it = &j->plan->items[j->item];
	dg_err err;

	job_free_streams(j);
	if ((err = diff_split(j->idx, j->t + j->off, j->len, g->threads, &j->st[0], &j->st[1],
			      &j->st[2])))
		goto out;
	it->kind = KIND_BSDIFF;
	it->out_len = j->len;
	it->src_off = 0;
	it->src_len = j->sn;
	err = estimate_parts(g, j, it);
out:
	if (err)
		job_free_streams(j);
	j->err = err;
}

/* dg_bsdiff_diff over a target cut in nthreads pieces, diffed in parallel
 * against the same index and joined: each piece's control stream starts
 * at source offset 0, so a (0, 0, seek) step brings the source position
 * back there from where the previous piece left it. */
struct split_arg {
	const dg_bsdiff_index *idx;
	const uint8_t *t;
	size_t len;
	dg_buf st[3];
	dg_err err;
};

static void *
split_thread(void *arg)
{
	struct split_arg *a = arg;

	a->err = dg_bsdiff_diff(a->idx, a->t, a->len, &a->st[0], &a->st[1], &a->st[2]);
	return NULL;
}

#define SPLIT_MAX 4
#define SPLIT_MIN (512u << 10) /* smaller targets: one piece */

static dg_err
diff_split(const dg_bsdiff_index *idx, const uint8_t *t, size_t m, unsigned threads,
	   dg_buf *ctrl, dg_buf *diff, dg_buf *extra)
{
	struct split_arg a[SPLIT_MAX];
	pthread_t tid[SPLIT_MAX];
	int started[SPLIT_MAX] = { 0 };
	size_t np = threads < SPLIT_MAX ? threads : SPLIT_MAX, i, pos;
	int64_t spos = 0;
	dg_err err = DG_OK;

	if (np < 2 || m < SPLIT_MIN)
		return dg_bsdiff_diff(idx, t, m, ctrl, diff, extra);
	memset(a, 0, sizeof(a));
	memset(ctrl, 0, sizeof(*ctrl));
	memset(diff, 0, sizeof(*diff));
	memset(extra, 0, sizeof(*extra));
	for (i = 0; i < np; i++) {
		a[i].idx = idx;
		a[i].t = t + m / np * i;
		a[i].len = i + 1 < np ? m / np : m - m / np * i;
		if (i > 0)
			started[i] = pthread_create(&tid[i], NULL, split_thread, &a[i]) == 0;
	}
	for (i = 0; i < np; i++)
		if (!started[i])
			split_thread(&a[i]);
	for (i = 1; i < np; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	for (i = 0; i < np && !err; i++) {
		int bad = 0;
		uint64_t add, seek;

		if ((err = a[i].err))
			break;
		if (i > 0 && (err = dg_buf_varint(ctrl, 0)) == DG_OK &&
		    (err = dg_buf_varint(ctrl, 0)) == DG_OK)
			err = dg_buf_varint(ctrl, ((uint64_t)-spos << 1) ^ (uint64_t)(-spos >> 63));
		if (err || (err = dg_buf_append(ctrl, a[i].st[0].data, a[i].st[0].len)) ||
		    (err = dg_buf_append(diff, a[i].st[1].data, a[i].st[1].len)) ||
		    (err = dg_buf_append(extra, a[i].st[2].data, a[i].st[2].len)))
			break;
		/* where this piece leaves the source position */
		spos = 0;
		for (pos = 0; pos < a[i].st[0].len && !bad;) {
			add = dg_delta_rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
			(void)dg_delta_rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
			seek = dg_delta_rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
			spos += (int64_t)add + (int64_t)((seek >> 1) ^ (0 - (seek & 1)));
		}
		if (bad)
			err = DG_ERR_INTERNAL;
	}
	for (i = 0; i < np; i++)
		for (int k = 0; k < 3; k++)
			dg_buf_free(&a[i].st[k]);
	if (err) {
		dg_buf_free(ctrl);
		dg_buf_free(diff);
		dg_buf_free(extra);
	}
	return err;
}

/* First pass against the plain source gives the map; the source is then
 * rewritten with every branch and RIP-relative operand moved as the map
 * predicts, and the target diffed against that prediction. */
static void
run_predict(struct gen *g, struct job *j)
{
	struct item *it = &j->plan->items[0];
	dg_buf diff1, extra1;
	dg_bsdiff_index *idx = NULL;
	struct xmap m = { NULL, 0 };
	uint8_t *ps = NULL;
	dg_err err;

	job_free_streams(j);
	if ((err = diff_split(j->idx, j->t, j->len, g->threads, &j->st[3], &diff1, &extra1)))
		goto out;
	if (j->twin) {
		/* the first pass is the unfiltered bsdiff candidate too */
		struct job *tw = j->twin;
		struct item *ti = &tw->plan->items[tw->item];

		job_free_streams(tw);
		tw->st[1] = diff1;
		tw->st[2] = extra1;
		memset(&diff1, 0, sizeof(diff1));
		memset(&extra1, 0, sizeof(extra1));
		if ((err = dg_buf_append(&tw->st[0], j->st[3].data, j->st[3].len)))
			goto out;
		ti->kind = KIND_BSDIFF;
		ti->out_len = tw->len;
		ti->src_off = 0;
		ti->src_len = tw->sn;
		if ((err = estimate_parts(g, tw, ti)))
			goto out;
	}
	dg_buf_free(&diff1);
	dg_buf_free(&extra1);
	if ((err = dg_delta_xmap_build(j->st[3].data, j->st[3].len, j->sn, &m)))
		goto out;
	ps = malloc(j->sn ? j->sn : 1);
	if (!ps) {
		err = DG_ERR_NOMEM;
		goto out;
	}
	memcpy(ps, j->s, j->sn);
	dg_bcj_x64_predict(ps, j->sn, dg_delta_xmap_shift, &m);
	if ((err = dg_bsdiff_index_new(ps, j->sn, &idx)) ||
	    (err = diff_split(idx, j->t, j->len, g->threads, &j->st[0], &j->st[1], &j->st[2])))
		goto out;
	it->kind = KIND_BSDIFF_X64;
	it->out_len = j->len;
	it->src_len = j->sn;
	err = estimate_parts(g, j, it);
out:
	dg_bsdiff_index_free(idx);
	free(ps);
	free(m.b);
	if (err)
		job_free_streams(j);
	j->err = err;
}

/* MCU firmware: as run_predict, with the architecture's prediction over
 * the address map; part 3 is the map, then the first pass's control. */
static void
run_predict_mcu(struct gen *g, struct job *j)
{
	struct item *it = &j->plan->items[0];
	dg_buf ctrl1, diff1, extra1;
	dg_bsdiff_index *idx = NULL;
	struct xmap m = { NULL, 0 };
	uint8_t *ps = NULL, mapb[4 + 20 * DG_MCU_MAX_REGIONS];
	dg_err err;

	memset(&ctrl1, 0, sizeof(ctrl1));
	memset(&diff1, 0, sizeof(diff1));
	memset(&extra1, 0, sizeof(extra1));
	job_free_streams(j);
	if ((err = diff_split(j->idx, j->t, j->len, g->threads, &ctrl1, &diff1, &extra1)))
		goto out;
	if (j->twin) {
		/* the first pass is the unfiltered bsdiff candidate too */
		struct job *tw = j->twin;
		struct item *ti = &tw->plan->items[tw->item];

		job_free_streams(tw);
		tw->st[1] = diff1;
		tw->st[2] = extra1;
		memset(&diff1, 0, sizeof(diff1));
		memset(&extra1, 0, sizeof(extra1));
		if ((err = dg_buf_append(&tw->st[0], ctrl1.data, ctrl1.len)))
			goto out;
		ti->kind = KIND_BSDIFF;
		ti->out_len = tw->len;
		ti->src_off = 0;
		ti->src_len = tw->sn;
		if ((err = estimate_parts(g, tw, ti)))
			goto out;
	}
	dg_buf_free(&diff1);
	dg_buf_free(&extra1);
	if ((err = dg_delta_xmap_build(ctrl1.data, ctrl1.len, j->sn, &m)))
		goto out;
	ps = malloc(j->sn ? j->sn : 1);
	if (!ps) {
		err = DG_ERR_NOMEM;
		goto out;
	}
	memcpy(ps, j->s, j->sn);
	dg_mcu_predict(ps, j->sn, j->mcu, dg_delta_xmap_shift, &m);
	dg_mcu_map_write(j->mcu, mapb);
	if ((err = dg_bsdiff_index_new(ps, j->sn, &idx)) ||
	    (err = diff_split(idx, j->t, j->len, g->threads, &j->st[0], &j->st[1], &j->st[2])) ||
	    (err = dg_buf_append(&j->st[3], mapb, dg_mcu_map_size(j->mcu))) ||
	    (err = dg_buf_append(&j->st[3], ctrl1.data, ctrl1.len)))
		goto out;
	it->kind = KIND_BSDIFF_MCU;
	it->out_len = j->len;
	it->src_len = j->sn;
	err = estimate_parts(g, j, it);
out:
	dg_bsdiff_index_free(idx);
	dg_buf_free(&ctrl1);
	dg_buf_free(&diff1);
	dg_buf_free(&extra1);
	free(ps);
	free(m.b);
	if (err)
		job_free_streams(j);
	j->err = err;
}

/* The source's address map for the MCU prediction: the override, or what
 * the source and target say they are. 0 when there is none. */
static int
mcu_map_for(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
	    const dg_delta_diff_opts *o, dg_mcu_map *sm)
{
	dg_mcu_map tm;
	dg_mcu_arch a;

	if (o && o->mcu_arch == DG_DELTA_MCU_OFF)
		return 0;
	/* several images one after the other, the same ones on both sides:
	 * each its own regions (unless an architecture or base is given) */
	if (!(o && (o->mcu_arch > 0 || o->mcu_base_set)) && dg_mcu_detect_mixed(src, n, sm) >= 2 &&
	    dg_mcu_detect_mixed(tgt, m, &tm) >= 2 && dg_mcu_pair(sm, &tm) == 0) {
		for (unsigned i = 0; i < sm->n; i++)
			dg_log_debug("mixed image %u: %s at 0x%08x, source %u+%u, target offset %u",
				     sm->r[i].image, dg_mcu_arch_name((dg_mcu_arch)sm->r[i].arch),
				     sm->r[i].vaddr, sm->r[i].soff, sm->r[i].len, sm->r[i].toff);
		return 1;
	}
	a = dg_mcu_detect(src, n, sm);
	/* the target's segments give the regions' target offsets; flat images
	 * need none (a base that differs costs size only) */
	if (a != DG_MCU_NONE && sm->n > 1 &&
	    (dg_mcu_detect(tgt, m, &tm) != a || dg_mcu_pair(sm, &tm) != 0))
		a = DG_MCU_NONE;
	if (o && o->mcu_arch > 0 && o->mcu_arch < DG_MCU_ARCH_MAX_ &&
	    (a != (dg_mcu_arch)o->mcu_arch || o->mcu_base_set)) {
		dg_mcu_flat(sm, (dg_mcu_arch)o->mcu_arch, o->mcu_base_set ? o->mcu_base : 0, n);
		return 1;
	}
	if (a == DG_MCU_NONE)
		return 0;
	if (o && o->mcu_base_set)
		dg_mcu_flat(sm, a, o->mcu_base, n);
	return 1;
}

/* A bsdiff job done by its predict twin. */
static void
run_twin(struct gen *g, struct job *j)
{
	(void)g;
	(void)j;
}

static void
run_part(struct gen *g, struct job *j)
{
	if (j->codec == CODEC_XZ)
		j->err = xz_segment(j->data, j->len, j->dict, j->last, j->sparse, j->shallow, j->res);
	else
		j->err = zstd_part(j->data, j->len, g->level, 1, j->res);
}

static void
run_zpatch(struct gen *g, struct job *j)
{
	struct item *it = &j->plan->items[0];
	int level = LEVEL(g), ultra = 0;

	/* level 19 with a long window is ~1 MB/s: trade a little size for
	 * time on large images; below that the final compression goes to
	 * the top level (~3 MB/s, 15 times the pair's size in memory),
	 * where patch-from beats the other methods on file-system images */
	if (g->m > ZPATCH_FAST_MIN && level > 9)
		level = 9;
	else if (g->final && level >= 19 && g->m <= ZPATCH_ULTRA_MAX)
		ultra = 1;
	it->kind = KIND_ZPATCH;
	it->filter = j->plan->items[0].filter;
	it->out_len = j->len;
	it->src_len = j->sn;
	j->err = compress_zpatch(j->s, j->sn, j->t, j->len, ultra ? 22 : level, ultra, &it->p[0]);
}

static void
run_raw(struct gen *g, struct job *j)
{
	struct item *it = &j->plan->items[0];

	it->kind = KIND_RAW;
	it->out_len = j->len;
	j->err = dg_delta_compress_part(j->t, j->len, LEVEL(g) > 19 ? 19 : LEVEL(g), 0, 0, &it->p[0]);
	if (!j->err && it->p[0].codec != CODEC_ZSTD && it->out_len) {
		/* RAW items are zstd frames or stored: dg_delta_compress_part
		 * may only have chosen stored here (xz was not tried) */
		it->p[0].codec = CODEC_NONE;
	}
}

static void *
worker(void *arg)
{
	struct gen *g = arg;
	struct job *j;

	for (;;) {
		pthread_mutex_lock(&g->lock);
		j = g->next < g->njobs ? &g->jobs[g->next++] : NULL;
		pthread_mutex_unlock(&g->lock);
		if (!j)
			return NULL;
		if (g->o && g->o->cancel && atomic_load(g->o->cancel))
			j->err = DG_ERR_CANCELED;
		else
			j->run(g, j);
	}
}

static dg_err
run_jobs(struct gen *g, struct job *jobs, size_t njobs, unsigned threads)
{
	pthread_t tids[64];
	unsigned t, started = 0;
	size_t i;

	g->jobs = jobs;
	g->njobs = njobs;
	g->next = 0;
	if (threads > 64)
		threads = 64;
	for (t = 1; t < threads && t < njobs; t++)
		if (pthread_create(&tids[started], NULL, worker, g) == 0)
			started++;
	worker(g);
	for (t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	for (i = 0; i < njobs; i++)
		if (jobs[i].err)
			return jobs[i].err;
	return DG_OK;
}

#define MAX_VARIANTS 3 /* unfiltered + up to two filters */

struct idx_arg {
	const uint8_t *s;
	size_t n;
	dg_bsdiff_index *idx;
	dg_err err;
};

static void *
index_thread(void *arg)
{
	struct idx_arg *a = arg;

	a->err = dg_bsdiff_index_new(a->s, a->n, &a->idx);
	return NULL;
}

static void
progress(const dg_delta_diff_opts *o, uint64_t done, uint64_t total)
{
	if (o && o->progress)
		o->progress(o->progress_arg, done, total);
}

/* Which results of the final jobs make up one part of one item. */
struct pmap {
	struct job *j;
	int k;
	size_t zi, xi, nx; /* zstd result, first xz segment, segments */
};

/* The final compression of the plans within 30% of the best estimate (15%
 * for a bsdiff plan when the best is one too):
 * kept streams are compressed per part (zstd and xz as separate jobs,
 * xz in segments for large parts); other plans' jobs are run again at
 * the full level. Marks those plans final. */
static dg_err
finalize(struct gen *g, struct plan *plans, size_t nplans, size_t best, struct job *jobs,
	 size_t njobs, unsigned threads)
{
	size_t cap = njobs * NPARTS * 5 + njobs, nj = 0, nm = 0, i, p, c, x, nseg;
	struct job *fj = calloc(cap, sizeof(*fj));
	struct part *res = calloc(cap, sizeof(*res));
	struct pmap *map = calloc(njobs * NPARTS + 1, sizeof(*map));
	uint64_t est = plans[best].size;
	dg_err err = DG_OK;

	if (!fj || !res || !map) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	for (p = 0; p < nplans - 1; p++) {
		/* zstd patch-from gains the most from the full level: 30%;
		 * bsdiff candidates against a bsdiff best gain alike: 15% */
		int alike = plans[p].items[0].kind != KIND_ZPATCH &&
			    plans[best].items[0].kind != KIND_ZPATCH;

		if (p != best && plans[p].size > est + est * (alike ? 15 : 30) / 100)
			continue;
		plans[p].final = 1;
		for (i = 0; i < njobs; i++) {
			struct job *j = &jobs[i];

			if (j->plan != &plans[p])
				continue;
			if (j->run == run_zpatch || j->run == run_raw) {
				uint8_t filter = plans[p].items[j->item].filter;

				item_free(&plans[p].items[j->item]);
				memset(&plans[p].items[j->item], 0, sizeof(struct item));
				plans[p].items[j->item].filter = filter;
				fj[nj] = *j;
				memset(fj[nj].st, 0, sizeof(fj[nj].st));
				fj[nj++].err = DG_OK;
				continue;
			}
			for (int k = 0; k < NPARTS; k++) {
				const dg_buf *b = &j->st[k];

				if (b->len == 0)
					continue;
				map[nm] = (struct pmap){ j, k, SIZE_MAX, nj, 0 };
				if (!j->xz_only[k] || b->len > XZ_MAX) {
					map[nm].zi = nj;
					fj[nj] = (struct job){ .run = run_part, .data = b->data,
							       .len = b->len, .res = &res[nj],
							       .codec = CODEC_ZSTD };
					map[nm].xi = ++nj;
				}
				if (b->len <= XZ_MAX) {
					nseg = threads > 1 && b->len > XZ_ONE_MAX ? threads : 1;
					if (nseg > 4)
						nseg = 4;
					for (x = 0; x < nseg; x++) {
						size_t o = b->len / nseg * x;
						size_t l = x + 1 < nseg ? b->len / nseg : b->len - o;

						fj[nj] = (struct job){ .run = run_part, .data = b->data + o,
								       .len = l, .res = &res[nj],
								       .codec = CODEC_XZ,
								       .dict = dg_delta_xz_dict(b->len),
								       .last = x + 1 == nseg,
								       .sparse = k == 1,
								       .shallow = nseg == 1 &&
										  l > XZ_SHALLOW_MIN };
						nj++;
					}
					map[nm].nx = nseg;
				}
				nm++;
			}
		}
	}
	g->final = 1;
	err = run_jobs(g, fj, nj, threads);
	g->final = 0;
	if (err)
		goto fail;
	for (i = 0; i < nm; i++) {
		struct job *j = map[i].j;
		struct part *dst = &j->plan->items[j->item].p[map[i].k];
		/* the estimate's compression stays when the final one is not
		 * smaller (xz in segments can lose to one zstd stream) */
		struct part keep = *dst;

		memset(dst, 0, sizeof(*dst));
		if (map[i].zi != SIZE_MAX) {
			*dst = res[map[i].zi];
			memset(&res[map[i].zi], 0, sizeof(res[0]));
		}
		if ((err = choose_part(j->st[map[i].k].data, j->st[map[i].k].len, dst,
				       &res[map[i].xi], map[i].nx))) {
			dg_buf_free(&keep.comp);
			goto fail;
		}
		if (keep.comp.data && keep.clen == keep.comp.len && keep.rlen == dst->rlen &&
		    keep.clen < dst->clen) {
			dg_buf_free(&dst->comp);
			*dst = keep;
		} else {
			dg_buf_free(&keep.comp);
		}
	}
fail:
	for (c = 0; res && c < nj; c++)
		dg_buf_free(&res[c].comp);
	free(res);
	free(fj);
	free(map);
	return err;
}

dg_err
dg_delta_diff_plain(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
	   const dg_delta_diff_opts *opts, uint8_t **out, size_t *out_len,
	   dg_delta_diff_stats *stats)
{
	struct gen g;
	dg_bcj_filter filters[MAX_VARIANTS];
	size_t nf, nv, v, c, nchunks, chunk, njobs = 0, i, best = SIZE_MAX;
	uint8_t *fs[MAX_VARIANTS] = { 0 }, *ft[MAX_VARIANTS] = { 0 };
	dg_bsdiff_index *idx[MAX_VARIANTS] = { 0 };
	struct plan plans[MAX_VARIANTS + 3];
	struct job *jobs = NULL;
	unsigned threads = opts && opts->threads > 1 ? opts->threads : 1;
	uint8_t *buf = NULL, *check = NULL;
	size_t buflen = 0, checklen = 0, nplans = 0, nextra;
	int predict, mcu = 0;
	dg_mcu_map mcumap;
	uint64_t ctarget;
	dg_delta_apply_opts ao;
	dg_err err = DG_OK;

	*out = NULL;
	*out_len = 0;
	memset(plans, 0, sizeof(plans));
	memset(&g, 0, sizeof(g));
	if (!src)
		src = (const uint8_t *)"";
	if (!tgt)
		tgt = (const uint8_t *)"";
	if (n >= (size_t)INT32_MAX || (m >> 20) >= ((size_t)1 << 20))
		return DG_ERR_TOOBIG;
	g.src = src;
	g.tgt = tgt;
	g.n = n;
	g.m = m;
	g.o = opts;
	g.threads = threads;
	g.level = opts && opts->level > 0 ? opts->level : 19;
	if (g.level > 22)
		g.level = 22;
	pthread_mutex_init(&g.lock, NULL);

	/* one item per variant: a large target is diffed in pieces by
	 * diff_split and its streams joined (separate items per piece cost
	 * 3-5% on file-system images: each restarts the stream coders) */
	nchunks = 1;
	chunk = m / nchunks + 1;

	/* variants: unfiltered, then the filters the target's header suggests;
	 * the target is filtered chunk by chunk as the applier decodes it */
	filters[0] = DG_BCJ_NONE;
	nf = dg_bcj_guess(tgt, m, filters + 1, MAX_VARIANTS - 1);
	/* x86-64 code: the relocation-aware prediction replaces the filter,
	 * which measured worse than no filter on every pair we tried */
	predict = nf > 0 && filters[1] == DG_BCJ_X86_64;
	if (predict)
		nf = 0;
	/* microcontroller firmware: the architecture's prediction */
	if (!predict && (nf == 0 || filters[1] == DG_BCJ_ARMT || (opts && opts->mcu_arch > 0)))
		mcu = mcu_map_for(src, n, tgt, m, opts, &mcumap);
	fs[0] = (uint8_t *)src;
	ft[0] = (uint8_t *)tgt;
	nv = 1;
	for (v = 1; v <= nf; v++) {
		fs[nv] = malloc(n ? n : 1);
		ft[nv] = malloc(m ? m : 1);
		check = malloc(m ? m : 1);
		if (!fs[nv] || !ft[nv] || !check) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		memcpy(fs[nv], src, n);
		memcpy(ft[nv], tgt, m);
		memcpy(check, tgt, m);
		dg_bcj_encode(filters[v], fs[nv], n);
		for (c = 0; c < nchunks; c++) {
			size_t off = c * chunk < m ? c * chunk : m;
			size_t len = (c + 1) * chunk < m ? chunk : m - off;

			dg_bcj_encode(filters[v], ft[nv] + off, len);
			memcpy(check + off, ft[nv] + off, len);
			dg_bcj_decode(filters[v], check + off, len);
		}
		/* a filter is used only where it is exactly invertible here */
		if (memcmp(check, tgt, m) != 0) {
			dg_log_warn("filter %s does not invert on this target; not used",
				    dg_bcj_name(filters[v]));
			free(fs[nv]);
			free(ft[nv]);
			fs[nv] = ft[nv] = NULL;
		} else {
			filters[nv] = filters[v];
			nv++;
		}
		free(check);
		check = NULL;
	}
	progress(opts, 0, 4);

	/* phase 1: suffix arrays (one per variant), in parallel */
	if (threads > 1 && nv > 1) {
		pthread_t tids[MAX_VARIANTS];
		struct idx_arg ta[MAX_VARIANTS];
		int started[MAX_VARIANTS] = { 0 };

		for (v = 0; v < nv; v++) {
			ta[v] = (struct idx_arg){ fs[v], n, NULL, DG_OK };
			started[v] = pthread_create(&tids[v], NULL, index_thread, &ta[v]) == 0;
			if (!started[v])
				index_thread(&ta[v]);
		}
		for (v = 0; v < nv; v++) {
			if (started[v])
				pthread_join(tids[v], NULL);
			idx[v] = ta[v].idx;
			if (ta[v].err && !err)
				err = ta[v].err;
		}
	} else {
		for (v = 0; v < nv && !err; v++)
			err = dg_bsdiff_index_new(fs[v], n, &idx[v]);
	}
	if (err)
		goto fail;
	progress(opts, 1, 4);

	/* extra single-item plans: zstd patch-from, x86-64 prediction (for
	 * x86-64 executables), and last the raw target (the yardstick) */
	nextra = 2 + predict + mcu;
	nplans = nv + nextra;
	jobs = calloc(nv * nchunks + nextra, sizeof(*jobs));
	if (!jobs) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	/* the longest job first: the prediction diffs and sorts twice */
	for (i = nplans - 1; i-- > nv;) {
		struct job *j = &jobs[njobs++];

		plans[i].items = calloc(1, sizeof(struct item));
		if (!plans[i].items) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		plans[i].n = 1;
		j->plan = &plans[i];
		j->s = fs[0];
		j->sn = n;
		j->t = ft[0];
		j->len = m;
		j->idx = idx[0];
		if (i == nv) {
			j->run = run_zpatch;
			snprintf(plans[i].method, sizeof(plans[i].method), "zstd-patch-from");
		} else if (mcu) {
			j->run = run_predict_mcu;
			j->mcu = &mcumap;
			snprintf(plans[i].method, sizeof(plans[i].method), "bsdiff+%s-predict",
				 dg_mcu_map_version(&mcumap) >= DG_MCU_MAP_V3
					 ? "mixed"
					 : dg_mcu_arch_name((dg_mcu_arch)mcumap.arch));
		} else {
			j->run = run_predict;
			snprintf(plans[i].method, sizeof(plans[i].method), "bsdiff+x86-64-predict");
		}
	}
	for (v = 0; v < nv; v++) {
		plans[v].items = calloc(nchunks, sizeof(struct item));
		if (!plans[v].items) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		plans[v].n = nchunks;
		snprintf(plans[v].method, sizeof(plans[v].method), "bsdiff+%s",
			 dg_bcj_name(filters[v]));
		for (c = 0; c < nchunks; c++) {
			struct job *j = &jobs[njobs++];

			plans[v].items[c].filter = (uint8_t)filters[v];
			j->run = run_bsdiff;
			j->plan = &plans[v];
			j->item = c;
			j->idx = idx[v];
			j->s = fs[v];
			j->sn = n;
			j->t = ft[v];
			j->off = c * chunk < m ? c * chunk : m;
			j->len = (c + 1) * chunk < m ? chunk : m - j->off;
		}
	}
	if ((predict || mcu) && nchunks == 1) {
		/* jobs[0] is the prediction (x86-64 or MCU); jobs[2] the
		 * unfiltered bsdiff */
		jobs[0].twin = &jobs[2];
		jobs[2].run = run_twin;
	}
	{
		struct job *j = &jobs[njobs++];

		plans[nplans - 1].items = calloc(1, sizeof(struct item));
		if (!plans[nplans - 1].items) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		plans[nplans - 1].n = 1;
		snprintf(plans[nplans - 1].method, sizeof(plans[nplans - 1].method), "raw");
		j->run = run_raw;
		j->plan = &plans[nplans - 1];
		j->t = ft[0];
		j->len = m;
	}
	if ((err = run_jobs(&g, jobs, njobs, threads)))
		goto fail;
	progress(opts, 3, 4);
	for (i = 0; i < nplans; i++) {
		/* the recipe is compressed too: its raw size is an upper bound */
		plans[i].size = HDR_SIZE + plans[i].n * ITEM_SIZE;
		for (c = 0; c < plans[i].n; c++)
			plans[i].size += item_payload(&plans[i].items[c]);
		dg_log_debug("candidate %s: %llu bytes (%llu+%llu+%llu in item 0)", plans[i].method,
			     (unsigned long long)plans[i].size,
			     (unsigned long long)plans[i].items[0].p[0].clen,
			     (unsigned long long)plans[i].items[0].p[1].clen,
			     (unsigned long long)plans[i].items[0].p[2].clen);
		if (best == SIZE_MAX || plans[i].size < plans[best].size)
			best = i;
	}
	/* compress the winner for real, and every other candidate within 30%
	 * (15% for bsdiff ones when it is bsdiff)
	 * of it, since methods gain unequally from the full level (zstd
	 * patch-from most): each part's zstd and xz (in segments when large)
	 * are separate jobs, so that they spread over the threads */
	if (best != nplans - 1 &&
	    (err = finalize(&g, plans, nplans, best, jobs, njobs, threads)))
		goto fail;
	for (i = 0; i < njobs; i++)
		job_free_streams(&jobs[i]);
	if (best != nplans - 1) {
		for (i = 0; i < nplans - 1; i++) {
			plans[i].size = HDR_SIZE + plans[i].n * ITEM_SIZE;
			for (c = 0; c < plans[i].n; c++)
				plans[i].size += item_payload(&plans[i].items[c]);
			if (plans[i].final)
				dg_log_debug("final %s: %llu bytes (%llu+%llu+%llu in item 0)",
					     plans[i].method, (unsigned long long)plans[i].size,
					     (unsigned long long)plans[i].items[0].p[0].clen,
					     (unsigned long long)plans[i].items[0].p[1].clen,
					     (unsigned long long)plans[i].items[0].p[2].clen);
			if (plans[i].final && plans[i].size < plans[best].size)
				best = i;
		}
		dg_log_debug("final choice %s: %llu bytes", plans[best].method,
			     (unsigned long long)plans[best].size);
	}
	/* the raw plan's payload is the zstd-compressed target: the yardstick,
	 * at the full level unless the delta is clearly below it */
	ctarget = item_payload(&plans[nplans - 1].items[0]);
	plans[best].size = HDR_SIZE + plans[best].n * ITEM_SIZE;
	for (c = 0; c < plans[best].n; c++)
		plans[best].size += item_payload(&plans[best].items[c]);
	if (plans[best].size > ctarget / 2 || best == nplans - 1) {
		struct job rj;

		memset(&rj, 0, sizeof(rj));
		item_free(&plans[nplans - 1].items[0]);
		memset(&plans[nplans - 1].items[0], 0, sizeof(struct item));
		rj.run = run_raw;
		rj.plan = &plans[nplans - 1];
		rj.t = tgt;
		rj.len = m;
		g.final = 1;
		run_raw(&g, &rj);
		if ((err = rj.err))
			goto fail;
		ctarget = item_payload(&plans[nplans - 1].items[0]);
	}
	if (stats) {
		memset(stats, 0, sizeof(*stats));
		stats->compressed_target = ctarget;
	}
	if ((err = dg_delta_serialize(src, n, tgt, m, &plans[best], &buf, &buflen)))
		goto fail;
	if (buflen > ctarget && !(opts && opts->allow_larger)) {
		dg_log_err("delta (%zu bytes) would not be smaller than the compressed target (%llu bytes)",
			   buflen, (unsigned long long)ctarget);
		err = DG_ERR_DELTA_NOGAIN;
		goto fail;
	}
	/* self-check: apply what we made */
	memset(&ao, 0, sizeof(ao));
	ao.mem_limit = SIZE_MAX;
	err = dg_delta_apply_mem(src, n, buf, buflen, &ao, &check, &checklen);
	if (err || checklen != m || (m && memcmp(check, tgt, m) != 0)) {
		dg_log_err("self-check of the generated delta failed (%s)",
			   err ? dg_strerror(err) : "output differs");
		err = DG_ERR_DELTA_VERIFY;
		goto fail;
	}
	progress(opts, 4, 4);
	if (stats) {
		stats->delta_size = buflen;
		stats->items = (unsigned)plans[best].n;
		snprintf(stats->method, sizeof(stats->method), "%s", plans[best].method);
	}
	*out = buf;
	*out_len = buflen;
	buf = NULL;
fail:
	free(buf);
	free(check);
	for (i = 0; i < nplans && i < MAX_VARIANTS + 3; i++)
		dg_delta_plan_free(&plans[i]);
	for (i = 0; jobs && i < njobs; i++)
		job_free_streams(&jobs[i]);
	free(jobs);
	for (v = 0; v < MAX_VARIANTS; v++) {
		dg_bsdiff_index_free(idx[v]);
		if (v > 0) {
			free(fs[v]);
			free(ft[v]);
		}
	}
	pthread_mutex_destroy(&g.lock);
	return err;
}

dg_err
dg_delta_diff_file(const char *source_path, const char *target_path, const char *delta_path,
		   const dg_delta_diff_opts *opts, dg_delta_diff_stats *stats)
{
	const uint8_t *src = NULL, *tgt = NULL;
	size_t n = 0, m = 0, len = 0;
	uint8_t *delta = NULL;
	dg_err err;

	if ((err = dg_delta_map_file(source_path, NULL, &src, &n))) {
		dg_log_err("%s: %s", source_path, dg_strerror(err));
		return err;
	}
	if ((err = dg_delta_map_file(target_path, NULL, &tgt, &m))) {
		dg_log_err("%s: %s", target_path, dg_strerror(err));
		goto fail;
	}
	if ((err = dg_delta_diff_mem(src, n, tgt, m, opts, &delta, &len, stats)))
		goto fail;
	if ((err = dg_util_write_atomic(delta_path, delta, len, 0644)))
		dg_log_err("%s: %s", delta_path, dg_strerror(err));
fail:
	free(delta);
	if (src)
		munmap((void *)src, n);
	if (tgt)
		munmap((void *)tgt, m);
	return err;
}
