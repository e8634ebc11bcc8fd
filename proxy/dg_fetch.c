/* dg_fetch - HTTP(S) downloads on libcurl multi + libevent.
 *
 * Two layers: a transfer is one download (one easy handle, one sink, its
 * retries); a dg_fetch is one caller's handle on a transfer. Fetches that
 * share a dedup key share the transfer, so the handle list of a transfer is
 * the set of callers waiting for it.
 *
 * libcurl tells us which sockets to watch (on_curl_socket) and when to wake
 * it (on_curl_timer); we answer with curl_multi_socket_action() and then read
 * the finished transfers (process_done). Sink write callbacks run inside
 * curl_multi_socket_action(), so nothing that re-enters the multi handle may
 * run from them: in_curl guards that. Done callbacks run after it returns.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>

#include "dg_fetch.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_util.h"

enum tstate {
	T_IDLE,     /* between attempts, or finishing */
	T_QUEUED,   /* waiting for a free slot */
	T_RUNNING,  /* easy handle in the multi */
	T_BACKOFF,  /* waiting for the retry timer */
};

struct sockinfo {
	struct event ev;
	struct sockinfo *next, *prev;
	curl_socket_t fd;
};

struct transfer {
	dg_fetcher *f;
	struct transfer *next, *prev;   /* every live transfer of f */
	struct transfer *qnext;         /* f's queue while T_QUEUED */
	enum tstate state;
	int finishing;                  /* done callbacks are running */
	CURL *easy;
	char *url, *redacted, *key, *sha256;
	uint64_t expected_size;
	dg_fetch_sink sink;
	dg_fetch *fetches;              /* the callers waiting */
	unsigned nfetches;
	struct event retry_ev;
	dg_fetch_stats stats;
	uint64_t start_ms;
	char range[32];
	/* the current attempt */
	uint64_t offset;                /* what the sink held when it began */
	uint64_t received;              /* body bytes given to the sink since */
	int body_started;               /* the response status was looked at */
	int passing;                    /* this response's body goes to the sink */
	dg_err abort;                   /* set by the write callback to stop */
	int restart_retry;              /* server disagrees with what we hold */
	char errbuf[CURL_ERROR_SIZE];
};

struct dg_fetch {
	struct transfer *t;
	dg_fetch *next, *prev;
	dg_fetch_done_cb done;
	void *arg;
	int shared;
};

struct dg_fetcher {
	struct event_base *base;
	CURLM *multi;
	struct event timer;             /* libcurl's timeout */
	struct event kick;              /* start queued transfers from the loop */
	dg_fetch_opts opts;
	char *ca_file, *ca_path, *proxy, *user_agent;
	struct transfer *transfers;
	struct transfer *qhead, *qtail;
	struct sockinfo *socks;
	unsigned running, ntransfers, nfetches;
	int in_curl;                    /* inside curl_multi_socket_action() */
	int closing;
	int curl_global;                /* holds a curl_global_init() reference */
};

static void start_queued(dg_fetcher *f);

void
dg_fetch_opts_init(dg_fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_transfers = 4;
	o->connect_timeout_ms = 15000;
	o->low_speed_limit = 1024;
	o->low_speed_time = 30;
	o->retries = 5;
	o->backoff_min_ms = 1000;
	o->backoff_max_ms = 60000;
	o->max_redirects = 5;
}

static dg_err
bad_opt(const char *name, unsigned v, unsigned lo, unsigned hi)
{
	dg_log_err("fetch: option %s = %u is outside %u..%u", name, v, lo, hi);
	return DG_ERR_INVAL;
}

static int
in_range(unsigned v, unsigned lo, unsigned hi)
{
	return v >= lo && v <= hi;
}

