/* dg_bcj - branch-call-jump conversion filters for machine code.
 *
 * A new build of a program shifts code, so thousands of relative branch
 * operands change by the same amount. These filters rewrite relative branch
 * targets as absolute ones (encode) and back (decode) so that a differ sees
 * the unchanged targets as equal bytes. The conversions follow the published
 * descriptions of the xz/liblzma "simple" BCJ filters; positions are relative
 * to the start of the buffer. dg_bcj_decode(dg_bcj_encode(x)) == x for every
 * input when both run over the whole buffer in one call.
 */
#ifndef DG_BCJ_H
#define DG_BCJ_H

#include <stddef.h>
#include <stdint.h>

typedef enum dg_bcj_filter {
	DG_BCJ_NONE = 0,
	DG_BCJ_X86 = 1,   /* x86 and x86-64: E8/E9 call/jmp rel32 */
	DG_BCJ_ARM = 2,   /* 32-bit ARM: BL */
	DG_BCJ_ARMT = 3,  /* ARM Thumb: BL pair */
	DG_BCJ_ARM64 = 4, /* AArch64: BL and ADRP */
	DG_BCJ_PPC = 5,   /* PowerPC big-endian: B/BL with AA=0, LK=1 */
	DG_BCJ_SPARC = 6, /* SPARC: CALL */
	DG_BCJ_X86_64 = 7,/* x86-64, ours: call/jmp/jcc rel32 and RIP-relative
	                   * disp32 of common instructions, to absolute */
	DG_BCJ_MAX_
} dg_bcj_filter;

/* Convert buf[0..size) in place. An unknown filter leaves buf unchanged. */
void dg_bcj_encode(dg_bcj_filter f, uint8_t *buf, size_t size);
void dg_bcj_decode(dg_bcj_filter f, uint8_t *buf, size_t size);

/* Relocation-aware prediction for x86-64 (not a bijection; both sides run
 * it on the source): every call/jmp/jcc rel32 and RIP-relative disp32
 * operand in buf[0..size) whose target lies inside the buffer is rewritten
 * as if its instruction and its target had moved by shift(ctx, position),
 * the displacement from source to target at that position. */
typedef int64_t (*dg_bcj_shift_fn)(void *ctx, uint64_t pos);
void dg_bcj_x64_predict(uint8_t *buf, size_t size, dg_bcj_shift_fn shift, void *ctx);

/* Filters worth trying for buf (from an ELF or PE header), written to out
 * (at most max entries, DG_BCJ_NONE not included); returns the count. */
size_t dg_bcj_guess(const uint8_t *buf, size_t size, dg_bcj_filter *out, size_t max);

/* Short lower-case name ("x86", "arm", ...), "none" for DG_BCJ_NONE,
 * "unknown" otherwise. */
const char *dg_bcj_name(dg_bcj_filter f);

#endif
