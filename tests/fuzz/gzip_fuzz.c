/* Fuzz target: gzip header parsing, inflate and the parameter search on
 * untrusted bytes. Whatever probe calls reproducible must recompress to
 * exactly the input. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_gzip.h"

struct sink {
	uint64_t n;
};

static dg_err
count(void *arg, const void *d, size_t n)
{
	struct sink *s = arg;

	(void)d;
	s->n += n;
	/* bound the work a tiny input can ask for (decompression bombs) */
	return s->n > (64u << 20) ? DG_ERR_TOOBIG : DG_OK;
}

struct buf {
	uint8_t *p;
	size_t len;
};

static dg_err
collect(void *arg, const void *d, size_t n)
{
	struct buf *b = arg;
	uint8_t *np;

	if (b->len + n > (64u << 20))
		return DG_ERR_TOOBIG;
	if (!(np = realloc(b->p, b->len + n + 1)))
		abort();
	memcpy(np + b->len, d, n);
	b->p = np;
	b->len += n;
	return DG_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink s = { 0 };
	dg_gzip_header h;
	dg_gzip_info info;
	struct buf b = { NULL, 0 };
	uint64_t n;
	dg_err e;

	if (dg_gzip_parse_header(data, size, &h) == DG_OK && h.len > size)
		abort();
	e = dg_gzip_inflate(data, size, count, &s, &n);
	if (e != DG_OK || size > 65536)
		return 0;
	/* small enough to search: a reproducible verdict must hold */
	if (dg_gzip_inflate(data, size, collect, &b, &n) != DG_OK || b.len != n)
		abort();
	if (dg_gzip_probe(data, size, &info) == DG_OK) {
		uint8_t *out;
		size_t outlen;

		if (info.raw_len != n)
			abort();
		if (dg_gzip_compress(b.p, b.len, &info.params, info.header.raw, info.header.len,
		    &out, &outlen) != DG_OK || outlen != size || memcmp(out, data, size) != 0)
			abort();
		free(out);
	}
	free(b.p);
	return 0;
}
