/* dg_bsdiff - the generic differ of the bsdiff family (internal to the
 * delta engine; see dg_delta.h for the public API).
 *
 * A suffix array of the source (libdivsufsort) finds, for each position of
 * the target, the longest source match; approximate matches are extended
 * forwards and backwards as in bsdiff, and the result is three streams:
 *   control: per step, varint add length, varint copy length, zigzag varint
 *            source seek (signed, relative to the end of the previous add);
 *   diff:    add-length bytes, target minus source, byte-wise;
 *   extra:   copy-length literal target bytes.
 * The applier is dg_delta's BSDIFF item. Sources are limited to < 2 GiB.
 */
#ifndef DG_BSDIFF_H
#define DG_BSDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

typedef struct dg_bsdiff_index dg_bsdiff_index;

typedef struct dg_buf {
	uint8_t *data;
	size_t len, cap;
} dg_buf;

/* Append len bytes; DG_ERR_NOMEM on failure. */
dg_err dg_buf_append(dg_buf *b, const void *data, size_t len);
/* Append v as an unsigned LEB128 varint. */
dg_err dg_buf_varint(dg_buf *b, uint64_t v);
void dg_buf_free(dg_buf *b);

/* Index src[0..n) (borrowed: must outlive the index). DG_ERR_NOMEM,
 * DG_ERR_TOOBIG (n >= 2 GiB), DG_ERR_INTERNAL (divsufsort failed). */
dg_err dg_bsdiff_index_new(const uint8_t *src, size_t n, dg_bsdiff_index **out);
void dg_bsdiff_index_free(dg_bsdiff_index *idx);

/* Diff tgt[0..m) against the indexed source into the three streams (fresh
 * buffers the caller frees with dg_buf_free). Thread-safe for concurrent
 * calls on one index. DG_ERR_NOMEM. */
dg_err dg_bsdiff_diff(const dg_bsdiff_index *idx, const uint8_t *tgt, size_t m,
		      dg_buf *ctrl, dg_buf *diff, dg_buf *extra);

#endif
