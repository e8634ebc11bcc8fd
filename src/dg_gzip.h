/* dg_gzip - gzip members that can be rebuilt bit for bit with zlib.
 *
 * A delta of a gzip file is made on the decompressed bytes; the processor
 * must then recompress them into exactly the original gzip bytes. That is
 * possible when some zlib deflate parameters (level, memLevel, strategy,
 * windowBits) reproduce the original deflate stream: dg_gzip_probe finds
 * them, trying the likely ones first and dropping a candidate at its first
 * byte that differs. The gzip header is kept as raw bytes (name, extra,
 * comment, mtime, header CRC all survive); the trailer (CRC-32, ISIZE) is
 * recomputed. zlib's output does not depend on how its input is split into
 * calls, so the streaming compressor matches the one-shot one.
 */
#ifndef DG_GZIP_H
#define DG_GZIP_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

#define DG_GZIP_FTEXT 0x01
#define DG_GZIP_FHCRC 0x02
#define DG_GZIP_FEXTRA 0x04
#define DG_GZIP_FNAME 0x08
#define DG_GZIP_FCOMMENT 0x10

/* Longest name or comment accepted in a header (bytes before the NUL). */
#define DG_GZIP_FIELD_MAX 65536

/* zlib deflate parameters (deflateInit2 with -window_bits, raw deflate). */
typedef struct dg_gzip_params {
	uint8_t level;       /* 1-9 (0, stored, depends on buffer sizes) */
	uint8_t mem_level;   /* 1-9 */
	uint8_t strategy;    /* DG_GZIP_DEFAULT .. DG_GZIP_RLE */
	uint8_t window_bits; /* 9-15 */
} dg_gzip_params;

/* Strategy values (zlib's Z_* numbers, kept stable here). */
#define DG_GZIP_DEFAULT 0
#define DG_GZIP_FILTERED 1
#define DG_GZIP_HUFFMAN_ONLY 2
#define DG_GZIP_RLE 3

/* A parsed gzip header. Pointers point into the parsed buffer. */
typedef struct dg_gzip_header {
	uint8_t flags, xfl, os;
	uint32_t mtime;
	const uint8_t *extra; /* FEXTRA payload or NULL */
	size_t extra_len;
	const char *name;     /* NUL-terminated FNAME or NULL */
	const char *comment;  /* NUL-terminated FCOMMENT or NULL */
	const uint8_t *raw;   /* the whole header: raw[0..len) */
	size_t len;
} dg_gzip_header;

/* What dg_gzip_probe learnt about the first member. */
typedef struct dg_gzip_info {
	dg_gzip_header header;
	dg_gzip_params params; /* valid only when dg_gzip_probe returned DG_OK */
	uint64_t raw_len;      /* decompressed bytes (exact, not ISIZE) */
	uint32_t crc;          /* CRC-32 of the decompressed bytes */
	size_t deflate_off;    /* deflate stream: gz[deflate_off..+deflate_len) */
	size_t deflate_len;
	size_t member_len;     /* header + deflate + 8-byte trailer */
	unsigned tried;        /* candidates tried (for logs and benchmarks) */
} dg_gzip_info;

/* Receives output in order; an error stops the operation and is returned. */
typedef dg_err (*dg_gzip_write_fn)(void *arg, const void *data, size_t len);

/* 1 if buf starts with the gzip magic and method (1f 8b 08), else 0. */
int dg_gzip_is_gzip(const void *buf, size_t len);

/* Parse the header at buf. Errors: DG_ERR_GZIP_FORMAT (bad magic, method
 * not deflate, reserved flags, name/comment without NUL within
 * DG_GZIP_FIELD_MAX, header CRC mismatch), DG_ERR_GZIP_TRUNCATED. */
dg_err dg_gzip_parse_header(const void *buf, size_t len, dg_gzip_header *out);

