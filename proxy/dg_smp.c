/* dg_smp - MCUboot serial recovery / mcumgr SMP over a UART as a
 * dg_sproto engine.
 *
 * Session: image upload (group 1, command 1) in chunks, the first with
 * image, len, off, sha and data, the others with off and data; the
 * device's answer carries rc and the offset it wants next, which is where
 * the next chunk starts (so a device that already holds part of the image
 * resumes it). Then image state (group 1, command 0) must list an image
 * whose hash is the image's SHA-256 (unless verify=no), then reset (group
 * 0, command 5) unless reset=no. CBOR bodies are built and parsed with
 * libcbor; framing in dg_smpframe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "dg_smpframe.h"
#include "dg_sproto.h"

#define OP_READ   0
#define OP_WRITE  2
#define GRP_OS    0
#define GRP_IMAGE 1
#define CMD_STATE  0
#define CMD_UPLOAD 1
#define CMD_RESET  5

enum phase { PH_IDLE, PH_UPLOAD, PH_STATE, PH_RESET, PH_DONE };

struct dg_sproto {
	const dg_sproto_io *io;
	const uint8_t *image;
	uint64_t size;
	uint8_t sha[32];
	/* options */
	size_t chunk;
	unsigned slot;          /* "image" number in the upload */
	int verify, reset;
	int timeout_ms;
	unsigned max_retries;
	/* session */
	enum phase ph;
	uint8_t seq;
	uint64_t off;
	unsigned tries, retransmits;
	dg_smpframe_dec *dec;
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

/* ------------------------------------------------------------- requests */

static int
map_add(cbor_item_t *map, const char *key, cbor_item_t *val)
{
	struct cbor_pair p;
	bool ok;

	if (val == NULL)
		return -1;
	p.key = cbor_build_string(key);
	p.value = val;
	if (p.key == NULL) {
		cbor_decref(&val);
		return -1;
	}
	ok = cbor_map_add(map, p);
	cbor_decref(&p.key);
	cbor_decref(&val);
	return ok ? 0 : -1;
}

/* Send op/group/id with body map (NULL: empty map). */
static void
request(dg_sproto *s, int op, uint16_t group, uint8_t id, cbor_item_t *map)
{
	unsigned char *body = NULL;
	size_t bodyn = 0, bufsz = 0, framen;
	uint8_t *pkt = NULL, *frames = NULL;
	cbor_item_t *empty = NULL;

	if (map == NULL)
		map = empty = cbor_new_definite_map(0);
	if (map == NULL || (bodyn = cbor_serialize_alloc(map, &body, &bufsz)) == 0)
		goto oom;
	pkt = malloc(DG_SMP_HDR + bodyn);
	if (pkt == NULL)
		goto oom;
	s->seq++;
	pkt[0] = (uint8_t)op;
	pkt[1] = 0;
	pkt[2] = (uint8_t)(bodyn >> 8);
	pkt[3] = (uint8_t)bodyn;
	pkt[4] = (uint8_t)(group >> 8);
	pkt[5] = (uint8_t)group;
	pkt[6] = s->seq;
	pkt[7] = id;
	memcpy(pkt + DG_SMP_HDR, body, bodyn);
	if (dg_smpframe_encode(pkt, DG_SMP_HDR + bodyn, &frames, &framen) != 0)
		goto oom;
	s->io->timer(s->io->arg, s->timeout_ms);
	if (s->io->write(s->io->arg, frames, framen) != 0)
		finish(s, 0, DG_SPROTO_EXT_LINE_GONE, "smp: write to the line failed");
	free(frames);
	free(pkt);
	free(body);
	if (empty != NULL)
		cbor_decref(&empty);
	return;
oom:
	free(pkt);
	free(body);
	if (empty != NULL)
		cbor_decref(&empty);
	finish(s, 0, DG_SPROTO_EXT_ABORTED, "smp: out of memory building a request");
}

static void
send_upload(dg_sproto *s)
{
	cbor_item_t *m = cbor_new_definite_map(5);
	uint64_t left = s->size - s->off;
	size_t n = left < s->chunk ? (size_t)left : s->chunk;
	int bad = m == NULL;

	s->ph = PH_UPLOAD;
	if (!bad && s->off == 0) {
		bad |= map_add(m, "image", cbor_build_uint32(s->slot));
		bad |= map_add(m, "len", cbor_build_uint64(s->size));
		bad |= map_add(m, "sha", cbor_build_bytestring(s->sha, 32));
	}
	if (!bad) {
		bad |= map_add(m, "off", cbor_build_uint64(s->off));
		bad |= map_add(m, "data", cbor_build_bytestring(s->image + s->off, n));
	}
	if (bad) {
		if (m != NULL)
			cbor_decref(&m);
		finish(s, 0, DG_SPROTO_EXT_ABORTED, "smp: out of memory building a request");
		return;
	}
	request(s, OP_WRITE, GRP_IMAGE, CMD_UPLOAD, m);
	cbor_decref(&m);
}

