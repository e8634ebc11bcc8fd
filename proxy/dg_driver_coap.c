/* dg_driver_coap - CoAP devices: registration, observed state, block-wise
 * image download (pull) or upload (push), reports; DTLS with per-device PSK.
 *
 * libcoap runs on the gateway's libevent loop: an event on libcoap's epoll
 * descriptor and a timer for its retransmissions and notifications both run
 * coap_io_process() without waiting. Block-wise transfers are done here,
 * not by libcoap's COAP_BLOCK_USE_LIBCOAP, so that each block is served
 * straight from the delivery's mapping of the cached image and progress is
 * known exactly.
 *
 * Push requests are NON and retransmitted here, not by libcoap: libcoap's
 * CON retransmission takes its timeout from the session's ACK timeout,
 * which coap_session_set_ack_timeout() refuses below 1 s (integer part
 * must be > 0), so on a fast link every lost datagram cost 1-1.5 s (42 s
 * for 300 KiB at 5% loss each way). The RTO comes from an RFC 6298
 * estimate per device (Karn's rule, doubled on each timeout), and a
 * request unanswered for max_transmit_span_s fails the job. Block PUTs are
 * idempotent; a device answers a repeated install trigger again.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <coap3/coap.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "dg_coap_parse.h"
#include "dg_driver.h"
#include "dg_driver_coap.h"
#include "dg_json.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_topic.h"
#include "dg_util.h"

#define NBUCKETS 4096
#define MAX_PSK 64
#define DEFAULT_SZX 6          /* 1024-byte blocks */
#define RTO_MIN_MS 20          /* floor of the estimated RTO (RFC 6298 says 1 s
                                for the Internet; CoAP links are measured) */
#define RTO_MAX_MS 10000       /* ceiling, also of the backed-off RTO */
#define RTO_INIT_MS 1000       /* before the first sample (RFC 6298 2.1) */
#define ACK_TIMEOUT_MIN_MS 1000 /* libcoap's floor for CON (notifications) */
#define DEFAULT_SPAN_S 45      /* RFC 7252 MAX_TRANSMIT_SPAN */
#define HOUSEKEEPING_MS 2       /* libcoap session walk at most this often */

/* One per known device: kept small (10,000 devices are a few MiB with
 * libcoap's resource and session); strings are allocated only when set. */
struct cdev {
	struct cdev *hnext;
	unsigned char *psk;      /* DTLS key (psk_len bytes), NULL: none */
	char *address;           /* configured push target, or NULL */
	char *reg_address;       /* push target from the registration */
	char *version;           /* what it runs, NULL: unknown */
	coap_resource_t *state;  /* "state/<id>" (observable) */
	dg_delivery *d;          /* active delivery, or NULL */
	char *last_job;          /* last finished job and its outcome, so that a */
	/* RTT estimate (RFC 6298) in ms; 0: no sample yet */
	double srtt, rttvar;
	uint64_t last_block_at;  /* pull: when the last block was served */
	uint32_t last_block_num;
	uint8_t psk_len;
	unsigned psk_required : 1;
	unsigned registered : 1;
	unsigned last_ok : 1;    /* retransmitted report is answered again */
	unsigned has_sha : 1;
	unsigned szx : 3;        /* block size exponent it asked for */
	unsigned mode : 1;       /* dg_coap_mode */
	unsigned char sha256[32]; /* of the image it runs, if has_sha */
	char id[];
};

struct coap_driver {
	dg_driver base;
	struct event_base *evbase;
	coap_context_t *ctx;
	struct event *io_ev, *timer;
	unsigned char secret[64];
	size_t secret_len;
	int token_lifetime_s, default_timeout_s, allow_unknown, span_s;
	char *install_path;
	struct cdev *buckets[NBUCKETS];
	size_t ndevices, nregistered, nactive;
	dg_delivery *active;
	coap_bin_const_t psk_out;  /* key returned to libcoap (it copies it) */
	coap_session_t **dead;     /* push sessions to release outside handlers */
	size_t ndead, dead_cap;
	int housekeeping_soon;     /* the timer fires within HOUSEKEEPING_MS */
	struct imgmap *maps;       /* images mapped for deliveries */
};

/* One read-only mapping of a cached image, shared by every delivery of it
 * (1,000 deliveries of one image are one mapping, not 1,000). */
struct imgmap {
	struct imgmap *next;
	char sha256[65];
	uint64_t size;
	unsigned char *map;
	int refs;
};

struct dg_delivery {
	struct coap_driver *drv;
	struct cdev *dev;
	dg_delivery *next;
	dg_delivery_events ev;
	void *arg;
	char *job, *version;
	char sha256[65];
	uint64_t size;
	unsigned char *map;      /* the image, mapped read-only (NULL if empty) */
	struct imgmap *img;      /* the mapping map belongs to */
	char mac[48];            /* base64url HMAC of the current token */
	int64_t expiry;          /* of the current token, seconds since epoch */
	uint64_t served_hi;      /* highest byte served or acknowledged */
	int installing;
	struct event *timer;
	/* push */
	coap_session_t *sess;
	int dtls, connected;     /* push over DTLS; session established */
	char path[256];
	unsigned szx;
	uint32_t next_num;       /* block to send next */
	uint8_t tok[8];
	size_t toklen;
	uint64_t sent_at;        /* last transmission of the outstanding request */
	uint64_t first_at;       /* its first transmission (or the handshake) */
	unsigned rto_cur;        /* RTO, ms: doubled on each timeout, back to the
	                            estimate after a clean sample (RFC 6298 5.7) */
	unsigned tries;          /* its transmissions */
	unsigned long retransmits; /* of the whole push */
	int awaiting;            /* a request is outstanding */
	struct event *rtx;       /* its retransmission timer */
	int trigger_sent;
	int fault_passed;        /* driver/coap/mid-transfer (fault injection) */
};

/* Fault point driver/coap/mid-transfer, once per delivery when the block at
 * off is past half the image; non-zero: that datagram is lost. */
