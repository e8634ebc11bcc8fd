/* fetch_driver - runs dg_fetch on a libevent loop for the integration tests.
 *
 *   fetch_driver [fetcher options] [fetch options] --get URL ...
 *
 * Fetcher options: --ca FILE --ca-path DIR --proxy URL --max-transfers N
 * --connect-timeout MS --low-speed-limit BPS --low-speed-time S --retries N
 * --backoff-min MS --backoff-max MS --max-redirects N --user-agent S
 * --log-level L.
 * Fetch options apply to the following --get (and stay set): --out FILE,
 * --size N, --sha256 HEX, --key K, --count N (start N fetches of that URL),
 * --cancel-at BYTES (cancel once the file holds that many bytes),
 * --no-offset 1 (the sink has no offset callback: the fetcher counts),
 * --probe-busy 1 (from the first write, call dg_fetch_cancel and
 * dg_fetch_start, which must refuse with DG_ERR_BUSY: prints busy=ok|bad).
 *
 * Each fetch appends to its --out file (resuming from what the file holds)
 * through a file sink whose finish checks --sha256 with EVP. One line per
 * fetch on stdout:
 *   fetch I outcome=N (text) http=C attempts=A bytes=B resumed=R size=S
 *   restarts=T shared=0|1 waiters=W sink_err=E
 * Exit status: 0 if every fetch ended DG_OK, 1 otherwise, 2 on usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "dg_fetch.h"
#include "dg_log.h"
#include "dg_util.h"

#define MAX_FETCHES 256

struct job {
	int index;
	char *path;
	char *sha256;
	int fd;
	uint64_t cancel_at;
	dg_fetch *fetch;
	struct event *cancel_ev;
	int ended;
	dg_err outcome;
	dg_fetch_stats stats;
	int shared;
};

static struct job jobs[MAX_FETCHES];
static int njobs, nended;
static struct event_base *base;
static dg_fetcher *fetcher;
static int no_offset;
static int probe_busy;   /* 1: to do, 2: refused as documented, 3: not refused */

static dg_err sink_restart(void *arg);
static uint64_t sink_offset(void *arg);

static void
on_stray_done(dg_fetch *fetch, dg_err outcome, const dg_fetch_stats *stats, void *arg)
{
	(void)fetch;
	(void)outcome;
	(void)stats;
	(void)arg;
}

static dg_err
sink_write(void *arg, const void *buf, size_t len)
{
	struct job *j = arg;
	struct stat st;
	dg_err e = dg_util_write_all(j->fd, buf, len);

	if (probe_busy == 1 && j->fetch) {
		dg_fetch_req req = { "https://127.0.0.1/x", 0, NULL, NULL };
		dg_fetch_sink s = { sink_write, sink_restart, sink_offset, NULL, j };
		dg_fetch *h = NULL;

		probe_busy = dg_fetch_cancel(j->fetch) == DG_ERR_BUSY &&
		    dg_fetch_start(fetcher, &req, &s, on_stray_done, NULL, &h) == DG_ERR_BUSY &&
		    h == NULL ? 2 : 3;
	}

	if (e == DG_OK && j->cancel_at && fstat(j->fd, &st) == 0 &&
	    (uint64_t)st.st_size >= j->cancel_at && j->fetch) {
		/* not from here (inside libcurl): let the loop do it */
		event_active(j->cancel_ev, EV_TIMEOUT, 0);
		j->cancel_at = 0;
	}
	return e;
}

static dg_err
sink_restart(void *arg)
{
	struct job *j = arg;

	if (ftruncate(j->fd, 0) != 0 || lseek(j->fd, 0, SEEK_SET) != 0)
		return dg_err_from_errno(errno);
	return DG_OK;
}