dg_err
dg_fetch_opts_check(const dg_fetch_opts *o)
{
	struct stat st;
	const char *p;

	if (!o)
		return DG_ERR_INVAL;
#define RANGE(field, lo, hi) \
	do { \
		if (!in_range(o->field, lo, hi)) \
			return bad_opt(#field, o->field, lo, hi); \
	} while (0)
	RANGE(max_transfers, 1, 1024);
	RANGE(connect_timeout_ms, 100, 600000);
	RANGE(low_speed_time, 1, 3600);
	RANGE(retries, 0, 1000);
	RANGE(backoff_min_ms, 1, 3600000);
	RANGE(backoff_max_ms, o->backoff_min_ms, 3600000);
	RANGE(max_redirects, 0, 50);
#undef RANGE
	if (o->user_agent) {
		for (p = o->user_agent; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				dg_log_err("fetch: user_agent holds a control character");
				return DG_ERR_INVAL;
			}
	}
	if (o->ca_file && stat(o->ca_file, &st) != 0) {
		dg_log_err("fetch: CA file %s: %s", o->ca_file, strerror(errno));
		return DG_ERR_NOENT;
	}
	if (o->ca_path && (stat(o->ca_path, &st) != 0 || !S_ISDIR(st.st_mode))) {
		dg_log_err("fetch: CA path %s is not a directory", o->ca_path);
		return DG_ERR_NOENT;
	}
	return DG_OK;
}

uint64_t
dg_fetch_backoff_ms(const dg_fetch_opts *o, unsigned attempt, uint32_t rnd)
{
	uint64_t d = o->backoff_min_ms;
	unsigned i;

	for (i = 1; i < attempt && d < o->backoff_max_ms; i++)
		d *= 2;
	if (d > o->backoff_max_ms)
		d = o->backoff_max_ms;
	/* equal jitter: half fixed so retries never bunch at 0, half random so
	 * many gateways restarting together do not retry in lockstep */
	return d - d / 2 + (d / 2) * rnd / UINT32_MAX;
}

/* ---- the libevent side of libcurl ---- */

static void process_done(dg_fetcher *f);

static void
socket_action(dg_fetcher *f, curl_socket_t fd, int action)
{
	int running;

	f->in_curl++;
	curl_multi_socket_action(f->multi, fd, action, &running);
	f->in_curl--;
	process_done(f);
}

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	socket_action(arg, fd, action);
}

static void
on_timer_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int
on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	dg_fetcher *f = userp;
	struct sockinfo *si = socketp;
	short kind;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (si) {
			event_del(&si->ev);
			if (si->prev)
				si->prev->next = si->next;
			else
				f->socks = si->next;
			if (si->next)
				si->next->prev = si->prev;
			free(si);
			curl_multi_assign(f->multi, s, NULL);
		}
		return 0;
	}
	if (!si) {
		si = calloc(1, sizeof(*si));
		if (!si)
			return -1;
		si->fd = s;
		si->next = f->socks;
		if (f->socks)
			f->socks->prev = si;
		f->socks = si;
		curl_multi_assign(f->multi, s, si);
	} else {
		event_del(&si->ev);
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	event_assign(&si->ev, f->base, s, kind, on_socket_event, f);
	if (event_add(&si->ev, NULL) != 0)
		return -1;
	return 0;
}

static int
on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	dg_fetcher *f = userp;
	struct timeval tv;

	(void)m;
	if (timeout_ms < 0)
		return event_del(&f->timer) == 0 ? 0 : -1;
	/* 0 means "as soon as possible": calling socket_action from here would
	 * re-enter libcurl, so let the loop do it */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(&f->timer, &tv) == 0 ? 0 : -1;
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_queued(arg);
}

/* ---- fetcher ---- */

static char *
dup_or_null(const char *s, int *fail)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*fail = 1;
	return d;
}

