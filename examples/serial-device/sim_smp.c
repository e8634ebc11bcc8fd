/* sim_smp - an MCUboot serial recovery target (SMP over the console).
 *
 * Image upload (group 1, command 1) writes into the primary slot, the
 * answer carries rc and the offset the device wants next (a request at
 * another offset gets that offset back, so the host resumes there); image
 * state (group 1, command 0) lists slot 0 with the SHA-256 of what the
 * slot holds; reset (group 0, command 5) installs a complete upload (its
 * version from the MCUboot image header when there is one).
 *
 * Options: slot-size= (default 1M), check-sha=yes (refuse, rc 9, a last
 * chunk after which the slot's SHA-256 is not the upload's sha), corrupt=N
 * (store byte N with bit 0 flipped), defaults= (all options back to their
 * defaults), lose-answer=K (the K-th upload answer
 * is not sent; the data is kept), mute=yes, version= (when the image has
 * no MCUboot header).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/evp.h>

#include "../../proxy/dg_smpframe.h"
#include "sim.h"

#define MGMT_EINVAL   3
#define MGMT_ENOMEM   2
#define MGMT_ECORRUPT 9

struct cfg {
	size_t slot_size;
	int check_sha, mute;
	long corrupt;
	long lose_answer;
	char version[64];
};
static const struct cfg defaults = { 1u << 20, 0, 0, -1, -1, "" };
static struct cfg cfg = { 1u << 20, 0, 0, -1, -1, "" };

struct smp {
	dg_smpframe_dec *dec;
	uint8_t *slot;
	size_t len, got;
	int have_sha, complete;
	uint8_t sha[32];
	long uploads;           /* upload answers so far */
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
	} else if (*end == 'M' || *end == 'm') {
		*out *= 1024 * 1024;
		end++;
	}
	return *end == '\0' ? 0 : -1;
}

static int
smp_option(struct sim_dev *d, const char *k, const char *v)
{
	unsigned long x;

	(void)d;
	if (strcmp(k, "defaults") == 0)
		cfg = defaults;         /* back to the defaults (unit tests) */
	else if (strcmp(k, "slot-size") == 0 && num(v, &x) == 0 && x > 0 && x <= (64ul << 20))
		cfg.slot_size = x;
	else if (strcmp(k, "check-sha") == 0)
		cfg.check_sha = strcmp(v, "yes") == 0;
	else if (strcmp(k, "mute") == 0)
		cfg.mute = strcmp(v, "yes") == 0;
	else if (strcmp(k, "corrupt") == 0 && num(v, &x) == 0)
		cfg.corrupt = (long)x;
	else if (strcmp(k, "lose-answer") == 0 && num(v, &x) == 0)
		cfg.lose_answer = (long)x;
	else if (strcmp(k, "version") == 0 && strlen(v) < sizeof cfg.version)
		strcpy(cfg.version, v);
	else {
		fprintf(stderr, "sim smp: bad option %s=%s\n", k, v);
		return -1;
	}
	return 0;
}

static void
smp_reset(struct sim_dev *d)
{
	struct smp *s = sim_smp.state;

	(void)d;
	if (s == NULL) {
		s = calloc(1, sizeof *s);
		if (s == NULL || (s->dec = dg_smpframe_dec_new(8192)) == NULL) {
			fprintf(stderr, "sim smp: out of memory\n");
			exit(1);
		}
		sim_smp.state = s;
	}
	if (!s->complete || s->slot == NULL) {
		free(s->slot);          /* slot-size= may have changed */
		s->slot = malloc(cfg.slot_size);
		if (s->slot == NULL) {
			fprintf(stderr, "sim smp: out of memory\n");
			exit(1);
		}
	}
	s->len = s->got = 0;
	s->have_sha = s->complete = 0;
	s->uploads = 0;
}

static void
add(cbor_item_t *m, const char *k, cbor_item_t *v)
{
	struct cbor_pair p = { cbor_build_string(k), v };

	if (p.key == NULL || v == NULL || !cbor_map_add(m, p)) {
		fprintf(stderr, "sim smp: out of memory\n");
		exit(1);
	}
	cbor_decref(&p.key);
	cbor_decref(&v);
}