/* Decompress the first member of gz, verify CRC-32 and ISIZE, and search
 * for parameters reproducing its deflate bytes. DG_OK: out fully filled.
 * DG_ERR_GZIP_NOT_REPRODUCIBLE or DG_ERR_GZIP_MULTI (another member or
 * other bytes follow the first): out filled except params. Other errors:
 * DG_ERR_GZIP_FORMAT, DG_ERR_GZIP_TRUNCATED, DG_ERR_GZIP_CRC, DG_ERR_ZLIB,
 * DG_ERR_NOMEM (out undefined). gz must stay valid while out is used. */
dg_err dg_gzip_probe(const void *gz, size_t len, dg_gzip_info *out);

/* Stream the decompressed bytes of the first member of gz to fn(arg) in
 * chunks, verifying CRC-32 and ISIZE at the end (the data already passed
 * on is then wrong: the caller must discard it on error). *raw_len gets
 * the byte count. Errors as dg_gzip_probe minus the search ones, the
 * callback's. Bytes after the first member are ignored. */
dg_err dg_gzip_inflate(const void *gz, size_t len, dg_gzip_write_fn fn,
    void *arg, uint64_t *raw_len);

/* One-shot: the gzip member made of header hdr[0..hdrlen) (raw, as in
 * dg_gzip_header.raw), raw deflated with p, and the trailer; into a
 * malloc'd *out (caller frees). DG_ERR_INVAL (bad params, hdrlen < 10),
 * DG_ERR_ZLIB, DG_ERR_NOMEM. */
dg_err dg_gzip_compress(const void *raw, size_t len, const dg_gzip_params *p,
    const void *hdr, size_t hdrlen, uint8_t **out, size_t *outlen);

/* Streaming compressor: same bytes as dg_gzip_compress, sent to fn(arg)
 * (the header at once, then deflate output, the trailer at finish). */
typedef struct dg_gzip_stream dg_gzip_stream;
/* NULL with *err: DG_ERR_INVAL, DG_ERR_ZLIB, DG_ERR_NOMEM, callback's. */
dg_gzip_stream *dg_gzip_stream_new(const dg_gzip_params *p, const void *hdr,
    size_t hdrlen, dg_gzip_write_fn fn, void *arg, dg_err *err);
/* Feed len bytes. DG_ERR_INVAL after finish or a previous error,
 * DG_ERR_ZLIB, callback's error. */
dg_err dg_gzip_stream_write(dg_gzip_stream *s, const void *raw, size_t len);
/* Flush the deflate stream and write the trailer. Errors as write. */
dg_err dg_gzip_stream_finish(dg_gzip_stream *s);
/* Compressed bytes sent so far (header and trailer included). */
uint64_t dg_gzip_stream_written(const dg_gzip_stream *s);
void dg_gzip_stream_free(dg_gzip_stream *s);

/* "level=9 mem=8 strategy=default wbits=15" into buf (always NUL-ended). */
const char *dg_gzip_params_str(const dg_gzip_params *p, char *buf, size_t size);
/* DG_OK if p is within the ranges above, else DG_ERR_INVAL. */
dg_err dg_gzip_params_check(const dg_gzip_params *p);

/* ---- restart points (parallel inflate and deflate of one member) ----
 *
 * A block boundary of a deflate stream is a place another thread can start
 * from. Inflating from one with a window of zeros gives wrong bytes only
 * where the first blocks copy from before the boundary; once 32 KiB in a
 * row are right, every later byte is right too (a copy reaches back at
 * most 32 KiB), so the generator records that *clean* offset and the
 * processor keeps only what comes after it. Deflating from one with the
 * 32 KiB before it as the dictionary and the partial byte's bits primed
 * reproduces zlib's own stream from there (its state at a block boundary
 * is the window, which the dictionary restores); the generator checks
 * every chunk before it records the point. */

/* Window assumed before a restart: this many zero bytes. */
#define DG_GZIP_WINDOW 32768u
/* A deflate chunk may read this far past its end boundary (lookahead). */
#define DG_GZIP_SLACK 65536u
/* Points are at least this far apart on average (readers check it). */
#define DG_GZIP_MIN_EVERY 65536u
/* Longest wrong stretch a recorded inflate restart may produce. */
#define DG_GZIP_MAX_DIRTY (1u << 20)