static int
mid_transfer_fault(dg_delivery *d, uint64_t off)
{
	if (d->fault_passed || off < d->size / 2)
		return 0;
	d->fault_passed = 1;
	DG_FAULT("driver/coap/mid-transfer", return 1);
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static unsigned
hash_id(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKETS;
}

/* Replace *dst by a copy of s (NULL or "": none). -1 on ENOMEM (*dst kept). */
static int
set_str(char **dst, const char *s)
{
	char *n = NULL;

	if (s && *s) {
		if (*dst && strcmp(*dst, s) == 0)
			return 0;
		if (!(n = strdup(s)))
			return -1;
	}
	free(*dst);
	*dst = n;
	return 0;
}

static void
set_sha(struct cdev *dev, const char *hex)
{
	dev->has_sha = strlen(hex) == 64 && dg_util_hex_decode(hex, dev->sha256, 32) == DG_OK;
}

static struct cdev *
find_dev(struct coap_driver *drv, const char *id, size_t len)
{
	struct cdev *d;
	char buf[DG_TOPIC_ID_MAX + 1];

	if (len > DG_TOPIC_ID_MAX)
		return NULL;
	memcpy(buf, id, len);
	buf[len] = '\0';
	for (d = drv->buckets[hash_id(buf)]; d; d = d->hnext)
		if (strcmp(d->id, buf) == 0)
			return d;
	return NULL;
}

/* Let libcoap run now (sends queued by handlers and timers). */
static void
kick(struct coap_driver *drv)
{
	struct timeval tv = { 0, 0 };

	if (drv->timer)
		evtimer_add(drv->timer, &tv);
}

static void
run_io(struct coap_driver *drv)
{
	unsigned wait_ms;
	struct timeval tv;
	coap_tick_t now;

	drv->housekeeping_soon = 0;
	coap_io_process(drv->ctx, COAP_IO_NO_WAIT);
	/* sessions finished inside libcoap's callbacks are released here */
	while (drv->ndead)
		coap_session_release(drv->dead[--drv->ndead]);
	coap_ticks(&now);
	wait_ms = coap_io_prepare_epoll(drv->ctx, now);
	if (wait_ms == 0)
		wait_ms = 1000; /* nothing due: look again later anyway */
	tv.tv_sec = wait_ms / 1000;
	tv.tv_usec = (wait_ms % 1000) * 1000;
	evtimer_add(drv->timer, &tv);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	run_io(arg);
}

/* Datagrams arrived: handle them at once, but leave libcoap's housekeeping
 * (coap_io_prepare_epoll: retransmissions, notifications, idle sessions)
 * to the timer, at most every HOUSEKEEPING_MS. It walks every session, so
 * doing it per datagram made each request cost O(devices): with 1,000
 * devices pulling at once the gateway fell behind and the devices'
 * retransmissions piled up. */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct coap_driver *drv = arg;
	struct epoll_event evs[32];
	int n = epoll_wait(fd, evs, (int)(sizeof(evs) / sizeof(evs[0])), 0);

	if (n > 0)
		coap_io_do_epoll(drv->ctx, evs, (size_t)n);
	while (drv->ndead)
		coap_session_release(drv->dead[--drv->ndead]);
	if (!drv->housekeeping_soon) {
		struct timeval tv = { 0, HOUSEKEEPING_MS * 1000 };

		drv->housekeeping_soon = 1;
		evtimer_add(drv->timer, &tv);
	}
}

/* base64url without padding, of len bytes into out (>= 4*len/3+4). */
static void
b64url(const unsigned char *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	int i;

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

static void
token_mac(struct coap_driver *drv, const char *dev, const char *job, int64_t expiry, char *out)
{
	char msg[512];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	int n = snprintf(msg, sizeof(msg), "%s|%s|%" PRId64, dev, job, expiry);

	if (n < 0 || (size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	HMAC(EVP_sha256(), drv->secret, (int)drv->secret_len, (unsigned char *)msg, (size_t)n, mac, &maclen);
	b64url(mac, maclen, out);
}

static void
issue_token(dg_delivery *d)
{
	d->expiry = (int64_t)time(NULL) + d->drv->token_lifetime_s;
	token_mac(d->drv, d->dev->id, d->job, d->expiry, d->mac);
}

/* RFC 6298 estimator; the RTO becomes the session's ACK timeout. */
static void
rtt_sample(struct cdev *dev, double ms)
{
	if (ms < 1)
		ms = 1; /* clock granularity (RFC 6298 G); 0 means "no sample" */
	if (dev->srtt == 0) {
		dev->srtt = ms;
		dev->rttvar = ms / 2;
	} else {
		double e = dev->srtt - ms;

		dev->rttvar = 0.75 * dev->rttvar + 0.25 * (e < 0 ? -e : e);
		dev->srtt = 0.875 * dev->srtt + 0.125 * ms;
	}
}

static unsigned
rto_ms(const struct cdev *dev)
{
	double r = dev->srtt == 0 ? RTO_INIT_MS : dev->srtt + 4 * dev->rttvar;

	if (r < RTO_MIN_MS)
		r = RTO_MIN_MS;
	if (r > RTO_MAX_MS)
		r = RTO_MAX_MS;
	return (unsigned)r;
}

/* The ACK timeout of libcoap's own CON messages on s (notifications):
 * libcoap refuses values under 1 s, so this only matters on links slower
 * than that. Push requests do not use it (push_send). */
static void
apply_rto(coap_session_t *s, const struct cdev *dev)
{
#ifdef HAVE_COAP_SESSION_SET_ACK_TIMEOUT
	unsigned ms = rto_ms(dev) < ACK_TIMEOUT_MIN_MS ? ACK_TIMEOUT_MIN_MS : rto_ms(dev);
	coap_fixed_point_t t = { (uint16_t)(ms / 1000), (uint16_t)(ms % 1000) };

	coap_session_set_ack_timeout(s, t);
#else
	(void)s;
	(void)dev;
#endif
}

static void
set_text(coap_pdu_t *resp, int code, const char *text)
{
	coap_pdu_set_code(resp, (coap_pdu_code_t)COAP_RESPONSE_CODE(code));
	if (text)
		coap_add_data(resp, strlen(text), (const uint8_t *)text);
}

static void
add_uint_option(coap_pdu_t *pdu, coap_option_num_t num, uint32_t v)
{
	uint8_t buf[4];

	coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof(buf), v), buf);
}

/* The PSK identity of a DTLS session (NUL-terminated into out), or "" for
 * plain UDP. Returns 1 for DTLS. */
static int
session_identity(coap_session_t *s, char *out, size_t outlen)
{
	const coap_bin_const_t *id;

	out[0] = '\0';
	if (coap_session_get_proto(s) != COAP_PROTO_DTLS)
		return 0;
	id = coap_session_get_psk_identity(s);
	if (id && id->length < outlen) {
		memcpy(out, id->s, id->length);
		out[id->length] = '\0';
	}
	return 1;
}

/* May this session act for dev? 0, or the CoAP code to refuse with. */
static int
check_access(coap_session_t *s, const struct cdev *dev)
{
	char ident[DG_TOPIC_ID_MAX + 2];

	if (session_identity(s, ident, sizeof(ident)))
		return strcmp(ident, dev->id) == 0 ? 0 : 403;
	return dev->psk_required ? 401 : 0;
}

/* ---- deliveries ------------------------------------------------------- */

/* The mapping of the image at path (size bytes, SHA-256 sha): shared if
 * mapped already. NULL with *err set when unreadable or of another size. */
static struct imgmap *
map_get(struct coap_driver *drv, const char *path, const char *sha, uint64_t size, dg_err *err)
{
	struct imgmap *m;
	struct stat st;
	int fd;

	for (m = drv->maps; m; m = m->next) {
		if (m->size == size && sha[0] && strcmp(m->sha256, sha) == 0) {
			m->refs++;
			return m;
		}
	}
	if (!(m = calloc(1, sizeof(*m)))) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
		*err = fd < 0 ? dg_err_from_errno(errno) : DG_ERR_INVAL;
		goto fail;
	}
	if ((m->map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		m->map = NULL;
		*err = dg_err_from_errno(errno);
		goto fail;
	}
	close(fd);
	snprintf(m->sha256, sizeof(m->sha256), "%s", sha);
	m->size = size;
	m->refs = 1;
	m->next = drv->maps;
	drv->maps = m;
	return m;
fail:
	if (fd >= 0)
		close(fd);
	free(m);
	return NULL;
}

static void
map_put(struct coap_driver *drv, struct imgmap *m)
{
	struct imgmap **pp;

	if (!m || --m->refs > 0)
		return;
	for (pp = &drv->maps; *pp; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	munmap(m->map, m->size);
	free(m);
}

static void
free_delivery(dg_delivery *d)
{
	dg_delivery **pp;

	if (!d)
		return;
	for (pp = &d->drv->active; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			d->drv->nactive--;
			break;
		}
	}
	if (d->dev && d->dev->d == d)
		d->dev->d = NULL;
	if (d->timer)
		event_free(d->timer);
	if (d->rtx)
		event_free(d->rtx);
	map_put(d->drv, d->img);
	if (d->sess) {
		struct coap_driver *drv = d->drv;

		coap_session_set_app_data(d->sess, NULL);
		if (drv->ndead == drv->dead_cap) {
			size_t cap = drv->dead_cap ? drv->dead_cap * 2 : 16;
			coap_session_t **n = realloc(drv->dead, cap * sizeof(*n));

			if (n) {
				drv->dead = n;
				drv->dead_cap = cap;
			}
		}
		if (drv->ndead < drv->dead_cap)
			drv->dead[drv->ndead++] = d->sess;
		/* else: leaked until the context is freed, never used again */
		kick(drv);
	}
	free(d->job);
	free(d->version);
	free(d);
}

/* Report the outcome once, then forget the delivery. */
static void
finish(dg_delivery *d, int ok, const char *version, uint32_t ext, const char *detail)
{
	struct cdev *dev = d->dev;
	struct coap_driver *drv = d->drv;
	dg_delivery_events ev = d->ev;
	void *arg = d->arg;
	char v[64];

	snprintf(v, sizeof(v), "%s", version ? version : "");
	if (set_str(&dev->last_job, d->job) != 0)
		dg_log_warn("%s: coap: out of memory: job %s not remembered", dev->id, d->job);
	dev->last_ok = ok;
	if (ok && *v && set_str(&dev->version, v) != 0)
		dg_log_warn("%s: coap: out of memory: version %s not remembered", dev->id, v);
	if (ok)
		set_sha(dev, d->sha256);
	dg_log_info("%s: coap: job %s %s%s%s", dev->id, d->job, ok ? "installed" : "failed",
	    detail ? ": " : "", detail ? detail : "");
	dev->d = NULL;
	free_delivery(d);
	if (dev->state)
		coap_resource_notify_observers(dev->state, NULL);
	kick(drv);
	ev.done(arg, ok, *v ? v : NULL, ext, detail);
}

static void
on_delivery_timeout(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;

	if (d->installing < 0)
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_NO_TARGET, "push device without an address (not registered)");
	else
		finish(d, 0, NULL, DG_DRIVER_EXT_TIMEOUT, "timed out");
}

