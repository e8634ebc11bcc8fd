/* dg_serial_line - a tty opened for a downstream serial device (issue 12):
 * non-blocking, raw, the configured baud / framing / flow control, with
 * TIOCEXCL and a UUCP-style lock file (LCK..<basename> holding the pid in
 * ten columns, as lockdev writes it; a lock of a dead pid is taken over),
 * optional RS-485 mode (TIOCSRS485 with RTS delays) and DTR/RTS control.
 * Reading and writing are left to the caller's loop (the fd is
 * O_NONBLOCK); dg_serial_line_read() tells a line that vanished (EIO,
 * hang-up: USB serial unplugged, pty master closed) from "no data yet". */
#ifndef DG_SERIAL_LINE_H
#define DG_SERIAL_LINE_H

#include <stddef.h>
#include <sys/types.h>

#include "dg_err.h"

typedef struct dg_serial_line dg_serial_line;

typedef struct dg_serial_opts {
	long baud;            /* 1200..921600, a standard rate */
	int data_bits;        /* 5..8 */
	char parity;          /* 'n', 'e' or 'o' */
	int stop_bits;        /* 1 or 2 */
	int rtscts;           /* hardware flow control */
	int rs485;            /* half-duplex bus: TIOCSRS485, RTS on send */
	int rs485_delay_before_ms, rs485_delay_after_ms;
	const char *lock_dir; /* NULL: /run/lock; "": no lock file */
} dg_serial_opts;

/* Defaults: 115200 8N1, no flow control, no RS-485, /run/lock. */
void dg_serial_opts_init(dg_serial_opts *o);

/* 0 when baud is one of the supported standard rates, -1 otherwise. */
int dg_serial_baud_valid(long baud);

/* Checks o without opening anything: 0, or -1 with one line in why. */
int dg_serial_opts_check(const dg_serial_opts *o, char *why, size_t whylen);

/* Opens path (O_RDWR|O_NOCTTY|O_NONBLOCK), takes the lock and TIOCEXCL,
 * sets termios raw with o's settings, RS-485 when asked. NULL and *err:
 * DG_ERR_CONFIG_VALUE (bad settings), DG_ERR_BUSY (a live process holds
 * the lock), DG_ERR_NOENT (no such tty), DG_ERR_UNSUPPORTED (RS-485
 * asked and the tty refuses it), DG_ERR_SYSTEM (open / termios failed),
 * DG_ERR_NOMEM. Each is logged with the path. */
dg_serial_line *dg_serial_line_open(const char *path, const dg_serial_opts *o, dg_err *err);

/* The non-blocking fd of the line. */
int dg_serial_line_fd(const dg_serial_line *l);

/* Changes parity for the rest of the session (the STM32 bootloader wants
 * 8E1). DG_OK or DG_ERR_SYSTEM. */
dg_err dg_serial_line_parity(dg_serial_line *l, char parity);

/* Sets (1) or clears (0) DTR and RTS; -1 leaves a line alone. A pty has
 * no modem lines: ENOTTY/EINVAL are logged at debug and ignored. DG_OK or
 * DG_ERR_SYSTEM. */
dg_err dg_serial_line_modem(dg_serial_line *l, int dtr, int rts);

/* Discards unread input and unwritten output (tcflush). */
void dg_serial_line_flush(dg_serial_line *l);

/* Reads up to n bytes: > 0 bytes read, 0 nothing available now (EAGAIN),
 * -1 the line is gone (EOF, EIO, hang-up) and must be reopened. */
ssize_t dg_serial_line_read(dg_serial_line *l, void *buf, size_t n);

/* Closes the tty and removes the lock file. NULL is a no-op. */
void dg_serial_line_free(dg_serial_line *l);

#endif
