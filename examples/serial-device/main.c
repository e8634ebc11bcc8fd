/* serial-device - a simulated serial field device on a pty (issue 12).
 *
 * serial-device --name NAME --personality ymodem --dir DIR [options]
 *   --tty PATH         use this tty instead of a new pty
 *   --link PATH        keep a symlink to the pty's slave (re-pointed after
 *                      a power cut, when the device comes back on a new pty)
 *   --ready-file F     write "NAME SLAVE" there (temp + rename) when the
 *                      device is up; otherwise printed on stdout
 *   --version V        the version the device runs at first (default 1.0.0)
 *   --baud B           pace both directions at B baud: a byte the host
 *                      writes reaches the device one byte time after the
 *                      one before it, an answer leaves at that rate; an
 *                      idle line banks no time (a UART has no credit)
 *   --bits N           bits a byte takes on the line (default 10, 8N1;
 *                      11 for 8E1, the STM32 ROM bootloader's framing)
 *   --flip-rate R      bit error rate of received bytes (a byte is hit with
 *                      probability 8R, one of its bits flipped)
 *   --drop-rate R      drop a received byte with probability R
 *   --seed S           seed of the fault generator (default 1)
 *   --cut-at N         cut power when the N-th byte has been received:
 *                      close the pty, come back after --off-ms with the
 *                      old image (once)
 *   --off-ms T         default 1000
 *   --stall-at N       stop answering after the N-th received byte (forever)
 *   --fail-install     the install step fails (the old image stays)
 *   --console          the device boots into an application with a text
 *                      console (lines end in \r or \n): "version" answers
 *                      "version <v>", "bootloader" answers "entering
 *                      bootloader" and hands the line to the personality
 *                      until it starts the application again (STM32 Go,
 *                      SMP reset; YMODEM has its own menu)
 *   -o key=value       an option of the personality
 * Files: DIR/NAME.img (the image), DIR/NAME.version, written atomically.
 * The device runs one personality; several devices = several processes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

struct sim_dev {
	const char *name, *dir, *tty, *link, *ready;
	struct sim_personality *p;
	int fd, hold;          /* master (or tty); our own slave fd */
	char slave[256];
	long baud;
	int bits;              /* per byte on the line: 10 = 8N1, 11 = 8E1 */
	int rx_busy;           /* host bytes wait in the pty: the line is busy */
	double flip_rate, drop_rate;
	uint64_t rng;
	uint64_t rx_count, cut_at, stall_at;
	int cut_done, off_ms, fail_install;
	uint8_t *img;
	size_t imglen;
	char version[64];
	uint8_t *tx;
	size_t txlen, txcap;
	double rx_budget, tx_budget;
	int console, in_app;   /* --console; the application runs */
	char cline[64];
	size_t clinelen;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* µs until a budget reaches `need` bytes at the line's byte rate */
static long
pace_wait_us(const struct sim_dev *d, double budget, double need)
{
	double us = (need - budget) * 1e6 * (double)d->bits / (double)d->baud;

	return us < 1 ? 1 : (long)us + 1;
}

/* xorshift64*: deterministic faults for a given seed */
static double
rnd(struct sim_dev *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return (double)((d->rng * 2685821657736338717ull) >> 11) / (double)(1ull << 53);
}