/* zlib memory reused by one thread's chunks (ctx arguments may be NULL). */
typedef struct dg_gzip_ctx dg_gzip_ctx;
dg_gzip_ctx *dg_gzip_ctx_new(void);
void dg_gzip_ctx_free(dg_gzip_ctx *c);

typedef struct dg_gzip_split {
	uint64_t bit;   /* bit offset of the boundary in the deflate stream */
	uint64_t raw;   /* decompressed bytes before the boundary */
	uint64_t clean; /* inflate points: right output from here (>= raw) */
	uint8_t bits;   /* deflate points: the low (bit & 7) bits of the
	                 * stream's byte bit / 8 */
} dg_gzip_split;

/* Calls fn(arg, bit, raw) for every boundary between two blocks of the raw
 * deflate stream def[0..len) (not its start or end), in order; a non-zero
 * return stops the walk (DG_OK). DG_ERR_GZIP_FORMAT, _TRUNCATED,
 * DG_ERR_NOMEM, DG_ERR_ZLIB. */
dg_err dg_gzip_blocks(const void *def, size_t len,
    int (*fn)(void *arg, uint64_t bit, uint64_t raw), void *arg);

/* Inflate def[0..len) from the boundary at bit (0: the start; else with a
 * window of DG_GZIP_WINDOW zeros), drop the first skip output bytes and
 * hand the next n to fn(arg) in pieces. last: the stream must end right
 * there, with def (else DG_ERR_GZIP_FORMAT). Errors: DG_ERR_GZIP_FORMAT
 * (invalid data, bit past the end), DG_ERR_GZIP_TRUNCATED (output ends
 * before), DG_ERR_NOMEM, fn's. */
dg_err dg_gzip_inflate_from(dg_gzip_ctx *ctx, const void *def, size_t len, uint64_t bit,
    uint64_t skip, uint64_t n, int last, dg_gzip_write_fn fn, void *arg);

/* Deflate raw[from..) with p as zlib's stream restarted at a boundary:
 * window raw[from - 32 KiB..from), the low nbits of bits primed. Exactly n
 * bytes go to out: the stream's bytes from byte bit / 8 on. last: the
 * input is raw[from..limit) and the stream is finished there, and must be
 * exactly n bytes; else input is fed from raw[from..limit) until n bytes
 * are out. Errors: DG_ERR_GZIP_NOT_REPRODUCIBLE (n bytes do not come out so), DG_ERR_INVAL,
 * DG_ERR_NOMEM, DG_ERR_ZLIB. */
dg_err dg_gzip_deflate_from(dg_gzip_ctx *ctx, const dg_gzip_params *p, const uint8_t *raw,
    uint64_t from, uint64_t limit, unsigned nbits, unsigned bits, int last, void *out, size_t n);

/* Restart points for the processor's parallel inflate of def (raw: its
 * output, rlen bytes): about one per `every` bytes (at least
 * DG_GZIP_MIN_EVERY), each with its clean offset (at most
 * DG_GZIP_MAX_DIRTY / 4 after it, and before the next point). *out
 * malloc'd (NULL when none). Errors as dg_gzip_blocks. */
dg_err dg_gzip_plan_inflate(const void *def, size_t len, const uint8_t *raw, uint64_t rlen,
    uint64_t every, dg_gzip_split **out, size_t *n);

/* Restart points for the processor's parallel deflate: about one per
 * `every` bytes (at least DG_GZIP_MIN_EVERY) where dg_gzip_deflate_from rebuilds def exactly, every
 * chunk checked (threads at a time); points whose chunk differs are
 * dropped. *out malloc'd (NULL when none). Errors as dg_gzip_blocks. */
dg_err dg_gzip_plan_deflate(const void *def, size_t len, const uint8_t *raw, uint64_t rlen,
    const dg_gzip_params *p, uint64_t every, unsigned threads, dg_gzip_split **out,
    size_t *n);

#endif
