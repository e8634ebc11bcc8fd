/* dg_delta - delta format, generator and streaming applier (see dg_delta.h
 * and docs/delta-format.md). */
#include "config.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "dg_bcj.h"
#include "dg_mcu.h"
#include "dg_bsdiff.h"
#include "dg_delta.h"
#include "dg_gzip.h"
#include "dg_swu.h"
#include "dg_log.h"
#include "dg_util.h"

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

/* parts each kind uses; the others must be empty */
static const unsigned kind_parts[KIND_MAX_] = { 0, 1, 0, 3, 1, 4, 1, 1, 4 };
enum { CODEC_NONE = 0, CODEC_ZSTD = 1, CODEC_XZ = 2, CODEC_MAX_ };

/* Streamed parts (control, diff, extra) are encoded with windows of at most
 * 1 MiB so that three decoders fit in the default 8 MiB limit. */
#define STREAM_WINDOW_LOG 20
#define IOBUF (64u * 1024u)
/* The applier drops mapped pages after each this many output bytes. */
#define TRIM_EVERY (1u << 20)
#define MAX_TRIM 6
/* The mapped source and output are trimmed from this size (smaller ones
 * stay resident: refaulting them cost a fifth of the apply time); mapped
 * scratch files always are. */
#define TRIM_MAP_MIN (16u << 20)
/* zstd input fed per call when decoding into a mapped output: bounds the
 * output one call produces (and so the pages it makes resident) */
#define FEED 64u

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

#define SPEC_MAX (16u << 20)
#define SEGS_MAX (4u * 65536u + 4u)

struct header {
	uint32_t version;
	uint64_t src_size, tgt_size;
	uint8_t src_sha[32], tgt_sha[32];
	uint32_t nitems;
	struct archive *ar;     /* when item 0 is KIND_ARCHIVE */
};

static void
archive_free(struct archive *ar)
{
	if (!ar)
		return;
	/* nt may be set before t is allocated (spec_load failing) */
	for (size_t i = 0; ar->t && i < ar->nt; i++) {
		free(ar->t[i].hdr);
		free(ar->t[i].sp);
	}
	for (size_t i = 0; ar->s && i < ar->ns; i++)
		free(ar->s[i].sp);
	free(ar->s);
	free(ar->t);
	free(ar);
}

struct din;
static dg_err spec_load(const struct din *d, const struct part *p, const struct header *h,
			int split, struct archive **out);
static uint64_t rd_varint(const uint8_t *p, size_t len, size_t *pos, int *bad);

/* ---- little-endian helpers ---- */
static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static dg_err
sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
		return DG_ERR_CRYPTO;
	return DG_OK;
}

static size_t
xz_dict(uint64_t rlen)
{
	size_t d = 4096;

	while (d < rlen && d < ((size_t)1 << STREAM_WINDOW_LOG))
		d <<= 1;
	return d;
}

/* ---- delta input: memory or file descriptor ---- */
struct din {
	const uint8_t *mem;
	int fd;
	uint64_t size;
};

static dg_err
din_read(const struct din *d, uint64_t off, void *buf, size_t n)
{
	ssize_t r;
	size_t done = 0;

	if (off > d->size || n > d->size - off)
		return DG_ERR_DELTA_TRUNCATED;
	if (d->mem) {
		memcpy(buf, d->mem + off, n);
		return DG_OK;
	}
	while (done < n) {
		r = pread(d->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return dg_err_from_errno(errno);
		if (r == 0)
			return DG_ERR_DELTA_TRUNCATED;
		done += (size_t)r;
	}
	return DG_OK;
}

/* ---- parsing: header and recipe, every length checked ---- */
static dg_err
parse_delta(const struct din *d, uint64_t max_target, struct header *h, struct item **items_out)
{
	uint8_t hb[HDR_SIZE];
	uint8_t *rc = NULL, *rec = NULL;
	struct item *items = NULL;
	uint32_t clen, rlen, i, k;
	uint64_t pos, sum_out = 0, ssz, tsz;
	size_t got;
	dg_err err;

	*items_out = NULL;
	h->ar = NULL;
	if (d->size < 8)
		return DG_ERR_DELTA_FORMAT;
	if (d->size < HDR_SIZE) {
		if ((err = din_read(d, 0, hb, 8)))
			return err;
		return memcmp(hb, MAGIC, 8) ? DG_ERR_DELTA_FORMAT : DG_ERR_DELTA_TRUNCATED;
	}
	if ((err = din_read(d, 0, hb, HDR_SIZE)))
		return err;
	if (memcmp(hb, MAGIC, 8) != 0)
		return DG_ERR_DELTA_FORMAT;
	h->version = get32(hb + 8);
	if (h->version != FORMAT_VERSION || get32(hb + 12) != 0)
		return DG_ERR_DELTA_VERSION;
	if ((uint32_t)crc32(0, hb, HDR_SIZE - 4) != get32(hb + 108))
		return DG_ERR_DELTA_CORRUPT;
	h->src_size = get64(hb + 16);
	memcpy(h->src_sha, hb + 24, 32);
	h->tgt_size = get64(hb + 56);
	memcpy(h->tgt_sha, hb + 64, 32);
	clen = get32(hb + 96);
	rlen = get32(hb + 100);
	h->nitems = get32(hb + 104);
	if (max_target && h->tgt_size > max_target)
		return DG_ERR_TOOBIG;
	if (h->nitems > MAX_ITEMS || (uint64_t)h->nitems * ITEM_SIZE != rlen)
		return DG_ERR_DELTA_CORRUPT;
	if (clen > d->size - HDR_SIZE)
		return DG_ERR_DELTA_TRUNCATED;
	if (clen > ZSTD_compressBound(rlen) || (rlen > 0 && clen == 0))
		return DG_ERR_DELTA_CORRUPT;
	if (h->nitems == 0 && h->tgt_size != 0)
		return DG_ERR_DELTA_CORRUPT;
	if (rlen > 0) {
		rc = malloc(clen);
		rec = malloc(rlen);
		items = calloc(h->nitems, sizeof(*items));
		if (!rc || !rec || !items) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		if ((err = din_read(d, HDR_SIZE, rc, clen)))
			goto fail;
		got = ZSTD_decompress(rec, rlen, rc, clen);
		if (ZSTD_isError(got) || got != rlen) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
	}
	pos = HDR_SIZE + (uint64_t)clen;
	ssz = h->src_size;
	tsz = h->tgt_size;
	for (i = 0; i < h->nitems; i++) {
		const uint8_t *r = rec + (size_t)i * ITEM_SIZE;
		struct item *it = &items[i];

		it->kind = r[0];
		it->filter = r[1];
		if (it->kind == 0 || it->kind >= KIND_MAX_ || it->filter >= DG_BCJ_MAX_) {
			err = DG_ERR_DELTA_RECIPE;
			goto fail;
		}
		if (r[2] || r[3]) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		it->out_len = get64(r + 4);
		it->src_off = get64(r + 12);
		it->src_len = get64(r + 20);
		for (k = 0; k < NPARTS; k++) {
			struct part *p = &it->p[k];

			p->codec = get32(r + 28 + 20 * k);
			p->clen = get64(r + 32 + 20 * k);
			p->rlen = get64(r + 40 + 20 * k);
			if (p->codec >= CODEC_MAX_) {
				err = DG_ERR_DELTA_RECIPE;
				goto fail;
			}
			if ((p->codec == CODEC_NONE && p->clen != p->rlen) ||
			    (p->codec != CODEC_NONE && (p->clen == 0) != (p->rlen == 0))) {
				err = DG_ERR_DELTA_CORRUPT;
				goto fail;
			}
			if (p->clen > d->size - pos) {
				err = DG_ERR_DELTA_TRUNCATED;
				goto fail;
			}
			p->off = pos;
			pos += p->clen;
		}
		if (it->kind == KIND_ARCHIVE || it->kind == KIND_ARCHIVE_SPLIT) {
			/* only first; it spans both files and redefines the spaces
			 * the following items work in */
			if (i != 0 || it->filter || it->out_len != h->tgt_size || it->src_off ||
			    it->src_len != h->src_size || it->p[1].clen || it->p[2].clen ||
			    it->p[3].clen) {
				err = DG_ERR_DELTA_CORRUPT;
				goto fail;
			}
			if ((err = spec_load(d, &it->p[0], h, it->kind == KIND_ARCHIVE_SPLIT,
					     &h->ar)))
				goto fail;
			ssz = h->ar->es;
			tsz = h->ar->er;
			continue;
		}
		if (it->out_len > tsz - sum_out ||
		    it->src_off > ssz || it->src_len > ssz - it->src_off) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		sum_out += it->out_len;
		for (k = kind_parts[it->kind]; k < NPARTS; k++)
			if (it->p[k].clen || it->p[k].rlen || it->p[k].codec)
				err = DG_ERR_DELTA_CORRUPT;
		switch (it->kind) {
		case KIND_RAW:
			if (it->p[0].rlen != it->out_len || it->p[1].clen || it->p[2].clen ||
			    it->filter || it->src_len)
				err = DG_ERR_DELTA_CORRUPT;
			break;
		case KIND_COPY:
			if (it->src_len != it->out_len || it->p[0].clen || it->p[1].clen ||
			    it->p[2].clen || it->filter)
				err = DG_ERR_DELTA_CORRUPT;
			break;
		case KIND_BSDIFF:
		case KIND_BSDIFF_X64:
		case KIND_BSDIFF_MCU:
			if (it->kind != KIND_BSDIFF && it->filter)
				err = DG_ERR_DELTA_CORRUPT;
			if (it->p[1].rlen > it->out_len ||
			    it->p[1].rlen + it->p[2].rlen != it->out_len ||
			    it->p[0].rlen / MAX_CTRL_RATIO > it->out_len + 1)
				err = DG_ERR_DELTA_CORRUPT;
			break;
		case KIND_ZPATCH:
			if (it->p[0].rlen != it->out_len || it->p[1].clen || it->p[2].clen ||
			    (it->out_len && it->p[0].codec != CODEC_ZSTD))
				err = DG_ERR_DELTA_CORRUPT;
			break;
		}
		if (err)
			goto fail;
	}
	if (sum_out != tsz) {
		err = DG_ERR_DELTA_CORRUPT;
		goto fail;
	}
	if (pos != d->size) {
		err = DG_ERR_DELTA_CORRUPT; /* trailing bytes */
		goto fail;
	}
	free(rc);
	free(rec);
	*items_out = items;
	return DG_OK;
fail:
	free(rc);
	free(rec);
	free(items);
	archive_free(h->ar);
	h->ar = NULL;
	return err;
}

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

/* A window log the decoder of this build takes: zstd's limit is 30 on
 * 32-bit targets (31 on 64-bit); a frame needing more fails there alone. */
static int
zstd_window_log_cap(int wl)
{
	ZSTD_bounds b = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);

	return !ZSTD_isError(b.error) && wl > b.upperBound ? b.upperBound : wl;
}

static int
window_log_max(size_t mem_limit)
{
	int l = 10;

	while (l < 31 && ((size_t)1 << (l + 1)) <= mem_limit / 4)
		l++;
	return l;
}

static dg_err
zstd_err(size_t r)
{
	if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge ||
	    ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
		return DG_ERR_DELTA_MEMLIMIT;
	return DG_ERR_DELTA_CORRUPT;
}

static void
preader_close(struct preader *r)
{
	ZSTD_freeDCtx(r->z);
	if (r->xinit)
		lzma_end(&r->x);
	free(r->in);
	free(r->ob);
	memset(r, 0, sizeof(*r));
}

/* stable: decode straight into one caller buffer (no window allocation). */
static dg_err
preader_open(struct preader *r, const struct din *d, const struct part *p, size_t mem_limit, int stable)
{
	lzma_options_lzma opt;
	lzma_filter f[2];

	memset(r, 0, sizeof(*r));
	r->d = d;
	r->p = p;
	r->in_off = p->off;
	r->in_left = p->clen;
	r->out_left = p->rlen;
	r->in = malloc(IOBUF);
	r->ob = stable ? NULL : malloc(IOBUF);
	if (!r->in || (!stable && !r->ob))
		goto nomem;
	if (p->codec == CODEC_ZSTD) {
		r->z = ZSTD_createDCtx();
		if (!r->z)
			goto nomem;
		if (ZSTD_isError(ZSTD_DCtx_setParameter(r->z, ZSTD_d_windowLogMax,
							zstd_window_log_cap(stable ? 31 : window_log_max(mem_limit)))))
			goto nomem;
		if (stable && ZSTD_isError(ZSTD_DCtx_setParameter(r->z, ZSTD_d_stableOutBuffer, 1)))
			goto nomem;
	} else if (p->codec == CODEC_XZ) {
		if (lzma_lzma_preset(&opt, 6))
			goto nomem;
		opt.dict_size = (uint32_t)xz_dict(p->rlen);
		f[0].id = LZMA_FILTER_LZMA2;
		f[0].options = &opt;
		f[1].id = LZMA_VLI_UNKNOWN;
		f[1].options = NULL;
		if (lzma_raw_decoder(&r->x, f) != LZMA_OK)
			goto nomem;
		r->xinit = 1;
	}
	return DG_OK;
nomem:
	preader_close(r);
	return DG_ERR_NOMEM;
}

