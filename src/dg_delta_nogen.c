/* dg_delta_nogen - the generator's entry points in an apply-only build
 * (./configure --disable-delta-generation): dg_delta_gen*.c are left out,
 * and making a delta is refused with a clear error. */
#include "config.h"

#include "dg_delta.h"
#include "dg_log.h"

static dg_err
refuse(void)
{
	dg_log_err("this build has no delta generator (configured with --disable-delta-generation)");
	return DG_ERR_UNSUPPORTED;
}

dg_err
dg_delta_diff_mem(const uint8_t *src, size_t src_len, const uint8_t *tgt, size_t tgt_len,
    const dg_delta_diff_opts *opts, uint8_t **out, size_t *out_len, dg_delta_diff_stats *stats)
{
	*out = NULL;
	*out_len = 0;
	return refuse();
}

dg_err
dg_delta_diff_file(const char *source_path, const char *target_path, const char *delta_path,
    const dg_delta_diff_opts *opts, dg_delta_diff_stats *stats)
{
	return refuse();
}
