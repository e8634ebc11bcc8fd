/* coap-device - simulate N constrained devices updating through deltagated's
 * CoAP driver (docs/protocol.md, "CoAP (downstream)").
 *
 * Each device registers (POST /rd?ep=<id>), observes /state/<id>, and when
 * a job appears downloads softwareURL block by block, verifies the SHA-256,
 * "installs" the image (DIR/<id>/image.bin) and acknowledges with the text
 * form "jobID:<id> SUCCESS|FAILURE". In push mode it serves /5/0/0 (Block1
 * PUT) and /5/0/2 (install trigger) instead of downloading, on port
 * --push-port + device index; over DTLS when a key is given (--push-psk, or
 * --psk), accepting only its own id as the gateway's PSK identity.
 * Repeated blocks and triggers (the gateway retransmits NON requests) are
 * answered again without harm.
 *
 * Reliability is the device's own, as firmware has to do it: every request
 * is sent NON and retransmitted by this program with an RTO from an RFC 6298
 * estimate of the round-trip time (Karn's rule: no samples from
 * retransmitted requests), doubled on each timeout. (libcoap 4.3's CON
 * retransmission cannot be turned off - max_retransmit must be > 0 - and
 * NSTART=1 would hold a retransmitted request behind the lost one.)
 * --loss drops that fraction of datagrams in both directions here.
 *
 * A download resumes after a crash from the blocks in DIR/<id>/partial.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <coap3/coap.h>
#include <jansson.h>
#include <openssl/evp.h>

enum kind { K_NONE, K_REG, K_STATE, K_BLOCK, K_REPORT };
enum phase { P_REGISTER, P_IDLE, P_DOWNLOAD, P_REPORT, P_DONE };

struct dev {
	int idx;
	char id[130];
	char dir[512];
	coap_session_t *sess;
	enum phase phase;
	/* the one outstanding request */
	enum kind kind;
	uint8_t tok[8];
	size_t toklen;
	uint64_t sent_at, due;
	int retries;
	/* RTT estimate, ms */
	double srtt, rttvar, rto;
	/* observe */
	uint8_t otok[8];
	size_t otoklen;
	int observing;
	uint64_t next_poll;
	/* job */
	char job[128], version[64], sha256[65], path[300];
	uint64_t size;
	uint32_t next_block;
	unsigned szx;
	int blocks_this_run;
	int resumed;
	int report_ok;
	char done_job[128];
	/* push */
	uint16_t push_port;
	uint64_t push_size;
	int push_data;           /* blocks arrived since the last install */
	int install_pending;     /* triggered before the job's state was seen */
	/* stats */
	uint64_t started_ms, finished_ms;
	unsigned long sent, retransmits, dropped_in;
};

static struct {
	const char *gateway;
	int count;
	const char *prefix;
	const char *dir;
	double loss;
	const char *psk;
	const char *push_psk;
	int push;
	int push_port;
	const char *fail_install;
	int crash_after;
	unsigned szx;
	int once;
	int timeout_s;
	const char *version;
	int verbose;
	int poll_ms;             /* idle: look at the state this often */
} opt = { NULL, 1, "dev", "devices", 0, NULL, NULL, 0, 5700, NULL, 0, 6, 0, 120, "0", 0, 1000 };

static struct dev *devs;
static coap_context_t *ctx;
static coap_uri_t gw_uri;
static volatile sig_atomic_t stop;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
lose(void)
{
	return opt.loss > 0 && (double)random() / RAND_MAX < opt.loss;
}

