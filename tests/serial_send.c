/* serial_send - a serial protocol engine (dg_sproto) driven over a real
 * tty (dg_serial_line) with a poll loop, for tests against real peers
 * (lrzsz's rb) and for benchmarks.
 *
 * serial_send [-b baud] [-t unit_timeout_ms] [-r retries] [-l lock_dir]
 *             [-p protocol] [-o key=value]... TTY FILE
 * Exit: 0 the device took the image; 1 the transfer failed (the result
 * code is printed as "result 0x..."); 2 bad usage or line set-up. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "dg_log.h"
#include "dg_serial_line.h"
#include "dg_sproto.h"

struct drv {
	dg_serial_line *line;
	uint8_t *out;
	size_t outlen, outcap;
	int64_t deadline;     /* ms, monotonic; -1: no timer */
	int done, ok;
	uint32_t ext;
	unsigned retransmits;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
d_write(void *arg, const void *buf, size_t n)
{
	struct drv *d = arg;

	if (d->outlen + n > d->outcap) {
		size_t cap = (d->outlen + n) * 2;
		uint8_t *p = realloc(d->out, cap);

		if (!p)
			return -1;
		d->out = p;
		d->outcap = cap;
	}
	memcpy(d->out + d->outlen, buf, n);
	d->outlen += n;
	return 0;
}

static void
d_flush(void *arg)
{
	struct drv *d = arg;

	d->outlen = 0;
	dg_serial_line_flush(d->line);
}

static void
d_timer(void *arg, int ms)
{
	struct drv *d = arg;

	d->deadline = ms < 0 ? -1 : now_ms() + ms;
}

static int
d_lines(void *arg, int dtr, int rts)
{
	struct drv *d = arg;

	return dg_serial_line_modem(d->line, dtr, rts) == DG_OK ? 0 : -1;
}

static int
d_parity(void *arg, dg_sproto_parity p)
{
	struct drv *d = arg;

	return dg_serial_line_parity(d->line, p == DG_SPROTO_PARITY_EVEN ? 'e' :
	    p == DG_SPROTO_PARITY_ODD ? 'o' : 'n') == DG_OK ? 0 : -1;
}

static void
d_done(void *arg, int ok, uint32_t ext, const char *detail, unsigned retransmits)
{
	struct drv *d = arg;

	d->done = 1;
	d->ok = ok;
	d->ext = ext;
	d->retransmits = retransmits;
	fprintf(stderr, "serial_send: %s\n", detail);
}

static void
d_log(void *arg, const char *msg)
{
	(void)arg;
	dg_log_debug("%s", msg);
}

static int
usage(void)
{
	fprintf(stderr, "usage: serial_send [-b baud] [-t ms] [-r retries] [-l lock_dir] "
	    "[-p protocol] [-o key=value]... TTY FILE\n");
	return 2;
}

static long
num(const char *s, long lo, long hi, int *bad)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		*bad = 1;
	return v;
}