static void
answer(struct sim_dev *d, const uint8_t *req, cbor_item_t *m)
{
	unsigned char *body = NULL;
	size_t bufsz = 0, n = cbor_serialize_alloc(m, &body, &bufsz), fn;
	uint8_t *pkt = malloc(DG_SMP_HDR + n), *frames = NULL;

	if (n == 0 || pkt == NULL)
		exit(1);
	pkt[0] = (uint8_t)((req[0] & 7u) + 1);
	pkt[1] = 0;
	pkt[2] = (uint8_t)(n >> 8);
	pkt[3] = (uint8_t)n;
	memcpy(pkt + 4, req + 4, 4);    /* group, seq, id */
	memcpy(pkt + DG_SMP_HDR, body, n);
	if (dg_smpframe_encode(pkt, DG_SMP_HDR + n, &frames, &fn) != 0)
		exit(1);
	sim_write(d, frames, fn);
	free(frames);
	free(pkt);
	free(body);
	cbor_decref(&m);
}

static void
answer_rc(struct sim_dev *d, const uint8_t *req, unsigned rc)
{
	cbor_item_t *m = cbor_new_definite_map(1);

	add(m, "rc", cbor_build_uint32(rc));
	answer(d, req, m);
}

static cbor_item_t *
get(cbor_item_t *map, const char *key)
{
	struct cbor_pair *p = cbor_map_handle(map);
	size_t i, kl = strlen(key);

	for (i = 0; i < cbor_map_size(map); i++)
		if (cbor_isa_string(p[i].key) && cbor_string_is_definite(p[i].key) &&
		    cbor_string_length(p[i].key) == kl &&
		    memcmp(cbor_string_handle(p[i].key), key, kl) == 0)
			return p[i].value;
	return NULL;
}

static void
version_of(const uint8_t *img, size_t n, char *out, size_t outn, const char *dflt)
{
	/* MCUboot image header: magic 0x96f3b83d (LE), version at 20 */
	if (n >= 32 && img[0] == 0x3d && img[1] == 0xb8 && img[2] == 0xf3 && img[3] == 0x96) {
		snprintf(out, outn, "%u.%u.%u+%u", img[20], img[21],
		    (unsigned)(img[22] | img[23] << 8),
		    (unsigned)(img[24] | img[25] << 8 | img[26] << 16 | (unsigned)img[27] << 24));
		return;
	}
	snprintf(out, outn, "%s", dflt);
}

static void
upload(struct sim_dev *d, struct smp *s, const uint8_t *req, cbor_item_t *m)
{
	cbor_item_t *off = get(m, "off"), *data = get(m, "data"), *len = get(m, "len"),
	    *sha = get(m, "sha");
	cbor_item_t *a;
	uint64_t o;
	size_t n, i;

	if (off == NULL || !cbor_isa_uint(off) || data == NULL ||
	    !cbor_isa_bytestring(data) || !cbor_bytestring_is_definite(data)) {
		answer_rc(d, req, MGMT_EINVAL);
		return;
	}
	o = cbor_get_int(off);
	n = cbor_bytestring_length(data);
	if (o == 0) {
		if (len == NULL || !cbor_isa_uint(len)) {
			answer_rc(d, req, MGMT_EINVAL);
			return;
		}
		if (cbor_get_int(len) > cfg.slot_size) {
			answer_rc(d, req, MGMT_ENOMEM);
			return;
		}
		s->len = (size_t)cbor_get_int(len);
		s->got = 0;
		s->complete = 0;
		s->have_sha = sha != NULL && cbor_isa_bytestring(sha) &&
		    cbor_bytestring_is_definite(sha) && cbor_bytestring_length(sha) == 32;
		if (s->have_sha)
			memcpy(s->sha, cbor_bytestring_handle(sha), 32);
		sim_log(d, "smp: upload of %zu bytes starts", s->len);
	}
	if (o == s->got && s->len > 0 && o + n <= s->len) {
		memcpy(s->slot + o, cbor_bytestring_handle(data), n);
		for (i = 0; i < n; i++)
			if (cfg.corrupt >= 0 && (uint64_t)cfg.corrupt == o + i)
				s->slot[o + i] ^= 0x01;
		s->got += n;
		if (s->got == s->len) {
			uint8_t h[32];

			EVP_Digest(s->slot, s->len, h, NULL, EVP_sha256(), NULL);
			if (cfg.check_sha && (!s->have_sha || memcmp(h, s->sha, 32) != 0)) {
				sim_log(d, "smp: slot SHA-256 differs from the upload's sha");
				s->got = 0;
				answer_rc(d, req, MGMT_ECORRUPT);
				return;
			}
			s->complete = 1;
			sim_log(d, "smp: upload complete");
		}
	} else if (o != s->got)
		sim_log(d, "smp: request at %llu, device is at %zu", (unsigned long long)o, s->got);
	if (++s->uploads == cfg.lose_answer) {
		sim_log(d, "smp: answer %ld lost", s->uploads);
		return;
	}
	a = cbor_new_definite_map(2);
	add(a, "rc", cbor_build_uint32(0));
	add(a, "off", cbor_build_uint64(s->got));
	answer(d, req, a);
}

