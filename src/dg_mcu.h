/* dg_mcu - microcontroller firmware images: their address map, and the
 * architecture-aware prediction that runs over them.
 *
 * A firmware image is flashed as it is: its code holds PC-relative branches
 * and absolute addresses (literal pools, vector tables, pointer tables,
 * LUI/AUIPC pairs) that all change when code moves. The prediction rewrites
 * a copy of the source as if every such reference had moved the way the
 * match map between source and target says its instruction and its target
 * moved; the target is then diffed against that copy. It is not a
 * bijection: both sides run it on the source, so a wrong guess (wrong
 * architecture, wrong base address) costs size, never correctness.
 *
 * The map is a list of regions: a stretch of the source file (soff, len) at
 * a load address (vaddr) that lies at toff in the target (ESP images move
 * their segments; flat images have one region at offset 0 on both sides).
 * The per-architecture instruction predictions live in dg_bcj_thumb2.c,
 * dg_bcj_xtensa.c and dg_bcj_riscv.c; the map, the image detection and the
 * absolute-word prediction here.
 */
#ifndef DG_MCU_H
#define DG_MCU_H

#include <stddef.h>
#include <stdint.h>

#include "dg_bcj.h"

typedef enum dg_mcu_arch {
	DG_MCU_NONE = 0,
	DG_MCU_THUMB2 = 1, /* ARM Thumb-2 (Cortex-M0+/M3/M4/M33) */
	DG_MCU_XTENSA = 2, /* Xtensa (ESP8266 lx106, ESP32 lx6/lx7) */
	DG_MCU_RV32 = 3,   /* RISC-V RV32IMC (ESP32-C3, GD32V, CH32V) */
	DG_MCU_ARCH_MAX_
} dg_mcu_arch;

/* region flags: what the prediction looks for there */
#define DG_MCU_CODE 1u /* instructions of the map's architecture */
#define DG_MCU_ABS 2u  /* aligned 32-bit words holding addresses */

/* regions in a map: at most 16 in map versions 1 and 2 (one image), 32 in
 * version 3 (several images) */
#define DG_MCU_MAX_REGIONS_V1 16
#define DG_MCU_MAX_REGIONS 32

typedef struct dg_mcu_region {
	uint32_t soff;  /* offset in the source file */
	uint32_t toff;  /* offset of the same region in the target file */
	uint32_t len;   /* bytes, in the source */
	uint32_t vaddr; /* load address of soff (and of toff in the target) */
	uint8_t flags;  /* DG_MCU_CODE | DG_MCU_ABS */
	uint8_t arch;   /* map version 3: the region's dg_mcu_arch; else 0 */
	uint8_t image;  /* map version 3: the image it belongs to; else 0 */
} dg_mcu_region;

/* Map versions: the version says which prediction rules apply, so that a
 * delta keeps applying when the rules improve. 1: the first rules; 2
 * (Xtensa only): L32R only to a literal at most 16 KiB before it, J only
 * within 4 KiB (longer ones were mostly data decoded as instructions). */
#define DG_MCU_MAP_V1 1u
#define DG_MCU_MAP_V2 2u
/* 3: several images in one file (a concatenation: bootloader + app, images
 * for several cores): each region has its own architecture and image
 * number; an address is looked up only among its own image's regions.
 * Xtensa regions take the version 2 rules. */
#define DG_MCU_MAP_V3 3u

typedef struct dg_mcu_map {
	uint8_t version; /* DG_MCU_MAP_V*; 0: the newest for arch */
	uint8_t arch;    /* dg_mcu_arch */
	uint8_t n;       /* regions used */
	dg_mcu_region r[DG_MCU_MAX_REGIONS];
} dg_mcu_map;

/* The version a map's rules are: m->version, or when 0 the newest for
 * its architecture (2 for Xtensa, 1 for the others). */
unsigned dg_mcu_map_version(const dg_mcu_map *m);

