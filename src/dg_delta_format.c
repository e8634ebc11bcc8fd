/* dg_delta_format - reading a delta: header, recipe and its checks, the
 * parts' decoder, an archive item's spec, the prediction map (see
 * docs/delta-format.md). */
#include "config.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer */
#include <errno.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "dg_bcj.h"
#include "dg_delta_internal.h"
#include "dg_gzip.h"

/* parts each kind uses; the others must be empty */
static const unsigned kind_parts[KIND_MAX_] = { 0, 1, 0, 3, 1, 4, 1, 1, 4 };

#define SPEC_MAX (16u << 20)
#define SEGS_MAX (4u * 65536u + 4u)

void
dg_delta_archive_free(struct archive *ar)
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

static dg_err spec_load(const struct din *d, const struct part *p, const struct header *h,
			int split, struct archive **out);

/* ---- little-endian helpers ---- */
void
dg_delta_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void
dg_delta_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t
dg_delta_get32(const uint8_t *p)
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

size_t
dg_delta_xz_dict(uint64_t rlen)
{
	size_t d = 4096;

	while (d < rlen && d < ((size_t)1 << STREAM_WINDOW_LOG))
		d <<= 1;
	return d;
}

/* ---- delta input: memory or file descriptor ---- */
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
dg_err
dg_delta_parse(const struct din *d, uint64_t max_target, struct header *h, struct item **items_out)
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
	h->version = dg_delta_get32(hb + 8);
	if (h->version != FORMAT_VERSION || dg_delta_get32(hb + 12) != 0)
		return DG_ERR_DELTA_VERSION;
	if ((uint32_t)crc32(0, hb, HDR_SIZE - 4) != dg_delta_get32(hb + 108))
		return DG_ERR_DELTA_CORRUPT;
	h->src_size = get64(hb + 16);
	memcpy(h->src_sha, hb + 24, 32);
	h->tgt_size = get64(hb + 56);
	memcpy(h->tgt_sha, hb + 64, 32);
	clen = dg_delta_get32(hb + 96);
	rlen = dg_delta_get32(hb + 100);
	h->nitems = dg_delta_get32(hb + 104);
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

			p->codec = dg_delta_get32(r + 28 + 20 * k);
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
	dg_delta_archive_free(h->ar);
	h->ar = NULL;
	return err;
}

/* ---- streaming part reader ---- */

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

dg_err
dg_delta_zstd_err(size_t r)
{
	if (ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge ||
	    ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
		return DG_ERR_DELTA_MEMLIMIT;
	return DG_ERR_DELTA_CORRUPT;
}

void
dg_delta_preader_close(struct preader *r)
{
	ZSTD_freeDCtx(r->z);
	if (r->xinit)
		lzma_end(&r->x);
	free(r->in);
	free(r->ob);
	memset(r, 0, sizeof(*r));
}

/* stable: decode straight into one caller buffer (no window allocation). */
dg_err
dg_delta_preader_open(struct preader *r, const struct din *d, const struct part *p,
		      size_t mem_limit, int stable)
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
		opt.dict_size = (uint32_t)dg_delta_xz_dict(p->rlen);
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
	dg_delta_preader_close(r);
	return DG_ERR_NOMEM;
}

dg_err
dg_delta_fill_in(struct preader *r)
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
		if ((err = dg_delta_fill_in(r)))
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
				return dg_delta_zstd_err(ret);
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
dg_err
dg_delta_preader_read(struct preader *r, uint8_t *dst, size_t n)
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

dg_err
dg_delta_preader_varint(struct preader *r, uint64_t *v)
{
	uint8_t b;
	unsigned shift = 0;
	dg_err err;

	*v = 0;
	do {
		if (shift > 63)
			return DG_ERR_DELTA_CORRUPT;
		if ((err = dg_delta_preader_read(r, &b, 1)))
			return err;
		*v |= (uint64_t)(b & 0x7F) << shift;
		shift += 7;
	} while (b & 0x80);
	return DG_OK;
}