static dg_err
fill_in(struct preader *r)
{
	size_t n;
	dg_err err;

	if (r->in_pos < r->in_len || r->in_left == 0)
		return DG_OK;
	n = r->in_left < IOBUF ? (size_t)r->in_left : IOBUF;
	if ((err = din_read(r->d, r->in_off, r->in, n)))
		return err;
	r->in_off += n;
	r->in_left -= n;
	r->in_pos = 0;
	r->in_len = n;
	return DG_OK;
}

/* Decode up to cap bytes into dst; *got 0 only at the end of the part. */
static dg_err
preader_decode(struct preader *r, uint8_t *dst, size_t cap, size_t *got)
{
	size_t ret;
	lzma_ret lr;
	dg_err err;

	*got = 0;
	if (r->out_left == 0)
		return DG_OK;
	if (cap > r->out_left)
		cap = (size_t)r->out_left;
	for (;;) {
		if ((err = fill_in(r)))
			return err;
		if (r->p->codec == CODEC_NONE) {
			size_t n = r->in_len - r->in_pos < cap ? r->in_len - r->in_pos : cap;

			memcpy(dst, r->in + r->in_pos, n);
			r->in_pos += n;
			*got = n;
		} else if (r->p->codec == CODEC_ZSTD) {
			ZSTD_inBuffer in = { r->in, r->in_len, r->in_pos };
			ZSTD_outBuffer out = { dst, cap, 0 };

			if (r->done)
				return DG_ERR_DELTA_CORRUPT; /* frame ended early */
			ret = ZSTD_decompressStream(r->z, &out, &in);
			if (ZSTD_isError(ret))
				return zstd_err(ret);
			r->in_pos = in.pos;
			if (ret == 0)
				r->done = 1;
			*got = out.pos;
			if (out.pos == 0 && in.pos == in.size && r->in_left == 0 && !r->done)
				return DG_ERR_DELTA_TRUNCATED;
		} else {
			r->x.next_in = r->in + r->in_pos;
			r->x.avail_in = r->in_len - r->in_pos;
			r->x.next_out = dst;
			r->x.avail_out = cap;
			lr = lzma_code(&r->x, LZMA_RUN);
			r->in_pos = r->in_len - r->x.avail_in;
			*got = cap - r->x.avail_out;
			if (lr == LZMA_STREAM_END)
				r->done = 1;
			else if (lr == LZMA_MEM_ERROR || lr == LZMA_MEMLIMIT_ERROR)
				return DG_ERR_DELTA_MEMLIMIT;
			else if (lr != LZMA_OK)
				return DG_ERR_DELTA_CORRUPT;
			if (*got == 0 && r->done)
				return DG_ERR_DELTA_CORRUPT;
			if (*got == 0 && r->x.avail_in == 0 && r->in_left == 0)
				return DG_ERR_DELTA_TRUNCATED;
		}
		if (*got) {
			r->out_left -= *got;
			return DG_OK;
		}
	}
}

/* Read exactly n decoded bytes. */
static dg_err
preader_read(struct preader *r, uint8_t *dst, size_t n)
{
	size_t k;
	dg_err err;

	if (n > r->out_left + (r->ob_len - r->ob_pos))
		return DG_ERR_DELTA_CORRUPT;
	while (n > 0) {
		if (r->ob_pos == r->ob_len && n >= IOBUF) {
			/* a long read: decode straight into the destination */
			if ((err = preader_decode(r, dst, n, &k)))
				return err;
			if (k == 0)
				return DG_ERR_DELTA_CORRUPT;
			dst += k;
			n -= k;
			continue;
		}
		if (r->ob_pos == r->ob_len) {
			if ((err = preader_decode(r, r->ob, IOBUF, &r->ob_len)))
				return err;
			r->ob_pos = 0;
			if (r->ob_len == 0)
				return DG_ERR_DELTA_CORRUPT;
		}
		k = r->ob_len - r->ob_pos < n ? r->ob_len - r->ob_pos : n;
		memcpy(dst, r->ob + r->ob_pos, k);
		r->ob_pos += k;
		dst += k;
		n -= k;
	}
	return DG_OK;
}

static dg_err
preader_varint(struct preader *r, uint64_t *v)
{
	uint8_t b;
	unsigned shift = 0;
	dg_err err;

	*v = 0;
	do {
		if (shift > 63)
			return DG_ERR_DELTA_CORRUPT;
		if ((err = preader_read(r, &b, 1)))
			return err;
		*v |= (uint64_t)(b & 0x7F) << shift;
		shift += 7;
	} while (b & 0x80);
	return DG_OK;
}

/* All decoded, and the compressed part fully consumed: nothing trails. */
static dg_err
preader_finish(struct preader *r)
{
	uint8_t tmp[16];
	size_t got;
	dg_err err;

	if (r->ob_pos != r->ob_len || r->out_left != 0)
		return DG_ERR_DELTA_CORRUPT;
	if (r->p->codec == CODEC_ZSTD && r->p->rlen && !r->done) {
		/* the frame's last block may still be pending */
		ZSTD_inBuffer in;
		ZSTD_outBuffer out = { tmp, sizeof(tmp), 0 };
		size_t ret;

		for (;;) {
			if ((err = fill_in(r)))
				return err;
			in = (ZSTD_inBuffer){ r->in, r->in_len, r->in_pos };
			ret = ZSTD_decompressStream(r->z, &out, &in);
			if (ZSTD_isError(ret))
				return zstd_err(ret);
			r->in_pos = in.pos;
			if (out.pos)
				return DG_ERR_DELTA_CORRUPT;
			if (ret == 0)
				break;
			if (in.pos == in.size && r->in_left == 0)
				return DG_ERR_DELTA_TRUNCATED;
		}
	}
	if (r->p->codec == CODEC_XZ && r->p->rlen && !r->done) {
		r->x.next_in = r->in + r->in_pos;
		r->x.avail_in = r->in_len - r->in_pos;
		r->x.next_out = tmp;
		r->x.avail_out = sizeof(tmp);
		if (lzma_code(&r->x, LZMA_RUN) != LZMA_STREAM_END || r->x.avail_out != sizeof(tmp))
			return DG_ERR_DELTA_CORRUPT;
		r->in_pos = r->in_len - r->x.avail_in;
	}
	(void)got;
	if (r->in_pos != r->in_len || r->in_left != 0)
		return DG_ERR_DELTA_CORRUPT;
	return DG_OK;
}

/* ---- archive spec (part 0 of a KIND_ARCHIVE item), all varints:
 *   ns, then per source segment: gz, clen[, rlen if gz]
 *   nt, then per target segment: gz, rlen[, clen, level, mem_level,
 *       strategy, window_bits, hdrlen, hdr bytes if gz]
 * KIND_ARCHIVE_SPLIT: each gz segment then lists its restart points:
 *   n, then n x (bit - previous bit, raw - previous raw, and clean - raw
 *   for a source segment, the primed bits for a target one) ---- */

/* Restart points of gz segment g; rlen and clen must be set. Checked so
 * that every chunk is non-empty and inside the member, and so that a
 * delta cannot make the chunks cost much more than the member itself:
 * at most one point per 64 KiB, no dirty stretch past the next point. */
static dg_err
splits_load(const uint8_t *buf, size_t len, size_t *pos, struct aseg *g, int target)
{
	uint64_t n, bit = 0, raw = 0, clean = 0, v[3];
	int bad = 0;

	n = rd_varint(buf, len, pos, &bad);
	if (bad || n > (len - *pos) / 3 || n > g->rlen / DG_GZIP_MIN_EVERY)
		return DG_ERR_DELTA_CORRUPT;
	if (n == 0)
		return DG_OK;
	if (!(g->sp = calloc((size_t)n, sizeof(*g->sp))))
		return DG_ERR_NOMEM;
	g->nsp = (size_t)n;
	for (size_t i = 0; i < g->nsp; i++) {
		dg_gzip_split *s = &g->sp[i];

		for (int k = 0; k < 3; k++)
			v[k] = rd_varint(buf, len, pos, &bad);
		if (bad || v[0] == 0 || v[1] == 0 || v[0] > g->clen * 8 - bit ||
		    v[1] >= g->rlen - raw || raw + v[1] <= clean)
			return DG_ERR_DELTA_CORRUPT;
		bit += v[0];
		raw += v[1];
		s->bit = bit;
		s->raw = raw;
		if (target) {
			/* inside the deflate data, behind the header */
			if (v[2] >> (bit % 8) || bit / 8 >= g->clen - g->hdrlen - 8)
				return DG_ERR_DELTA_CORRUPT;
			s->bits = (uint8_t)v[2];
		} else {
			if (v[2] > DG_GZIP_MAX_DIRTY || v[2] > g->rlen - raw)
				return DG_ERR_DELTA_CORRUPT;
			s->clean = clean = raw + v[2];
		}
	}
	return DG_OK;
}

static dg_err
spec_load(const struct din *d, const struct part *p, const struct header *h, int split,
	  struct archive **out)
{
	struct preader r;
	struct archive *ar = NULL;
	uint8_t *buf = NULL;
	size_t pos = 0, len = (size_t)p->rlen, i;
	uint64_t v[8], ssum = 0, tsum = 0;
	int bad = 0;
	dg_err err;

	*out = NULL;
	if (p->rlen == 0 || p->rlen > SPEC_MAX)
		return DG_ERR_DELTA_CORRUPT;
	if ((err = preader_open(&r, d, p, DG_DELTA_DEFAULT_MEM_LIMIT, 0)))
		return err;
	buf = malloc(len);
	ar = calloc(1, sizeof(*ar));
	if (!buf || !ar) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((err = preader_read(&r, buf, len)) || (err = preader_finish(&r)))
		goto fail;
	err = DG_ERR_DELTA_CORRUPT;
	ar->ns = (size_t)rd_varint(buf, len, &pos, &bad);
	if (bad || ar->ns == 0 || ar->ns > SEGS_MAX || ar->ns > len)
		goto fail;
	if (!(ar->s = calloc(ar->ns, sizeof(*ar->s))))
		goto nomem;
	for (i = 0; i < ar->ns; i++) {
		struct aseg *g = &ar->s[i];

		v[0] = rd_varint(buf, len, &pos, &bad);
		v[1] = rd_varint(buf, len, &pos, &bad);
		v[2] = v[0] == 1 ? rd_varint(buf, len, &pos, &bad) : v[1];
		if (bad || v[0] > 1 || v[1] > h->src_size - ssum || v[2] > (1ull << 42) ||
		    ar->es + v[2] < ar->es)
			goto fail;
		g->gz = (uint8_t)v[0];
		g->clen = v[1];
		g->rlen = v[2];
		if (split && g->gz && (g->clen < 18 || (err = splits_load(buf, len, &pos, g, 0)))) {
			err = err ? err : DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		err = DG_ERR_DELTA_CORRUPT;
		ssum += g->clen;
		ar->es += g->rlen;
	}
	ar->nt = (size_t)rd_varint(buf, len, &pos, &bad);
	if (bad || ssum != h->src_size || ar->nt == 0 || ar->nt > SEGS_MAX || ar->nt > len)
		goto fail;
	if (!(ar->t = calloc(ar->nt, sizeof(*ar->t))))
		goto nomem;
	for (i = 0; i < ar->nt; i++) {
		struct aseg *g = &ar->t[i];

		v[0] = rd_varint(buf, len, &pos, &bad);
		v[1] = rd_varint(buf, len, &pos, &bad);
		if (bad || v[0] > 1 || v[1] > (1ull << 42))
			goto fail;
		g->gz = (uint8_t)v[0];
		g->rlen = g->clen = v[1];
		if (g->gz) {
			for (int k = 2; k < 8; k++)
				v[k] = rd_varint(buf, len, &pos, &bad);
			if (bad || v[2] > (1ull << 42) || v[3] > 255 || v[4] > 255 || v[5] > 255 ||
			    v[6] > 255 || v[7] < 10 || v[7] > len - pos)
				goto fail;
			g->clen = v[2];
			g->p.level = (uint8_t)v[3];
			g->p.mem_level = (uint8_t)v[4];
			g->p.strategy = (uint8_t)v[5];
			g->p.window_bits = (uint8_t)v[6];
			if (dg_gzip_params_check(&g->p))
				goto fail;
			g->hdrlen = (size_t)v[7];
			if (!(g->hdr = malloc(g->hdrlen)))
				goto nomem;
			memcpy(g->hdr, buf + pos, g->hdrlen);
			pos += g->hdrlen;
			if (split && (g->clen < g->hdrlen + 8 ||
				      (err = splits_load(buf, len, &pos, g, 1)))) {
				err = err ? err : DG_ERR_DELTA_CORRUPT;
				goto fail;
			}
			err = DG_ERR_DELTA_CORRUPT;
		}
		if (g->clen > h->tgt_size - tsum || ar->er + g->rlen < ar->er)
			goto fail;
		tsum += g->clen;
		ar->er += g->rlen;
	}
	if (tsum != h->tgt_size || pos != len)
		goto fail;
	free(buf);
	preader_close(&r);
	*out = ar;
	return DG_OK;
nomem:
	err = DG_ERR_NOMEM;
fail:
	free(buf);
	preader_close(&r);
	archive_free(ar);
	return err;
}

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
	int out_trim;            /* out is a mapping trim_maps drops */
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
	/* file-backed mappings whose pages trim_maps drops */
	struct {
		void *p;
		size_t len;
	} maps[MAX_TRIM];
	int nmaps;
};