static void
logd(const struct dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
logd(const struct dev *d, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "coap-device %s: ", d->id);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
add_path(coap_pdu_t *pdu, const char *path)
{
	unsigned char buf[512], *p = buf;
	size_t buflen = sizeof(buf);
	int n;

	while (*path == '/')
		path++;
	n = coap_split_path((const uint8_t *)path, strlen(path), buf, &buflen);
	while (n-- > 0) {
		coap_add_option(pdu, COAP_OPTION_URI_PATH, coap_opt_length(p), coap_opt_value(p));
		p += coap_opt_size(p);
	}
}

static void
add_uint(coap_pdu_t *pdu, coap_option_num_t num, uint32_t v)
{
	uint8_t b[4];

	coap_add_option(pdu, num, coap_encode_var_safe(b, sizeof(b), v), b);
}

static int
write_file(const char *path, const char *text)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!(f = fopen(tmp, "w")))
		return -1;
	fputs(text, f);
	fflush(f);
	fsync(fileno(f));
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

static int
read_line(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "r");

	out[0] = '\0';
	if (!f)
		return -1;
	if (!fgets(out, (int)outlen, f))
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* Build and send (or lose) the device's current request. */
static void
send_req(struct dev *d, int retransmit)
{
	coap_pdu_t *pdu;
	char body[512], q[200];
	uint64_t t = now_ms();

	if (!retransmit) {
		coap_session_new_token(d->sess, &d->toklen, d->tok);
		d->retries = 0;
	}
	pdu = coap_pdu_init(COAP_MESSAGE_NON, d->kind == K_STATE || d->kind == K_BLOCK ?
	    COAP_REQUEST_CODE_GET : COAP_REQUEST_CODE_POST, coap_new_message_id(d->sess),
	    coap_session_max_pdu_size(d->sess));
	if (!pdu)
		return;
	coap_add_token(pdu, d->toklen, d->tok);
	switch (d->kind) {
	case K_REG:
		add_path(pdu, "rd");
		snprintf(q, sizeof(q), "ep=%s", d->id);
		coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(q), (const uint8_t *)q);
		if (opt.push)
			snprintf(body, sizeof(body), "{\"version\":\"%s\",\"szx\":%u,\"mode\":\"push\","
			    "\"firmware\":\"%s://127.0.0.1:%u/5/0/0\"}", opt.version, d->szx,
			    opt.push_psk ? "coaps" : "coap", d->push_port);
		else
			snprintf(body, sizeof(body), "{\"version\":\"%s\",\"szx\":%u,\"mode\":\"pull\"}",
			    opt.version, d->szx);
		add_uint(pdu, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_APPLICATION_JSON);
		coap_add_data(pdu, strlen(body), (const uint8_t *)body);
		break;
	case K_STATE:
		snprintf(q, sizeof(q), "state/%s", d->id);
		if (!d->observing) {
			/* the first GET establishes the observation */
			add_uint(pdu, COAP_OPTION_OBSERVE, COAP_OBSERVE_ESTABLISH);
			memcpy(d->otok, d->tok, d->toklen);
			d->otoklen = d->toklen;
		}
		add_path(pdu, q);
		break;
	case K_BLOCK:
		add_path(pdu, d->path);
		add_uint(pdu, COAP_OPTION_BLOCK2, (d->next_block << 4) | d->szx);
		break;
	case K_REPORT:
		snprintf(q, sizeof(q), "state/%s", d->id);
		add_path(pdu, q);
		snprintf(body, sizeof(body), "jobID:%s %s", d->job, d->report_ok ? "SUCCESS" : "FAILURE");
		add_uint(pdu, COAP_OPTION_CONTENT_FORMAT, COAP_MEDIATYPE_TEXT_PLAIN);
		coap_add_data(pdu, strlen(body), (const uint8_t *)body);
		break;
	case K_NONE:
		break;
	}
	d->sent_at = t;
	d->due = t + (uint64_t)d->rto;
	d->sent++;
	if (retransmit)
		d->retransmits++;
	if (lose()) {
		coap_delete_pdu(pdu);
		return;
	}
	coap_send(d->sess, pdu);
}

static void
start(struct dev *d, enum kind k)
{
	d->kind = k;
	send_req(d, 0);
}

