/* dg_delta_apply - the streaming applier: items rebuilt front to back in
 * bounded working memory, into memory or a durable file (see dg_delta.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "dg_bcj.h"
#include "dg_delta_internal.h"
#include "dg_log.h"
#include "dg_mcu.h"
#include "dg_util.h"

/* The mapped source and output are trimmed from this size (smaller ones
 * stay resident: refaulting them cost a fifth of the apply time); mapped
 * scratch files always are. */
#define TRIM_MAP_MIN (16u << 20)
/* zstd input fed per call when decoding into a mapped output: bounds the
 * output one call produces (and so the pages it makes resident) */
#define FEED 64u

/* Register a mapping of a file (shared, or private and never written)
 * for dg_delta_trim_maps; never anonymous memory, whose dropped pages
 * read back as zeros. */
static void
trim_add(struct applier *a, void *p, size_t len)
{
	if (p && len && a->nmaps < MAX_TRIM) {
		a->maps[a->nmaps].p = p;
		a->maps[a->nmaps].len = len;
		a->nmaps++;
	}
}

static void
trim_del(struct applier *a, const void *p)
{
	for (int i = 0; i < a->nmaps; i++)
		if (a->maps[i].p == p) {
			a->maps[i] = a->maps[--a->nmaps];
			return;
		}
}

/* Streaming in bounded memory: drop the registered mappings' pages from
 * the process. The data stays in the file (dirty shared pages are written
 * back, not discarded); a page touched again is a minor fault from the
 * page cache, which the kernel may reclaim, unlike resident pages. */
void
dg_delta_trim_maps(struct applier *a)
{
	for (int i = 0; i < a->nmaps; i++)
		(void)madvise(a->maps[i].p, a->maps[i].len, MADV_DONTNEED);
}

/* Progress shown to the caller, at most the target's size. An archive's
 * first half is decoding E(T), the second the target's bytes made final
 * (folded and hashed, in order). */
static uint64_t
shown_progress(const struct applier *a)
{
	uint64_t t = a->h->tgt_size, d;

	if (!a->et_len)
		return a->done < t ? a->done : t;
	d = a->done < a->et_len ? a->done : a->et_len;
	return (uint64_t)((double)d / (double)a->et_len * (double)(t / 2) +
			  (double)a->folded / (double)(t ? t : 1) * (double)(t - t / 2));
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* Fault in a writable range at once (Linux 5.14; else nothing happens) */
static int
madvise_populate(void *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)p & ~(pg - 1);

	return madvise((void *)b, (uintptr_t)p + len - b, MADV_POPULATE_WRITE);
}

/* E(T) bytes that are final: the finished items', and the current one's
 * written so far unless a filter still has to run over them. */
static uint64_t
final_bytes(const struct applier *a)
{
	if (a->wm_hold || a->done < a->wm_base)
		return a->wm_base;
	return a->done < a->wm_end ? a->done : a->wm_end;
}

dg_err
dg_delta_check_cancel(struct applier *a)
{
	if (a->pool) {
		dg_err e;

		/* a chunk failed: stop decoding (pool_finish reports why) */
		if (dg_delta_pool_stopped(a->pool))
			return DG_ERR_CANCELED;
		dg_delta_pool_advance(a->pool, final_bytes(a));
		/* hash what the threads have finished meanwhile */
		if ((e = dg_delta_pool_hash_done(a->pool)))
			return e;
	}
	if (a->o && a->o->cancel && atomic_load(a->o->cancel))
		return DG_ERR_CANCELED;
	if (a->o && a->o->progress)
		a->o->progress(a->o->progress_arg, shown_progress(a), a->h->tgt_size);
	dg_delta_trim_maps(a);
	if (a->pool && a->populate && a->done < a->populate) {
		/* the next piece of E(T) in one call rather than a fault a page */
		uint64_t n = a->populate - a->done < TRIM_EVERY ? a->populate - a->done : TRIM_EVERY;

		(void)madvise_populate(a->out + a->done, (size_t)n);
	}
	a->next_point = a->done + TRIM_EVERY;
	return DG_OK;
}