dg_fetcher *
dg_fetcher_new(struct event_base *base, const dg_fetch_opts *opts, dg_err *err)
{
	dg_fetcher *f = NULL;
	dg_err e;
	int fail = 0;

	if (!base || !opts) {
		e = DG_ERR_INVAL;
		goto fail;
	}
	e = dg_fetch_opts_check(opts);
	if (e != DG_OK)
		goto fail;
	/* once per process; libcurl makes repeated calls cheap and counted */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dg_log_err("fetch: libcurl initialisation failed");
		e = DG_ERR_INTERNAL;
		goto fail;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		curl_global_cleanup();
		e = DG_ERR_NOMEM;
		goto fail;
	}
	f->curl_global = 1;
	f->base = base;
	f->opts = *opts;
	f->ca_file = dup_or_null(opts->ca_file, &fail);
	f->ca_path = dup_or_null(opts->ca_path, &fail);
	f->proxy = dup_or_null(opts->proxy, &fail);
	f->user_agent = dup_or_null(opts->user_agent ? opts->user_agent :
	    "deltagate/" PACKAGE_VERSION, &fail);
	f->opts.ca_file = f->ca_file;
	f->opts.ca_path = f->ca_path;
	f->opts.proxy = f->proxy;
	f->opts.user_agent = f->user_agent;
	evtimer_assign(&f->timer, base, on_timer_event, f);
	event_assign(&f->kick, base, -1, 0, on_kick, f);
	f->multi = curl_multi_init();
	if (fail || !f->multi) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
fail:
	if (err)
		*err = e;
	dg_fetcher_free(f);
	return NULL;
}

unsigned
dg_fetcher_transfers(const dg_fetcher *f)
{
	return f ? f->ntransfers : 0;
}

unsigned
dg_fetcher_fetches(const dg_fetcher *f)
{
	return f ? f->nfetches : 0;
}

void
dg_fetcher_free(dg_fetcher *f)
{
	struct sockinfo *si;

	if (!f)
		return;
	if (f->in_curl) {
		dg_log_err("fetch: dg_fetcher_free called from a sink callback");
		abort();
	}
	f->closing = 1;
	while (f->transfers) {
		/* canceling the last fetch of a transfer ends it */
		dg_fetch_cancel(f->transfers->fetches);
	}
	if (f->multi)
		curl_multi_cleanup(f->multi);
	if (f->curl_global)
		curl_global_cleanup();
	while ((si = f->socks)) {
		f->socks = si->next;
		event_del(&si->ev);
		free(si);
	}
	if (f->base) {
		event_del(&f->timer);
		event_del(&f->kick);
	}
	free(f->ca_file);
	free(f->ca_path);
	free(f->proxy);
	free(f->user_agent);
	free(f);
}

/* ---- transfers ---- */

static void
transfer_free(struct transfer *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	free(t->url);
	free(t->redacted);
	free(t->key);
	free(t->sha256);
	free(t);
}

static void
queue_push(dg_fetcher *f, struct transfer *t)
{
	t->state = T_QUEUED;
	t->qnext = NULL;
	if (f->qtail)
		f->qtail->qnext = t;
	else
		f->qhead = t;
	f->qtail = t;
}

static void
queue_remove(dg_fetcher *f, struct transfer *t)
{
	struct transfer **pp, *prev = NULL;

	for (pp = &f->qhead; *pp; prev = *pp, pp = &(*pp)->qnext)
		if (*pp == t) {
			*pp = t->qnext;
			if (f->qtail == t)
				f->qtail = prev;
			t->qnext = NULL;
			return;
		}
}

/* Strict "bytes START-END/TOTAL" or "bytes * /TOTAL" (no space); a part
 * that is "*" or absent is returned as -1. Returns -1 when malformed. */
static int
parse_content_range(const char *v, int64_t *start, int64_t *total)
{
	char buf[64], *slash, *dash;
	uint64_t n;

	*start = *total = -1;
	while (*v == ' ')
		v++;
	if (strncasecmp(v, "bytes ", 6) != 0 || strlen(v + 6) >= sizeof(buf))
		return -1;
	strcpy(buf, v + 6);
	slash = strchr(buf, '/');
	if (!slash)
		return -1;
	*slash++ = '\0';
	if (strcmp(slash, "*") != 0) {
		if (dg_util_parse_u64(slash, 0, INT64_MAX, &n) != DG_OK)
			return -1;
		*total = (int64_t)n;
	}
	if (strcmp(buf, "*") == 0)
		return 0;
	dash = strchr(buf, '-');
	if (!dash)
		return -1;
	*dash = '\0';
	if (dg_util_parse_u64(buf, 0, INT64_MAX, &n) != DG_OK)
		return -1;
	*start = (int64_t)n;
	return 0;
}