static void
on_timeout(struct dev *d)
{
	d->retries++;
	d->rto *= 2;
	if (d->rto > 8000)
		d->rto = 8000;
	send_req(d, 1);
}

static void
rtt_sample(struct dev *d, double ms)
{
	if (d->srtt == 0) {
		d->srtt = ms;
		d->rttvar = ms / 2;
	} else {
		double e = d->srtt - ms;

		d->rttvar = 0.75 * d->rttvar + 0.25 * (e < 0 ? -e : e);
		d->srtt = 0.875 * d->srtt + 0.125 * ms;
	}
	d->rto = d->srtt + 4 * d->rttvar;
	if (d->rto < 10)
		d->rto = 10;
}

static int
sha256_file(const char *path, char *hex)
{
	unsigned char buf[65536], md[32];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned mdlen = 0, i;
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f || !c) {
		if (f)
			fclose(f);
		EVP_MD_CTX_free(c);
		return -1;
	}
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		EVP_DigestUpdate(c, buf, n);
	fclose(f);
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return 0;
}

/* Verify and "install" DIR/<id>/partial; report the outcome. */
static void
install(struct dev *d)
{
	char part[600], img[600], hex[65], line[256];

	snprintf(part, sizeof(part), "%s/partial", d->dir);
	snprintf(img, sizeof(img), "%s/image.bin", d->dir);
	d->report_ok = 0;
	d->push_data = 0;
	if (sha256_file(part, hex) != 0 || strcmp(hex, d->sha256) != 0) {
		logd(d, "job %s: SHA-256 mismatch, not installed", d->job);
	} else if (opt.fail_install && strcmp(opt.fail_install, d->id) == 0) {
		logd(d, "job %s: install fails (--fail-install)", d->job);
	} else if (rename(part, img) != 0) {
		logd(d, "job %s: cannot install: %s", d->job, strerror(errno));
	} else {
		snprintf(line, sizeof(line), "%s %s\n", d->job, d->version);
		snprintf(part, sizeof(part), "%s/installed", d->dir);
		write_file(part, line);
		d->report_ok = 1;
	}
	snprintf(part, sizeof(part), "%s/partial", d->dir);
	unlink(part);
	snprintf(part, sizeof(part), "%s/job", d->dir);
	unlink(part);
	d->phase = P_REPORT;
	start(d, K_REPORT);
}

/* A state document arrived (response or notification). */
static void
on_state(struct dev *d, const uint8_t *data, size_t len)
{
	json_error_t je;
	json_t *o = json_loadb((const char *)data, len, 0, &je);
	const char *job, *url, *sha, *ver;
	json_int_t size;
	char line[300], path[600];
	coap_uri_t u;
	struct stat st;

	if (!o)
		return;
	job = json_string_value(json_object_get(o, "jobId"));
	url = json_string_value(json_object_get(o, "softwareURL"));
	sha = json_string_value(json_object_get(o, "sha256"));
	ver = json_string_value(json_object_get(o, "version"));
	size = json_integer_value(json_object_get(o, "size"));
	if (!job || !sha || strlen(sha) != 64 || json_object_get(o, "status") ||
	    (d->phase != P_IDLE && d->phase != P_DONE) || strcmp(job, d->done_job) == 0 ||
	    strlen(job) >= sizeof(d->job)) {
		json_decref(o);
		return;
	}
	snprintf(d->job, sizeof(d->job), "%s", job);
	snprintf(d->sha256, sizeof(d->sha256), "%s", sha);
	snprintf(d->version, sizeof(d->version), "%s", ver ? ver : "");
	d->size = (uint64_t)size;
	if (opt.push) {
		/* the gateway pushes; /5/0/2 completes it */
		d->push_size = d->size;
		json_decref(o);
		if (d->install_pending) {
			d->install_pending = 0;
			install(d);
		}
		return;
	}
	if (!url || coap_split_uri((const uint8_t *)url, strlen(url), &u) < 0 ||
	    u.path.length >= sizeof(d->path)) {
		logd(d, "job %s: unusable softwareURL", job);
		json_decref(o);
		return;
	}
	memcpy(d->path, u.path.s, u.path.length);
	d->path[u.path.length] = '\0';
	/* resume what an earlier run of this job left */
	snprintf(path, sizeof(path), "%s/job", d->dir);
	read_line(path, line, sizeof(line));
	d->next_block = 0;
	snprintf(path, sizeof(path), "%s/partial", d->dir);
	if (strcmp(line, job) == 0 && stat(path, &st) == 0 && st.st_size > 0) {
		d->next_block = (uint32_t)((uint64_t)st.st_size >> (d->szx + 4));
		if (truncate(path, (off_t)((uint64_t)d->next_block << (d->szx + 4))) != 0)
			d->next_block = 0;
		d->resumed = 1;
		logd(d, "job %s: resuming at block %u", job, d->next_block);
	} else {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			close(fd);
		snprintf(path, sizeof(path), "%s/job", d->dir);
		snprintf(line, sizeof(line), "%s\n", job);
		write_file(path, line);
	}
	json_decref(o);
	d->started_ms = now_ms();
	d->phase = P_DOWNLOAD;
	if ((uint64_t)d->next_block << (d->szx + 4) >= d->size && d->size > 0) {
		install(d);
		return;
	}
	start(d, K_BLOCK);
}