static void
note_progress(dg_delivery *d, uint64_t hi)
{
	if (hi > d->served_hi) {
		d->served_hi = hi;
		d->ev.progress(d->arg, DG_DELIVERY_TRANSFERRING, hi, d->size);
	}
	if (!d->installing && d->served_hi >= d->size && d->dev->mode == DG_COAP_PULL) {
		d->installing = 1;
		d->ev.progress(d->arg, DG_DELIVERY_INSTALLING, 0, 0);
	}
}

/* ---- push: Block1 PUT, then the install trigger ------------------------ */

static int
add_path(coap_pdu_t *pdu, const char *path)
{
	unsigned char buf[512];
	size_t buflen = sizeof(buf);
	unsigned char *p = buf;
	int n;

	while (*path == '/')
		path++;
	if (!*path)
		return 0;
	n = coap_split_path((const uint8_t *)path, strlen(path), buf, &buflen);
	if (n < 0)
		return -1;
	while (n--) {
		coap_add_option(pdu, COAP_OPTION_URI_PATH, coap_opt_length(p), coap_opt_value(p));
		p += coap_opt_size(p);
	}
	return 0;
}

static void
ms_to_tv(unsigned ms, struct timeval *tv)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* ms left of the outstanding request's transmit span (0: spent; a few ms
 * of slack between libevent's clock and ours) */
static unsigned
span_left(const dg_delivery *d, uint64_t now)
{
	uint64_t span = (uint64_t)d->drv->span_s * 1000, used = now - d->first_at + 5;

	return used >= span ? 0 : (unsigned)(span - used);
}

/* Send the outstanding request: the next block, or the install trigger.
 * A retransmission repeats it with the same token (an answer to any copy
 * completes it) and a new message id. Returns 0, or -1 (out of memory). */
static int
push_send(dg_delivery *d, int retransmit)
{
	uint64_t off, now = dg_util_now_ms();
	coap_pdu_t *pdu;
	struct timeval tv;
	size_t bs, len;
	int more;

	if (!retransmit) {
		/* fit the block into the session's PDU (DTLS takes its share) */
		while (d->szx > 0 && ((size_t)1 << (d->szx + 4)) + 64 > coap_session_max_pdu_size(d->sess)) {
			d->szx--;
			d->next_num *= 2;
		}
		coap_session_new_token(d->sess, &d->toklen, d->tok);
		d->tries = 0;
		d->first_at = now;
		d->awaiting = 1;
		/* rto_cur: from the estimate, or still backed off (on_response) */
	}
	bs = (size_t)1 << (d->szx + 4);
	off = (uint64_t)d->next_num * bs;
	pdu = coap_pdu_init(COAP_MESSAGE_NON, d->trigger_sent ? COAP_REQUEST_CODE_POST : COAP_REQUEST_CODE_PUT,
	    coap_new_message_id(d->sess), coap_session_max_pdu_size(d->sess));
	if (!pdu)
		return -1;
	coap_add_token(pdu, d->toklen, d->tok);
	if (d->trigger_sent) {
		add_path(pdu, d->drv->install_path);
	} else {
		add_path(pdu, d->path);
		add_uint_option(pdu, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_OCTET_STREAM);
		len = off < d->size ? (size_t)(d->size - off < bs ? d->size - off : bs) : 0;
		more = off + len < d->size;
		add_uint_option(pdu, COAP_OPTION_BLOCK1, (d->next_num << 4) | (more ? 8u : 0u) | d->szx);
		if (d->next_num == 0)
			add_uint_option(pdu, COAP_OPTION_SIZE1, (uint32_t)d->size);
		if (len && !coap_add_data(pdu, len, d->map + off)) {
			coap_delete_pdu(pdu);
			return -1;
		}
	}
	d->sent_at = now;
	d->tries++;
	if (retransmit)
		d->retransmits++;
	/* a failed send (e.g. ICMP unreachable seen on the socket) counts as a
	 * lost datagram: the span decides when to give up */
	if (!d->trigger_sent && mid_transfer_fault(d, off))
		coap_delete_pdu(pdu);
	else if (coap_send(d->sess, pdu) == COAP_INVALID_MID)
		dg_log_debug("%s: coap: push send failed (try %u)", d->dev->id, d->tries);
	/* the last wait ends with the span, so a dead device fails on time */
	ms_to_tv(d->rto_cur < span_left(d, now) ? d->rto_cur : span_left(d, now) + 5, &tv);
	evtimer_add(d->rtx, &tv);
	kick(d->drv);
	return 0;
}

static void
push_next(dg_delivery *d)
{
	if (push_send(d, 0) != 0)
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_UNREACHABLE, "out of memory");
}

