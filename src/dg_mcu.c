/* dg_mcu - firmware image maps, detection, and the address-word prediction.
 * See dg_mcu.h. */
#include <stdlib.h>
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
		if (dg_mcu_map_version(m) >= DG_MCU_MAP_V3) {
			q[17] = m->r[i].arch;
			q[18] = m->r[i].image;
		}
	}
}

int
dg_mcu_map_read(const uint8_t *p, size_t len, uint64_t src_size, dg_mcu_map *m, size_t *used)
{
	memset(m, 0, sizeof(*m));
	if (len < MAP_HDR || p[0] < DG_MCU_MAP_V1 || p[0] > DG_MCU_MAP_V3 ||
	    p[1] == DG_MCU_NONE || p[1] >= DG_MCU_ARCH_MAX_ || p[3] ||
	    p[2] > (p[0] >= DG_MCU_MAP_V3 ? DG_MCU_MAX_REGIONS : DG_MCU_MAX_REGIONS_V1))
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
		if (m->version >= DG_MCU_MAP_V3) {
			/* the region's architecture and image */
			if (q[17] == DG_MCU_NONE || q[17] >= DG_MCU_ARCH_MAX_)
				return -1;
			r->arch = q[17];
			r->image = q[18];
		} else if (q[17] || q[18]) {
			return -1;
		}
		if ((r->flags & ~(DG_MCU_CODE | DG_MCU_ABS)) || q[19] ||
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
	m->r[0] = (dg_mcu_region){ 0, 0, (uint32_t)n, base, DG_MCU_CODE | DG_MCU_ABS, 0, 0 };
}

int
dg_mcu_pair(dg_mcu_map *src, const dg_mcu_map *tgt)
{
	if (src->arch != tgt->arch || src->n != tgt->n)
		return -1;
	for (unsigned i = 0; i < src->n; i++)
		if (src->r[i].vaddr != tgt->r[i].vaddr || src->r[i].arch != tgt->r[i].arch ||
		    src->r[i].image != tgt->r[i].image || src->r[i].flags != tgt->r[i].flags)
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
	if (cnt == 0 || cnt > DG_MCU_MAX_REGIONS_V1)
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
						esp_flags(addr), 0, 0 };
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
	for (unsigned i = 0; i < phnum && m->n < DG_MCU_MAX_REGIONS_V1; i++) {
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
								       : DG_MCU_ABS),
						0, 0 };
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

/* The base of a flat image: the 1 MiB bucket most aligned words point
 * into. */
static int
ascii4(uint32_t w)
{
	for (int i = 0; i < 4; i++, w >>= 8)
		if ((w & 0xFF) < 0x20 || (w & 0xFF) > 0x7E)
			return 0;
	return 1;
}

/* text: words that are four printable characters are not counted (strings
 * in the image; the detection of a single flat image counts them, and
 * keeps doing so that its maps stay what they were) */
