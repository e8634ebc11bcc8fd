/* dg_recomp - the "recompressed target" of a delta: the target rebuilt so
 * that the delta processor can reproduce it bit for bit.
 *
 * A gzip member (a whole gzip file, or a member of a .swu) that no zlib
 * parameters reproduce (GNU gzip, pigz, zopfli...) is decompressed and
 * recompressed with zlib at DG_RECOMP_PARAMS, keeping its gzip header; a
 * .swu's sw-description can be (re)signed on the way. Member order and
 * every other byte of the archive stay as they were. The delta is then
 * made against this recompressed target, which is what gets published.
 */
#ifndef DG_RECOMP_H
#define DG_RECOMP_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

/* zlib level 9, memLevel 8, default strategy, 15-bit window (gzip -9's
 * settings as zlib has them) */
#define DG_RECOMP_LEVEL 9
#define DG_RECOMP_MEM_LEVEL 8
#define DG_RECOMP_WBITS 15

typedef struct dg_recomp_opts {
	/* NULL: no signing. Else the recompressed .swu's sw-description is
	 * signed by dg_swu_sign(sign_cmd, workdir, ...): `/bin/sh -c "CMD
	 * sw-description"` run in workdir; the sw-description.sig it makes
	 * goes right after sw-description, replacing an old one. */
	const char *sign_cmd;
	const char *workdir; /* a private directory (required with sign_cmd) */
} dg_recomp_opts;

/* Build the recompressed target of tgt[0..len) into a malloc'd *out
 * (caller frees; *out_len), and set *changed to 1 if it differs from tgt
 * (0: *out is a copy of tgt). *regzip gets the number of gzip members
 * recompressed. Errors: DG_ERR_INVAL (sign_cmd without a workdir, or for a
 * target that is not a .swu with sw-description first), DG_ERR_SWU_SIGN
 * and dg_swu_sign's other errors, DG_ERR_GZIP_* (a corrupt gzip member),
 * DG_ERR_TOOBIG (a member would exceed cpio's 4 GiB), DG_ERR_ZLIB,
 * DG_ERR_NOMEM. */
dg_err dg_recomp_build(const uint8_t *tgt, size_t len, const dg_recomp_opts *opts,
		       uint8_t **out, size_t *out_len, int *changed, unsigned *regzip);

#endif
