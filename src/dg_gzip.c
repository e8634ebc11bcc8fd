/* dg_gzip - gzip header parsing, zlib parameter search, reproducible
 * recompression. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "dg_gzip.h"
#include "dg_log.h"

#define CHUNK 16384        /* inflate output chunk fed to the candidates */
#define SCRATCH 16384      /* deflate output compared at a time */
#define IBUF 65536        /* restarted inflate output per call */
#define BATCH 8            /* candidates run side by side (~3 MiB of zlib state) */

struct dg_gzip_stream {
	z_stream z;
	int inited;
	int finished;
	dg_err failed;
	dg_gzip_write_fn fn;
	void *arg;
	uint32_t crc;
	uint64_t raw_len;
	uint64_t written;
	uint8_t out[CHUNK];
};

int
dg_gzip_is_gzip(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	return len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8;
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A NUL-terminated header string at buf[*off..len); advances *off. */
static dg_err
header_string(const uint8_t *buf, size_t len, size_t *off, const char **out)
{
	size_t avail = len - *off, lim = avail < DG_GZIP_FIELD_MAX + 1 ? avail : DG_GZIP_FIELD_MAX + 1;
	const uint8_t *nul = memchr(buf + *off, 0, lim);

	if (!nul)
		return avail <= DG_GZIP_FIELD_MAX ? DG_ERR_GZIP_TRUNCATED : DG_ERR_GZIP_FORMAT;
	*out = (const char *)buf + *off;
	*off = (size_t)(nul - buf) + 1;
	return DG_OK;
}

dg_err
dg_gzip_parse_header(const void *vbuf, size_t len, dg_gzip_header *h)
{
	static const uint8_t magic[3] = { 0x1f, 0x8b, 8 };
	const uint8_t *buf = vbuf;
	size_t off = 10, n = len < 3 ? len : 3;
	dg_err e;

	memset(h, 0, sizeof(*h));
	if (memcmp(buf, magic, n) != 0)
		return DG_ERR_GZIP_FORMAT;
	if (len < 10)
		return DG_ERR_GZIP_TRUNCATED;
	h->flags = buf[3];
	if (h->flags & 0xe0)
		return DG_ERR_GZIP_FORMAT;
	h->mtime = le32(buf + 4);
	h->xfl = buf[8];
	h->os = buf[9];
	if (h->flags & DG_GZIP_FEXTRA) {
		if (len - off < 2)
			return DG_ERR_GZIP_TRUNCATED;
		h->extra_len = (size_t)buf[off] | (size_t)buf[off + 1] << 8;
		off += 2;
		if (len - off < h->extra_len)
			return DG_ERR_GZIP_TRUNCATED;
		h->extra = buf + off;
		off += h->extra_len;
	}
	if ((h->flags & DG_GZIP_FNAME) && (e = header_string(buf, len, &off, &h->name)) != DG_OK)
		return e;
	if ((h->flags & DG_GZIP_FCOMMENT) &&
	    (e = header_string(buf, len, &off, &h->comment)) != DG_OK)
		return e;
	if (h->flags & DG_GZIP_FHCRC) {
		uint32_t c;

		if (len - off < 2)
			return DG_ERR_GZIP_TRUNCATED;
		c = (uint32_t)crc32(0L, buf, (uInt)off) & 0xffff;
		if (c != ((uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8))
			return DG_ERR_GZIP_FORMAT;
		off += 2;
	}
	h->raw = buf;
	h->len = off;
	return DG_OK;
}

dg_err
dg_gzip_params_check(const dg_gzip_params *p)
{
	if (!p || p->level < 1 || p->level > 9 || p->mem_level < 1 || p->mem_level > 9 ||
	    p->strategy > DG_GZIP_RLE || p->window_bits < 9 || p->window_bits > 15)
		return DG_ERR_INVAL;
	return DG_OK;
}

const char *
dg_gzip_params_str(const dg_gzip_params *p, char *buf, size_t size)
{
	static const char *const strat[] = { "default", "filtered", "huffman", "rle" };

	snprintf(buf, size, "level=%u mem=%u strategy=%s wbits=%u", p->level, p->mem_level,
	    p->strategy <= DG_GZIP_RLE ? strat[p->strategy] : "?", p->window_bits);
	return buf;
}

static dg_err
zerr(int rc)
{
	return rc == Z_MEM_ERROR ? DG_ERR_NOMEM : DG_ERR_ZLIB;
}

static int
zstrategy(uint8_t s)
{
	switch (s) {
	case DG_GZIP_FILTERED: return Z_FILTERED;
	case DG_GZIP_HUFFMAN_ONLY: return Z_HUFFMAN_ONLY;
	case DG_GZIP_RLE: return Z_RLE;
	default: return Z_DEFAULT_STRATEGY;
	}
}

static int
deflate_init(z_stream *z, const dg_gzip_params *p)
{
	memset(z, 0, sizeof(*z));
	return deflateInit2(z, p->level, Z_DEFLATED, -(int)p->window_bits, p->mem_level,
	    zstrategy(p->strategy));
}

/* ---- inflate ---- */

typedef dg_err (*chunk_fn)(void *arg, const uint8_t *data, size_t len);

/* Inflate the member whose header h was parsed from gz; hand every chunk
 * to fn. On success fills raw_len, crc, deflate_len and checks the
 * trailer. DG_ERR_CANCELED from fn stops early and is returned. */
static dg_err
inflate_member(const uint8_t *gz, size_t len, const dg_gzip_header *h, chunk_fn fn,
    void *arg, uint64_t *raw_len, uint32_t *crc, size_t *deflate_len)
{
	z_stream z;
	uint8_t *out = NULL;
	uint64_t total = 0;
	uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
	size_t in_off = h->len, used;
	int rc, inited = 0;
	dg_err e;

	memset(&z, 0, sizeof(z));
	if (!(out = malloc(CHUNK))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if ((rc = inflateInit2(&z, -15)) != Z_OK) {
		e = zerr(rc);
		goto fail;
	}
	inited = 1;
	for (;;) {
		size_t feed = len - in_off > (1u << 30) ? (1u << 30) : len - in_off;
		size_t got;

		z.next_in = (Bytef *)(uintptr_t)(gz + in_off);
		z.avail_in = (uInt)feed;
		z.next_out = out;
		z.avail_out = CHUNK;
		rc = inflate(&z, Z_NO_FLUSH);
		in_off += feed - z.avail_in;
		got = CHUNK - z.avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
			e = rc == Z_DATA_ERROR ? DG_ERR_GZIP_FORMAT : zerr(rc);
			goto fail;
		}
		if (got) {
			c = (uint32_t)crc32(c, out, (uInt)got);
			total += got;
			if ((e = fn(arg, out, got)) != DG_OK)
				goto fail;
		}
		if (rc == Z_STREAM_END)
			break;
		if (rc == Z_BUF_ERROR || (got == 0 && in_off == len)) {
			/* no progress possible: the input ended inside the stream */
			e = DG_ERR_GZIP_TRUNCATED;
			goto fail;
		}
	}
	used = in_off - h->len;
	if (len - in_off < 8) {
		e = DG_ERR_GZIP_TRUNCATED;
		goto fail;
	}
	if (le32(gz + in_off) != c || le32(gz + in_off + 4) != (uint32_t)total) {
		e = DG_ERR_GZIP_CRC;
		goto fail;
	}
	*raw_len = total;
	*crc = c;
	*deflate_len = used;
	e = DG_OK;
fail:
	if (inited)
		inflateEnd(&z);
	free(out);
	return e;
}

/* ---- parameter search ---- */

struct cand {
	dg_gzip_params p;
	z_stream z;
	int inited;
	int alive;
	size_t pos;         /* compressed bytes matched so far */
};

struct batch {
	struct cand *c;
	size_t n;
	size_t alive;
	const uint8_t *expect; /* the original deflate stream */
	size_t expect_max;     /* bytes available there (deflate_len once known) */
	uint8_t *scratch;
	int stop_when_dead;    /* later passes: nothing else to learn */
};

static void
kill_cand(struct batch *b, struct cand *c)
{
	if (c->alive) {
		c->alive = 0;
		b->alive--;
	}
}

/* Compare what c just produced into scratch with the original. */
static void
check_output(struct batch *b, struct cand *c, size_t produced)
{
	if (produced > b->expect_max - c->pos ||
	    memcmp(b->scratch, b->expect + c->pos, produced) != 0) {
		kill_cand(b, c);
		return;
	}
	c->pos += produced;
}

static dg_err
feed_batch(void *arg, const uint8_t *data, size_t len)
{
	struct batch *b = arg;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct cand *c = &b->c[i];

		if (!c->alive)
			continue;
		c->z.next_in = (Bytef *)(uintptr_t)data;
		c->z.avail_in = (uInt)len;
		do {
			c->z.next_out = b->scratch;
			c->z.avail_out = SCRATCH;
			if (deflate(&c->z, Z_NO_FLUSH) == Z_STREAM_ERROR) {
				kill_cand(b, c);
				break;
			}
			check_output(b, c, SCRATCH - c->z.avail_out);
		} while (c->alive && (c->z.avail_in > 0 || c->z.avail_out == 0));
	}
	if (b->stop_when_dead && b->alive == 0)
		return DG_ERR_CANCELED;
	return DG_OK;
}

static void
finish_batch(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct cand *c = &b->c[i];
		int rc;

		while (c->alive) {
			c->z.next_in = NULL;
			c->z.avail_in = 0;
			c->z.next_out = b->scratch;
			c->z.avail_out = SCRATCH;
			rc = deflate(&c->z, Z_FINISH);
			if (rc != Z_OK && rc != Z_STREAM_END) {
				kill_cand(b, c);
				break;
			}
			check_output(b, c, SCRATCH - c->z.avail_out);
			if (rc == Z_STREAM_END)
				break;
		}
		if (c->alive && c->pos != b->expect_max)
			kill_cand(b, c);
	}
}