/* Register a mapping of a file (shared, or private and never written)
 * for trim_maps; never anonymous memory, whose dropped pages read back
 * as zeros. */
static void
trim_add(struct applier *a, void *p, size_t len)
{
	if (p && len && a->nmaps < MAX_TRIM) {
		a->maps[a->nmaps].p = p;
		a->maps[a->nmaps].len = len;
		a->nmaps++;
	}
}

static void
trim_del(struct applier *a, const void *p)
{
	for (int i = 0; i < a->nmaps; i++)
		if (a->maps[i].p == p) {
			a->maps[i] = a->maps[--a->nmaps];
			return;
		}
}

/* Streaming in bounded memory: drop the registered mappings' pages from
 * the process. The data stays in the file (dirty shared pages are written
 * back, not discarded); a page touched again is a minor fault from the
 * page cache, which the kernel may reclaim, unlike resident pages. */
static void
trim_maps(struct applier *a)
{
	for (int i = 0; i < a->nmaps; i++)
		(void)madvise(a->maps[i].p, a->maps[i].len, MADV_DONTNEED);
}

struct pool;
static void pool_advance(struct pool *p, uint64_t wm);
static int pool_stopped(struct pool *p);
static dg_err pool_hash_done(struct pool *p);

/* Progress shown to the caller, at most the target's size. An archive's
 * first half is decoding E(T), the second the target's bytes made final
 * (folded and hashed, in order). */
static uint64_t
shown_progress(const struct applier *a)
{
	uint64_t t = a->h->tgt_size, d;

	if (!a->et_len)
		return a->done < t ? a->done : t;
	d = a->done < a->et_len ? a->done : a->et_len;
	return (uint64_t)((double)d / (double)a->et_len * (double)(t / 2) +
			  (double)a->folded / (double)(t ? t : 1) * (double)(t - t / 2));
}
static void drop_pages(const void *p, size_t len);

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Fault in a writable range at once (Linux 5.14; else nothing happens) */
static int
madvise_populate(void *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)p & ~(pg - 1);

	return madvise((void *)b, (uintptr_t)p + len - b, MADV_POPULATE_WRITE);
}

/* E(T) bytes that are final: the finished items', and the current one's
 * written so far unless a filter still has to run over them. */
static uint64_t
final_bytes(const struct applier *a)
{
	if (a->wm_hold || a->done < a->wm_base)
		return a->wm_base;
	return a->done < a->wm_end ? a->done : a->wm_end;
}

static dg_err
check_cancel(struct applier *a)
{
	if (a->pool) {
		dg_err e;

		/* a chunk failed: stop decoding (pool_finish reports why) */
		if (pool_stopped(a->pool))
			return DG_ERR_CANCELED;
		pool_advance(a->pool, final_bytes(a));
		/* hash what the threads have finished meanwhile */
		if ((e = pool_hash_done(a->pool)))
			return e;
	}
	if (a->o && a->o->cancel && atomic_load(a->o->cancel))
		return DG_ERR_CANCELED;
	if (a->o && a->o->progress)
		a->o->progress(a->o->progress_arg, shown_progress(a), a->h->tgt_size);
	trim_maps(a);
	if (a->pool && a->populate && a->done < a->populate) {
		/* the next piece of E(T) in one call rather than a fault a page */
		uint64_t n = a->populate - a->done < TRIM_EVERY ? a->populate - a->done : TRIM_EVERY;

		(void)madvise_populate(a->out + a->done, (size_t)n);
	}
	a->next_point = a->done + TRIM_EVERY;
	return DG_OK;
}

/* check_cancel once per TRIM_EVERY bytes of output */
static dg_err
progress_point(struct applier *a)
{
	return a->done >= a->next_point ? check_cancel(a) : DG_OK;
}

/* SHA-256 of a large mapped file in pieces, trimming between them. */
static dg_err
sha256_trim(struct applier *a, const uint8_t *data, size_t len, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 32;
	dg_err err = DG_OK;

	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		err = DG_ERR_CRYPTO;
		goto fail;
	}
	do {
		size_t k = len < TRIM_EVERY ? len : TRIM_EVERY;

		if (EVP_DigestUpdate(c, data, k) != 1) {
			err = DG_ERR_CRYPTO;
			goto fail;
		}
		data += k;
		len -= k;
		trim_maps(a);
	} while (len);
	if (EVP_DigestFinal_ex(c, out, &n) != 1)
		err = DG_ERR_CRYPTO;
fail:
	EVP_MD_CTX_free(c);
	return err;
}

/* A filtered copy of the source region: heap when small, else an unlinked
 * temporary file mapped next to the target, so that a large filtered
 * source costs page cache rather than the working-memory budget. */
struct scratch {
	uint8_t *p;
	size_t len;
	int mapped;
	int fd;                 /* the mapped file, for pwrite; else -1 */
};

static dg_err
scratch_new(struct applier *a, size_t len, struct scratch *s)
{
	char *path = NULL;
	int fd = -1, r;
	dg_err err;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->len = len;
	if (len == 0)
		return DG_OK;
	if (len <= a->mem_limit / 2) {
		s->p = malloc(len);
		return s->p ? DG_OK : DG_ERR_NOMEM;
	}
	if (!a->scratch_dir)
		return DG_ERR_DELTA_MEMLIMIT;
	if (asprintf(&path, "%s/.dgscratch.XXXXXX", a->scratch_dir) < 0)
		return DG_ERR_NOMEM;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	unlink(path);
	if ((r = posix_fallocate(fd, 0, (off_t)len)) != 0) {
		err = dg_err_from_errno(r);
		goto fail;
	}
	s->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->p == MAP_FAILED) {
		s->p = NULL;
		err = dg_err_from_errno(errno);
		goto fail;
	}
	s->mapped = 1;
	s->fd = fd;
	trim_add(a, s->p, len);
	free(path);
	return DG_OK;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return err;
}

static void
scratch_free(struct applier *a, struct scratch *s)
{
	if (s->mapped) {
		trim_del(a, s->p);
		munmap(s->p, s->len);
	}
	else
		free(s->p);
	if (s->mapped && s->fd >= 0)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static dg_err
apply_bsdiff(struct applier *a, const struct item *it, const uint8_t *src, uint8_t *out)
{
	struct preader ctrl, diff, extra;
	uint64_t add, copy, seek, opos = 0, k, n;
	int64_t spos = 0;
	dg_err err;

	memset(&ctrl, 0, sizeof(ctrl));
	memset(&diff, 0, sizeof(diff));
	memset(&extra, 0, sizeof(extra));
	if ((err = preader_open(&ctrl, a->d, &it->p[0], a->mem_limit, 0)) ||
	    (err = preader_open(&diff, a->d, &it->p[1], a->mem_limit, 0)) ||
	    (err = preader_open(&extra, a->d, &it->p[2], a->mem_limit, 0)))
		goto fail;
	while (opos < it->out_len) {
		if ((err = preader_varint(&ctrl, &add)) || (err = preader_varint(&ctrl, &copy)) ||
		    (err = preader_varint(&ctrl, &seek)))
			goto fail;
		if (add > it->out_len - opos || copy > it->out_len - opos - add) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		if (spos < 0 || (uint64_t)spos > it->src_len || add > it->src_len - (uint64_t)spos) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		/* in pieces: a step of an image pair can span the whole file */
		while (add > 0) {
			n = add < TRIM_EVERY ? add : TRIM_EVERY;
			if ((err = preader_read(&diff, out + opos, (size_t)n)))
				goto fail;
			for (k = 0; k < n; k++)
				out[opos + k] = (uint8_t)(out[opos + k] + src[spos + (int64_t)k]);
			opos += n;
			spos += (int64_t)n;
			add -= n;
			a->done += n;
			if ((err = progress_point(a)))
				goto fail;
		}
		while (copy > 0) {
			n = copy < TRIM_EVERY ? copy : TRIM_EVERY;
			if ((err = preader_read(&extra, out + opos, (size_t)n)))
				goto fail;
			opos += n;
			copy -= n;
			a->done += n;
			if ((err = progress_point(a)))
				goto fail;
		}
		/* zigzag-decoded seek */
		n = (seek >> 1) ^ (0 - (seek & 1));
		spos += (int64_t)n;
	}
	if ((err = preader_finish(&ctrl)) || (err = preader_finish(&diff)) ||
	    (err = preader_finish(&extra)))
		goto fail;
fail:
	preader_close(&ctrl);
	preader_close(&diff);
	preader_close(&extra);
	return err;
}

/* RAW and ZPATCH: one zstd frame decoded straight into the output. */
static dg_err
apply_frame(struct applier *a, const struct item *it, const uint8_t *prefix, uint8_t *out)
{
	struct preader r;
	ZSTD_outBuffer ob = { out, (size_t)it->out_len, 0 };
	uint64_t base;
	size_t ret = 1;
	dg_err err;

	if ((err = preader_open(&r, a->d, &it->p[0], a->mem_limit, 1)))
		return err;
	if (it->p[0].codec != CODEC_ZSTD) {
		/* stored or xz raw item: the generic reader */
		free(r.ob);
		r.ob = malloc(IOBUF);
		if (!r.ob) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		for (uint64_t o = 0; o < it->out_len;) {
			size_t k = it->out_len - o < TRIM_EVERY ? (size_t)(it->out_len - o) : TRIM_EVERY;

			if ((err = preader_read(&r, out + o, k)))
				goto fail;
			o += k;
			a->done += k;
			if ((err = progress_point(a)))
				goto fail;
		}
		err = preader_finish(&r);
		goto fail;
	}
	if (prefix && it->src_len &&
	    ZSTD_isError(ZSTD_DCtx_refPrefix(r.z, prefix, (size_t)it->src_len))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	base = a->done;
	for (;;) {
		ZSTD_inBuffer in;

		if ((err = fill_in(&r)))
			goto fail;
		in = (ZSTD_inBuffer){ r.in, r.in_len - r.in_pos > FEED ? r.in_pos + FEED : r.in_len,
				      r.in_pos };
		ret = ZSTD_decompressStream(r.z, &ob, &in);
		if (ZSTD_isError(ret)) {
			err = zstd_err(ret);
			goto fail;
		}
		r.in_pos = in.pos;
		if (ret == 0)
			break;
		if (in.pos == r.in_len && r.in_left == 0) {
			err = DG_ERR_DELTA_TRUNCATED;
			goto fail;
		}
		a->done = base + ob.pos;
		if ((err = progress_point(a)))
			goto fail;
	}
	if (ob.pos != ob.size || r.in_pos != r.in_len || r.in_left) {
		err = DG_ERR_DELTA_CORRUPT;
		goto fail;
	}
	a->done = base + it->out_len;
fail:
	preader_close(&r);
	return err;
}

/* ---- x86-64 prediction: the map is a first-pass control stream ---- */
struct block {
	uint64_t s0;
	int64_t shift;
};

#ifndef XMAP_MIN_BLOCK
#define XMAP_MIN_BLOCK 128
#endif

struct xmap {
	struct block *b;
	size_t n;
};

static int
block_cmp(const void *x, const void *y)
{
	const struct block *a = x, *b = y;

	if (a->s0 != b->s0)
		return a->s0 < b->s0 ? -1 : 1;
	return a->shift < b->shift ? -1 : a->shift > b->shift;
}

static int64_t
xmap_shift(void *ctx, uint64_t pos)
{
	const struct xmap *m = ctx;
	size_t lo = 0, hi = m->n;

	/* the last block starting at or before pos */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->b[mid].s0 <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? m->b[lo - 1].shift : 0;
}

static uint64_t
rd_varint(const uint8_t *p, size_t len, size_t *pos, int *bad)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		if (*pos >= len || shift > 63) {
			*bad = 1;
			return 0;
		}
		b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7F) << shift;
		shift += 7;
	} while (b & 0x80);
	return v;
}