static void
on_block(struct dev *d, const coap_pdu_t *r)
{
	coap_block_t b;
	const uint8_t *data = NULL;
	size_t len = 0;
	char path[600];
	uint64_t off;
	int fd;

	if (!coap_get_block(r, COAP_OPTION_BLOCK2, &b) || b.num != d->next_block) {
		/* the gateway may use smaller blocks than asked: follow it */
		if (coap_get_block(r, COAP_OPTION_BLOCK2, &b) && b.szx < d->szx &&
		    ((uint64_t)b.num << (b.szx + 4)) == ((uint64_t)d->next_block << (d->szx + 4))) {
			d->next_block = b.num;
			d->szx = b.szx;
		} else {
			return;
		}
	}
	coap_get_data(r, &len, &data);
	off = (uint64_t)b.num << (b.szx + 4);
	snprintf(path, sizeof(path), "%s/partial", d->dir);
	if ((fd = open(path, O_WRONLY | O_CREAT, 0644)) < 0 ||
	    pwrite(fd, data, len, (off_t)off) != (ssize_t)len) {
		logd(d, "cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		exit(1);
	}
	close(fd);
	d->blocks_this_run++;
	if (opt.crash_after && !d->resumed && d->blocks_this_run >= opt.crash_after) {
		logd(d, "crashing after %d blocks (--crash-after-blocks)", d->blocks_this_run);
		_exit(3);
	}
	if (!b.m || off + len >= d->size) {
		d->kind = K_NONE;
		install(d);
		return;
	}
	d->next_block = b.num + 1;
	start(d, K_BLOCK);
}

static coap_response_t
on_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *r, const coap_mid_t mid)
{
	struct dev *d = coap_session_get_app_data(s);
	coap_bin_const_t tok = coap_pdu_get_token(r);
	coap_pdu_code_t code = coap_pdu_get_code(r);
	const uint8_t *data = NULL;
	size_t len = 0;
	enum kind k;

	if (!d)
		return COAP_RESPONSE_OK;
	if (lose()) {
		d->dropped_in++;
		return COAP_RESPONSE_OK;
	}
	coap_get_data(r, &len, &data);
	if (d->otoklen && tok.length == d->otoklen && memcmp(tok.s, d->otok, d->otoklen) == 0 &&
	    !(d->kind == K_STATE && tok.length == d->toklen && memcmp(tok.s, d->tok, d->toklen) == 0)) {
		if (code == COAP_RESPONSE_CODE_CONTENT)
			on_state(d, data, len); /* a notification */
		return COAP_RESPONSE_OK;
	}
	if (d->kind == K_NONE || tok.length != d->toklen || memcmp(tok.s, d->tok, d->toklen) != 0)
		return COAP_RESPONSE_OK;
	if (d->retries == 0)
		rtt_sample(d, (double)(now_ms() - d->sent_at));
	else if (d->srtt) /* Karn: keep the backed-off RTO only until a clean sample */
		d->rto = d->srtt + 4 * d->rttvar < 10 ? 10 : d->srtt + 4 * d->rttvar;
	k = d->kind;
	d->kind = K_NONE;
	switch (k) {
	case K_REG:
		if (COAP_RESPONSE_CLASS(code) != 2) {
			logd(d, "registration refused: %d.%02d", code >> 5, code & 31);
			d->phase = P_DONE;
			d->finished_ms = 1;
			return COAP_RESPONSE_OK;
		}
		d->phase = P_IDLE;
		start(d, K_STATE);
		break;
	case K_STATE:
		if (code == COAP_RESPONSE_CODE_CONTENT) {
			d->observing = 1;
			on_state(d, data, len);
		}
		d->next_poll = now_ms() + (uint64_t)opt.poll_ms;
		break;
	case K_BLOCK:
		if (code == COAP_RESPONSE_CODE_CONTENT) {
			on_block(d, r);
		} else {
			/* expired or replaced token: fetch the state again */
			logd(d, "job %s: /fw answered %d.%02d", d->job, code >> 5, code & 31);
			d->phase = P_IDLE;
			d->observing = 0;
			d->next_poll = now_ms() + 200;
		}
		break;
	case K_REPORT:
		logd(d, "job %s: reported %s (%d.%02d)", d->job, d->report_ok ? "SUCCESS" : "FAILURE",
		    code >> 5, code & 31);
		snprintf(d->done_job, sizeof(d->done_job), "%s", d->job);
		d->finished_ms = now_ms();
		d->phase = P_DONE;
		d->next_poll = now_ms() + (uint64_t)opt.poll_ms;
		break;
	case K_NONE:
		break;
	}
	return COAP_RESPONSE_OK;
}