/* The candidates in the order tried: what gzip-like tools produce first. */
static size_t
make_candidates(uint8_t xfl, dg_gzip_params *out, size_t max)
{
	static const uint8_t order6[] = { 6, 9, 1, 5, 4, 7, 8, 2, 3 };
	static const uint8_t order9[] = { 9, 6, 8, 7, 1, 5, 4, 2, 3 };
	static const uint8_t order1[] = { 1, 6, 9, 2, 3, 5, 4, 7, 8 };
	const uint8_t *lv = xfl == 2 ? order9 : xfl == 4 ? order1 : order6;
	size_t n = 0;
	int i, m, w;

#define ADD(L, M, S, W) do { \
		if (n < max) { \
			out[n].level = (L); out[n].mem_level = (M); \
			out[n].strategy = (S); out[n].window_bits = (W); n++; \
		} \
	} while (0)

	for (i = 0; i < 9; i++)
		ADD(lv[i], 8, DG_GZIP_DEFAULT, 15);
	/* Z_FILTERED only changes the lazy matcher of levels 4-9 */
	for (i = 0; i < 9; i++)
		if (lv[i] >= 4)
			ADD(lv[i], 8, DG_GZIP_FILTERED, 15);
	for (i = 0; i < 9; i++)
		ADD(lv[i], 9, DG_GZIP_DEFAULT, 15);
	for (i = 0; i < 9; i++)
		if (lv[i] >= 4)
			ADD(lv[i], 9, DG_GZIP_FILTERED, 15);
	for (m = 7; m >= 1; m--)
		for (i = 0; i < 9; i++)
			ADD(lv[i], m, DG_GZIP_DEFAULT, 15);
	for (w = 14; w >= 9; w--)
		for (i = 0; i < 9; i++)
			ADD(lv[i], 8, DG_GZIP_DEFAULT, w);
	for (m = 8; m <= 9; m++) {
		ADD(6, m, DG_GZIP_HUFFMAN_ONLY, 15);
		ADD(6, m, DG_GZIP_RLE, 15);
	}