/* Blocks (source offset, target minus source) from a control stream over a
 * source of n bytes. DG_ERR_DELTA_CORRUPT when it leaves the source. */
static dg_err
xmap_build(const uint8_t *ctrl, size_t len, uint64_t n, struct xmap *m)
{
	size_t pos = 0, cap = len / 3 + 1;
	uint64_t add, copy, seek, tpos = 0;
	int64_t spos = 0;
	int bad = 0;

	m->n = 0;
	m->b = malloc(cap * sizeof(*m->b));
	if (!m->b)
		return DG_ERR_NOMEM;
	while (pos < len) {
		add = rd_varint(ctrl, len, &pos, &bad);
		copy = rd_varint(ctrl, len, &pos, &bad);
		seek = rd_varint(ctrl, len, &pos, &bad);
		if (bad || spos < 0 || (uint64_t)spos > n || add > n - (uint64_t)spos ||
		    add > (1ull << 40) || copy > (1ull << 40) || m->n >= cap) {
			free(m->b);
			m->b = NULL;
			return DG_ERR_DELTA_CORRUPT;
		}
		/* short matches are as often chance as alignment */
		if (add >= XMAP_MIN_BLOCK)
			m->b[m->n++] = (struct block){ (uint64_t)spos, (int64_t)tpos - spos };
		tpos += add + copy;
		spos += (int64_t)add + (int64_t)((seek >> 1) ^ (0 - (seek & 1)));
	}
	qsort(m->b, m->n, sizeof(*m->b), block_cmp);
	return DG_OK;
}

static dg_err
apply_predict(struct applier *a, const struct item *it, uint8_t *s)
{
	struct preader r;
	struct xmap m = { NULL, 0 };
	uint8_t *map = NULL;
	dg_mcu_map mm;
	size_t used = 0;
	dg_err err;

	if (it->p[3].rlen > a->mem_limit / 4)
		return DG_ERR_DELTA_MEMLIMIT;
	if ((err = preader_open(&r, a->d, &it->p[3], a->mem_limit, 0)))
		return err;
	map = malloc(it->p[3].rlen ? (size_t)it->p[3].rlen : 1);
	if (!map) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((err = preader_read(&r, map, (size_t)it->p[3].rlen)) || (err = preader_finish(&r)))
		goto fail;
	if (it->kind == KIND_BSDIFF_MCU) {
		/* the address map, then the first pass's control stream */
		if (dg_mcu_map_read(map, (size_t)it->p[3].rlen, it->src_len, &mm, &used) != 0) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
	}
	if ((err = xmap_build(map + used, (size_t)it->p[3].rlen - used, it->src_len, &m)))
		goto fail;
	if (it->kind == KIND_BSDIFF_MCU)
		dg_mcu_predict(s, (size_t)it->src_len, &mm, xmap_shift, &m);
	else
		dg_bcj_x64_predict(s, (size_t)it->src_len, xmap_shift, &m);
fail:
	free(m.b);
	free(map);
	preader_close(&r);
	return err;
}

static dg_err
apply_items(struct applier *a, const struct item *items, uint32_t nitems)
{
	uint64_t opos = 0;
	uint32_t i;
	struct scratch s;
	const uint8_t *src;
	dg_err err = DG_OK;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < nitems; i++) {
		const struct item *it = &items[i];
		uint8_t *out = a->out + opos;

		a->wm_base = opos;
		a->wm_end = opos + it->out_len;
		a->wm_hold = it->filter != DG_BCJ_NONE;
		if ((err = check_cancel(a)))
			return err;
		src = a->src + it->src_off;
		if (it->filter != DG_BCJ_NONE && (it->kind == KIND_BSDIFF || it->kind == KIND_ZPATCH)) {
			if ((err = scratch_new(a, (size_t)it->src_len, &s)))
				return err;
			if (it->src_len) {
				memcpy(s.p, src, (size_t)it->src_len);
				dg_bcj_encode(it->filter, s.p, (size_t)it->src_len);
			}
			src = s.p;
		}
		switch (it->kind) {
		case KIND_RAW:
			err = apply_frame(a, it, NULL, out);
			break;
		case KIND_COPY:
			for (uint64_t o = 0; o < it->out_len && !err;) {
				size_t k = it->out_len - o < TRIM_EVERY ? (size_t)(it->out_len - o)
									 : TRIM_EVERY;

				memcpy(out + o, src + o, k);
				o += k;
				a->done += k;
				err = progress_point(a);
			}
			break;
		case KIND_BSDIFF:
			err = apply_bsdiff(a, it, src, out);
			break;
		case KIND_ZPATCH:
			err = apply_frame(a, it, src, out);
			break;
		case KIND_BSDIFF_X64:
		case KIND_BSDIFF_MCU:
			if ((err = scratch_new(a, (size_t)it->src_len, &s)))
				return err;
			if (it->src_len)
				memcpy(s.p, src, (size_t)it->src_len);
			if ((err = apply_predict(a, it, s.p)) == DG_OK)
				err = apply_bsdiff(a, it, s.p, out);
			break;
		default:
			err = DG_ERR_DELTA_RECIPE;
			break;
		}
		scratch_free(a, &s);
		if (err)
			return err;
		if (it->filter != DG_BCJ_NONE)
			dg_bcj_decode(it->filter, out, (size_t)it->out_len);
		opos += it->out_len;
		a->wm_base = a->wm_end = opos;
		a->wm_hold = 0;
	}
	return check_cancel(a);
}

/* Bounded writer into a buffer, for inflate and recompression callbacks. */
struct bw {
	uint8_t *p;
	uint64_t pos, cap;
	struct applier *a; /* trimmed every TRIM_EVERY bytes, if set */
	uint64_t mark;
};

static dg_err
bw_write(void *arg, const void *data, size_t len)
{
	struct bw *b = arg;

	if (len > b->cap - b->pos)
		return DG_ERR_DELTA_CORRUPT;
	memcpy(b->p + b->pos, data, len);
	b->pos += len;
	if (b->a && b->pos >= b->mark) {
		trim_maps(b->a);
		b->mark = b->pos + TRIM_EVERY;
	}
	return DG_OK;
}

/* Expand the source per the spec into dst (es bytes). */
static dg_err
archive_expand(struct applier *a, const struct archive *ar, const uint8_t *src, uint8_t *dst)
{
	uint64_t in = 0, out = 0, rl;
	struct bw b;
	dg_err err;

	for (size_t i = 0; i < ar->ns; i++) {
		const struct aseg *g = &ar->s[i];

		if (!g->gz) {
			memcpy(dst + out, src + in, (size_t)g->clen);
		} else {
			b = (struct bw){ dst + out, 0, g->rlen, a, TRIM_EVERY };
			err = dg_gzip_inflate(src + in, (size_t)g->clen, bw_write, &b, &rl);
			if (err || rl != g->rlen)
				return DG_ERR_DELTA_CORRUPT;
		}
		in += g->clen;
		out += g->rlen;
	}
	return DG_OK;
}

unsigned
dg_delta_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

/* ---- an archive's expansion and folding, in chunks, in threads ----
 *
 * Expanding: a plain source segment is copied, a gzip one inflated whole,
 * or in chunks from its restart points (docs/delta-format.md). Folding:
 * a plain target segment is copied, a gzip one deflated whole or in
 * chunks. Fold tasks wait until the E(T) bytes they read are final
 * (items 1.. write E(T) front to back on the calling thread meanwhile),
 * and are taken in order. Workers never call back into the caller
 * (progress runs on the applying thread) and drop the pages of the
 * mapped files they went through themselves. */
enum { PT_COPY, PT_INFLATE, PT_INFLATE_PART, PT_DEFLATE, PT_DEFLATE_PART };

struct ptask {
	uint8_t kind;
	uint8_t trim_in, trim_out;  /* mapped files: drop the pages afterwards */
	const struct aseg *g;
	size_t part;                /* *_PART: chunk 0..g->nsp */
	const uint8_t *in;          /* segment's bytes: source file / E(T) */
	uint8_t *out;               /* segment's place: E(S) / target file */
	int out_fd;                 /* expanding: E(S)'s file (pwrite), or -1 */
	uint64_t out_off;           /* the segment's offset in it */
	uint64_t need;              /* E(T) bytes final before it may start */
	uint32_t crc;               /* *_PART: CRC-32 of the chunk's raw bytes */
	uint64_t crc_len;
	uint8_t done;               /* under the pool's mutex */
};

struct pool {
	struct applier *a;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ptask *t;
	const size_t *order;        /* the order tasks are taken in; NULL: as listed */
	size_t n, next;
	unsigned running;           /* workers not yet returned */
	uint64_t wm;                /* E(T) bytes final */
	dg_err err;                 /* the first failure; stops the rest */
	atomic_int stop;
	pthread_t tid[DG_DELTA_MAX_THREADS];
	unsigned nt;
	/* folding: the target hashed (and its writeback started) in order,
	 * each task's bytes once it is done, on the applying thread */
	EVP_MD_CTX *sha;
	size_t hashed;              /* tasks hashed */
	size_t seg_first;           /* first task of the segment being hashed */
};

static void
drop_pages(const void *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)p & ~(pg - 1);

	if (len)
		(void)madvise((void *)b, (uintptr_t)p + len - b, MADV_DONTNEED);
}

static dg_err
task_cancel(const struct applier *a, const struct pool *p)
{
	if (p && atomic_load(&p->stop))
		return DG_ERR_CANCELED;
	if (a->o && a->o->cancel && atomic_load(a->o->cancel))
		return DG_ERR_CANCELED;
	return DG_OK;
}

/* a gzip member of the source: its deflate data */
static dg_err
member_deflate(const uint8_t *gz, uint64_t clen, const uint8_t **def, size_t *dlen)
{
	dg_gzip_header h;

	if (dg_gzip_parse_header(gz, (size_t)clen, &h) || clen < h.len + 8)
		return DG_ERR_DELTA_CORRUPT;
	*def = gz + h.len;
	*dlen = (size_t)(clen - h.len - 8);
	return DG_OK;
}

/* Expanded bytes into E(S): written to its file, which keeps them out of
 * the process (and costs no page faults), or copied when it is memory. */
struct swriter {
	const struct ptask *t;
	uint64_t pos, end;          /* within the segment */
	uint32_t crc;
	int nocrc;
};

static dg_err
swrite(void *arg, const void *data, size_t len)
{
	struct swriter *w = arg;
	const uint8_t *p = data;

	if (len > w->end - w->pos)
		return DG_ERR_DELTA_CORRUPT;
	if (!w->nocrc)
		w->crc = (uint32_t)crc32_z(w->crc, data, len);
	if (w->t->out_fd < 0) {
		memcpy(w->t->out + w->pos, data, len);
		w->pos += len;
		return DG_OK;
	}
	while (len) {
		ssize_t r = pwrite(w->t->out_fd, p, len, (off_t)(w->t->out_off + w->pos));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? dg_err_from_errno(errno) : DG_ERR_IO;
		p += r;
		len -= (size_t)r;
		w->pos += (uint64_t)r;
	}
	return DG_OK;
}

/* A thread's reusable memory: zlib's, and a buffer for deflated chunks. */
struct wctx {
	dg_gzip_ctx *z;
	uint8_t *buf;
	size_t cap;
};

