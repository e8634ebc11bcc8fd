/* dg_swu - cpio newc/crc reader and writer for SWUpdate .swu files. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dg_log.h"
#include "dg_swu.h"
#include "dg_util.h"

/* Header fields in on-disk order, after the 6-byte magic. */
enum {
	F_INO, F_MODE, F_UID, F_GID, F_NLINK, F_MTIME, F_SIZE, F_DEVMAJOR,
	F_DEVMINOR, F_RDEVMAJOR, F_RDEVMINOR, F_NAMESIZE, F_CHECK, F_COUNT
};

struct dg_swu {
	const uint8_t *buf;
	size_t len;
	dg_swu_member *members;
	size_t count;
	dg_swu_member trailer;
	char *names;        /* all names, NUL-separated, members point here */
	size_t *by_name;    /* member indexes sorted by name, for dg_swu_find */
	uint64_t tail_pad;
	uint32_t block;
	dg_swu_format format;
};

struct dg_swu_writer {
	dg_swu_write_fn fn;
	void *arg;
	uint64_t off;
	int open;           /* a member's data is being written */
	int finished;
	dg_err failed;      /* sticky error */
	dg_swu_format format;
	int have_format;
	uint32_t remaining;
	uint32_t sum;
	uint32_t check;
	int want_check;
};

static const uint8_t zeros[512];

