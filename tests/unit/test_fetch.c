/* Unit tests: dg_fetch (what needs no HTTP server: options, backoff, request
 * validation, dedup bookkeeping, cancel, retries against a refused port,
 * URL redaction in the log, the already-complete path). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dg_fetch.h"
#include "dg_log.h"

#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA_B "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"

struct rec {
	int calls;
	dg_err outcome;
	dg_fetch_stats stats;
	int shared;
};

struct fake_sink {
	uint64_t held;
	int restarts, finishes;
	dg_err finish_outcome;
	dg_err finish_ret;
};

static dg_err
fs_write(void *arg, const void *buf, size_t len)
{
	struct fake_sink *s = arg;

	(void)buf;
	s->held += len;
	return DG_OK;
}

static dg_err
fs_restart(void *arg)
{
	struct fake_sink *s = arg;

	s->held = 0;
	s->restarts++;
	return DG_OK;
}

static uint64_t
fs_offset(void *arg)
{
	return ((struct fake_sink *)arg)->held;
}

static dg_err
fs_finish(void *arg, dg_err outcome)
{
	struct fake_sink *s = arg;

	s->finishes++;
	s->finish_outcome = outcome;
	return s->finish_ret;
}

static void
on_done(dg_fetch *fetch, dg_err outcome, const dg_fetch_stats *stats, void *arg)
{
	struct rec *r = arg;

	r->calls++;
	r->outcome = outcome;
	r->stats = *stats;
	r->shared = dg_fetch_is_shared(fetch);
}

/* A TCP port on 127.0.0.1 that is bound but not listening: connections to it
 * are refused at once. The caller closes *fd. */
static int
refused_port(int *fd)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);

	*fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &alen), 0);
	return ntohs(a.sin_port);
}

static void
test_opts_defaults_and_ranges(void **state)
{
	dg_fetch_opts o;
	struct event_base *base = event_base_new();
	dg_fetcher *f;
	dg_err e = DG_OK;

	(void)state;
	dg_fetch_opts_init(&o);
	assert_int_equal(dg_fetch_opts_check(&o), DG_OK);
	assert_int_equal(o.max_transfers, 4);
	assert_int_equal(o.retries, 5);
	assert_true(o.low_speed_limit > 0);  /* stall detection on by default */

#define BAD(field, value, err) \
	do { \
		dg_fetch_opts_init(&o); \
		o.field = value; \
		assert_int_equal(dg_fetch_opts_check(&o), err); \
		e = DG_OK; \
		assert_null(dg_fetcher_new(base, &o, &e)); \
		assert_int_equal(e, err); \
	} while (0)
	BAD(max_transfers, 0, DG_ERR_INVAL);
	BAD(max_transfers, 1025, DG_ERR_INVAL);
	BAD(connect_timeout_ms, 99, DG_ERR_INVAL);
	BAD(low_speed_time, 0, DG_ERR_INVAL);
	BAD(retries, 1001, DG_ERR_INVAL);
	BAD(backoff_min_ms, 0, DG_ERR_INVAL);
	BAD(backoff_max_ms, 999, DG_ERR_INVAL);  /* below backoff_min_ms */
	BAD(max_redirects, 51, DG_ERR_INVAL);
	BAD(user_agent, "evil\r\nX-Injected: 1", DG_ERR_INVAL);
	BAD(ca_file, "/nonexistent/ca.pem", DG_ERR_NOENT);
	BAD(ca_path, "/nonexistent/certs", DG_ERR_NOENT);
#undef BAD
	/* stall detection can be switched off; verification cannot (no field) */
	dg_fetch_opts_init(&o);
	o.low_speed_limit = 0;
	f = dg_fetcher_new(base, &o, &e);
	assert_non_null(f);
	assert_int_equal(dg_fetcher_transfers(f), 0);
	dg_fetcher_free(f);
	assert_null(dg_fetcher_new(NULL, &o, &e));
	assert_int_equal(e, DG_ERR_INVAL);
	dg_fetcher_free(NULL);
	event_base_free(base);
}