/* The outstanding request (or the DTLS handshake) timed out. */
static void
on_rtx(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;
	uint64_t now = dg_util_now_ms();
	struct timeval tv;
	char detail[192];

	if (span_left(d, now) == 0) {
		if (!d->connected) {
			snprintf(detail, sizeof(detail), "DTLS handshake with the device did not complete in %d s",
			    d->drv->span_s);
			finish(d, 0, NULL, DG_DRIVER_EXT_COAP_DTLS, detail);
		} else {
			snprintf(detail, sizeof(detail), "the device did not answer the %s in %d s (%u transmissions)",
			    d->trigger_sent ? "install trigger" : "image upload", d->drv->span_s, d->tries);
			finish(d, 0, NULL, DG_DRIVER_EXT_COAP_UNREACHABLE, detail);
		}
		return;
	}
	if (!d->connected) {
		/* libcoap (OpenSSL) retransmits the handshake itself */
		ms_to_tv(span_left(d, now) + 5, &tv);
		evtimer_add(d->rtx, &tv);
		return;
	}
	d->rto_cur = d->rto_cur * 2 > RTO_MAX_MS ? RTO_MAX_MS : d->rto_cur * 2;
	if (push_send(d, 1) != 0)
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_UNREACHABLE, "out of memory");
}

/* Open the push session (DTLS with the device's PSK for coaps://) and send
 * the first block, or wait for the handshake. 0, or -1 (logged). */
static int
push_start(dg_delivery *d)
{
	struct cdev *dev = d->dev;
	const char *target = dev->address ? dev->address : dev->reg_address;
	coap_uri_t uri;
	coap_address_t dst;
	struct addrinfo hints, *res = NULL;
	char host[256], port[8];
	struct timeval tv;

	if (!target)
		return -1;
	if (coap_split_uri((const uint8_t *)target, strlen(target), &uri) < 0 ||
	    (uri.scheme != COAP_URI_SCHEME_COAP && uri.scheme != COAP_URI_SCHEME_COAPS) ||
	    uri.host.length >= sizeof(host) || uri.path.length >= sizeof(d->path)) {
		dg_log_err("%s: coap: push address '%s' is not coap[s]://host:port/path", dev->id, target);
		return -1;
	}
	d->dtls = uri.scheme == COAP_URI_SCHEME_COAPS;
	if (d->dtls && (dev->psk_len == 0 || !coap_dtls_is_supported())) {
		dg_log_err("%s: coap: push address %s is coaps:// but the device has no psk", dev->id, target);
		return -1;
	}
	if (!d->dtls && dev->psk_required) {
		dg_log_err("%s: coap: the device requires DTLS but its push address %s is not coaps://", dev->id,
		    target);
		return -1;
	}
	memcpy(host, uri.host.s, uri.host.length);
	host[uri.host.length] = '\0';
	memcpy(d->path, uri.path.s, uri.path.length);
	d->path[uri.path.length] = '\0';
	snprintf(port, sizeof(port), "%u", uri.port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
		dg_log_err("%s: coap: cannot resolve push address %s", dev->id, host);
		return -1;
	}
	coap_address_init(&dst);
	dst.size = res->ai_addrlen;
	memcpy(&dst.addr, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (!(d->rtx = evtimer_new(d->drv->evbase, on_rtx, d)))
		return -1;
	if (d->dtls) {
		coap_dtls_cpsk_t cp;

		memset(&cp, 0, sizeof(cp));
		cp.version = COAP_DTLS_CPSK_SETUP_VERSION;
		cp.psk_info.identity.s = (const uint8_t *)dev->id;
		cp.psk_info.identity.length = strlen(dev->id);
		cp.psk_info.key.s = dev->psk;
		cp.psk_info.key.length = dev->psk_len;
		d->sess = coap_new_client_session_psk2(d->drv->ctx, NULL, &dst, COAP_PROTO_DTLS, &cp);
	} else {
		d->sess = coap_new_client_session(d->drv->ctx, NULL, &dst, COAP_PROTO_UDP);
	}
	if (!d->sess) {
		dg_log_err("%s: coap: cannot open a %s session to %s", dev->id, d->dtls ? "DTLS" : "UDP", target);
		return -1;
	}
	coap_session_set_app_data(d->sess, d);
	d->szx = dev->szx;
	d->rto_cur = rto_ms(dev);
	if (d->dtls) {
		/* the first block goes when the handshake is done (on_event) */
		d->first_at = dg_util_now_ms();
		ms_to_tv((unsigned)d->drv->span_s * 1000, &tv);
		evtimer_add(d->rtx, &tv);
		kick(d->drv);
		return 0;
	}
	d->connected = 1;
	return push_send(d, 0);
}

/* The delivery a client (push) session belongs to, or NULL. */
static dg_delivery *
push_of(coap_session_t *s)
{
	if (coap_session_get_type(s) != COAP_SESSION_TYPE_CLIENT)
		return NULL;
	return coap_session_get_app_data(s);
}

static coap_response_t
on_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *rcvd, const coap_mid_t mid)
{
	dg_delivery *d = push_of(s);
	coap_bin_const_t tok = coap_pdu_get_token(rcvd);
	coap_pdu_code_t code = coap_pdu_get_code(rcvd);
	unsigned cls = code >> 5, det = code & 0x1f;
	uint64_t now = dg_util_now_ms();
	coap_block_t b;
	char detail[96];

	if (!d || !d->awaiting || tok.length != d->toklen || memcmp(tok.s, d->tok, d->toklen) != 0)
		return COAP_RESPONSE_OK; /* late answer to an earlier request */
	evtimer_del(d->rtx);
	d->awaiting = 0;
	/* Karn: no sample from a retransmitted request, and its backed-off
	 * RTO stays until one comes (else a link slower than the RTO would
	 * never be measured) */
	if (d->tries == 1) {
		rtt_sample(d->dev, (double)(now - d->sent_at));
		d->rto_cur = rto_ms(d->dev);
	}
	if (cls != 2) {
		snprintf(detail, sizeof(detail), "device answered %u.%02u to the %s", cls, det,
		    d->trigger_sent ? "install trigger" : "image upload");
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_CODE(cls, det), detail);
		return COAP_RESPONSE_OK;
	}
	if (d->trigger_sent) {
		if (!d->installing) {
			d->installing = 1;
			d->ev.progress(d->arg, DG_DELIVERY_INSTALLING, 0, 0);
		}
		return COAP_RESPONSE_OK; /* now the device's report completes it */
	}
	{
		size_t bs = (size_t)1 << (d->szx + 4);
		uint64_t acked = ((uint64_t)d->next_num + 1) * bs;

		if (acked > d->size)
			acked = d->size;
		note_progress(d, acked);
		/* the device may ask for smaller blocks (RFC 7959 2.5) */
		if (coap_get_block(rcvd, COAP_OPTION_BLOCK1, &b) && b.szx < d->szx) {
			d->szx = b.szx;
			bs = (size_t)1 << (d->szx + 4);
		}
		if (acked < d->size) {
			d->next_num = (uint32_t)(acked / bs);
		} else {
			dg_log_info("%s: coap: pushed %" PRIu64 " bytes, %lu retransmissions, srtt %.1f ms, rto %u ms",
			    d->dev->id, d->size, d->retransmits, d->dev->srtt, rto_ms(d->dev));
			if (d->drv->install_path && *d->drv->install_path) {
				d->trigger_sent = 1;
			} else {
				if (!d->installing) {
					d->installing = 1;
					d->ev.progress(d->arg, DG_DELIVERY_INSTALLING, 0, 0);
				}
				return COAP_RESPONSE_OK;
			}
		}
	}
	push_next(d);
	return COAP_RESPONSE_OK;
}

