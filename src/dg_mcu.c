/* dg_mcu - firmware image maps, detection, and the address-word prediction.
 * See dg_mcu.h. */
#include <string.h>

#include "dg_mcu.h"

#define MAP_HDR 4u
#define MAP_REGION 20u

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

unsigned
dg_mcu_map_version(const dg_mcu_map *m)
{
	if (m->version)
		return m->version;
	return m->arch == DG_MCU_XTENSA ? DG_MCU_MAP_V2 : DG_MCU_MAP_V1;
}

size_t
dg_mcu_map_size(const dg_mcu_map *m)
{
	return MAP_HDR + (size_t)m->n * MAP_REGION;
}

void
dg_mcu_map_write(const dg_mcu_map *m, uint8_t *out)
{
	out[0] = (uint8_t)dg_mcu_map_version(m);
	out[1] = m->arch;
	out[2] = m->n;
	out[3] = 0;
	for (unsigned i = 0; i < m->n; i++) {
		uint8_t *q = out + MAP_HDR + i * MAP_REGION;

		dg_mcu_wr32(q, m->r[i].soff);
		dg_mcu_wr32(q + 4, m->r[i].toff);
		dg_mcu_wr32(q + 8, m->r[i].len);
		dg_mcu_wr32(q + 12, m->r[i].vaddr);
		q[16] = m->r[i].flags;
		q[17] = q[18] = q[19] = 0;
	}
}

int
dg_mcu_map_read(const uint8_t *p, size_t len, uint64_t src_size, dg_mcu_map *m, size_t *used)
{
	memset(m, 0, sizeof(*m));
	if (len < MAP_HDR || p[0] < DG_MCU_MAP_V1 || p[0] > DG_MCU_MAP_V2 ||
	    p[1] == DG_MCU_NONE || p[1] >= DG_MCU_ARCH_MAX_ || p[2] > DG_MCU_MAX_REGIONS || p[3])
		return -1;
	/* version 2 changes only the Xtensa rules */
	if (p[0] == DG_MCU_MAP_V2 && p[1] != DG_MCU_XTENSA)
		return -1;
	if (len - MAP_HDR < (size_t)p[2] * MAP_REGION)
		return -1;
	m->version = p[0];
	m->arch = p[1];
	m->n = p[2];
	for (unsigned i = 0; i < m->n; i++) {
		const uint8_t *q = p + MAP_HDR + i * MAP_REGION;
		dg_mcu_region *r = &m->r[i];

		r->soff = dg_mcu_rd32(q);
		r->toff = dg_mcu_rd32(q + 4);
		r->len = dg_mcu_rd32(q + 8);
		r->vaddr = dg_mcu_rd32(q + 12);
		r->flags = q[16];
		if ((r->flags & ~(DG_MCU_CODE | DG_MCU_ABS)) || q[17] || q[18] || q[19] ||
		    (uint64_t)r->soff + r->len > src_size)
			return -1;
	}
	*used = dg_mcu_map_size(m);
	return 0;
}

void
dg_mcu_flat(dg_mcu_map *m, dg_mcu_arch arch, uint32_t base, size_t n)
{
	memset(m, 0, sizeof(*m));
	m->arch = (uint8_t)arch;
	m->n = 1;
	m->r[0] = (dg_mcu_region){ 0, 0, (uint32_t)n, base, DG_MCU_CODE | DG_MCU_ABS };
}

int
dg_mcu_pair(dg_mcu_map *src, const dg_mcu_map *tgt)
{
	if (src->arch != tgt->arch || src->n != tgt->n)
		return -1;
	for (unsigned i = 0; i < src->n; i++)
		if (src->r[i].vaddr != tgt->r[i].vaddr)
			return -1;
	for (unsigned i = 0; i < src->n; i++)
		src->r[i].toff = tgt->r[i].soff;
	return 0;
}

