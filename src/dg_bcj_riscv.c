/* dg_bcj_riscv - RISC-V RV32IMC prediction: JAL, C.J and C.JAL, AUIPC
 * followed by JALR/ADDI/load/store on its register (PC-relative), LUI
 * followed by ADDI/load/store (absolute, the medlow model's addresses),
 * and aligned address words (pointer tables; instruction words, whose low
 * bits are 11, are never taken for one). See dg_mcu.h. */
#include "dg_mcu.h"

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static int32_t
sext(uint32_t v, unsigned bits)
{
	return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

static int
rel_move(uint32_t pc, uint32_t target, const dg_mcu_pred *p, int32_t *noff)
{
	uint32_t npc, nt;

	if (!dg_mcu_move(p, target, &nt) || !dg_mcu_move(p, pc, &npc))
		return 0;
	*noff = (int32_t)(nt - npc);
	return 1;
}

static void
jal(uint8_t *q, uint32_t pc, const dg_mcu_pred *p)
{
	uint32_t w = dg_mcu_rd32(q), u;
	int32_t off = sext((w >> 31) << 20 | ((w >> 21) & 0x3FFu) << 1 | ((w >> 20) & 1u) << 11 |
				   ((w >> 12) & 0xFFu) << 12, 21), noff;

	if (!rel_move(pc, pc + (uint32_t)off, p, &noff) || noff == off || (noff & 1) ||
	    noff < -(1 << 20) || noff >= (1 << 20))
		return;
	u = (uint32_t)noff;
	dg_mcu_wr32(q, (w & 0xFFFu) | ((u >> 20) & 1u) << 31 | ((u >> 1) & 0x3FFu) << 21 |
			       ((u >> 11) & 1u) << 20 | ((u >> 12) & 0xFFu) << 12);
}

/* C.J / C.JAL: offset[11|4|9:8|10|6|7|3:1|5] in bits 12..2 */
static void
cj(uint8_t *q, uint32_t pc, const dg_mcu_pred *p)
{
	uint32_t h = rd16(q), u;
	int32_t off = sext(((h >> 12) & 1u) << 11 | ((h >> 11) & 1u) << 4 | ((h >> 9) & 3u) << 8 |
				   ((h >> 8) & 1u) << 10 | ((h >> 7) & 1u) << 6 | ((h >> 6) & 1u) << 7 |
				   ((h >> 3) & 7u) << 1 | ((h >> 2) & 1u) << 5, 12), noff;

	if (!rel_move(pc, pc + (uint32_t)off, p, &noff) || noff == off || (noff & 1) ||
	    noff < -2048 || noff >= 2048)
		return;
	u = (uint32_t)noff;
	h = (h & 0xE003u) | ((u >> 11) & 1u) << 12 | ((u >> 4) & 1u) << 11 | ((u >> 8) & 3u) << 9 |
	    ((u >> 10) & 1u) << 8 | ((u >> 6) & 1u) << 7 | ((u >> 7) & 1u) << 6 |
	    ((u >> 1) & 7u) << 3 | ((u >> 5) & 1u) << 2;
	q[0] = (uint8_t)h;
	q[1] = (uint8_t)(h >> 8);
}

/* the low 12 bits of the instruction after AUIPC/LUI rd, when it uses rd as
 * its base: 1 = I-type (JALR, ADDI, loads), 2 = S-type (stores), 0 none */
static int
lo_kind(uint32_t w2, unsigned rd)
{
	unsigned op = w2 & 0x7Fu, f3 = (w2 >> 12) & 7u, rs1 = (w2 >> 15) & 31u;

	if (rs1 != rd || !rd)
		return 0;
	if ((op == 0x67 && f3 == 0) || (op == 0x13 && f3 == 0) || (op == 0x03 && f3 != 3 && f3 < 6))
		return 1;
	if (op == 0x23 && f3 < 3)
		return 2;
	return 0;
}

static int32_t
lo_get(uint32_t w2, int k)
{
	return k == 1 ? sext(w2 >> 20, 12) : sext((w2 >> 25) << 5 | ((w2 >> 7) & 31u), 12);
}

static uint32_t
lo_set(uint32_t w2, int k, uint32_t lo)
{
	lo &= 0xFFFu;
	if (k == 1)
		return (w2 & 0xFFFFFu) | lo << 20;
	return (w2 & 0x01FFF07Fu) | (lo >> 5) << 25 | (lo & 31u) << 7;
}

/* AUIPC (pcrel) or LUI (absolute) at q, its partner at q + 4 */
static void
hi_lo(uint8_t *q, uint32_t pc, const dg_mcu_pred *p, int pcrel)
{
	uint32_t w = dg_mcu_rd32(q), w2 = dg_mcu_rd32(q + 4), addr, na, hi;
	int k = lo_kind(w2, (w >> 7) & 31u);
	int32_t lo;

	if (!k)
		return;
	addr = (w & 0xFFFFF000u) + (uint32_t)lo_get(w2, k) + (pcrel ? pc : 0);
	if (pcrel) {
		int32_t noff;

		if (!rel_move(pc, addr, p, &noff))
			return;
		na = (uint32_t)noff;
	} else if (!dg_mcu_move(p, addr, &na)) {
		return;
	}
	if (na == addr - (pcrel ? pc : 0))
		return;
	hi = (na + 0x800u) & 0xFFFFF000u;
	lo = (int32_t)(na - hi);
	dg_mcu_wr32(q, (w & 0xFFFu) | hi);
	dg_mcu_wr32(q + 4, lo_set(w2, k, (uint32_t)lo));
}

void
dg_bcj_riscv_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p)
{
	int abs = (r->flags & DG_MCU_ABS) != 0;
	uint32_t o = r->vaddr & 1u;

	while (o + 2 <= r->len) {
		uint8_t *q = buf + r->soff + o;
		uint32_t pc = r->vaddr + o;
		uint16_t h = rd16(q);

		if ((h & 3u) == 3u) {
			uint32_t w;

			if (o + 4 > r->len)
				break;
			w = dg_mcu_rd32(q);
			switch (w & 0x7Fu) {
			case 0x6F: jal(q, pc, p); break;
			case 0x17:
			case 0x37:
				if (o + 8 <= r->len) {
					hi_lo(q, pc, p, (w & 0x7Fu) == 0x17);
					if (lo_kind(dg_mcu_rd32(q + 4), (w >> 7) & 31u)) {
						o += 8;
						continue;
					}
				}
				break;
			default: break;
			}
			o += 4;
			continue;
		}
		if (abs && !(pc & 3u) && o + 4 <= r->len &&
		    (dg_mcu_rd32(q) & 3u) != 3u && dg_mcu_abs_word(buf, r->soff + o, p, 0)) {
			o += 4;
			continue;
		}
		if ((h & 0xE003u) == 0xA001u || (h & 0xE003u) == 0x2001u)
			cj(q, pc, p);
		o += 2;
	}
}