#undef ADD
	return n;
}

static void
batch_end(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->c[i].inited)
			deflateEnd(&b->c[i].z);
}

dg_err
dg_gzip_probe(const void *vgz, size_t len, dg_gzip_info *info)
{
	const uint8_t *gz = vgz;
	dg_gzip_params all[256];
	struct cand c[BATCH];
	struct batch b;
	size_t ncand, start, i;
	int first = 1, found = 0;
	dg_err e;

	memset(info, 0, sizeof(*info));
	memset(&b, 0, sizeof(b));
	if ((e = dg_gzip_parse_header(gz, len, &info->header)) != DG_OK)
		return e;
	info->deflate_off = info->header.len;
	if (!(b.scratch = malloc(SCRATCH)))
		return DG_ERR_NOMEM;
	ncand = make_candidates(info->header.xfl, all, sizeof(all) / sizeof(all[0]));
	b.expect = gz + info->deflate_off;
	b.expect_max = len - info->deflate_off;
	for (start = 0; start < ncand && !found; start += BATCH) {
		int rc;

		memset(c, 0, sizeof(c));
		b.c = c;
		b.n = ncand - start < BATCH ? ncand - start : BATCH;
		b.alive = 0;
		b.stop_when_dead = !first;
		for (i = 0; i < b.n; i++) {
			c[i].p = all[start + i];
			if ((rc = deflate_init(&c[i].z, &c[i].p)) != Z_OK) {
				e = zerr(rc);
				batch_end(&b);
				goto fail;
			}
			c[i].inited = 1;
			c[i].alive = 1;
			b.alive++;
			info->tried++;
		}
		if (first) {
			uint64_t raw_len;
			uint32_t crc;
			size_t dlen;

			e = inflate_member(gz, len, &info->header, feed_batch, &b, &raw_len, &crc, &dlen);
			if (e != DG_OK) {
				batch_end(&b);
				goto fail;
			}
			info->raw_len = raw_len;
			info->crc = crc;
			info->deflate_len = dlen;
			info->member_len = info->deflate_off + dlen + 8;
			b.expect_max = dlen;
			first = 0;
			if (info->member_len != len) {
				batch_end(&b);
				e = DG_ERR_GZIP_MULTI;
				goto fail;
			}
		} else if (b.alive) {
			uint64_t raw_len;
			uint32_t crc;
			size_t dlen;

			e = inflate_member(gz, len, &info->header, feed_batch, &b, &raw_len, &crc, &dlen);
			if (e != DG_OK && e != DG_ERR_CANCELED) {
				batch_end(&b);
				goto fail;
			}
		}
		if (b.alive)
			finish_batch(&b);
		for (i = 0; i < b.n && !found; i++)
			if (c[i].alive) {
				info->params = c[i].p;
				found = 1;
			}
		batch_end(&b);
	}
	e = found ? DG_OK : DG_ERR_GZIP_NOT_REPRODUCIBLE;
fail:
	free(b.scratch);
	return e;
}

struct sink {
	dg_gzip_write_fn fn;
	void *arg;
};

static dg_err
sink_chunk(void *arg, const uint8_t *data, size_t len)
{
	struct sink *s = arg;

	return s->fn(s->arg, data, len);
}