static void
test_backoff(void **state)
{
	dg_fetch_opts o;
	unsigned a;

	(void)state;
	dg_fetch_opts_init(&o);
	o.backoff_min_ms = 1000;
	o.backoff_max_ms = 10000;
	/* equal jitter: [d/2, d] with d doubling from min up to max */
	assert_int_equal(dg_fetch_backoff_ms(&o, 1, 0), 500);
	assert_int_equal(dg_fetch_backoff_ms(&o, 1, UINT32_MAX), 1000);
	assert_int_equal(dg_fetch_backoff_ms(&o, 2, UINT32_MAX), 2000);
	assert_int_equal(dg_fetch_backoff_ms(&o, 3, 0), 2000);
	assert_int_equal(dg_fetch_backoff_ms(&o, 4, UINT32_MAX), 8000);
	assert_int_equal(dg_fetch_backoff_ms(&o, 5, UINT32_MAX), 10000);
	assert_int_equal(dg_fetch_backoff_ms(&o, 5, 0), 5000);
	for (a = 1; a < 1000; a += 37) {
		uint64_t d = dg_fetch_backoff_ms(&o, a, 0x80000000u);

		assert_true(d >= 500 && d <= 10000);
	}
	/* no overflow at huge attempt numbers */
	assert_int_equal(dg_fetch_backoff_ms(&o, 100000, UINT32_MAX), 10000);
	/* jitter actually varies with rnd */
	assert_true(dg_fetch_backoff_ms(&o, 3, 1u << 30) != dg_fetch_backoff_ms(&o, 3, 3u << 30));
}

static void
test_start_validation(void **state)
{
	struct event_base *base = event_base_new();
	struct fake_sink fs = { 0 };
	dg_fetch_sink sink = { fs_write, fs_restart, fs_offset, fs_finish, &fs };
	dg_fetch_sink nowrite = { NULL, fs_restart, fs_offset, NULL, &fs };
	dg_fetch_req req = { "https://example.invalid/fw.bin", 0, NULL, NULL };
	struct rec r = { 0 };
	dg_fetch_opts o;
	dg_fetcher *f;
	dg_fetch *h = NULL;

	(void)state;
	dg_fetch_opts_init(&o);
	f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(f);
	req.url = "ftp://example.invalid/fw.bin";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.url = "file:///etc/passwd";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.url = "not a url";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.url = NULL;
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.url = "https://example.invalid/fw.bin";
	req.sha256 = "abc";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.sha256 = SHA_A "00";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.sha256 = "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_ERR_INVAL);
	req.sha256 = SHA_A;
	assert_int_equal(dg_fetch_start(f, &req, &sink, NULL, &r, &h), DG_ERR_INVAL);
	assert_int_equal(dg_fetch_start(f, &req, &nowrite, on_done, &r, &h), DG_ERR_INVAL);
	assert_int_equal(dg_fetch_start(f, &req, NULL, on_done, &r, &h), DG_ERR_INVAL);
	assert_int_equal(dg_fetcher_transfers(f), 0);
	assert_int_equal(dg_fetcher_fetches(f), 0);
	assert_int_equal(r.calls, 0);
	/* upper-case hex is a valid SHA-256 */
	req.sha256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r, &h), DG_OK);
	assert_int_equal(dg_fetcher_transfers(f), 1);
	assert_int_equal(dg_fetch_cancel(h), DG_OK);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.outcome, DG_ERR_CANCELED);
	dg_fetcher_free(f);
	event_base_free(base);
}

static void
test_dedup_bookkeeping(void **state)
{
	struct event_base *base = event_base_new();
	struct fake_sink fs1 = { 0 }, fs2 = { 0 };
	dg_fetch_sink s1 = { fs_write, fs_restart, fs_offset, fs_finish, &fs1 };
	dg_fetch_sink s2 = { fs_write, fs_restart, fs_offset, fs_finish, &fs2 };
	dg_fetch_req req = { "https://a.invalid/x?sig=1", 100, SHA_A, SHA_A };
	struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 }, r4 = { 0 };
	dg_fetch *h1, *h2, *h3, *h4;
	dg_fetch_opts o;
	dg_fetcher *f;

	(void)state;
	dg_fetch_opts_init(&o);
	f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(f);
	assert_int_equal(dg_fetch_start(f, &req, &s1, on_done, &r1, &h1), DG_OK);
	/* another URL (another mirror) for the same content joins the transfer */
	req.url = "https://b.invalid/y";
	assert_int_equal(dg_fetch_start(f, &req, &s2, on_done, &r2, &h2), DG_OK);
	assert_int_equal(dg_fetch_start(f, &req, NULL, on_done, &r3, &h3), DG_OK);
	assert_int_equal(dg_fetcher_transfers(f), 1);
	assert_int_equal(dg_fetcher_fetches(f), 3);
	assert_false(dg_fetch_is_shared(h1));
	assert_true(dg_fetch_is_shared(h2));
	assert_true(dg_fetch_is_shared(h3));
	/* the same key for other content is refused */
	req.sha256 = SHA_B;
	assert_int_equal(dg_fetch_start(f, &req, &s2, on_done, &r4, &h4), DG_ERR_INVAL);
	req.sha256 = SHA_A;
	req.expected_size = 101;
	assert_int_equal(dg_fetch_start(f, &req, &s2, on_done, &r4, &h4), DG_ERR_INVAL);
	/* another key is another transfer */
	req.expected_size = 100;
	req.key = SHA_B;
	req.sha256 = SHA_B;
	assert_int_equal(dg_fetch_start(f, &req, &s2, on_done, &r4, &h4), DG_OK);
	assert_false(dg_fetch_is_shared(h4));
	assert_int_equal(dg_fetcher_transfers(f), 2);
	assert_int_equal(dg_fetcher_fetches(f), 4);
	/* canceling the starter leaves the transfer to the others */
	assert_int_equal(dg_fetch_cancel(h1), DG_OK);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.outcome, DG_ERR_CANCELED);
	assert_int_equal(dg_fetcher_transfers(f), 2);
	assert_int_equal(fs1.finishes, 0);
	assert_int_equal(dg_fetch_cancel(h2), DG_OK);
	assert_int_equal(fs1.finishes, 0);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r3.calls, 0);
	/* the last one stops it: the (first) sink is told once */
	assert_int_equal(dg_fetch_cancel(h3), DG_OK);
	assert_int_equal(r3.outcome, DG_ERR_CANCELED);
	assert_int_equal(r3.stats.waiters, 3);
	assert_int_equal(fs1.finishes, 1);
	assert_int_equal(fs1.finish_outcome, DG_ERR_CANCELED);
	assert_int_equal(fs2.finishes, 0);
	assert_int_equal(dg_fetcher_transfers(f), 1);
	assert_int_equal(dg_fetcher_fetches(f), 1);
	/* freeing the fetcher cancels what is left */
	dg_fetcher_free(f);
	assert_int_equal(r4.calls, 1);
	assert_int_equal(r4.outcome, DG_ERR_CANCELED);
	assert_int_equal(fs2.finishes, 1);
	assert_int_equal(r1.calls + r2.calls + r3.calls, 3);
	event_base_free(base);
}