/* Bytes dg_mcu_map_write writes for m. */
size_t dg_mcu_map_size(const dg_mcu_map *m);
/* The map as docs/delta-format.md describes it, to out (dg_mcu_map_size
 * bytes). */
void dg_mcu_map_write(const dg_mcu_map *m, uint8_t *out);
/* Parse a map from p[0..len); *used is set to the bytes it took. Returns 0,
 * or -1 when the bytes are not a valid map (unknown architecture or flags,
 * too many regions, a region past src_size). */
int dg_mcu_map_read(const uint8_t *p, size_t len, uint64_t src_size, dg_mcu_map *m,
		    size_t *used);

/* Detect the image kind and address map of buf[0..n): ESP-IDF (ESP32
 * family) and ESP8266 app images by their segment headers, ELF32 files of
 * ARM, Xtensa or RISC-V by their program headers, Cortex-M images by their
 * vector table (initial SP, odd handlers: the flash base). Fills m with
 * toff == soff. Returns the architecture found, or DG_MCU_NONE. */
dg_mcu_arch dg_mcu_detect(const uint8_t *buf, size_t n, dg_mcu_map *m);

/* Several firmware images in one file, one after the other: Cortex-M
 * vector tables and ESP app headers where an image starts, and changes of
 * instruction set (a headerless RV32 or Xtensa image after a Cortex-M one)
 * found by the density of return instructions per 4 KiB block. Fills m as
 * a version 3 map (one or more regions per image, numbered in file order)
 * and returns the number of images found; m is only meaningful when that
 * is 2 or more. */
unsigned dg_mcu_detect_mixed(const uint8_t *buf, size_t n, dg_mcu_map *m);

/* A flat image of arch loaded at base: one region over the whole file,
 * code and addresses. */
void dg_mcu_flat(dg_mcu_map *m, dg_mcu_arch arch, uint32_t base, size_t n);

/* Pair a source map with the target's (the same image kind: region i of
 * both is the same segment, of the same image and architecture): sets each
 * source region's toff. Returns 0, or
 * -1 when they do not pair (then toff stays soff). */
int dg_mcu_pair(dg_mcu_map *src, const dg_mcu_map *tgt);

/* The architecture by name ("thumb2", "xtensa", "rv32"); DG_MCU_NONE when
 * unknown. */
dg_mcu_arch dg_mcu_arch_from_name(const char *name);
const char *dg_mcu_arch_name(dg_mcu_arch a);

/* The prediction's view of the source: the map and the shift (target minus
 * source offset) at each source offset, from the match map. */
typedef struct dg_mcu_pred {
	const dg_mcu_map *map;
	dg_bcj_shift_fn shift;
	void *ctx;
} dg_mcu_pred;

/* Where the source address addr lies in the target: 1 and *moved set when
 * addr is inside a region, 0 otherwise. */
int dg_mcu_move(const dg_mcu_pred *p, uint32_t addr, uint32_t *moved);

/* Rewrite buf (the source, size bytes) as the map and shift predict it in
 * the target: every region's instructions (DG_MCU_CODE) and address words
 * (DG_MCU_ABS). */
void dg_mcu_predict(uint8_t *buf, size_t size, const dg_mcu_map *map, dg_bcj_shift_fn shift,
		    void *ctx);

/* The per-architecture passes over one region r of buf (dg_mcu_predict
 * calls them; exposed for the tests). Each also rewrites the aligned
 * address words it meets between instructions when r has DG_MCU_ABS. */
void dg_bcj_thumb2_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p);
void dg_bcj_xtensa_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p);
void dg_bcj_riscv_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p);

/* Helpers shared by the passes: little-endian access, and the absolute word
 * at buf + off (off inside region r, 4-aligned in address space): rewritten
 * when it points into the map; returns 1 when it did point there. keep_bit0
 * keeps the Thumb bit of function pointers. */
static inline uint32_t
dg_mcu_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void
dg_mcu_wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int dg_mcu_abs_word(uint8_t *buf, uint32_t off, const dg_mcu_pred *p, int keep_bit0);

#endif
