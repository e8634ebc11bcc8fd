/* dg_serial_line - tty set-up and locking for the serial driver (issue 12). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <linux/serial.h>
#include <unistd.h>

#include "dg_log.h"
#include "dg_serial_line.h"

struct dg_serial_line {
	int fd;
	char *path;
	char *lock_path;
};

static const struct {
	long rate;
	speed_t code;
} rates[] = {
	{ 1200, B1200 }, { 2400, B2400 }, { 4800, B4800 }, { 9600, B9600 },
	{ 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 },
	{ 115200, B115200 }, { 230400, B230400 }, { 460800, B460800 },
	{ 500000, B500000 }, { 576000, B576000 }, { 921600, B921600 },
};

void
dg_serial_opts_init(dg_serial_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->baud = 115200;
	o->data_bits = 8;
	o->parity = 'n';
	o->stop_bits = 1;
}

static int
baud_code(long baud, speed_t *code)
{
	size_t i;

	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		if (rates[i].rate == baud) {
			*code = rates[i].code;
			return 0;
		}
	}
	return -1;
}

int
dg_serial_baud_valid(long baud)
{
	speed_t c;

	return baud_code(baud, &c);
}

int
dg_serial_opts_check(const dg_serial_opts *o, char *why, size_t whylen)
{
	if (dg_serial_baud_valid(o->baud) != 0) {
		snprintf(why, whylen, "unsupported baud rate %ld (standard rates 1200..921600)", o->baud);
		return -1;
	}
	if (o->data_bits < 5 || o->data_bits > 8) {
		snprintf(why, whylen, "data bits must be 5..8, not %d", o->data_bits);
		return -1;
	}
	if (o->parity != 'n' && o->parity != 'e' && o->parity != 'o') {
		snprintf(why, whylen, "parity must be none, even or odd");
		return -1;
	}
	if (o->stop_bits != 1 && o->stop_bits != 2) {
		snprintf(why, whylen, "stop bits must be 1 or 2, not %d", o->stop_bits);
		return -1;
	}
	if (o->rs485_delay_before_ms < 0 || o->rs485_delay_before_ms > 1000 ||
	    o->rs485_delay_after_ms < 0 || o->rs485_delay_after_ms > 1000) {
		snprintf(why, whylen, "RS-485 RTS delays must be 0..1000 ms");
		return -1;
	}
	return 0;
}

/* Takes LCK..<basename> in dir: O_EXCL create; an existing lock whose pid
 * is dead (kill(pid, 0) == ESRCH) or unreadable is removed once. */
static dg_err
take_lock(const char *dir, const char *path, char **out)
{
	const char *base = strrchr(path, '/');
	char *lp = NULL;
	int tries, fd;

	base = base ? base + 1 : path;
	if (asprintf(&lp, "%s/LCK..%s", dir, base) < 0)
		return DG_ERR_NOMEM;
	for (tries = 0; tries < 2; tries++) {
		char buf[32];
		ssize_t n;
		long pid;

		fd = open(lp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			int len = snprintf(buf, sizeof(buf), "%10ld\n", (long)getpid());

			if (write(fd, buf, (size_t)len) != len) {
				dg_log_err("serial: lock %s: %s", lp, strerror(errno));
				close(fd);
				unlink(lp);
				free(lp);
				return DG_ERR_SYSTEM;
			}
			close(fd);
			*out = lp;
			return DG_OK;
		}
		if (errno != EEXIST) {
			dg_log_err("serial: lock %s: %s", lp, strerror(errno));
			free(lp);
			return DG_ERR_SYSTEM;
		}
		fd = open(lp, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		pid = strtol(buf, NULL, 10);
		if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			dg_log_err("serial: %s is locked by pid %ld (%s)", path, pid, lp);
			free(lp);
			return DG_ERR_BUSY;
		}
		dg_log_warn("serial: removing stale lock %s (pid %ld)", lp, pid);
		unlink(lp);
	}
	free(lp);
	return DG_ERR_BUSY;
}

