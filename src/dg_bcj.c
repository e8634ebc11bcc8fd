/* dg_bcj - branch-call-jump conversion filters (see dg_bcj.h). */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include "dg_bcj.h"

static uint32_t
rd32le_(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#define X86_MS_BYTE_OK(b) ((((b) + 1) & 0xFE) == 0)

static void
x86_code(bool enc, uint8_t *buf, size_t size)
{
	static const bool mask_ok[8] = { true, true, true, false, true, false, false, false };
	static const uint32_t mask_bit[8] = { 0, 1, 2, 2, 3, 3, 3, 3 };
	uint32_t prev_mask = 0, prev_pos = (uint32_t)-5, off, src, dest, i;
	size_t pos = 0;
	uint8_t b;

	if (size < 5)
		return;
	while (pos <= size - 5) {
		b = buf[pos];
		if (b != 0xE8 && b != 0xE9) {
			pos++;
			continue;
		}
		off = (uint32_t)pos - prev_pos;
		prev_pos = (uint32_t)pos;
		if (off > 5) {
			prev_mask = 0;
		} else {
			for (i = 0; i < off; i++) {
				prev_mask &= 0x77;
				prev_mask <<= 1;
			}
		}
		b = buf[pos + 4];
		if (X86_MS_BYTE_OK(b) && mask_ok[(prev_mask >> 1) & 7] && (prev_mask >> 1) < 0x10) {
			src = ((uint32_t)b << 24) | ((uint32_t)buf[pos + 3] << 16) |
			      ((uint32_t)buf[pos + 2] << 8) | buf[pos + 1];
			for (;;) {
				if (enc)
					dest = src + ((uint32_t)pos + 5);
				else
					dest = src - ((uint32_t)pos + 5);
				if (prev_mask == 0)
					break;
				i = mask_bit[prev_mask >> 1];
				b = (uint8_t)(dest >> (24 - i * 8));
				if (!X86_MS_BYTE_OK(b))
					break;
				src = dest ^ ((1u << (32 - i * 8)) - 1);
			}
			buf[pos + 4] = (uint8_t)(~(((dest >> 24) & 1) - 1));
			buf[pos + 3] = (uint8_t)(dest >> 16);
			buf[pos + 2] = (uint8_t)(dest >> 8);
			buf[pos + 1] = (uint8_t)dest;
			pos += 5;
			prev_mask = 0;
		} else {
			pos++;
			prev_mask |= 1;
			if (X86_MS_BYTE_OK(b))
				prev_mask |= 0x10;
		}
	}
}

static void
arm_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i;
	uint32_t src, dest;

	for (i = 0; i + 4 <= size; i += 4) {
		if (buf[i + 3] != 0xEB)
			continue;
		src = ((uint32_t)buf[i + 2] << 16) | ((uint32_t)buf[i + 1] << 8) | buf[i];
		src <<= 2;
		dest = enc ? (uint32_t)i + 8 + src : src - ((uint32_t)i + 8);
		dest >>= 2;
		buf[i + 2] = (uint8_t)(dest >> 16);
		buf[i + 1] = (uint8_t)(dest >> 8);
		buf[i] = (uint8_t)dest;
	}
}

static void
armt_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i;
	uint32_t src, dest;

	for (i = 0; i + 4 <= size; i += 2) {
		if ((buf[i + 1] & 0xF8) != 0xF0 || (buf[i + 3] & 0xF8) != 0xF8)
			continue;
		src = (((uint32_t)buf[i + 1] & 7) << 19) | ((uint32_t)buf[i] << 11) |
		      (((uint32_t)buf[i + 3] & 7) << 8) | buf[i + 2];
		src <<= 1;
		dest = enc ? (uint32_t)i + 4 + src : src - ((uint32_t)i + 4);
		dest >>= 1;
		buf[i + 1] = (uint8_t)(0xF0 | ((dest >> 19) & 7));
		buf[i] = (uint8_t)(dest >> 11);
		buf[i + 3] = (uint8_t)(0xF8 | ((dest >> 8) & 7));
		buf[i + 2] = (uint8_t)dest;
		i += 2;
	}
}