/* dg_delta_check_cancel once per TRIM_EVERY bytes of output */
static dg_err
progress_point(struct applier *a)
{
	return a->done >= a->next_point ? dg_delta_check_cancel(a) : DG_OK;
}

/* SHA-256 of a large mapped file in pieces, trimming between them. */
dg_err
dg_delta_sha256_trim(struct applier *a, const uint8_t *data, size_t len, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 32;
	dg_err err = DG_OK;

	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		err = DG_ERR_CRYPTO;
		goto fail;
	}
	do {
		size_t k = len < TRIM_EVERY ? len : TRIM_EVERY;

		if (EVP_DigestUpdate(c, data, k) != 1) {
			err = DG_ERR_CRYPTO;
			goto fail;
		}
		data += k;
		len -= k;
		dg_delta_trim_maps(a);
	} while (len);
	if (EVP_DigestFinal_ex(c, out, &n) != 1)
		err = DG_ERR_CRYPTO;
fail:
	EVP_MD_CTX_free(c);
	return err;
}

dg_err
dg_delta_scratch_new(struct applier *a, size_t len, struct scratch *s)
{
	char *path = NULL;
	int fd = -1, r;
	dg_err err;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->len = len;
	if (len == 0)
		return DG_OK;
	if (len <= a->mem_limit / 2) {
		s->p = malloc(len);
		return s->p ? DG_OK : DG_ERR_NOMEM;
	}
	if (!a->scratch_dir)
		return DG_ERR_DELTA_MEMLIMIT;
	if (asprintf(&path, "%s/.dgscratch.XXXXXX", a->scratch_dir) < 0)
		return DG_ERR_NOMEM;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	unlink(path);
	if ((r = posix_fallocate(fd, 0, (off_t)len)) != 0) {
		err = dg_err_from_errno(r);
		goto fail;
	}
	s->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->p == MAP_FAILED) {
		s->p = NULL;
		err = dg_err_from_errno(errno);
		goto fail;
	}
	s->mapped = 1;
	s->fd = fd;
	trim_add(a, s->p, len);
	free(path);
	return DG_OK;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return err;
}

