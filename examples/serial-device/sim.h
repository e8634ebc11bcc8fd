/* sim - the serial device simulator's personalities.
 *
 * The simulator (main.c) owns the pty or tty, the pacing at a baud rate,
 * the line faults (bit flips, dropped bytes, stalls, power cuts) and the
 * device's files (the flashed image, the version). A personality is the
 * bootloader the device runs: YMODEM IAP menu, STM32 ROM bootloader
 * (AN3155), MCUboot serial recovery (SMP). It sees the bytes that survived
 * the line faults and answers through sim_write().
 */
#ifndef SIM_H
#define SIM_H

#include <stddef.h>
#include <stdint.h>

struct sim_dev;

struct sim_personality {
	const char *name;              /* "ymodem", "stm32", "smp" */
	/* parse "key=value" options given on the command line for this
	 * personality; 0 = ok, -1 = unknown or bad (message on stderr) */
	int (*option)(struct sim_dev *d, const char *key, const char *value);
	/* the device (re)starts: power on, or back after a power cut */
	void (*reset)(struct sim_dev *d);
	/* bytes the device received */
	void (*input)(struct sim_dev *d, const uint8_t *buf, size_t n);
	/* called every 10 ms of simulated time, for the personality's timeouts */
	void (*tick)(struct sim_dev *d, uint64_t now_ms);
	void *state;                   /* the personality's, set by reset() */
};

/* Send bytes to the host (paced and faulted by main.c). */
void sim_write(struct sim_dev *d, const void *buf, size_t n);
/* The image the device now runs: committed atomically (temp, fsync,
 * rename) to the device's image file, with its version. */
int sim_install(struct sim_dev *d, const uint8_t *img, size_t n, const char *version);
/* The device's current image and version (as after the last install). */
const uint8_t *sim_image(struct sim_dev *d, size_t *n);
const char *sim_version(struct sim_dev *d);
/* The bootloader starts the application (STM32 Go, SMP reset): with
 * --console the line goes back to the application's console. */
void sim_app(struct sim_dev *d);
/* Line state the personality may need: parity the host set (the pty
 * master cannot see it; the simulator's option parity= says what to
 * expect), modem lines where a real tty gives them. */
void sim_log(struct sim_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern struct sim_personality sim_ymodem, sim_stm32, sim_smp;

#endif