static uint64_t
sink_offset(void *arg)
{
	struct job *j = arg;
	struct stat st;

	return fstat(j->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static dg_err
file_sha256(int fd, char hex[65])
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	dg_err e = DG_ERR_CRYPTO;
	ssize_t n;
	off_t pos = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while ((n = pread(fd, buf, sizeof(buf), pos)) > 0) {
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			goto out;
		pos += n;
	}
	if (n < 0) {
		e = DG_ERR_IO;
		goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		goto out;
	dg_util_hex_encode(md, mdlen, hex);
	e = DG_OK;
out:
	EVP_MD_CTX_free(ctx);
	return e;
}

static dg_err
sink_finish(void *arg, dg_err outcome)
{
	struct job *j = arg;
	char hex[65];
	dg_err e;

	if (outcome != DG_OK || !j->sha256)
		return DG_OK;
	e = file_sha256(j->fd, hex);
	if (e != DG_OK)
		return e;
	if (strcasecmp(hex, j->sha256) != 0) {
		fprintf(stderr, "fetch_driver: %s: sha256 %s, expected %s\n", j->path, hex, j->sha256);
		return DG_ERR_INVAL;
	}
	return DG_OK;
}

static void
on_done(dg_fetch *fetch, dg_err outcome, const dg_fetch_stats *stats, void *arg)
{
	struct job *j = arg;

	j->ended = 1;
	j->outcome = outcome;
	j->stats = *stats;
	j->shared = dg_fetch_is_shared(fetch);
	j->fetch = NULL;
	if (++nended == njobs)
		event_base_loopbreak(base);
}

static void
on_cancel(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd;
	(void)what;
	if (j->fetch)
		dg_fetch_cancel(j->fetch);
}

static int
usage(const char *why)
{
	fprintf(stderr, "fetch_driver: %s\n", why);
	return 2;
}

static int
num(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || dg_util_parse_u64(s, 0, max, out) != DG_OK) {
		fprintf(stderr, "fetch_driver: bad number: %s\n", s ? s : "(missing)");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct { const char *url, *out, *sha256, *key; uint64_t size, cancel_at; } gets[MAX_FETCHES];
	const char *out = NULL, *sha256 = NULL, *key = NULL;
	uint64_t size = 0, count = 1, cancel_at = 0, v;
	int ngets = 0, i, k, rc = 0, lvl;
	dg_fetcher *f = NULL;
	dg_fetch_opts o;
	dg_err e;

	for (i = 0; i < MAX_FETCHES; i++)
		jobs[i].fd = -1;
	dg_fetch_opts_init(&o);
	dg_log_open("fetch_driver", 0, DG_LOG_INFO);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned *uf = NULL;

		if (!val)
			return usage("every option needs a value");
		i++;
		if (!strcmp(a, "--ca")) o.ca_file = val;
		else if (!strcmp(a, "--ca-path")) o.ca_path = val;
		else if (!strcmp(a, "--proxy")) o.proxy = val;
		else if (!strcmp(a, "--user-agent")) o.user_agent = val;
		else if (!strcmp(a, "--max-transfers")) uf = &o.max_transfers;
		else if (!strcmp(a, "--connect-timeout")) uf = &o.connect_timeout_ms;
		else if (!strcmp(a, "--low-speed-limit")) uf = &o.low_speed_limit;
		else if (!strcmp(a, "--low-speed-time")) uf = &o.low_speed_time;
		else if (!strcmp(a, "--retries")) uf = &o.retries;
		else if (!strcmp(a, "--backoff-min")) uf = &o.backoff_min_ms;
		else if (!strcmp(a, "--backoff-max")) uf = &o.backoff_max_ms;
		else if (!strcmp(a, "--max-redirects")) uf = &o.max_redirects;
		else if (!strcmp(a, "--log-level")) {
			if ((lvl = dg_log_level_parse(val)) < 0)
				return usage("bad --log-level");
			dg_log_set_level((dg_log_level)lvl);
		} else if (!strcmp(a, "--out")) out = val;
		else if (!strcmp(a, "--sha256")) sha256 = val;
		else if (!strcmp(a, "--key")) key = val;
		else if (!strcmp(a, "--size")) { if (num(val, UINT64_MAX, &size)) return 2; }
		else if (!strcmp(a, "--count")) { if (num(val, MAX_FETCHES, &count)) return 2; }
		else if (!strcmp(a, "--no-offset")) no_offset = !strcmp(val, "1");
		else if (!strcmp(a, "--probe-busy")) probe_busy = !strcmp(val, "1");
		else if (!strcmp(a, "--cancel-at")) { if (num(val, UINT64_MAX, &cancel_at)) return 2; }
		else if (!strcmp(a, "--get")) {
			if (!out)
				return usage("--get needs an --out file before it");
			for (k = 0; k < (int)count; k++) {
				if (ngets == MAX_FETCHES)
					return usage("too many fetches");
				gets[ngets].url = val;
				gets[ngets].out = out;
				gets[ngets].sha256 = sha256;
				gets[ngets].key = key;
				gets[ngets].size = size;
				gets[ngets].cancel_at = cancel_at;
				ngets++;
			}
			count = 1;
		} else {
			fprintf(stderr, "fetch_driver: unknown argument %s\n", a);
			return 2;
		}
		if (uf) {
			if (num(val, UINT32_MAX, &v))
				return 2;
			*uf = (unsigned)v;
		}
	}
	if (ngets == 0)
		return usage("nothing to --get");
	base = event_base_new();
	if (!base)
		return 1;
	f = fetcher = dg_fetcher_new(base, &o, &e);
	if (!f) {
		fprintf(stderr, "fetch_driver: %s\n", dg_strerror(e));
		event_base_free(base);
		return 2;
	}
	for (i = 0; i < ngets; i++) {
		struct job *j = &jobs[i];
		dg_fetch_req req = { gets[i].url, gets[i].size, gets[i].sha256, gets[i].key };
		dg_fetch_sink sink = { sink_write, sink_restart, sink_offset, sink_finish, j };

		if (no_offset)
			sink.offset = NULL;

		j->index = i;
		j->path = (char *)gets[i].out;
		j->sha256 = (char *)gets[i].sha256;
		j->cancel_at = gets[i].cancel_at;
		j->fd = open(j->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (j->fd < 0) {
			fprintf(stderr, "fetch_driver: %s: %s\n", j->path, strerror(errno));
			rc = 1;
			goto out;
		}
		j->cancel_ev = event_new(base, -1, 0, on_cancel, j);
		if (!j->cancel_ev) {
			rc = 1;
			goto out;
		}
		njobs++;
		e = dg_fetch_start(f, &req, &sink, on_done, j, &j->fetch);
		if (e != DG_OK) {
			fprintf(stderr, "fetch_driver: start %d: %s\n", i, dg_strerror(e));
			rc = 2;
			goto out;
		}
	}
	event_base_dispatch(base);
	if (probe_busy)
		printf("busy=%s\n", probe_busy == 2 ? "ok" : "bad");
	for (i = 0; i < njobs; i++) {
		struct job *j = &jobs[i];

		if (!j->ended) {
			printf("fetch %d did not end\n", i);
			rc = 1;
			continue;
		}
		printf("fetch %d outcome=%d (%s) http=%ld attempts=%u bytes=%" PRIu64
		    " resumed=%" PRIu64 " size=%" PRIu64 " restarts=%u shared=%d waiters=%u"
		    " sink_err=%d\n", i, (int)j->outcome, dg_strerror(j->outcome),
		    j->stats.http_code, j->stats.attempts, j->stats.bytes_received,
		    j->stats.resumed_from, j->stats.size, j->stats.restarts, j->shared,
		    j->stats.waiters, (int)j->stats.sink_err);
		if (j->outcome != DG_OK)
			rc = 1;
	}
out:
	dg_fetcher_free(f);
	for (i = 0; i < ngets; i++) {
		if (jobs[i].fd >= 0)
			close(jobs[i].fd);
		if (jobs[i].cancel_ev)
			event_free(jobs[i].cancel_ev);
	}
	event_base_free(base);
	return rc;
}
