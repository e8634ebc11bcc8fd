/* sproto_loop - see sproto_loop.h */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sproto_loop.h"

struct sim_dev { int unused; };

static struct sim_dev dev;
static uint8_t *to_dev, *to_host, *installed;
static size_t to_dev_n, to_host_n, to_dev_cap, to_host_cap, installed_n;
static char version[64] = "0.0.0";
static int timer_ms = -1;
static struct loop_result *res;

static void
append(uint8_t **b, size_t *n, size_t *cap, const void *p, size_t k)
{
	if (*n + k > *cap) {
		*cap = (*n + k) * 2 + 1024;
		*b = realloc(*b, *cap);
		if (*b == NULL)
			abort();
	}
	memcpy(*b + *n, p, k);
	*n += k;
}

void
sim_write(struct sim_dev *d, const void *buf, size_t n)
{
	(void)d;
	append(&to_host, &to_host_n, &to_host_cap, buf, n);
}

int
sim_install(struct sim_dev *d, const uint8_t *img, size_t n, const char *v)
{
	(void)d;
	free(installed);
	installed = malloc(n ? n : 1);
	if (installed == NULL)
		return -1;
	memcpy(installed, img, n);
	installed_n = n;
	snprintf(version, sizeof version, "%s", v);
	return 0;
}

const uint8_t *
sim_image(struct sim_dev *d, size_t *n)
{
	(void)d;
	*n = installed_n;
	return installed;
}

const char *
sim_version(struct sim_dev *d)
{
	(void)d;
	return version;
}

/* no application console here: the bootloader stays */
void
sim_app(struct sim_dev *d)
{
	(void)d;
}

void
sim_log(struct sim_dev *d, const char *fmt, ...)
{
	(void)d;
	(void)fmt;
}

const uint8_t *
loop_image(size_t *n)
{
	*n = installed_n;
	return installed;
}

void
loop_clear_image(void)
{
	free(installed);
	installed = NULL;
	installed_n = 0;
}

static int
io_write(void *arg, const void *buf, size_t n)
{
	(void)arg;
	append(&to_dev, &to_dev_n, &to_dev_cap, buf, n);
	return 0;
}

static void
io_flush(void *arg)
{
	(void)arg;
	res->flushes++;
	to_host_n = 0;
}

static void
io_timer(void *arg, int ms)
{
	(void)arg;
	timer_ms = ms;
}

static int
io_lines(void *arg, int dtr, int rts)
{
	(void)arg;
	if (res->nlines < 16) {
		res->lines[res->nlines][0] = dtr;
		res->lines[res->nlines][1] = rts;
		res->nlines++;
	}
	return 0;
}

static int
io_parity(void *arg, dg_sproto_parity p)
{
	(void)arg;
	res->parity = (int)p;
	return 0;
}

static void
io_progress(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	res->progress_done = done;
	res->progress_total = total;
}

static void
io_done(void *arg, int ok, uint32_t ext, const char *detail, unsigned retransmits)
{
	(void)arg;
	res->done_calls++;
	res->ok = ok;
	res->ext = ext;
	res->retransmits = retransmits;
	snprintf(res->detail, sizeof res->detail, "%s", detail);
}

static void
io_log(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int
loop_run(const struct dg_sproto_ops *ops, struct sim_personality *p,
    const uint8_t *img, size_t n, const char *const *opts, struct loop_result *r)
{
	static const dg_sproto_io io = { NULL, io_write, io_flush, io_timer, io_lines,
		io_parity, io_progress, io_done, io_log };
	dg_sproto_params par;
	uint8_t sha[32];
	char why[256];
	dg_sproto *s;
	unsigned guard = 0;

	memset(r, 0, sizeof *r);
	res = r;
	to_dev_n = to_host_n = 0;
	timer_ms = -1;
	EVP_Digest(img, n, sha, NULL, EVP_sha256(), NULL);
	memset(&par, 0, sizeof par);
	par.image = img;
	par.size = n;
	par.name = "image.bin";
	par.sha256 = sha;
	par.options = opts;
	par.unit_timeout_ms = 100;
	par.max_retries = 3;
	s = ops->new(&par, &io, why, sizeof why);
	if (s == NULL) {
		snprintf(r->detail, sizeof r->detail, "%s", why);
		return -1;
	}
	p->reset(&dev);
	ops->start(s);
	while (r->done_calls == 0 && guard++ < 1000000) {
		if (to_dev_n > 0) {
			uint8_t *b = malloc(to_dev_n);
			size_t k = to_dev_n;

			memcpy(b, to_dev, k);
			to_dev_n = 0;
			p->input(&dev, b, k);
			free(b);
		} else if (to_host_n > 0) {
			uint8_t *b = malloc(to_host_n);
			size_t k = to_host_n;

			memcpy(b, to_host, k);
			to_host_n = 0;
			ops->input(s, b, k);
			free(b);
		} else if (timer_ms >= 0) {
			timer_ms = -1;
			r->timeouts++;
			ops->timeout(s);
		} else
			break;  /* nothing left to do: the engine is stuck */
	}
	ops->free(s);
	return 0;
}
