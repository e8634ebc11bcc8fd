/* dg_fetch - HTTP(S) downloads on libcurl's multi interface, driven by the
 * process's one libevent loop (no threads).
 *
 * A dg_fetcher owns a curl multi handle and the events it needs. Each
 * dg_fetch_start() either opens a transfer or, when another transfer with
 * the same dedup key is in flight, attaches to it: N devices needing the
 * same content cause one download, and every attached fetch's done callback
 * runs when that download ends.
 *
 * The bytes go to a sink the caller provides (the cache's resumable writer
 * plugs in): the fetcher asks the sink how many bytes it already holds and
 * resumes with "Range: bytes=N-"; it never hashes (the sink verifies), but it
 * refuses a body longer than the expected size. Transient failures (5xx,
 * network errors, stalls) are retried with exponential backoff and jitter,
 * resuming from the sink's offset; 403, 404/410, other 4xx and TLS
 * verification failures are final at once. Certificate verification is
 * always on. URLs are opaque (may be pre-signed): their query strings never
 * reach a log. See docs/fetch.md.
 *
 * Callbacks (sink and done) run in the loop's thread. What they must not do:
 * - sink callbacks run inside libcurl: they must not call dg_fetch_start(),
 *   dg_fetch_cancel() or dg_fetcher_free() (those return DG_ERR_BUSY or, for
 *   free, abort); to stop a transfer a sink returns an error, to cancel from
 *   there schedule the cancel on the loop (event_active / a zero timer);
 * - done callbacks may start new fetches and cancel other fetches, but must
 *   not call dg_fetcher_free(), and must not use the fetch they are given
 *   after returning (it is freed then).
 */
#ifndef DG_FETCH_H
#define DG_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

struct event_base;

typedef struct dg_fetcher dg_fetcher;
typedef struct dg_fetch dg_fetch;

/* Settings of a fetcher. Start from dg_fetch_opts_init() and change fields.
 * Strings are copied by dg_fetcher_new(). */
typedef struct dg_fetch_opts {
	const char *ca_file;       /* PEM bundle of trusted CAs; NULL: libcurl's default */
	const char *ca_path;       /* hashed CA directory; NULL: libcurl's default */
	const char *proxy;         /* NULL: libcurl's environment (https_proxy,
	                            * no_proxy...); "": no proxy; else proxy URL */
	const char *user_agent;    /* NULL: "deltagate/VERSION" */
	unsigned max_transfers;    /* transfers at once, others queue: 1..1024 (4) */
	unsigned connect_timeout_ms; /* per attempt: 100..600000 (15000) */
	unsigned low_speed_limit;  /* bytes/s under which a transfer stalls;
	                            * 0 disables stall detection (1024) */
	unsigned low_speed_time;   /* seconds below the limit before abort: 1..3600 (30) */
	unsigned retries;          /* retries after the first attempt: 0..1000 (5) */
	unsigned backoff_min_ms;   /* first retry delay: 1..3600000 (1000) */
	unsigned backoff_max_ms;   /* cap of the doubling delay: >= min, <= 3600000 (60000) */
	unsigned max_redirects;    /* redirects followed: 0..50 (5) */
} dg_fetch_opts;

/* Fill o with the defaults given in parentheses above. */
void dg_fetch_opts_init(dg_fetch_opts *o);

/* Check o's ranges. DG_ERR_INVAL (logged with the field's name) on a bad
 * value, a user agent with control characters, or backoff_min > max;
 * DG_ERR_NOENT if ca_file or ca_path does not exist. */
dg_err dg_fetch_opts_check(const dg_fetch_opts *o);

/* A fetcher on base (which the caller keeps alive past dg_fetcher_free).
 * NULL with *err set: the errors of dg_fetch_opts_check(), DG_ERR_NOMEM,
 * DG_ERR_INTERNAL if libcurl cannot be initialised. */
dg_fetcher *dg_fetcher_new(struct event_base *base, const dg_fetch_opts *opts, dg_err *err);

/* Cancel every fetch in flight (each done callback runs with
 * DG_ERR_CANCELED, each sink's finish too), then free. NULL is a no-op.
 * Not from inside any fetch callback. */
void dg_fetcher_free(dg_fetcher *f);

/* Number of distinct transfers (running, queued or waiting to retry) and of
 * fetches (handles, including the attached ones) alive in f. */
unsigned dg_fetcher_transfers(const dg_fetcher *f);
unsigned dg_fetcher_fetches(const dg_fetcher *f);

/* Where the body goes. The struct is copied at start; arg must stay valid
 * until finish has run (or, without finish, until the last done callback
 * of the transfer). Error codes returned by the sink are kept in the stats
 * (sink_err) and the outcome is DG_ERR_FETCH_SINK. */
