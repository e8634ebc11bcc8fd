/* dg_ymodem - the YMODEM batch sender as a dg_sproto engine (issue 12).
 *
 * One file per session: block 0 (name NUL size), the data in 1 KiB STX
 * blocks with CRC-16/XMODEM (128-byte SOH blocks for a tail that fits, as
 * sb does), EOT NAK EOT ACK, then the empty block 0 that ends the batch.
 * A receiver that starts with NAK instead of 'C' gets 128-byte blocks with
 * the 8-bit checksum throughout. Two CANs in a row from the receiver, in
 * any state, end the session as canceled.
 *
 * The CRC is the short bitwise loop of the XMODEM/YMODEM specification:
 * none of the project's fixed libraries offers CRC-16/XMODEM.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_sproto.h"

#define SOH 0x01
#define STX 0x02
#define EOT 0x04
#define ACK 0x06
#define NAK 0x15
#define CAN 0x18
#define WANT_CRC 'C'
#define CPMEOF 0x1A

#define DEFAULT_TIMEOUT_MS 3000
#define DEFAULT_RETRIES 10
#define MAX_NAME 100

enum state {
	S_WAIT_START,   /* waiting for 'C' or NAK before block 0 */
	S_WAIT_ACK0,    /* block 0 sent */
	S_WAIT_DATA,    /* block 0 acknowledged: waiting for 'C' / NAK */
	S_WAIT_ACK,     /* a data block sent */
	S_WAIT_EOT1,    /* the first EOT sent */
	S_WAIT_EOT2,    /* the second EOT sent */
	S_WAIT_CLOSE,   /* waiting for 'C' / NAK before the closing block */
	S_WAIT_ACKEND,  /* the closing block sent */
	S_FINISHED
};

struct dg_sproto {
	dg_sproto_io io;
	const uint8_t *image;
	uint64_t size;
	uint64_t off;          /* start of the block in flight */
	size_t blklen;         /* payload bytes of it taken from the image */
	char name[MAX_NAME + 1];
	int timeout_ms;
	unsigned max_retries;
	unsigned retries;      /* of the unit in flight */
	unsigned retransmits;  /* of the whole session */
	int crc;               /* 1: 'C' mode, 0: checksum mode */
	int force128;
	int cans;              /* consecutive CANs seen */
	uint8_t seq;
	enum state st;
	uint8_t pkt[3 + 1024 + 2];
	size_t pktlen;
};