dg_err
dg_gzip_inflate(const void *gz, size_t len, dg_gzip_write_fn fn, void *arg, uint64_t *raw_len)
{
	dg_gzip_header h;
	struct sink s = { fn, arg };
	uint32_t crc;
	size_t dlen;
	uint64_t n = 0;
	dg_err e;

	if ((e = dg_gzip_parse_header(gz, len, &h)) != DG_OK)
		return e;
	e = inflate_member(gz, len, &h, sink_chunk, &s, &n, &crc, &dlen);
	if (raw_len)
		*raw_len = n;
	return e;
}

/* ---- compression ---- */

static dg_err
stream_emit(dg_gzip_stream *s, const void *data, size_t len)
{
	dg_err e;

	if (len == 0)
		return DG_OK;
	if ((e = s->fn(s->arg, data, len)) != DG_OK) {
		s->failed = e;
		return e;
	}
	s->written += len;
	return DG_OK;
}

dg_gzip_stream *
dg_gzip_stream_new(const dg_gzip_params *p, const void *hdr, size_t hdrlen,
    dg_gzip_write_fn fn, void *arg, dg_err *err)
{
	dg_gzip_stream *s = NULL;
	dg_err e;
	int rc;

	if (dg_gzip_params_check(p) != DG_OK || !hdr || hdrlen < 10 || !fn) {
		e = DG_ERR_INVAL;
		goto fail;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if ((rc = deflate_init(&s->z, p)) != Z_OK) {
		e = zerr(rc);
		goto fail;
	}
	s->inited = 1;
	s->fn = fn;
	s->arg = arg;
	s->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	if ((e = stream_emit(s, hdr, hdrlen)) != DG_OK)
		goto fail;
	if (err)
		*err = DG_OK;
	return s;
fail:
	dg_gzip_stream_free(s);
	if (err)
		*err = e;
	return NULL;
}

static dg_err
stream_run(dg_gzip_stream *s, int flush)
{
	dg_err e;
	int rc;

	do {
		s->z.next_out = s->out;
		s->z.avail_out = sizeof(s->out);
		rc = deflate(&s->z, flush);
		if (rc == Z_STREAM_ERROR) {
			s->failed = DG_ERR_ZLIB;
			return DG_ERR_ZLIB;
		}
		if ((e = stream_emit(s, s->out, sizeof(s->out) - s->z.avail_out)) != DG_OK)
			return e;
	} while (s->z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
	return DG_OK;
}

dg_err
dg_gzip_stream_write(dg_gzip_stream *s, const void *raw, size_t len)
{
	const uint8_t *p = raw;
	dg_err e;

	if (s->failed)
		return s->failed;
	if (s->finished)
		return DG_ERR_INVAL;
	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		s->crc = (uint32_t)crc32(s->crc, p, n);
		s->raw_len += n;
		s->z.next_in = (Bytef *)(uintptr_t)p;
		s->z.avail_in = n;
		if ((e = stream_run(s, Z_NO_FLUSH)) != DG_OK)
			return e;
		p += n;
		len -= n;
	}
	return DG_OK;
}

dg_err
dg_gzip_stream_finish(dg_gzip_stream *s)
{
	uint8_t trailer[8];
	dg_err e;

	if (s->failed)
		return s->failed;
	if (s->finished)
		return DG_ERR_INVAL;
	s->z.next_in = NULL;
	s->z.avail_in = 0;
	if ((e = stream_run(s, Z_FINISH)) != DG_OK)
		return e;
	put_le32(trailer, s->crc);
	put_le32(trailer + 4, (uint32_t)s->raw_len);
	if ((e = stream_emit(s, trailer, sizeof(trailer))) != DG_OK)
		return e;
	s->finished = 1;
	return DG_OK;
}

uint64_t
dg_gzip_stream_written(const dg_gzip_stream *s)
{
	return s->written;
}

void
dg_gzip_stream_free(dg_gzip_stream *s)
{
	if (!s)
		return;
	if (s->inited)
		deflateEnd(&s->z);
	free(s);
}

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static dg_err
membuf_put(void *arg, const void *data, size_t len)
{
	struct membuf *m = arg;

	if (m->cap - m->len < len) {
		size_t ncap = m->cap ? m->cap : 4096;
		uint8_t *np;

		while (ncap - m->len < len) {
			if (ncap > SIZE_MAX / 2)
				return DG_ERR_NOMEM;
			ncap *= 2;
		}
		if (!(np = realloc(m->p, ncap)))
			return DG_ERR_NOMEM;
		m->p = np;
		m->cap = ncap;
	}
	memcpy(m->p + m->len, data, len);
	m->len += len;
	return DG_OK;
}

dg_err
dg_gzip_compress(const void *raw, size_t len, const dg_gzip_params *p, const void *hdr,
    size_t hdrlen, uint8_t **out, size_t *outlen)
{
	struct membuf m = { NULL, 0, 0 };
	dg_gzip_stream *s;
	dg_err e;

	*out = NULL;
	*outlen = 0;
	if (!(s = dg_gzip_stream_new(p, hdr, hdrlen, membuf_put, &m, &e)))
		goto fail;
	if ((e = dg_gzip_stream_write(s, raw, len)) != DG_OK ||
	    (e = dg_gzip_stream_finish(s)) != DG_OK)
		goto fail;
	dg_gzip_stream_free(s);
	*out = m.p;
	*outlen = m.len;
	return DG_OK;
fail:
	dg_gzip_stream_free(s);
	free(m.p);
	return e;
}

/* ---- restart points ---- */

/* zlib's memory for one thread's chunks, kept from one chunk to the next:
 * a fresh stream each time (its output must not depend on what ran
 * before; zlib clears what it reads), but no fresh pages to fault in. */
#define ARENA 8

struct dg_gzip_ctx {
	struct {
		void *p;
		size_t size;
		int used;
	} blk[ARENA];
	uint8_t *buf;           /* IBUF bytes */
};

dg_gzip_ctx *
dg_gzip_ctx_new(void)
{
	dg_gzip_ctx *c = calloc(1, sizeof(*c));

	if (c && !(c->buf = malloc(IBUF))) {
		free(c);
		c = NULL;
	}
	return c;
}

void
dg_gzip_ctx_free(dg_gzip_ctx *c)
{
	if (!c)
		return;
	for (int i = 0; i < ARENA; i++)
		free(c->blk[i].p);
	free(c->buf);
	free(c);
}

static voidpf
arena_alloc(voidpf opaque, uInt items, uInt size)
{
	dg_gzip_ctx *c = opaque;
	size_t n = (size_t)items * size;
	int i, fr = -1;

	for (i = 0; i < ARENA; i++) {
		if (c->blk[i].p && !c->blk[i].used && c->blk[i].size == n) {
			c->blk[i].used = 1;
			return c->blk[i].p;
		}
		if (!c->blk[i].p && fr < 0)
			fr = i;
	}
	if (fr < 0)
		return malloc(n);
	if (!(c->blk[fr].p = malloc(n)))
		return NULL;
	c->blk[fr].size = n;
	c->blk[fr].used = 1;
	return c->blk[fr].p;
}

static void
arena_free(voidpf opaque, voidpf p)
{
	dg_gzip_ctx *c = opaque;

	for (int i = 0; i < ARENA; i++)
		if (c->blk[i].p == p) {
			c->blk[i].used = 0;
			return;
		}
	free(p);
}

static void
use_ctx(z_stream *z, dg_gzip_ctx *c)
{
	memset(z, 0, sizeof(*z));
	if (c) {
		z->zalloc = arena_alloc;
		z->zfree = arena_free;
		z->opaque = c;
	}
}

#define FEED_MAX (1u << 30) /* zlib's avail_in is an unsigned int */

static const uint8_t zero_window[DG_GZIP_WINDOW];

static uInt
feed_len(uint64_t left)
{
	return left > FEED_MAX ? FEED_MAX : (uInt)left;
}

/* One inflate call on d[*in..len) into out[0..cap): advances *in, sets
 * *got; returns zlib's code. */
static int
inflate_step(z_stream *z, const uint8_t *d, size_t len, uint64_t *in, uint8_t *out, uInt cap,
    int flush, size_t *got)
{
	uInt feed = feed_len(len - *in);
	int rc;

	z->next_in = (Bytef *)(uintptr_t)(d + *in);
	z->avail_in = feed;
	z->next_out = out;
	z->avail_out = cap;
	rc = inflate(z, flush);
	*in += feed - z->avail_in;
	*got = cap - z->avail_out;
	return rc;
}

dg_err
dg_gzip_blocks(const void *def, size_t len, int (*fn)(void *arg, uint64_t bit, uint64_t raw),
    void *arg)
{
	const uint8_t *d = def;
	uint8_t *out;
	uint64_t in = 0, raw = 0, last = 0;
	z_stream z;
	dg_err e = DG_OK;
	int rc;

	memset(&z, 0, sizeof(z));
	if (!(out = malloc(CHUNK)))
		return DG_ERR_NOMEM;
	if ((rc = inflateInit2(&z, -15)) != Z_OK) {
		free(out);
		return zerr(rc);
	}
	for (;;) {
		size_t got;

		rc = inflate_step(&z, d, len, &in, out, CHUNK, Z_BLOCK, &got);
		raw += got;
		if (rc == Z_STREAM_END)
			break;
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			e = rc == Z_DATA_ERROR ? DG_ERR_GZIP_FORMAT : zerr(rc);
			break;
		}
		if (rc == Z_BUF_ERROR || (in == len && got == 0 && !(z.data_type & 128))) {
			e = DG_ERR_GZIP_TRUNCATED;
			break;
		}
		if (z.data_type & 128) {
			uint64_t bit = in * 8 - (uint64_t)(z.data_type & 7);

			if (bit != last && raw && fn(arg, bit, raw))
				break;
			last = bit;
		}
	}
	inflateEnd(&z);
	free(out);
	return e;
}