/* Retries against a refused port end in DG_ERR_FETCH_NETWORK after
 * 1 + retries attempts; every attached fetch learns it once; the URL's query
 * string never reaches the log. */
static void
test_retries_refused_and_redaction(void **state)
{
	struct event_base *base = event_base_new();
	struct fake_sink fs = { 0 };
	dg_fetch_sink sink = { fs_write, fs_restart, fs_offset, fs_finish, &fs };
	struct rec r[3] = { { 0 } };
	char url[128], logpath[] = "/tmp/dg_fetch_log_XXXXXX", *log = NULL;
	dg_fetch_req req = { url, 0, NULL, "k" };
	dg_fetch_opts o;
	dg_fetcher *f;
	int sfd, port, logfd, saved, i;
	FILE *lf;
	long n;

	(void)state;
	port = refused_port(&sfd);
	snprintf(url, sizeof(url),
	    "http://127.0.0.1:%d/fw.bin?X-Amz-Signature=SECRETSIG&X-Amz-Expires=60", port);
	dg_fetch_opts_init(&o);
	o.retries = 2;
	o.backoff_min_ms = 1;
	o.backoff_max_ms = 2;
	f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(f);

	logfd = mkstemp(logpath);
	assert_true(logfd >= 0);
	saved = dup(2);
	dup2(logfd, 2);
	dg_log_set_level(DG_LOG_DEBUG);
	for (i = 0; i < 3; i++)
		assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r[i], NULL), DG_OK);
	assert_int_equal(dg_fetcher_transfers(f), 1);
	event_base_dispatch(base);  /* returns when no event is left */
	dg_log_set_level(DG_LOG_INFO);
	dup2(saved, 2);
	close(saved);

	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].outcome, DG_ERR_FETCH_NETWORK);
		assert_int_equal(r[i].stats.attempts, 3);
		assert_int_equal(r[i].stats.http_code, 0);
		assert_int_equal(r[i].stats.waiters, 3);
	}
	assert_int_equal(fs.finishes, 1);
	assert_int_equal(fs.finish_outcome, DG_ERR_FETCH_NETWORK);
	assert_int_equal(dg_fetcher_transfers(f), 0);
	assert_int_equal(dg_fetcher_fetches(f), 0);

	lf = fdopen(logfd, "r");
	assert_non_null(lf);
	fseek(lf, 0, SEEK_END);
	n = ftell(lf);
	rewind(lf);
	assert_true(n > 0);
	log = calloc(1, (size_t)n + 1);
	assert_non_null(log);
	assert_int_equal(fread(log, 1, (size_t)n, lf), (size_t)n);
	fclose(lf);
	unlink(logpath);
	assert_non_null(strstr(log, "fw.bin?<redacted>"));
	assert_non_null(strstr(log, "retrying"));
	assert_null(strstr(log, "SECRETSIG"));
	assert_null(strstr(log, "X-Amz"));
	free(log);
	close(sfd);
	dg_fetcher_free(f);
	event_base_free(base);
}

