/* sim_stm32 - the STM32 ROM bootloader (AN3155) with a flash model.
 *
 * Answers 0x7F (auto-baud), Get, Get Version, Get ID, Read Memory, Write
 * Memory, Erase (0x43, with legacy=yes) or Extended Erase (0x44), and Go.
 * The flash is an array of pages starting at base; erased bytes are 0xFF,
 * a write over non-erased bytes is refused (NACK) as the real flash
 * controller does, and write-protected pages refuse erase and write.
 * After every accepted Write Memory the image (the flash up to the highest
 * byte ever written) is installed, so the device file always shows what
 * the flash holds.
 *
 * Options: pid= (default 0x410, the F10x medium density stm32flash knows,
 * 1 KiB pages), flash-size= (128K), page-size= (1024), base=
 * (0x08000000), wp=a-b,c (write-protected pages), legacy=yes (Erase 0x43
 * instead of 0x44), corrupt=OFFSET (store that flash byte with bit 0
 * flipped), defaults= (all options back to their defaults), nack-writes=K (refuse the first K Write Memory blocks, a flaky
 * line or flash), mute=yes (never answer), version= (recorded on install).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ACK  0x79
#define NACK 0x1F
#define MAX_WP 64

struct cfg {
	unsigned pid;
	uint32_t flash_size, page_size, base;
	unsigned wp_lo[MAX_WP], wp_hi[MAX_WP];
	unsigned nwp;
	int legacy, mute;
	long corrupt;
	long nack_writes;       /* NACK this many Write Memory blocks first */
	char version[64];
};
static const struct cfg defaults = { 0x410, 128 * 1024, 1024, 0x08000000u,
	{ 0 }, { 0 }, 0, 0, 0, -1, 0, "" };
static struct cfg cfg = { 0x410, 128 * 1024, 1024, 0x08000000u, { 0 }, { 0 }, 0,
	0, 0, -1, 0, "" };

enum st {
	S_SYNC,        /* waiting for 0x7F */
	S_CMD,         /* waiting for a command byte pair */
	S_ADDR,        /* 4 address bytes + checksum */
	S_READ_LEN,    /* N, ~N */
	S_WRITE_DATA,  /* N, N+1 bytes, checksum */
	S_ERASE_ARGS,  /* page list + checksum */
	S_GONE         /* after Go: the application runs */
};

struct st32 {
	uint8_t *flash;
	size_t used;           /* highest written end */
	enum st st;
	uint8_t cmd;
	uint8_t buf[2 + 2 * 65536 + 1];
	size_t n, want;
	uint32_t addr;
};

static int
num(const char *v, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(v, &end, 0);
	if (errno != 0 || end == v)
		return -1;
	if (*end == 'K' || *end == 'k') {
		*out *= 1024;
		end++;
	}
	return *end == '\0' ? 0 : -1;
}