/* An inflater positioned at the boundary at bit of def[0..len). */
static dg_err
inflate_at(z_stream *z, dg_gzip_ctx *c, const uint8_t *d, size_t len, uint64_t bit, uint64_t *in)
{
	int rc;

	use_ctx(z, c);
	if (bit > (uint64_t)len * 8)
		return DG_ERR_GZIP_FORMAT;
	if ((rc = inflateInit2(z, -15)) != Z_OK)
		return zerr(rc);
	*in = bit / 8;
	if (bit % 8) {
		/* the rest of the byte the boundary falls in */
		unsigned used = (unsigned)(bit % 8);

		if (inflatePrime(z, (int)(8 - used), d[*in] >> used) != Z_OK)
			goto fail;
		(*in)++;
	}
	if (bit && inflateSetDictionary(z, zero_window, DG_GZIP_WINDOW) != Z_OK)
		goto fail;
	return DG_OK;
fail:
	inflateEnd(z);
	return DG_ERR_ZLIB;
}

dg_err
dg_gzip_inflate_from(dg_gzip_ctx *ctx, const void *def, size_t len, uint64_t bit, uint64_t skip,
    uint64_t n, int last, dg_gzip_write_fn fn, void *arg)
{
	const uint8_t *d = def;
	uint8_t *buf;
	uint64_t in;
	z_stream z;
	dg_err e;
	int rc;

	if ((e = inflate_at(&z, ctx, d, len, bit, &in)))
		return e;
	if (!(buf = ctx ? ctx->buf : malloc(IBUF))) {
		e = DG_ERR_NOMEM;
		goto done;
	}
	for (;;) {
		uint64_t want = skip ? skip : n;
		size_t got;
		int ending = !skip && !n;

		if (ending && !last)
			break;
		/* all out: one byte of room shows whether the stream ends */
		rc = inflate_step(&z, d, len, &in, buf, ending ? 1 : want < IBUF ? (uInt)want : IBUF,
		    Z_NO_FLUSH, &got);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
			e = rc == Z_DATA_ERROR ? DG_ERR_GZIP_FORMAT : zerr(rc);
			break;
		}
		if (ending) {
			if (got || rc != Z_STREAM_END || in != len)
				e = DG_ERR_GZIP_FORMAT;
			break;
		}
		if (skip)
			skip -= got;
		else if (got) {
			n -= got;
			if ((e = fn(arg, buf, got)))
				break;
		}
		if (rc == Z_STREAM_END) {
			if (skip || n)
				e = DG_ERR_GZIP_TRUNCATED;
			else if (!last || in != len)
				e = DG_ERR_GZIP_FORMAT;
			break;
		}
		if (rc == Z_BUF_ERROR || (got == 0 && in == len)) {
			e = DG_ERR_GZIP_TRUNCATED;
			break;
		}
	}
