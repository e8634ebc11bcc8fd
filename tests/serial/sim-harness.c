/* sim-harness - a minimal host for one simulator personality, for the
 * serial B tests only (the real simulator, examples/serial-device/main.c,
 * adds pacing and line faults; the tests move to it at merge).
 *
 * sim-harness --personality stm32|smp --ready-file F --image-file F
 *             [--version V] [--opt key=value]...
 *
 * Opens a pty, keeps its slave open (raw) so that clients may come and go,
 * writes the slave's path to the ready file (temp + rename), and runs the
 * personality on the master until killed. The image file and
 * IMAGE.version are written by sim_install (temp, fsync, rename).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../../examples/serial-device/sim.h"

struct sim_dev {
	int master;
	const char *image_file;
	uint8_t *img;
	size_t imgn;
	char version[128];
};

void
sim_write(struct sim_dev *d, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n > 0) {
		ssize_t w = write(d->master, p, n);

		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				struct pollfd pf = { d->master, POLLOUT, 0 };

				poll(&pf, 1, 100);
				continue;
			}
			fprintf(stderr, "sim-harness: write: %s\n", strerror(errno));
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static int
commit(const char *path, const void *buf, size_t n)
{
	char tmp[4096];
	int fd;
	const uint8_t *p = buf;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			close(fd);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		return -1;
	return rename(tmp, path);
}

int
sim_install(struct sim_dev *d, const uint8_t *img, size_t n, const char *version)
{
	char vpath[4096];
	uint8_t *copy = malloc(n ? n : 1);

	if (copy == NULL)
		return -1;
	memcpy(copy, img, n);
	snprintf(d->version, sizeof d->version, "%s", version);
	snprintf(vpath, sizeof vpath, "%s.version", d->image_file);
	if (commit(vpath, d->version, strlen(d->version)) != 0 ||
	    commit(d->image_file, img, n) != 0) {
		fprintf(stderr, "sim-harness: install: %s\n", strerror(errno));
		free(copy);
		return -1;
	}
	free(d->img);
	d->img = copy;
	d->imgn = n;
	return 0;
}

const uint8_t *
sim_image(struct sim_dev *d, size_t *n)
{
	*n = d->imgn;
	return d->img;
}

const char *
sim_version(struct sim_dev *d)
{
	return d->version;
}

/* the harness has no application console: the bootloader stays */
void
sim_app(struct sim_dev *d)
{
	(void)d;
}

void
sim_log(struct sim_dev *d, const char *fmt, ...)
{
	va_list ap;

	(void)d;
	fprintf(stderr, "sim: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
load(struct sim_dev *d)
{
	FILE *f = fopen(d->image_file, "rb");
	long sz;

	if (f == NULL)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		d->img = malloc((size_t)sz);
		if (d->img != NULL && fread(d->img, 1, (size_t)sz, f) == (size_t)sz)
			d->imgn = (size_t)sz;
	}
	fclose(f);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int
main(int argc, char **argv)
{
	struct sim_dev d = { -1, NULL, NULL, 0, "0.0.0" };
	struct sim_personality *p = NULL;
	const char *ready = NULL;
	char *slave, tmp[4096];
	struct termios t;
	int i, sfd;
	FILE *f;
	uint64_t next;

	for (i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			goto usage;
		if (strcmp(argv[i], "--personality") == 0) {
			i++;
			if (strcmp(argv[i], "stm32") == 0)
				p = &sim_stm32;
			else if (strcmp(argv[i], "smp") == 0)
				p = &sim_smp;
			else
				goto usage;
		} else if (strcmp(argv[i], "--ready-file") == 0)
			ready = argv[++i];
		else if (strcmp(argv[i], "--image-file") == 0)
			d.image_file = argv[++i];
		else if (strcmp(argv[i], "--version") == 0)
			snprintf(d.version, sizeof d.version, "%s", argv[++i]);
		else if (strcmp(argv[i], "--opt") == 0) {
			char *kv = argv[++i], *eq = strchr(kv, '=');

			if (p == NULL || eq == NULL)
				goto usage;
			*eq = '\0';
			if (p->option(&d, kv, eq + 1) != 0)
				return 2;
		} else
			goto usage;
	}
	if (p == NULL || ready == NULL || d.image_file == NULL)
		goto usage;
	load(&d);
	d.master = posix_openpt(O_RDWR | O_NOCTTY);
	if (d.master < 0 || grantpt(d.master) != 0 || unlockpt(d.master) != 0 ||
	    (slave = ptsname(d.master)) == NULL) {
		perror("sim-harness: pty");
		return 1;
	}
	sfd = open(slave, O_RDWR | O_NOCTTY);
	if (sfd < 0 || tcgetattr(sfd, &t) != 0) {
		perror("sim-harness: slave");
		return 1;
	}
	cfmakeraw(&t);
	tcsetattr(sfd, TCSANOW, &t);
	p->reset(&d);
	snprintf(tmp, sizeof tmp, "%s.tmp", ready);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%s\n", slave) < 0 || fclose(f) != 0 ||
	    rename(tmp, ready) != 0) {
		perror("sim-harness: ready file");
		return 1;
	}
	next = now_ms() + 10;
	for (;;) {
		struct pollfd pf = { d.master, POLLIN, 0 };
		uint64_t now = now_ms();
		int r = poll(&pf, 1, next > now ? (int)(next - now) : 0);

		if (r > 0 && (pf.revents & POLLIN)) {
			uint8_t buf[4096];
			ssize_t n = read(d.master, buf, sizeof buf);

			if (n > 0)
				p->input(&d, buf, (size_t)n);
		}
		now = now_ms();
		if (now >= next) {
			p->tick(&d, now);
			next = now + 10;
		}
	}
usage:
	fprintf(stderr, "usage: sim-harness --personality stm32|smp --ready-file F"
	    " --image-file F [--version V] [--opt key=value]...\n");
	return 2;
}