static void
send_state(dg_sproto *s)
{
	s->ph = PH_STATE;
	request(s, OP_READ, GRP_IMAGE, CMD_STATE, NULL);
}

static void
send_reset(dg_sproto *s)
{
	s->ph = PH_RESET;
	request(s, OP_WRITE, GRP_OS, CMD_RESET, NULL);
}

static void
resend(dg_sproto *s)
{
	switch (s->ph) {
	case PH_UPLOAD:
		send_upload(s);
		break;
	case PH_STATE:
		send_state(s);
		break;
	case PH_RESET:
		send_reset(s);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------- answers */

static cbor_item_t *
map_get(cbor_item_t *map, const char *key)
{
	struct cbor_pair *p;
	size_t i, n, kl = strlen(key);

	if (map == NULL || !cbor_isa_map(map))
		return NULL;
	p = cbor_map_handle(map);
	n = cbor_map_size(map);
	for (i = 0; i < n; i++)
		if (cbor_isa_string(p[i].key) && cbor_string_is_definite(p[i].key) &&
		    cbor_string_length(p[i].key) == kl &&
		    memcmp(cbor_string_handle(p[i].key), key, kl) == 0)
			return p[i].value;
	return NULL;
}

/* -1 if absent or not an unsigned integer */
static int
map_uint(cbor_item_t *map, const char *key, uint64_t *out)
{
	cbor_item_t *v = map_get(map, key);

	if (v == NULL || !cbor_isa_uint(v))
		return -1;
	*out = cbor_get_int(v);
	return 0;
}

static int
state_has_hash(dg_sproto *s, cbor_item_t *body)
{
	cbor_item_t *imgs = map_get(body, "images");
	size_t i;

	if (imgs == NULL || !cbor_isa_array(imgs))
		return -1;
	for (i = 0; i < cbor_array_size(imgs); i++) {
		cbor_item_t *h = map_get(cbor_array_handle(imgs)[i], "hash");

		if (h != NULL && cbor_isa_bytestring(h) && cbor_bytestring_is_definite(h) &&
		    cbor_bytestring_length(h) == 32 &&
		    memcmp(cbor_bytestring_handle(h), s->sha, 32) == 0)
			return 1;
	}
	return 0;
}

static void
packet(dg_sproto *s, const uint8_t *p, size_t n)
{
	struct cbor_load_result res;
	cbor_item_t *body = NULL;
	size_t len;
	uint64_t rc = 0, off;
	int has_rc;

	if (n < DG_SMP_HDR)
		goto proto;
	len = (size_t)p[2] << 8 | p[3];
	if (len != n - DG_SMP_HDR)
		goto proto;
	if (p[6] != s->seq) {
		logf_(s, "smp: stale answer seq %u (want %u)", p[6], s->seq);
		return;
	}
	if ((p[0] & 7u) != OP_READ + 1 && (p[0] & 7u) != OP_WRITE + 1)
		goto proto;
	body = cbor_load(p + DG_SMP_HDR, len, &res);
	if (body == NULL || res.error.code != CBOR_ERR_NONE || !cbor_isa_map(body))
		goto proto;
	has_rc = map_uint(body, "rc", &rc) == 0;
	if (has_rc && rc != 0) {
		finish(s, 0, DG_SPROTO_EXT_REJECTED, "smp: %s refused by the device (rc %" PRIu64 ")",
		    s->ph == PH_UPLOAD ? "upload" : s->ph == PH_STATE ? "image state" : "reset",
		    rc);
		goto out;
	}
	s->tries = 0;
	switch (s->ph) {
	case PH_UPLOAD:
		if (map_uint(body, "off", &off) != 0 || off > s->size) {
			finish(s, 0, DG_SPROTO_EXT_PROTOCOL,
			    "smp: upload answer without a valid off");
			goto out;
		}
		if (off != s->off + ((s->size - s->off) < s->chunk ? s->size - s->off : s->chunk))
			logf_(s, "smp: device asks for offset %" PRIu64 " (sent up to %" PRIu64 ")",
			    off, s->off);
		s->off = off;
		if (s->io->progress != NULL)
			s->io->progress(s->io->arg, s->off, s->size);
		if (s->off < s->size)
			send_upload(s);
		else if (s->verify)
			send_state(s);
		else if (s->reset)
			send_reset(s);
		else
			finish(s, 1, 0, "smp: %" PRIu64 " bytes uploaded", s->size);
		break;
	case PH_STATE:
		switch (state_has_hash(s, body)) {
		case 1:
			if (s->reset)
				send_reset(s);
			else
				finish(s, 1, 0, "smp: %" PRIu64 " bytes uploaded, hash verified",
				    s->size);
			break;
		case 0:
			finish(s, 0, DG_SPROTO_EXT_VERIFY,
			    "smp: no image on the device has the image's SHA-256");
			break;
		default:
			finish(s, 0, DG_SPROTO_EXT_PROTOCOL, "smp: image state without images");
		}
		break;
	case PH_RESET:
		finish(s, 1, 0, "smp: %" PRIu64 " bytes uploaded%s, device reset", s->size,
		    s->verify ? ", hash verified" : "");
		break;
	default:
		break;
	}
	goto out;
proto:
	finish(s, 0, DG_SPROTO_EXT_PROTOCOL, "smp: malformed answer");
out:
	if (body != NULL)
		cbor_decref(&body);
}

static void
smp_input(dg_sproto *s, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n && !s->finished; i++) {
		int r = dg_smpframe_dec_push(s->dec, buf[i]);

		if (r == 1 && s->ph != PH_IDLE && s->ph != PH_DONE) {
			size_t pn;
			const uint8_t *p = dg_smpframe_dec_packet(s->dec, &pn);

			packet(s, p, pn);
		} else if (r < 0)
			logf_(s, "smp: damaged frame dropped");
	}
}

static void
smp_timeout(dg_sproto *s)
{
	if (s->finished || s->ph == PH_IDLE || s->ph == PH_DONE)
		return;
	if (++s->tries > s->max_retries) {
		finish(s, 0, DG_SPROTO_EXT_TIMEOUT, "smp: no answer to %s after %u tries",
		    s->ph == PH_UPLOAD ? "upload" : s->ph == PH_STATE ? "image state" : "reset",
		    s->tries);
		return;
	}
	s->retransmits++;
	logf_(s, "smp: timeout, retry %u", s->tries);
	resend(s);
}

static void
smp_start(dg_sproto *s)
{
	s->io->flush(s->io->arg);
	s->off = 0;
	send_upload(s);
}

/* ------------------------------------------------------------- options */

static int
parse_num(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;

	if (*v == '\0' || *v == '-')
		return -1;
	errno = 0;
	*out = strtoul(v, &end, 0);
	return errno == 0 && *end == '\0' && *out >= lo && *out <= hi ? 0 : -1;
}

static int
parse_bool(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static dg_sproto *
smp_new(const dg_sproto_params *p, const dg_sproto_io *io, char *why, size_t whylen)
{
	dg_sproto *s = calloc(1, sizeof *s);
	size_t i;

	if (s == NULL) {
		snprintf(why, whylen, "smp: out of memory");
		return NULL;
	}
	s->io = io;
	s->image = p->image;
	s->size = p->size;
	s->chunk = 256;
	s->verify = 1;
	s->reset = 1;
	s->timeout_ms = p->unit_timeout_ms > 0 ? p->unit_timeout_ms : 2000;
	s->max_retries = p->max_retries > 0 ? p->max_retries : 5;
	if (p->sha256 == NULL) {
		snprintf(why, whylen, "smp: the image's SHA-256 is needed");
		goto fail;
	}
	memcpy(s->sha, p->sha256, 32);
	for (i = 0; p->options != NULL && p->options[i] != NULL; i++) {
		const char *kv = p->options[i], *eq = strchr(kv, '='), *v;
		unsigned long x;
		size_t kl;

		if (eq == NULL) {
			snprintf(why, whylen, "smp: option '%s' is not key=value", kv);
			goto fail;
		}
		kl = (size_t)(eq - kv);
		v = eq + 1;
		if (kl == 5 && memcmp(kv, "chunk", 5) == 0 &&
		    parse_num(v, 16, 2048, &x) == 0)
			s->chunk = x;
		else if (kl == 5 && memcmp(kv, "image", 5) == 0 &&
		    parse_num(v, 0, 15, &x) == 0)
			s->slot = (unsigned)x;
		else if (kl == 6 && memcmp(kv, "verify", 6) == 0 && parse_bool(v, &s->verify) == 0)
			;
		else if (kl == 5 && memcmp(kv, "reset", 5) == 0 && parse_bool(v, &s->reset) == 0)
			;
		else {
			snprintf(why, whylen, "smp: unknown or bad option '%s'", kv);
			goto fail;
		}
	}
	if (s->size == 0 || s->size > 0xFFFFFFFFull) {
		snprintf(why, whylen, "smp: image size %" PRIu64 " not supported", s->size);
		goto fail;
	}
	/* the largest answer (image state with a few slots) stays small */
	s->dec = dg_smpframe_dec_new(4096);
	if (s->dec == NULL) {
		snprintf(why, whylen, "smp: out of memory");
		goto fail;
	}
	return s;
fail:
	free(s);
	return NULL;
}

static void
smp_abort(dg_sproto *s)
{
	s->finished = 1;
	s->ph = PH_DONE;
	s->io->timer(s->io->arg, -1);
}

static void
smp_free(dg_sproto *s)
{
	if (s == NULL)
		return;
	dg_smpframe_dec_free(s->dec);
	free(s);
}

const struct dg_sproto_ops dg_sproto_smp = {
	.name = "smp",
	.new = smp_new,
	.start = smp_start,
	.input = smp_input,
	.timeout = smp_timeout,
	.abort = smp_abort,
	.free = smp_free,
};