done:
	inflateEnd(&z);
	if (!ctx)
		free(buf);
	return e;
}

dg_err
dg_gzip_deflate_from(dg_gzip_ctx *ctx, const dg_gzip_params *p, const uint8_t *raw, uint64_t from,
    uint64_t limit, unsigned nbits, unsigned bits, int last, void *out, size_t n)
{
	uint64_t pos = from;
	uint8_t extra[64];
	z_stream z;
	dg_err e = DG_OK;
	int rc;

	if (dg_gzip_params_check(p) || limit < from || nbits > 7 || bits >> nbits)
		return DG_ERR_INVAL;
	use_ctx(&z, ctx);
	if ((rc = deflateInit2(&z, p->level, Z_DEFLATED, -(int)p->window_bits, p->mem_level,
	    zstrategy(p->strategy))) != Z_OK)
		return zerr(rc);
	if (from) {
		uint64_t w = from < DG_GZIP_WINDOW ? from : DG_GZIP_WINDOW;

		if (deflateSetDictionary(&z, raw + from - w, (uInt)w) != Z_OK) {
			e = DG_ERR_ZLIB;
			goto done;
		}
	}
	if (nbits && deflatePrime(&z, (int)nbits, (int)bits) != Z_OK) {
		e = DG_ERR_ZLIB;
		goto done;
	}
	z.next_out = out;
	z.avail_out = n > FEED_MAX ? FEED_MAX : (uInt)n;
	if (last) {
		/* the whole rest, then the stream's end, in exactly n bytes */
		int over = 0;

		for (;;) {
			uInt feed = feed_len(limit - pos), before;

			if (z.avail_out == 0) {
				if (n) {
					z.avail_out = n > FEED_MAX ? FEED_MAX : (uInt)n;
				} else {
					z.next_out = extra;
					z.avail_out = sizeof(extra);
					over = 1;
				}
			}
			before = z.avail_out;
			z.next_in = (Bytef *)(uintptr_t)(raw + pos);
			z.avail_in = feed;
			rc = deflate(&z, pos + feed == limit ? Z_FINISH : Z_NO_FLUSH);
			pos += feed - z.avail_in;
			if (rc == Z_STREAM_ERROR) {
				e = DG_ERR_ZLIB;
				break;
			}
			if (over) {
				if (z.avail_out != sizeof(extra) || rc != Z_STREAM_END)
					e = DG_ERR_GZIP_NOT_REPRODUCIBLE;
				break;
			}
			n -= before - z.avail_out;
			if (rc == Z_STREAM_END) {
				if (n)
					e = DG_ERR_GZIP_NOT_REPRODUCIBLE;
				break;
			}
		}
		goto done;
	}
	/* feed a little at a time: bytes past the n wanted are wasted work */
	while (n) {
		uInt feed = limit - pos > CHUNK ? CHUNK : (uInt)(limit - pos), before;

		if (feed == 0) {
			e = DG_ERR_GZIP_NOT_REPRODUCIBLE;
			break;
		}
		z.next_in = (Bytef *)(uintptr_t)(raw + pos);
		z.avail_in = feed;
		do {
			before = z.avail_out;
			rc = deflate(&z, Z_NO_FLUSH);
			n -= before - z.avail_out;
			if (rc == Z_STREAM_ERROR) {
				e = DG_ERR_ZLIB;
				goto done;
			}
			if (z.avail_out == 0 && n)
				z.avail_out = n > FEED_MAX ? FEED_MAX : (uInt)n;
		} while (z.avail_in && n);
		pos += feed - z.avail_in;
	}
done:
	deflateEnd(&z);
	return e;
}

