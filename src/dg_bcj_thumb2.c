/* dg_bcj_thumb2 - ARM Thumb-2 (Cortex-M) prediction: BL and B.W (T4),
 * B<cond>.W (T3), LDR literal (T1, T2), ADR (T1), and the aligned address
 * words between instructions (literal pools, vector table, pointer tables;
 * function pointers keep their Thumb bit). See dg_mcu.h. */
#include "dg_mcu.h"

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void
wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* pc of region offset o, and the predicted pc and target; 0 when the
 * target is outside the map */
static int
moved_pair(const dg_mcu_region *r, uint32_t o, uint32_t target, const dg_mcu_pred *p,
	   uint32_t *npc, uint32_t *ntarget)
{
	uint32_t pc = r->vaddr + o;

	return dg_mcu_move(p, target, ntarget) && dg_mcu_move(p, pc, npc);
}

/* BL / B.W T4: S:I1:I2:imm10:imm11:0, 25 bits */
static void
branch_t4(uint8_t *q, uint32_t pc, const dg_mcu_region *r, uint32_t o, const dg_mcu_pred *p)
{
	uint16_t h1 = rd16(q), h2 = rd16(q + 2);
	uint32_t s = (h1 >> 10) & 1, j1 = (h2 >> 13) & 1, j2 = (h2 >> 11) & 1;
	uint32_t i1 = !(j1 ^ s), i2 = !(j2 ^ s);
	int32_t off = (int32_t)((s << 24 | i1 << 23 | i2 << 22 | (h1 & 0x3FFu) << 12 |
				 (h2 & 0x7FFu) << 1) << 7) >> 7;
	uint32_t npc, nt;
	int32_t noff;

	if (!moved_pair(r, o, pc + 4 + (uint32_t)off, p, &npc, &nt))
		return;
	noff = (int32_t)(nt - (npc + 4));
	if (noff == off || (noff & 1) || noff < -(1 << 24) || noff >= (1 << 24))
		return;
	s = (uint32_t)noff >> 31;
	i1 = ((uint32_t)noff >> 23) & 1;
	i2 = ((uint32_t)noff >> 22) & 1;
	j1 = (!i1) ^ s;
	j2 = (!i2) ^ s;
	wr16(q, (uint16_t)((h1 & 0xF800u) | s << 10 | (((uint32_t)noff >> 12) & 0x3FFu)));
	wr16(q + 2, (uint16_t)((h2 & 0xD000u) | j1 << 13 | j2 << 11 | (((uint32_t)noff >> 1) & 0x7FFu)));
}

/* B<cond>.W T3: S:J2:J1:imm6:imm11:0, 21 bits */
static void
branch_t3(uint8_t *q, uint32_t pc, const dg_mcu_region *r, uint32_t o, const dg_mcu_pred *p)
{
	uint16_t h1 = rd16(q), h2 = rd16(q + 2);
	uint32_t s = (h1 >> 10) & 1, j1 = (h2 >> 13) & 1, j2 = (h2 >> 11) & 1;
	int32_t off = (int32_t)((s << 20 | j2 << 19 | j1 << 18 | (h1 & 0x3Fu) << 12 |
				 (h2 & 0x7FFu) << 1) << 11) >> 11;
	uint32_t npc, nt;
	int32_t noff;

	if (!moved_pair(r, o, pc + 4 + (uint32_t)off, p, &npc, &nt))
		return;
	noff = (int32_t)(nt - (npc + 4));
	if (noff == off || (noff & 1) || noff < -(1 << 20) || noff >= (1 << 20))
		return;
	s = (uint32_t)noff >> 31;
	j2 = ((uint32_t)noff >> 19) & 1;
	j1 = ((uint32_t)noff >> 18) & 1;
	wr16(q, (uint16_t)((h1 & 0xFBC0u) | s << 10 | (((uint32_t)noff >> 12) & 0x3Fu)));
	wr16(q + 2, (uint16_t)((h2 & 0xD000u) | j1 << 13 | j2 << 11 | (((uint32_t)noff >> 1) & 0x7FFu)));
}

/* LDR.W Rt, [PC, #+-imm12] (T2) */
static void
ldr_t2(uint8_t *q, uint32_t pc, const dg_mcu_region *r, uint32_t o, const dg_mcu_pred *p)
{
	uint16_t h1 = rd16(q), h2 = rd16(q + 2);
	int32_t off = (h1 & 0x80u) ? (int32_t)(h2 & 0xFFFu) : -(int32_t)(h2 & 0xFFFu);
	uint32_t npc, nt;
	int32_t noff;

	if (!moved_pair(r, o, ((pc + 4) & ~3u) + (uint32_t)off, p, &npc, &nt))
		return;
	noff = (int32_t)(nt - ((npc + 4) & ~3u));
	if (noff == off || noff < -4095 || noff > 4095)
		return;
	wr16(q, (uint16_t)((h1 & ~0x80u) | (noff >= 0 ? 0x80u : 0)));
	wr16(q + 2, (uint16_t)((h2 & 0xF000u) | (uint32_t)(noff >= 0 ? noff : -noff)));
}

/* LDR Rt, [PC, #imm8*4] (T1) and ADR Rd, label (T1) */
static void
lit_t1(uint8_t *q, uint32_t pc, const dg_mcu_region *r, uint32_t o, const dg_mcu_pred *p)
{
	uint16_t h = rd16(q);
	int32_t off = (int32_t)(h & 0xFFu) * 4;
	uint32_t npc, nt;
	int32_t noff;

	if (!moved_pair(r, o, ((pc + 4) & ~3u) + (uint32_t)off, p, &npc, &nt))
		return;
	noff = (int32_t)(nt - ((npc + 4) & ~3u));
	if (noff == off || noff < 0 || noff > 1020 || (noff & 3))
		return;
	wr16(q, (uint16_t)((h & 0xFF00u) | (uint32_t)noff >> 2));
}

void
dg_bcj_thumb2_predict(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p)
{
	uint32_t o = r->vaddr & 1u; /* halfword-aligned in address space */
	int abs = (r->flags & DG_MCU_ABS) != 0;

	while (o + 2 <= r->len) {
		uint8_t *q = buf + r->soff + o;
		uint32_t pc = r->vaddr + o;
		uint16_t h1 = rd16(q);

		if ((h1 & 0xE000u) == 0xE000u && (h1 & 0x1800u) && o + 4 <= r->len) {
			uint16_t h2 = rd16(q + 2);

			if ((h1 & 0xF800u) == 0xF000u && (h2 & 0x8000u)) {
				if (h2 & 0x1000u)
					branch_t4(q, pc, r, o, p);
				else if (!(h2 & 0x4000u) && ((h1 >> 6) & 0xEu) != 0xEu)
					branch_t3(q, pc, r, o, p);
			} else if ((h1 & 0xFF7Fu) == 0xF85Fu) {
				ldr_t2(q, pc, r, o, p);
			} else if (abs && !(pc & 3u) && dg_mcu_abs_word(buf, r->soff + o, p, 1)) {
				/* a literal that looked like a 32-bit instruction */
			}
			o += 4;
			continue;
		}
		if (abs && !(pc & 3u) && o + 4 <= r->len && dg_mcu_abs_word(buf, r->soff + o, p, 1)) {
			o += 4;
			continue;
		}
		if ((h1 & 0xF800u) == 0x4800u || (h1 & 0xF800u) == 0xA000u)
			lit_t1(q, pc, r, o, p);
		o += 2;
	}
}
