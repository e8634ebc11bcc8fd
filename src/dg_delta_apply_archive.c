/* dg_delta_apply_archive - applying an archive item: the source's gzip
 * members expanded, the target's folded back, in chunks, in threads. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "dg_delta_internal.h"
#include "dg_gzip.h"

/* Bounded writer into a buffer, for inflate and recompression callbacks. */
struct bw {
	uint8_t *p;
	uint64_t pos, cap;
	struct applier *a; /* trimmed every TRIM_EVERY bytes, if set */
	uint64_t mark;
};

static dg_err
bw_write(void *arg, const void *data, size_t len)
{
	struct bw *b = arg;

	if (len > b->cap - b->pos)
		return DG_ERR_DELTA_CORRUPT;
	memcpy(b->p + b->pos, data, len);
	b->pos += len;
	if (b->a && b->pos >= b->mark) {
		dg_delta_trim_maps(b->a);
		b->mark = b->pos + TRIM_EVERY;
	}
	return DG_OK;
}

/* Expand the source per the spec into dst (es bytes). */
dg_err
dg_delta_archive_expand(struct applier *a, const struct archive *ar, const uint8_t *src, uint8_t *dst)
{
	uint64_t in = 0, out = 0, rl;
	struct bw b;
	dg_err err;

	for (size_t i = 0; i < ar->ns; i++) {
		const struct aseg *g = &ar->s[i];

		if (!g->gz) {
			memcpy(dst + out, src + in, (size_t)g->clen);
		} else {
			b = (struct bw){ dst + out, 0, g->rlen, a, TRIM_EVERY };
			err = dg_gzip_inflate(src + in, (size_t)g->clen, bw_write, &b, &rl);
			if (err || rl != g->rlen)
				return DG_ERR_DELTA_CORRUPT;
		}
		in += g->clen;
		out += g->rlen;
	}
	return DG_OK;
}

/* ---- an archive's expansion and folding, in chunks, in threads ----
 *
 * Expanding: a plain source segment is copied, a gzip one inflated whole,
 * or in chunks from its restart points (docs/delta-format.md). Folding:
 * a plain target segment is copied, a gzip one deflated whole or in
 * chunks. Fold tasks wait until the E(T) bytes they read are final
 * (items 1.. write E(T) front to back on the calling thread meanwhile),
 * and are taken in order. Workers never call back into the caller
 * (progress runs on the applying thread) and drop the pages of the
 * mapped files they went through themselves. */
enum { PT_COPY, PT_INFLATE, PT_INFLATE_PART, PT_DEFLATE, PT_DEFLATE_PART };

struct ptask {
	uint8_t kind;
	uint8_t trim_in, trim_out;  /* mapped files: drop the pages afterwards */
	const struct aseg *g;
	size_t part;                /* *_PART: chunk 0..g->nsp */
	const uint8_t *in;          /* segment's bytes: source file / E(T) */
	uint8_t *out;               /* segment's place: E(S) / target file */
	int out_fd;                 /* expanding: E(S)'s file (pwrite), or -1 */
	uint64_t out_off;           /* the segment's offset in it */
	uint64_t need;              /* E(T) bytes final before it may start */
	uint32_t crc;               /* *_PART: CRC-32 of the chunk's raw bytes */
	uint64_t crc_len;
	uint8_t done;               /* under the pool's mutex */
};

struct pool {
	struct applier *a;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ptask *t;
	const size_t *order;        /* the order tasks are taken in; NULL: as listed */
	size_t n, next;
	unsigned running;           /* workers not yet returned */
	uint64_t wm;                /* E(T) bytes final */
	dg_err err;                 /* the first failure; stops the rest */
	atomic_int stop;
	pthread_t tid[DG_DELTA_MAX_THREADS];
	unsigned nt;
	/* folding: the target hashed (and its writeback started) in order,
	 * each task's bytes once it is done, on the applying thread */
	EVP_MD_CTX *sha;
	size_t hashed;              /* tasks hashed */
	size_t seg_first;           /* first task of the segment being hashed */
};

static void
drop_pages(const void *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)p & ~(pg - 1);

	if (len)
		(void)madvise((void *)b, (uintptr_t)p + len - b, MADV_DONTNEED);
}

static dg_err
task_cancel(const struct applier *a, const struct pool *p)
{
	if (p && atomic_load(&p->stop))
		return DG_ERR_CANCELED;
	if (a->o && a->o->cancel && atomic_load(a->o->cancel))
		return DG_ERR_CANCELED;
	return DG_OK;
}