struct bvec {
	dg_gzip_split *v;
	size_t n, cap;
	int nomem;
};

static int
bvec_add(void *arg, uint64_t bit, uint64_t raw)
{
	struct bvec *b = arg;

	if (b->n == b->cap) {
		size_t ncap = b->cap ? 2 * b->cap : 256;
		dg_gzip_split *nv = realloc(b->v, ncap * sizeof(*nv));

		if (!nv) {
			b->nomem = 1;
			return -1;
		}
		b->v = nv;
		b->cap = ncap;
	}
	b->v[b->n++] = (dg_gzip_split){ .bit = bit, .raw = raw };
	return 0;
}

static dg_err
all_blocks(const void *def, size_t len, struct bvec *b)
{
	dg_err e;

	memset(b, 0, sizeof(*b));
	e = dg_gzip_blocks(def, len, bvec_add, b);
	if (!e && b->nomem)
		e = DG_ERR_NOMEM;
	if (e) {
		free(b->v);
		memset(b, 0, sizeof(*b));
	}
	return e;
}

/* The planners' start: every at least DG_GZIP_MIN_EVERY; no boundaries
 * (b->n 0) when the member is too small for two chunks. */
static dg_err
plan_blocks(const void *def, size_t len, uint64_t rlen, uint64_t *every, struct bvec *b)
{
	memset(b, 0, sizeof(*b));
	if (*every && *every < DG_GZIP_MIN_EVERY)
		*every = DG_GZIP_MIN_EVERY;
	if (!*every || rlen < 2 * *every)
		return DG_OK;
	return all_blocks(def, len, b);
}

/* Where inflating from bl (zero window) turns right for good, as an
 * offset from bl->raw, or UINT64_MAX when not within max_dirty. */
static uint64_t
clean_offset(const uint8_t *d, size_t len, const dg_gzip_split *bl, const uint8_t *raw,
    uint64_t rlen, uint64_t max_dirty)
{
	uint64_t in, at = 0, run = 0, runstart = 0, want = rlen - bl->raw;
	uint8_t *buf;
	z_stream z;
	uint64_t res = UINT64_MAX;
	int rc;

	if (!(buf = malloc(CHUNK)))
		return UINT64_MAX;
	if (inflate_at(&z, NULL, d, len, bl->bit, &in)) {
		free(buf);
		return UINT64_MAX;
	}
	while (at < want) {
		size_t got, i;

		rc = inflate_step(&z, d, len, &in, buf, want - at < CHUNK ? (uInt)(want - at) : CHUNK,
		    Z_NO_FLUSH, &got);
		if ((rc != Z_OK && rc != Z_STREAM_END) || got == 0)
			break;
		for (i = 0; i < got; i++) {
			if (buf[i] != raw[bl->raw + at + i])
				run = 0;
			else if (!run++)
				runstart = at + i;
		}
		at += got;
		/* 32 KiB right in a row, or right up to the end */
		if (run >= DG_GZIP_WINDOW || (at == want && run)) {
			res = runstart;
			break;
		}
		if (at - run > max_dirty || rc == Z_STREAM_END)
			break;
	}
	inflateEnd(&z);
	free(buf);
	return res <= max_dirty ? res : UINT64_MAX;
}

dg_err
dg_gzip_plan_inflate(const void *def, size_t len, const uint8_t *raw, uint64_t rlen,
    uint64_t every, dg_gzip_split **out, size_t *n)
{
	struct bvec b;
	dg_gzip_split *v = NULL;
	size_t nv = 0, i, k;
	uint64_t next = every;
	dg_err e;

	*out = NULL;
	*n = 0;
	if ((e = plan_blocks(def, len, rlen, &every, &b)) || !b.n)
		return e;
	next = every;
	if (b.n && !(v = malloc(b.n * sizeof(*v)))) {
		free(b.v);
		return DG_ERR_NOMEM;
	}
	i = 0;
	for (;;) {
		int found = 0;

		while (i < b.n && b.v[i].raw < next)
			i++;
		if (i == b.n || rlen - b.v[i].raw < every / 2)
			break;
		/* the first boundary from here that turns right soon enough;
		 * after 32 that do not, look again a little further on */
		for (k = i; k < b.n && k < i + 32 && rlen - b.v[k].raw >= every / 2; k++) {
			uint64_t c = clean_offset(def, len, &b.v[k], raw, rlen, DG_GZIP_MAX_DIRTY / 4);

			if (c != UINT64_MAX && (!nv || b.v[k].raw > v[nv - 1].clean)) {
				v[nv] = b.v[k];
				v[nv].clean = b.v[k].raw + c;
				nv++;
				found = 1;
				break;
			}
		}
		if (found) {
			next = b.v[k].raw + every;
			i = k + 1;
		} else if (k < b.n && k == i + 32) {
			next = b.v[k].raw + every / 4;
			i = k;
		} else {
			break;
		}
	}
	free(b.v);
	if (!nv) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = nv;
	return DG_OK;
}