/* A sink that already holds the expected size needs no request; its finish
 * decides: DG_OK, or an error that becomes DG_ERR_FETCH_SINK for everyone. */
static void
test_already_complete(void **state)
{
	struct event_base *base = event_base_new();
	struct fake_sink fs = { .held = 100 };
	dg_fetch_sink sink = { fs_write, fs_restart, fs_offset, fs_finish, &fs };
	dg_fetch_req req = { "https://nowhere.invalid/fw.bin", 100, SHA_A, SHA_A };
	struct rec r1 = { 0 }, r2 = { 0 };
	dg_fetch_opts o;
	dg_fetcher *f;

	(void)state;
	dg_fetch_opts_init(&o);
	f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(f);
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r1, NULL), DG_OK);
	assert_int_equal(r1.calls, 0);  /* never from inside start */
	event_base_dispatch(base);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.outcome, DG_OK);
	assert_int_equal(r1.stats.attempts, 0);
	assert_int_equal(r1.stats.size, 100);
	assert_int_equal(r1.stats.resumed_from, 100);
	assert_int_equal(fs.finishes, 1);

	/* the sink's verification fails: both fetches see DG_ERR_FETCH_SINK */
	fs.finish_ret = DG_ERR_NOSPC;
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r1, NULL), DG_OK);
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r2, NULL), DG_OK);
	event_base_dispatch(base);
	assert_int_equal(r1.calls, 2);
	assert_int_equal(r1.outcome, DG_ERR_FETCH_SINK);
	assert_int_equal(r1.stats.sink_err, DG_ERR_NOSPC);
	assert_int_equal(r2.outcome, DG_ERR_FETCH_SINK);
	assert_int_equal(fs.finishes, 2);

	/* more than expected held: the sink is told to start over (and then,
	 * with nothing reachable, the attempt fails) */
	fs.held = 150;
	fs.finish_ret = DG_OK;
	o.retries = 0;
	dg_fetcher_free(f);
	f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(f);
	req.url = "http://127.0.0.1:1/fw.bin";
	assert_int_equal(dg_fetch_start(f, &req, &sink, on_done, &r1, NULL), DG_OK);
	event_base_dispatch(base);
	assert_int_equal(fs.restarts, 1);
	assert_int_equal(fs.held, 0);
	assert_int_equal(r1.outcome, DG_ERR_FETCH_NETWORK);
	assert_int_equal(r1.stats.restarts, 1);
	dg_fetcher_free(f);
	event_base_free(base);
}

/* A done callback may start a fetch with the key that just ended: it gets
 * a new transfer. */
static struct {
	dg_fetcher *f;
	dg_fetch_sink sink;
	dg_fetch_req req;
	struct rec again;
	dg_err start_err;
} chain;

static void
on_done_restart(dg_fetch *fetch, dg_err outcome, const dg_fetch_stats *stats, void *arg)
{
	on_done(fetch, outcome, stats, arg);
	chain.start_err = dg_fetch_start(chain.f, &chain.req, &chain.sink, on_done,
	    &chain.again, NULL);
}

static void
test_start_from_done(void **state)
{
	struct event_base *base = event_base_new();
	struct fake_sink fs = { .held = 10 };
	struct rec r = { 0 };
	dg_fetch_opts o;

	(void)state;
	dg_fetch_opts_init(&o);
	chain.f = dg_fetcher_new(base, &o, NULL);
	assert_non_null(chain.f);
	chain.sink = (dg_fetch_sink){ fs_write, fs_restart, fs_offset, fs_finish, &fs };
	chain.req = (dg_fetch_req){ "https://nowhere.invalid/a", 10, NULL, "same" };
	assert_int_equal(dg_fetch_start(chain.f, &chain.req, &chain.sink, on_done_restart,
	    &r, NULL), DG_OK);
	event_base_dispatch(base);
	assert_int_equal(r.calls, 1);
	assert_int_equal(chain.start_err, DG_OK);
	assert_int_equal(chain.again.calls, 1);
	assert_int_equal(chain.again.outcome, DG_OK);
	assert_false(chain.again.shared);
	assert_int_equal(fs.finishes, 2);
	dg_fetcher_free(chain.f);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts_defaults_and_ranges),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_start_validation),
		cmocka_unit_test(test_dedup_bookkeeping),
		cmocka_unit_test(test_retries_refused_and_redaction),
		cmocka_unit_test(test_already_complete),
		cmocka_unit_test(test_start_from_done),
	};

	dg_log_open("test_fetch", 0, DG_LOG_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