static int
content_range(struct transfer *t, int64_t *start, int64_t *total)
{
	struct curl_header *h;

	if (curl_easy_header(t->easy, "Content-Range", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return -1;
	return parse_content_range(h->value, start, total);
}

/* The first look at a 2xx response of an attempt: decide what the body
 * means for what the sink holds. Returns 0, or -1 with t->abort or
 * t->restart_retry set. */
static int
body_start(struct transfer *t, long code)
{
	curl_off_t cl = -1;
	int64_t start, total;
	dg_err e;

	t->body_started = 1;
	if (code < 200 || code > 299)
		return 0;
	if (code == 206) {
		if (content_range(t, &start, &total) != 0 || start != (int64_t)t->offset) {
			dg_log_warn("fetch %s: 206 for another range than bytes=%" PRIu64 "-",
			    t->redacted, t->offset);
			t->restart_retry = 1;
			return -1;
		}
	} else if (t->offset > 0) {
		/* the whole body, not the rest: drop what we have */
		dg_log_info("fetch %s: server ignored the range (HTTP %ld), restarting from 0",
		    t->redacted, code);
		e = t->sink.restart(t->sink.arg);
		t->stats.restarts++;
		if (e != DG_OK) {
			t->stats.sink_err = e;
			t->abort = DG_ERR_FETCH_SINK;
			return -1;
		}
		t->offset = 0;
	}
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	if (t->expected_size && cl >= 0 && t->offset + (uint64_t)cl > t->expected_size) {
		dg_log_warn("fetch %s: server announces %" PRIu64 " bytes, expected %" PRIu64,
		    t->redacted, t->offset + (uint64_t)cl, t->expected_size);
		t->abort = DG_ERR_FETCH_TOO_BIG;
		return -1;
	}
	t->passing = 1;
	return 0;
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;
	long code = 0;
	dg_err e;

	if (!t->body_started) {
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
		if (body_start(t, code) != 0)
			return 0;
	}
	if (!t->passing)
		return len;  /* an error page: read and drop, keeps the connection */
	if (t->expected_size && t->offset + t->received + len > t->expected_size) {
		dg_log_warn("fetch %s: body exceeds the expected %" PRIu64 " bytes",
		    t->redacted, t->expected_size);
		t->abort = DG_ERR_FETCH_TOO_BIG;
		return 0;
	}
	e = t->sink.write(t->sink.arg, ptr, len);
	if (e != DG_OK) {
		t->stats.sink_err = e;
		t->abort = DG_ERR_FETCH_SINK;
		return 0;
	}
	t->received += len;
	t->stats.bytes_received += len;
	DG_FAULT("fetch/after-chunk", {
		t->stats.sink_err = dg_err_from_errno(errno);
		t->abort = DG_ERR_FETCH_SINK;
		return 0;
	});
	return len;
}

static void
unlink_transfer(dg_fetcher *f, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (f->transfers == t)
		f->transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	f->ntransfers--;
}

/* Tell the sink and every waiting fetch; free t. */
static void
finish_transfer(struct transfer *t, dg_err outcome)
{
	dg_fetcher *f = t->f;
	dg_fetch *w;
	dg_err e;

	t->finishing = 1;
	t->state = T_IDLE;
	unlink_transfer(f, t);  /* a new start with the same key opens a new one */
	t->stats.size = t->offset + t->received;
	t->stats.elapsed_ms = dg_util_now_ms() - t->start_ms;
	if (outcome == DG_OK)
		DG_FAULT("fetch/before-rename", outcome = DG_ERR_FETCH_SINK; t->stats.sink_err = dg_err_from_errno(errno));
	if (t->sink.finish) {
		e = t->sink.finish(t->sink.arg, outcome);
		if (outcome == DG_OK && e != DG_OK) {
			t->stats.sink_err = e;
			outcome = DG_ERR_FETCH_SINK;
		}
	}
	if (outcome == DG_OK)
		dg_log_info("fetch %s: done, %" PRIu64 " bytes (%" PRIu64 " received, "
		    "%u attempts, %u waiting)", t->redacted, t->stats.size,
		    t->stats.bytes_received, t->stats.attempts, t->nfetches);
	else if (outcome != DG_ERR_CANCELED)
		dg_log_warn("fetch %s: failed: %s (HTTP %ld, %u attempts, %u waiting)",
		    t->redacted, outcome == DG_ERR_FETCH_SINK ?
		    dg_strerror(t->stats.sink_err) : dg_strerror(outcome),
		    t->stats.http_code, t->stats.attempts, t->nfetches);
	/* one at a time from the head: a done callback may cancel the others */
	while ((w = t->fetches)) {
		t->fetches = w->next;
		if (w->next)
			w->next->prev = NULL;
		t->nfetches--;
		f->nfetches--;
		w->done(w, outcome, &t->stats, w->arg);
		free(w);
	}
	transfer_free(t);
}

static CURL *
make_easy(struct transfer *t)
{
	dg_fetcher *f = t->f;
	CURL *c = curl_easy_init();
	int https = strncasecmp(t->url, "https:", 6) == 0;
	CURLcode r = CURLE_OK;

	if (!c)
		return NULL;
#define SET(opt, val) do { if (r == CURLE_OK) r = curl_easy_setopt(c, opt, val); } while (0)
	SET(CURLOPT_URL, t->url);
	SET(CURLOPT_PRIVATE, t);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	/* never downgrade: an https download may only be redirected to https */
	SET(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
	SET(CURLOPT_FOLLOWLOCATION, f->opts.max_redirects > 0 ? 1L : 0L);
	SET(CURLOPT_MAXREDIRS, (long)f->opts.max_redirects);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, t);
	SET(CURLOPT_ERRORBUFFER, t->errbuf);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)f->opts.connect_timeout_ms);
	if (f->opts.low_speed_limit) {
		SET(CURLOPT_LOW_SPEED_LIMIT, (long)f->opts.low_speed_limit);
		SET(CURLOPT_LOW_SPEED_TIME, (long)f->opts.low_speed_time);
	}
	SET(CURLOPT_USERAGENT, f->user_agent);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (f->ca_file)
		SET(CURLOPT_CAINFO, f->ca_file);
	if (f->ca_path)
		SET(CURLOPT_CAPATH, f->ca_path);
	if (f->proxy)
		SET(CURLOPT_PROXY, f->proxy);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
#undef SET
	if (r != CURLE_OK) {
		dg_log_err("fetch %s: libcurl option: %s", t->redacted, curl_easy_strerror(r));
		curl_easy_cleanup(c);
		return NULL;
	}
	return c;
}