typedef struct dg_fetch_sink {
	/* Append len bytes. Return DG_OK, or an error to abort (not retried). */
	dg_err (*write)(void *arg, const void *buf, size_t len);
	/* Drop everything held and start over from byte 0 (the server ignored
	 * the Range, or what is held is inconsistent with the server). */
	dg_err (*restart)(void *arg);
	/* Bytes already held; asked before every attempt. NULL: the sink holds
	 * exactly what it was given (0 at the start). */
	uint64_t (*offset)(void *arg);
	/* Optional: called once when the transfer is over, before the done
	 * callbacks, with the outcome. When outcome is DG_OK the sink verifies
	 * (size, SHA-256) and commits; an error it returns turns every done
	 * callback's outcome into DG_ERR_FETCH_SINK. Ignored otherwise. */
	dg_err (*finish)(void *arg, dg_err outcome);
	void *arg;
} dg_fetch_sink;

/* One download request. Strings are copied at start. */
typedef struct dg_fetch_req {
	const char *url;          /* http:// or https://; opaque, never logged whole */
	uint64_t expected_size;   /* 0: unknown; else a longer body is refused */
	const char *sha256;       /* expected SHA-256, 64 hex digits, or NULL; the
	                           * sink verifies it; used in logs and to check
	                           * that fetches sharing a key agree */
	const char *key;          /* dedup key (e.g. the SHA-256) or NULL: none */
} dg_fetch_req;

/* What happened, for logs and tests. For attached fetches these are the
 * shared transfer's figures. */
typedef struct dg_fetch_stats {
	uint64_t bytes_received;  /* body bytes handed to the sink, all attempts */
	uint64_t resumed_from;    /* the sink's offset at the first attempt */
	uint64_t size;            /* the sink's offset at the end */
	long http_code;           /* last HTTP status seen, 0 if none */
	unsigned attempts;        /* requests made (0: the sink was already complete) */
	unsigned restarts;        /* times the sink was told to start over */
	unsigned waiters;         /* fetches that were attached to the transfer */
	dg_err sink_err;          /* the sink's error when outcome is DG_ERR_FETCH_SINK */
	uint64_t elapsed_ms;      /* from start to completion */
} dg_fetch_stats;

/* Called once per fetch with its outcome: DG_OK or one of
 * DG_ERR_FETCH_FORBIDDEN (403), DG_ERR_FETCH_NOT_FOUND (404/410),
 * DG_ERR_FETCH_HTTP (other status not retried), DG_ERR_FETCH_SERVER (5xx),
 * DG_ERR_FETCH_NETWORK, DG_ERR_FETCH_STALLED (these three after the retries),
 * DG_ERR_FETCH_TOO_BIG, DG_ERR_FETCH_SHORT, DG_ERR_FETCH_TLS,
 * DG_ERR_FETCH_REDIRECTS, DG_ERR_FETCH_SINK, DG_ERR_CANCELED, DG_ERR_NOMEM.
 * fetch and stats are valid only during the call. */
typedef void (*dg_fetch_done_cb)(dg_fetch *fetch, dg_err outcome,
    const dg_fetch_stats *stats, void *arg);

/* Start downloading req into sink, or attach to the transfer in flight with
 * the same req->key (then sink is not used and may be NULL). *out (may be
 * NULL) receives a handle valid until done runs or dg_fetch_cancel().
 * The first attempt starts from the loop, never inside this call.
 * Errors (done will not be called): DG_ERR_INVAL for a NULL req, url or
 * done, a URL that is not http(s), a malformed sha256, a missing sink (or one
 * without write/restart) when no transfer runs for the key, or a key whose
 * running transfer expects another size or SHA-256;
 * DG_ERR_BUSY from a sink callback; DG_ERR_NOMEM. */
dg_err dg_fetch_start(dg_fetcher *f, const dg_fetch_req *req, const dg_fetch_sink *sink,
    dg_fetch_done_cb done, void *arg, dg_fetch **out);

/* Nonzero when fetch was attached to a transfer another fetch started. */
int dg_fetch_is_shared(const dg_fetch *fetch);

/* Cancel fetch: its done callback runs with DG_ERR_CANCELED before this
 * returns, and fetch is freed. The transfer stops when no fetch is left on
 * it (the sink's finish then gets DG_ERR_CANCELED; what it holds stays for a
 * later resume). DG_ERR_BUSY from a sink callback (nothing done). */
dg_err dg_fetch_cancel(dg_fetch *fetch);

/* Delay before retry number attempt (1 = first retry): backoff_min_ms
 * doubled per attempt, capped at backoff_max_ms, then scaled into
 * [delay/2, delay] by rnd (uniform 32-bit random): "equal jitter". */
uint64_t dg_fetch_backoff_ms(const dg_fetch_opts *o, unsigned attempt, uint32_t rnd);

#endif