/* a gzip member of the source: its deflate data */
dg_err
dg_delta_member_deflate(const uint8_t *gz, uint64_t clen, const uint8_t **def, size_t *dlen)
{
	dg_gzip_header h;

	if (dg_gzip_parse_header(gz, (size_t)clen, &h) || clen < h.len + 8)
		return DG_ERR_DELTA_CORRUPT;
	*def = gz + h.len;
	*dlen = (size_t)(clen - h.len - 8);
	return DG_OK;
}

/* Expanded bytes into E(S): written to its file, which keeps them out of
 * the process (and costs no page faults), or copied when it is memory. */
struct swriter {
	const struct ptask *t;
	uint64_t pos, end;          /* within the segment */
	uint32_t crc;
	int nocrc;
};

static dg_err
swrite(void *arg, const void *data, size_t len)
{
	struct swriter *w = arg;
	const uint8_t *p = data;

	if (len > w->end - w->pos)
		return DG_ERR_DELTA_CORRUPT;
	if (!w->nocrc)
		w->crc = (uint32_t)crc32_z(w->crc, data, len);
	if (w->t->out_fd < 0) {
		memcpy(w->t->out + w->pos, data, len);
		w->pos += len;
		return DG_OK;
	}
	while (len) {
		ssize_t r = pwrite(w->t->out_fd, p, len, (off_t)(w->t->out_off + w->pos));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? dg_err_from_errno(errno) : DG_ERR_IO;
		p += r;
		len -= (size_t)r;
		w->pos += (uint64_t)r;
	}
	return DG_OK;
}

/* A thread's reusable memory: zlib's, and a buffer for deflated chunks. */
struct wctx {
	dg_gzip_ctx *z;
	uint8_t *buf;
	size_t cap;
};

