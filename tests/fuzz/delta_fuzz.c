/* Fuzz target: the delta reader and applier.
 *
 * Input: a 2-byte little-endian source length L, L bytes of source, then
 * the delta (corpus/delta/archive-chunked: a gzip pair with restart
 * points). The applier must reject anything malformed with an error,
 * never crash, hang or read out of bounds; limits keep runs small. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "dg_delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dg_delta_apply_opts o = { 0 };
	uint8_t *out = NULL;
	size_t out_len = 0, l;

	if (size < 2)
		return 0;
	l = (size_t)data[0] | (size_t)data[1] << 8;
	if (l > size - 2)
		return 0;
	o.max_target_size = 4u << 20;
	o.threads = 2; /* chunked archives (item kind 7) take the threaded path */
	if (dg_delta_apply_mem(data + 2, l, data + 2 + l, size - 2 - l, &o, &out, &out_len) == DG_OK &&
	    out_len > o.max_target_size)
		abort();
	free(out);
	return 0;
}