static void
setwhy(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 8 hex digits at p into *out; -1 if any is not hex. */
static int
parse_field(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	int i, d;

	for (i = 0; i < 8; i++) {
		if ((d = hexval((unsigned char)p[i])) < 0)
			return -1;
		v = (v << 4) | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static size_t
pad4(uint64_t n)
{
	return (size_t)((4 - (n & 3)) & 3);
}

static int
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

dg_err
dg_swu_name_check(const char *name)
{
	const char *p, *c;
	size_t n;

	if (!name || !*name)
		return DG_ERR_SWU_NAME;
	n = strlen(name);
	if (n > DG_SWU_NAME_MAX || name[0] == '/')
		return DG_ERR_SWU_NAME;
	for (p = name; *p; p = *c ? c + 1 : c) {
		c = strchr(p, '/');
		if (!c)
			c = p + strlen(p);
		if (c - p == 2 && p[0] == '.' && p[1] == '.')
			return DG_ERR_SWU_NAME;
	}
	return DG_OK;
}

uint32_t
dg_swu_checksum(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++)
		sum += p[i];
	return sum;
}

static void
fields_of(const dg_swu_member *m, uint32_t *f, uint32_t namesize)
{
	f[F_INO] = m->ino;
	f[F_MODE] = m->mode;
	f[F_UID] = m->uid;
	f[F_GID] = m->gid;
	f[F_NLINK] = m->nlink;
	f[F_MTIME] = m->mtime;
	f[F_SIZE] = m->size;
	f[F_DEVMAJOR] = m->devmajor;
	f[F_DEVMINOR] = m->devminor;
	f[F_RDEVMAJOR] = m->rdevmajor;
	f[F_RDEVMINOR] = m->rdevminor;
	f[F_NAMESIZE] = namesize;
	f[F_CHECK] = m->check;
}

/* Parse the header at p (DG_SWU_HDR_LEN bytes) into m and *namesize. */
static dg_err
parse_header(const uint8_t *p, dg_swu_member *m, uint32_t *namesize)
{
	uint32_t f[F_COUNT];
	int i;

	if (memcmp(p, "070701", 6) == 0)
		m->format = DG_SWU_NEWC;
	else if (memcmp(p, "070702", 6) == 0)
		m->format = DG_SWU_CRC;
	else
		return DG_ERR_SWU_FORMAT;
	for (i = 0; i < F_COUNT; i++)
		if (parse_field((const char *)p + 6 + 8 * i, &f[i]) != 0)
			return DG_ERR_SWU_FORMAT;
	m->ino = f[F_INO];
	m->mode = f[F_MODE];
	m->uid = f[F_UID];
	m->gid = f[F_GID];
	m->nlink = f[F_NLINK];
	m->mtime = f[F_MTIME];
	m->size = f[F_SIZE];
	m->devmajor = f[F_DEVMAJOR];
	m->devminor = f[F_DEVMINOR];
	m->rdevmajor = f[F_RDEVMAJOR];
	m->rdevminor = f[F_RDEVMINOR];
	m->check = f[F_CHECK];
	*namesize = f[F_NAMESIZE];
	memcpy(m->raw, p, DG_SWU_HDR_LEN);
	return DG_OK;
}

/* qsort has no context argument: the members being sorted are passed in
 * a thread-local, so parsing stays safe from several threads. */
static _Thread_local const dg_swu_member *sort_members;

static int
cmp_names(const void *a, const void *b)
{
	const size_t *x = a, *y = b;

	return strcmp(sort_members[*x].name, sort_members[*y].name);
}

/* Smallest multiple of 512 (up to 64 KiB) that explains tail_pad zero
 * bytes ending an archive of len bytes; 0 if none. */
static uint32_t
infer_block(uint64_t len, uint64_t tail_pad)
{
	uint32_t b;

	for (b = 512; b <= 65536; b += 512)
		if (len % b == 0 && tail_pad < b)
			return b;
	return 0;
}

dg_swu *
dg_swu_parse(const void *vbuf, size_t len, dg_err *err, char *why, size_t whylen)
{
	const uint8_t *buf = vbuf;
	dg_swu *swu = NULL;
	dg_swu_member *ms = NULL, m;
	size_t *sorted = NULL;
	size_t cap = 0, count = 0, names_len = 0, i;
	uint64_t off = 0;
	int have_trailer = 0;
	char *np;
	dg_err e = DG_OK;

	if (!buf && len) {
		e = DG_ERR_INVAL;
		setwhy(why, whylen, "no buffer");
		goto fail;
	}
	if (!(swu = calloc(1, sizeof(*swu)))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	/* First pass: validate every header and find the names' total size. */
	while (!have_trailer) {
		uint32_t namesize;
		const char *name;
		uint64_t end;

		memset(&m, 0, sizeof(m));
		if (len - off < DG_SWU_HDR_LEN) {
			e = DG_ERR_SWU_TRUNCATED;
			setwhy(why, whylen, off == 0 && len < 6 ? "not a cpio archive (too short)" :
			    "header at offset %llu cut short (no TRAILER!!!)", (unsigned long long)off);
			goto fail;
		}
		if ((e = parse_header(buf + off, &m, &namesize)) != DG_OK) {
			int magic_ok = memcmp(buf + off, "070701", 6) == 0 ||
			    memcmp(buf + off, "070702", 6) == 0;

			setwhy(why, whylen, magic_ok ? "non-hex header field at offset %llu" :
			    "bad magic at offset %llu (not cpio newc/crc)", (unsigned long long)off);
			goto fail;
		}
		if (count == 0)
			swu->format = m.format;
		else if (m.format != swu->format) {
			e = DG_ERR_SWU_FORMAT;
			setwhy(why, whylen, "070701 and 070702 headers mixed at offset %llu",
			    (unsigned long long)off);
			goto fail;
		}
		m.header_offset = off;
		if (namesize < 2 || namesize > DG_SWU_NAME_MAX + 1) {
			e = DG_ERR_SWU_NAME;
			setwhy(why, whylen, "name size %lu at offset %llu out of range",
			    (unsigned long)namesize, (unsigned long long)off);
			goto fail;
		}
		if (len - off - DG_SWU_HDR_LEN < namesize) {
			e = DG_ERR_SWU_TRUNCATED;
			setwhy(why, whylen, "name at offset %llu cut short", (unsigned long long)off);
			goto fail;
		}
		name = (const char *)buf + off + DG_SWU_HDR_LEN;
		if (name[namesize - 1] != '\0' || memchr(name, '\0', namesize - 1)) {
			e = DG_ERR_SWU_NAME;
			setwhy(why, whylen, "name at offset %llu is not NUL-terminated where its size says",
			    (unsigned long long)off);
			goto fail;
		}
		end = off + DG_SWU_HDR_LEN + namesize;
		if (len - end < pad4(end)) {
			e = DG_ERR_SWU_TRUNCATED;
			setwhy(why, whylen, "padding after name '%s' cut short", name);
			goto fail;
		}
		if (!all_zero(buf + end, pad4(end))) {
			e = DG_ERR_SWU_FORMAT;
			setwhy(why, whylen, "non-zero padding after name '%s'", name);
			goto fail;
		}
		end += pad4(end);
		m.data_offset = end;
		if (len - end < m.size) {
			e = DG_ERR_SWU_TRUNCATED;
			setwhy(why, whylen, "data of '%s' (%lu bytes at offset %llu) cut short",
			    name, (unsigned long)m.size, (unsigned long long)end);
			goto fail;
		}
		m.data = buf + end;
		end += m.size;
		if (len - end < pad4(end)) {
			e = DG_ERR_SWU_TRUNCATED;
			setwhy(why, whylen, "padding after data of '%s' cut short", name);
			goto fail;
		}
		if (!all_zero(buf + end, pad4(end))) {
			e = DG_ERR_SWU_FORMAT;
			setwhy(why, whylen, "non-zero padding after data of '%s'", name);
			goto fail;
		}
		end += pad4(end);
		if (strcmp(name, DG_SWU_TRAILER_NAME) == 0) {
			if (m.size != 0) {
				e = DG_ERR_SWU_FORMAT;
				setwhy(why, whylen, "TRAILER!!! at offset %llu has data",
				    (unsigned long long)off);
				goto fail;
			}
			have_trailer = 1;
			m.name = DG_SWU_TRAILER_NAME;
			swu->trailer = m;
			off = end;
			break;
		}
		if ((e = dg_swu_name_check(name)) != DG_OK) {
			setwhy(why, whylen, "refused member name '%s' (absolute or '..')", name);
			goto fail;
		}
		if (m.format == DG_SWU_CRC && dg_swu_checksum(0, m.data, m.size) != m.check) {
			e = DG_ERR_SWU_CHECKSUM;
			setwhy(why, whylen, "checksum of '%s' does not match its data", name);
			goto fail;
		}
		if (count == DG_SWU_MEMBERS_MAX) {
			e = DG_ERR_TOOBIG;
			setwhy(why, whylen, "more than %d members", DG_SWU_MEMBERS_MAX);
			goto fail;
		}
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			dg_swu_member *n = realloc(ms, ncap * sizeof(*ms));

			if (!n) {
				e = DG_ERR_NOMEM;
				goto fail;
			}
			ms = n;
			cap = ncap;
		}
		/* the name points into buf until it is copied below */
		m.name = name;
		ms[count++] = m;
		names_len += namesize;
		off = end;
	}
	swu->tail_pad = len - off;
	if (!all_zero(buf + off, len - off)) {
		e = DG_ERR_SWU_FORMAT;
		setwhy(why, whylen, "non-zero data after TRAILER!!! at offset %llu",
		    (unsigned long long)off);
		goto fail;
	}
	swu->block = infer_block(len, swu->tail_pad);
	if (swu->tail_pad && !swu->block) {
		e = DG_ERR_SWU_FORMAT;
		setwhy(why, whylen, "%llu bytes after TRAILER!!! not explained by a block size",
		    (unsigned long long)swu->tail_pad);
		goto fail;
	}
	/* Duplicate names make pairing by name ambiguous: refuse them. The
	 * sorted order is kept for dg_swu_find. */
	if (!(sorted = malloc((count ? count : 1) * sizeof(*sorted)))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < count; i++)
		sorted[i] = i;
	sort_members = ms;
	qsort(sorted, count, sizeof(*sorted), cmp_names);
	for (i = 1; i < count; i++)
		if (strcmp(ms[sorted[i - 1]].name, ms[sorted[i]].name) == 0) {
			e = DG_ERR_SWU_DUPLICATE;
			setwhy(why, whylen, "member name '%s' appears twice", ms[sorted[i]].name);
			goto fail;
		}
	if (!(swu->names = malloc(names_len ? names_len : 1))) {
		e = DG_ERR_NOMEM;
		goto fail;
	}
	np = swu->names;
	for (i = 0; i < count; i++) {
		size_t n = strlen(ms[i].name) + 1;

		memcpy(np, ms[i].name, n);
		ms[i].name = np;
		np += n;
	}
	swu->by_name = sorted;
	swu->buf = buf;
	swu->len = len;
	swu->members = ms;
	swu->count = count;
	if (err)
		*err = DG_OK;
	return swu;
fail:
	free(sorted);
	free(ms);
	if (swu)
		free(swu->names);
	free(swu);
	if (err)
		*err = e;
	return NULL;
}

void
dg_swu_free(dg_swu *swu)
{
	if (!swu)
		return;
	free(swu->members);
	free(swu->names);
	free(swu->by_name);
	free(swu);
}

size_t
dg_swu_count(const dg_swu *swu)
{
	return swu->count;
}

const dg_swu_member *
dg_swu_member_at(const dg_swu *swu, size_t i)
{
	return i < swu->count ? &swu->members[i] : NULL;
}

const dg_swu_member *
dg_swu_find(const dg_swu *swu, const char *name, size_t *index)
{
	size_t lo = 0, hi = swu->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, k = swu->by_name[mid];
		int c = strcmp(name, swu->members[k].name);

		if (c == 0) {
			if (index)
				*index = k;
			return &swu->members[k];
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const dg_swu_member *
dg_swu_trailer(const dg_swu *swu)
{
	return &swu->trailer;
}

dg_swu_format
dg_swu_format_of(const dg_swu *swu)
{
	return swu->format;
}

uint64_t
dg_swu_tail_padding(const dg_swu *swu)
{
	return swu->tail_pad;
}

uint32_t
dg_swu_block_size(const dg_swu *swu)
{
	return swu->block;
}

dg_err
dg_swu_check_desc_first(const dg_swu *swu)
{
	if (swu->count == 0 || strcmp(swu->members[0].name, DG_SWU_DESC_NAME) != 0)
		return DG_ERR_SWU_NO_DESC;
	return DG_OK;
}

void
dg_swu_member_init(dg_swu_member *m, const dg_swu_member *like,
    const char *name, uint32_t size, uint32_t check)
{
	if (like) {
		*m = *like;
	} else {
		memset(m, 0, sizeof(*m));
		m->format = DG_SWU_NEWC;
		m->mode = 0100644;
		m->nlink = 1;
	}
	m->name = name;
	m->size = size;
	m->check = check;
	m->header_offset = 0;
	m->data_offset = 0;
	m->data = NULL;
}

/* ---- writer ---- */

dg_swu_writer *
dg_swu_writer_new(dg_swu_write_fn fn, void *arg, dg_err *err)
{
	dg_swu_writer *w;

	if (!fn) {
		if (err)
			*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(w = calloc(1, sizeof(*w)))) {
		if (err)
			*err = DG_ERR_NOMEM;
		return NULL;
	}
	w->fn = fn;
	w->arg = arg;
	if (err)
		*err = DG_OK;
	return w;
}

void
dg_swu_writer_free(dg_swu_writer *w)
{
	free(w);
}

uint64_t
dg_swu_writer_offset(const dg_swu_writer *w)
{
	return w->off;
}

static dg_err
emit(dg_swu_writer *w, const void *data, size_t len)
{
	dg_err e;

	if (len == 0)
		return DG_OK;
	if ((e = w->fn(w->arg, data, len)) != DG_OK) {
		w->failed = e;
		return e;
	}
	w->off += len;
	return DG_OK;
}

static dg_err
emit_zeros(dg_swu_writer *w, uint64_t n)
{
	dg_err e;

	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		if ((e = emit(w, zeros, k)) != DG_OK)
			return e;
		n -= k;
	}
	return DG_OK;
}

/* Render m's header; a field whose value is unchanged from m->raw keeps
 * its digits, others use m->raw's case (upper case when raw is blank). */
static void
render_header(const dg_swu_member *m, uint32_t namesize, char *out)
{
	static const char upper[] = "0123456789ABCDEF", lower[] = "0123456789abcdef";
	uint32_t f[F_COUNT], old;
	const char *digits = upper;
	int have_raw = m->raw[0] != '\0', i, j;

	fields_of(m, f, namesize);
	if (have_raw) {
		for (i = 6; i < DG_SWU_HDR_LEN; i++)
			if (m->raw[i] >= 'a' && m->raw[i] <= 'f') {
				digits = lower;
				break;
			}
	}
	memcpy(out, m->format == DG_SWU_CRC ? "070702" : "070701", 6);
	for (i = 0; i < F_COUNT; i++) {
		char *p = out + 6 + 8 * i;

		if (have_raw && parse_field(m->raw + 6 + 8 * i, &old) == 0 && old == f[i]) {
			memcpy(p, m->raw + 6 + 8 * i, 8);
			continue;
		}
		for (j = 7; j >= 0; j--) {
			p[j] = digits[f[i] & 0xf];
			f[i] >>= 4;
		}
	}
}

static dg_err
writer_usable(dg_swu_writer *w)
{
	if (w->failed)
		return w->failed;
	if (w->finished || w->open)
		return DG_ERR_INVAL;
	return DG_OK;
}

/* Header, name and padding of m (trailer or not). */
static dg_err
write_header(dg_swu_writer *w, const dg_swu_member *m)
{
	char hdr[DG_SWU_HDR_LEN];
	size_t namesize = strlen(m->name) + 1;
	dg_err e;

	if (w->have_format && m->format != w->format)
		return DG_ERR_SWU_FORMAT;
	if (m->format != DG_SWU_NEWC && m->format != DG_SWU_CRC)
		return DG_ERR_INVAL;
	render_header(m, (uint32_t)namesize, hdr);
	if ((e = emit(w, hdr, sizeof(hdr))) != DG_OK ||
	    (e = emit(w, m->name, namesize)) != DG_OK ||
	    (e = emit_zeros(w, pad4(w->off))) != DG_OK)
		return e;
	w->format = m->format;
	w->have_format = 1;
	return DG_OK;
}

dg_err
dg_swu_writer_begin(dg_swu_writer *w, const dg_swu_member *m)
{
	dg_err e;

	if ((e = writer_usable(w)) != DG_OK)
		return e;
	if (!m || !m->name || strcmp(m->name, DG_SWU_TRAILER_NAME) == 0)
		return DG_ERR_INVAL;
	if ((e = dg_swu_name_check(m->name)) != DG_OK)
		return e;
	if ((e = write_header(w, m)) != DG_OK)
		return e;
	w->open = 1;
	w->remaining = m->size;
	w->sum = 0;
	w->check = m->check;
	w->want_check = m->format == DG_SWU_CRC;
	return DG_OK;
}

dg_err
dg_swu_writer_data(dg_swu_writer *w, const void *data, size_t len)
{
	dg_err e;

	if (w->failed)
		return w->failed;
	if (!w->open)
		return DG_ERR_INVAL;
	if (len > w->remaining)
		return DG_ERR_SWU_SIZE;
	if ((e = emit(w, data, len)) != DG_OK)
		return e;
	w->remaining -= (uint32_t)len;
	if (w->want_check)
		w->sum = dg_swu_checksum(w->sum, data, len);
	return DG_OK;
}

dg_err
dg_swu_writer_end(dg_swu_writer *w)
{
	dg_err e;

	if (w->failed)
		return w->failed;
	if (!w->open)
		return DG_ERR_INVAL;
	if (w->remaining)
		return DG_ERR_SWU_SIZE;
	if (w->want_check && w->sum != w->check)
		return DG_ERR_SWU_CHECKSUM;
	if ((e = emit_zeros(w, pad4(w->off))) != DG_OK)
		return e;
	w->open = 0;
	return DG_OK;
}

dg_err
dg_swu_writer_add(dg_swu_writer *w, const dg_swu_member *m, const void *data)
{
	dg_err e;

	if ((e = dg_swu_writer_begin(w, m)) != DG_OK ||
	    (e = dg_swu_writer_data(w, data, m->size)) != DG_OK)
		return e;
	return dg_swu_writer_end(w);
}

dg_err
dg_swu_writer_finish(dg_swu_writer *w, const dg_swu_member *trailer, uint32_t block)
{
	dg_swu_member t;
	dg_err e;

	if ((e = writer_usable(w)) != DG_OK)
		return e;
	if (trailer) {
		t = *trailer;
	} else {
		memset(&t, 0, sizeof(t));
		t.format = w->have_format ? w->format : DG_SWU_NEWC;
		t.nlink = 1;
	}
	t.name = DG_SWU_TRAILER_NAME;
	t.size = 0;
	if ((e = write_header(w, &t)) != DG_OK)
		return e;
	if (block > 1 && w->off % block)
		if ((e = emit_zeros(w, block - w->off % block)) != DG_OK)
			return e;
	w->finished = 1;
	return DG_OK;
}

dg_err
dg_swu_write(const dg_swu *swu, dg_swu_write_fn fn, void *arg)
{
	return swu->len ? fn(arg, swu->buf, swu->len) : DG_OK;
}

/* ---- signing ---- */

dg_err
dg_swu_sign(const char *cmd, const char *workdir, const void *desc, size_t len,
    uint8_t **sig, size_t *siglen)
{
	char *descpath = NULL, *sigpath = NULL, *line = NULL, *data = NULL;
	size_t dlen = 0;
	pid_t pid;
	int status;
	dg_err e;

	*sig = NULL;
	*siglen = 0;
	if (!cmd || !*cmd || !workdir)
		return DG_ERR_INVAL;
	if (asprintf(&descpath, "%s/%s", workdir, DG_SWU_DESC_NAME) < 0) {
		descpath = NULL;
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if (asprintf(&sigpath, "%s/%s", workdir, DG_SWU_SIG_NAME) < 0) {
		sigpath = NULL;
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if (asprintf(&line, "%s %s", cmd, DG_SWU_DESC_NAME) < 0) {
		line = NULL;
		e = DG_ERR_NOMEM;
		goto fail;
	}
	if ((e = dg_util_write_atomic(descpath, desc, len, 0644)) != DG_OK) {
		dg_log_err("sign: cannot write %s: %s", descpath, dg_strerror(e));
		goto fail;
	}
	if (unlink(sigpath) != 0 && errno != ENOENT) {
		e = dg_err_from_errno(errno);
		dg_log_err("sign: cannot remove old %s: %s", sigpath, strerror(errno));
		goto fail;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		e = DG_ERR_SWU_SIGN;
		dg_log_err("sign: fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* keep our stdout clean: the command's output goes to stderr */
		if (chdir(workdir) != 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", line, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			e = DG_ERR_SWU_SIGN;
			dg_log_err("sign: waitpid: %s", strerror(errno));
			goto fail;
		}
	}
	if (WIFSIGNALED(status)) {
		e = DG_ERR_SWU_SIGN;
		dg_log_err("sign: command '%s' killed by signal %d", cmd, WTERMSIG(status));
		goto fail;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		e = DG_ERR_SWU_SIGN;
		dg_log_err("sign: command '%s' exited with status %d", cmd,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		goto fail;
	}
	e = dg_util_read_file(sigpath, DG_SWU_SIG_MAX, &data, &dlen);
	if (e == DG_ERR_NOENT) {
		e = DG_ERR_SWU_SIGN;
		dg_log_err("sign: command '%s' made no %s", cmd, sigpath);
		goto fail;
	}
	if (e != DG_OK) {
		dg_log_err("sign: cannot read %s: %s", sigpath, dg_strerror(e));
		goto fail;
	}
	if (dlen == 0) {
		e = DG_ERR_SWU_SIGN;
		dg_log_err("sign: command '%s' made an empty %s", cmd, sigpath);
		goto fail;
	}
	*sig = (uint8_t *)data;
	*siglen = dlen;
	data = NULL;
	e = DG_OK;
fail:
	free(data);
	free(line);
	free(sigpath);
	free(descpath);
	return e;
}