/* Begin the next attempt of t (a slot is free). */
static void
begin_attempt(struct transfer *t)
{
	dg_fetcher *f = t->f;
	dg_err e;
	/* without an offset callback the sink holds exactly what we gave it */
	uint64_t off = t->sink.offset ? t->sink.offset(t->sink.arg) : t->offset + t->received;

	if (t->restart_retry || (t->expected_size && off > t->expected_size)) {
		e = t->sink.restart(t->sink.arg);
		t->stats.restarts++;
		if (e != DG_OK) {
			t->stats.sink_err = e;
			finish_transfer(t, DG_ERR_FETCH_SINK);
			return;
		}
		off = 0;
	}
	if (t->stats.attempts == 0)
		t->stats.resumed_from = off;
	t->offset = off;
	t->received = 0;
	t->body_started = t->passing = t->restart_retry = 0;
	t->abort = DG_OK;
	t->errbuf[0] = '\0';
	if (t->expected_size && off == t->expected_size) {
		/* already all there; the sink's finish verifies it */
		finish_transfer(t, DG_OK);
		return;
	}
	if (!t->easy && !(t->easy = make_easy(t))) {
		finish_transfer(t, DG_ERR_NOMEM);
		return;
	}
	if (off > 0)
		snprintf(t->range, sizeof(t->range), "%" PRIu64 "-", off);
	curl_easy_setopt(t->easy, CURLOPT_RANGE, off > 0 ? t->range : NULL);
	t->stats.attempts++;
	if (curl_multi_add_handle(f->multi, t->easy) != CURLM_OK) {
		finish_transfer(t, DG_ERR_NOMEM);
		return;
	}
	t->state = T_RUNNING;
	f->running++;
	dg_log_debug("fetch %s: attempt %u from byte %" PRIu64, t->redacted,
	    t->stats.attempts, off);
}

