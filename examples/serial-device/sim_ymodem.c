/* sim_ymodem - an IAP-style YMODEM bootloader (as ST's AN4657 IAP and many
 * vendor loaders behave): a text menu, then a YMODEM receiver.
 *
 * Menu (lines end in \r or \n):
 *   version  -> "version <v>\r\n"
 *   update   -> "bootloader ready\r\n", then 'C' every second until block 0
 * After the batch: "install ok <v>\r\n" or "install failed\r\n", back to
 * the menu. The new image's version is the text after "DGVERSION=" in the
 * image (digits and dots), "unknown" without one.
 * Options: -o crc=0 (ask with NAK: 128-byte checksum blocks),
 *          -o cancel-after=N (send CAN CAN after N data blocks). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SOH 0x01
#define STX 0x02
#define EOT 0x04
#define ACK 0x06
#define NAK 0x15
#define CAN 0x18

enum ystate { Y_MENU, Y_WAIT0, Y_WAITDATA, Y_DATA, Y_WAITEND };

struct ystate_s {
	enum ystate st;
	char line[64];
	size_t linelen;
	uint8_t pkt[3 + 1024 + 2];
	size_t pktlen, need;
	uint8_t expect;         /* next data block number */
	uint8_t *img;
	size_t len, cap, size;  /* received, allocated, announced */
	int eots, cans;
	uint64_t last_ms, now_ms;
	unsigned blocks;
	int purging;            /* a bad packet: wait for a quiet line, then NAK */
};

static int opt_crc = 1;
static unsigned opt_cancel_after;
static struct ystate_s ys;

static uint16_t
crc16(const uint8_t *p, size_t n)
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

static int
y_option(struct sim_dev *d, const char *key, const char *value)
{
	char *end;
	long v = strtol(value, &end, 10);

	if (*end || end == value || v < 0) {
		sim_log(d, "ymodem: bad value for %s: '%s'", key, value);
		return -1;
	}
	if (strcmp(key, "crc") == 0)
		opt_crc = v != 0;
	else if (strcmp(key, "cancel-after") == 0)
		opt_cancel_after = (unsigned)v;
	else {
		sim_log(d, "ymodem: unknown option '%s' (crc, cancel-after)", key);
		return -1;
	}
	return 0;
}

static void
y_reset(struct sim_dev *d)
{
	free(ys.img);
	memset(&ys, 0, sizeof(ys));
	ys.st = Y_MENU;
	sim_ymodem.state = &ys;
	sim_log(d, "ymodem bootloader up, version %s", sim_version(d));
}

static void
put1(struct sim_dev *d, uint8_t c)
{
	sim_write(d, &c, 1);
}

static void
ask(struct sim_dev *d)
{
	put1(d, opt_crc ? 'C' : NAK);
	ys.last_ms = ys.now_ms;
}

static void
to_menu(struct sim_dev *d, const char *msg)
{
	ys.purging = 0;
	if (msg)
		sim_write(d, msg, strlen(msg));
	free(ys.img);
	ys.img = NULL;
	ys.len = ys.cap = ys.size = 0;
	ys.st = Y_MENU;
	ys.linelen = 0;
}

static void
install(struct sim_dev *d)
{
	char ver[32] = "unknown", msg[96];
	const uint8_t *p = ys.img ? memmem(ys.img, ys.size, "DGVERSION=", 10) : NULL;

	if (p) {
		size_t i = 0;

		p += 10;
		while (i + 1 < sizeof(ver) && p + i < ys.img + ys.size &&
		    ((p[i] >= '0' && p[i] <= '9') || p[i] == '.')) {
			ver[i] = (char)p[i];
			i++;
		}
		ver[i] = '\0';
	}
	if (sim_install(d, ys.img ? ys.img : (const uint8_t *)"", ys.size, ver) == 0)
		snprintf(msg, sizeof(msg), "\r\ninstall ok %s\r\n", ver);
	else
		snprintf(msg, sizeof(msg), "\r\ninstall failed\r\n");
	to_menu(d, msg);
}

