/* dg_recomp - recompressed targets (see dg_recomp.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dg_bsdiff.h"
#include "dg_gzip.h"
#include "dg_log.h"
#include "dg_recomp.h"
#include "dg_swu.h"

static dg_err
buf_sink(void *arg, const void *data, size_t len)
{
	return dg_buf_append(arg, data, len);
}

/* p[0..len) recompressed into *out when it is a single gzip member zlib
 * cannot rebuild; *out stays NULL when it is anything else. */
static dg_err
regzip(const uint8_t *p, size_t len, const char *what, uint8_t **out, size_t *out_len)
{
	dg_gzip_info info;
	dg_gzip_params gp = { DG_RECOMP_LEVEL, DG_RECOMP_MEM_LEVEL, DG_GZIP_DEFAULT,
			      DG_RECOMP_WBITS };
	dg_buf raw;
	uint64_t rl = 0;
	dg_err err;

	*out = NULL;
	*out_len = 0;
	if (len < 18 || !dg_gzip_is_gzip(p, len))
		return DG_OK;
	err = dg_gzip_probe(p, len, &info);
	if (err == DG_OK || err == DG_ERR_GZIP_MULTI)
		return DG_OK; /* reproducible, or not one member: diffed as is */
	if (err != DG_ERR_GZIP_NOT_REPRODUCIBLE) {
		dg_log_err("%s: %s", what, dg_strerror(err));
		return err;
	}
	if (info.member_len != len)
		return DG_OK;
	memset(&raw, 0, sizeof(raw));
	if ((err = dg_gzip_inflate(p, len, buf_sink, &raw, &rl)) == DG_OK)
		err = dg_gzip_compress(raw.data, raw.len, &gp, info.header.raw, info.header.len,
				       out, out_len);
	dg_buf_free(&raw);
	if (err)
		dg_log_err("%s: cannot recompress: %s", what, dg_strerror(err));
	else
		dg_log_info("%s: gzip member not reproducible by zlib: recompressed (%zu -> %zu bytes)",
			    what, len, *out_len);
	return err;
}

static dg_err
build_swu(const uint8_t *tgt, dg_swu *swu, const dg_recomp_opts *o, dg_buf *b, unsigned *n)
{
	dg_swu_writer *w = NULL;
	const dg_swu_member *old_sig = NULL;
	dg_swu_member m;
	uint8_t *data = NULL, *sig = NULL;
	size_t dlen = 0, siglen = 0, i;
	dg_err err = DG_OK;

	(void)tgt;
	if (o && o->sign_cmd) {
		if ((err = dg_swu_check_desc_first(swu))) {
			dg_log_err("--sign-command: the target's first member is not %s",
				   DG_SWU_DESC_NAME);
			return DG_ERR_INVAL;
		}
		old_sig = dg_swu_find(swu, DG_SWU_SIG_NAME, NULL);
	}
	if (!(w = dg_swu_writer_new(buf_sink, b, &err)))
		return err;
	for (i = 0; i < dg_swu_count(swu) && !err; i++) {
		const dg_swu_member *mb = dg_swu_member_at(swu, i);

		if (old_sig && mb == old_sig)
			continue; /* rewritten after sw-description */
		if ((err = regzip(mb->data, mb->size, mb->name, &data, &dlen)))
			break;
		if (data) {
			if (dlen > UINT32_MAX) {
				err = DG_ERR_TOOBIG;
				break;
			}
			m = *mb;
			m.size = (uint32_t)dlen;
			m.check = dg_swu_checksum(0, data, dlen);
			m.data = data;
			err = dg_swu_writer_add(w, &m, data);
			(*n)++;
		} else {
			err = dg_swu_writer_add(w, mb, mb->data);
		}
		free(data);
		data = NULL;
		if (err || i != 0 || !(o && o->sign_cmd))
			continue;
		/* right after sw-description: its new signature */
		if ((err = dg_swu_sign(o->sign_cmd, o->workdir, mb->data, mb->size, &sig, &siglen)))
			break;
		if (siglen > UINT32_MAX) {
			err = DG_ERR_TOOBIG;
			break;
		}
		dg_swu_member_init(&m, old_sig ? old_sig : mb, DG_SWU_SIG_NAME, (uint32_t)siglen,
				   dg_swu_checksum(0, sig, siglen));
		if (old_sig)
			memset(m.raw, 0, sizeof(m.raw)); /* size and check are new */
		err = dg_swu_writer_add(w, &m, sig);
	}
	if (!err)
		err = dg_swu_writer_finish(w, dg_swu_trailer(swu), dg_swu_block_size(swu));
	free(sig);
	dg_swu_writer_free(w);
	return err;
}

dg_err
dg_recomp_build(const uint8_t *tgt, size_t len, const dg_recomp_opts *o, uint8_t **out,
		size_t *out_len, int *changed, unsigned *n)
{
	dg_swu *swu = NULL;
	dg_buf b;
	uint8_t *gz = NULL;
	size_t gzlen = 0;
	dg_err err = DG_OK;

	*out = NULL;
	*out_len = 0;
	*changed = 0;
	*n = 0;
	memset(&b, 0, sizeof(b));
	if (o && o->sign_cmd && !o->workdir)
		return DG_ERR_INVAL;
	if (len >= DG_SWU_HDR_LEN)
		swu = dg_swu_parse(tgt, len, &err, NULL, 0);
	if (swu) {
		err = build_swu(tgt, swu, o, &b, n);
	} else if (o && o->sign_cmd) {
		dg_log_err("--sign-command: the target is not a .swu (cpio) archive");
		err = DG_ERR_INVAL;
	} else {
		err = regzip(tgt, len, "target", &gz, &gzlen);
		if (!err && gz) {
			b.data = gz;
			b.len = b.cap = gzlen;
			*n = 1;
		} else if (!err) {
			err = dg_buf_append(&b, tgt, len);
		}
	}
	dg_swu_free(swu);
	if (err) {
		dg_buf_free(&b);
		return err;
	}
	if (!b.data && !(b.data = malloc(1))) /* an empty target */
		return DG_ERR_NOMEM;
	*changed = b.len != len || memcmp(b.data, tgt, len) != 0;
	*out = b.data;
	*out_len = b.len;
	return DG_OK;
}