/* ---- push mode: the gateway PUTs /5/0/0 and POSTs /5/0/2 ---------------- */

static struct dev *
dev_of_session(coap_session_t *s)
{
	const coap_address_t *la = coap_session_get_addr_local(s);
	uint16_t port = coap_address_get_port(la);
	int i = (int)port - opt.push_port;

	return i >= 0 && i < opt.count ? &devs[i] : NULL;
}

static void
hnd_put_fw(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *q, coap_pdu_t *resp)
{
	struct dev *d = dev_of_session(s);
	coap_block_t b = { 0, 0, 6 };
	const uint8_t *data = NULL;
	size_t len = 0;
	char path[600];
	int fd;
	uint64_t off;

	if (!d) {
		coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
		return;
	}
	coap_get_block(req, COAP_OPTION_BLOCK1, &b);
	coap_get_data(req, &len, &data);
	off = (uint64_t)b.num << (b.szx + 4);
	snprintf(path, sizeof(path), "%s/partial", d->dir);
	/* blocks may repeat or come late: write each at its offset, cut the
	 * file at the end of the last one */
	if ((fd = open(path, O_WRONLY | O_CREAT, 0644)) < 0 ||
	    pwrite(fd, data, len, (off_t)off) != (ssize_t)len ||
	    (!b.m && ftruncate(fd, (off_t)(off + len)) != 0)) {
		if (fd >= 0)
			close(fd);
		coap_pdu_set_code(resp, COAP_RESPONSE_CODE(500));
		return;
	}
	close(fd);
	if (d->started_ms == 0 || off == 0)
		d->started_ms = now_ms();
	d->push_data = 1;
	add_uint(resp, COAP_OPTION_BLOCK1, (b.num << 4) | (b.m ? 8u : 0u) | b.szx);
	coap_pdu_set_code(resp, b.m ? COAP_RESPONSE_CODE(231) : COAP_RESPONSE_CODE_CHANGED);
}

