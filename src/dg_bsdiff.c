/* dg_bsdiff - suffix-array differ producing control/diff/extra streams. */
#include "config.h"

#ifdef DG_DELTA_GENERATION
#include <divsufsort.h>
#else
#include <stdint.h>
typedef int32_t saidx_t;
#endif
#include <stdlib.h>
#include <string.h>

#include "dg_bsdiff.h"
#include "dg_log.h"

struct dg_bsdiff_index {
	const uint8_t *src;
	size_t n;
	saidx_t *sa;
};

dg_err
dg_buf_append(dg_buf *b, const void *data, size_t len)
{
	size_t ncap;
	uint8_t *p;

	if (len == 0)
		return DG_OK;
	if (b->len + len > b->cap) {
		ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + len)
			ncap *= 2;
		p = realloc(b->data, ncap);
		if (!p)
			return DG_ERR_NOMEM;
		b->data = p;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return DG_OK;
}

dg_err
dg_buf_varint(dg_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = (uint8_t)(v & 0x7F);
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	return dg_buf_append(b, tmp, n);
}

void
dg_buf_free(dg_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* The suffix array of src (libdivsufsort); none in an apply-only build. */
static dg_err
sort_suffixes(const uint8_t *src, saidx_t *sa, size_t n)
{
#ifdef DG_DELTA_GENERATION
	return divsufsort(src, sa, (saidx_t)n) == 0 ? DG_OK : DG_ERR_INTERNAL;
#else
	dg_log_err("this build has no delta generator (configured with --disable-delta-generation)");
	return DG_ERR_UNSUPPORTED;
#endif
}

dg_err
dg_bsdiff_index_new(const uint8_t *src, size_t n, dg_bsdiff_index **out)
{
	dg_bsdiff_index *idx;
	dg_err err;

	*out = NULL;
#ifndef DG_DELTA_GENERATION
	return sort_suffixes(src, NULL, 0);
#endif
	if (n >= (size_t)INT32_MAX)
		return DG_ERR_TOOBIG;
	idx = calloc(1, sizeof(*idx));
	if (!idx)
		return DG_ERR_NOMEM;
	idx->src = src;
	idx->n = n;
	if (n > 0) {
		idx->sa = malloc(n * sizeof(saidx_t));
		if (!idx->sa) {
			free(idx);
			return DG_ERR_NOMEM;
		}
		if ((err = sort_suffixes(src, idx->sa, n)) != DG_OK) {
			free(idx->sa);
			free(idx);
			return err;
		}
	}
	*out = idx;
	return DG_OK;
}

void
dg_bsdiff_index_free(dg_bsdiff_index *idx)
{
	if (!idx)
		return;
	free(idx->sa);
	free(idx);
}

static size_t
matchlen(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t i, n = alen < blen ? alen : blen;

	for (i = 0; i < n && a[i] == b[i]; i++)
		;
	return i;
}

/* Longest match of t[0..tn) in the source: binary search on the suffix
 * array, keeping the common prefix of both bounds to skip compares. */
static size_t
search(const dg_bsdiff_index *idx, const uint8_t *t, size_t tn, size_t *pos)
{
	const uint8_t *s = idx->src;
	size_t n = idx->n, lo = 0, hi = n - 1, mid, llo, lhi, l, x, y;

	llo = matchlen(s + idx->sa[lo], n - (size_t)idx->sa[lo], t, tn);
	lhi = matchlen(s + idx->sa[hi], n - (size_t)idx->sa[hi], t, tn);
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		l = llo < lhi ? llo : lhi;
		x = (size_t)idx->sa[mid];
		l += matchlen(s + x + l, n - x - l, t + l, tn - l);
		if (l == tn || x + l == n || s[x + l] < t[l]) {
			/* suffix <= t: move the low bound */
			lo = mid;
			llo = l;
			if (l == tn)
				break;
		} else {
			hi = mid;
			lhi = l;
		}
	}
	x = llo;
	y = lhi;
	if (x >= y) {
		*pos = (size_t)idx->sa[lo];
		return x;
	}
	*pos = (size_t)idx->sa[hi];
	return y;
}

static uint64_t
zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* A long match that does not beat the current alignment by 8 bytes is
 * skipped over instead of re-searched at every position: bsdiff's scan
 * is quadratic on long runs (zero-filled file system blocks) without it. */
#define SKIP_LEN 256