int
main(int argc, char **argv)
{
	dg_serial_opts so;
	dg_sproto_params p;
	dg_sproto_io io;
	const struct dg_sproto_ops *ops;
	const char *proto = "ymodem", *opts[16];
	size_t nopts = 0;
	struct drv d;
	dg_sproto *s = NULL;
	uint8_t *img = NULL;
	struct stat st;
	char why[200];
	dg_err err;
	int c, bad = 0, fd, rc = 2;
	int64_t t0;

	dg_log_open("serial_send", 0, getenv("DG_DEBUG") ? DG_LOG_DEBUG : DG_LOG_INFO);
	memset(&p, 0, sizeof(p));
	memset(&d, 0, sizeof(d));
	dg_serial_opts_init(&so);
	so.lock_dir = getenv("DG_LOCK_DIR") ? getenv("DG_LOCK_DIR") : "";
	while ((c = getopt(argc, argv, "b:t:r:l:p:o:")) != -1) {
		switch (c) {
		case 'b': so.baud = num(optarg, 0, 10000000, &bad); break;
		case 't': p.unit_timeout_ms = (int)num(optarg, 1, 600000, &bad); break;
		case 'r': p.max_retries = (unsigned)num(optarg, 1, 1000, &bad); break;
		case 'l': so.lock_dir = optarg; break;
		case 'p': proto = optarg; break;
		case 'o':
			if (nopts + 1 >= sizeof(opts) / sizeof(opts[0]))
				return usage();
			opts[nopts++] = optarg;
			break;
		default: return usage();
		}
	}
	opts[nopts] = NULL;
	if (bad || argc - optind != 2)
		return usage();
	if (!(ops = dg_sproto_find(proto))) {
		fprintf(stderr, "serial_send: unknown protocol '%s'\n", proto);
		return 2;
	}
	if ((fd = open(argv[optind + 1], O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "serial_send: %s: %s\n", argv[optind + 1], strerror(errno));
		return 2;
	}
	img = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!img || read(fd, img, (size_t)st.st_size) != st.st_size) {
		fprintf(stderr, "serial_send: reading %s failed\n", argv[optind + 1]);
		close(fd);
		goto fail;
	}
	close(fd);
	if (!(d.line = dg_serial_line_open(argv[optind], &so, &err)))
		goto fail;
	p.image = img;
	p.size = (uint64_t)st.st_size;
	p.name = argv[optind + 1];
	p.options = opts;
	memset(&io, 0, sizeof(io));
	io.arg = &d;
	io.write = d_write;
	io.flush = d_flush;
	io.timer = d_timer;
	io.lines = d_lines;
	io.parity = d_parity;
	io.done = d_done;
	io.log = d_log;
	d.deadline = -1;
	if (!(s = ops->new(&p, &io, why, sizeof(why)))) {
		fprintf(stderr, "serial_send: %s\n", why);
		goto fail;
	}
	t0 = now_ms();
	ops->start(s);
	rc = 1;
	while (!d.done) {
		struct pollfd pf = { .fd = dg_serial_line_fd(d.line), .events = POLLIN };
		int ms = d.deadline < 0 ? -1 : (int)(d.deadline - now_ms());
		uint8_t buf[4096];
		ssize_t n;

		if (d.outlen)
			pf.events |= POLLOUT;
		if (d.deadline >= 0 && ms <= 0) {
			d.deadline = -1;
			ops->timeout(s);
			continue;
		}
		if (poll(&pf, 1, ms) < 0 && errno != EINTR)
			break;
		if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = dg_serial_line_read(d.line, buf, sizeof(buf));
			if (n < 0) {
				d.ext = DG_SPROTO_EXT_LINE_GONE;
				fprintf(stderr, "serial_send: the line is gone\n");
				break;
			}
			if (n > 0)
				ops->input(s, buf, (size_t)n);
		}
		if (!d.done && d.outlen && (pf.revents & POLLOUT)) {
			n = write(dg_serial_line_fd(d.line), d.out, d.outlen);
			if (n > 0) {
				memmove(d.out, d.out + n, d.outlen - (size_t)n);
				d.outlen -= (size_t)n;
			}
		}
	}
	/* what is queued after done (none for YMODEM) is still written */
	while (d.outlen && write(dg_serial_line_fd(d.line), d.out, d.outlen) < 0 && errno == EAGAIN)
		poll(NULL, 0, 1);
	tcdrain(dg_serial_line_fd(d.line));
	printf("result 0x%08" PRIX32 " retransmits %u bytes %" PRIu64 " ms %" PRId64 "\n",
	    d.ok ? 0 : d.ext, d.retransmits, p.size, now_ms() - t0);
	rc = d.done && d.ok ? 0 : 1;
fail:
	if (s)
		ops->free(s);
	dg_serial_line_free(d.line);
	free(d.out);
	free(img);
	return rc;
}