dg_serial_line *
dg_serial_line_open(const char *path, const dg_serial_opts *o, dg_err *err)
{
	dg_serial_line *l;
	struct termios t;
	speed_t code;
	const char *dir = o->lock_dir ? o->lock_dir : "/run/lock";

	char why[128];

	if (dg_serial_opts_check(o, why, sizeof(why)) != 0 || baud_code(o->baud, &code) != 0) {
		dg_log_err("serial: %s: %s", path, why);
		*err = DG_ERR_CONFIG_VALUE;
		return NULL;
	}
	if (!(l = calloc(1, sizeof(*l)))) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	l->fd = -1;
	if (!(l->path = strdup(path))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if (*dir && (*err = take_lock(dir, path, &l->lock_path)) != DG_OK)
		goto fail;
	l->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (l->fd < 0) {
		dg_log_err("serial: open %s: %s", path, strerror(errno));
		*err = errno == ENOENT ? DG_ERR_NOENT : DG_ERR_SYSTEM;
		goto fail;
	}
	if (ioctl(l->fd, TIOCEXCL) != 0)
		dg_log_warn("serial: %s: TIOCEXCL: %s", path, strerror(errno));
	if (tcgetattr(l->fd, &t) != 0) {
		dg_log_err("serial: %s: not a tty: %s", path, strerror(errno));
		*err = DG_ERR_SYSTEM;
		goto fail;
	}
	cfmakeraw(&t);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag |= o->data_bits == 5 ? CS5 : o->data_bits == 6 ? CS6 : o->data_bits == 7 ? CS7 : CS8;
	if (o->parity != 'n')
		t.c_cflag |= PARENB | (o->parity == 'o' ? PARODD : 0);
	if (o->stop_bits == 2)
		t.c_cflag |= CSTOPB;
	if (o->rtscts)
		t.c_cflag |= CRTSCTS;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (cfsetispeed(&t, code) != 0 || cfsetospeed(&t, code) != 0 ||
	    tcsetattr(l->fd, TCSANOW, &t) != 0) {
		dg_log_err("serial: %s: termios: %s", path, strerror(errno));
		*err = DG_ERR_SYSTEM;
		goto fail;
	}
	if (o->rs485) {
		struct serial_rs485 r;

		memset(&r, 0, sizeof(r));
		r.flags = SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND;
		r.delay_rts_before_send = (__u32)o->rs485_delay_before_ms;
		r.delay_rts_after_send = (__u32)o->rs485_delay_after_ms;
		if (ioctl(l->fd, TIOCSRS485, &r) != 0) {
			dg_log_err("serial: %s: RS-485 mode (TIOCSRS485) refused: %s", path,
			    strerror(errno));
			*err = DG_ERR_UNSUPPORTED;
			goto fail;
		}
	}
	/* no tcflush here: a receiver's first 'C' may already be waiting
	 * (the caller flushes when its protocol wants a clean start) */
	*err = DG_OK;
	return l;
fail:
	dg_serial_line_free(l);
	return NULL;
}

int
dg_serial_line_fd(const dg_serial_line *l)
{
	return l->fd;
}

dg_err
dg_serial_line_parity(dg_serial_line *l, char parity)
{
	struct termios t;

	if (tcgetattr(l->fd, &t) != 0)
		goto fail;
	t.c_cflag &= ~(tcflag_t)(PARENB | PARODD);
	if (parity == 'e' || parity == 'o')
		t.c_cflag |= PARENB | (parity == 'o' ? PARODD : 0);
	if (tcsetattr(l->fd, TCSADRAIN, &t) != 0)
		goto fail;
	return DG_OK;
fail:
	dg_log_err("serial: %s: setting parity: %s", l->path, strerror(errno));
	return DG_ERR_SYSTEM;
}

static dg_err
modem_bit(dg_serial_line *l, int on, int bit, const char *name)
{
	if (on < 0)
		return DG_OK;
	if (ioctl(l->fd, on ? TIOCMBIS : TIOCMBIC, &bit) == 0)
		return DG_OK;
	if (errno == ENOTTY || errno == EINVAL) {
		dg_log_debug("serial: %s: no modem line %s (%s)", l->path, name, strerror(errno));
		return DG_OK;
	}
	dg_log_err("serial: %s: %s %s: %s", l->path, on ? "raising" : "lowering", name,
	    strerror(errno));
	return DG_ERR_SYSTEM;
}

dg_err
dg_serial_line_modem(dg_serial_line *l, int dtr, int rts)
{
	dg_err e = modem_bit(l, dtr, TIOCM_DTR, "DTR");

	return e != DG_OK ? e : modem_bit(l, rts, TIOCM_RTS, "RTS");
}

void
dg_serial_line_flush(dg_serial_line *l)
{
	tcflush(l->fd, TCIOFLUSH);
}

ssize_t
dg_serial_line_read(dg_serial_line *l, void *buf, size_t n)
{
	ssize_t r = read(l->fd, buf, n);

	if (r > 0)
		return r;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	dg_log_warn("serial: %s: line gone (%s)", l->path, r == 0 ? "end of file" : strerror(errno));
	return -1;
}

void
dg_serial_line_free(dg_serial_line *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->lock_path) {
		unlink(l->lock_path);
		free(l->lock_path);
	}
	free(l->path);
	free(l);
}