static int
stm32_option(struct sim_dev *d, const char *k, const char *v)
{
	unsigned long x;

	(void)d;
	if (strcmp(k, "defaults") == 0)
		cfg = defaults;         /* back to the defaults (unit tests) */
	else if (strcmp(k, "pid") == 0 && num(v, &x) == 0 && x <= 0xFFFF)
		cfg.pid = (unsigned)x;
	else if (strcmp(k, "flash-size") == 0 && num(v, &x) == 0 && x > 0 && x <= (16ul << 20))
		cfg.flash_size = (uint32_t)x;
	else if (strcmp(k, "page-size") == 0 && num(v, &x) == 0 && x >= 4 && x <= (1ul << 20))
		cfg.page_size = (uint32_t)x;
	else if (strcmp(k, "base") == 0 && num(v, &x) == 0 && x <= 0xFFFFFFFFul)
		cfg.base = (uint32_t)x;
	else if (strcmp(k, "legacy") == 0)
		cfg.legacy = strcmp(v, "yes") == 0;
	else if (strcmp(k, "mute") == 0)
		cfg.mute = strcmp(v, "yes") == 0;
	else if (strcmp(k, "corrupt") == 0 && num(v, &x) == 0)
		cfg.corrupt = (long)x;
	else if (strcmp(k, "nack-writes") == 0 && num(v, &x) == 0)
		cfg.nack_writes = (long)x;
	else if (strcmp(k, "version") == 0 && strlen(v) < sizeof cfg.version)
		strcpy(cfg.version, v);
	else if (strcmp(k, "wp") == 0) {
		char tmp[256], *tok, *save = NULL;

		if (strlen(v) >= sizeof tmp)
			goto bad;
		strcpy(tmp, v);
		for (tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			char *dash = strchr(tok, '-');
			unsigned long lo, hi;

			if (cfg.nwp >= MAX_WP)
				goto bad;
			if (dash != NULL)
				*dash = '\0';
			if (num(tok, &lo) != 0 || (dash != NULL && num(dash + 1, &hi) != 0))
				goto bad;
			if (dash == NULL)
				hi = lo;
			cfg.wp_lo[cfg.nwp] = (unsigned)lo;
			cfg.wp_hi[cfg.nwp] = (unsigned)hi;
			cfg.nwp++;
		}
	} else
		goto bad;
	return 0;
bad:
	fprintf(stderr, "sim stm32: bad option %s=%s\n", k, v);
	return -1;
}

static int
is_wp(unsigned page)
{
	unsigned i;

	for (i = 0; i < cfg.nwp; i++)
		if (page >= cfg.wp_lo[i] && page <= cfg.wp_hi[i])
			return 1;
	return 0;
}

static void
stm32_reset(struct sim_dev *d)
{
	struct st32 *s = sim_stm32.state;
	const uint8_t *img;
	size_t n;

	if (s == NULL) {
		s = calloc(1, sizeof *s);
		if (s == NULL) {
			fprintf(stderr, "sim stm32: out of memory\n");
			exit(1);
		}
		sim_stm32.state = s;
	}
	free(s->flash);         /* flash-size= may have changed */
	s->flash = malloc(cfg.flash_size);
	if (s->flash == NULL) {
		fprintf(stderr, "sim stm32: out of memory\n");
		exit(1);
	}
	memset(s->flash, 0xFF, cfg.flash_size);
	img = sim_image(d, &n);
	if (n > cfg.flash_size)
		n = cfg.flash_size;
	if (img != NULL)
		memcpy(s->flash, img, n);
	s->used = n;
	s->st = S_SYNC;
	s->n = 0;
}

static void
ans(struct sim_dev *d, uint8_t b)
{
	sim_write(d, &b, 1);
}

static uint8_t
xsum(const uint8_t *b, size_t n)
{
	uint8_t x = 0;

	while (n-- > 0)
		x ^= *b++;
	return x;
}

static int
in_flash(uint32_t a, size_t n)
{
	return a >= cfg.base && (uint64_t)a + n <= (uint64_t)cfg.base + cfg.flash_size;
}

static void
command(struct sim_dev *d, struct st32 *s, uint8_t c)
{
	static const uint8_t cmds_ext[] = { 0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x44,
		0x63, 0x73, 0x82, 0x92 };
	uint8_t out[32];

	s->cmd = c;
	switch (c) {
	case 0x00:
		out[0] = ACK;
		out[1] = (uint8_t)sizeof cmds_ext;      /* N: version + cmds - 1 */
		out[2] = 0x22;                          /* bootloader v2.2 */
		memcpy(out + 3, cmds_ext, sizeof cmds_ext);
		if (cfg.legacy)
			out[3 + 6] = 0x43;
		out[3 + sizeof cmds_ext] = ACK;
		sim_write(d, out, 4 + sizeof cmds_ext);
		break;
	case 0x01:
		out[0] = ACK;
		out[1] = 0x22;
		out[2] = 0;
		out[3] = 0;
		out[4] = ACK;
		sim_write(d, out, 5);
		break;
	case 0x02:
		out[0] = ACK;
		out[1] = 1;
		out[2] = (uint8_t)(cfg.pid >> 8);
		out[3] = (uint8_t)cfg.pid;
		out[4] = ACK;
		sim_write(d, out, 5);
		break;
	case 0x11:
	case 0x21:
	case 0x31:
		ans(d, ACK);
		s->st = S_ADDR;
		s->want = 5;
		return;
	case 0x43:
	case 0x44:
		if ((c == 0x43) != (cfg.legacy != 0)) {
			ans(d, NACK);
			break;
		}
		ans(d, ACK);
		s->st = S_ERASE_ARGS;
		s->want = c == 0x44 ? 2 : 1;
		return;
	default:
		ans(d, NACK);
		break;
	}
	s->st = S_CMD;
}