static void
on_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason, const coap_mid_t mid)
{
	dg_delivery *d = push_of(s);
	coap_bin_const_t tok;

	if (!d || !sent || !d->awaiting)
		return;
	tok = coap_pdu_get_token(sent);
	if (tok.length != d->toklen || memcmp(tok.s, d->tok, d->toklen) != 0)
		return;
	if (reason == COAP_NACK_RST)
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_UNREACHABLE, "the device reset the push request");
	else if (reason == COAP_NACK_TLS_FAILED)
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_DTLS, "DTLS with the device failed");
	/* other reasons: the retransmission timer decides */
}

/* DTLS progress of push sessions. */
static int
on_event(coap_session_t *s, const coap_event_t ev)
{
	dg_delivery *d = push_of(s);

	if (!d || !d->dtls)
		return 0;
	switch (ev) {
	case COAP_EVENT_DTLS_CONNECTED:
	case COAP_EVENT_SESSION_CONNECTED:
		if (!d->connected) {
			d->connected = 1;
			evtimer_del(d->rtx);
			dg_log_debug("%s: coap: DTLS session for the push established", d->dev->id);
			push_next(d);
		}
		break;
	case COAP_EVENT_DTLS_CLOSED:
	case COAP_EVENT_DTLS_ERROR:
	case COAP_EVENT_SESSION_FAILED:
		finish(d, 0, NULL, DG_DRIVER_EXT_COAP_DTLS, d->connected ? "the device closed the DTLS session" :
		    "DTLS handshake with the device failed (wrong key?)");
		break;
	default:
		break;
	}
	return 0;
}

/* ---- resources -------------------------------------------------------- */