static void
hnd_post_install(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
    const coap_string_t *q, coap_pdu_t *resp)
{
	struct dev *d = dev_of_session(s);

	if (!d) {
		coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
		return;
	}
	coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
	if (!d->push_data || d->phase == P_REPORT || d->install_pending)
		return; /* a repeated trigger */
	if (!d->job[0] || strcmp(d->job, d->done_job) == 0) {
		/* an image came but the job's state was not seen yet (a lost
		 * notification): install when the state shows it */
		d->install_pending = 1;
		d->next_poll = 0;
		return;
	}
	install(d);
}

/* The push listener's key: only for the gateway acting as this device
 * (identity = the id of the device whose port the session is on). */
static const coap_bin_const_t *
push_psk_for(coap_bin_const_t *identity, coap_session_t *s, void *arg)
{
	static coap_bin_const_t key;
	struct dev *d = dev_of_session(s);

	if (!identity || !d || identity->length != strlen(d->id) ||
	    memcmp(identity->s, d->id, identity->length) != 0) {
		fprintf(stderr, "coap-device: push DTLS handshake with a foreign identity refused\n");
		return NULL;
	}
	if (opt.verbose)
		fprintf(stderr, "coap-device %s: push DTLS handshake from identity %s\n", d->id, d->id);
	key.s = (const uint8_t *)opt.push_psk;
	key.length = strlen(opt.push_psk);
	return &key;
}