static void
start_queued(dg_fetcher *f)
{
	struct transfer *t;

	while (f->running < f->opts.max_transfers && (t = f->qhead)) {
		f->qhead = t->qnext;
		if (!f->qhead)
			f->qtail = NULL;
		t->qnext = NULL;
		t->state = T_IDLE;
		begin_attempt(t);
	}
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct transfer *t = arg;

	(void)fd;
	(void)what;
	queue_push(t->f, t);
	start_queued(t->f);
}

static int
is_tls_failure(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CRL_BADFILE:
		return 1;
	default:
		return 0;
	}
}

/* What an ended attempt means: the outcome, and whether to try again. */
static dg_err
classify(struct transfer *t, CURLcode rc, long code, int *retry, char *why, size_t whylen)
{
	char red[CURL_ERROR_SIZE + 16];
	curl_off_t connect_us = 0;
	int64_t start, total;

	*retry = 0;
	if (t->abort != DG_OK) {
		snprintf(why, whylen, "%s", dg_strerror(t->abort));
		return t->abort;
	}
	if (t->restart_retry) {
		snprintf(why, whylen, "response does not match what the sink holds");
		*retry = 1;
		return DG_ERR_FETCH_HTTP;
	}
	if (rc != CURLE_OK) {
		/* libcurl's message may quote a URL: cut any query string */
		dg_log_redact_url(t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc),
		    red, sizeof(red));
		snprintf(why, whylen, "%s", red);
		if (is_tls_failure(rc))
			return DG_ERR_FETCH_TLS;
		if (rc == CURLE_TOO_MANY_REDIRECTS)
			return DG_ERR_FETCH_REDIRECTS;
		if (rc == CURLE_OUT_OF_MEMORY)
			return DG_ERR_NOMEM;
		if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
			return DG_ERR_FETCH_HTTP;
		*retry = 1;
		if (rc == CURLE_OPERATION_TIMEDOUT) {
			/* connected (or answered) and then too slow: a stall */
			curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
			if (connect_us > 0 || code > 0 || t->received > 0)
				return DG_ERR_FETCH_STALLED;
		}
		return DG_ERR_FETCH_NETWORK;
	}
	snprintf(why, whylen, "HTTP %ld", code);
	if (code >= 200 && code <= 299) {
		if (!t->body_started && body_start(t, code) != 0)
			return classify(t, rc, code, retry, why, whylen);
		if (t->expected_size && t->offset + t->received < t->expected_size) {
			snprintf(why, whylen, "body ended at %" PRIu64 " of %" PRIu64 " bytes",
			    t->offset + t->received, t->expected_size);
			return DG_ERR_FETCH_SHORT;
		}
		return DG_OK;
	}
	if (code == 416 && t->offset > 0) {
		/* nothing after our offset: complete, or what we hold is not the
		 * server's file. The Content-Range total tells which; without it
		 * the expected size does; without both the sink's check decides */
		if (content_range(t, &start, &total) != 0)
			total = -1;
		if ((total >= 0 && (uint64_t)total == t->offset &&
		    (!t->expected_size || t->expected_size == t->offset)) ||
		    (total < 0 && (!t->expected_size || t->expected_size == t->offset)))
			return DG_OK;
		t->restart_retry = 1;
		*retry = 1;
		return DG_ERR_FETCH_HTTP;
	}
	if (code == 403)
		return DG_ERR_FETCH_FORBIDDEN;
	if (code == 404 || code == 410)
		return DG_ERR_FETCH_NOT_FOUND;
	if (code >= 500 && code <= 599) {
		*retry = 1;
		return DG_ERR_FETCH_SERVER;
	}
	/* 408 and 429 ask the client to come back later */
	if (code == 408 || code == 429)
		*retry = 1;
	return DG_ERR_FETCH_HTTP;
}