dg_err
dg_bsdiff_diff(const dg_bsdiff_index *idx, const uint8_t *tgt, size_t m,
	       dg_buf *ctrl, dg_buf *diff, dg_buf *extra)
{
	const uint8_t *old = idx->src;
	size_t oldsize = idx->n;
	size_t scan = 0, len = 0, pos = 0, lastscan = 0, lastpos = 0, scsc, i;
	size_t lenf, lenb, lens, overlap, k, skip;
	int64_t lastoffset = 0, s, sf, sb, ss, oldscore;
	uint8_t tmp[4096];
	size_t t;
	dg_err err = DG_OK;

	memset(ctrl, 0, sizeof(*ctrl));
	memset(diff, 0, sizeof(*diff));
	memset(extra, 0, sizeof(*extra));
	if (oldsize == 0) {
		if ((err = dg_buf_varint(ctrl, 0)) || (err = dg_buf_varint(ctrl, m)) ||
		    (err = dg_buf_varint(ctrl, 0)) || (err = dg_buf_append(extra, tgt, m)))
			goto fail;
		return DG_OK;
	}
	while (scan < m) {
		oldscore = 0;
		scan += len;
		scsc = scan;
		while (scan < m) {
			len = search(idx, tgt + scan, m - scan, &pos);
			for (; scsc < scan + len; scsc++)
				if ((int64_t)scsc + lastoffset >= 0 &&
				    (size_t)((int64_t)scsc + lastoffset) < oldsize &&
				    old[scsc + lastoffset] == tgt[scsc])
					oldscore++;
			if ((len == (size_t)oldscore && len != 0) || (int64_t)len > oldscore + 8)
				break;
			skip = len > SKIP_LEN ? len - SKIP_LEN / 2 : 1;
			for (k = 0; k < skip && scan < m; k++, scan++)
				if ((int64_t)scan + lastoffset >= 0 &&
				    (size_t)((int64_t)scan + lastoffset) < oldsize &&
				    old[scan + lastoffset] == tgt[scan])
					oldscore--;
		}
		if (scan > m)
			scan = m;
		if (len == (size_t)oldscore && scan != m)
			continue;
		/* forward extension of the previous match */
		s = 0;
		sf = 0;
		lenf = 0;
		for (i = 0; lastscan + i < scan && lastpos + i < oldsize;) {
			if (old[lastpos + i] == tgt[lastscan + i])
				s++;
			i++;
			if (s * 2 - (int64_t)i > sf * 2 - (int64_t)lenf) {
				sf = s;
				lenf = i;
			}
		}
		/* backward extension of the new match */
		lenb = 0;
		if (scan < m) {
			s = 0;
			sb = 0;
			for (i = 1; scan >= lastscan + i && pos >= i; i++) {
				if (old[pos - i] == tgt[scan - i])
					s++;
				if (s * 2 - (int64_t)i > sb * 2 - (int64_t)lenb) {
					sb = s;
					lenb = i;
				}
			}
		}
		if (lastscan + lenf > scan - lenb) {
			overlap = (lastscan + lenf) - (scan - lenb);
			s = 0;
			ss = 0;
			lens = 0;
			for (i = 0; i < overlap; i++) {
				if (tgt[lastscan + lenf - overlap + i] == old[lastpos + lenf - overlap + i])
					s++;
				if (tgt[scan - lenb + i] == old[pos - lenb + i])
					s--;
				if (s > ss) {
					ss = s;
					lens = i + 1;
				}
			}
			lenf += lens - overlap;
			lenb -= lens;
		}
		for (i = 0; i < lenf; i += t) {
			t = lenf - i < sizeof(tmp) ? lenf - i : sizeof(tmp);
			for (k = 0; k < t; k++)
				tmp[k] = (uint8_t)(tgt[lastscan + i + k] - old[lastpos + i + k]);
			if ((err = dg_buf_append(diff, tmp, t)))
				goto fail;
		}
		if ((err = dg_buf_append(extra, tgt + lastscan + lenf, (scan - lenb) - (lastscan + lenf))))
			goto fail;
		if ((err = dg_buf_varint(ctrl, lenf)) ||
		    (err = dg_buf_varint(ctrl, (scan - lenb) - (lastscan + lenf))) ||
		    (err = dg_buf_varint(ctrl, zigzag((int64_t)(pos - lenb) - (int64_t)(lastpos + lenf)))))
			goto fail;
		lastscan = scan - lenb;
		lastpos = pos - lenb;
		lastoffset = (int64_t)pos - (int64_t)scan;
	}
	return DG_OK;
fail:
	dg_buf_free(ctrl);
	dg_buf_free(diff);
	dg_buf_free(extra);
	return err;
}
