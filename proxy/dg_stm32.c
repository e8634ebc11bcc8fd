/* dg_stm32 - the host side of the STM32 ROM bootloader (ST AN3155) as a
 * dg_sproto engine.
 *
 * Session: parity 8E1, the optional DTR/RTS sequence that puts the board
 * into its bootloader, 0x7F (auto-baud), Get (which erase command the part
 * has), Get ID, an erase of just the pages the image covers (Extended Erase
 * 0x44, or Erase 0x43 on old parts), then per 256-byte chunk Write Memory
 * and (unless verify=no) Read Memory of the same chunk compared with the
 * image, then Go and the optional exit sequence.
 *
 * Every command waits for its answer with one timer; a NACK or a timeout
 * restarts the command's unit (the chunk for writes) up to max_retries
 * times. A NACK to the erase is the write protection: REJECTED.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_sproto.h"

#define ACK  0x79
#define NACK 0x1F

#define CMD_GET      0x00
#define CMD_GETID    0x02
#define CMD_READ     0x11
#define CMD_GO       0x21
#define CMD_WRITE    0x31
#define CMD_ERASE    0x43
#define CMD_EXTERASE 0x44

/* result code of this engine beyond the header's (range 0x020-0x02F) */
#define EXT_UNKNOWN_PART DG_SPROTO_EXT(0x020u) /* page layout unknown: give page-size= */

#define MAX_SEQ    16
#define MAX_PAGES  64   /* entries of a pages= table */
#define CHUNK      256


enum phase {
	PH_IDLE,
	PH_ENTER,      /* running the enter= line sequence */
	PH_SYNC,       /* 0x7F sent */
	PH_GET,        /* 0x00 0xFF sent: ACK N ver cmds... ACK */
	PH_GETID,      /* 0x02 0xFD sent: ACK N pid... ACK */
	PH_ERASE_CMD,  /* 0x44/0x43 + complement sent: ACK */
	PH_ERASE_ARGS, /* page list sent: ACK */
	PH_WRITE_CMD,
	PH_WRITE_ADDR,
	PH_WRITE_DATA,
	PH_READ_CMD,
	PH_READ_ADDR,
	PH_READ_LEN,   /* N-1, ~(N-1) sent: ACK + N bytes */
	PH_GO_CMD,
	PH_GO_ADDR,
	PH_EXIT,       /* running the exit= line sequence */
	PH_DONE
};

struct lineset { int dtr, rts; };

struct dg_sproto {
	const dg_sproto_io *io;
	const uint8_t *image;
	uint64_t size;

	/* options */
	uint32_t base;          /* flash base: page 0 starts here */
	uint32_t addr;          /* where the image goes */
	uint32_t page_size;     /* uniform pages, when npages_tab == 0 */
	int layout_set;         /* page-size= or pages= given */
	unsigned npages_tab;
	uint32_t tab_size[MAX_PAGES];
	unsigned tab_count[MAX_PAGES];
	int verify;
	int go;
	uint32_t go_addr;
	struct lineset enter[MAX_SEQ], exitseq[MAX_SEQ];
	unsigned nenter, nexit;
	int line_delay_ms;
	int timeout_ms;
	int erase_timeout_ms;
	unsigned max_retries;

	/* session */
	enum phase ph;
	unsigned seq_i;
	int has_ext_erase, has_erase;
	unsigned first_page, last_page;
	uint64_t off;           /* start of the current chunk in the image */
	unsigned tries;         /* failures of the current unit */
	unsigned retransmits;
	int last_was_nack;
	uint8_t rx[CHUNK + 8];
	size_t rxn;
	size_t want;            /* bytes the current phase waits for */
	int finished;
};