void
dg_delta_scratch_free(struct applier *a, struct scratch *s)
{
	if (s->mapped) {
		trim_del(a, s->p);
		munmap(s->p, s->len);
	}
	else
		free(s->p);
	if (s->mapped && s->fd >= 0)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static dg_err
apply_bsdiff(struct applier *a, const struct item *it, const uint8_t *src, uint8_t *out)
{
	struct preader ctrl, diff, extra;
	uint64_t add, copy, seek, opos = 0, k, n;
	int64_t spos = 0;
	dg_err err;

	memset(&ctrl, 0, sizeof(ctrl));
	memset(&diff, 0, sizeof(diff));
	memset(&extra, 0, sizeof(extra));
	if ((err = dg_delta_preader_open(&ctrl, a->d, &it->p[0], a->mem_limit, 0)) ||
	    (err = dg_delta_preader_open(&diff, a->d, &it->p[1], a->mem_limit, 0)) ||
	    (err = dg_delta_preader_open(&extra, a->d, &it->p[2], a->mem_limit, 0)))
		goto fail;
	while (opos < it->out_len) {
		if ((err = dg_delta_preader_varint(&ctrl, &add)) ||
		    (err = dg_delta_preader_varint(&ctrl, &copy)) ||
		    (err = dg_delta_preader_varint(&ctrl, &seek)))
			goto fail;
		if (add > it->out_len - opos || copy > it->out_len - opos - add) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		if (spos < 0 || (uint64_t)spos > it->src_len || add > it->src_len - (uint64_t)spos) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
		/* in pieces: a step of an image pair can span the whole file */
		while (add > 0) {
			n = add < TRIM_EVERY ? add : TRIM_EVERY;
			if ((err = dg_delta_preader_read(&diff, out + opos, (size_t)n)))
				goto fail;
			for (k = 0; k < n; k++)
				out[opos + k] = (uint8_t)(out[opos + k] + src[spos + (int64_t)k]);
			opos += n;
			spos += (int64_t)n;
			add -= n;
			a->done += n;
			if ((err = progress_point(a)))
				goto fail;
		}
		while (copy > 0) {
			n = copy < TRIM_EVERY ? copy : TRIM_EVERY;
			if ((err = dg_delta_preader_read(&extra, out + opos, (size_t)n)))
				goto fail;
			opos += n;
			copy -= n;
			a->done += n;
			if ((err = progress_point(a)))
				goto fail;
		}
		/* zigzag-decoded seek */
		n = (seek >> 1) ^ (0 - (seek & 1));
		spos += (int64_t)n;
	}
	if ((err = dg_delta_preader_finish(&ctrl)) || (err = dg_delta_preader_finish(&diff)) ||
	    (err = dg_delta_preader_finish(&extra)))
		goto fail;
fail:
	dg_delta_preader_close(&ctrl);
	dg_delta_preader_close(&diff);
	dg_delta_preader_close(&extra);
	return err;
}

/* RAW and ZPATCH: one zstd frame decoded straight into the output. */
static dg_err
apply_frame(struct applier *a, const struct item *it, const uint8_t *prefix, uint8_t *out)
{
	struct preader r;
	ZSTD_outBuffer ob = { out, (size_t)it->out_len, 0 };
	uint64_t base;
	size_t ret = 1;
	dg_err err;

	if ((err = dg_delta_preader_open(&r, a->d, &it->p[0], a->mem_limit, 1)))
		return err;
	if (it->p[0].codec != CODEC_ZSTD) {
		/* stored or xz raw item: the generic reader */
		free(r.ob);
		r.ob = malloc(IOBUF);
		if (!r.ob) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		for (uint64_t o = 0; o < it->out_len;) {
			size_t k = it->out_len - o < TRIM_EVERY ? (size_t)(it->out_len - o) : TRIM_EVERY;

			if ((err = dg_delta_preader_read(&r, out + o, k)))
				goto fail;
			o += k;
			a->done += k;
			if ((err = progress_point(a)))
				goto fail;
		}
		err = dg_delta_preader_finish(&r);
		goto fail;
	}
	if (prefix && it->src_len &&
	    ZSTD_isError(ZSTD_DCtx_refPrefix(r.z, prefix, (size_t)it->src_len))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	base = a->done;
	for (;;) {
		ZSTD_inBuffer in;

		if ((err = dg_delta_fill_in(&r)))
			goto fail;
		in = (ZSTD_inBuffer){ r.in, r.in_len - r.in_pos > FEED ? r.in_pos + FEED : r.in_len,
				      r.in_pos };
		ret = ZSTD_decompressStream(r.z, &ob, &in);
		if (ZSTD_isError(ret)) {
			err = dg_delta_zstd_err(ret);
			goto fail;
		}
		r.in_pos = in.pos;
		if (ret == 0)
			break;
		if (in.pos == r.in_len && r.in_left == 0) {
			err = DG_ERR_DELTA_TRUNCATED;
			goto fail;
		}
		a->done = base + ob.pos;
		if ((err = progress_point(a)))
			goto fail;
	}
	if (ob.pos != ob.size || r.in_pos != r.in_len || r.in_left) {
		err = DG_ERR_DELTA_CORRUPT;
		goto fail;
	}
	a->done = base + it->out_len;
fail:
	dg_delta_preader_close(&r);
	return err;
}

static dg_err
apply_predict(struct applier *a, const struct item *it, uint8_t *s)
{
	struct preader r;
	struct xmap m = { NULL, 0 };
	uint8_t *map = NULL;
	dg_mcu_map mm;
	size_t used = 0;
	dg_err err;

	if (it->p[3].rlen > a->mem_limit / 4)
		return DG_ERR_DELTA_MEMLIMIT;
	if ((err = dg_delta_preader_open(&r, a->d, &it->p[3], a->mem_limit, 0)))
		return err;
	map = malloc(it->p[3].rlen ? (size_t)it->p[3].rlen : 1);
	if (!map) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((err = dg_delta_preader_read(&r, map, (size_t)it->p[3].rlen)) ||
	    (err = dg_delta_preader_finish(&r)))
		goto fail;
	if (it->kind == KIND_BSDIFF_MCU) {
		/* the address map, then the first pass's control stream */
		if (dg_mcu_map_read(map, (size_t)it->p[3].rlen, it->src_len, &mm, &used) != 0) {
			err = DG_ERR_DELTA_CORRUPT;
			goto fail;
		}
	}
	if ((err = dg_delta_xmap_build(map + used, (size_t)it->p[3].rlen - used, it->src_len, &m)))
		goto fail;
	if (it->kind == KIND_BSDIFF_MCU)
		dg_mcu_predict(s, (size_t)it->src_len, &mm, dg_delta_xmap_shift, &m);
	else
		dg_bcj_x64_predict(s, (size_t)it->src_len, dg_delta_xmap_shift, &m);
fail:
	free(m.b);
	free(map);
	dg_delta_preader_close(&r);
	return err;
}

dg_err
dg_delta_apply_items(struct applier *a, const struct item *items, uint32_t nitems)
{
	uint64_t opos = 0;
	uint32_t i;
	struct scratch s;
	const uint8_t *src;
	dg_err err = DG_OK;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < nitems; i++) {
		const struct item *it = &items[i];
		uint8_t *out = a->out + opos;

		a->wm_base = opos;
		a->wm_end = opos + it->out_len;
		a->wm_hold = it->filter != DG_BCJ_NONE;
		if ((err = dg_delta_check_cancel(a)))
			return err;
		src = a->src + it->src_off;
		if (it->filter != DG_BCJ_NONE && (it->kind == KIND_BSDIFF || it->kind == KIND_ZPATCH)) {
			if ((err = dg_delta_scratch_new(a, (size_t)it->src_len, &s)))
				return err;
			if (it->src_len) {
				memcpy(s.p, src, (size_t)it->src_len);
				dg_bcj_encode(it->filter, s.p, (size_t)it->src_len);
			}
			src = s.p;
		}
		switch (it->kind) {
		case KIND_RAW:
			err = apply_frame(a, it, NULL, out);
			break;
		case KIND_COPY:
			for (uint64_t o = 0; o < it->out_len && !err;) {
				size_t k = it->out_len - o < TRIM_EVERY ? (size_t)(it->out_len - o)
									 : TRIM_EVERY;

				memcpy(out + o, src + o, k);
				o += k;
				a->done += k;
				err = progress_point(a);
			}
			break;
		case KIND_BSDIFF:
			err = apply_bsdiff(a, it, src, out);
			break;
		case KIND_ZPATCH:
			err = apply_frame(a, it, src, out);
			break;
		case KIND_BSDIFF_X64:
		case KIND_BSDIFF_MCU:
			if ((err = dg_delta_scratch_new(a, (size_t)it->src_len, &s)))
				return err;
			if (it->src_len)
				memcpy(s.p, src, (size_t)it->src_len);
			if ((err = apply_predict(a, it, s.p)) == DG_OK)
				err = apply_bsdiff(a, it, s.p, out);
			break;
		default:
			err = DG_ERR_DELTA_RECIPE;
			break;
		}
		dg_delta_scratch_free(a, &s);
		if (err)
			return err;
		if (it->filter != DG_BCJ_NONE)
			dg_bcj_decode(it->filter, out, (size_t)it->out_len);
		opos += it->out_len;
		a->wm_base = a->wm_end = opos;
		a->wm_hold = 0;
	}
	return dg_delta_check_cancel(a);
}

unsigned
dg_delta_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

/* Parse, check the source, rebuild into out (tgt_size bytes), check the
 * target's hash. */
static dg_err
apply_core(const uint8_t *src, size_t src_len, const struct din *d, int out_fd,
	   const dg_delta_apply_opts *o, const char *scratch_dir,
	   uint8_t *(*get_out)(void *ctx, uint64_t size, dg_err *err), void *ctx, int mapped)
{
	struct header h;
	struct item *items = NULL;
	struct applier a;
	uint8_t sha[32];
	dg_err err;

	memset(&a, 0, sizeof(a));
	a.out_fd = out_fd;
	if ((err = dg_delta_parse(d, o ? o->max_target_size : 0, &h, &items)))
		return err;
	if (h.src_size != src_len) {
		err = DG_ERR_DELTA_SOURCE;
		goto fail;
	}
	if (mapped && src_len >= TRIM_MAP_MIN)
		trim_add(&a, (void *)src, src_len);
	a.mem_limit = o && o->mem_limit ? o->mem_limit : DG_DELTA_DEFAULT_MEM_LIMIT;
	a.threads = o && o->threads ? o->threads : dg_delta_cpus();
	if (a.threads > DG_DELTA_MAX_THREADS)
		a.threads = DG_DELTA_MAX_THREADS;
	/* a chunk thread keeps ~2.5 MiB resident: its zlib state, a deflated
	 * chunk, the E(T) pages it reads */
	if (a.threads > a.mem_limit / DG_DELTA_THREAD_MEM)
		a.threads = a.mem_limit / DG_DELTA_THREAD_MEM ? (unsigned)(a.mem_limit / DG_DELTA_THREAD_MEM)
							       : 1;
	a.src_len = src_len;
	/* an archive checks it while its threads expand the source */
	a.src_deferred = h.ar && a.threads > 1;
	if (!a.src_deferred && (err = dg_delta_sha256_trim(&a, src, src_len, sha)))
		goto fail;
	if (!a.src_deferred && memcmp(sha, h.src_sha, 32) != 0) {
		err = DG_ERR_DELTA_SOURCE;
		goto fail;
	}
	a.src = src;
	a.d = d;
	a.h = &h;
	a.o = o;
	a.scratch_dir = scratch_dir;
	a.out = get_out(ctx, h.tgt_size, &err);
	if (err)
		goto fail;
	if (mapped && h.tgt_size >= TRIM_MAP_MIN) {
		trim_add(&a, a.out, (size_t)h.tgt_size);
		a.out_trim = 1;
	}
	if (h.ar)
		err = dg_delta_apply_archive(&a, items);
	else
		err = dg_delta_apply_items(&a, items, h.nitems);
	if (err)
		goto fail;
	if (a.tgt_hashed)
		memcpy(sha, a.tgt_sha, 32);
	else if ((err = dg_delta_sha256_trim(&a, a.out, (size_t)h.tgt_size, sha)))
		goto fail;
	if (memcmp(sha, h.tgt_sha, 32) != 0)
		err = DG_ERR_DELTA_TARGET;
fail:
	free(items);
	dg_delta_archive_free(h.ar);
	return err;
}

struct memout {
	uint8_t *p;
	uint64_t size;
};

static uint8_t *
memout_get(void *ctx, uint64_t size, dg_err *err)
{
	struct memout *m = ctx;

	*err = DG_OK;
	m->size = size;
	if (size > SIZE_MAX - 1) {
		*err = DG_ERR_TOOBIG;
		return NULL;
	}
	m->p = malloc(size ? (size_t)size : 1);
	if (!m->p)
		*err = DG_ERR_NOMEM;
	return m->p;
}

dg_err
dg_delta_apply_mem(const uint8_t *src, size_t src_len, const uint8_t *delta, size_t delta_len,
		   const dg_delta_apply_opts *opts, uint8_t **out, size_t *out_len)
{
	struct din d = { delta, -1, delta_len };
	struct memout m = { NULL, 0 };
	dg_err err;

	*out = NULL;
	*out_len = 0;
	if (!delta)
		d.mem = (const uint8_t *)"";
	err = apply_core(src ? src : (const uint8_t *)"", src_len, &d, -1, opts, NULL, memout_get, &m,
			 0);
	if (err) {
		free(m.p);
		return err;
	}
	*out_len = (size_t)m.size;
	*out = m.p;
	return DG_OK;
}

struct fileout {
	int fd;
	uint8_t *map;
	uint64_t size;
};

static uint8_t *
fileout_get(void *ctx, uint64_t size, dg_err *err)
{
	struct fileout *f = ctx;
	int r;

	*err = DG_OK;
	f->size = size;
	if (size == 0)
		return (uint8_t *)"";
	if (size > (uint64_t)SIZE_MAX / 2) {
		*err = DG_ERR_TOOBIG;
		return NULL;
	}
	/* reserve the blocks first: a write fault on a full disk through the
	 * mapping would be SIGBUS, not an error */
	if ((r = posix_fallocate(f->fd, 0, (off_t)size)) != 0) {
		*err = dg_err_from_errno(r);
		return NULL;
	}
	f->map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		*err = dg_err_from_errno(errno);
		return NULL;
	}
	return f->map;
}