static void
do_erase(struct sim_dev *d, struct st32 *s)
{
	unsigned npages = cfg.flash_size / cfg.page_size, i, cnt, p;
	int ext = s->cmd == 0x44;
	unsigned first = ext ? ((unsigned)s->buf[0] << 8 | s->buf[1]) : s->buf[0];
	int all = ext ? first >= 0xFFFD : first == 0xFF;

	if (all) {
		for (p = 0; p < npages; p++)
			if (is_wp(p))
				goto nack;
		memset(s->flash, 0xFF, cfg.flash_size);
		s->used = 0;
		sim_log(d, "stm32: mass erase");
		ans(d, ACK);
		return;
	}
	cnt = first + 1;
	/* check all pages before erasing any, as the checksum came first */
	for (i = 0; i < cnt; i++) {
		p = ext ? ((unsigned)s->buf[2 + 2 * i] << 8 | s->buf[3 + 2 * i])
		    : s->buf[1 + i];
		if (p >= npages || is_wp(p)) {
			sim_log(d, "stm32: erase of page %u refused%s", p,
			    p < npages ? " (write-protected)" : "");
			goto nack;
		}
	}
	for (i = 0; i < cnt; i++) {
		p = ext ? ((unsigned)s->buf[2 + 2 * i] << 8 | s->buf[3 + 2 * i])
		    : s->buf[1 + i];
		memset(s->flash + (size_t)p * cfg.page_size, 0xFF, cfg.page_size);
	}
	sim_log(d, "stm32: erased %u pages from %u", cnt,
	    ext ? ((unsigned)s->buf[2] << 8 | s->buf[3]) : s->buf[1]);
	ans(d, ACK);
	return;
nack:
	ans(d, NACK);
}

static void
do_write(struct sim_dev *d, struct st32 *s)
{
	size_t n = (size_t)s->buf[0] + 1, i, off;
	const uint8_t *data = s->buf + 1;

	if (!in_flash(s->addr, n)) {
		sim_log(d, "stm32: write outside the flash at 0x%08x", (unsigned)s->addr);
		goto nack;
	}
	if (cfg.nack_writes > 0) {
		cfg.nack_writes--;
		sim_log(d, "stm32: write at 0x%08x refused (nack-writes)", (unsigned)s->addr);
		goto nack;
	}
	off = s->addr - cfg.base;
	for (i = 0; i < n; i++) {
		if (is_wp((unsigned)((off + i) / cfg.page_size)) ||
		    (s->flash[off + i] != 0xFF && s->flash[off + i] != data[i])) {
			sim_log(d, "stm32: write at 0x%08x refused (%s)",
			    (unsigned)(s->addr + i),
			    is_wp((unsigned)((off + i) / cfg.page_size)) ?
			    "write-protected" : "not erased");
			goto nack;
		}
	}
	for (i = 0; i < n; i++) {
		s->flash[off + i] = data[i];
		if (cfg.corrupt >= 0 && (size_t)cfg.corrupt == off + i)
			s->flash[off + i] ^= 0x01;
	}
	if (off + n > s->used)
		s->used = off + n;
	if (sim_install(d, s->flash, s->used,
	    cfg.version[0] != '\0' ? cfg.version : sim_version(d)) != 0)
		goto nack;
	ans(d, ACK);
	return;
nack:
	ans(d, NACK);
}