static uint32_t
flat_base(const uint8_t *b, size_t n, int text)
{
	uint32_t counts[64] = { 0 }, buckets[64] = { 0 }, best = 0, bestc = 0;
	unsigned nb = 0;

	for (size_t o = 0; o + 4 <= n; o += 4) {
		uint32_t w = dg_mcu_rd32(b + o), bk = w & 0xFFF00000u;
		unsigned i;

		if (!bk || bk == 0xFFF00000u || w - bk >= n || (text && ascii4(w)))
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
	return best;
}

/* Return instructions in b[0..n): Thumb BX LR / POP {..,PC}, RV C.JR ra,
 * Xtensa RET.N / RETW.N; c[arch] */
static void
isa_counts(const uint8_t *b, size_t n, size_t c[DG_MCU_ARCH_MAX_])
{
	memset(c, 0, sizeof(size_t) * DG_MCU_ARCH_MAX_);
	for (size_t o = 0; o + 2 <= n; o += 2) {
		uint16_t h = rd16(b + o);

		c[DG_MCU_THUMB2] += h == 0x4770 || (h & 0xFF00) == 0xBD00;
		c[DG_MCU_RV32] += h == 0x8082;
	}
	for (size_t o = 0; o + 2 <= n; o++)
		c[DG_MCU_XTENSA] += b[o + 1] == 0xF0 && (b[o] == 0x0D || b[o] == 0x1D);
}

/* the architecture with more than three times the others' returns and
 * more than min of them */
static dg_mcu_arch
isa_of(const size_t c[DG_MCU_ARCH_MAX_], size_t min)
{
	size_t t = c[DG_MCU_THUMB2], r = c[DG_MCU_RV32], x = c[DG_MCU_XTENSA];

	if (r > 3 * t && r > 3 * x && r > min)
		return DG_MCU_RV32;
	if (t > 3 * r && t > 3 * x && t > min)
		return DG_MCU_THUMB2;
	if (x > 3 * r && x > 3 * t && x > min)
		return DG_MCU_XTENSA;
	return DG_MCU_NONE;
}

/* A flat image with no header: the architecture whose return instructions
 * are densest, the base the 1 MiB bucket most aligned words point into. */
static dg_mcu_arch
detect_flat(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	size_t c[DG_MCU_ARCH_MAX_];
	dg_mcu_arch a;

	if (n < 4096)
		return DG_MCU_NONE;
	isa_counts(b, n, c);
	if ((a = isa_of(c, n / 4096)) == DG_MCU_NONE)
		return DG_MCU_NONE;
	dg_mcu_flat(m, a, flat_base(b, n, 0), n);
	return a;
}

/* ---- several images in one file ---- */

#define MIX_BLOCK 4096u /* instruction-set blocks */
#define MIX_RUN 8u      /* blocks of another instruction set: a new image */
#define MIX_MIN 4096u   /* the shortest image */
#define MIX_MAX 32u     /* images */

struct mix_part {
	uint32_t off, end, base;
	uint8_t arch, esp;  /* esp: regions in m (offsets from off) */
	uint8_t vt;         /* a Cortex-M vector table gave base */
	dg_mcu_map m;
};

/* An ESP app image at b[0..n) whose segments are all at ESP addresses:
 * its length (the checksum, and the hash when flagged, included), or 0. */
static size_t
esp_at(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	size_t hdr, off;
	int hash = 0;

	if (n < 64 || b[0] != 0xE9 || b[1] == 0 || b[1] > DG_MCU_MAX_REGIONS_V1)
		return 0;
	for (int idf = 1; idf >= 0; idf--) {
		unsigned i;

		if (idf && (b[23] > 1 || b[13]))
			continue;
		hdr = idf ? 24 : 8;
		hash = idf ? b[23] : 0;
		off = hdr;
		memset(m, 0, sizeof(*m));
		for (i = 0; i < b[1]; i++) {
			uint32_t addr, len;

			if (n - off < 8)
				break;
			addr = dg_mcu_rd32(b + off);
			len = dg_mcu_rd32(b + off + 4);
			if (addr < 0x3C000000u || addr >= 0x60000000u || len > n - off - 8)
				break;
			m->r[m->n++] = (dg_mcu_region){ (uint32_t)off + 8, (uint32_t)off + 8, len,
							addr, esp_flags(addr), 0, 0 };
			off += 8 + (size_t)len;
		}
		if (i < b[1])
			continue;
		off = (off | 15u) + 1 + (hash ? 32 : 0);
		if (off > n)
			continue;
		m->arch = !idf ? DG_MCU_XTENSA
			       : rd16(b + 12) == 0 || rd16(b + 12) == 2 || rd16(b + 12) == 9
				 ? DG_MCU_XTENSA
				 : DG_MCU_RV32;
		return off;
	}
	memset(m, 0, sizeof(*m));
	return 0;
}

static dg_mcu_arch
block_isa(const uint8_t *b, size_t n, size_t min)
{
	size_t c[DG_MCU_ARCH_MAX_];

	isa_counts(b, n, c);
	return isa_of(c, min);
}

static int
is_ret(const uint8_t *q, uint8_t arch)
{
	uint16_t h = rd16(q);

	switch (arch) {
	case DG_MCU_THUMB2: return h == 0x4770 || (h & 0xFF00) == 0xBD00;
	case DG_MCU_RV32: return h == 0x8082;
	case DG_MCU_XTENSA: return q[1] == 0xF0 && (q[0] == 0x0D || q[0] == 0x1D);
	default: return 0;
	}
}

/* Where an image of arch to starts after one of arch from, the block at
 * blk being the first of the new code (part from a, ending at e): after the
 * old image's last return before the new code's first return, at the end
 * of the last run of 16 or more zero or 0xFF bytes (padding, zero-filled
 * data) if there is one, 4-aligned; the first new return else. */
static uint32_t
boundary(const uint8_t *b, uint32_t a, uint32_t blk, uint32_t e, uint8_t from, uint8_t to)
{
	uint32_t lo = blk - a >= MIX_MIN + MIX_BLOCK ? blk - MIX_BLOCK : a + MIX_MIN;
	uint32_t hi = e - blk > MIX_BLOCK ? blk + MIX_BLOCK : e - 1, first = hi, last = lo, o, pad = 0;
	uint32_t run = 0;

	/* the new code's first return: two in a row 64 bytes apart at most
	 * with no return of the old set between */
	for (o = blk; o + 2 <= hi; o += 2)
		if (is_ret(b + o, to)) {
			first = o;
			break;
		}
	if (first == hi)
		return blk;
	for (o = first; o > lo; o -= 2)
		if (is_ret(b + o - 2, from)) {
			last = o;
			break;
		}
	for (o = (last + 3u) & ~3u; o + 4 <= first; o += 4) {
		uint32_t w = dg_mcu_rd32(b + o);

		run = w == 0 || w == 0xFFFFFFFFu ? run + 4 : 0;
		if (run >= 16)
			pad = o + 4;
	}
	if (pad)
		return pad;
	return first & ~3u;
}

/* Split part p (b[p->off..p->end), arch p->arch or NONE when unknown) where
 * MIX_RUN labelled blocks in a row are of another instruction set; the new
 * parts go after it in parts[] (*np of them, at most MIX_MAX). */
static void
split_isa(const uint8_t *b, struct mix_part *parts, unsigned *np, unsigned p)
{
	uint32_t a = parts[p].off, e = parts[p].end, o, run_start = 0;
	uint8_t cur = parts[p].arch, run_arch = DG_MCU_NONE;
	unsigned run = 0;

	for (o = a; e - o >= MIX_BLOCK; o += MIX_BLOCK) {
		dg_mcu_arch l = block_isa(b + o, MIX_BLOCK, 2);
		uint32_t s;

		if (l == DG_MCU_NONE)
			continue;
		if (l == cur) {
			run = 0;
			continue;
		}
		if (l != run_arch) {
			run_arch = (uint8_t)l;
			run_start = o;
			run = 0;
		}
		if (++run < MIX_RUN)
			continue;
		if (cur == DG_MCU_NONE) {
			/* a headerless part: its instruction set */
			parts[p].arch = cur = run_arch;
			run = 0;
			continue;
		}
		if (*np == MIX_MAX)
			return;
		s = boundary(b, a, run_start, e, cur, run_arch);
		memmove(&parts[p + 2], &parts[p + 1], (*np - p - 1) * sizeof(parts[0]));
		parts[p + 1] = (struct mix_part){ .off = s, .end = e, .arch = run_arch };
		parts[p].end = s;
		(*np)++;
		p++;
		a = s;
		cur = run_arch;
		run = 0;
	}
}

/* Inside a file, more than detect_cortex_m asks of a vector table (tables
 * of odd constants pass that): an 8-aligned initial SP (the end of RAM) and
 * a reset handler of its own beside the default handler. */
static int
vt_strict(const uint8_t *b)
{
	uint32_t sp = dg_mcu_rd32(b), reset = dg_mcu_rd32(b + 4);

	if (sp & 7)
		return 0;
	for (unsigned i = 2; i < 16; i++) {
		uint32_t h = dg_mcu_rd32(b + 4 * i);

		if (h && h != reset)
			return 1;
	}
	return 0;
}

unsigned
dg_mcu_detect_mixed(const uint8_t *b, size_t n, dg_mcu_map *m)
{
	static const struct mix_part zero;
	struct mix_part *parts, t;
	unsigned np = 0, i, k;
	size_t o, len;
	uint32_t last = 0;

	memset(m, 0, sizeof(*m));
	if (n >= ((size_t)1 << 31) || n < 2 * MIX_MIN)
		return 0;
	parts = calloc(MIX_MAX, sizeof(*parts));
	if (!parts)
		return 0;
	/* image headers, 4-aligned: Cortex-M vector tables, ESP app images */
	for (o = 0; o + 256 <= n && np < MIX_MAX; o += 4) {
		t = zero;
		if (np && o - last < MIX_MIN)
			continue;
		if (b[o] == 0xE9 && (len = esp_at(b + o, n - o, &t.m)) >= MIX_MIN) {
			t.esp = 1;
			t.arch = t.m.arch;
			t.off = (uint32_t)o;
			t.end = (uint32_t)(o + len);
		} else if (vt_strict(b + o) && detect_cortex_m(b + o, n - o, &t.m) == DG_MCU_THUMB2) {
			t.arch = DG_MCU_THUMB2;
			t.base = t.m.r[0].vaddr;
			t.vt = 1;
			t.off = (uint32_t)o;
			t.end = (uint32_t)n;
		} else {
			continue;
		}
		if (np && !parts[np - 1].esp)
			parts[np - 1].end = t.off;
		if (!np && o >= MIX_BLOCK * MIX_RUN)
			parts[np++] = (struct mix_part){ .off = 0, .end = (uint32_t)o };
		if (np < MIX_MAX)
			parts[np++] = t;
		last = (uint32_t)o;
		if (t.esp)
			o = ((t.end + 3u) & ~3u) - 4;
	}
	if (np == 0) {
		free(parts);
		return 0;
	}
	/* after an ESP image: what follows, up to the next header */
	for (i = 0; i < np && np < MIX_MAX; i++) {
		uint32_t next = i + 1 < np ? parts[i + 1].off : (uint32_t)n;

		if (parts[i].esp && next - parts[i].end >= MIX_BLOCK * MIX_RUN) {
			memmove(&parts[i + 2], &parts[i + 1], (np - i - 1) * sizeof(parts[0]));
			parts[i + 1] = (struct mix_part){ .off = parts[i].end, .end = next };
			np++;
		}
	}
	/* instruction-set changes inside the headerless stretches and after
	 * Cortex-M images */
	for (i = 0; i < np; i++)
		if (!parts[i].esp)
			split_isa(b, parts, &np, i);
	/* the map: one region per flat image, the segments of an ESP image */
	m->version = DG_MCU_MAP_V3;
	for (i = 0, k = 0; i < np; i++) {
		struct mix_part *p = &parts[i];

		if (p->arch == DG_MCU_NONE)
			continue;
		if (p->esp) {
			if (m->n + p->m.n > DG_MCU_MAX_REGIONS)
				break;
			for (unsigned r = 0; r < p->m.n; r++) {
				dg_mcu_region x = p->m.r[r];

				x.soff += p->off;
				x.toff = x.soff;
				x.arch = p->arch;
				x.image = (uint8_t)k;
				m->r[m->n++] = x;
			}
		} else {
			if (m->n == DG_MCU_MAX_REGIONS)
				break;
			if (!p->vt)
				p->base = flat_base(b + p->off, p->end - p->off, 1);
			m->r[m->n++] = (dg_mcu_region){ p->off, p->off, p->end - p->off, p->base,
							DG_MCU_CODE | DG_MCU_ABS, p->arch,
							(uint8_t)k };
		}
		k++;
	}
	if (m->n)
		m->arch = m->r[0].arch;
	free(parts);
	return k;
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

/* the regions of one image (version 1 and 2 maps: one image), each pass
 * seeing only them */
static void
predict_image(uint8_t *buf, size_t size, const dg_mcu_map *map, dg_bcj_shift_fn shift, void *ctx)
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

void
dg_mcu_predict(uint8_t *buf, size_t size, const dg_mcu_map *map, dg_bcj_shift_fn shift, void *ctx)
{
	dg_mcu_map sub;
	unsigned i, j;

	if (dg_mcu_map_version(map) < DG_MCU_MAP_V3) {
		predict_image(buf, size, map, shift, ctx);
		return;
	}
	/* version 3: image by image (in the order of their first region), each
	 * with only its own regions as the map, each region with its own
	 * architecture (the generator gives an image's regions one) */
	for (i = 0; i < map->n; i++) {
		for (j = 0; j < i && map->r[j].image != map->r[i].image; j++)
			;
		if (j < i)
			continue; /* image done */
		memset(&sub, 0, sizeof(sub));
		sub.version = DG_MCU_MAP_V3;
		for (j = i; j < map->n; j++)
			if (map->r[j].image == map->r[i].image)
				sub.r[sub.n++] = map->r[j];
		for (j = 0; j < sub.n; j++) {
			dg_mcu_pred p = { &sub, shift, ctx };
			const dg_mcu_region *r = &sub.r[j];

			sub.arch = r->arch;
			if ((uint64_t)r->soff + r->len > size)
				continue;
			if (r->flags & DG_MCU_CODE) {
				switch (r->arch) {
				case DG_MCU_THUMB2: dg_bcj_thumb2_predict(buf, r, &p); break;
				case DG_MCU_XTENSA: dg_bcj_xtensa_predict(buf, r, &p); break;
				case DG_MCU_RV32: dg_bcj_riscv_predict(buf, r, &p); break;
				default: break;
				}
			} else if (r->flags & DG_MCU_ABS) {
				abs_pass(buf, r, &p, r->arch == DG_MCU_THUMB2);
			}
		}
	}
}
