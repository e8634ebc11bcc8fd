/* Fuzz target: dg_swu_parse on untrusted .swu bytes. Whatever parses must
 * be written back bit for bit, by the copy and by the member writer. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_swu.h"

struct out {
	const uint8_t *want;
	size_t len, off;
};

/* Compare as we go instead of buffering. */
static dg_err
expect(void *arg, const void *d, size_t n)
{
	struct out *o = arg;

	if (n > o->len - o->off || memcmp(o->want + o->off, d, n) != 0)
		abort();
	o->off += n;
	return DG_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out o = { data, size, 0 };
	char why[256];
	dg_swu_writer *w;
	dg_swu *swu;
	dg_err e;
	size_t i;

	swu = dg_swu_parse(data, size, &e, why, sizeof(why));
	if (!swu) {
		if (e == DG_OK)
			abort();
		return 0;
	}
	(void)dg_swu_check_desc_first(swu);
	if (dg_swu_write(swu, expect, &o) != DG_OK || o.off != size)
		abort();
	o.off = 0;
	if (!(w = dg_swu_writer_new(expect, &o, &e)))
		abort();
	for (i = 0; i < dg_swu_count(swu); i++) {
		const dg_swu_member *m = dg_swu_member_at(swu, i);

		if (dg_swu_find(swu, m->name, NULL) != m)
			abort();
		if (dg_swu_writer_add(w, m, m->data) != DG_OK)
			abort();
	}
	if (dg_swu_writer_finish(w, dg_swu_trailer(swu), dg_swu_block_size(swu)) != DG_OK ||
	    o.off != size)
		abort();
	dg_swu_writer_free(w);
	dg_swu_free(swu);
	return 0;
}
