/* dg_smpframe - SMP console framing; see dg_smpframe.h. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dg_smpframe.h"

/* raw bytes per frame: (127 - 2 marker - 1 newline) = 124 base64
 * characters = 93 bytes, so each frame decodes on its own */
#define RAW_PER_FRAME 93
#define LINE_MAX_ 512

struct dg_smpframe_dec {
	uint8_t line[LINE_MAX_];
	size_t linen;
	int overflow;
	uint8_t *acc;           /* length + body + crc of the packet being read */
	size_t accn, max;
	int inpkt;
	size_t pktn;
};

uint16_t
dg_smpframe_crc16(const uint8_t *buf, size_t n)
{
	uint16_t crc = 0;
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= (uint16_t)buf[i] << 8;
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u)
			    : (uint16_t)(crc << 1);
	}
	return crc;
}

int
dg_smpframe_encode(const uint8_t *pkt, size_t n, uint8_t **out, size_t *outn)
{
	size_t raw = n + 4, frames, o = 0, i;
	uint8_t *r = NULL, *f = NULL;
	uint16_t crc;

	if (n > 65533)
		return -1;
	r = malloc(raw);
	frames = (raw + RAW_PER_FRAME - 1) / RAW_PER_FRAME;
	f = malloc(frames * DG_SMPFRAME_MAX + 1);
	if (r == NULL || f == NULL)
		goto fail;
	r[0] = (uint8_t)((n + 2) >> 8);
	r[1] = (uint8_t)(n + 2);
	memcpy(r + 2, pkt, n);
	crc = dg_smpframe_crc16(pkt, n);
	r[n + 2] = (uint8_t)(crc >> 8);
	r[n + 3] = (uint8_t)crc;
	for (i = 0; i < raw; i += RAW_PER_FRAME) {
		size_t k = raw - i < RAW_PER_FRAME ? raw - i : RAW_PER_FRAME;

		f[o++] = i == 0 ? 0x06 : 0x04;
		f[o++] = i == 0 ? 0x09 : 0x14;
		o += (size_t)EVP_EncodeBlock(f + o, r + i, (int)k);
		f[o++] = '\n';
	}
	free(r);
	*out = f;
	*outn = o;
	return 0;
fail:
	free(r);
	free(f);
	return -1;
}

dg_smpframe_dec *
dg_smpframe_dec_new(size_t max)
{
	dg_smpframe_dec *d = calloc(1, sizeof *d);

	if (d == NULL)
		return NULL;
	d->max = max + 4;
	d->acc = malloc(d->max + 3);    /* base64 pads to whole triplets */
	if (d->acc == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

void
dg_smpframe_dec_free(dg_smpframe_dec *d)
{
	if (d == NULL)
		return;
	free(d->acc);
	free(d);
}

/* a complete line in d->line: 1 packet ready, 0 not yet, -1 dropped */
static int
line_done(dg_smpframe_dec *d)
{
	const uint8_t *b64 = d->line + 2;
	size_t n = d->linen - 2, pad = 0;
	int first, got;
	size_t len;

	if (d->linen < 2)
		return 0;
	first = d->line[0] == 0x06 && d->line[1] == 0x09;
	if (!first && !(d->line[0] == 0x04 && d->line[1] == 0x14))
		return 0;               /* console text */
	if (d->overflow)
		goto drop;
	if (first) {
		d->inpkt = 1;
		d->accn = 0;
	} else if (!d->inpkt)
		return 0;               /* continuation of a packet we lost */
	if (n > 0 && b64[n - 1] == '\r')
		n--;
	if (n == 0 || n % 4 != 0 || d->accn + n / 4 * 3 > d->max + 3)
		goto drop;
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=')
		pad++;
	got = EVP_DecodeBlock(d->acc + d->accn, b64, (int)n);
	if (got < 0)
		goto drop;
	d->accn += (size_t)got - pad;
	if (d->accn < 2)
		return 0;
	len = (size_t)d->acc[0] << 8 | d->acc[1];
	if (len < 2 || len + 2 > d->max)
		goto drop;
	if (d->accn < len + 2)
		return 0;
	d->inpkt = 0;
	if (d->accn != len + 2 || dg_smpframe_crc16(d->acc + 2, len - 2) !=
	    ((uint16_t)d->acc[len] << 8 | d->acc[len + 1]))
		return -1;
	d->pktn = len - 2;
	return 1;
drop:
	d->inpkt = 0;
	return -1;
}

int
dg_smpframe_dec_push(dg_smpframe_dec *d, uint8_t c)
{
	int r;

	if (c != '\n') {
		if (d->linen < sizeof d->line)
			d->line[d->linen++] = c;
		else
			d->overflow = 1;
		return 0;
	}
	r = line_done(d);
	d->linen = 0;
	d->overflow = 0;
	return r;
}

const uint8_t *
dg_smpframe_dec_packet(const dg_smpframe_dec *d, size_t *n)
{
	*n = d->pktn;
	return d->acc + 2;
}