static void
state_json(coap_session_t *s, struct cdev *dev, coap_pdu_t *resp)
{
	json_t *o = json_object();
	dg_delivery *d = dev->d;
	char *txt;

	if (!o) {
		set_text(resp, 500, NULL);
		return;
	}
	if (d) {
		json_object_set_new(o, "jobId", json_string(d->job));
		json_object_set_new(o, "version", json_string(d->version ? d->version : ""));
		json_object_set_new(o, "size", json_integer((json_int_t)d->size));
		json_object_set_new(o, "sha256", json_string(d->sha256));
		json_object_set_new(o, "mode", json_string(dev->mode == DG_COAP_PUSH ? "push" : "pull"));
		if (dev->mode == DG_COAP_PULL) {
			const coap_address_t *la = coap_session_get_addr_local(s);
			char host[INET6_ADDRSTRLEN + 2] = "localhost", url[512];
			char serv[8] = "5683";
			int dtls = coap_session_get_proto(s) == COAP_PROTO_DTLS;

			if (la && getnameinfo(&la->addr.sa, la->size, host + 1, sizeof(host) - 2, serv,
			    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
				if (strchr(host + 1, ':')) {
					host[0] = '[';
					strcat(host, "]");
				} else {
					memmove(host, host + 1, strlen(host + 1) + 1);
				}
			}
			/* re-issue a token past half its life */
			if (d->expiry - (int64_t)time(NULL) < d->drv->token_lifetime_s / 2)
				issue_token(d);
			snprintf(url, sizeof(url), "%s://%s:%s/fw/%s.%" PRId64, dtls ? "coaps" : "coap",
			    host, serv, d->mac, d->expiry);
			json_object_set_new(o, "softwareURL", json_string(url));
		}
	} else {
		json_object_set_new(o, "version", json_string(dev->version ? dev->version : ""));
		if (dev->last_job) {
			json_object_set_new(o, "jobId", json_string(dev->last_job));
			json_object_set_new(o, "status", json_string(dev->last_ok ? "SUCCEEDED" : "FAILED"));
		}
	}
	txt = dg_json_dumps(o);
	json_decref(o);
	if (!txt) {
		set_text(resp, 500, NULL);
		return;
	}
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	add_uint_option(resp, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_JSON);
	coap_add_data(resp, strlen(txt), (const uint8_t *)txt);
	free(txt);
}

static void
hnd_state_get(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *query, coap_pdu_t *resp)
{
	struct cdev *dev = coap_resource_get_userdata(r);
	int code = check_access(s, dev);

	if (code) {
		set_text(resp, code, code == 401 ? "DTLS required" : "identity mismatch");
		return;
	}
	apply_rto(s, dev);
	state_json(s, dev, resp);
}

static void
hnd_state_report(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *query, coap_pdu_t *resp)
{
	struct cdev *dev = coap_resource_get_userdata(r);
	const uint8_t *data = NULL;
	size_t len = 0;
	dg_coap_report rep;
	int code = check_access(s, dev);
	dg_delivery *d = dev->d;

	if (code) {
		set_text(resp, code, code == 401 ? "DTLS required" : "identity mismatch");
		return;
	}
	if (!coap_get_data(req, &len, &data) || dg_coap_parse_report(data, len, &rep) != DG_OK) {
		set_text(resp, len > DG_COAP_BODY_MAX ? 413 : 400,
		    "expected {\"jobId\",\"status\"} or jobID:<id> SUCCESS|FAILURE");
		return;
	}
	if (!d || strcmp(d->job, rep.job) != 0) {
		/* a retransmitted report of the job that just finished */
		if (dev->last_job && strcmp(dev->last_job, rep.job) == 0 && dev->last_ok == (unsigned)rep.ok)
			set_text(resp, 204, NULL);
		else
			set_text(resp, 409, "no such job in progress");
		return;
	}
	set_text(resp, 204, NULL);
	finish(d, rep.ok, rep.ok ? (*rep.version ? rep.version : d->version) : rep.version[0] ? rep.version : NULL,
	    rep.ok ? 0 : DG_DRIVER_EXT_COAP_REPORTED_FAILURE,
	    rep.ok ? "device reported SUCCESS" : "device reported FAILURE");
}

static dg_err create_state_resource(struct coap_driver *drv, struct cdev *dev);

static void
hnd_rd(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *query, coap_pdu_t *resp)
{
	struct coap_driver *drv = coap_resource_get_userdata(r);
	const uint8_t *data = NULL;
	size_t len = 0;
	const char *why;
	const char *fw;
	const char *id;
	dg_coap_reg reg;
	struct cdev *dev;
	dg_err err;
	int code;

	coap_get_data(req, &len, &data);
	err = dg_coap_parse_rd(query ? (const char *)query->s : NULL, query ? query->length : 0,
	    data, len, &reg, &why);
	if (err != DG_OK) {
		set_text(resp, err == DG_ERR_TOOBIG ? 413 : err == DG_ERR_NOMEM ? 500 : 400, why);
		return;
	}
	id = reg.id;
	fw = reg.firmware[0] ? reg.firmware : NULL;
	if (!(dev = find_dev(drv, id, strlen(id)))) {
		if (!drv->allow_unknown || coap_session_get_proto(s) == COAP_PROTO_DTLS) {
			set_text(resp, 403, "unknown device");
			return;
		}
		if (dg_driver_coap_add_device(&drv->base, id, NULL, 0, 0, DG_COAP_PULL, NULL) != DG_OK ||
		    !(dev = find_dev(drv, id, strlen(id)))) {
			set_text(resp, 500, NULL);
			return;
		}
	}
	if ((code = check_access(s, dev)) != 0) {
		set_text(resp, code, code == 401 ? "DTLS required" : "identity mismatch");
		return;
	}
	if (reg.mode >= 0)
		dev->mode = reg.mode == 1;
	dev->szx = reg.szx >= 0 ? (unsigned)reg.szx : DEFAULT_SZX;
	if (reg.has_version && set_str(&dev->version, reg.version) != 0) {
		set_text(resp, 500, NULL);
		return;
	}
	if (reg.sha256[0])
		set_sha(dev, reg.sha256);
	if (fw) {
		char url[300];

		if (strncmp(fw, "coap://", 7) == 0 || strncmp(fw, "coaps://", 8) == 0) {
			snprintf(url, sizeof(url), "%s", fw);
		} else {
			const coap_address_t *ra = coap_session_get_addr_remote(s);
			char host[INET6_ADDRSTRLEN], serv[8];

			if (!ra || getnameinfo(&ra->addr.sa, ra->size, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
				set_text(resp, 500, NULL);
				return;
			}
			snprintf(url, sizeof(url), strchr(host, ':') ? "%s://[%s]:%s/%s" : "%s://%s:%s/%s",
			    coap_session_get_proto(s) == COAP_PROTO_DTLS ? "coaps" : "coap",
			    host, serv, fw[0] == '/' ? fw + 1 : fw);
		}
		free(dev->reg_address);
		dev->reg_address = strdup(url);
	}
	if (!dev->registered) {
		dev->registered = 1;
		drv->nregistered++;
	}
	apply_rto(s, dev);
	dg_log_info("%s: coap: registered (%s, %u-byte blocks%s%s)", dev->id,
	    dev->mode == DG_COAP_PUSH ? "push" : "pull", 1u << (dev->szx + 4),
	    dev->version ? ", version " : "", dev->version ? dev->version : "");
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CREATED);
	coap_add_option(resp, COAP_OPTION_LOCATION_PATH, 5, (const uint8_t *)"state");
	coap_add_option(resp, COAP_OPTION_LOCATION_PATH, strlen(dev->id), (const uint8_t *)dev->id);
}

/* GET fw/<mac>.<expiry>, Block2 from the mapping. */
static void
serve_fw(struct coap_driver *drv, coap_session_t *s, const char *tok, size_t toklen,
    const coap_pdu_t *req, coap_pdu_t *resp)
{
	char mac[48], calc[48];
	const char *dot = memchr(tok, '.', toklen);
	int64_t expiry;
	char num[24];
	dg_delivery *d;
	coap_block_t b;
	unsigned szx;
	uint32_t n;
	size_t bs, len;
	uint64_t off;
	int code;

	if (!dot || (size_t)(dot - tok) >= sizeof(mac) || toklen - (size_t)(dot - tok) - 1 >= sizeof(num) ||
	    dot == tok) {
		set_text(resp, 404, NULL);
		return;
	}
	memcpy(mac, tok, (size_t)(dot - tok));
	mac[dot - tok] = '\0';
	memcpy(num, dot + 1, toklen - (size_t)(dot - tok) - 1);
	num[toklen - (size_t)(dot - tok) - 1] = '\0';
	if (dg_util_parse_i64(num, 0, INT64_MAX / 2, &expiry) != DG_OK) {
		set_text(resp, 404, NULL);
		return;
	}
	/* the current token of a delivery; else an older one of the same
	 * delivery (re-issued, or expired) */
	for (d = drv->active; d; d = d->next)
		if (d->expiry == expiry && CRYPTO_memcmp(d->mac, mac, strlen(d->mac) + 1) == 0)
			break;
	if (!d) {
		for (d = drv->active; d; d = d->next) {
			if (d->dev->mode != DG_COAP_PULL || strlen(mac) != strlen(d->mac))
				continue;
			token_mac(drv, d->dev->id, d->job, expiry, calc);
			if (CRYPTO_memcmp(calc, mac, strlen(calc)) == 0)
				break;
		}
	}
	if (!d) {
		set_text(resp, 404, NULL);
		return;
	}
	if ((code = check_access(s, d->dev)) != 0) {
		set_text(resp, code == 401 ? 401 : 403, code == 401 ? "DTLS required" : "token of another device");
		return;
	}
	if (expiry < (int64_t)time(NULL)) {
		set_text(resp, 401, "token expired");
		return;
	}
	szx = d->dev->szx;
	n = 0;
	if (coap_get_block(req, COAP_OPTION_BLOCK2, &b)) {
		n = b.num;
		if (b.szx < szx)
			szx = b.szx;
		else if (b.szx > szx) /* it asked for bigger blocks: renumber */
			n = (uint32_t)(((uint64_t)b.num << (b.szx - szx)));
	}
	bs = (size_t)1 << (szx + 4);
	/* fit the block into the session's PDU size */
	while (szx > 0 && bs + 64 > coap_session_max_pdu_size(s)) {
		szx--;
		n *= 2;
		bs >>= 1;
	}
	off = (uint64_t)n * bs;
	if (off > d->size || (off == d->size && d->size != 0)) {
		set_text(resp, 402, "block out of range");
		return;
	}
	len = (size_t)(d->size - off < bs ? d->size - off : bs);
	if (mid_transfer_fault(d, off)) {
		set_text(resp, 503, "fault injected");
		return;
	}
	/* RTT: a request for the next block follows the previous answer */
	{
		uint64_t now = dg_util_now_ms();

		if (d->dev->last_block_at && n == d->dev->last_block_num + 1 &&
		    now - d->dev->last_block_at < rto_ms(d->dev))
			rtt_sample(d->dev, (double)(now - d->dev->last_block_at));
		d->dev->last_block_at = now;
		d->dev->last_block_num = n;
		apply_rto(s, d->dev);
	}
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
	{
		/* ETag: the image's hash prefix, so a resumed download can tell
		 * that the image did not change */
		char hex[9];
		unsigned char etag[4];

		memcpy(hex, d->sha256, 8);
		hex[8] = '\0';
		if (dg_util_hex_decode(hex, etag, 4) == DG_OK)
			coap_add_option(resp, COAP_OPTION_ETAG, 4, etag);
	}
	add_uint_option(resp, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_OCTET_STREAM);
	add_uint_option(resp, COAP_OPTION_BLOCK2, (n << 4) | (off + len < d->size ? 8u : 0u) | szx);
	if (n == 0)
		add_uint_option(resp, COAP_OPTION_SIZE2, (uint32_t)d->size);
	if (len)
		coap_add_data(resp, len, d->map + off);
	note_progress(d, off + len);
}

static void
hnd_unknown_get(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *query, coap_pdu_t *resp)
{
	struct coap_driver *drv = coap_get_app_data(coap_session_get_context(s));
	coap_string_t *path = coap_get_uri_path(req);

	if (path && path->length > 3 && memcmp(path->s, "fw/", 3) == 0 &&
	    !memchr(path->s + 3, '/', path->length - 3))
		serve_fw(drv, s, (const char *)path->s + 3, path->length - 3, req, resp);
	else
		set_text(resp, 404, NULL);
	coap_delete_string(path);
}

static void
hnd_unknown_other(coap_resource_t *r, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *query, coap_pdu_t *resp)
{
	set_text(resp, 404, NULL);
}

static dg_err
create_state_resource(struct coap_driver *drv, struct cdev *dev)
{
	char path[DG_TOPIC_ID_MAX + 8];
	coap_str_const_t *uri;
	coap_resource_t *r;

	snprintf(path, sizeof(path), "state/%s", dev->id);
	if (!(uri = coap_new_str_const((const uint8_t *)path, strlen(path))))
		return DG_ERR_NOMEM;
	if (!(r = coap_resource_init(uri, COAP_RESOURCE_FLAGS_RELEASE_URI))) {
		coap_delete_str_const(uri);
		return DG_ERR_NOMEM;
	}
	coap_resource_set_userdata(r, dev);
	coap_resource_set_get_observable(r, 1);
	coap_register_request_handler(r, COAP_REQUEST_GET, hnd_state_get);
	coap_register_request_handler(r, COAP_REQUEST_POST, hnd_state_report);
	coap_register_request_handler(r, COAP_REQUEST_PUT, hnd_state_report);
	coap_add_resource(drv->ctx, r);
	dev->state = r;
	return DG_OK;
}

/* ---- DTLS: the key of the identity ------------------------------------ */

static const coap_bin_const_t *
psk_for_identity(coap_bin_const_t *identity, coap_session_t *s, void *arg)
{
	struct coap_driver *drv = arg;
	struct cdev *dev;

	if (!identity || !(dev = find_dev(drv, (const char *)identity->s, identity->length)) ||
	    dev->psk_len == 0) {
		dg_log_warn("coap: DTLS handshake with an unknown identity refused");
		return NULL;
	}
	drv->psk_out.s = dev->psk;
	drv->psk_out.length = dev->psk_len;
	return &drv->psk_out;
}

/* ---- the driver ------------------------------------------------------- */

static dg_delivery *
coap_deliver(dg_driver *base, const dg_delivery_req *req, const dg_delivery_events *ev,
    void *arg, dg_err *err)
{
	struct coap_driver *drv = (struct coap_driver *)base;
	struct cdev *dev = find_dev(drv, req->device_id, strlen(req->device_id));
	dg_delivery *d = NULL;
	struct timeval tv;

	if (!dev) {
		dg_log_err("%s: coap: not a coap device", req->device_id);
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (dev->d) {
		dg_log_err("%s: coap: job %s while job %s is in flight", dev->id, req->job_id, dev->d->job);
		*err = DG_ERR_BUSY;
		return NULL;
	}
	if (!(d = calloc(1, sizeof(*d))) || !(d->job = strdup(req->job_id)) ||
	    (req->version && !(d->version = strdup(req->version)))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	d->drv = drv;
	d->dev = dev;
	d->ev = *ev;
	d->arg = arg;
	d->size = req->image_size;
	snprintf(d->sha256, sizeof(d->sha256), "%s", req->sha256_hex ? req->sha256_hex : "");
	if (d->size > 0) {
		if (!(d->img = map_get(drv, req->image_path, d->sha256, d->size, err))) {
			dg_log_err("%s: coap: image %s unreadable or not %" PRIu64 " bytes", dev->id,
			    req->image_path, d->size);
			goto fail;
		}
		d->map = d->img->map;
	}
	if (!(d->timer = evtimer_new(drv->evbase, on_delivery_timeout, d))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	tv.tv_sec = req->timeout_s > 0 ? req->timeout_s : drv->default_timeout_s;
	tv.tv_usec = 0;
	evtimer_add(d->timer, &tv);
	issue_token(d);
	d->next = drv->active;
	drv->active = d;
	drv->nactive++;
	dev->d = d;
	dg_log_info("%s: coap: delivering job %s (%" PRIu64 " bytes, %s)", dev->id, d->job, d->size,
	    dev->mode == DG_COAP_PUSH ? "push" : "pull");
	if (dev->mode == DG_COAP_PUSH) {
		if (!dev->address && !dev->reg_address) {
			*err = DG_OK;
			/* reported from the loop, not from inside deliver() */
			tv.tv_sec = 0;
			d->installing = -1;
			evtimer_add(d->timer, &tv);
			return d;
		}
		if (push_start(d) != 0) {
			*err = DG_ERR_INVAL;
			goto fail;
		}
	}
	d->ev.progress(d->arg, DG_DELIVERY_TRANSFERRING, 0, d->size);
	if (dev->state)
		coap_resource_notify_observers(dev->state, NULL);
	kick(drv);
	*err = DG_OK;
	return d;
fail:
	free_delivery(d);
	return NULL;
}

static void
coap_cancel(dg_delivery *d)
{
	struct cdev *dev = d->dev;

	struct coap_driver *drv = d->drv;

	free_delivery(d);
	if (dev->state)
		coap_resource_notify_observers(dev->state, NULL);
	kick(drv);
}

static void
coap_free_driver(dg_driver *base)
{
	struct coap_driver *drv = (struct coap_driver *)base;
	size_t i;

	while (drv->active)
		free_delivery(drv->active);
	if (drv->io_ev)
		event_free(drv->io_ev);
	if (drv->timer)
		event_free(drv->timer);
	while (drv->ndead)
		coap_session_release(drv->dead[--drv->ndead]);
	free(drv->dead);
	if (drv->ctx)
		coap_free_context(drv->ctx);
	for (i = 0; i < NBUCKETS; i++) {
		struct cdev *d, *next;

		for (d = drv->buckets[i]; d; d = next) {
			next = d->hnext;
			if (d->psk)
				OPENSSL_cleanse(d->psk, d->psk_len);
			free(d->psk);
			free(d->version);
			free(d->last_job);
			free(d->address);
			free(d->reg_address);
			free(d);
		}
	}
	OPENSSL_cleanse(drv->secret, sizeof(drv->secret));
	free(drv->install_path);
	free(drv);
}

static const struct dg_driver_ops coap_ops = {
	"coap", coap_deliver, coap_cancel, coap_free_driver
};

dg_err
dg_driver_coap_add_device(dg_driver *base, const char *id, const unsigned char *psk, size_t psk_len,
    int psk_required, dg_coap_mode mode, const char *address)
{
	struct coap_driver *drv = (struct coap_driver *)base;
	struct cdev *dev;
	char *addr = NULL;
	unsigned char *key = NULL;
	size_t idlen;
	dg_err err;

	if (!base || base->ops != &coap_ops || !dg_topic_id_valid(id) || psk_len > MAX_PSK)
		return DG_ERR_INVAL;
	/* push over DTLS needs the key; a required key forbids plain UDP */
	if (mode == DG_COAP_PUSH && address &&
	    ((strncmp(address, "coaps://", 8) == 0 && psk_len == 0) ||
	    (strncmp(address, "coap://", 7) == 0 && psk_len && psk_required)))
		return DG_ERR_INVAL;
	if ((address && !(addr = strdup(address))) || (psk_len && !(key = malloc(psk_len)))) {
		free(addr);
		return DG_ERR_NOMEM;
	}
	if (psk_len)
		memcpy(key, psk, psk_len);
	if (!(dev = find_dev(drv, id, strlen(id)))) {
		unsigned h = hash_id(id);

		idlen = strlen(id);
		if (!(dev = calloc(1, sizeof(*dev) + idlen + 1))) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		memcpy(dev->id, id, idlen + 1);
		dev->szx = DEFAULT_SZX;
		if ((err = create_state_resource(drv, dev)) != DG_OK) {
			free(dev);
			goto fail;
		}
		dev->hnext = drv->buckets[h];
		drv->buckets[h] = dev;
		drv->ndevices++;
	}
	if (dev->psk)
		OPENSSL_cleanse(dev->psk, dev->psk_len);
	free(dev->psk);
	dev->psk = key;
	dev->psk_len = (uint8_t)psk_len;
	dev->psk_required = psk_len && psk_required;
	dev->mode = mode == DG_COAP_PUSH;
	free(dev->address);
	dev->address = addr;
	return DG_OK;
fail:
	if (key)
		OPENSSL_cleanse(key, psk_len);
	free(key);
	free(addr);
	return err;
}

void
dg_driver_coap_stats(dg_driver *base, size_t *devices, size_t *registered, size_t *active)
{
	struct coap_driver *drv = (struct coap_driver *)base;

	*devices = drv->ndevices;
	*registered = drv->nregistered;
	*active = drv->nactive;
}

/* "ADDR:PORT" or "[V6]:PORT" into a coap_address_t. */
static dg_err
parse_listen(const char *s, coap_address_t *out)
{
	char host[256];
	const char *colon, *h = s;
	size_t hl;
	int64_t port;
	struct addrinfo hints, *res = NULL;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return DG_ERR_COAP_ADDRESS;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		if (!(colon = strrchr(s, ':')))
			return DG_ERR_COAP_ADDRESS;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host) || dg_util_parse_i64(colon + 1, 0, 65535, &port) != DG_OK)
		return DG_ERR_COAP_ADDRESS;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
		return DG_ERR_COAP_ADDRESS;
	coap_address_init(out);
	out->size = res->ai_addrlen;
	memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return DG_OK;
}

static void
log_handler(coap_log_t level, const char *message)
{
	char buf[512];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", message);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (level <= LOG_ERR)
		dg_log_warn("libcoap: %s", buf);
	else
		dg_log_debug("libcoap: %s", buf);
}

dg_driver *
dg_driver_coap_new(struct event_base *base, const dg_coap_opts *o, dg_err *err)
{
	struct coap_driver *drv = NULL;
	coap_address_t addr;
	coap_resource_t *r;
	int fd;

	if (!o->listen && !o->dtls_listen) {
		dg_log_err("coap driver: no endpoint configured (coap-listen, coaps-listen)");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (o->dtls_listen && !coap_dtls_is_supported()) {
		dg_log_err("coap driver: coaps-listen given but libcoap has no DTLS");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(drv = calloc(1, sizeof(*drv)))) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	drv->base.ops = &coap_ops;
	drv->evbase = base;
	drv->token_lifetime_s = o->token_lifetime_s > 0 ? o->token_lifetime_s : 3600;
	drv->default_timeout_s = o->default_timeout_s > 0 ? o->default_timeout_s : 600;
	drv->allow_unknown = o->allow_unknown;
	drv->span_s = o->max_transmit_span_s > 0 ? o->max_transmit_span_s : DEFAULT_SPAN_S;
	if (!(drv->install_path = strdup(o->install_path ? o->install_path : "5/0/2"))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if (o->secret && o->secret_len) {
		drv->secret_len = o->secret_len < sizeof(drv->secret) ? o->secret_len : sizeof(drv->secret);
		memcpy(drv->secret, o->secret, drv->secret_len);
	} else {
		drv->secret_len = 32;
		if (RAND_bytes(drv->secret, 32) != 1) {
			*err = DG_ERR_COAP_SETUP;
			goto fail;
		}
	}
	coap_startup();
	coap_set_log_handler(log_handler);
	coap_set_log_level(dg_log_get_level() >= DG_LOG_DEBUG ? LOG_INFO : LOG_WARNING);
	coap_dtls_set_log_level(LOG_WARNING);
	if (!(drv->ctx = coap_new_context(NULL))) {
		*err = DG_ERR_COAP_SETUP;
		goto fail;
	}
	coap_set_app_data(drv->ctx, drv);
	coap_context_set_max_idle_sessions(drv->ctx, 20000);
	coap_register_response_handler(drv->ctx, on_response);
	coap_register_nack_handler(drv->ctx, on_nack);
	coap_register_event_handler(drv->ctx, on_event);
	if (o->listen) {
		if ((*err = parse_listen(o->listen, &addr)) != DG_OK) {
			dg_log_err("coap-listen '%s': expected ADDR:PORT", o->listen);
			goto fail;
		}
		if (!coap_new_endpoint(drv->ctx, &addr, COAP_PROTO_UDP)) {
			dg_log_err("coap-listen %s: cannot bind", o->listen);
			*err = DG_ERR_COAP_SETUP;
			goto fail;
		}
	}
	if (o->dtls_listen) {
		coap_dtls_spsk_t sp;

		if ((*err = parse_listen(o->dtls_listen, &addr)) != DG_OK) {
			dg_log_err("coaps-listen '%s': expected ADDR:PORT", o->dtls_listen);
			goto fail;
		}
		memset(&sp, 0, sizeof(sp));
		sp.version = COAP_DTLS_SPSK_SETUP_VERSION;
		sp.validate_id_call_back = psk_for_identity;
		sp.id_call_back_arg = drv;
		sp.psk_info.hint.s = (const uint8_t *)"deltagate";
		sp.psk_info.hint.length = 9;
		if (!coap_context_set_psk2(drv->ctx, &sp) ||
		    !coap_new_endpoint(drv->ctx, &addr, COAP_PROTO_DTLS)) {
			dg_log_err("coaps-listen %s: cannot set up DTLS or bind", o->dtls_listen);
			*err = DG_ERR_COAP_SETUP;
			goto fail;
		}
	}
	if (!(r = coap_resource_init(coap_make_str_const("rd"), 0))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	coap_resource_set_userdata(r, drv);
	coap_register_request_handler(r, COAP_REQUEST_POST, hnd_rd);
	coap_add_resource(drv->ctx, r);
	if (!(r = coap_resource_unknown_init(hnd_unknown_other))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	coap_register_request_handler(r, COAP_REQUEST_GET, hnd_unknown_get);
	coap_register_request_handler(r, COAP_REQUEST_POST, hnd_unknown_other);
	coap_add_resource(drv->ctx, r);
	if ((fd = coap_context_get_coap_fd(drv->ctx)) < 0) {
		dg_log_err("coap driver: libcoap is built without epoll");
		*err = DG_ERR_COAP_SETUP;
		goto fail;
	}
	drv->io_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, drv);
	drv->timer = evtimer_new(base, on_timer, drv);
	if (!drv->io_ev || !drv->timer || event_add(drv->io_ev, NULL) != 0) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	kick(drv);
	dg_log_info("coap: listening on %s%s%s", o->listen ? o->listen : "",
	    o->listen && o->dtls_listen ? " and DTLS " : o->dtls_listen ? "DTLS " : "",
	    o->dtls_listen ? o->dtls_listen : "");
	*err = DG_OK;
	return &drv->base;
fail:
	coap_free_driver(&drv->base);
	return NULL;
}