static uint32_t
rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void
wr32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
wr32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
arm64_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i;
	uint32_t pc, ins, src, dest;

	for (i = 0; i + 4 <= size; i += 4) {
		pc = (uint32_t)i;
		ins = rd32le(buf + i);
		if ((ins >> 26) == 0x25) {
			/* BL imm26 (words) */
			src = ins;
			pc >>= 2;
			if (!enc)
				pc = 0u - pc;
			ins = 0x94000000u | ((src + pc) & 0x03FFFFFFu);
			wr32le(buf + i, ins);
		} else if ((ins & 0x9F000000u) == 0x90000000u) {
			/* ADRP: only small page offsets (+-512 MiB) are converted so
			 * that the test below is the same before and after. */
			src = ((ins >> 29) & 3) | ((ins >> 3) & 0x001FFFFCu);
			if ((src + 0x00020000u) & 0x001C0000u)
				continue;
			ins &= 0x9000001Fu;
			pc >>= 12;
			if (!enc)
				pc = 0u - pc;
			dest = src + pc;
			ins |= (dest & 3) << 29;
			ins |= (dest & 0x0003FFFCu) << 3;
			ins |= (0u - (dest & 0x00020000u)) & 0x00E00000u;
			wr32le(buf + i, ins);
		}
	}
}

static void
ppc_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i;
	uint32_t src, dest;

	for (i = 0; i + 4 <= size; i += 4) {
		if ((buf[i] >> 2) != 0x12 || (buf[i + 3] & 3) != 1)
			continue;
		src = (((uint32_t)buf[i] & 3) << 24) | ((uint32_t)buf[i + 1] << 16) |
		      ((uint32_t)buf[i + 2] << 8) | ((uint32_t)buf[i + 3] & ~3u);
		dest = enc ? (uint32_t)i + src : src - (uint32_t)i;
		buf[i] = (uint8_t)(0x48 | ((dest >> 24) & 3));
		buf[i + 1] = (uint8_t)(dest >> 16);
		buf[i + 2] = (uint8_t)(dest >> 8);
		buf[i + 3] = (uint8_t)((buf[i + 3] & 3) | (dest & ~3u));
	}
}

static void
sparc_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i;
	uint32_t src, dest;

	for (i = 0; i + 4 <= size; i += 4) {
		if (!((buf[i] == 0x40 && (buf[i + 1] & 0xC0) == 0x00) ||
		      (buf[i] == 0x7F && (buf[i + 1] & 0xC0) == 0xC0)))
			continue;
		src = ((uint32_t)buf[i] << 24) | ((uint32_t)buf[i + 1] << 16) |
		      ((uint32_t)buf[i + 2] << 8) | buf[i + 3];
		src <<= 2;
		dest = enc ? (uint32_t)i + src : src - (uint32_t)i;
		dest >>= 2;
		dest = (((0u - ((dest >> 22) & 1)) << 22) & 0x3FFFFFFFu) | (dest & 0x3FFFFFu) | 0x40000000u;
		wr32be(buf + i, dest);
	}
}

/* x86-64: besides calls and jumps, code refers to data through 32-bit
 * RIP-relative displacements (ModRM mod=00 rm=101), and all of those change
 * when code moves relative to data. Each candidate operand whose top byte is
 * 0x00 or 0xFF (a displacement within +-16 MiB) is replaced by
 * sext25(operand + position); the top byte stays 0x00/0xFF, the opcode and
 * ModRM bytes are never changed and converted operands are skipped, so the
 * decoder takes exactly the same decisions: the filter is a bijection. */