static void
wctx_free(struct wctx *w)
{
	dg_gzip_ctx_free(w->z);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static dg_err
task_run(struct applier *a, struct pool *p, struct ptask *t, struct wctx *wc)
{
	const struct aseg *g = t->g;
	size_t j = t->part;
	int inl = p == NULL;        /* on the applying thread */
	dg_err err = DG_OK;

	switch (t->kind) {
	case PT_COPY:
		for (uint64_t o = 0; o < g->rlen && !err;) {
			size_t k = g->rlen - o < TRIM_EVERY ? (size_t)(g->rlen - o) : TRIM_EVERY;
			struct swriter w = { t, o, g->rlen, 0, 0 };

			if (t->out_fd >= 0 && (err = swrite(&w, t->in + o, k)))
				return err;
			if (t->out_fd < 0)
				memcpy(t->out + o, t->in + o, k);
			if (t->trim_in)
				drop_pages(t->in + o, k);
			if (t->trim_out && t->out_fd < 0)
				drop_pages(t->out + o, k);
			o += k;
			err = inl ? check_cancel(a) : task_cancel(a, p);
		}
		return err;
	case PT_INFLATE: {
		struct swriter w = { t, 0, g->rlen, 0, 0 };
		uint64_t rl;

		err = dg_gzip_inflate(t->in, (size_t)g->clen, swrite, &w, &rl);
		if (err == DG_ERR_NOMEM || err == DG_ERR_IO || err == DG_ERR_NOSPC)
			return err;
		return err || rl != g->rlen ? DG_ERR_DELTA_CORRUPT : DG_OK;
	}
	case PT_INFLATE_PART: {
		const uint8_t *def;
		size_t dlen;
		uint64_t bit = j ? g->sp[j - 1].bit : 0, raw = j ? g->sp[j - 1].raw : 0;
		uint64_t c0 = j ? g->sp[j - 1].clean : 0, c1 = j < g->nsp ? g->sp[j].clean : g->rlen;

		struct swriter w = { t, c0, c1, 0, 0 };

		if ((err = member_deflate(t->in, g->clen, &def, &dlen)))
			return err;
		err = dg_gzip_inflate_from(wc->z, def, dlen, bit, c0 - raw, c1 - c0, j == g->nsp, swrite,
					   &w);
		if (err == DG_ERR_NOMEM || err == DG_ERR_IO || err == DG_ERR_NOSPC)
			return err;
		if (err || w.pos != c1)
			return DG_ERR_DELTA_CORRUPT;
		t->crc = w.crc;
		t->crc_len = c1 - c0;
		return task_cancel(a, p);
	}
	case PT_DEFLATE: {
		struct bw b = { t->out, 0, g->clen, inl ? a : NULL, TRIM_EVERY };
		struct swriter ow = { t, 0, g->clen, 0, 1 };
		dg_gzip_stream *gs = t->out_fd >= 0
		    ? dg_gzip_stream_new(&g->p, g->hdr, g->hdrlen, swrite, &ow, &err)
		    : dg_gzip_stream_new(&g->p, g->hdr, g->hdrlen, bw_write, &b, &err);

		for (uint64_t o = 0; gs && !err && o < g->rlen;) {
			size_t k = g->rlen - o < TRIM_EVERY ? (size_t)(g->rlen - o) : TRIM_EVERY;

			err = dg_gzip_stream_write(gs, t->in + o, k);
			if (t->trim_in)
				drop_pages(t->in + o, k);
			o += k;
			if (!err)
				err = inl ? check_cancel(a) : task_cancel(a, p);
		}
		if (gs && !err)
			err = dg_gzip_stream_finish(gs);
		dg_gzip_stream_free(gs);
		if (t->trim_out && t->out_fd < 0)
			drop_pages(t->out, (size_t)g->clen);
		if (err == DG_ERR_CANCELED || err == DG_ERR_NOMEM || err == DG_ERR_IO ||
		    err == DG_ERR_NOSPC)
			return err;
		/* recompression does not give the member back */
		return err || (t->out_fd < 0 ? b.pos : ow.pos) != g->clen ? DG_ERR_DELTA_TARGET
									  : DG_OK;
	}
	case PT_DEFLATE_PART: {
		uint64_t from = j ? g->sp[j - 1].raw : 0, end = j < g->nsp ? g->sp[j].raw : g->rlen;
		uint64_t b0 = j ? g->sp[j - 1].bit / 8 : 0;
		uint64_t b1 = j < g->nsp ? g->sp[j].bit / 8 : g->clen - g->hdrlen - 8;
		uint64_t limit = j < g->nsp && end + DG_GZIP_SLACK < g->rlen ? end + DG_GZIP_SLACK : g->rlen;
		uint64_t w = from < DG_GZIP_WINDOW ? from : DG_GZIP_WINDOW;

		uint8_t *dst = t->out + g->hdrlen + b0;
		struct swriter ow = { t, g->hdrlen + b0, g->clen, 0, 1 };

		if (t->out_fd >= 0) {
			/* deflate into this thread's buffer, then one pwrite:
			 * no faults on the output's pages */
			if (wc->cap < b1 - b0) {
				free(wc->buf);
				wc->cap = 0;
				if (!(wc->buf = malloc((size_t)(b1 - b0))))
					return DG_ERR_NOMEM;
				wc->cap = (size_t)(b1 - b0);
			}
			dst = wc->buf;
		}
		if (j == 0) {
			struct swriter hw = { t, 0, g->hdrlen, 0, 1 };

			if (t->out_fd < 0)
				memcpy(t->out, g->hdr, g->hdrlen);
			else if ((err = swrite(&hw, g->hdr, g->hdrlen)))
				return err;
		}
		err = dg_gzip_deflate_from(wc->z, &g->p, t->in, from, limit,
					   j ? (unsigned)(g->sp[j - 1].bit % 8) : 0,
					   j ? g->sp[j - 1].bits : 0, j == g->nsp, dst, (size_t)(b1 - b0));
		if (err)
			return err == DG_ERR_NOMEM ? err : DG_ERR_DELTA_TARGET;
		if (t->out_fd >= 0 && (err = swrite(&ow, dst, (size_t)(b1 - b0))))
			return err;
		t->crc = (uint32_t)crc32_z(0, t->in + from, (size_t)(end - from));
		t->crc_len = end - from;
		if (t->trim_in)
			drop_pages(t->in + from - w, (size_t)(limit - from + w));
		if (t->trim_out && t->out_fd < 0)
			drop_pages(t->out + g->hdrlen + b0, (size_t)(b1 - b0));
		return task_cancel(a, p);
	}
	}
	return DG_ERR_INTERNAL;
}

static void *
pool_worker(void *arg)
{
	struct pool *p = arg;
	struct wctx wc = { dg_gzip_ctx_new(), NULL, 0 };

	pthread_mutex_lock(&p->mu);
	if (!wc.z && !p->err) {
		p->err = DG_ERR_NOMEM;
		atomic_store(&p->stop, 1);
	}
	for (;;) {
		struct ptask *t;
		dg_err e;

		while (!atomic_load(&p->stop) && p->next < p->n && p->t[p->next].need > p->wm)
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&p->stop) || p->next == p->n)
			break;
		t = &p->t[p->order ? p->order[p->next] : p->next];
		p->next++;
		pthread_mutex_unlock(&p->mu);
		e = task_run(p->a, p, t, &wc);
		pthread_mutex_lock(&p->mu);
		t->done = 1;
		if (e && !p->err) {
			p->err = e;
			atomic_store(&p->stop, 1);
			pthread_cond_broadcast(&p->cv);
		}
	}
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	wctx_free(&wc);
	return NULL;
}