static void
wctx_free(struct wctx *w)
{
	dg_gzip_ctx_free(w->z);
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static dg_err
task_run(struct applier *a, struct pool *p, struct ptask *t, struct wctx *wc)
{
	const struct aseg *g = t->g;
	size_t j = t->part;
	int inl = p == NULL;        /* on the applying thread */
	dg_err err = DG_OK;

	switch (t->kind) {
	case PT_COPY:
		for (uint64_t o = 0; o < g->rlen && !err;) {
			size_t k = g->rlen - o < TRIM_EVERY ? (size_t)(g->rlen - o) : TRIM_EVERY;
			struct swriter w = { t, o, g->rlen, 0, 0 };

			if (t->out_fd >= 0 && (err = swrite(&w, t->in + o, k)))
				return err;
			if (t->out_fd < 0)
				memcpy(t->out + o, t->in + o, k);
			if (t->trim_in)
				drop_pages(t->in + o, k);
			if (t->trim_out && t->out_fd < 0)
				drop_pages(t->out + o, k);
			o += k;
			err = inl ? dg_delta_check_cancel(a) : task_cancel(a, p);
		}
		return err;
	case PT_INFLATE: {
		struct swriter w = { t, 0, g->rlen, 0, 0 };
		uint64_t rl;

		err = dg_gzip_inflate(t->in, (size_t)g->clen, swrite, &w, &rl);
		if (err == DG_ERR_NOMEM || err == DG_ERR_IO || err == DG_ERR_NOSPC)
			return err;
		return err || rl != g->rlen ? DG_ERR_DELTA_CORRUPT : DG_OK;
	}
	case PT_INFLATE_PART: {
		const uint8_t *def;
		size_t dlen;
		uint64_t bit = j ? g->sp[j - 1].bit : 0, raw = j ? g->sp[j - 1].raw : 0;
		uint64_t c0 = j ? g->sp[j - 1].clean : 0, c1 = j < g->nsp ? g->sp[j].clean : g->rlen;

		struct swriter w = { t, c0, c1, 0, 0 };

		if ((err = dg_delta_member_deflate(t->in, g->clen, &def, &dlen)))
			return err;
		err = dg_gzip_inflate_from(wc->z, def, dlen, bit, c0 - raw, c1 - c0, j == g->nsp, swrite,
					   &w);
		if (err == DG_ERR_NOMEM || err == DG_ERR_IO || err == DG_ERR_NOSPC)
			return err;
		if (err || w.pos != c1)
			return DG_ERR_DELTA_CORRUPT;
		t->crc = w.crc;
		t->crc_len = c1 - c0;
		return task_cancel(a, p);
	}
	case PT_DEFLATE: {
		struct bw b = { t->out, 0, g->clen, inl ? a : NULL, TRIM_EVERY };
		struct swriter ow = { t, 0, g->clen, 0, 1 };
		dg_gzip_stream *gs = t->out_fd >= 0
		    ? dg_gzip_stream_new(&g->p, g->hdr, g->hdrlen, swrite, &ow, &err)
		    : dg_gzip_stream_new(&g->p, g->hdr, g->hdrlen, bw_write, &b, &err);

		for (uint64_t o = 0; gs && !err && o < g->rlen;) {
			size_t k = g->rlen - o < TRIM_EVERY ? (size_t)(g->rlen - o) : TRIM_EVERY;

			err = dg_gzip_stream_write(gs, t->in + o, k);
			if (t->trim_in)
				drop_pages(t->in + o, k);
			o += k;
			if (!err)
				err = inl ? dg_delta_check_cancel(a) : task_cancel(a, p);
		}
		if (gs && !err)
			err = dg_gzip_stream_finish(gs);
		dg_gzip_stream_free(gs);
		if (t->trim_out && t->out_fd < 0)
			drop_pages(t->out, (size_t)g->clen);
		if (err == DG_ERR_CANCELED || err == DG_ERR_NOMEM || err == DG_ERR_IO ||
		    err == DG_ERR_NOSPC)
			return err;
		/* recompression does not give the member back */
		return err || (t->out_fd < 0 ? b.pos : ow.pos) != g->clen ? DG_ERR_DELTA_TARGET
									  : DG_OK;
	}
	case PT_DEFLATE_PART: {
		uint64_t from = j ? g->sp[j - 1].raw : 0, end = j < g->nsp ? g->sp[j].raw : g->rlen;
		uint64_t b0 = j ? g->sp[j - 1].bit / 8 : 0;
		uint64_t b1 = j < g->nsp ? g->sp[j].bit / 8 : g->clen - g->hdrlen - 8;
		uint64_t limit = j < g->nsp && end + DG_GZIP_SLACK < g->rlen ? end + DG_GZIP_SLACK : g->rlen;
		uint64_t w = from < DG_GZIP_WINDOW ? from : DG_GZIP_WINDOW;

		uint8_t *dst = t->out + g->hdrlen + b0;
		struct swriter ow = { t, g->hdrlen + b0, g->clen, 0, 1 };

		if (t->out_fd >= 0) {
			/* deflate into this thread's buffer, then one pwrite:
			 * no faults on the output's pages */
			if (wc->cap < b1 - b0) {
				free(wc->buf);
				wc->cap = 0;
				if (!(wc->buf = malloc((size_t)(b1 - b0))))
					return DG_ERR_NOMEM;
				wc->cap = (size_t)(b1 - b0);
			}
			dst = wc->buf;
		}
		if (j == 0) {
			struct swriter hw = { t, 0, g->hdrlen, 0, 1 };

			if (t->out_fd < 0)
				memcpy(t->out, g->hdr, g->hdrlen);
			else if ((err = swrite(&hw, g->hdr, g->hdrlen)))
				return err;
		}
		err = dg_gzip_deflate_from(wc->z, &g->p, t->in, from, limit,
					   j ? (unsigned)(g->sp[j - 1].bit % 8) : 0,
					   j ? g->sp[j - 1].bits : 0, j == g->nsp, dst, (size_t)(b1 - b0));
		if (err)
			return err == DG_ERR_NOMEM ? err : DG_ERR_DELTA_TARGET;
		if (t->out_fd >= 0 && (err = swrite(&ow, dst, (size_t)(b1 - b0))))
			return err;
		t->crc = (uint32_t)crc32_z(0, t->in + from, (size_t)(end - from));
		t->crc_len = end - from;
		if (t->trim_in)
			drop_pages(t->in + from - w, (size_t)(limit - from + w));
		if (t->trim_out && t->out_fd < 0)
			drop_pages(t->out + g->hdrlen + b0, (size_t)(b1 - b0));
		return task_cancel(a, p);
	}
	}
	return DG_ERR_INTERNAL;
}

static void *
pool_worker(void *arg)
{
	struct pool *p = arg;
	struct wctx wc = { dg_gzip_ctx_new(), NULL, 0 };

	pthread_mutex_lock(&p->mu);
	if (!wc.z && !p->err) {
		p->err = DG_ERR_NOMEM;
		atomic_store(&p->stop, 1);
	}
	for (;;) {
		struct ptask *t;
		dg_err e;

		while (!atomic_load(&p->stop) && p->next < p->n && p->t[p->next].need > p->wm)
			pthread_cond_wait(&p->cv, &p->mu);
		if (atomic_load(&p->stop) || p->next == p->n)
			break;
		t = &p->t[p->order ? p->order[p->next] : p->next];
		p->next++;
		pthread_mutex_unlock(&p->mu);
		e = task_run(p->a, p, t, &wc);
		pthread_mutex_lock(&p->mu);
		t->done = 1;
		if (e && !p->err) {
			p->err = e;
			atomic_store(&p->stop, 1);
			pthread_cond_broadcast(&p->cv);
		}
	}
	p->running--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	wctx_free(&wc);
	return NULL;
}

void
dg_delta_pool_advance(struct pool *p, uint64_t wm)
{
	pthread_mutex_lock(&p->mu);
	if (wm > p->wm) {
		p->wm = wm;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
}

int
dg_delta_pool_stopped(struct pool *p)
{
	return atomic_load(&p->stop);
}

/* Start up to nt workers on t[0..n) (none: the caller runs them in
 * pool_finish). */
static void
pool_start(struct pool *p, struct applier *a, struct ptask *t, const size_t *order, size_t n,
	   unsigned nt, uint64_t wm)
{
	memset(p, 0, sizeof(*p));
	p->a = a;
	p->t = t;
	p->order = order;
	p->n = n;
	p->wm = wm;
	atomic_init(&p->stop, 0);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (nt > n)
		nt = (unsigned)n;
	if (nt < 2)
		return;
	pthread_mutex_lock(&p->mu);
	for (p->nt = 0; p->nt < nt; p->nt++) {
		if (pthread_create(&p->tid[p->nt], NULL, pool_worker, p) != 0)
			break;
		p->running++;
	}
	pthread_mutex_unlock(&p->mu);
}

/* CRC-32 of a chunked segment from its tasks' */
static uint32_t
parts_crc(const struct ptask *t, size_t n)
{
	uint32_t c = (uint32_t)crc32_z(0, NULL, 0);

	for (size_t i = 0; i < n; i++)
		c = (uint32_t)crc32_combine(c, t[i].crc, (z_off_t)t[i].crc_len);
	return c;
}

/* The target bytes a fold task makes: [*o0, *o1). */
static void
task_range(const struct ptask *t, uint64_t *o0, uint64_t *o1)
{
	const struct aseg *g = t->g;
	size_t j = t->part;

	if (t->kind == PT_DEFLATE_PART) {
		*o0 = t->out_off + (j ? g->hdrlen + g->sp[j - 1].bit / 8 : 0);
		*o1 = t->out_off + (j < g->nsp ? g->hdrlen + g->sp[j].bit / 8 : g->clen);
	} else {
		*o0 = t->out_off;
		*o1 = t->out_off + (t->kind == PT_COPY ? g->rlen : g->clen);
	}
}

/* Hash the done tasks' bytes, in order, up to task upto (exclusive); the
 * trailer of a chunked member is written when its last chunk comes. */
static dg_err
pool_hash(struct pool *p, size_t upto)
{
	struct applier *a = p->a;

	for (; p->hashed < upto; p->hashed++) {
		const struct ptask *t = &p->t[p->hashed];
		const struct aseg *g = t->g;
		uint8_t *base = t->out - t->out_off;
		uint64_t o0, o1;

		if (t->part == 0)
			p->seg_first = p->hashed;
		if (t->kind == PT_DEFLATE_PART && t->part == g->nsp) {
			dg_delta_put32(t->out + g->clen - 8, parts_crc(p->t + p->seg_first, g->nsp + 1));
			dg_delta_put32(t->out + g->clen - 4, (uint32_t)g->rlen);
		}
		task_range(t, &o0, &o1);
		a->folded = o1;
		for (uint64_t o = o0; o < o1;) {
			size_t k = o1 - o < TRIM_EVERY ? (size_t)(o1 - o) : TRIM_EVERY;

			if (EVP_DigestUpdate(p->sha, base + o, k) != 1)
				return DG_ERR_CRYPTO;
			if (a->out_fd >= 0)
				drop_pages(base + o, k);
			o += k;
		}
#ifdef SYNC_FILE_RANGE_WRITE
		/* start writing it out now: the final fsync then waits less */
		if (a->out_fd >= 0 && o1 > o0)
			(void)sync_file_range(a->out_fd, (off64_t)o0, (off64_t)(o1 - o0),
					      SYNC_FILE_RANGE_WRITE);
#else
		(void)a;
#endif
	}
	return DG_OK;
}

/* pool_hash of the tasks done so far in order (applying thread). */
dg_err
dg_delta_pool_hash_done(struct pool *p)
{
	size_t upto;

	if (!p->sha)
		return DG_OK;
	pthread_mutex_lock(&p->mu);
	for (upto = p->hashed; upto < p->n && p->t[upto].done; upto++)
		;
	pthread_mutex_unlock(&p->mu);
	return pool_hash(p, upto);
}

/* All of E(T) is final (or err: stop). Wait for the workers, keeping the
 * caller's progress, cancellation and trimming going (and the target's
 * hash, when p->sha), or run the tasks here when there are none. */
static dg_err
pool_finish(struct pool *p, dg_err err)
{
	struct applier *a = p->a;
	size_t upto;
	int failed;

	pthread_mutex_lock(&p->mu);
	p->wm = UINT64_MAX;
	if (err) {
		atomic_store(&p->stop, 1);
		if (!p->err)
			p->err = err;
	}
	pthread_cond_broadcast(&p->cv);
	while (p->running) {
		struct timespec ts;
		dg_err e;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		for (upto = p->hashed; upto < p->n && p->t[upto].done; upto++)
			;
		failed = p->err != DG_OK;
		pthread_mutex_unlock(&p->mu);
		e = dg_delta_check_cancel(a);
		if (!e && p->sha && !failed)
			e = pool_hash(p, upto);
		pthread_mutex_lock(&p->mu);
		if (e && !p->err) {
			p->err = e;
			atomic_store(&p->stop, 1);
			pthread_cond_broadcast(&p->cv);
		}
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nt; i++)
		pthread_join(p->tid[i], NULL);
	/* no workers: the tasks run here */
	if (!p->nt && !p->err && p->next < p->n) {
		struct wctx wc = { dg_gzip_ctx_new(), NULL, 0 };

		if (!wc.z)
			p->err = DG_ERR_NOMEM;
		for (; !p->err && p->next < p->n; p->next++) {
			p->err = task_run(a, NULL, &p->t[p->next], &wc);
			if (!p->err && p->sha)
				p->err = pool_hash(p, p->next + 1);
			if (!p->err)
				p->err = dg_delta_check_cancel(a);
		}
		p->next = p->n;
		wctx_free(&wc);
	}
	if (!p->err && p->sha)
		p->err = pool_hash(p, p->n);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	return p->err;
}

static dg_err
task_add(struct ptask **t, size_t *n, size_t *cap, const struct ptask *x)
{
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct ptask *nt = realloc(*t, nc * sizeof(*nt));

		if (!nt)
			return DG_ERR_NOMEM;
		*t = nt;
		*cap = nc;
	}
	(*t)[(*n)++] = *x;
	return DG_OK;
}

/* Expanded bytes an expand task makes (and drops). */
static uint64_t
task_work(const struct ptask *t)
{
	const struct aseg *g = t->g;
	size_t j = t->part;

	if (t->kind != PT_INFLATE_PART)
		return g->rlen;
	return (j < g->nsp ? g->sp[j].clean : g->rlen) - (j ? g->sp[j - 1].raw : 0);
}

struct wkey {
	uint64_t work;
	size_t i;
};

static int
by_work(const void *x, const void *y)
{
	const struct wkey *a = x, *b = y;

	if (a->work != b->work)
		return a->work < b->work ? 1 : -1;
	return (a->i > b->i) - (a->i < b->i);
}

dg_err
dg_delta_apply_archive(struct applier *a, const struct item *items)
{
	const struct archive *ar = a->h->ar;
	struct scratch es, er;
	const uint8_t *src = a->src;
	uint8_t *out = a->out;
	struct ptask *t = NULL, x;
	size_t n = 0, cap = 0, i, k, *order = NULL;
	struct wkey *keys = NULL;
	uint64_t in = 0, opos = 0;
	struct pool pool;
	dg_err err;

	memset(&es, 0, sizeof(es));
	memset(&er, 0, sizeof(er));
	if ((err = dg_delta_scratch_new(a, (size_t)ar->es, &es)) ||
	    (err = dg_delta_scratch_new(a, (size_t)ar->er, &er)))
		goto fail;
	/* expand the source into E(S) */
	for (i = 0; i < ar->ns; i++) {
		const struct aseg *g = &ar->s[i];

		x = (struct ptask){ .kind = !g->gz ? PT_COPY : g->nsp ? PT_INFLATE_PART : PT_INFLATE,
				    .trim_out = (uint8_t)es.mapped, .g = g, .in = src + in,
				    .out = es.p + opos, .out_fd = es.fd, .out_off = opos };
		for (k = 0; k <= g->nsp && !err; k++) {
			x.part = k;
			err = task_add(&t, &n, &cap, &x);
		}
		if (err)
			goto fail;
		in += g->clen;
		opos += g->rlen;
	}
	/* longest first: a member's first chunk often spans a long run of
	 * zeros with no block boundary in it */
	if (!(order = malloc(n * sizeof(*order))) || !(keys = malloc(n * sizeof(*keys)))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++)
		keys[i] = (struct wkey){ task_work(&t[i]), i };
	qsort(keys, n, sizeof(*keys), by_work);
	for (i = 0; i < n; i++)
		order[i] = keys[i].i;
	pool_start(&pool, a, t, order, n, a->threads, UINT64_MAX);
	if (a->src_deferred) {
		/* the source's hash, while the workers expand it: a wrong
		 * source is the error whatever they made of it */
		uint8_t sha[32];
		dg_err e = dg_delta_sha256_trim(a, src, a->src_len, sha);

		if (!e && memcmp(sha, a->h->src_sha, 32) != 0)
			e = DG_ERR_DELTA_SOURCE;
		err = pool_finish(&pool, e);
		if (e)
			err = e;
	} else {
		err = pool_finish(&pool, DG_OK);
	}
	if (err)
		goto fail;
	/* chunked members: their CRC-32 and length against the trailer */
	for (i = 0; i < n; i = k) {
		const struct aseg *g = t[i].g;

		for (k = i + 1; k < n && t[k].g == g; k++)
			;
		if (t[i].kind == PT_INFLATE_PART &&
		    (dg_delta_get32(t[i].in + g->clen - 8) != parts_crc(t + i, k - i) ||
		     dg_delta_get32(t[i].in + g->clen - 4) != (uint32_t)g->rlen)) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
	}
	/* fold E(T) into the target while items 1.. write it */
	n = 0;
	in = opos = 0;
	for (i = 0; i < ar->nt; i++) {
		const struct aseg *g = &ar->t[i];

		x = (struct ptask){ .kind = !g->gz ? PT_COPY : g->nsp ? PT_DEFLATE_PART : PT_DEFLATE,
				    .trim_in = (uint8_t)er.mapped, .trim_out = (uint8_t)a->out_trim,
				    .g = g, .in = er.p + in, .out = out + opos,
				    .out_fd = a->out_fd, .out_off = opos, .need = in + g->rlen };
		for (k = 0; k <= g->nsp && !err; k++) {
			x.part = k;
			if (x.kind == PT_DEFLATE_PART && k < g->nsp)
				x.need = g->sp[k].raw + DG_GZIP_SLACK < g->rlen
				    ? in + g->sp[k].raw + DG_GZIP_SLACK : in + g->rlen;
			else
				x.need = in + g->rlen;
			err = task_add(&t, &n, &cap, &x);
		}
		if (err)
			goto fail;
		in += g->rlen;
		opos += g->clen;
	}
	a->src = es.p;
	a->out = er.p;
	a->done = 0;
	a->wm_base = a->wm_end = 0;
	a->populate = er.mapped ? ar->er : 0;
	a->et_len = ar->er ? ar->er : 1;
	pool_start(&pool, a, t, NULL, n, a->threads, 0);
	if (!(pool.sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(pool.sha, EVP_sha256(), NULL) != 1)
		err = DG_ERR_CRYPTO;
	a->pool = pool.nt ? &pool : NULL;
	if (!err)
		err = dg_delta_apply_items(a, items + 1, a->h->nitems - 1);
	a->pool = NULL;
	a->populate = 0;
	a->src = src;
	a->out = out;
	err = pool_finish(&pool, err);
	if (!err) {
		unsigned int len = 32;

		if (EVP_DigestFinal_ex(pool.sha, a->tgt_sha, &len) != 1)
			err = DG_ERR_CRYPTO;
		a->tgt_hashed = !err;
	}
	EVP_MD_CTX_free(pool.sha);
	if (!err)
		err = dg_delta_check_cancel(a); /* the last progress report: 100% */
fail:
	free(keys);
	free(order);
	free(t);
	dg_delta_scratch_free(a, &es);
	dg_delta_scratch_free(a, &er);
	return err;
}