static const uint8_t rip_op1[256] = {
	[0x01] = 1, [0x03] = 1, [0x09] = 1, [0x0B] = 1, [0x21] = 1, [0x23] = 1,
	[0x29] = 1, [0x2B] = 1, [0x31] = 1, [0x33] = 1, [0x39] = 1, [0x3B] = 1,
	[0x63] = 1, [0x85] = 1, [0x87] = 1, [0x88] = 1, [0x89] = 1, [0x8A] = 1,
	[0x8B] = 1, [0x8D] = 1, [0xFF] = 1, [0xC7] = 1, [0x83] = 1, [0x80] = 1,
	[0x81] = 1, [0xC6] = 1, [0xF7] = 1, [0xD1] = 1,
};
static const uint8_t rip_op2[256] = {
	[0x10] = 1, [0x11] = 1, [0x12] = 1, [0x16] = 1, [0x28] = 1, [0x29] = 1,
	[0x2A] = 1, [0x2E] = 1, [0x2F] = 1, [0x51] = 1, [0x54] = 1, [0x56] = 1,
	[0x57] = 1, [0x58] = 1, [0x59] = 1, [0x5A] = 1, [0x5C] = 1, [0x5E] = 1,
	[0x6F] = 1, [0x7E] = 1, [0x7F] = 1, [0xAF] = 1, [0xB6] = 1, [0xB7] = 1,
	[0xBE] = 1, [0xBF] = 1, [0xD6] = 1, [0xEF] = 1, [0xFE] = 1, [0xD4] = 1,
};