dg_mcu_arch
dg_mcu_arch_from_name(const char *name)
{
	if (!strcmp(name, "thumb2") || !strcmp(name, "cortex-m") || !strcmp(name, "thumb"))
		return DG_MCU_THUMB2;
	if (!strcmp(name, "xtensa"))
		return DG_MCU_XTENSA;
	if (!strcmp(name, "rv32") || !strcmp(name, "riscv"))
		return DG_MCU_RV32;
	return DG_MCU_NONE;
}

const char *
dg_mcu_arch_name(dg_mcu_arch a)
{
	switch (a) {
	case DG_MCU_THUMB2: return "thumb2";
	case DG_MCU_XTENSA: return "xtensa";
	case DG_MCU_RV32: return "rv32";
	default: return "none";
	}
}

/* ---- detection ---- */

/* instruction address ranges of the ESP chips (IRAM, IROM): code there */
static uint8_t
esp_flags(uint32_t vaddr)
{
	return vaddr >= 0x40000000u && vaddr < 0x50000000u ? DG_MCU_CODE | DG_MCU_ABS : DG_MCU_ABS;
}

/* Segments from hdr on; 0 when they fit the file and end where its
 * checksum (and hash) end. */
static int
esp_segments(const uint8_t *b, size_t n, size_t hdr, int hash, dg_mcu_map *m)
{
	size_t off = hdr, end;
	unsigned cnt = b[1];

	m->n = 0;
	if (cnt == 0 || cnt > DG_MCU_MAX_REGIONS)
		return -1;
	for (unsigned i = 0; i < cnt; i++) {
		uint32_t addr, len;

		if (n - off < 8)
			return -1;
		addr = dg_mcu_rd32(b + off);
		len = dg_mcu_rd32(b + off + 4);
		if (len > n - off - 8)
			return -1;
		m->r[m->n++] = (dg_mcu_region){ (uint32_t)off + 8, (uint32_t)off + 8, len, addr,
						esp_flags(addr) };
		off += 8 + (size_t)len;
	}
	end = (off | 15u) + 1 + (hash ? 32 : 0);
	return end <= n && n - end < 4096 ? 0 : -1;
}

static dg_mcu_arch
detect_esp(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	if (n < 64 || b[0] != 0xE9)
		return DG_MCU_NONE;
	/* ESP-IDF: 16-byte extended header, chip id at 12, hash flag at 23 */
	if (b[23] <= 1 && !b[13] && esp_segments(b, n, 24, b[23], m) == 0) {
		uint16_t chip = rd16(b + 12);

		m->arch = chip == 0 || chip == 2 || chip == 9 ? DG_MCU_XTENSA : DG_MCU_RV32;
		return (dg_mcu_arch)m->arch;
	}
	if (esp_segments(b, n, 8, 0, m) == 0) {
		m->arch = DG_MCU_XTENSA; /* ESP8266 */
		return DG_MCU_XTENSA;
	}
	m->n = 0;
	return DG_MCU_NONE;
}

static dg_mcu_arch
detect_elf(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	uint32_t phoff;
	uint16_t mach, phentsize, phnum;

	if (n < 52 || memcmp(b, "\177ELF", 4) || b[4] != 1 || b[5] != 1)
		return DG_MCU_NONE;
	mach = rd16(b + 18);
	m->arch = mach == 40 ? DG_MCU_THUMB2 : mach == 94 ? DG_MCU_XTENSA : mach == 243 ? DG_MCU_RV32
										      : DG_MCU_NONE;
	if (m->arch == DG_MCU_NONE)
		return DG_MCU_NONE;
	phoff = dg_mcu_rd32(b + 28);
	phentsize = rd16(b + 42);
	phnum = rd16(b + 44);
	m->n = 0;
	if (phentsize < 32)
		return m->arch = DG_MCU_NONE;
	for (unsigned i = 0; i < phnum && m->n < DG_MCU_MAX_REGIONS; i++) {
		uint64_t o = phoff + (uint64_t)i * phentsize;
		uint32_t off, vaddr, filesz, flags;

		if (o + 32 > n)
			break;
		off = dg_mcu_rd32(b + o + 4);
		vaddr = dg_mcu_rd32(b + o + 8);
		filesz = dg_mcu_rd32(b + o + 16);
		flags = dg_mcu_rd32(b + o + 24);
		if (dg_mcu_rd32(b + o) != 1 || !filesz || (uint64_t)off + filesz > n)
			continue;
		m->r[m->n++] = (dg_mcu_region){ off, off, filesz, vaddr,
						(uint8_t)((flags & 1u) ? DG_MCU_CODE | DG_MCU_ABS
								       : DG_MCU_ABS) };
	}
	if (!m->n)
		m->arch = DG_MCU_NONE;
	return (dg_mcu_arch)m->arch;
}

