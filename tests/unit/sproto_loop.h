/* sproto_loop - runs a dg_sproto engine against a simulator personality
 * in one process, for the unit tests: the engine's writes go to the
 * personality's input and back through queues (no reentrancy), and time
 * is virtual (a timer fires only when both queues are empty). */
#ifndef SPROTO_LOOP_H
#define SPROTO_LOOP_H

#include "../../examples/serial-device/sim.h"
#include "../../proxy/dg_sproto.h"

struct loop_result {
	int done_calls, ok;
	uint32_t ext;
	unsigned retransmits;
	char detail[256];
	uint64_t progress_done, progress_total;
	int parity;                    /* last parity asked */
	int lines[16][2];              /* dtr, rts per io->lines call */
	int nlines;
	unsigned timeouts;             /* timer expiries */
	size_t flushes;
};

/* Run ops on image (size n) with options (NULL terminated) against
 * personality p (already given its options); the device's installed
 * image is then in loop_image(). Returns 0 if the engine was created. */
int loop_run(const struct dg_sproto_ops *ops, struct sim_personality *p,
    const uint8_t *img, size_t n, const char *const *opts,
    struct loop_result *r);
const uint8_t *loop_image(size_t *n);
void loop_clear_image(void);

#endif