static void
on_signal(int sig)
{
	stop = 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: coap-device --gateway coap://HOST:PORT [--count N] [--id-prefix P] [--dir DIR]\n"
	    "  [--loss P] [--psk KEY] [--push] [--push-port BASE] [--push-psk KEY] [--fail-install ID]\n"
	    "  [--crash-after-blocks K] [--szx 0-6] [--version V] [--once] [--timeout S]\n"
	    "  [--poll S] (idle: GET the state every S seconds besides observing it; 1)\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "gateway", 1, 0, 'g' }, { "count", 1, 0, 'n' }, { "id-prefix", 1, 0, 'p' },
		{ "dir", 1, 0, 'd' }, { "loss", 1, 0, 'l' }, { "psk", 1, 0, 'k' }, { "push", 0, 0, 'P' },
		{ "push-port", 1, 0, 'B' }, { "push-psk", 1, 0, 'K' }, { "fail-install", 1, 0, 'f' },
		{ "crash-after-blocks", 1, 0, 'c' }, { "szx", 1, 0, 's' }, { "once", 0, 0, 'o' },
		{ "timeout", 1, 0, 't' }, { "version", 1, 0, 'V' }, { "verbose", 0, 0, 'v' },
		{ "poll", 1, 0, 'q' },
		{ 0, 0, 0, 0 }
	};
	int c, i, rc = 0, all;
	char *end;
	coap_address_t dst;
	uint64_t t0, deadline;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'g': opt.gateway = optarg; break;
		case 'n': opt.count = (int)strtol(optarg, &end, 10); if (*end || opt.count < 1 || opt.count > 100000) { usage(); return 2; } break;
		case 'p': opt.prefix = optarg; break;
		case 'd': opt.dir = optarg; break;
		case 'l': opt.loss = strtod(optarg, &end); if (*end || opt.loss < 0 || opt.loss >= 1) { usage(); return 2; } break;
		case 'k': opt.psk = optarg; break;
		case 'P': opt.push = 1; break;
		case 'K': opt.push_psk = optarg; break;
		case 'B': opt.push_port = (int)strtol(optarg, &end, 10); if (*end || opt.push_port < 1 || opt.push_port > 65000) { usage(); return 2; } break;
		case 'f': opt.fail_install = optarg; break;
		case 'c': opt.crash_after = (int)strtol(optarg, &end, 10); if (*end || opt.crash_after < 0) { usage(); return 2; } break;
		case 's': opt.szx = (unsigned)strtoul(optarg, &end, 10); if (*end || opt.szx > 6) { usage(); return 2; } break;
		case 'o': opt.once = 1; break;
		case 't': opt.timeout_s = (int)strtol(optarg, &end, 10); if (*end || opt.timeout_s < 1) { usage(); return 2; } break;
		case 'V': opt.version = optarg; break;
		case 'v': opt.verbose = 1; break;
		case 'q': {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 3600) { usage(); return 2; }
			opt.poll_ms = (int)v * 1000;
			break;
		}
		default: usage(); return 2;
		}
	}
	if (!opt.gateway || optind != argc || (opt.push && opt.push_port + opt.count > 65535)) {
		usage();
		return 2;
	}
	if (coap_split_uri((const uint8_t *)opt.gateway, strlen(opt.gateway), &gw_uri) < 0 ||
	    (gw_uri.scheme != COAP_URI_SCHEME_COAP && gw_uri.scheme != COAP_URI_SCHEME_COAPS) ||
	    (gw_uri.scheme == COAP_URI_SCHEME_COAPS) != (opt.psk != NULL)) {
		fprintf(stderr, "coap-device: --gateway must be coap://HOST:PORT, or coaps:// with --psk\n");
		return 2;
	}
	if (opt.push && !opt.push_psk)
		opt.push_psk = opt.psk; /* the device's one key */
	if (opt.push_psk && (!opt.push || !coap_dtls_is_supported())) {
		fprintf(stderr, "coap-device: --push-psk needs --push and a libcoap with DTLS\n");
		return 2;
	}
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	coap_startup();
	coap_set_log_level(opt.verbose ? LOG_INFO : LOG_ERR);
	if (!(ctx = coap_new_context(NULL)))
		return 1;
	coap_register_response_handler(ctx, on_response);
	{
		char host[256];
		struct sockaddr_in sin;

		if (gw_uri.host.length >= sizeof(host))
			return 2;
		memcpy(host, gw_uri.host.s, gw_uri.host.length);
		host[gw_uri.host.length] = '\0';
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(gw_uri.port);
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
			fprintf(stderr, "coap-device: gateway host must be an IPv4 address\n");
			return 2;
		}
		coap_address_init(&dst);
		dst.size = sizeof(sin);
		memcpy(&dst.addr.sin, &sin, sizeof(sin));
	}
	if (opt.push) {
		coap_resource_t *r = coap_resource_init(coap_make_str_const("5/0/0"), 0);

		coap_register_request_handler(r, COAP_REQUEST_PUT, hnd_put_fw);
		coap_add_resource(ctx, r);
		r = coap_resource_init(coap_make_str_const("5/0/2"), 0);
		coap_register_request_handler(r, COAP_REQUEST_POST, hnd_post_install);
		coap_add_resource(ctx, r);
		if (opt.push_psk) {
			coap_dtls_spsk_t sp;

			memset(&sp, 0, sizeof(sp));
			sp.version = COAP_DTLS_SPSK_SETUP_VERSION;
			sp.validate_id_call_back = push_psk_for;
			sp.psk_info.hint.s = (const uint8_t *)"coap-device";
			sp.psk_info.hint.length = 11;
			if (!coap_context_set_psk2(ctx, &sp)) {
				fprintf(stderr, "coap-device: cannot set up DTLS for the push listener\n");
				return 1;
			}
		}
	}
	if (!(devs = calloc((size_t)opt.count, sizeof(*devs))))
		return 1;
	t0 = now_ms();
	for (i = 0; i < opt.count; i++) {
		struct dev *d = &devs[i];
		char line[600];

		d->idx = i;
		snprintf(d->id, sizeof(d->id), "%s%d", opt.prefix, i + 1);
		snprintf(d->dir, sizeof(d->dir), "%s/%s", opt.dir, d->id);
		mkdir(opt.dir, 0755);
		mkdir(d->dir, 0755);
		d->szx = opt.szx;
		d->rto = 300;
		snprintf(line, sizeof(line), "%s/installed", d->dir);
		if (read_line(line, line, sizeof(line)) == 0)
			sscanf(line, "%127s", d->done_job);
		if (opt.psk) {
			coap_dtls_cpsk_t cp;

			memset(&cp, 0, sizeof(cp));
			cp.version = COAP_DTLS_CPSK_SETUP_VERSION;
			cp.psk_info.identity.s = (const uint8_t *)d->id;
			cp.psk_info.identity.length = strlen(d->id);
			cp.psk_info.key.s = (const uint8_t *)opt.psk;
			cp.psk_info.key.length = strlen(opt.psk);
			d->sess = coap_new_client_session_psk2(ctx, NULL, &dst, COAP_PROTO_DTLS, &cp);
		} else {
			d->sess = coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP);
		}
		if (!d->sess) {
			logd(d, "cannot create a session");
			return 1;
		}
		coap_session_set_app_data(d->sess, d);
		if (opt.push) {
			coap_address_t la;
			struct sockaddr_in sin;

			d->push_port = (uint16_t)(opt.push_port + i);
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_port = htons(d->push_port);
			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			coap_address_init(&la);
			la.size = sizeof(sin);
			memcpy(&la.addr.sin, &sin, sizeof(sin));
			if (!coap_new_endpoint(ctx, &la, opt.push_psk ? COAP_PROTO_DTLS : COAP_PROTO_UDP)) {
				logd(d, "cannot listen on port %u", d->push_port);
				return 1;
			}
		}
		d->phase = P_REGISTER;
		start(d, K_REG);
	}
	deadline = t0 + (uint64_t)opt.timeout_s * 1000;
	while (!stop) {
		uint64_t t;

		coap_io_process(ctx, 5);
		t = now_ms();
		all = 1;
		for (i = 0; i < opt.count; i++) {
			struct dev *d = &devs[i];

			if (d->kind != K_NONE && t >= d->due)
				on_timeout(d);
			if (d->kind == K_NONE && (d->phase == P_IDLE || (d->phase == P_DONE && !opt.once)) &&
			    t >= d->next_poll) {
				/* observe may have lost a notification: look again */
				d->next_poll = t + (uint64_t)opt.poll_ms;
				start(d, K_STATE);
			}
			if (d->phase != P_DONE)
				all = 0;
		}
		if (opt.once && all)
			break;
		if (t >= deadline) {
			fprintf(stderr, "coap-device: timed out after %d s\n", opt.timeout_s);
			rc = 1;
			break;
		}
	}
	for (i = 0; i < opt.count; i++) {
		struct dev *d = &devs[i];

		printf("%s %s %s %.3f s, %lu requests, %lu retransmitted, %lu answers dropped, srtt %.2f ms\n",
		    d->id, d->phase == P_DONE && d->done_job[0] ? d->done_job : "-",
		    d->phase == P_DONE && d->done_job[0] ? (d->report_ok ? "SUCCESS" : "FAILURE") : "UNFINISHED",
		    d->finished_ms > d->started_ms && d->started_ms ? (d->finished_ms - d->started_ms) / 1000.0 : 0.0,
		    d->sent, d->retransmits, d->dropped_in, d->srtt);
		if (d->phase != P_DONE && opt.once)
			rc = 1;
	}
	for (i = 0; i < opt.count; i++)
		coap_session_release(devs[i].sess);
	coap_free_context(ctx);
	coap_cleanup();
	free(devs);
	return rc;
}
