/* dg_swu - SWUpdate `.swu` files: cpio "newc" (070701) and its "crc"
 * variant (070702), read from a memory buffer and written to a callback.
 *
 * Parsing is strict: every header field is 8 hex digits, every length is
 * checked against the buffer, names are NUL-terminated, at most
 * DG_SWU_NAME_MAX bytes, unique, and never absolute or containing a `..`
 * component; padding (after header+name and after data, to 4 bytes; after
 * TRAILER!!!, to the archive's block size) must be zero bytes. A parsed
 * archive written back with dg_swu_write() is bit for bit identical to the
 * input. The writer streams, so members of several GiB never sit in memory;
 * it needs each member's size (and, for 070702, its checksum) up front,
 * because cpio stores them in the header before the data.
 */
#ifndef DG_SWU_H
#define DG_SWU_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

#define DG_SWU_HDR_LEN 110        /* "070701" + 13 fields of 8 hex digits */
#define DG_SWU_NAME_MAX 4096      /* bytes of a name, without its NUL */
#define DG_SWU_MEMBERS_MAX 65536  /* members of one archive, trailer excluded */
#define DG_SWU_SIG_MAX (1u << 20) /* bytes of a sw-description.sig we read */
#define DG_SWU_DESC_NAME "sw-description"
#define DG_SWU_SIG_NAME "sw-description.sig"
#define DG_SWU_TRAILER_NAME "TRAILER!!!"

typedef enum dg_swu_format {
	DG_SWU_NEWC = 1, /* magic 070701, check field unused (0) */
	DG_SWU_CRC = 2   /* magic 070702, check = 32-bit sum of the data bytes */
} dg_swu_format;

/* One member. Plain data: copy it, change size/check/name, pass it to the
 * writer. name and data point into memory owned by the dg_swu (name) and by
 * the caller's buffer (data); for a member the caller builds, both are the
 * caller's. raw is the header text as read: the writer copies a field's
 * digits from it when the value is unchanged, so hex case (GNU cpio writes
 * upper case, libarchive lower) survives; all zero for a new member, which
 * is then written in upper case like GNU cpio. */
typedef struct dg_swu_member {
	const char *name;
	dg_swu_format format;
	uint32_t ino, mode, uid, gid, nlink, mtime;
	uint32_t devmajor, devminor, rdevmajor, rdevminor;
	uint32_t size;          /* data length (the header's filesize) */
	uint32_t check;         /* header's check field */
	uint64_t header_offset; /* offset of the header in the parsed buffer */
	uint64_t data_offset;   /* offset of the data in the parsed buffer */
	const uint8_t *data;    /* size bytes at data_offset, or NULL */
	char raw[DG_SWU_HDR_LEN];
} dg_swu_member;

typedef struct dg_swu dg_swu;
typedef struct dg_swu_writer dg_swu_writer;

/* Receives the writer's output in order; return DG_OK or an error, which
 * the writer returns to its caller and then refuses further calls with. */
typedef dg_err (*dg_swu_write_fn)(void *arg, const void *data, size_t len);

/* Parse len bytes at buf (typically mmapped). buf must outlive the result:
 * members' data point into it; names are copied. Returns NULL with *err:
 * DG_ERR_SWU_FORMAT (bad magic, non-hex field, non-zero padding, data after
 * the trailer that no block size explains, 070701 and 070702 mixed),
 * DG_ERR_SWU_TRUNCATED (a header, name or data runs past len; no trailer),
 * DG_ERR_SWU_NAME (empty, too long, no NUL or a NUL inside, absolute,
 * a `..` component), DG_ERR_SWU_DUPLICATE, DG_ERR_SWU_CHECKSUM (070702
 * sum mismatch), DG_ERR_TOOBIG (more than DG_SWU_MEMBERS_MAX members),
 * DG_ERR_NOMEM. why (whylen bytes, may be NULL) gets a one-line reason
 * with the member's name or offset. */
dg_swu *dg_swu_parse(const void *buf, size_t len, dg_err *err, char *why,
    size_t whylen);
void dg_swu_free(dg_swu *swu);

/* Members in archive order, trailer excluded; i < dg_swu_count(). */
size_t dg_swu_count(const dg_swu *swu);
const dg_swu_member *dg_swu_member_at(const dg_swu *swu, size_t i);
/* The member called name, or NULL; *index (if not NULL) gets its place.
 * Binary search over a sorted index: O(log n). */
