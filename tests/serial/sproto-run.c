/* sproto-run - the test host of the dg_sproto engines: opens a tty raw,
 * runs one engine on it with a poll() loop, exits 0 when the device took
 * the image, else the low bits of the DG_SPROTO_EXT code (1 = timeout,
 * 2 = retries, 4 = verify, 8 = rejected, ...).
 *
 * sproto-run --engine stm32|smp --tty DEV --image FILE [--baud N]
 *            [--timeout-ms N] [--retries N] [--opt key=value]...
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../../proxy/dg_sproto.h"

static int fd = -1;
static int is_pty;  /* a Linux pty: no parity, no modem lines */
static int64_t deadline = -1;   /* ms, monotonic; -1: no timer */
static int finished, ok_;
static uint32_t ext_;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
io_write(void *arg, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	(void)arg;
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				struct pollfd pf = { fd, POLLOUT, 0 };

				poll(&pf, 1, 100);
				continue;
			}
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
io_flush(void *arg)
{
	(void)arg;
	tcflush(fd, TCIOFLUSH);
}

static void
io_timer(void *arg, int ms)
{
	(void)arg;
	deadline = ms < 0 ? -1 : now_ms() + ms;
}

static int
io_lines(void *arg, int dtr, int rts)
{
	int bits;

	(void)arg;
	fprintf(stderr, "sproto-run: lines dtr=%d rts=%d\n", dtr, rts);
	if (dtr >= 0) {
		bits = TIOCM_DTR;
		if (ioctl(fd, dtr ? TIOCMBIS : TIOCMBIC, &bits) != 0)
			goto nolines;
	}
	if (rts >= 0) {
		bits = TIOCM_RTS;
		if (ioctl(fd, rts ? TIOCMBIS : TIOCMBIC, &bits) != 0)
			goto nolines;
	}
	return 0;
nolines:
	/* a pty has no modem lines: said, not an error for the test host */
	if (errno == ENOTTY || errno == EINVAL) {
		fprintf(stderr, "sproto-run: no modem lines on this tty (%s)\n",
		    strerror(errno));
		return 0;
	}
	return -1;
}

static int
io_parity(void *arg, dg_sproto_parity p)
{
	struct termios t;

	(void)arg;
	if (tcgetattr(fd, &t) != 0)
		return -1;
	t.c_cflag &= ~(tcflag_t)(PARENB | PARODD);
	if (p != DG_SPROTO_PARITY_NONE)
		t.c_cflag |= PARENB;
	if (p == DG_SPROTO_PARITY_ODD)
		t.c_cflag |= PARODD;
	if (tcsetattr(fd, TCSANOW, &t) == 0)
		return 0;
	/* the Linux pty driver forces 8N1 (as stm32flash -m 8n1 must be told):
	 * on a pty, say so and go on; on a real tty it is an error */
	if (is_pty) {
		fprintf(stderr, "sproto-run: a pty cannot carry parity, line stays 8N1\n");
		return 0;
	}
	return -1;
}

static void
io_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	(void)done;
	(void)total;
}

static void
io_done(void *arg, int ok, uint32_t ext, const char *detail, unsigned retransmits)
{
	(void)arg;
	printf("done ok=%d ext=0x%08x retransmits=%u detail=%s\n", ok,
	    (unsigned)ext, retransmits, detail);
	fflush(stdout);
	finished = 1;
	ok_ = ok;
	ext_ = ext;
}

static void
io_log(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "sproto-run: %s\n", msg);
}

static speed_t
speed(long b)
{
	switch (b) {
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	case 230400: return B230400;
	case 460800: return B460800;
	case 921600: return B921600;
	default: return B0;
	}
}

int
main(int argc, char **argv)
{
	const struct dg_sproto_ops *ops = NULL;
	const char *tty = NULL, *image = NULL;
	const char *opts[32];
	unsigned nopts = 0;
	dg_sproto_params p;
	dg_sproto_io io = { NULL, io_write, io_flush, io_timer, io_lines,
		io_parity, io_progress, io_done, io_log };
	dg_sproto *s;
	uint8_t *img = NULL, sha[32];
	long size = 0, baud = 115200;
	struct termios t;
	char why[256];
	FILE *f;
	int i;

	memset(&p, 0, sizeof p);
	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--engine") == 0) {
			if (strcmp(argv[i + 1], "stm32") == 0)
				ops = &dg_sproto_stm32;
			else if (strcmp(argv[i + 1], "smp") == 0)
				ops = &dg_sproto_smp;
		} else if (strcmp(argv[i], "--tty") == 0)
			tty = argv[i + 1];
		else if (strcmp(argv[i], "--image") == 0)
			image = argv[i + 1];
		else if (strcmp(argv[i], "--baud") == 0)
			baud = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--timeout-ms") == 0)
			p.unit_timeout_ms = (int)strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--retries") == 0)
			p.max_retries = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--opt") == 0 && nopts < 31)
			opts[nopts++] = argv[i + 1];
		else
			break;
	}
	opts[nopts] = NULL;
	if (i != argc || ops == NULL || tty == NULL || image == NULL || speed(baud) == B0) {
		fprintf(stderr, "usage: sproto-run --engine stm32|smp --tty DEV --image FILE"
		    " [--baud N] [--timeout-ms N] [--retries N] [--opt key=value]...\n");
		return 64;
	}
	f = fopen(image, "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (img = malloc((size_t)size + 1)) == NULL ||
	    fread(img, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "sproto-run: %s: cannot read\n", image);
		return 66;
	}
	fclose(f);
	if (EVP_Digest(img, (size_t)size, sha, NULL, EVP_sha256(), NULL) != 1)
		return 70;
	fd = open(tty, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || tcgetattr(fd, &t) != 0) {
		fprintf(stderr, "sproto-run: %s: %s\n", tty, strerror(errno));
		return 66;
	}
	is_pty = strncmp(tty, "/dev/pts/", 9) == 0;
	cfmakeraw(&t);
	cfsetispeed(&t, speed(baud));
	cfsetospeed(&t, speed(baud));
	t.c_cflag |= CLOCAL | CREAD;
	if (tcsetattr(fd, TCSANOW, &t) != 0)
		return 66;
	tcflush(fd, TCIOFLUSH);
	p.image = img;
	p.size = (uint64_t)size;
	p.name = strrchr(image, '/') ? strrchr(image, '/') + 1 : image;
	p.sha256 = sha;
	p.options = opts;
	s = ops->new(&p, &io, why, sizeof why);
	if (s == NULL) {
		fprintf(stderr, "sproto-run: %s\n", why);
		return 65;
	}
	ops->start(s);
	while (!finished) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int64_t now = now_ms();
		int wait = deadline < 0 ? -1 : (deadline > now ? (int)(deadline - now) : 0);
		int r = poll(&pf, 1, wait);

		if (r < 0 && errno != EINTR)
			break;
		if (r > 0 && (pf.revents & POLLIN)) {
			uint8_t buf[4096];
			ssize_t n = read(fd, buf, sizeof buf);

			if (n > 0)
				ops->input(s, buf, (size_t)n);
		} else if (r > 0 && (pf.revents & (POLLHUP | POLLERR))) {
			fprintf(stderr, "sproto-run: line gone\n");
			ops->abort(s);
			ops->free(s);
			return (int)(DG_SPROTO_EXT_LINE_GONE & 0xFF);
		}
		if (!finished && deadline >= 0 && now_ms() >= deadline) {
			deadline = -1;
			ops->timeout(s);
		}
	}
	ops->free(s);
	free(img);
	close(fd);
	return ok_ ? 0 : (int)(ext_ & 0xFF);
}
