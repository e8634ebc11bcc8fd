/* dg_delta_gen_archive - archive-aware generation: .swu members and gzip
 * files diffed through their expansions, behind an archive item. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dg_delta_internal.h"
#include "dg_gzip.h"
#include "dg_log.h"
#include "dg_swu.h"
#include "dg_util.h"

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
	if (dg_delta_archive_expand(NULL, &ar, buf, *out) != DG_OK) {
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
	if ((err = dg_delta_diff_plain(es + soff, sn, et, tn, io, &ib, &il, ist)))
		goto fail;
	d = (struct din){ ib, -1, il };
	if ((err = dg_delta_parse(&d, 0, &ih, &iitems)))
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
	dg_delta_archive_free(ih.ar);
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

		if (g->gz && dg_delta_member_deflate(buf + in, g->clen, &def, &dlen) == DG_OK) {
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
	if ((err = dg_delta_compress_part(spec.data, spec.len, 19, 1, 0, &pl.items[0].p[0])))
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
	err = dg_delta_serialize(src, n, tgt, m, &pl, out, out_len);
	if (!err && stats) {
		*stats = big;
		snprintf(stats->method, sizeof(stats->method), "%s", pl.method);
		stats->items = (unsigned)pl.n;
	}
fail:
	dg_delta_plan_free(&pl);
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
		return dg_delta_diff_plain(src, n, tgt, m, opts, out, out_len, stats);
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