static void
random_u32(uint32_t *r)
{
	if (RAND_bytes((unsigned char *)r, sizeof(*r)) != 1)
		*r = (uint32_t)dg_util_now_ms() * 2654435761u;
}

static void
attempt_done(struct transfer *t, CURLcode rc)
{
	dg_fetcher *f = t->f;
	char why[CURL_ERROR_SIZE + 64];
	struct timeval tv;
	uint64_t delay;
	uint32_t rnd;
	long code = 0;
	dg_err out;
	int retry;

	curl_multi_remove_handle(f->multi, t->easy);
	f->running--;
	t->state = T_IDLE;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code)
		t->stats.http_code = code;
	out = classify(t, rc, code, &retry, why, sizeof(why));
	if (out != DG_OK && retry && t->stats.attempts <= f->opts.retries) {
		random_u32(&rnd);
		delay = dg_fetch_backoff_ms(&f->opts, t->stats.attempts, rnd);
		dg_log_warn("fetch %s: attempt %u failed (%s) at byte %" PRIu64
		    "; retrying in %" PRIu64 " ms", t->redacted, t->stats.attempts, why,
		    t->offset + t->received, delay);
		tv.tv_sec = (time_t)(delay / 1000);
		tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
		t->state = T_BACKOFF;
		evtimer_add(&t->retry_ev, &tv);
	} else {
		if (out != DG_OK)
			dg_log_debug("fetch %s: attempt %u: %s", t->redacted,
			    t->stats.attempts, why);
		finish_transfer(t, out);
	}
	start_queued(f);
}