const dg_swu_member *dg_swu_find(const dg_swu *swu, const char *name,
    size_t *index);
/* The TRAILER!!! member as read (pass it to dg_swu_writer_finish). */
const dg_swu_member *dg_swu_trailer(const dg_swu *swu);
/* 070701 or 070702 (an archive never mixes them). */
dg_swu_format dg_swu_format_of(const dg_swu *swu);
/* Zero bytes after the trailer, and the block size the archive is padded
 * to (the smallest multiple of 512 explaining them; 0 when there are none
 * and the length is not a multiple of 512). */
uint64_t dg_swu_tail_padding(const dg_swu *swu);
uint32_t dg_swu_block_size(const dg_swu *swu);

/* DG_OK if the first member is sw-description (an SWUpdate image); else
 * DG_ERR_SWU_NO_DESC (also for an empty archive). */
dg_err dg_swu_check_desc_first(const dg_swu *swu);

/* DG_OK if name is acceptable as a member name, else DG_ERR_SWU_NAME
 * (empty, longer than DG_SWU_NAME_MAX, absolute, a `..` component). */
dg_err dg_swu_name_check(const char *name);

/* 070702 checksum: sum plus every byte of data, modulo 2^32. Start at 0. */
uint32_t dg_swu_checksum(uint32_t sum, const void *data, size_t len);

/* Fill m for a new member called name (not copied: must outlive m's use)
 * of size bytes and 070702 checksum check, taking format, mode, owner,
 * mtime, nlink and devices from like (or regular file 0644, root, mtime 0,
 * 070701 if like is NULL); ino is like's (or 0); raw is cleared unless like
 * is given, so the digits keep like's case. */
void dg_swu_member_init(dg_swu_member *m, const dg_swu_member *like,
    const char *name, uint32_t size, uint32_t check);

/* A streaming writer to fn(arg). NULL with *err = DG_ERR_NOMEM. */
dg_swu_writer *dg_swu_writer_new(dg_swu_write_fn fn, void *arg, dg_err *err);
void dg_swu_writer_free(dg_swu_writer *w);
/* Start member m: writes its header and name. m->size bytes must follow
 * through dg_swu_writer_data(), then dg_swu_writer_end(). Errors:
 * DG_ERR_SWU_NAME, DG_ERR_INVAL (a member already open, writer finished,
 * a TRAILER!!! name), the callback's error. */
dg_err dg_swu_writer_begin(dg_swu_writer *w, const dg_swu_member *m);
/* Data of the open member. DG_ERR_SWU_SIZE if more than its size. */
dg_err dg_swu_writer_data(dg_swu_writer *w, const void *data, size_t len);
/* Close the member and pad it. DG_ERR_SWU_SIZE if fewer bytes than its
 * size were given, DG_ERR_SWU_CHECKSUM if a 070702 member's data does not
 * sum to m->check. */
dg_err dg_swu_writer_end(dg_swu_writer *w);
/* begin + data + end for a member whose data is in memory. */
dg_err dg_swu_writer_add(dg_swu_writer *w, const dg_swu_member *m,
    const void *data);
/* Write the trailer (as given, or a GNU cpio one in the format of the
 * members written if NULL) and zero bytes up to a multiple of block (0 or 1:
 * none). Errors as dg_swu_writer_begin. */
dg_err dg_swu_writer_finish(dg_swu_writer *w, const dg_swu_member *trailer,
    uint32_t block);
/* Bytes written so far. */
uint64_t dg_swu_writer_offset(const dg_swu_writer *w);

/* Write swu unchanged: the bytes it was parsed from. Callback's errors. */
dg_err dg_swu_write(const dg_swu *swu, dg_swu_write_fn fn, void *arg);

/* Sign a sw-description: write its len bytes to workdir/sw-description,
 * remove any old workdir/sw-description.sig, run `/bin/sh -c "CMD
 * sw-description"` in workdir (stdout sent to stderr), and read the
 * sw-description.sig it made into *sig (malloc'd, caller frees; *siglen).
 * Errors: DG_ERR_SWU_SIGN (could not start, killed by a signal, non-zero
 * exit, no .sig made, empty .sig), DG_ERR_TOOBIG (.sig > DG_SWU_SIG_MAX),
 * DG_ERR_IO and friends writing the file, DG_ERR_NOMEM. */
dg_err dg_swu_sign(const char *cmd, const char *workdir, const void *desc,
    size_t len, uint8_t **sig, size_t *siglen);

#endif