/* Cortex-M: a vector table at offset 0 (initial SP in RAM, odd handlers).
 * The base is the 256-byte boundary (VTOR's alignment) at or below the
 * lowest handler less the table (the words from offset 4 on that are 0 or
 * odd and near the handlers): linkers put the handlers after the table. (Scoring other bases by where function pointers land
 * was tried and was noise on the corpus; --base overrides.) */
static dg_mcu_arch
detect_cortex_m(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	uint32_t sp, lo = UINT32_MAX, hi = 0, base, nvec;

	if (n < 256)
		return DG_MCU_NONE;
	sp = dg_mcu_rd32(b);
	if ((sp & 3) || sp < 0x10000000u || sp >= 0x40000000u)
		return DG_MCU_NONE;
	for (unsigned i = 1; i < 16; i++) {
		uint32_t h = dg_mcu_rd32(b + 4 * i);

		if (!h)
			continue;
		if (!(h & 1))
			return DG_MCU_NONE;
		lo = h < lo ? h : lo;
		hi = h > hi ? h : hi;
	}
	if (lo == UINT32_MAX || lo < 65 || !(dg_mcu_rd32(b + 4) & 1) || !(dg_mcu_rd32(b + 12) & 1))
		return DG_MCU_NONE;
	/* the table's length: words that are 0 or odd and near the handlers */
	for (nvec = 16; nvec < 256 && 4 * (size_t)(nvec + 1) <= n; nvec++) {
		uint32_t h = dg_mcu_rd32(b + 4 * nvec);

		if (h && (!(h & 1) || h - lo >= n))
			break;
	}
	if (lo - 1 < 4 * nvec)
		return DG_MCU_NONE;
	base = (lo - 1 - 4 * nvec) & ~0xFFu;
	if (hi - 1 - base >= n)
		return DG_MCU_NONE;
	dg_mcu_flat(m, DG_MCU_THUMB2, base, n);
	return DG_MCU_THUMB2;
}

/* A flat image with no header: the architecture whose return instructions
 * are densest, the base the 1 MiB bucket most aligned words point into. */
static dg_mcu_arch
detect_flat(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	size_t thumb = 0, rv = 0, xt = 0;
	uint32_t counts[64] = { 0 }, buckets[64] = { 0 }, best = 0, bestc = 0;
	unsigned nb = 0;
	dg_mcu_arch a;

	if (n < 4096)
		return DG_MCU_NONE;
	for (size_t o = 0; o + 2 <= n; o += 2) {
		uint16_t h = rd16(b + o);

		thumb += h == 0x4770 || (h & 0xFF00) == 0xBD00;
		rv += h == 0x8082;
	}
	for (size_t o = 0; o + 2 <= n; o++)
		xt += b[o + 1] == 0xF0 && (b[o] == 0x0D || b[o] == 0x1D);
	if (rv > 3 * thumb && rv > 3 * xt && rv > n / 4096)
		a = DG_MCU_RV32;
	else if (thumb > 3 * rv && thumb > 3 * xt && thumb > n / 4096)
		a = DG_MCU_THUMB2;
	else if (xt > 3 * rv && xt > 3 * thumb && xt > n / 4096)
		a = DG_MCU_XTENSA;
	else
		return DG_MCU_NONE;
	for (size_t o = 0; o + 4 <= n; o += 4) {
		uint32_t w = dg_mcu_rd32(b + o), bk = w & 0xFFF00000u;
		unsigned i;

		if (!bk || bk == 0xFFF00000u || w - bk >= n)
			continue;
		for (i = 0; i < nb && buckets[i] != bk; i++)
			;
		if (i == nb) {
			if (nb == 64)
				continue;
			buckets[nb++] = bk;
		}
		counts[i]++;
	}
	for (unsigned i = 0; i < nb; i++)
		if (counts[i] > bestc) {
			bestc = counts[i];
			best = buckets[i];
		}
	dg_mcu_flat(m, a, best, n);
	return a;
}