/* A whole packet in ys.pkt: check it and answer. */
static void
packet(struct sim_dev *d)
{
	size_t bsz = ys.pkt[0] == STX ? 1024 : 128;
	const uint8_t *data = ys.pkt + 3;
	uint8_t seq = ys.pkt[1];

	if ((uint8_t)(seq ^ ys.pkt[2]) != 0xFF)
		goto nak;
	if (opt_crc) {
		uint16_t c = crc16(data, bsz);

		if (data[bsz] != (c >> 8) || data[bsz + 1] != (c & 0xFF))
			goto nak;
	} else {
		uint8_t sum = 0;
		size_t i;

		for (i = 0; i < bsz; i++)
			sum = (uint8_t)(sum + data[i]);
		if (data[bsz] != sum)
			goto nak;
	}
	if (ys.st == Y_WAIT0 || ys.st == Y_WAITEND) {
		char *end;

		if (seq != 0)
			goto nak;
		put1(d, ACK);
		if (ys.st == Y_WAITEND || data[0] == '\0') {
			install(d);
			return;
		}
		ys.size = strtoul((const char *)data + strlen((const char *)data) + 1, &end, 10);
		if (ys.size > 64u << 20) {
			sim_write(d, "\030\030", 2);
			to_menu(d, "\r\nimage too big\r\n");
			return;
		}
		sim_log(d, "receiving %s, %zu bytes", (const char *)data, ys.size);
		ys.expect = 1;
		ys.st = Y_WAITDATA;
		ask(d);
		return;
	}
	if (seq == (uint8_t)(ys.expect - 1)) {
		put1(d, ACK); /* a repeat of the last block: its ACK was lost */
		return;
	}
	if (seq != ys.expect)
		goto nak;
	if (ys.len + bsz > ys.cap) {
		uint8_t *p = realloc(ys.img, ys.len + bsz + 65536);

		if (!p)
			goto nak;
		ys.img = p;
		ys.cap = ys.len + bsz + 65536;
	}
	memcpy(ys.img + ys.len, data, bsz);
	ys.len += bsz;
	ys.expect++;
	ys.blocks++;
	if (opt_cancel_after && ys.blocks >= opt_cancel_after) {
		sim_write(d, "\030\030\030", 3);
		to_menu(d, "\r\ncanceled by the device\r\n");
		return;
	}
	put1(d, ACK);
	return;
nak:
	/* as rb does: let the rest of a damaged transmission pass before the
	 * NAK, or one error turns into a burst of NAKs */
	ys.purging = 1;
}

static void
menu_byte(struct sim_dev *d, uint8_t c)
{
	char out[96];

	if (c != '\r' && c != '\n') {
		if (ys.linelen + 1 < sizeof(ys.line))
			ys.line[ys.linelen++] = (char)c;
		return;
	}
	ys.line[ys.linelen] = '\0';
	if (strcmp(ys.line, "version") == 0) {
		snprintf(out, sizeof(out), "version %s\r\n", sim_version(d));
		sim_write(d, out, strlen(out));
	} else if (strcmp(ys.line, "update") == 0) {
		sim_write(d, "bootloader ready\r\n", 18);
		ys.st = Y_WAIT0;
		ys.cans = 0;
		ask(d);
	} else if (ys.linelen) {
		sim_write(d, "? (version, update)\r\n", 21);
	}
	ys.linelen = 0;
}

static void
y_input(struct sim_dev *d, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = buf[i];

		if (ys.st == Y_MENU) {
			menu_byte(d, c);
			continue;
		}
		ys.last_ms = ys.now_ms;
		if (ys.purging)
			continue;
		if (ys.pktlen == 0) {
			if (c == CAN) {
				if (++ys.cans >= 2) {
					to_menu(d, "\r\ncanceled by the host\r\n");
					ys.cans = 0;
				}
				continue;
			}
			ys.cans = 0;
			if (c == EOT && (ys.st == Y_DATA || ys.st == Y_WAITDATA)) {
				/* NAK the first EOT, ACK the second, as the spec has it */
				if (++ys.eots == 1) {
					put1(d, NAK);
				} else {
					put1(d, ACK);
					if (ys.len > ys.size)
						ys.len = ys.size;
					if (ys.len < ys.size) {
						to_menu(d, "\r\nimage short\r\n");
						continue;
					}
					ys.st = Y_WAITEND;
					ask(d);
				}
				continue;
			}
			if (c != SOH && c != STX)
				continue; /* noise between packets */
			if (c == STX && !opt_crc) {
				ys.purging = 1;
				continue;
			}
			ys.need = 3 + (c == STX ? 1024 : 128) + (opt_crc ? 2 : 1);
		}
		ys.pkt[ys.pktlen++] = c;
		if (ys.pktlen == ys.need) {
			ys.pktlen = 0;
			if (ys.st == Y_WAITDATA)
				ys.st = Y_DATA;
			packet(d);
		}
	}
}

static void
y_tick(struct sim_dev *d, uint64_t now)
{
	ys.now_ms = now;
	if (ys.st == Y_MENU)
		return;
	if (ys.last_ms == 0)
		ys.last_ms = now;
	if (ys.purging) {
		if (now - ys.last_ms >= 50) {
			ys.purging = 0;
			ys.pktlen = 0;
			put1(d, NAK);
			ys.last_ms = now;
		}
		return;
	}
	if (now - ys.last_ms < 1000)
		return;
	/* a second without a byte: a broken packet is dropped and refused;
	 * while waiting for a block 0 or the first block, ask again */
	if (ys.pktlen) {
		ys.pktlen = 0;
		put1(d, NAK);
		ys.last_ms = now;
	} else if (ys.st == Y_WAIT0 || ys.st == Y_WAITDATA || ys.st == Y_WAITEND) {
		ask(d);
	} else {
		ys.last_ms = now;
	}
}

struct sim_personality sim_ymodem = {
	.name = "ymodem",
	.option = y_option,
	.reset = y_reset,
	.input = y_input,
	.tick = y_tick,
};
