/* dg_util - small helpers shared by every module: strict number parsing,
 * hex, durable file writes, clocks. */
#ifndef DG_UTIL_H
#define DG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

/* Parse a whole decimal (or 0x hex) string into [min, max].
 * DG_ERR_INVAL if empty, signed where not allowed, or trailing garbage;
 * DG_ERR_RANGE if outside the bounds. *out is untouched on error. */
dg_err dg_util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
dg_err dg_util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Like dg_util_parse_u64 but accepts a K/M/G suffix (powers of 1024). */
dg_err dg_util_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void dg_util_hex_encode(const unsigned char *in, size_t len, char *out);
/* Decode exactly 2*len hex digits (either case) into out.
 * DG_ERR_INVAL on a wrong length or a non-hex digit. */
dg_err dg_util_hex_decode(const char *hex, unsigned char *out, size_t len);

/* Write len bytes to path durably: temp file in the same directory, write,
 * fsync, rename over path, fsync the directory. On error nothing is left
 * behind and path is unchanged. mode is the new file's permission bits. */
dg_err dg_util_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* fsync the directory that holds path (or path itself if a directory). */
dg_err dg_util_fsync_dir(const char *path);
/* Write all of len bytes to fd, retrying on EINTR and short writes. */
dg_err dg_util_write_all(int fd, const void *data, size_t len);
/* Read a whole file (at most max bytes, else DG_ERR_TOOBIG) into a fresh,
 * NUL-terminated buffer the caller frees. */
dg_err dg_util_read_file(const char *path, size_t max, char **out, size_t *outlen);
/* mkdir -p with mode for every created component. */
dg_err dg_util_mkdir_p(const char *path, unsigned mode);

/* Arm the libevent timer ev to fire in ms milliseconds (replacing any
 * earlier arming). */
struct event;
void dg_util_timer_arm(struct event *ev, int64_t ms);

/* Milliseconds of CLOCK_MONOTONIC and of the wall clock. */
uint64_t dg_util_now_ms(void);
uint64_t dg_util_wall_ms(void);

#endif