static void
logf_(dg_sproto *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
logf_(dg_sproto *s, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (s->io->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	s->io->log(s->io->arg, buf);
}

static void
finish(dg_sproto *s, int ok, uint32_t ext, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
finish(dg_sproto *s, int ok, uint32_t ext, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (s->finished)
		return;
	s->finished = 1;
	s->ph = PH_DONE;
	s->io->timer(s->io->arg, -1);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	s->io->done(s->io->arg, ok, ok ? 0 : ext, buf, s->retransmits);
}

/* ------------------------------------------------------------- options */

static int
parse_u32(const char *v, uint32_t *out)
{
	char *end;
	unsigned long long x;

	if (*v == '\0' || *v == '-')
		return -1;
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno != 0 || x > 0xFFFFFFFFull)
		return -1;
	if (*end == 'K' || *end == 'k') {
		x *= 1024;
		end++;
	}
	if (*end != '\0' || x > 0xFFFFFFFFull)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

/* "-rts,dtr,rts&-dtr": one entry per comma, '&' joins lines set at once */
static int
parse_seq(const char *v, struct lineset *seq, unsigned *n)
{
	char buf[256], *tok, *save = NULL;

	*n = 0;
	if (strlen(v) >= sizeof buf)
		return -1;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *part, *save2 = NULL;
		struct lineset ls = { -1, -1 };

		if (*n >= MAX_SEQ)
			return -1;
		for (part = strtok_r(tok, "&", &save2); part != NULL;
		    part = strtok_r(NULL, "&", &save2)) {
			int level = 1;

			if (*part == '-') {
				level = 0;
				part++;
			}
			if (strcmp(part, "dtr") == 0)
				ls.dtr = level;
			else if (strcmp(part, "rts") == 0)
				ls.rts = level;
			else
				return -1;
		}
		seq[(*n)++] = ls;
	}
	return 0;
}

/* "16x16K,1x64K,7x128K" */
static int
parse_pages(dg_sproto *s, const char *v)
{
	char buf[256], *tok, *save = NULL;

	if (strlen(v) >= sizeof buf)
		return -1;
	strcpy(buf, v);
	s->npages_tab = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *x = strchr(tok, 'x');
		uint32_t cnt, sz;

		if (x == NULL || s->npages_tab >= MAX_PAGES)
			return -1;
		*x = '\0';
		if (parse_u32(tok, &cnt) != 0 || parse_u32(x + 1, &sz) != 0 ||
		    cnt == 0 || sz == 0)
			return -1;
		s->tab_count[s->npages_tab] = cnt;
		s->tab_size[s->npages_tab] = sz;
		s->npages_tab++;
	}
	return s->npages_tab > 0 ? 0 : -1;
}

static int
parse_bool(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
set_option(dg_sproto *s, const char *kv, int *addr_set, char *why, size_t whylen)
{
	char key[32];
	const char *eq = strchr(kv, '='), *v;
	size_t kl;
	uint32_t u;

	if (eq == NULL || (kl = (size_t)(eq - kv)) == 0 || kl >= sizeof key) {
		snprintf(why, whylen, "stm32: option '%s' is not key=value", kv);
		return -1;
	}
	memcpy(key, kv, kl);
	key[kl] = '\0';
	v = eq + 1;
	if (strcmp(key, "base") == 0) {
		if (parse_u32(v, &s->base) != 0)
			goto bad;
	} else if (strcmp(key, "address") == 0) {
		if (parse_u32(v, &s->addr) != 0 || (s->addr & 3u) != 0)
			goto bad;
		*addr_set = 1;
	} else if (strcmp(key, "page-size") == 0) {
		if (parse_u32(v, &s->page_size) != 0 || s->page_size == 0)
			goto bad;
		s->npages_tab = 0;
		s->layout_set = 1;
	} else if (strcmp(key, "pages") == 0) {
		if (parse_pages(s, v) != 0)
			goto bad;
		s->layout_set = 1;
	} else if (strcmp(key, "enter") == 0) {
		if (parse_seq(v, s->enter, &s->nenter) != 0)
			goto bad;
	} else if (strcmp(key, "exit") == 0) {
		if (parse_seq(v, s->exitseq, &s->nexit) != 0)
			goto bad;
	} else if (strcmp(key, "line-delay-ms") == 0) {
		if (parse_u32(v, &u) != 0 || u > 60000)
			goto bad;
		s->line_delay_ms = (int)u;
	} else if (strcmp(key, "erase-timeout-ms") == 0) {
		if (parse_u32(v, &u) != 0 || u == 0 || u > 600000)
			goto bad;
		s->erase_timeout_ms = (int)u;
	} else if (strcmp(key, "verify") == 0) {
		if (parse_bool(v, &s->verify) != 0)
			goto bad;
	} else if (strcmp(key, "no-verify") == 0) {
		int nv;

		if (parse_bool(v, &nv) != 0)
			goto bad;
		s->verify = !nv;
	} else if (strcmp(key, "go") == 0) {
		int b;

		if (parse_bool(v, &b) == 0) {
			s->go = b;
		} else if (parse_u32(v, &s->go_addr) == 0) {
			s->go = 2;      /* explicit address */
		} else
			goto bad;
	} else {
		snprintf(why, whylen, "stm32: unknown option '%s'", key);
		return -1;
	}
	return 0;
bad:
	snprintf(why, whylen, "stm32: bad value for option '%s': '%s'", key, v);
	return -1;
}

/* ------------------------------------------------------------- pages */

/* Page layouts of common parts by Get ID product id (RM0008, RM0091,
 * RM0444, RM0351, RM0090), used when neither page-size= nor pages= is
 * given. */
static const struct part {
	unsigned pid;
	uint32_t page;          /* 0: the F2/F4 sector table */
} parts[] = {
	{ 0x410, 1024 }, { 0x412, 1024 }, { 0x420, 1024 }, { 0x440, 1024 },
	{ 0x444, 1024 }, { 0x445, 1024 }, { 0x414, 2048 }, { 0x418, 2048 },
	{ 0x428, 2048 }, { 0x430, 2048 }, { 0x442, 2048 }, { 0x448, 2048 },
	{ 0x460, 2048 }, { 0x466, 2048 }, { 0x468, 2048 }, { 0x435, 2048 },
	{ 0x415, 2048 }, { 0x411, 0 }, { 0x413, 0 }, { 0x419, 0 }, { 0x423, 0 },
	{ 0x431, 0 }, { 0x433, 0 }, { 0x441, 0 }, { 0x458, 0 }
};

static int
layout_from_pid(dg_sproto *s, unsigned pid)
{
	size_t i;

	for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		if (parts[i].pid != pid)
			continue;
		if (parts[i].page != 0) {
			s->page_size = parts[i].page;
			s->npages_tab = 0;
			return 0;
		}
		return parse_pages(s, "4x16K,1x64K,7x128K,4x16K,1x64K,7x128K");
	}
	return -1;
}

/* Page index holding flash offset o (from base); -1 past the table. */
static long
page_of(const dg_sproto *s, uint64_t o)
{
	unsigned i;
	long idx = 0;

	if (s->npages_tab == 0)
		return (long)(o / s->page_size);
	for (i = 0; i < s->npages_tab; i++) {
		uint64_t span = (uint64_t)s->tab_count[i] * s->tab_size[i];

		if (o < span)
			return idx + (long)(o / s->tab_size[i]);
		o -= span;
		idx += (long)s->tab_count[i];
	}
	return -1;
}

/* ------------------------------------------------------------- sending */

static void
tx(dg_sproto *s, const uint8_t *b, size_t n)
{
	if (s->io->write(s->io->arg, b, n) != 0)
		finish(s, 0, DG_SPROTO_EXT_LINE_GONE, "stm32: write to the line failed");
}

static void
expect(dg_sproto *s, enum phase ph, size_t want, int ms)
{
	s->ph = ph;
	s->rxn = 0;
	s->want = want;
	s->io->timer(s->io->arg, ms);
}

static void
send_cmd(dg_sproto *s, uint8_t cmd, enum phase ph)
{
	uint8_t b[2] = { cmd, (uint8_t)~cmd };

	expect(s, ph, 1, s->timeout_ms);
	tx(s, b, 2);
}

static void
send_addr(dg_sproto *s, uint32_t a, enum phase ph)
{
	uint8_t b[5];

	b[0] = (uint8_t)(a >> 24);
	b[1] = (uint8_t)(a >> 16);
	b[2] = (uint8_t)(a >> 8);
	b[3] = (uint8_t)a;
	b[4] = b[0] ^ b[1] ^ b[2] ^ b[3];
	expect(s, ph, 1, s->timeout_ms);
	tx(s, b, 5);
}

static size_t
chunk_len(const dg_sproto *s)
{
	uint64_t left = s->size - s->off;

	return left < CHUNK ? (size_t)left : CHUNK;
}

static void start_sync(dg_sproto *s);
static void start_chunk(dg_sproto *s);

static void
run_seq(dg_sproto *s)
{
	const struct lineset *seq = s->ph == PH_ENTER ? s->enter : s->exitseq;
	unsigned n = s->ph == PH_ENTER ? s->nenter : s->nexit;

	if (s->seq_i < n) {
		if (s->io->lines(s->io->arg, seq[s->seq_i].dtr, seq[s->seq_i].rts) != 0) {
			finish(s, 0, DG_SPROTO_EXT_LINE_GONE,
			    "stm32: setting the modem lines failed");
			return;
		}
		s->seq_i++;
		s->io->timer(s->io->arg, s->line_delay_ms);
		return;
	}
	if (s->ph == PH_ENTER) {
		s->io->flush(s->io->arg);
		start_sync(s);
	} else
		finish(s, 1, 0, "stm32: %" PRIu64 " bytes written at 0x%08" PRIx32 "%s%s",
		    s->size, s->addr, s->verify ? ", verified" : "",
		    s->go ? ", started" : "");
}

static void
start_sync(dg_sproto *s)
{
	uint8_t b = 0x7F;

	expect(s, PH_SYNC, 1, s->timeout_ms);
	tx(s, &b, 1);
}

static void
start_erase(dg_sproto *s)
{
	long fp, lp;

	if (s->size == 0) {
		start_chunk(s);
		return;
	}
	if (s->addr < s->base) {
		finish(s, 0, DG_SPROTO_EXT_TOO_BIG,
		    "stm32: address 0x%08" PRIx32 " is below the flash base 0x%08" PRIx32,
		    s->addr, s->base);
		return;
	}
	fp = page_of(s, (uint64_t)(s->addr - s->base));
	lp = page_of(s, (uint64_t)(s->addr - s->base) + s->size - 1);
	if (fp < 0 || lp < 0 || (uint64_t)s->addr + s->size > 0x100000000ull) {
		finish(s, 0, DG_SPROTO_EXT_TOO_BIG,
		    "stm32: %" PRIu64 " bytes at 0x%08" PRIx32 " do not fit the flash pages",
		    s->size, s->addr);
		return;
	}
	s->first_page = (unsigned)fp;
	s->last_page = (unsigned)lp;
	if (s->has_ext_erase) {
		if (s->last_page - s->first_page + 1 > 0xFFF0u) {
			finish(s, 0, DG_SPROTO_EXT_TOO_BIG, "stm32: too many pages to erase");
			return;
		}
		send_cmd(s, CMD_EXTERASE, PH_ERASE_CMD);
	} else if (s->has_erase) {
		if (s->last_page > 255u) {
			finish(s, 0, DG_SPROTO_EXT_TOO_BIG,
			    "stm32: page %u beyond what Erase (0x43) can name", s->last_page);
			return;
		}
		send_cmd(s, CMD_ERASE, PH_ERASE_CMD);
	} else
		finish(s, 0, DG_SPROTO_EXT_PROTOCOL,
		    "stm32: the bootloader offers neither Erase nor Extended Erase");
}

static void
send_erase_args(dg_sproto *s)
{
	unsigned n = s->last_page - s->first_page + 1, p;
	size_t len = 0;
	uint8_t *b, x = 0;
	size_t i;

	b = malloc(2 + 2 * (size_t)n + 1);
	if (b == NULL) {
		finish(s, 0, DG_SPROTO_EXT_ABORTED, "stm32: out of memory");
		return;
	}
	if (s->has_ext_erase) {
		b[len++] = (uint8_t)((n - 1) >> 8);
		b[len++] = (uint8_t)(n - 1);
		for (p = s->first_page; p <= s->last_page; p++) {
			b[len++] = (uint8_t)(p >> 8);
			b[len++] = (uint8_t)p;
		}
	} else {
		b[len++] = (uint8_t)(n - 1);
		for (p = s->first_page; p <= s->last_page; p++)
			b[len++] = (uint8_t)p;
	}
	for (i = 0; i < len; i++)
		x ^= b[i];
	b[len++] = x;
	expect(s, PH_ERASE_ARGS, 1, s->erase_timeout_ms);
	tx(s, b, len);
	free(b);
}

static void
start_chunk(dg_sproto *s)
{
	if (s->off >= s->size) {
		if (s->go) {
			send_cmd(s, CMD_GO, PH_GO_CMD);
		} else {
			s->ph = PH_EXIT;
			s->seq_i = 0;
			run_seq(s);
		}
		return;
	}
	send_cmd(s, CMD_WRITE, PH_WRITE_CMD);
}

static void
send_write_data(dg_sproto *s)
{
	size_t n = chunk_len(s), padded = (n + 3u) & ~(size_t)3u, i;
	uint8_t b[CHUNK + 2];
	uint8_t x;

	b[0] = (uint8_t)(padded - 1);
	memcpy(b + 1, s->image + s->off, n);
	memset(b + 1 + n, 0xFF, padded - n);
	x = b[0];
	for (i = 1; i <= padded; i++)
		x ^= b[i];
	b[padded + 1] = x;
	expect(s, PH_WRITE_DATA, 1, s->timeout_ms);
	tx(s, b, padded + 2);
}

static void
chunk_done(dg_sproto *s)
{
	s->off += chunk_len(s);
	s->tries = 0;
	if (s->io->progress != NULL)
		s->io->progress(s->io->arg, s->off, s->size);
	start_chunk(s);
}

/* A NACK or a timeout: try the unit again, or give up. */
static void
unit_failed(dg_sproto *s, int nack)
{
	enum phase ph = s->ph;

	s->last_was_nack = nack;
	if (++s->tries > s->max_retries) {
		if (ph == PH_SYNC && !nack)
			finish(s, 0, DG_SPROTO_EXT_TIMEOUT,
			    "stm32: no answer to 0x7F (is the device in its bootloader?)");
		else if (!nack)
			finish(s, 0, DG_SPROTO_EXT_TIMEOUT,
			    "stm32: no answer at 0x%08" PRIx64 " after %u tries",
			    (uint64_t)s->addr + s->off, s->tries);
		else
			finish(s, 0, DG_SPROTO_EXT_RETRIES,
			    "stm32: chunk at 0x%08" PRIx64 " refused %u times",
			    (uint64_t)s->addr + s->off, s->tries);
		return;
	}
	s->retransmits++;
	logf_(s, "stm32: %s in phase %d, retry %u", nack ? "NACK" : "timeout",
	    (int)ph, s->tries);
	s->io->flush(s->io->arg);
	switch (ph) {
	case PH_SYNC:
		start_sync(s);
		break;
	case PH_GET:
		send_cmd(s, CMD_GET, PH_GET);
		break;
	case PH_GETID:
		send_cmd(s, CMD_GETID, PH_GETID);
		break;
	case PH_ERASE_CMD:
	case PH_ERASE_ARGS:
		start_erase(s);
		break;
	case PH_GO_CMD:
	case PH_GO_ADDR:
		send_cmd(s, CMD_GO, PH_GO_CMD);
		break;
	case PH_READ_CMD:
	case PH_READ_ADDR:
	case PH_READ_LEN:
		/* the chunk is written: programming it again would be refused */
		send_cmd(s, CMD_READ, PH_READ_CMD);
		break;
	default:
		start_chunk(s);
		break;
	}
}

/* ------------------------------------------------------------- answers */

/* The phase's answer is complete in rx[0..rxn). */
static void
answer(dg_sproto *s)
{
	const uint8_t *r = s->rx;
	size_t i;

	switch (s->ph) {
	case PH_SYNC:
		/* NACK: the bootloader had already fixed its baud rate */
		if (r[0] != ACK && r[0] != NACK)
			goto proto;
		s->tries = 0;
		send_cmd(s, CMD_GET, PH_GET);
		return;
	case PH_GET:
		s->has_ext_erase = s->has_erase = 0;
		for (i = 3; i < s->rxn - 1; i++) {
			if (r[i] == CMD_EXTERASE)
				s->has_ext_erase = 1;
			else if (r[i] == CMD_ERASE)
				s->has_erase = 1;
		}
		logf_(s, "stm32: bootloader v%u.%u, %s", r[2] >> 4, r[2] & 15u,
		    s->has_ext_erase ? "extended erase" : "erase");
		s->tries = 0;
		send_cmd(s, CMD_GETID, PH_GETID);
		return;
	case PH_GETID:
		logf_(s, "stm32: product id 0x%02x%02x", r[2], s->rxn > 4 ? r[3] : 0);
		s->tries = 0;
		if (!s->layout_set && layout_from_pid(s,
		    (unsigned)r[2] << 8 | (s->rxn > 4 ? r[3] : 0)) != 0) {
			finish(s, 0, EXT_UNKNOWN_PART,
			    "stm32: page layout of product id 0x%02x%02x unknown:"
			    " set page-size= or pages=", r[2], s->rxn > 4 ? r[3] : 0);
			return;
		}
		start_erase(s);
		return;
	case PH_ERASE_CMD:
		send_erase_args(s);
		return;
	case PH_ERASE_ARGS:
		s->tries = 0;
		logf_(s, "stm32: erased pages %u-%u", s->first_page, s->last_page);
		start_chunk(s);
		return;
	case PH_WRITE_CMD:
		send_addr(s, s->addr + (uint32_t)s->off, PH_WRITE_ADDR);
		return;
	case PH_WRITE_ADDR:
		send_write_data(s);
		return;
	case PH_WRITE_DATA:
		if (s->verify)
			send_cmd(s, CMD_READ, PH_READ_CMD);
		else
			chunk_done(s);
		return;
	case PH_READ_CMD:
		send_addr(s, s->addr + (uint32_t)s->off, PH_READ_ADDR);
		return;
	case PH_READ_ADDR: {
		uint8_t b[2];

		b[0] = (uint8_t)(chunk_len(s) - 1);
		b[1] = (uint8_t)~b[0];
		expect(s, PH_READ_LEN, 1 + chunk_len(s), s->timeout_ms);
		tx(s, b, 2);
		return;
	}
	case PH_READ_LEN:
		if (memcmp(r + 1, s->image + s->off, chunk_len(s)) != 0) {
			size_t k;

			for (k = 0; k < chunk_len(s) && r[1 + k] == s->image[s->off + k]; k++)
				;
			finish(s, 0, DG_SPROTO_EXT_VERIFY,
			    "stm32: read back differs at 0x%08" PRIx64
			    " (0x%02x, image 0x%02x)", (uint64_t)s->addr + s->off + k,
			    r[1 + k], s->image[s->off + k]);
			return;
		}
		chunk_done(s);
		return;
	case PH_GO_CMD:
		send_addr(s, s->go == 2 ? s->go_addr : s->addr, PH_GO_ADDR);
		return;
	case PH_GO_ADDR:
		s->ph = PH_EXIT;
		s->seq_i = 0;
		run_seq(s);
		return;
	default:
		return;
	}
proto:
	finish(s, 0, DG_SPROTO_EXT_PROTOCOL, "stm32: unexpected byte 0x%02x in phase %d",
	    r[0], (int)s->ph);
}

/* Variable-length answers (Get, Get ID): ACK N <N+1 bytes> ACK. */
static int
complete(dg_sproto *s)
{
	if (s->ph == PH_GET || s->ph == PH_GETID) {
		if (s->rxn < 2)
			return 0;
		s->want = 2 + (size_t)s->rx[1] + 1 + 1;
	}
	return s->rxn >= s->want;
}

static void
stm32_input(dg_sproto *s, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n && !s->finished; i++) {
		uint8_t c = buf[i];

		switch (s->ph) {
		case PH_IDLE:
		case PH_ENTER:
		case PH_EXIT:
		case PH_DONE:
			continue;       /* noise outside a command */
		default:
			break;
		}
		if (s->rxn == 0 && s->ph != PH_SYNC) {
			/* every answer starts with ACK or NACK */
			if (c == NACK) {
				if (s->ph == PH_ERASE_CMD || s->ph == PH_ERASE_ARGS) {
					finish(s, 0, DG_SPROTO_EXT_REJECTED,
					    "stm32: erase of pages %u-%u refused (NACK):"
					    " write-protected?", s->first_page, s->last_page);
					return;
				}
				if (s->ph == PH_READ_CMD || s->ph == PH_READ_ADDR ||
				    s->ph == PH_READ_LEN) {
					if (s->tries >= s->max_retries) {
						finish(s, 0, DG_SPROTO_EXT_REJECTED,
						    "stm32: Read Memory refused (NACK):"
						    " read-protected? use verify=no");
						return;
					}
				}
				if ((s->ph == PH_GO_CMD || s->ph == PH_GO_ADDR) &&
				    s->tries >= s->max_retries) {
					finish(s, 0, DG_SPROTO_EXT_REJECTED,
					    "stm32: Go refused (NACK)");
					return;
				}
				unit_failed(s, 1);
				return;         /* the rest of buf is flushed noise */
			}
			if (c != ACK) {
				finish(s, 0, DG_SPROTO_EXT_PROTOCOL,
				    "stm32: unexpected byte 0x%02x in phase %d", c, (int)s->ph);
				return;
			}
		}
		if (s->rxn < sizeof s->rx)
			s->rx[s->rxn++] = c;
		if (complete(s)) {
			if ((s->ph == PH_GET || s->ph == PH_GETID) &&
			    s->rx[s->rxn - 1] != ACK) {
				finish(s, 0, DG_SPROTO_EXT_PROTOCOL,
				    "stm32: Get/Get ID answer not closed by ACK");
				return;
			}
			answer(s);
		}
	}
}