dg_mcu_arch
dg_mcu_detect(const uint8_t *buf, size_t n, dg_mcu_map *m)
{
	dg_mcu_arch a;

	memset(m, 0, sizeof(*m));
	if (n >= ((size_t)1 << 31))
		return DG_MCU_NONE;
	if ((a = detect_esp(buf, n, m)) || (a = detect_elf(buf, n, m)) ||
	    (a = detect_cortex_m(buf, n, m)) || (a = detect_flat(buf, n, m)))
		return a;
	memset(m, 0, sizeof(*m));
	return DG_MCU_NONE;
}

/* ---- prediction ---- */

int
dg_mcu_move(const dg_mcu_pred *p, uint32_t addr, uint32_t *moved)
{
	const dg_mcu_map *m = p->map;

	for (unsigned i = 0; i < m->n; i++) {
		const dg_mcu_region *r = &m->r[i];

		if (addr - r->vaddr < r->len) {
			uint64_t q = (uint64_t)r->soff + (addr - r->vaddr);
			int64_t q2 = (int64_t)q + p->shift(p->ctx, q);

			*moved = (uint32_t)((int64_t)r->vaddr + (q2 - (int64_t)r->toff));
			return 1;
		}
	}
	return 0;
}

int
dg_mcu_abs_word(uint8_t *buf, uint32_t off, const dg_mcu_pred *p, int keep_bit0)
{
	uint32_t w = dg_mcu_rd32(buf + off), bit = keep_bit0 ? w & 1u : 0, nw;

	if (w < 0x100u || !dg_mcu_move(p, w - bit, &nw))
		return 0;
	if (nw + bit != w)
		dg_mcu_wr32(buf + off, nw + bit);
	return 1;
}

static void
abs_pass(uint8_t *buf, const dg_mcu_region *r, const dg_mcu_pred *p, int keep_bit0)
{
	/* words aligned in address space */
	uint32_t first = (4u - (r->vaddr & 3u)) & 3u;

	for (uint64_t o = first; o + 4 <= r->len; o += 4)
		dg_mcu_abs_word(buf, r->soff + (uint32_t)o, p, keep_bit0);
}

void
dg_mcu_predict(uint8_t *buf, size_t size, const dg_mcu_map *map, dg_bcj_shift_fn shift, void *ctx)
{
	dg_mcu_pred p = { map, shift, ctx };

	for (unsigned i = 0; i < map->n; i++) {
		const dg_mcu_region *r = &map->r[i];

		if ((uint64_t)r->soff + r->len > size)
			continue;
		if (r->flags & DG_MCU_CODE) {
			switch (map->arch) {
			case DG_MCU_THUMB2: dg_bcj_thumb2_predict(buf, r, &p); break;
			case DG_MCU_XTENSA: dg_bcj_xtensa_predict(buf, r, &p); break;
			case DG_MCU_RV32: dg_bcj_riscv_predict(buf, r, &p); break;
			default: break;
			}
		} else if (r->flags & DG_MCU_ABS) {
			abs_pass(buf, r, &p, map->arch == DG_MCU_THUMB2);
		}
	}
}
