/* dg_bcj_xtensa - Xtensa prediction (ESP8266 lx106, ESP32 lx6/lx7): CALL0/
 * 4/8/12 and J (18-bit PC-relative), L32R (negative word offset to its
 * literal), and the aligned literal words themselves, which hold IRAM,
 * IROM and DRAM addresses (-mlongcalls calls go through them). Narrow
 * (density) instructions are 2 bytes, the others 3. See dg_mcu.h.
 *
 * Decoding from the region start also decodes the literal pools' constants
 * and, in an ESP8266 image's IROM segment, all of .rodata as instructions:
 * one byte in 16 looks like an L32R and one in 64 like a J. Map version 2
 * takes an L32R only when its literal is at most L32R_NEAR bytes before it
 * (GCC puts the literals of -mtext-section-literals right before their
 * function, and the linker's .literal.* sections sit beside their .text.*)
 * and a J only within J_NEAR bytes (jumps stay inside their function): on
 * the lx106 corpus pair that made the delta 12% smaller. */
#include "dg_mcu.h"

#define L32R_NEAR 16384
#define J_NEAR 4096

static uint32_t
rd24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static void
wr24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
}

/* CALLn (op0 5) and J (op0 6, n 0): offset in bits 6..23 */
static void
call_or_j(uint8_t *q, uint32_t pc, const dg_mcu_pred *p, int call, int near)
{
	uint32_t w = rd24(q), npc, nt, target;
	int32_t off = (int32_t)(w << 8) >> 14, noff;

	if (near && !call && (off < -J_NEAR || off > J_NEAR))
		return;

	target = call ? (pc & ~3u) + ((uint32_t)off << 2) + 4 : pc + 4 + (uint32_t)off;
	if (!dg_mcu_move(p, target, &nt) || !dg_mcu_move(p, pc, &npc))
		return;
	if (call) {
		int32_t d = (int32_t)(nt - ((npc & ~3u) + 4));

		if (d & 3)
			return;
		noff = d / 4;
	} else {
		noff = (int32_t)(nt - (npc + 4));
	}
	if (noff == off || noff < -(1 << 17) || noff >= (1 << 17))
		return;
	wr24(q, (w & 0x3Fu) | ((uint32_t)noff & 0x3FFFFu) << 6);
}

/* L32R at, label: ((pc + 3) & ~3) + (0xFFFF0000 | imm16) * 4 */
static void
l32r(uint8_t *q, uint32_t pc, const dg_mcu_pred *p, int near)
{
	uint32_t w = rd24(q), npc, nt;
	int32_t d = (int32_t)((0xFFFF0000u | (w >> 8)) << 2), nd;

	if (near && d < -L32R_NEAR)
		return;

	if (!dg_mcu_move(p, ((pc + 3) & ~3u) + (uint32_t)d, &nt) || !dg_mcu_move(p, pc, &npc))
		return;
	nd = (int32_t)(nt - ((npc + 3) & ~3u));
	if (nd == d || nd >= 0 || nd < -(1 << 18) || (nd & 3))
		return;
	wr24(q, (w & 0xFFu) | (((uint32_t)nd >> 2) & 0xFFFFu) << 8);
}

void
dg_bcj_xtensa_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p)
{
	int abs = (r->flags & DG_MCU_ABS) != 0;
	int near = dg_mcu_map_version(p->map) >= DG_MCU_MAP_V2;
	uint32_t o = 0;

	while (o + 2 <= r->len) {
		uint8_t *q = buf + r->soff + o;
		uint32_t pc = r->vaddr + o;
		unsigned op0 = q[0] & 0xFu;

		if (abs && !(pc & 3u) && o + 4 <= r->len && dg_mcu_abs_word(buf, r->soff + o, p, 0)) {
			o += 4;
			continue;
		}
		if (op0 >= 8 && op0 <= 13) {
			o += 2;
			continue;
		}
		if (o + 3 > r->len)
			break;
		if (op0 == 5)
			call_or_j(q, pc, p, 1, near);
		else if (op0 == 6 && !(q[0] & 0x30u))
			call_or_j(q, pc, p, 0, near);
		else if (op0 == 1)
			l32r(q, pc, p, near);
		o += 3;
	}
}