static void
stm32_timeout(dg_sproto *s)
{
	if (s->finished)
		return;
	if (s->ph == PH_ENTER || s->ph == PH_EXIT) {
		run_seq(s);
		return;
	}
	if (s->ph == PH_IDLE || s->ph == PH_DONE)
		return;
	unit_failed(s, 0);
}

static void
stm32_start(dg_sproto *s)
{
	if (s->io->parity(s->io->arg, DG_SPROTO_PARITY_EVEN) != 0) {
		finish(s, 0, DG_SPROTO_EXT_LINE_GONE, "stm32: cannot set 8E1 on the line");
		return;
	}
	s->ph = PH_ENTER;
	s->seq_i = 0;
	run_seq(s);
}

static dg_sproto *
stm32_new(const dg_sproto_params *p, const dg_sproto_io *io, char *why,
    size_t whylen)
{
	dg_sproto *s = calloc(1, sizeof *s);
	int addr_set = 0;
	size_t i;

	if (s == NULL) {
		snprintf(why, whylen, "stm32: out of memory");
		return NULL;
	}
	s->io = io;
	s->image = p->image;
	s->size = p->size;
	s->base = 0x08000000u;
	s->page_size = 1024;
	s->verify = 1;
	s->go = 1;
	s->line_delay_ms = 100;
	s->timeout_ms = p->unit_timeout_ms > 0 ? p->unit_timeout_ms : 1000;
	s->erase_timeout_ms = 0;
	s->max_retries = p->max_retries > 0 ? p->max_retries : 5;
	for (i = 0; p->options != NULL && p->options[i] != NULL; i++)
		if (set_option(s, p->options[i], &addr_set, why, whylen) != 0)
			goto fail;
	if (!addr_set)
		s->addr = s->base;
	if (s->erase_timeout_ms == 0)
		s->erase_timeout_ms = s->timeout_ms * 10 > 30000 ? s->timeout_ms * 10 : 30000;
	if (s->size > 0xFFFFFFFFull) {
		snprintf(why, whylen, "stm32: image of %" PRIu64 " bytes is too big", s->size);
		goto fail;
	}
	return s;
fail:
	free(s);
	return NULL;
}

static void
stm32_abort(dg_sproto *s)
{
	s->finished = 1;
	s->ph = PH_DONE;
	s->io->timer(s->io->arg, -1);
}

static void
stm32_free(dg_sproto *s)
{
	free(s);
}

const struct dg_sproto_ops dg_sproto_stm32 = {
	.name = "stm32",
	.new = stm32_new,
	.start = stm32_start,
	.input = stm32_input,
	.timeout = stm32_timeout,
	.abort = stm32_abort,
	.free = stm32_free,
};