/* All decoded, and the compressed part fully consumed: nothing trails. */
dg_err
dg_delta_preader_finish(struct preader *r)
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
			if ((err = dg_delta_fill_in(r)))
				return err;
			in = (ZSTD_inBuffer){ r->in, r->in_len, r->in_pos };
			ret = ZSTD_decompressStream(r->z, &out, &in);
			if (ZSTD_isError(ret))
				return dg_delta_zstd_err(ret);
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

	n = dg_delta_rd_varint(buf, len, pos, &bad);
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
			v[k] = dg_delta_rd_varint(buf, len, pos, &bad);
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
	if ((err = dg_delta_preader_open(&r, d, p, DG_DELTA_DEFAULT_MEM_LIMIT, 0)))
		return err;
	buf = malloc(len);
	ar = calloc(1, sizeof(*ar));
	if (!buf || !ar) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((err = dg_delta_preader_read(&r, buf, len)) || (err = dg_delta_preader_finish(&r)))
		goto fail;
	err = DG_ERR_DELTA_CORRUPT;
	ar->ns = (size_t)dg_delta_rd_varint(buf, len, &pos, &bad);
	if (bad || ar->ns == 0 || ar->ns > SEGS_MAX || ar->ns > len)
		goto fail;
	if (!(ar->s = calloc(ar->ns, sizeof(*ar->s))))
		goto nomem;
	for (i = 0; i < ar->ns; i++) {
		struct aseg *g = &ar->s[i];

		v[0] = dg_delta_rd_varint(buf, len, &pos, &bad);
		v[1] = dg_delta_rd_varint(buf, len, &pos, &bad);
		v[2] = v[0] == 1 ? dg_delta_rd_varint(buf, len, &pos, &bad) : v[1];
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
	ar->nt = (size_t)dg_delta_rd_varint(buf, len, &pos, &bad);
	if (bad || ssum != h->src_size || ar->nt == 0 || ar->nt > SEGS_MAX || ar->nt > len)
		goto fail;
	if (!(ar->t = calloc(ar->nt, sizeof(*ar->t))))
		goto nomem;
	for (i = 0; i < ar->nt; i++) {
		struct aseg *g = &ar->t[i];

		v[0] = dg_delta_rd_varint(buf, len, &pos, &bad);
		v[1] = dg_delta_rd_varint(buf, len, &pos, &bad);
		if (bad || v[0] > 1 || v[1] > (1ull << 42))
			goto fail;
		g->gz = (uint8_t)v[0];
		g->rlen = g->clen = v[1];
		if (g->gz) {
			for (int k = 2; k < 8; k++)
				v[k] = dg_delta_rd_varint(buf, len, &pos, &bad);
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
	dg_delta_preader_close(&r);
	*out = ar;
	return DG_OK;
nomem:
	err = DG_ERR_NOMEM;
fail:
	free(buf);
	dg_delta_preader_close(&r);
	dg_delta_archive_free(ar);
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

static int
block_cmp(const void *x, const void *y)
{
	const struct block *a = x, *b = y;

	if (a->s0 != b->s0)
		return a->s0 < b->s0 ? -1 : 1;
	return a->shift < b->shift ? -1 : a->shift > b->shift;
}

int64_t
dg_delta_xmap_shift(void *ctx, uint64_t pos)
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

uint64_t
dg_delta_rd_varint(const uint8_t *p, size_t len, size_t *pos, int *bad)
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
dg_err
dg_delta_xmap_build(const uint8_t *ctrl, size_t len, uint64_t n, struct xmap *m)
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
		add = dg_delta_rd_varint(ctrl, len, &pos, &bad);
		copy = dg_delta_rd_varint(ctrl, len, &pos, &bad);
		seek = dg_delta_rd_varint(ctrl, len, &pos, &bad);
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