static uint16_t
crc16_xmodem(const uint8_t *p, size_t n)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static void
logf_(dg_sproto *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
logf_(dg_sproto *s, const char *fmt, ...)
{
	char buf[160];
	va_list ap;

	if (!s->io.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->io.log(s->io.arg, buf);
}

/* The end of the session; the caller returns at once after it. */
static void
finish(dg_sproto *s, int ok, uint32_t ext, const char *detail)
{
	s->st = S_FINISHED;
	s->io.timer(s->io.arg, -1);
	s->io.done(s->io.arg, ok, ext, detail, s->retransmits);
}

/* Frames payload (len bytes, padded with pad to 128 or 1024) as block seq. */
static void
frame(dg_sproto *s, uint8_t seq, const uint8_t *payload, size_t len, uint8_t pad)
{
	size_t bsz = (s->crc && !s->force128 && len > 128) ? 1024 : 128;
	uint8_t *d = s->pkt + 3;

	s->pkt[0] = bsz == 1024 ? STX : SOH;
	s->pkt[1] = seq;
	s->pkt[2] = (uint8_t)~seq;
	if (len)
		memcpy(d, payload, len);
	memset(d + len, pad, bsz - len);
	if (s->crc) {
		uint16_t c = crc16_xmodem(d, bsz);

		d[bsz] = (uint8_t)(c >> 8);
		d[bsz + 1] = (uint8_t)c;
		s->pktlen = 3 + bsz + 2;
	} else {
		uint8_t sum = 0;
		size_t i;

		for (i = 0; i < bsz; i++)
			sum = (uint8_t)(sum + d[i]);
		d[bsz] = sum;
		s->pktlen = 3 + bsz + 1;
	}
}

/* Writes what is in pkt (pktlen bytes) and arms the timer; 0 or -1 after
 * finish() (the line is gone). */
static int
send_pkt(dg_sproto *s)
{
	if (s->io.write(s->io.arg, s->pkt, s->pktlen) < 0) {
		finish(s, 0, DG_SPROTO_EXT_LINE_GONE, "ymodem: write to the line failed");
		return -1;
	}
	s->io.timer(s->io.arg, s->timeout_ms);
	return 0;
}

/* Block 0: "name NUL size" (the name is bounded to fit 128 bytes), or
 * all zeros for the closing block of the batch. */
static int
send_block0(dg_sproto *s, int closing)
{
	uint8_t b0[128];

	memset(b0, 0, sizeof(b0));
	if (!closing) {
		size_t n = strlen(s->name);

		memcpy(b0, s->name, n);
		snprintf((char *)b0 + n + 1, sizeof(b0) - n - 1, "%" PRIu64, s->size);
	}
	frame(s, 0, b0, sizeof(b0), 0);
	return send_pkt(s);
}

static int
send_data(dg_sproto *s)
{
	uint64_t left = s->size - s->off;
	size_t max = (s->crc && !s->force128) ? 1024 : 128;

	s->blklen = left > max ? max : (size_t)left;
	/* a tail that fits 128 bytes goes in a SOH block, as sb sends it */
	frame(s, s->seq, s->image + s->off, s->blklen, CPMEOF);
	return send_pkt(s);
}

static int
send_eot(dg_sproto *s)
{
	s->pkt[0] = EOT;
	s->pktlen = 1;
	return send_pkt(s);
}

/* The receiver asked for the first data block (or, for an empty image,
 * the end). */
static void
start_data(dg_sproto *s)
{
	s->retries = 0;
	if (s->off >= s->size) {
		s->st = S_WAIT_EOT1;
		send_eot(s);
		return;
	}
	s->st = S_WAIT_ACK;
	send_data(s);
}

/* A unit was not acknowledged (NAK or timeout): send it again, or give up.
 * Returns -1 after finish(). */
static int
resend(dg_sproto *s, uint32_t ext_if_exhausted, const char *why)
{
	char detail[128];

	if (++s->retries > s->max_retries) {
		snprintf(detail, sizeof(detail), "ymodem: %s after %u tries (block %u, offset %" PRIu64 ")",
		    why, s->retries, (unsigned)s->seq, s->off);
		finish(s, 0, ext_if_exhausted, detail);
		return -1;
	}
	if (s->st != S_WAIT_START && s->st != S_WAIT_DATA && s->st != S_WAIT_CLOSE) {
		s->retransmits++;
		logf_(s, "ymodem: %s: resending block %u (try %u)", why, (unsigned)s->seq,
		    s->retries + 1);
		return send_pkt(s);
	}
	/* waiting for the receiver's start: nothing to resend */
	s->io.timer(s->io.arg, s->timeout_ms);
	return 0;
}

/* One byte from the receiver; -1 once the session has ended. */
static int
on_byte(dg_sproto *s, uint8_t c)
{
	if (c == CAN) {
		if (++s->cans >= 2) {
			finish(s, 0, DG_SPROTO_EXT_CANCELED, "ymodem: the receiver canceled (CAN CAN)");
			return -1;
		}
		return 0;
	}
	s->cans = 0;
	switch (s->st) {
	case S_WAIT_START:
		if (c != WANT_CRC && c != NAK)
			return 0;
		s->crc = c == WANT_CRC;
		logf_(s, "ymodem: receiver asks for %s", s->crc ? "CRC-16" : "the checksum");
		s->retries = 0;
		s->seq = 0;
		s->st = S_WAIT_ACK0;
		return send_block0(s, 0);
	case S_WAIT_ACK0:
		if (c == ACK) {
			s->retries = 0;
			s->st = S_WAIT_DATA;
			s->io.timer(s->io.arg, s->timeout_ms);
		} else if (c == NAK) {
			return resend(s, DG_SPROTO_EXT_RETRIES, "block 0 refused");
		}
		return 0;
	case S_WAIT_DATA:
		if (c != WANT_CRC && c != NAK)
			return 0;
		s->seq = 1;
		s->off = 0;
		start_data(s);
		return s->st == S_FINISHED ? -1 : 0;
	case S_WAIT_ACK:
		if (c == NAK)
			return resend(s, DG_SPROTO_EXT_RETRIES, "block refused");
		if (c != ACK)
			return 0;
		s->off += s->blklen;
		s->seq++;
		if (s->io.progress)
			s->io.progress(s->io.arg, s->off, s->size);
		start_data(s);
		return s->st == S_FINISHED ? -1 : 0;
	case S_WAIT_EOT1:
		/* the NAK of the first EOT; some receivers ACK it at once */
		if (c == NAK) {
			s->retries = 0;
			s->st = S_WAIT_EOT2;
			return send_eot(s);
		}
		if (c == ACK) {
			s->retries = 0;
			s->st = S_WAIT_CLOSE;
			s->io.timer(s->io.arg, s->timeout_ms);
		}
		return 0;
	case S_WAIT_EOT2:
		if (c == ACK) {
			s->retries = 0;
			s->st = S_WAIT_CLOSE;
			s->io.timer(s->io.arg, s->timeout_ms);
		} else if (c == NAK) {
			return resend(s, DG_SPROTO_EXT_RETRIES, "EOT refused");
		}
		return 0;
	case S_WAIT_CLOSE:
		if (c != WANT_CRC && c != NAK)
			return 0;
		s->retries = 0;
		s->seq = 0;
		s->st = S_WAIT_ACKEND;
		return send_block0(s, 1);
	case S_WAIT_ACKEND:
		if (c == ACK) {
			finish(s, 1, 0, "ymodem: batch complete");
			return -1;
		}
		if (c == NAK)
			return resend(s, DG_SPROTO_EXT_RETRIES, "closing block refused");
		return 0;
	case S_FINISHED:
		return -1;
	}
	return 0;
}

static dg_sproto *
ym_new(const dg_sproto_params *p, const dg_sproto_io *io, char *why, size_t whylen)
{
	dg_sproto *s = NULL;
	const char *name = p->name && *p->name ? p->name : "image";
	const char *slash = strrchr(name, '/');
	int force128 = 0;
	size_t i;

	if (slash)
		name = slash + 1;
	if (!*name || strlen(name) > MAX_NAME) {
		snprintf(why, whylen, "ymodem: file name must be 1..%d characters", MAX_NAME);
		goto fail;
	}
	if (!io || !io->write || !io->timer || !io->done) {
		snprintf(why, whylen, "ymodem: write, timer and done are required");
		goto fail;
	}
	for (i = 0; p->options && p->options[i]; i++) {
		const char *o = p->options[i];

		if (strcmp(o, "block=1024") == 0)
			force128 = 0;
		else if (strcmp(o, "block=128") == 0)
			force128 = 1;
		else {
			snprintf(why, whylen, "ymodem: unknown option '%s' (known: block=128|1024)", o);
			goto fail;
		}
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		snprintf(why, whylen, "ymodem: out of memory");
		goto fail;
	}
	s->io = *io;
	s->image = p->image;
	s->size = p->size;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->timeout_ms = p->unit_timeout_ms > 0 ? p->unit_timeout_ms : DEFAULT_TIMEOUT_MS;
	s->max_retries = p->max_retries > 0 ? p->max_retries : DEFAULT_RETRIES;
	s->force128 = force128;
	s->crc = 1;
	s->st = S_WAIT_START;
	return s;
fail:
	free(s);
	return NULL;
}

static void
ym_start(dg_sproto *s)
{
	/* the receiver speaks first ('C' or NAK, repeated until answered) */
	s->st = S_WAIT_START;
	s->io.timer(s->io.arg, s->timeout_ms);
}

static void
ym_input(dg_sproto *s, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s->st == S_FINISHED || on_byte(s, buf[i]) < 0)
			return;
	}
}