void
sim_log(struct sim_dev *d, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "serial-device %s: ", d->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
sim_write(struct sim_dev *d, const void *buf, size_t n)
{
	if (d->txlen + n > d->txcap) {
		size_t cap = (d->txlen + n) * 2 + 256;
		uint8_t *p = realloc(d->tx, cap);

		if (!p)
			return;
		d->tx = p;
		d->txcap = cap;
	}
	memcpy(d->tx + d->txlen, buf, n);
	d->txlen += n;
}

/* path written with temp, fsync, rename */
static int
write_atomic(const char *path, const void *buf, size_t n)
{
	char tmp[4096];
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return -1;
	if (write(fd, buf, n) == (ssize_t)n && fsync(fd) == 0)
		rc = 0;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int
sim_install(struct sim_dev *d, const uint8_t *img, size_t n, const char *version)
{
	char path[4096];
	uint8_t *copy;

	if (d->fail_install) {
		sim_log(d, "install fails (--fail-install)");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s.img", d->dir, d->name);
	if (write_atomic(path, img, n) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.version", d->dir, d->name);
	if (write_atomic(path, version, strlen(version)) != 0)
		return -1;
	if (!(copy = malloc(n ? n : 1)))
		return -1;
	memcpy(copy, img, n);
	free(d->img);
	d->img = copy;
	d->imglen = n;
	snprintf(d->version, sizeof(d->version), "%s", version);
	sim_log(d, "installed %zu bytes, version %s", n, version);
	return 0;
}

void
sim_app(struct sim_dev *d)
{
	if (!d->console)
		return;
	d->in_app = 1;
	d->clinelen = 0;
	sim_log(d, "application %s runs (console)", d->version);
}

/* the application's console (--console) */
static void
console_input(struct sim_dev *d, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n && d->in_app; i++) {
		char out[96];

		if (buf[i] != '\r' && buf[i] != '\n') {
			if (d->clinelen + 1 < sizeof(d->cline))
				d->cline[d->clinelen++] = (char)buf[i];
			continue;
		}
		d->cline[d->clinelen] = '\0';
		if (strcmp(d->cline, "version") == 0) {
			snprintf(out, sizeof(out), "version %s\r\n", d->version);
			sim_write(d, out, strlen(out));
		} else if (strcmp(d->cline, "bootloader") == 0) {
			sim_write(d, "entering bootloader\r\n", strlen("entering bootloader\r\n"));
			d->in_app = 0;
			d->p->reset(d);
			sim_log(d, "bootloader entered from the console");
		} else if (d->clinelen) {
			static const char q[] = "? (version, bootloader)\r\n";

			sim_write(d, q, sizeof(q) - 1);
		}
		d->clinelen = 0;
	}
}

const uint8_t *
sim_image(struct sim_dev *d, size_t *n)
{
	*n = d->imglen;
	return d->img;
}

const char *
sim_version(struct sim_dev *d)
{
	return d->version;
}

static struct sim_personality *const personalities[] = {
	&sim_ymodem,
	&sim_stm32,
	&sim_smp,
};

/* Power on: a new pty (or the given tty), the link and ready file. */
static int
power_on(struct sim_dev *d)
{
	char line[512];

	if (d->tty) {
		struct termios t;

		if ((d->fd = open(d->tty, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0) {
			sim_log(d, "%s: %s", d->tty, strerror(errno));
			return -1;
		}
		if (tcgetattr(d->fd, &t) == 0) {
			cfmakeraw(&t);
			tcsetattr(d->fd, TCSANOW, &t);
		}
		snprintf(d->slave, sizeof(d->slave), "%s", d->tty);
	} else {
		struct termios t;
		const char *s;
		int sfd;

		if ((d->fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
		    grantpt(d->fd) != 0 || unlockpt(d->fd) != 0 || !(s = ptsname(d->fd))) {
			sim_log(d, "pty: %s", strerror(errno));
			return -1;
		}
		snprintf(d->slave, sizeof(d->slave), "%s", s);
		/* raw on the slave side, as a UART is: no echo, no line editing */
		/* and held open: a master without a slave polls as hung up */
		if ((sfd = open(d->slave, O_RDWR | O_NOCTTY | O_CLOEXEC)) >= 0) {
			if (tcgetattr(sfd, &t) == 0) {
				cfmakeraw(&t);
				tcsetattr(sfd, TCSANOW, &t);
			}
		}
		d->hold = sfd;
	}
	if (d->link) {
		char tmp[4096];

		snprintf(tmp, sizeof(tmp), "%s.tmp", d->link);
		unlink(tmp);
		if (symlink(d->slave, tmp) != 0 || rename(tmp, d->link) != 0) {
			sim_log(d, "link %s: %s", d->link, strerror(errno));
			return -1;
		}
	}
	d->txlen = 0;
	d->p->reset(d);
	d->in_app = d->console;
	d->clinelen = 0;
	snprintf(line, sizeof(line), "%s %s\n", d->name, d->slave);
	if (d->ready) {
		if (write_atomic(d->ready, line, strlen(line)) != 0) {
			sim_log(d, "ready file %s: %s", d->ready, strerror(errno));
			return -1;
		}
	} else {
		fputs(line, stdout);
		fflush(stdout);
	}
	return 0;
}

static void
load(struct sim_dev *d, const char *initial_version)
{
	char path[4096];
	struct stat st;
	FILE *f;

	snprintf(d->version, sizeof(d->version), "%s", initial_version);
	snprintf(path, sizeof(path), "%s/%s.version", d->dir, d->name);
	if ((f = fopen(path, "r"))) {
		if (fgets(d->version, sizeof(d->version), f))
			d->version[strcspn(d->version, "\r\n")] = '\0';
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/%s.img", d->dir, d->name);
	if ((f = fopen(path, "rb"))) {
		if (fstat(fileno(f), &st) == 0 && (d->img = malloc((size_t)st.st_size + 1)))
			d->imglen = fread(d->img, 1, (size_t)st.st_size, f);
		fclose(f);
	}
}

static int
parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || *out < lo || *out > hi ? -1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "name", 1, NULL, 'n' }, { "personality", 1, NULL, 'p' },
		{ "dir", 1, NULL, 'd' }, { "tty", 1, NULL, 't' }, { "link", 1, NULL, 'L' },
		{ "ready-file", 1, NULL, 'r' }, { "version", 1, NULL, 'V' },
		{ "baud", 1, NULL, 'b' }, { "bits", 1, NULL, 'B' }, { "flip-rate", 1, NULL, 'f' },
		{ "drop-rate", 1, NULL, 'D' }, { "seed", 1, NULL, 's' },
		{ "cut-at", 1, NULL, 'c' }, { "off-ms", 1, NULL, 'O' },
		{ "stall-at", 1, NULL, 'S' }, { "fail-install", 0, NULL, 'F' },
		{ "console", 0, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	struct sim_dev d;
	const char *pname = "ymodem", *ver = "1.0.0";
	const char *popts[32];
	size_t npopts = 0, i;
	uint64_t last_us, off_until = 0, next_tick;
	double v;
	int c;

	memset(&d, 0, sizeof(d));
	d.fd = d.hold = -1;
	d.off_ms = 1000;
	d.bits = 10;
	d.rng = 1;
	while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 'n': d.name = optarg; break;
		case 'p': pname = optarg; break;
		case 'd': d.dir = optarg; break;
		case 't': d.tty = optarg; break;
		case 'L': d.link = optarg; break;
		case 'r': d.ready = optarg; break;
		case 'V': ver = optarg; break;
		case 'b': bad = parse_num(optarg, 50, 4000000, &v); d.baud = (long)v; break;
		case 'B': bad = parse_num(optarg, 7, 13, &v); d.bits = (int)v; break;
		case 'f': bad = parse_num(optarg, 0, 1, &d.flip_rate); break;
		case 'D': bad = parse_num(optarg, 0, 1, &d.drop_rate); break;
		case 's': bad = parse_num(optarg, 1, 1e18, &v); d.rng = (uint64_t)v; break;
		case 'c': bad = parse_num(optarg, 1, 1e15, &v); d.cut_at = (uint64_t)v; break;
		case 'O': bad = parse_num(optarg, 0, 3600000, &v); d.off_ms = (int)v; break;
		case 'S': bad = parse_num(optarg, 1, 1e15, &v); d.stall_at = (uint64_t)v; break;
		case 'F': d.fail_install = 1; break;
		case 'C': d.console = 1; break;
		case 'o':
			if (npopts >= sizeof(popts) / sizeof(popts[0]))
				bad = 1;
			else
				popts[npopts++] = optarg;
			break;
		default: bad = 1; break;
		}
		if (bad) {
			fprintf(stderr, "serial-device: bad option or value (see the comment in main.c)\n");
			return 2;
		}
	}
	if (!d.name || !d.dir || optind != argc) {
		fprintf(stderr, "usage: serial-device --name NAME --dir DIR [options]\n");
		return 2;
	}
	for (i = 0; i < sizeof(personalities) / sizeof(personalities[0]); i++)
		if (strcmp(personalities[i]->name, pname) == 0)
			d.p = personalities[i];
	if (!d.p) {
		fprintf(stderr, "serial-device: unknown personality '%s'\n", pname);
		return 2;
	}
	for (i = 0; i < npopts; i++) {
		char key[64], *eq = strchr(popts[i], '=');

		if (!eq || (size_t)(eq - popts[i]) >= sizeof(key)) {
			fprintf(stderr, "serial-device: -o wants key=value, not '%s'\n", popts[i]);
			return 2;
		}
		memcpy(key, popts[i], (size_t)(eq - popts[i]));
		key[eq - popts[i]] = '\0';
		if (d.p->option(&d, key, eq + 1) != 0)
			return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	load(&d, ver);
	if (power_on(&d) != 0)
		return 1;
	next_tick = now_ms();
	last_us = now_us();
	while (!stop) {
		struct pollfd pf = { .fd = d.fd, .events = POLLIN };
		struct timespec ts = { 0, 10 * 1000000L };
		uint64_t t, tu;
		int stalled = d.stall_at && d.rx_count >= d.stall_at;
		int pending = 0;

		if (d.fd < 0) {
			/* powered off */
			poll(NULL, 0, 10);
			d.rx_busy = 0;
			last_us = now_us();
			if (now_ms() >= off_until && power_on(&d) != 0)
				return 1;
			continue;
		}
		if (d.txlen)
			pf.events |= POLLOUT;
		if (d.baud) {
			/* paced: wake when the next bytes have had their line
			 * time (up to 64 at a time), not on the pty's readiness */
			long us = 10000;

			if (d.rx_busy) {
				if (ioctl(d.fd, FIONREAD, &pending) != 0 || pending < 1)
					pending = 1;
				pf.events &= (short)~POLLIN;
				us = pace_wait_us(&d, d.rx_budget, pending < 64 ? pending : 64);
			}
			if (d.txlen && d.tx_budget < 1) {
				long tw = pace_wait_us(&d, d.tx_budget,
				    d.txlen < 64 ? (double)d.txlen : 64);

				pf.events &= (short)~POLLOUT;
				if (tw < us)
					us = tw;
			}
			if (us > 10000)
				us = 10000;
			ts.tv_sec = 0;
			ts.tv_nsec = us * 1000;
		}
		ppoll(&pf, 1, &ts, NULL);
		t = now_ms();
		tu = now_us();
		if (d.baud) {
			double bytes = (double)(tu - last_us) * (double)d.baud /
			    ((double)d.bits * 1e6);

			/* only a busy line moves bytes: no credit while idle */
			d.rx_budget = d.rx_busy ? d.rx_budget + bytes : 0;
			d.tx_budget = d.txlen ? d.tx_budget + bytes : 0;
			if (d.rx_budget > 4096)
				d.rx_budget = 4096;
			if (d.tx_budget > 4096)
				d.tx_budget = 4096;
			if (pf.revents & POLLIN)
				d.rx_busy = 1;   /* bytes arrived now: their line time starts */
			if (d.rx_busy && d.rx_budget >= 1)
				pf.revents |= POLLIN;
			if (d.txlen && d.tx_budget >= 1)
				pf.revents |= POLLOUT;
		}
		last_us = tu;
		if (pf.revents & POLLIN) {
			uint8_t buf[4096];
			size_t want = sizeof(buf);
			ssize_t n;

			if (d.baud)
				want = d.rx_budget < 1 ? 0 : d.rx_budget < (double)want ?
				    (size_t)d.rx_budget : want;
			n = want ? read(d.fd, buf, want) : 0;
			if (d.baud && want && (n <= 0 || ioctl(d.fd, FIONREAD, &pending) != 0 ||
			    pending < 1))
				d.rx_busy = 0;   /* drained: the line goes idle */
			if (n > 0) {
				size_t k = 0, j;

				if (d.baud)
					d.rx_budget -= (double)n;
				for (j = 0; j < (size_t)n; j++) {
					d.rx_count++;
					if (d.cut_at && !d.cut_done && d.rx_count >= d.cut_at) {
						sim_log(&d, "power cut at byte %llu",
						    (unsigned long long)d.rx_count);
						d.cut_done = 1;
						close(d.fd);
						if (d.hold >= 0)
							close(d.hold);
						d.fd = d.hold = -1;
						off_until = now_ms() + (uint64_t)d.off_ms;
						break;
					}
					if (d.drop_rate > 0 && rnd(&d) < d.drop_rate)
						continue;
					buf[k] = buf[j];
					if (d.flip_rate > 0 && rnd(&d) < d.flip_rate * 8)
						buf[k] ^= (uint8_t)(1u << (unsigned)(rnd(&d) * 8));
					k++;
				}
				if (d.fd < 0)
					continue;
				if (k && !stalled && d.in_app)
					console_input(&d, buf, k);
				else if (k && !stalled)
					d.p->input(&d, buf, k);
			}
		}
		if (d.txlen && !stalled) {
			size_t want = d.txlen;
			ssize_t n;

			if (d.baud && d.tx_budget < (double)want)
				want = d.tx_budget < 1 ? 0 : (size_t)d.tx_budget;
			n = want ? write(d.fd, d.tx, want) : 0;
			if (n > 0) {
				memmove(d.tx, d.tx + n, d.txlen - (size_t)n);
				d.txlen -= (size_t)n;
				if (d.baud)
					d.tx_budget -= (double)n;
			}
		}
		while (t >= next_tick) {
			d.p->tick(&d, next_tick);
			next_tick += 10;
		}
	}
	if (d.fd >= 0)
		close(d.fd);
	if (d.link)
		unlink(d.link);
	free(d.img);
	free(d.tx);
	return 0;
}