/* ---- checking deflate restart points, in threads ---- */

struct dcheck {
	const uint8_t *def;
	size_t len;
	const uint8_t *raw;
	uint64_t rlen;
	const dg_gzip_params *p;
	const dg_gzip_split *v; /* chosen points, nv of them */
	size_t nv;
	int *bad;               /* per chunk (nv + 1): 0 ok, 1 start wrong, 2 end unreached */
	pthread_mutex_t mu;
	size_t next;
};

static void
check_chunk(struct dcheck *c, size_t j)
{
	uint64_t from = j ? c->v[j - 1].raw : 0, b0 = j ? c->v[j - 1].bit / 8 : 0;
	unsigned nbits = j ? (unsigned)(c->v[j - 1].bit % 8) : 0, bits = j ? c->v[j - 1].bits : 0;
	int last = j == c->nv;
	uint64_t b1 = last ? c->len : c->v[j].bit / 8;
	uint64_t limit = last ? c->rlen : c->v[j].raw + DG_GZIP_SLACK;
	uint8_t *buf;
	dg_err e;

	if (limit > c->rlen)
		limit = c->rlen;
	if (!(buf = malloc(b1 - b0 ? (size_t)(b1 - b0) : 1))) {
		c->bad[j] = 1;
		return;
	}
	e = dg_gzip_deflate_from(NULL, c->p, c->raw, from, limit, nbits, bits, last, buf,
	    (size_t)(b1 - b0));
	if (e == DG_ERR_GZIP_NOT_REPRODUCIBLE && !last)
		c->bad[j] = 2;
	else if (e || memcmp(buf, c->def + b0, (size_t)(b1 - b0)) != 0)
		c->bad[j] = 1;
	free(buf);
}

static void *
check_thread(void *arg)
{
	struct dcheck *c = arg;

	for (;;) {
		size_t j;

		pthread_mutex_lock(&c->mu);
		j = c->next++;
		pthread_mutex_unlock(&c->mu);
		if (j > c->nv)
			return NULL;
		check_chunk(c, j);
	}
}

dg_err
dg_gzip_plan_deflate(const void *def, size_t len, const uint8_t *raw, uint64_t rlen,
    const dg_gzip_params *p, uint64_t every, unsigned threads, dg_gzip_split **out, size_t *n)
{
	const uint8_t *d = def;
	struct bvec b;
	struct dcheck c;
	dg_gzip_split *v = NULL;
	size_t nv = 0, i, k;
	uint64_t next = every;
	pthread_t tid[16];
	unsigned nt, t;
	int round, *bad = NULL;
	dg_err e;

	*out = NULL;
	*n = 0;
	if ((e = plan_blocks(def, len, rlen, &every, &b)) || !b.n)
		return e;
	next = every;
	v = b.v; /* chosen points are compacted in place */
	for (i = 0; i < b.n; i++) {
		if (b.v[i].raw < next || rlen - b.v[i].raw < every / 2)
			continue;
		v[nv] = b.v[i];
		v[nv].bits = (uint8_t)(d[v[nv].bit / 8] & ((1u << (v[nv].bit % 8)) - 1));
		nv++;
		next = b.v[i].raw + every;
	}
	if (nv && !(bad = calloc(nv + 1, sizeof(*bad)))) {
		free(v);
		return DG_ERR_NOMEM;
	}
	for (round = 0; nv && round < 4; round++) {
		int any = 0;

		memset(&c, 0, sizeof(c));
		c = (struct dcheck){ .def = d, .len = len, .raw = raw, .rlen = rlen, .p = p,
				     .v = v, .nv = nv, .bad = bad };
		memset(bad, 0, (nv + 1) * sizeof(*bad));
		pthread_mutex_init(&c.mu, NULL);
		nt = threads < 1 ? 1 : threads > 16 ? 16 : threads;
		for (t = 0; t < nt; t++)
			if (pthread_create(&tid[t], NULL, check_thread, &c) != 0)
				break;
		if (t == 0)
			check_thread(&c);
		for (unsigned u = 0; u < t; u++)
			pthread_join(tid[u], NULL);
		pthread_mutex_destroy(&c.mu);
		/* drop the start of a chunk that came out wrong, the end of
		 * one that needed more input than its slack */
		for (i = 0, k = 0; i < nv; i++) {
			int drop = bad[i + 1] == 1 || bad[i] == 2;

			any |= drop;
			if (!drop)
				v[k++] = v[i];
		}
		if (bad[0] == 1) {
			/* wrong from the stream's start: no restart helps */
			k = 0;
			any = 0;
		}
		nv = k;
		if (!any)
			break;
	}
	if (round == 4)
		nv = 0;
	free(bad);
	if (!nv) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = nv;
	return DG_OK;
}