static void
x64_convert(bool enc, uint8_t *p, uint32_t end)
{
	uint32_t v = rd32le_(p);

	v = enc ? v + end : v - end;
	v = (v & 0x01FFFFFFu) | ((v & 0x01000000u) ? 0xFE000000u : 0);
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* A candidate whose top byte fails the test is not converted, and then no
 * later operand may cover that top byte (blocked): otherwise a conversion
 * could change the byte the decoder tests. */
static void
x86_64_code(bool enc, uint8_t *buf, size_t size)
{
	size_t i = 0, os, end, blocked = 0;
	uint8_t b;

	while (i + 7 <= size) {
		b = buf[i];
		os = 0;
		end = 0;
		if (b == 0xE8 || b == 0xE9) {
			os = i + 1;
			end = i + 5;
		} else if (rip_op1[b] && (buf[i + 1] & 0xC7) == 0x05) {
			os = i + 2;
			end = i + 6;
		} else if (b == 0x0F && (buf[i + 1] & 0xF0) == 0x80) {
			os = i + 2;
			end = i + 6;
		} else if (b == 0x0F && rip_op2[buf[i + 1]] && (buf[i + 2] & 0xC7) == 0x05) {
			os = i + 3;
			end = i + 7;
		}
		if (os && os >= blocked) {
			if (buf[os + 3] == 0x00 || buf[os + 3] == 0xFF) {
				x64_convert(enc, buf + os, (uint32_t)end);
				i = end;
				continue;
			}
			blocked = os + 4;
		}
		i++;
	}
}

void
dg_bcj_x64_predict(uint8_t *buf, size_t size, dg_bcj_shift_fn shift, void *ctx)
{
	size_t i = 0, os, end;
	int64_t v, a, e2, a2, nv;
	uint8_t b;

	while (i + 7 <= size) {
		b = buf[i];
		os = 0;
		end = 0;
		if (b == 0xE8 || b == 0xE9) {
			os = i + 1;
			end = i + 5;
		} else if (rip_op1[b] && (buf[i + 1] & 0xC7) == 0x05) {
			os = i + 2;
			end = i + 6;
		} else if (b == 0x0F && (buf[i + 1] & 0xF0) == 0x80) {
			os = i + 2;
			end = i + 6;
		} else if (b == 0x0F && rip_op2[buf[i + 1]] && (buf[i + 2] & 0xC7) == 0x05) {
			os = i + 3;
			end = i + 7;
		}
		if (!os) {
			i++;
			continue;
		}
		v = (int32_t)rd32le_(buf + os);
		a = (int64_t)end + v;
		if (a < 0 || a >= (int64_t)size) {
			i++;
			continue;
		}
		e2 = (int64_t)end + shift(ctx, os);
		a2 = a + shift(ctx, (uint64_t)a);
		nv = a2 - e2;
		if (nv >= INT32_MIN && nv <= INT32_MAX) {
			uint32_t u = (uint32_t)(int32_t)nv;

			buf[os] = (uint8_t)u;
			buf[os + 1] = (uint8_t)(u >> 8);
			buf[os + 2] = (uint8_t)(u >> 16);
			buf[os + 3] = (uint8_t)(u >> 24);
		}
		i = end;
	}
}

static void
code(dg_bcj_filter f, bool enc, uint8_t *buf, size_t size)
{
	switch (f) {
	case DG_BCJ_X86: x86_code(enc, buf, size); break;
	case DG_BCJ_ARM: arm_code(enc, buf, size); break;
	case DG_BCJ_ARMT: armt_code(enc, buf, size); break;
	case DG_BCJ_ARM64: arm64_code(enc, buf, size); break;
	case DG_BCJ_PPC: ppc_code(enc, buf, size); break;
	case DG_BCJ_SPARC: sparc_code(enc, buf, size); break;
	case DG_BCJ_X86_64: x86_64_code(enc, buf, size); break;
	default: break;
	}
}

void
dg_bcj_encode(dg_bcj_filter f, uint8_t *buf, size_t size)
{
	code(f, true, buf, size);
}

void
dg_bcj_decode(dg_bcj_filter f, uint8_t *buf, size_t size)
{
	code(f, false, buf, size);
}

static size_t
add(dg_bcj_filter *out, size_t n, size_t max, dg_bcj_filter f)
{
	if (n < max)
		out[n++] = f;
	return n;
}

size_t
dg_bcj_guess(const uint8_t *buf, size_t size, dg_bcj_filter *out, size_t max)
{
	size_t n = 0;
	unsigned machine;

	if (size >= 20 && memcmp(buf, "\177ELF", 4) == 0) {
		/* e_machine at 18, in the file's byte order (EI_DATA at 5) */
		machine = buf[5] == 2 ? ((unsigned)buf[18] << 8 | buf[19])
				      : ((unsigned)buf[19] << 8 | buf[18]);
		switch (machine) {
		case 62: /* EM_X86_64 */
			n = add(out, n, max, DG_BCJ_X86_64); break;
		case 3: /* EM_386 */
			n = add(out, n, max, DG_BCJ_X86); break;
		case 40: /* EM_ARM: ARM and Thumb code both occur */
			n = add(out, n, max, DG_BCJ_ARMT);
			n = add(out, n, max, DG_BCJ_ARM); break;
		case 183: /* EM_AARCH64 */
			n = add(out, n, max, DG_BCJ_ARM64); break;
		case 20: case 21: /* EM_PPC, EM_PPC64 */
			if (buf[5] == 2)
				n = add(out, n, max, DG_BCJ_PPC);
			break;
		case 2: case 18: case 43: /* EM_SPARC, EM_SPARC32PLUS, EM_SPARCV9 */
			n = add(out, n, max, DG_BCJ_SPARC); break;
		default: break;
		}
	} else if (size >= 2 && buf[0] == 'M' && buf[1] == 'Z') {
		n = add(out, n, max, DG_BCJ_X86);
	}
	return n;
}

const char *
dg_bcj_name(dg_bcj_filter f)
{
	static const char *const names[] = { "none", "x86", "arm", "armthumb", "arm64", "powerpc",
					     "sparc", "x86-64" };

	if ((unsigned)f < DG_BCJ_MAX_)
		return names[f];
	return "unknown";
}
