/* Fuzz target: what a serial device sends to the STM32 and SMP engines
 * (dg_stm32, dg_smp with dg_smpframe): a device may answer anything.
 *
 * Input: byte 0 selects the engine (even: stm32, odd: smp); the rest is
 * fed as the device's bytes in pieces whose sizes come from the data,
 * with a timer expiry after each piece. Checked: the engine ends at most
 * once (io->done), and when it ends well it does so only with the whole
 * image delivered; progress never runs backwards past the image size.
 * Any broken invariant aborts.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_sproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "sproto_fuzz: invariant broken at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static int dones, ok_;
static uint64_t prog, total_;

static int w(void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
static void fl(void *a) { (void)a; }
static void tm(void *a, int ms) { (void)a; (void)ms; }
static int li(void *a, int d, int r) { (void)a; (void)d; (void)r; return 0; }
static int pa(void *a, dg_sproto_parity p) { (void)a; (void)p; return 0; }
static void pr(void *a, uint64_t d, uint64_t t) { (void)a; CHECK(d <= t); prog = d; total_ = t; }
static void dn(void *a, int ok, uint32_t ext, const char *det, unsigned r)
{
	(void)a; (void)r;
	CHECK(det != NULL);
	CHECK(ok || ext != 0);
	dones++;
	ok_ = ok;
}
static void lg(void *a, const char *m) { (void)a; (void)m; }

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const dg_sproto_io io = { NULL, w, fl, tm, li, pa, pr, dn, lg };
	static const char *opts[] = { "page-size=1024", NULL };
	static uint8_t img[600], sha[32];
	const struct dg_sproto_ops *ops;
	dg_sproto_params p;
	dg_sproto *s;
	char why[256];
	size_t i = 1;

	if (size < 1)
		return 0;
	ops = (data[0] & 1) ? &dg_sproto_smp : &dg_sproto_stm32;
	memset(&p, 0, sizeof p);
	memset(img, 0x5A, sizeof img);
	p.image = img;
	p.size = sizeof img;
	p.sha256 = sha;
	p.options = ops == &dg_sproto_stm32 ? opts : NULL;
	dones = ok_ = 0;
	prog = total_ = 0;
	s = ops->new(&p, &io, why, sizeof why);
	CHECK(s != NULL);
	ops->start(s);
	while (i < size && dones == 0) {
		size_t n = (size_t)(data[i] & 0x3F) + 1;

		i++;
		if (n > size - i)
			n = size - i;
		ops->input(s, data + i, n);
		i += n;
		if (dones == 0 && i < size && (data[i - 1] & 0xC0) == 0xC0)
			ops->timeout(s);
	}
	CHECK(dones <= 1);
	if (dones == 1 && ok_)
		CHECK(prog == sizeof img && total_ == sizeof img);
	ops->free(s);
	return 0;
}