static void
pool_advance(struct pool *p, uint64_t wm)
{
	pthread_mutex_lock(&p->mu);
	if (wm > p->wm) {
		p->wm = wm;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

static int
pool_stopped(struct pool *p)
{
	return atomic_load(&p->stop);
}

/* Start up to nt workers on t[0..n) (none: the caller runs them in
 * pool_finish). */
static void
pool_start(struct pool *p, struct applier *a, struct ptask *t, const size_t *order, size_t n,
	   unsigned nt, uint64_t wm)
{
	memset(p, 0, sizeof(*p));
	p->a = a;
	p->t = t;
	p->order = order;
	p->n = n;
	p->wm = wm;
	atomic_init(&p->stop, 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (nt > n)
		nt = (unsigned)n;
	if (nt < 2)
		return;
	pthread_mutex_lock(&p->mu);
	for (p->nt = 0; p->nt < nt; p->nt++) {
		if (pthread_create(&p->tid[p->nt], NULL, pool_worker, p) != 0)
			break;
		p->running++;
	}
	pthread_mutex_unlock(&p->mu);
}

/* CRC-32 of a chunked segment from its tasks' */
static uint32_t
parts_crc(const struct ptask *t, size_t n)
{
	uint32_t c = (uint32_t)crc32_z(0, NULL, 0);

	for (size_t i = 0; i < n; i++)
		c = (uint32_t)crc32_combine(c, t[i].crc, (z_off_t)t[i].crc_len);
	return c;
}

/* The target bytes a fold task makes: [*o0, *o1). */
static void
task_range(const struct ptask *t, uint64_t *o0, uint64_t *o1)
{
	const struct aseg *g = t->g;
	size_t j = t->part;

	if (t->kind == PT_DEFLATE_PART) {
		*o0 = t->out_off + (j ? g->hdrlen + g->sp[j - 1].bit / 8 : 0);
		*o1 = t->out_off + (j < g->nsp ? g->hdrlen + g->sp[j].bit / 8 : g->clen);
	} else {
		*o0 = t->out_off;
		*o1 = t->out_off + (t->kind == PT_COPY ? g->rlen : g->clen);
	}
}

/* Hash the done tasks' bytes, in order, up to task upto (exclusive); the
 * trailer of a chunked member is written when its last chunk comes. */
static dg_err
pool_hash(struct pool *p, size_t upto)
{
	struct applier *a = p->a;

	for (; p->hashed < upto; p->hashed++) {
		const struct ptask *t = &p->t[p->hashed];
		const struct aseg *g = t->g;
		uint8_t *base = t->out - t->out_off;
		uint64_t o0, o1;

		if (t->part == 0)
			p->seg_first = p->hashed;
		if (t->kind == PT_DEFLATE_PART && t->part == g->nsp) {
			put32(t->out + g->clen - 8, parts_crc(p->t + p->seg_first, g->nsp + 1));
			put32(t->out + g->clen - 4, (uint32_t)g->rlen);
		}
		task_range(t, &o0, &o1);
		a->folded = o1;
		for (uint64_t o = o0; o < o1;) {
			size_t k = o1 - o < TRIM_EVERY ? (size_t)(o1 - o) : TRIM_EVERY;

			if (EVP_DigestUpdate(p->sha, base + o, k) != 1)
				return DG_ERR_CRYPTO;
			if (a->out_fd >= 0)
				drop_pages(base + o, k);
			o += k;
		}
#ifdef SYNC_FILE_RANGE_WRITE
		/* start writing it out now: the final fsync then waits less */
		if (a->out_fd >= 0 && o1 > o0)
			(void)sync_file_range(a->out_fd, (off64_t)o0, (off64_t)(o1 - o0),
					      SYNC_FILE_RANGE_WRITE);
#else
		(void)a;
#endif
	}
	return DG_OK;
}

/* pool_hash of the tasks done so far in order (applying thread). */
static dg_err
pool_hash_done(struct pool *p)
{
	size_t upto;

	if (!p->sha)
		return DG_OK;
	pthread_mutex_lock(&p->mu);
	for (upto = p->hashed; upto < p->n && p->t[upto].done; upto++)
		;
	pthread_mutex_unlock(&p->mu);
	return pool_hash(p, upto);
}

/* All of E(T) is final (or err: stop). Wait for the workers, keeping the
 * caller's progress, cancellation and trimming going (and the target's
 * hash, when p->sha), or run the tasks here when there are none. */
static dg_err
pool_finish(struct pool *p, dg_err err)
{
	struct applier *a = p->a;
	size_t upto;
	int failed;

	pthread_mutex_lock(&p->mu);
	p->wm = UINT64_MAX;
	if (err) {
		atomic_store(&p->stop, 1);
		if (!p->err)
			p->err = err;
	}
	pthread_cond_broadcast(&p->cv);
	while (p->running) {
		struct timespec ts;
		dg_err e;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		for (upto = p->hashed; upto < p->n && p->t[upto].done; upto++)
			;
		failed = p->err != DG_OK;
		pthread_mutex_unlock(&p->mu);
		e = check_cancel(a);
		if (!e && p->sha && !failed)
			e = pool_hash(p, upto);
		pthread_mutex_lock(&p->mu);
		if (e && !p->err) {
			p->err = e;
			atomic_store(&p->stop, 1);
			pthread_cond_broadcast(&p->cv);
		}
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nt; i++)
		pthread_join(p->tid[i], NULL);
	/* no workers: the tasks run here */
	if (!p->nt && !p->err && p->next < p->n) {
		struct wctx wc = { dg_gzip_ctx_new(), NULL, 0 };

		if (!wc.z)
			p->err = DG_ERR_NOMEM;
		for (; !p->err && p->next < p->n; p->next++) {
			p->err = task_run(a, NULL, &p->t[p->next], &wc);
			if (!p->err && p->sha)
				p->err = pool_hash(p, p->next + 1);
			if (!p->err)
				p->err = check_cancel(a);
		}
		p->next = p->n;
		wctx_free(&wc);
	}
	if (!p->err && p->sha)
		p->err = pool_hash(p, p->n);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	return p->err;
}

static dg_err
task_add(struct ptask **t, size_t *n, size_t *cap, const struct ptask *x)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct ptask *nt = realloc(*t, nc * sizeof(*nt));

		if (!nt)
			return DG_ERR_NOMEM;
		*t = nt;
		*cap = nc;
	}
	(*t)[(*n)++] = *x;
	return DG_OK;
}

/* Expanded bytes an expand task makes (and drops). */
static uint64_t
task_work(const struct ptask *t)
{
	const struct aseg *g = t->g;
	size_t j = t->part;

	if (t->kind != PT_INFLATE_PART)
		return g->rlen;
	return (j < g->nsp ? g->sp[j].clean : g->rlen) - (j ? g->sp[j - 1].raw : 0);
}

struct wkey {
	uint64_t work;
	size_t i;
};

static int
by_work(const void *x, const void *y)
{
	const struct wkey *a = x, *b = y;

	if (a->work != b->work)
		return a->work < b->work ? 1 : -1;
	return (a->i > b->i) - (a->i < b->i);
}

static dg_err
apply_archive(struct applier *a, const struct item *items)
{
	const struct archive *ar = a->h->ar;
	struct scratch es, er;
	const uint8_t *src = a->src;
	uint8_t *out = a->out;
	struct ptask *t = NULL, x;
	size_t n = 0, cap = 0, i, k, *order = NULL;
	struct wkey *keys = NULL;
	uint64_t in = 0, opos = 0;
	struct pool pool;
	dg_err err;

	memset(&es, 0, sizeof(es));
	memset(&er, 0, sizeof(er));
	if ((err = scratch_new(a, (size_t)ar->es, &es)) || (err = scratch_new(a, (size_t)ar->er, &er)))
		goto fail;
	/* expand the source into E(S) */
	for (i = 0; i < ar->ns; i++) {
		const struct aseg *g = &ar->s[i];

		x = (struct ptask){ .kind = !g->gz ? PT_COPY : g->nsp ? PT_INFLATE_PART : PT_INFLATE,
				    .trim_out = (uint8_t)es.mapped, .g = g, .in = src + in,
				    .out = es.p + opos, .out_fd = es.fd, .out_off = opos };
		for (k = 0; k <= g->nsp && !err; k++) {
			x.part = k;
			err = task_add(&t, &n, &cap, &x);
		}
		if (err)
			goto fail;
		in += g->clen;
		opos += g->rlen;
	}
	/* longest first: a member's first chunk often spans a long run of
	 * zeros with no block boundary in it */
	if (!(order = malloc(n * sizeof(*order))) || !(keys = malloc(n * sizeof(*keys)))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++)
		keys[i] = (struct wkey){ task_work(&t[i]), i };
	qsort(keys, n, sizeof(*keys), by_work);
	for (i = 0; i < n; i++)
		order[i] = keys[i].i;
	pool_start(&pool, a, t, order, n, a->threads, UINT64_MAX);
	if (a->src_deferred) {
		/* the source's hash, while the workers expand it: a wrong
		 * source is the error whatever they made of it */
		uint8_t sha[32];
		dg_err e = sha256_trim(a, src, a->src_len, sha);

		if (!e && memcmp(sha, a->h->src_sha, 32) != 0)
			e = DG_ERR_DELTA_SOURCE;
		err = pool_finish(&pool, e);
		if (e)
			err = e;
	} else {
		err = pool_finish(&pool, DG_OK);
	}
	if (err)
		goto fail;
	/* chunked members: their CRC-32 and length against the trailer */
	for (i = 0; i < n; i = k) {
		const struct aseg *g = t[i].g;

		for (k = i + 1; k < n && t[k].g == g; k++)
			;
		if (t[i].kind == PT_INFLATE_PART &&
		    (get32(t[i].in + g->clen - 8) != parts_crc(t + i, k - i) ||
		     get32(t[i].in + g->clen - 4) != (uint32_t)g->rlen)) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
	}
	/* fold E(T) into the target while items 1.. write it */
	n = 0;
	in = opos = 0;
	for (i = 0; i < ar->nt; i++) {
		const struct aseg *g = &ar->t[i];

		x = (struct ptask){ .kind = !g->gz ? PT_COPY : g->nsp ? PT_DEFLATE_PART : PT_DEFLATE,
				    .trim_in = (uint8_t)er.mapped, .trim_out = (uint8_t)a->out_trim,
				    .g = g, .in = er.p + in, .out = out + opos,
				    .out_fd = a->out_fd, .out_off = opos, .need = in + g->rlen };
		for (k = 0; k <= g->nsp && !err; k++) {
			x.part = k;
			if (x.kind == PT_DEFLATE_PART && k < g->nsp)
				x.need = g->sp[k].raw + DG_GZIP_SLACK < g->rlen
				    ? in + g->sp[k].raw + DG_GZIP_SLACK : in + g->rlen;
			else
				x.need = in + g->rlen;
			err = task_add(&t, &n, &cap, &x);
		}
		if (err)
			goto fail;
		in += g->rlen;
		opos += g->clen;
	}
	a->src = es.p;
	a->out = er.p;
	a->done = 0;
	a->wm_base = a->wm_end = 0;
	a->populate = er.mapped ? ar->er : 0;
	a->et_len = ar->er ? ar->er : 1;
	pool_start(&pool, a, t, NULL, n, a->threads, 0);
	if (!(pool.sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(pool.sha, EVP_sha256(), NULL) != 1)
		err = DG_ERR_CRYPTO;
	a->pool = pool.nt ? &pool : NULL;
	if (!err)
		err = apply_items(a, items + 1, a->h->nitems - 1);
	a->pool = NULL;
	a->populate = 0;
	a->src = src;
	a->out = out;
	err = pool_finish(&pool, err);
	if (!err) {
		unsigned int len = 32;

		if (EVP_DigestFinal_ex(pool.sha, a->tgt_sha, &len) != 1)
			err = DG_ERR_CRYPTO;
		a->tgt_hashed = !err;
	}
	EVP_MD_CTX_free(pool.sha);
	if (!err)
		err = check_cancel(a); /* the last progress report: 100% */
fail:
	free(keys);
	free(order);
	free(t);
	scratch_free(a, &es);
	scratch_free(a, &er);
	return err;
}

/* Parse, check the source, rebuild into out (tgt_size bytes), check the
 * target's hash. */
static dg_err
apply_core(const uint8_t *src, size_t src_len, const struct din *d, int out_fd,
	   const dg_delta_apply_opts *o, const char *scratch_dir,
	   uint8_t *(*get_out)(void *ctx, uint64_t size, dg_err *err), void *ctx, int mapped)
{
	struct header h;
	struct item *items = NULL;
	struct applier a;
	uint8_t sha[32];
	dg_err err;

	memset(&a, 0, sizeof(a));
	a.out_fd = out_fd;
	if ((err = parse_delta(d, o ? o->max_target_size : 0, &h, &items)))
		return err;
	if (h.src_size != src_len) {
		err = DG_ERR_DELTA_SOURCE;
		goto fail;
	}
	if (mapped && src_len >= TRIM_MAP_MIN)
		trim_add(&a, (void *)src, src_len);
	a.mem_limit = o && o->mem_limit ? o->mem_limit : DG_DELTA_DEFAULT_MEM_LIMIT;
	a.threads = o && o->threads ? o->threads : dg_delta_cpus();
	if (a.threads > DG_DELTA_MAX_THREADS)
		a.threads = DG_DELTA_MAX_THREADS;
	/* a chunk thread keeps ~2.5 MiB resident: its zlib state, a deflated
	 * chunk, the E(T) pages it reads */
	if (a.threads > a.mem_limit / DG_DELTA_THREAD_MEM)
		a.threads = a.mem_limit / DG_DELTA_THREAD_MEM ? (unsigned)(a.mem_limit / DG_DELTA_THREAD_MEM)
							       : 1;
	a.src_len = src_len;
	/* an archive checks it while its threads expand the source */
	a.src_deferred = h.ar && a.threads > 1;
	if (!a.src_deferred && (err = sha256_trim(&a, src, src_len, sha)))
		goto fail;
	if (!a.src_deferred && memcmp(sha, h.src_sha, 32) != 0) {
		err = DG_ERR_DELTA_SOURCE;
		goto fail;
	}
	a.src = src;
	a.d = d;
	a.h = &h;
	a.o = o;
	a.scratch_dir = scratch_dir;
	a.out = get_out(ctx, h.tgt_size, &err);
	if (err)
		goto fail;
	if (mapped && h.tgt_size >= TRIM_MAP_MIN) {
		trim_add(&a, a.out, (size_t)h.tgt_size);
		a.out_trim = 1;
	}
	if (h.ar)
		err = apply_archive(&a, items);
	else
		err = apply_items(&a, items, h.nitems);
	if (err)
		goto fail;
	if (a.tgt_hashed)
		memcpy(sha, a.tgt_sha, 32);
	else if ((err = sha256_trim(&a, a.out, (size_t)h.tgt_size, sha)))
		goto fail;
	if (memcmp(sha, h.tgt_sha, 32) != 0)
		err = DG_ERR_DELTA_TARGET;
fail:
	free(items);
	archive_free(h.ar);
	return err;
}

struct memout {
	uint8_t *p;
	uint64_t size;
};

static uint8_t *
memout_get(void *ctx, uint64_t size, dg_err *err)
{
	struct memout *m = ctx;

	*err = DG_OK;
	m->size = size;
	if (size > SIZE_MAX - 1) {
		*err = DG_ERR_TOOBIG;
		return NULL;
	}
	m->p = malloc(size ? (size_t)size : 1);
	if (!m->p)
		*err = DG_ERR_NOMEM;
	return m->p;
}

dg_err
dg_delta_apply_mem(const uint8_t *src, size_t src_len, const uint8_t *delta, size_t delta_len,
		   const dg_delta_apply_opts *opts, uint8_t **out, size_t *out_len)
{
	struct din d = { delta, -1, delta_len };
	struct memout m = { NULL, 0 };
	dg_err err;

	*out = NULL;
	*out_len = 0;
	if (!delta)
		d.mem = (const uint8_t *)"";
	err = apply_core(src ? src : (const uint8_t *)"", src_len, &d, -1, opts, NULL, memout_get, &m,
			 0);
	if (err) {
		free(m.p);
		return err;
	}
	*out_len = (size_t)m.size;
	*out = m.p;
	return DG_OK;
}

struct fileout {
	int fd;
	uint8_t *map;
	uint64_t size;
};

static uint8_t *
fileout_get(void *ctx, uint64_t size, dg_err *err)
{
	struct fileout *f = ctx;
	int r;

	*err = DG_OK;
	f->size = size;
	if (size == 0)
		return (uint8_t *)"";
	if (size > (uint64_t)SIZE_MAX / 2) {
		*err = DG_ERR_TOOBIG;
		return NULL;
	}
	/* reserve the blocks first: a write fault on a full disk through the
	 * mapping would be SIGBUS, not an error */
	if ((r = posix_fallocate(f->fd, 0, (off_t)size)) != 0) {
		*err = dg_err_from_errno(r);
		return NULL;
	}
	f->map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		*err = dg_err_from_errno(errno);
		return NULL;
	}
	return f->map;
}

static dg_err
map_file(const char *path, int *fd_out, const uint8_t **map, size_t *len)
{
	struct stat st;
	int fd;
	dg_err err;

	*map = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dg_err_from_errno(errno);
	if (fstat(fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return DG_ERR_INVAL;
	}
	*len = (size_t)st.st_size;
	if (*len) {
		void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			err = dg_err_from_errno(errno);
			close(fd);
			return err;
		}
		*map = p;
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return DG_OK;
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

dg_err
dg_delta_apply_file(const char *source_path, const char *delta_path, const char *target_path,
		    const dg_delta_apply_opts *opts)
{
	const uint8_t *src = NULL;
	size_t src_len = 0;
	struct din d = { NULL, -1, 0 };
	struct stat st;
	struct fileout f = { -1, NULL, 0 };
	char *tmp = NULL, *dir = NULL;
	dg_err err;

	if ((err = map_file(source_path, NULL, &src, &src_len))) {
		dg_log_err("%s: %s", source_path, dg_strerror(err));
		return err;
	}
	if (src_len)
		madvise((void *)src, src_len, MADV_WILLNEED);
	d.fd = open(delta_path, O_RDONLY | O_CLOEXEC);
	if (d.fd < 0 || fstat(d.fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", delta_path, dg_strerror(err));
		goto fail;
	}
	d.size = (uint64_t)st.st_size;
	dir = dir_of(target_path);
	if (!dir || asprintf(&tmp, "%s.tmp.XXXXXX", target_path) < 0) {
		tmp = NULL;
		err = DG_ERR_NOMEM;
		goto fail;
	}
	f.fd = mkostemp(tmp, O_CLOEXEC);
	if (f.fd < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", tmp, dg_strerror(err));
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	if (fchmod(f.fd, 0644) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	err = apply_core(src, src_len, &d, f.fd, opts, dir, fileout_get, &f, 1);
	if (err) {
		dg_log_err("apply %s to %s: %s", delta_path, source_path, dg_strerror(err));
		goto fail;
	}
	if (f.map) {
		munmap(f.map, (size_t)f.size);
		f.map = NULL;
	}
	if (fsync(f.fd) < 0 || close(f.fd) < 0) {
		f.fd = -1;
		err = dg_err_from_errno(errno);
		goto fail;
	}
	f.fd = -1;
	if (rename(tmp, target_path) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", target_path, dg_strerror(err));
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	err = dg_util_fsync_dir(target_path);
fail:
	if (f.map)
		munmap(f.map, (size_t)f.size);
	if (f.fd >= 0)
		close(f.fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	if (d.fd >= 0)
		close(d.fd);
	if (src)
		munmap((void *)src, src_len);
	return err;
}

uint32_t
dg_delta_result_code(dg_err err)
{
	if (err == DG_OK)
		return 0;
	return DG_DELTA_RESULT_BASE | ((uint32_t)err & 0xFFFFFu);
}

/* ---- inspect ---- */
struct dg_delta_info {
	struct header h;
	struct item *items;
	uint64_t size;
	char (*codecs)[32];
};

static const char *
kind_name(unsigned k)
{
	switch (k) {
	case KIND_RAW: return "raw";
	case KIND_COPY: return "copy";
	case KIND_BSDIFF: return "bsdiff";
	case KIND_ZPATCH: return "zstd-patch-from";
	case KIND_BSDIFF_X64: return "bsdiff-x86-64-predict";
	case KIND_BSDIFF_MCU: return "bsdiff-mcu-predict";
	case KIND_ARCHIVE: return "archive";
	case KIND_ARCHIVE_SPLIT: return "archive-chunked";
	default: return "unknown";
	}
}

static const char *
codec_name(uint32_t c)
{
	switch (c) {
	case CODEC_NONE: return "none";
	case CODEC_ZSTD: return "zstd";
	case CODEC_XZ: return "xz";
	default: return "unknown";
	}
}

dg_err
dg_delta_inspect_file(const char *path, dg_delta_info **out)
{
	struct din d = { NULL, -1, 0 };
	struct stat st;
	dg_delta_info *info = NULL;
	uint32_t i;
	dg_err err;

	*out = NULL;
	d.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (d.fd < 0 || fstat(d.fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	d.size = (uint64_t)st.st_size;
	info = calloc(1, sizeof(*info));
	if (!info) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	info->size = d.size;
	if ((err = parse_delta(&d, 0, &info->h, &info->items)))
		goto fail;
	info->codecs = calloc(info->h.nitems ? info->h.nitems : 1, sizeof(*info->codecs));
	if (!info->codecs) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < info->h.nitems; i++) {
		const struct item *it = &info->items[i];

		if (it->kind == KIND_BSDIFF || it->kind == KIND_BSDIFF_X64 ||
		    it->kind == KIND_BSDIFF_MCU)
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "%s,%s,%s,%s",
				 codec_name(it->p[0].codec), codec_name(it->p[1].codec),
				 codec_name(it->p[2].codec), codec_name(it->p[3].codec));
		else if (it->kind == KIND_COPY)
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "-");
		else
			snprintf(info->codecs[i], sizeof(info->codecs[i]), "%s",
				 codec_name(it->p[0].codec));
	}
	close(d.fd);
	*out = info;
	return DG_OK;
fail:
	if (d.fd >= 0)
		close(d.fd);
	dg_delta_info_free(info);
	return err;
}

void
dg_delta_info_free(dg_delta_info *info)
{
	if (!info)
		return;
	free(info->items);
	free(info->codecs);
	archive_free(info->h.ar);
	free(info);
}

uint32_t dg_delta_info_version(const dg_delta_info *i) { return i->h.version; }
uint64_t dg_delta_info_source_size(const dg_delta_info *i) { return i->h.src_size; }
uint64_t dg_delta_info_target_size(const dg_delta_info *i) { return i->h.tgt_size; }
uint64_t dg_delta_info_delta_size(const dg_delta_info *i) { return i->size; }
const uint8_t *dg_delta_info_source_sha256(const dg_delta_info *i) { return i->h.src_sha; }
const uint8_t *dg_delta_info_target_sha256(const dg_delta_info *i) { return i->h.tgt_sha; }
size_t dg_delta_info_items(const dg_delta_info *i) { return i->h.nitems; }

void
dg_delta_info_item(const dg_delta_info *info, size_t i, dg_delta_item_info *out)
{
	const struct item *it = &info->items[i];

	out->kind = kind_name(it->kind);
	out->filter = dg_bcj_name((dg_bcj_filter)it->filter);
	out->out_len = it->out_len;
	out->src_off = it->src_off;
	out->src_len = it->src_len;
	out->payload = it->p[0].clen + it->p[1].clen + it->p[2].clen + it->p[3].clen;
	out->codecs = info->codecs[i];
}

/* ======================= generator ======================= */

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

/* Raw LZMA2 (xz preset 9e) of data[0..len) with the dictionary the applier
 * derives from the whole part's length (dict). A part may be encoded in
 * several segments, each by a different thread: an LZMA2 stream may reset
 * its dictionary at any chunk, so the segments are concatenated with the
 * end marker (one 0x00 byte) dropped from all but the last. */
static dg_err
xz_segment(const uint8_t *data, size_t len, size_t dict, int last, int sparse, struct part *p)
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
static dg_err
compress_part(const uint8_t *data, size_t len, int level, int streamed, int try_xz, struct part *p)
{
	struct part xz;
	dg_err err;

	if ((err = zstd_part(data, len, level, streamed, p)) || len == 0)
		return err;
	memset(&xz, 0, sizeof(xz));
	if (try_xz && (err = xz_segment(data, len, xz_dict(len), 1, 0, &xz))) {
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

/* A candidate recipe: items covering the whole target. */
struct plan {
	struct item *items;
	size_t n;
	char method[48];
	uint64_t size;
	int final;     /* compressed at the full level */
	dg_err err;
};

static void
plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		item_free(&pl->items[i]);
	free(pl->items);
	pl->items = NULL;
	pl->n = 0;
}

static dg_err
serialize(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m, const struct plan *pl,
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
		put64(r + 4, it->out_len);
		put64(r + 12, it->src_off);
		put64(r + 20, it->src_len);
		for (int k = 0; k < NPARTS; k++) {
			put32(r + 28 + 20 * k, it->p[k].codec);
			put64(r + 32 + 20 * k, it->p[k].clen);
			put64(r + 40 + 20 * k, it->p[k].rlen);
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
	put32(hdr + 8, FORMAT_VERSION);
	put64(hdr + 16, n);
	if ((err = sha256(src, n, hdr + 24)))
		goto fail;
	put64(hdr + 56, m);
	if ((err = sha256(tgt, m, hdr + 64)))
		goto fail;
	put32(hdr + 96, (uint32_t)clen);
	put32(hdr + 100, (uint32_t)rlen);
	put32(hdr + 104, (uint32_t)pl->n);
	put32(hdr + 108, (uint32_t)crc32(0, hdr, HDR_SIZE - 4));
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
	int last, sparse;
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

/* Candidates are ranked on fast zstd sizes of their streams; only the
 * best are then compressed at the requested level with xz tried per part,
 * from the streams kept by the estimate (not diffed again). */
#define ESTIMATE_LEVEL 3
#define LEVEL(g) ((g)->final ? (g)->level : ESTIMATE_LEVEL)
#define XZ(g) ((g)->final)
/* Parts above this are xz'd in segments by several threads. */
#define XZ_SEGMENT_MIN (256u << 10)
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

		err = compress_part(d, len, LEVEL(g), 1, XZ(g) && len <= XZ_MAX, &it->p[k]);
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
			add = rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
			(void)rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
			seek = rd_varint(a[i].st[0].data, a[i].st[0].len, &pos, &bad);
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
	if ((err = xmap_build(j->st[3].data, j->st[3].len, j->sn, &m)))
		goto out;
	ps = malloc(j->sn ? j->sn : 1);
	if (!ps) {
		err = DG_ERR_NOMEM;
		goto out;
	}
	memcpy(ps, j->s, j->sn);
	dg_bcj_x64_predict(ps, j->sn, xmap_shift, &m);
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
	dg_buf_free(&diff1);
	dg_buf_free(&extra1);
	if ((err = xmap_build(ctrl1.data, ctrl1.len, j->sn, &m)))
		goto out;
	ps = malloc(j->sn ? j->sn : 1);
	if (!ps) {
		err = DG_ERR_NOMEM;
		goto out;
	}
	memcpy(ps, j->s, j->sn);
	dg_mcu_predict(ps, j->sn, j->mcu, xmap_shift, &m);
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
		j->err = xz_segment(j->data, j->len, j->dict, j->last, j->sparse, j->res);
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
	j->err = compress_part(j->t, j->len, LEVEL(g) > 19 ? 19 : LEVEL(g), 0, 0, &it->p[0]);
	if (!j->err && it->p[0].codec != CODEC_ZSTD && it->out_len) {
		/* RAW items are zstd frames or stored: compress_part may only
		 * have chosen stored here (xz was not tried) */
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

/* The final compression of the plans within 30% of the best estimate:
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
		if (p != best && plans[p].size > est + est * 3 / 10)
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
					nseg = threads > 1 && b->len >= XZ_SEGMENT_MIN ? threads : 1;
					if (nseg > 4)
						nseg = 4;
					for (x = 0; x < nseg; x++) {
						size_t o = b->len / nseg * x;
						size_t l = x + 1 < nseg ? b->len / nseg : b->len - o;

						fj[nj] = (struct job){ .run = run_part, .data = b->data + o,
								       .len = l, .res = &res[nj],
								       .codec = CODEC_XZ,
								       .dict = xz_dict(b->len),
								       .last = x + 1 == nseg,
								       .sparse = k == 1 };
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

static dg_err
diff_plain(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
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
				 dg_mcu_arch_name((dg_mcu_arch)mcumap.arch));
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
	if (predict && nchunks == 1) {
		/* jobs[0] is the prediction; jobs[2] the unfiltered bsdiff */
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
	if ((err = serialize(src, n, tgt, m, &plans[best], &buf, &buflen)))
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
		plan_free(&plans[i]);
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

	if ((err = map_file(source_path, NULL, &src, &n))) {
		dg_log_err("%s: %s", source_path, dg_strerror(err));
		return err;
	}
	if ((err = map_file(target_path, NULL, &tgt, &m))) {
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

/* ---- archive-aware generation ---- */
struct segv {
	struct aseg *v;
	size_t n, cap;
	uint64_t elen;
	int ngz;
};

static dg_err
segv_add(struct segv *sv, const struct aseg *g)
{
	struct aseg *p;

	if (!g->gz && sv->n && !sv->v[sv->n - 1].gz) {
		sv->v[sv->n - 1].clen += g->clen;
		sv->v[sv->n - 1].rlen += g->rlen;
	} else {
		if (sv->n == sv->cap) {
			sv->cap = sv->cap ? 2 * sv->cap : 16;
			p = realloc(sv->v, sv->cap * sizeof(*p));
			if (!p)
				return DG_ERR_NOMEM;
			sv->v = p;
		}
		sv->v[sv->n++] = *g;
		sv->ngz += g->gz;
	}
	sv->elen += g->rlen;
	return DG_OK;
}

static void
segv_free(struct segv *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		free(sv->v[i].hdr);
		free(sv->v[i].sp);
	}
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}

/* One stretch of the file: a gzip member if it is one that can be
 * expanded (source) or rebuilt bit for bit (target), else plain bytes. */
static dg_err
scan_region(const uint8_t *p, size_t len, int target, struct segv *sv)
{
	dg_gzip_info info;
	struct aseg g;
	dg_err e;

	memset(&g, 0, sizeof(g));
	if (len >= 18 && dg_gzip_is_gzip(p, len)) {
		e = dg_gzip_probe(p, len, &info);
		if ((e == DG_OK || (!target && e == DG_ERR_GZIP_NOT_REPRODUCIBLE)) &&
		    info.member_len == len && info.raw_len < (1ull << 40)) {
			g.gz = 1;
			g.clen = len;
			g.rlen = info.raw_len;
			if (target) {
				g.p = info.params;
				g.hdrlen = info.header.len;
				g.hdr = malloc(g.hdrlen);
				if (!g.hdr)
					return DG_ERR_NOMEM;
				memcpy(g.hdr, info.header.raw, g.hdrlen);
			}
			return segv_add(sv, &g);
		}
	}
	g.clen = g.rlen = len;
	return segv_add(sv, &g);
}

/* Segments of a .swu (per member), a gzip file, or one plain segment. */
static dg_err
scan_file(const uint8_t *buf, size_t len, int target, struct segv *sv)
{
	dg_swu *swu;
	dg_err err = DG_OK;
	uint64_t cur = 0;
	struct aseg g;

	memset(sv, 0, sizeof(*sv));
	swu = len >= DG_SWU_HDR_LEN ? dg_swu_parse(buf, len, &err, NULL, 0) : NULL;
	if (swu) {
		for (size_t i = 0; i < dg_swu_count(swu) && !err; i++) {
			const dg_swu_member *mb = dg_swu_member_at(swu, i);

			memset(&g, 0, sizeof(g));
			g.clen = g.rlen = mb->data_offset - cur;
			if ((err = segv_add(sv, &g)))
				break;
			err = scan_region(buf + mb->data_offset, mb->size, target, sv);
			cur = mb->data_offset + mb->size;
		}
		dg_swu_free(swu);
		if (!err && cur < len) {
			memset(&g, 0, sizeof(g));
			g.clen = g.rlen = len - cur;
			err = segv_add(sv, &g);
		}
	} else if (len) {
		err = scan_region(buf, len, target, sv);
	}
	if (err)
		segv_free(sv);
	return err;
}

/* n, then per point: bit and raw as increments, then clean - raw
 * (source) or the primed bits (target) */
static dg_err
splits_encode(const struct aseg *g, int target, dg_buf *b)
{
	uint64_t bit = 0, raw = 0;
	dg_err err = dg_buf_varint(b, g->nsp);

	for (size_t i = 0; i < g->nsp && !err; i++) {
		const dg_gzip_split *s = &g->sp[i];

		if (!(err = dg_buf_varint(b, s->bit - bit)) && !(err = dg_buf_varint(b, s->raw - raw)))
			err = dg_buf_varint(b, target ? s->bits : s->clean - s->raw);
		bit = s->bit;
		raw = s->raw;
	}
	return err;
}

static dg_err
spec_encode(const struct segv *ss, const struct segv *ts, int split, dg_buf *b)
{
	dg_err err = DG_OK;
	size_t i;

	memset(b, 0, sizeof(*b));
	if ((err = dg_buf_varint(b, ss->n)))
		goto fail;
	for (i = 0; i < ss->n && !err; i++) {
		err = dg_buf_varint(b, ss->v[i].gz);
		if (!err)
			err = dg_buf_varint(b, ss->v[i].clen);
		if (!err && ss->v[i].gz)
			err = dg_buf_varint(b, ss->v[i].rlen);
		if (!err && ss->v[i].gz && split)
			err = splits_encode(&ss->v[i], 0, b);
	}
	if (!err)
		err = dg_buf_varint(b, ts->n);
	for (i = 0; i < ts->n && !err; i++) {
		const struct aseg *g = &ts->v[i];

		if ((err = dg_buf_varint(b, g->gz)) || (err = dg_buf_varint(b, g->rlen)))
			break;
		if (g->gz && ((err = dg_buf_varint(b, g->clen)) ||
			      (err = dg_buf_varint(b, g->p.level)) ||
			      (err = dg_buf_varint(b, g->p.mem_level)) ||
			      (err = dg_buf_varint(b, g->p.strategy)) ||
			      (err = dg_buf_varint(b, g->p.window_bits)) ||
			      (err = dg_buf_varint(b, g->hdrlen)) ||
			      (err = dg_buf_append(b, g->hdr, g->hdrlen)) ||
			      (split && (err = splits_encode(g, 1, b)))))
			break;
	}
fail:
	if (err)
		dg_buf_free(b);
	return err;
}

static dg_err
expand(const uint8_t *buf, const struct segv *sv, uint8_t **out)
{
	struct archive ar;

	memset(&ar, 0, sizeof(ar));
	ar.s = sv->v;
	ar.ns = sv->n;
	*out = malloc(sv->elen ? (size_t)sv->elen : 1);
	if (!*out)
		return DG_ERR_NOMEM;
	if (archive_expand(NULL, &ar, buf, *out) != DG_OK) {
		free(*out);
		*out = NULL;
		return DG_ERR_INTERNAL;
	}
	return DG_OK;
}

/* Same number of segments, gzip in the same places: segment i of the
 * target is the new version of segment i of the source (.swu members in
 * the same order, or one gzip file). */
static int
same_shape(const struct segv *ss, const struct segv *ts)
{
	if (ss->n != ts->n)
		return 0;
	for (size_t i = 0; i < ss->n; i++)
		if (ss->v[i].gz != ts->v[i].gz)
			return 0;
	return 1;
}

/* Append the items of a plain delta from E(S)[soff..) to a stretch of
 * E(T) to pl (item 0 is left for the archive spec). */
static dg_err
add_inner(struct plan *pl, size_t *cap, const uint8_t *es, uint64_t soff, size_t sn,
	  const uint8_t *et, size_t tn, const dg_delta_diff_opts *io, dg_delta_diff_stats *ist)
{
	uint8_t *ib = NULL;
	size_t il = 0, i;
	struct din d;
	struct header ih;
	struct item *iitems = NULL, *grown;
	dg_err err;

	memset(&ih, 0, sizeof(ih));
	if ((err = diff_plain(es + soff, sn, et, tn, io, &ib, &il, ist)))
		goto fail;
	d = (struct din){ ib, -1, il };
	if ((err = parse_delta(&d, 0, &ih, &iitems)))
		goto fail;
	if (pl->n + ih.nitems > *cap) {
		*cap = 2 * (pl->n + ih.nitems);
		grown = realloc(pl->items, *cap * sizeof(struct item));
		if (!grown) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		pl->items = grown;
	}
	for (i = 0; i < ih.nitems; i++) {
		struct item *it = &pl->items[pl->n];

		*it = iitems[i];
		it->src_off += soff;
		for (int k = 0; k < NPARTS; k++)
			memset(&it->p[k].comp, 0, sizeof(dg_buf));
		pl->n++;
		for (int k = 0; k < NPARTS; k++)
			if (it->p[k].clen &&
			    (err = dg_buf_append(&it->p[k].comp, ib + iitems[i].p[k].off,
						 (size_t)iitems[i].p[k].clen)))
				goto fail;
	}
fail:
	free(iitems);
	archive_free(ih.ar);
	free(ib);
	return err;
}

/* The delta from src to tgt through their expansions: item 0 carries the
 * spec, the rest are the items of plain deltas to E(T): one per segment,
 * each against its source counterpart, when the shapes match (no
 * container bytes shift the images, and each pair gets its own method),
 * else one from E(S) to E(T). */
/* Restart points for the processor's threads in every gzip segment of
 * sv (buf: the file, e: its expansion); a member that gives none is
 * simply done whole. */
static dg_err
plan_splits(const uint8_t *buf, struct segv *sv, const uint8_t *e, int target,
	    const dg_delta_diff_opts *opts, int *any)
{
	uint64_t every = opts && opts->split_every ? opts->split_every : DG_DELTA_SPLIT_DEFAULT;
	unsigned threads = opts && opts->threads ? opts->threads : 1;
	uint64_t in = 0, out = 0;
	dg_err err = DG_OK;

	for (size_t i = 0; i < sv->n && !err && every != DG_DELTA_SPLIT_NONE; i++) {
		struct aseg *g = &sv->v[i];
		const uint8_t *def;
		size_t dlen;

		if (g->gz && member_deflate(buf + in, g->clen, &def, &dlen) == DG_OK) {
			if (target)
				err = dg_gzip_plan_deflate(def, dlen, e + out, g->rlen, &g->p, every,
							   threads, &g->sp, &g->nsp);
			else
				err = dg_gzip_plan_inflate(def, dlen, e + out, g->rlen, every, &g->sp,
							   &g->nsp);
			if (err && err != DG_ERR_NOMEM) {
				dg_log_debug("no restart points in a gzip member: %s", dg_strerror(err));
				err = DG_OK;
			}
			*any |= g->nsp > 0;
		}
		in += g->clen;
		out += g->rlen;
	}
	return err;
}

static dg_err
diff_archive(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
	     struct segv *ss, struct segv *ts, const dg_delta_diff_opts *opts,
	     uint8_t **out, size_t *out_len, dg_delta_diff_stats *stats)
{
	int split = 0;
	uint8_t *es = NULL, *et = NULL;
	size_t cap = 8, i;
	uint64_t soff = 0, toff = 0, biggest = 0;
	dg_delta_diff_opts io;
	dg_delta_diff_stats ist, big;
	struct plan pl;
	dg_buf spec;
	dg_err err;

	memset(&pl, 0, sizeof(pl));
	memset(&spec, 0, sizeof(spec));
	memset(&big, 0, sizeof(big));
	if ((err = expand(src, ss, &es)) || (err = expand(tgt, ts, &et)) ||
	    (err = plan_splits(src, ss, es, 0, opts, &split)) ||
	    (err = plan_splits(tgt, ts, et, 1, opts, &split)))
		goto fail;
	io = opts ? *opts : (dg_delta_diff_opts){ 0 };
	io.allow_larger = 1;
	io.progress = NULL;
	pl.items = calloc(cap, sizeof(struct item));
	if (!pl.items || (err = spec_encode(ss, ts, split, &spec))) {
		err = err ? err : DG_ERR_NOMEM;
		goto fail;
	}
	pl.n = 1;
	pl.items[0].kind = split ? KIND_ARCHIVE_SPLIT : KIND_ARCHIVE;
	pl.items[0].out_len = m;
	pl.items[0].src_len = n;
	if ((err = compress_part(spec.data, spec.len, 19, 1, 0, &pl.items[0].p[0])))
		goto fail;
	if (same_shape(ss, ts)) {
		for (i = 0; i < ts->n; i++) {
			const struct aseg *sg = &ss->v[i], *tg = &ts->v[i];

			if (tg->rlen &&
			    (err = add_inner(&pl, &cap, es, soff, (size_t)sg->rlen, et + toff,
					     (size_t)tg->rlen, &io, &ist)))
				goto fail;
			if (tg->rlen > biggest) {
				biggest = tg->rlen;
				big = ist;
			}
			soff += sg->rlen;
			toff += tg->rlen;
		}
	} else if ((err = add_inner(&pl, &cap, es, 0, (size_t)ss->elen, et, (size_t)ts->elen, &io,
				    &big))) {
		goto fail;
	}
	snprintf(pl.method, sizeof(pl.method), "archive(%d gzip)+%.24s", ts->ngz, big.method);
	err = serialize(src, n, tgt, m, &pl, out, out_len);
	if (!err && stats) {
		*stats = big;
		snprintf(stats->method, sizeof(stats->method), "%s", pl.method);
		stats->items = (unsigned)pl.n;
	}
fail:
	plan_free(&pl);
	dg_buf_free(&spec);
	free(es);
	free(et);
	return err;
}

dg_err
dg_delta_diff_mem(const uint8_t *src, size_t n, const uint8_t *tgt, size_t m,
		  const dg_delta_diff_opts *opts, uint8_t **out, size_t *out_len,
		  dg_delta_diff_stats *stats)
{
	struct segv ss, ts;
	uint8_t *check = NULL, *ct = NULL;
	size_t checklen = 0, cl;
	dg_delta_apply_opts ao;
	int level = opts && opts->level > 0 ? opts->level : 19;
	dg_err err;

	*out = NULL;
	*out_len = 0;
	memset(&ss, 0, sizeof(ss));
	memset(&ts, 0, sizeof(ts));
	if (!src)
		src = (const uint8_t *)"";
	if (!tgt)
		tgt = (const uint8_t *)"";
	if ((err = scan_file(tgt, m, 1, &ts)))
		return err;
	if (ts.ngz == 0) {
		segv_free(&ts);
		return diff_plain(src, n, tgt, m, opts, out, out_len, stats);
	}
	/* archive-aware: gzip members of the target are diffed decompressed */
	if ((err = scan_file(src, n, 0, &ss)) ||
	    (err = diff_archive(src, n, tgt, m, &ss, &ts, opts, out, out_len, stats)))
		goto fail;
	memset(&ao, 0, sizeof(ao));
	ao.mem_limit = SIZE_MAX;
	err = dg_delta_apply_mem(src, n, *out, *out_len, &ao, &check, &checklen);
	if (err || checklen != m || (m && memcmp(check, tgt, m) != 0)) {
		dg_log_err("self-check of the generated delta failed (%s)",
			   err ? dg_strerror(err) : "output differs");
		err = DG_ERR_DELTA_VERIFY;
		goto fail;
	}
	/* the yardstick: zstd of the target (gzip members compress little) */
	cl = ZSTD_compressBound(m);
	ct = malloc(cl);
	if (!ct) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	cl = ZSTD_compress(ct, cl, tgt, m, *out_len > m / 4 ? level : ESTIMATE_LEVEL);
	if (ZSTD_isError(cl)) {
		err = DG_ERR_DELTA_CODEC;
		goto fail;
	}
	if (stats) {
		stats->compressed_target = cl;
		stats->delta_size = *out_len;
	}
	if (*out_len > cl && !(opts && opts->allow_larger)) {
		dg_log_err("delta (%zu bytes) would not be smaller than the compressed target (%zu bytes)",
			   *out_len, cl);
		err = DG_ERR_DELTA_NOGAIN;
	}
fail:
	if (err) {
		free(*out);
		*out = NULL;
		*out_len = 0;
	}
	free(ct);
	free(check);
	segv_free(&ss);
	segv_free(&ts);
	return err;
}