static void
ym_timeout(dg_sproto *s)
{
	switch (s->st) {
	case S_WAIT_START:
		resend(s, DG_SPROTO_EXT_TIMEOUT, "no start ('C' or NAK) from the receiver");
		break;
	case S_WAIT_DATA:
		resend(s, DG_SPROTO_EXT_TIMEOUT, "no request for the next block");
		break;
	case S_WAIT_CLOSE:
	case S_WAIT_ACKEND:
		/* the EOT was acknowledged: the receiver has the whole file.
		 * Receivers that install at once never ask for the closing
		 * block, and rb may exit before its last ACK leaves the tty;
		 * sb does not insist either. */
		finish(s, 1, 0, "ymodem: file complete (end of batch not acknowledged)");
		break;
	case S_FINISHED:
		break;
	default:
		resend(s, DG_SPROTO_EXT_RETRIES, "no acknowledgement");
		break;
	}
}

static void
ym_abort(dg_sproto *s)
{
	/* the canonical abort: CANs (receivers need two; sb sends more),
	 * then backspaces to erase them from a terminal that echoes */
	static const uint8_t seq[] = { CAN, CAN, CAN, CAN, CAN, CAN, CAN, CAN,
		8, 8, 8, 8, 8, 8, 8, 8 };

	if (s->st == S_FINISHED)
		return;
	s->st = S_FINISHED;
	s->io.timer(s->io.arg, -1);
	s->io.write(s->io.arg, seq, sizeof(seq));
}

static void
ym_free(dg_sproto *s)
{
	free(s);
}

const struct dg_sproto_ops dg_sproto_ymodem = {
	.name = "ymodem",
	.new = ym_new,
	.start = ym_start,
	.input = ym_input,
	.timeout = ym_timeout,
	.abort = ym_abort,
	.free = ym_free,
};