static void
byte(struct sim_dev *d, struct st32 *s, uint8_t c)
{
	if (s->n < sizeof s->buf)
		s->buf[s->n++] = c;
	switch (s->st) {
	case S_GONE:
		s->n = 0;
		return;
	case S_SYNC:
		s->n = 0;
		if (c == 0x7F) {
			ans(d, ACK);
			s->st = S_CMD;
		}
		return;
	case S_CMD:
		if (s->n < 2)
			return;
		s->n = 0;
		if ((uint8_t)(s->buf[0] ^ s->buf[1]) != 0xFF) {
			ans(d, NACK);
			return;
		}
		command(d, s, s->buf[0]);
		return;
	case S_ADDR:
		if (s->n < 5)
			return;
		s->n = 0;
		s->st = S_CMD;
		if (xsum(s->buf, 4) != s->buf[4]) {
			ans(d, NACK);
			return;
		}
		s->addr = (uint32_t)s->buf[0] << 24 | (uint32_t)s->buf[1] << 16 |
		    (uint32_t)s->buf[2] << 8 | s->buf[3];
		if (s->cmd == 0x21) {
			if (!in_flash(s->addr, 1)) {
				ans(d, NACK);
				return;
			}
			ans(d, ACK);
			sim_log(d, "stm32: go 0x%08x", (unsigned)s->addr);
			s->st = S_GONE;
			sim_app(d);
			return;
		}
		if (s->cmd == 0x11 && !in_flash(s->addr, 1)) {
			ans(d, NACK);
			return;
		}
		ans(d, ACK);
		s->st = s->cmd == 0x11 ? S_READ_LEN : S_WRITE_DATA;
		s->want = s->cmd == 0x11 ? 2 : 1;
		return;
	case S_READ_LEN:
		if (s->n < 2)
			return;
		s->n = 0;
		s->st = S_CMD;
		if ((uint8_t)(s->buf[0] ^ s->buf[1]) != 0xFF ||
		    !in_flash(s->addr, (size_t)s->buf[0] + 1)) {
			ans(d, NACK);
			return;
		}
		ans(d, ACK);
		sim_write(d, s->flash + (s->addr - cfg.base), (size_t)s->buf[0] + 1);
		return;
	case S_WRITE_DATA:
		if (s->n < (size_t)s->buf[0] + 3)
			return;
		s->n = 0;
		s->st = S_CMD;
		if (xsum(s->buf, (size_t)s->buf[0] + 2) != s->buf[s->buf[0] + 2]) {
			ans(d, NACK);
			return;
		}
		do_write(d, s);
		return;
	case S_ERASE_ARGS: {
		size_t need;

		if (s->cmd == 0x44) {
			unsigned first;

			if (s->n < 2)
				return;
			first = (unsigned)s->buf[0] << 8 | s->buf[1];
			need = first >= 0xFFF0 ? 3 : 2 + 2 * ((size_t)first + 1) + 1;
		} else {
			need = s->buf[0] == 0xFF ? 2 : 1 + ((size_t)s->buf[0] + 1) + 1;
		}
		if (s->n < need)
			return;
		s->n = 0;
		s->st = S_CMD;
		if (xsum(s->buf, need - 1) != s->buf[need - 1] &&
		    !(s->cmd == 0x43 && s->buf[0] == 0xFF && s->buf[1] == 0x00)) {
			ans(d, NACK);
			return;
		}
		do_erase(d, s);
		return;
	}
	}
}

static void
stm32_input(struct sim_dev *d, const uint8_t *buf, size_t n)
{
	struct st32 *s = sim_stm32.state;
	size_t i;

	if (cfg.mute || s == NULL)
		return;
	for (i = 0; i < n; i++)
		byte(d, s, buf[i]);
}

static void
stm32_tick(struct sim_dev *d, uint64_t now_ms)
{
	(void)d;
	(void)now_ms;
}

struct sim_personality sim_stm32 = {
	.name = "stm32",
	.option = stm32_option,
	.reset = stm32_reset,
	.input = stm32_input,
	.tick = stm32_tick,
	.state = NULL,
};