static void
state(struct sim_dev *d, struct smp *s, const uint8_t *req)
{
	cbor_item_t *m = cbor_new_definite_map(1), *arr = cbor_new_definite_array(1),
	    *img = cbor_new_definite_map(3);
	const uint8_t *p;
	size_t n;
	uint8_t h[32];
	char v[64];

	if (s->complete) {
		p = s->slot;
		n = s->len;
	} else
		p = sim_image(d, &n);
	EVP_Digest(p != NULL ? p : (const uint8_t *)"", n, h, NULL, EVP_sha256(), NULL);
	version_of(p, n, v, sizeof v, sim_version(d));
	add(img, "slot", cbor_build_uint8(0));
	add(img, "version", cbor_build_string(v));
	add(img, "hash", cbor_build_bytestring(h, 32));
	if (!cbor_array_push(arr, img))
		exit(1);
	cbor_decref(&img);
	add(m, "images", arr);
	answer(d, req, m);
}

static void
do_reset(struct sim_dev *d, struct smp *s, const uint8_t *req)
{
	if (s->complete) {
		char v[64];

		version_of(s->slot, s->len, v, sizeof v,
		    cfg.version[0] != '\0' ? cfg.version : sim_version(d));
		if (sim_install(d, s->slot, s->len, v) != 0) {
			answer_rc(d, req, MGMT_ECORRUPT);
			return;
		}
		sim_log(d, "smp: reset, installed %zu bytes as %s", s->len, v);
	} else
		sim_log(d, "smp: reset, nothing to install");
	answer_rc(d, req, 0);
	smp_reset(d);
	sim_app(d);
}

static void
packet(struct sim_dev *d, struct smp *s, const uint8_t *p, size_t n)
{
	struct cbor_load_result res;
	cbor_item_t *m;
	unsigned group;

	if (n < DG_SMP_HDR || ((size_t)p[2] << 8 | p[3]) != n - DG_SMP_HDR)
		return;
	m = cbor_load(p + DG_SMP_HDR, n - DG_SMP_HDR, &res);
	if (m == NULL || !cbor_isa_map(m)) {
		if (m != NULL)
			cbor_decref(&m);
		answer_rc(d, p, MGMT_EINVAL);
		return;
	}
	group = (unsigned)p[4] << 8 | p[5];
	if (group == 1 && p[7] == 1 && (p[0] & 7u) == 2)
		upload(d, s, p, m);
	else if (group == 1 && p[7] == 0 && (p[0] & 7u) == 0)
		state(d, s, p);
	else if (group == 0 && p[7] == 5 && (p[0] & 7u) == 2)
		do_reset(d, s, p);
	else
		answer_rc(d, p, 8);     /* MGMT_ERR_ENOTSUP */
	cbor_decref(&m);
}

static void
smp_input(struct sim_dev *d, const uint8_t *buf, size_t n)
{
	struct smp *s = sim_smp.state;
	size_t i;

	if (cfg.mute || s == NULL)
		return;
	for (i = 0; i < n; i++) {
		int r = dg_smpframe_dec_push(s->dec, buf[i]);

		if (r == 1) {
			size_t pn;
			const uint8_t *p = dg_smpframe_dec_packet(s->dec, &pn);

			packet(d, s, p, pn);
			s = sim_smp.state;
		} else if (r < 0)
			sim_log(d, "smp: damaged frame dropped");
	}
}

static void
smp_tick(struct sim_dev *d, uint64_t now_ms)
{
	(void)d;
	(void)now_ms;
}

struct sim_personality sim_smp = {
	.name = "smp",
	.option = smp_option,
	.reset = smp_reset,
	.input = smp_input,
	.tick = smp_tick,
	.state = NULL,
};