static void
process_done(dg_fetcher *f)
{
	struct transfer *t;
	CURLMsg *msg;
	CURLcode rc;
	int left;

	while ((msg = curl_multi_info_read(f->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result;
		t = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t)
			attempt_done(t, rc);  /* invalidates msg */
	}
}

/* ---- fetches ---- */

static int
valid_url(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL;
	int ok = 0;

	if (!u)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
		ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
	curl_free(scheme);
	curl_url_cleanup(u);
	return ok;
}

static struct transfer *
find_key(dg_fetcher *f, const char *key)
{
	struct transfer *t;

	for (t = f->transfers; t; t = t->next)
		if (t->key && strcmp(t->key, key) == 0)
			return t;
	return NULL;
}

static void
attach(struct transfer *t, dg_fetch *w)
{
	w->t = t;
	w->prev = NULL;
	w->next = t->fetches;
	if (t->fetches)
		t->fetches->prev = w;
	t->fetches = w;
	t->nfetches++;
	t->stats.waiters++;
	t->f->nfetches++;
}

dg_err
dg_fetch_start(dg_fetcher *f, const dg_fetch_req *req, const dg_fetch_sink *sink,
    dg_fetch_done_cb done, void *arg, dg_fetch **out)
{
	char red[512];
	unsigned char bin[32];
	struct transfer *t = NULL, *running;
	dg_fetch *w = NULL;
	dg_err e = DG_ERR_INVAL;
	size_t i;

	if (!f || !req || !req->url || !done)
		goto fail;
	if (f->in_curl || f->closing) {
		e = DG_ERR_BUSY;
		goto fail;
	}
	if (!valid_url(req->url)) {
		dg_log_err("fetch: not an http(s) URL: %s",
		    dg_log_redact_url(req->url, red, sizeof(red)));
		goto fail;
	}
	if (req->sha256 && (strlen(req->sha256) != 64 ||
	    dg_util_hex_decode(req->sha256, bin, sizeof(bin)) != DG_OK)) {
		dg_log_err("fetch: expected SHA-256 is not 64 hex digits");
		goto fail;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	w->done = done;
	w->arg = arg;
	if (req->key && (running = find_key(f, req->key))) {
		if ((req->expected_size && running->expected_size &&
		    req->expected_size != running->expected_size) ||
		    (req->sha256 && running->sha256 &&
		    strcasecmp(req->sha256, running->sha256) != 0)) {
			dg_log_err("fetch: key %s is in flight for other content", req->key);
			goto fail;
		}
		w->shared = 1;
		attach(running, w);
		dg_log_debug("fetch %s: joined (%u waiting)", running->redacted,
		    running->nfetches);
		if (out)
			*out = w;
		return DG_OK;
	}
	if (!sink || !sink->write || !sink->restart)
		goto fail;
	t = calloc(1, sizeof(*t));
	if (!t) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	t->f = f;
	t->sink = *sink;
	t->expected_size = req->expected_size;
	t->url = strdup(req->url);
	t->redacted = malloc(strlen(req->url) + 16);
	t->key = req->key ? strdup(req->key) : NULL;
	t->sha256 = req->sha256 ? strdup(req->sha256) : NULL;
	if (!t->url || !t->redacted || (req->key && !t->key) || (req->sha256 && !t->sha256)) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if (t->sha256)
		for (i = 0; t->sha256[i]; i++)
			t->sha256[i] = (char)tolower((unsigned char)t->sha256[i]);
	dg_log_redact_url(req->url, t->redacted, strlen(req->url) + 16);
	evtimer_assign(&t->retry_ev, f->base, on_retry, t);
	t->start_ms = dg_util_now_ms();
	t->next = f->transfers;
	if (f->transfers)
		f->transfers->prev = t;
	f->transfers = t;
	f->ntransfers++;
	attach(t, w);
	queue_push(f, t);
	event_active(&f->kick, EV_TIMEOUT, 0);
	dg_log_debug("fetch %s: queued (sha256 %.12s, %" PRIu64 " bytes expected)",
	    t->redacted, t->sha256 ? t->sha256 : "-", t->expected_size);
	if (out)
		*out = w;
	return DG_OK;
fail:
	transfer_free(t);
	free(w);
	return e;
}

int
dg_fetch_is_shared(const dg_fetch *w)
{
	return w ? w->shared : 0;
}

dg_err
dg_fetch_cancel(dg_fetch *w)
{
	struct transfer *t;
	dg_fetcher *f;

	if (!w)
		return DG_ERR_INVAL;
	t = w->t;
	f = t->f;
	if (f->in_curl)
		return DG_ERR_BUSY;
	if (w->prev)
		w->prev->next = w->next;
	else
		t->fetches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	t->nfetches--;
	f->nfetches--;
	w->done(w, DG_ERR_CANCELED, &t->stats, w->arg);
	free(w);
	if (t->nfetches > 0 || t->finishing)
		return DG_OK;
	/* nobody waits any more: stop the download */
	switch (t->state) {
	case T_RUNNING:
		curl_multi_remove_handle(f->multi, t->easy);
		f->running--;
		break;
	case T_QUEUED:
		queue_remove(f, t);
		break;
	case T_BACKOFF:
		event_del(&t->retry_ev);
		break;
	case T_IDLE:
		break;
	}
	dg_log_info("fetch %s: canceled at byte %" PRIu64, t->redacted,
	    t->offset + t->received);
	finish_transfer(t, DG_ERR_CANCELED);
	if (!f->closing)
		start_queued(f);
	return DG_OK;
}
