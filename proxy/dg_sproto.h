/* dg_sproto - a serial update protocol as an event-driven engine.
 *
 * An engine (YMODEM, STM32 ROM bootloader, MCUboot/SMP serial recovery) is
 * a state machine without I/O of its own: the serial driver owns the tty,
 * the timers and the libevent loop, feeds the engine what the line
 * received, and carries out what the engine asks through dg_sproto_io.
 * This keeps each protocol testable on its own (a unit test can play the
 * device) and lets the driver treat every protocol the same way.
 *
 * Calls into an engine (start, input, timeout) are made from the loop
 * thread, never reentrantly. Inside them the engine may call any io
 * function; it reports its end exactly once with io->done() and is then
 * only freed. The image is given as one read-only buffer (the driver maps
 * or reads the cached image).
 *
 * Result codes: facility 0x9, component 0x0D (serial driver):
 * DG_SPROTO_EXT(code), codes below; docs/serial.md lists them.
 */
#ifndef DG_SPROTO_H
#define DG_SPROTO_H

#include <stddef.h>
#include <stdint.h>

#define DG_SPROTO_EXT(code) (0x90D00000u | ((uint32_t)(code) & 0xFFFFFu))
#define DG_SPROTO_EXT_TIMEOUT   DG_SPROTO_EXT(0x001u) /* no answer from the receiver in time */
#define DG_SPROTO_EXT_RETRIES   DG_SPROTO_EXT(0x002u) /* too many retransmissions of one unit */
#define DG_SPROTO_EXT_CANCELED  DG_SPROTO_EXT(0x003u) /* the device canceled (CAN CAN, NACK on start) */
#define DG_SPROTO_EXT_VERIFY    DG_SPROTO_EXT(0x004u) /* read back / hash differs from the image */
#define DG_SPROTO_EXT_LINE_GONE DG_SPROTO_EXT(0x005u) /* the tty closed or vanished */
#define DG_SPROTO_EXT_PROTOCOL  DG_SPROTO_EXT(0x006u) /* an answer the protocol does not allow */
#define DG_SPROTO_EXT_TOO_BIG   DG_SPROTO_EXT(0x007u) /* the image does not fit the target */
#define DG_SPROTO_EXT_REJECTED  DG_SPROTO_EXT(0x008u) /* the target refused a command (NACK, rc != 0) */
#define DG_SPROTO_EXT_ABORTED   DG_SPROTO_EXT(0x009u) /* stopped by the gateway (cancel) */

typedef struct dg_sproto dg_sproto;

/* Line settings an engine may ask for (the STM32 bootloader needs 8E1). */
typedef enum dg_sproto_parity {
	DG_SPROTO_PARITY_NONE = 0,
	DG_SPROTO_PARITY_EVEN = 1,
	DG_SPROTO_PARITY_ODD = 2
} dg_sproto_parity;

/* What an engine may do; arg is the driver's. */
typedef struct dg_sproto_io {
	void *arg;
	/* queue bytes for the line (the driver buffers; never blocks) */
	int (*write)(void *arg, const void *buf, size_t n);
	/* drop what was received and not yet given to the engine, and what
	 * is queued for output but not yet written (tcflush) */
	void (*flush)(void *arg);
	/* (re)arm the engine's single timer: timeout() is called after ms
	 * milliseconds unless re-armed or stopped; ms < 0 stops it */
	void (*timer)(void *arg, int ms);
	/* modem lines, for entering a bootloader: -1 leaves a line as it is */
	int (*lines)(void *arg, int dtr, int rts);
	/* change parity for the rest of the session */
	int (*parity)(void *arg, dg_sproto_parity p);
	/* bytes of the image delivered so far (monotonic within one attempt) */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	/* the end: ok = the device took the whole image; ext = a
	 * DG_SPROTO_EXT_* code when !ok; detail: one line for the log;
	 * stats: units (blocks, chunks, packets) retransmitted */
	void (*done)(void *arg, int ok, uint32_t ext, const char *detail,
	    unsigned retransmits);
	/* a log line from the engine, at debug level */
	void (*log)(void *arg, const char *msg);
} dg_sproto_io;

/* What to send. name: the file name YMODEM puts in block 0 (no path). */
typedef struct dg_sproto_params {
	const uint8_t *image;
	uint64_t size;
	const char *name;
	const uint8_t *sha256;  /* 32 bytes, of image */
	/* engine options as "key=value" pairs from the device's model, NULL
	 * terminated; an engine rejects keys it does not know (see
	 * dg_sproto_ops.new) */
	const char *const *options;
	int unit_timeout_ms;    /* per block/command answer; 0: engine default */
	unsigned max_retries;   /* per unit; 0: engine default */
} dg_sproto_params;

struct dg_sproto_ops {
	const char *name;       /* "ymodem", "stm32", "smp" */
	/* NULL and a message in why for bad options; the engine keeps no
	 * pointer into p beyond the image buffer, which outlives it */
	dg_sproto *(*new)(const dg_sproto_params *p, const dg_sproto_io *io,
	    char *why, size_t whylen);
	/* the line is open and the device is in its bootloader */
	void (*start)(dg_sproto *s);
	/* bytes from the line */
	void (*input)(dg_sproto *s, const uint8_t *buf, size_t n);
	/* the timer armed with io->timer fired */
	void (*timeout)(dg_sproto *s);
	/* stop now (job canceled, gateway stopping): the engine may write a
	 * last abort sequence (CAN CAN) but must not call done */
	void (*abort)(dg_sproto *s);
	void (*free)(dg_sproto *s);
};

extern const struct dg_sproto_ops dg_sproto_ymodem;
extern const struct dg_sproto_ops dg_sproto_stm32;
extern const struct dg_sproto_ops dg_sproto_smp;

/* The engine of that name, or NULL. */
const struct dg_sproto_ops *dg_sproto_find(const char *name);

#endif