dg_err
dg_delta_map_file(const char *path, int *fd_out, const uint8_t **map, size_t *len)
{
	struct stat st;
	int fd;
	dg_err err;

	*map = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dg_err_from_errno(errno);
	if (fstat(fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return DG_ERR_INVAL;
	}
	*len = (size_t)st.st_size;
	if (*len) {
		void *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			err = dg_err_from_errno(errno);
			close(fd);
			return err;
		}
		*map = p;
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return DG_OK;
}

static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

dg_err
dg_delta_apply_file(const char *source_path, const char *delta_path, const char *target_path,
		    const dg_delta_apply_opts *opts)
{
	const uint8_t *src = NULL;
	size_t src_len = 0;
	struct din d = { NULL, -1, 0 };
	struct stat st;
	struct fileout f = { -1, NULL, 0 };
	char *tmp = NULL, *dir = NULL;
	dg_err err;

	if ((err = dg_delta_map_file(source_path, NULL, &src, &src_len))) {
		dg_log_err("%s: %s", source_path, dg_strerror(err));
		return err;
	}
	if (src_len)
		madvise((void *)src, src_len, MADV_WILLNEED);
	d.fd = open(delta_path, O_RDONLY | O_CLOEXEC);
	if (d.fd < 0 || fstat(d.fd, &st) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", delta_path, dg_strerror(err));
		goto fail;
	}
	d.size = (uint64_t)st.st_size;
	dir = dir_of(target_path);
	if (!dir || asprintf(&tmp, "%s.tmp.XXXXXX", target_path) < 0) {
		tmp = NULL;
		err = DG_ERR_NOMEM;
		goto fail;
	}
	f.fd = mkostemp(tmp, O_CLOEXEC);
	if (f.fd < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", tmp, dg_strerror(err));
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	if (fchmod(f.fd, 0644) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	err = apply_core(src, src_len, &d, f.fd, opts, dir, fileout_get, &f, 1);
	if (err) {
		dg_log_err("apply %s to %s: %s", delta_path, source_path, dg_strerror(err));
		goto fail;
	}
	if (f.map) {
		munmap(f.map, (size_t)f.size);
		f.map = NULL;
	}
	if (fsync(f.fd) < 0 || close(f.fd) < 0) {
		f.fd = -1;
		err = dg_err_from_errno(errno);
		goto fail;
	}
	f.fd = -1;
	if (rename(tmp, target_path) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: %s", target_path, dg_strerror(err));
		goto fail;
	}
	free(tmp);
	tmp = NULL;
	err = dg_util_fsync_dir(target_path);
fail:
	if (f.map)
		munmap(f.map, (size_t)f.size);
	if (f.fd >= 0)
		close(f.fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dir);
	if (d.fd >= 0)
		close(d.fd);
	if (src)
		munmap((void *)src, src_len);
	return err;
}
