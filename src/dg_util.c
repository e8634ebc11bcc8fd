/* dg_util - small helpers shared by every module. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dg_log.h"
#include "dg_util.h"

dg_err
dg_util_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return DG_ERR_INVAL;
	errno = 0;
	v = strtoll(s, &end, 0);
	if (*end != '\0')
		return DG_ERR_INVAL;
	if (errno == ERANGE || v < min || v > max)
		return DG_ERR_RANGE;
	*out = v;
	return DG_OK;
}

dg_err
dg_util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull accepts "-1" and wraps it: refuse signs outright */
	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return DG_ERR_INVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end != '\0')
		return DG_ERR_INVAL;
	if (errno == ERANGE || v < min || v > max)
		return DG_ERR_RANGE;
	*out = v;
	return DG_OK;
}

dg_err
dg_util_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char buf[64];
	size_t n;
	unsigned shift = 0;
	uint64_t v;
	dg_err err;

	if (!s)
		return DG_ERR_INVAL;
	n = strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return DG_ERR_INVAL;
	memcpy(buf, s, n + 1);
	switch (buf[n - 1]) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	}
	if (shift)
		buf[n - 1] = '\0';
	if ((err = dg_util_parse_u64(buf, 0, UINT64_MAX >> shift, &v)) != DG_OK)
		return err;
	v <<= shift;
	if (v > max)
		return DG_ERR_RANGE;
	*out = v;
	return DG_OK;
}

void
dg_util_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

dg_err
dg_util_hex_decode(const char *hex, unsigned char *out, size_t len)
{
	size_t i;

	if (!hex || strlen(hex) != 2 * len)
		return DG_ERR_INVAL;
	for (i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return DG_ERR_INVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return DG_OK;
}

dg_err
dg_util_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return dg_err_from_errno(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return DG_OK;
}

dg_err
dg_util_fsync_dir(const char *path)
{
	char *copy = NULL;
	const char *dir;
	struct stat st;
	int fd = -1;
	dg_err err = DG_OK;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		dir = path;
	} else {
		if (!(copy = strdup(path)))
			return DG_ERR_NOMEM;
		dir = dirname(copy);
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		err = dg_err_from_errno(errno);
	if (fd >= 0)
		close(fd);
	free(copy);
	return err;
}

dg_err
dg_util_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char *tmp = NULL;
	int fd = -1;
	dg_err err;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		err = DG_ERR_NOMEM;
		goto fail;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		err = dg_err_from_errno(errno);
		free(tmp);
		tmp = NULL;
		goto fail;
	}
	if (fchmod(fd, mode) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	if ((err = dg_util_write_all(fd, data, len)) != DG_OK)
		goto fail;
	if (fsync(fd) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		err = dg_err_from_errno(errno);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		err = dg_err_from_errno(errno);
		goto fail;
	}
	free(tmp);
	return dg_util_fsync_dir(path);
fail:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	dg_log_err("%s: cannot write: %s", path, dg_strerror(err));
	return err;
}

dg_err
dg_util_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	dg_err err = DG_OK;

	if (!(f = fopen(path, "rb")))
		return dg_err_from_errno(errno);
	for (;;) {
		size_t n;

		if (cap - len < 4097) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, ncap);

			if (!nb) {
				err = DG_ERR_NOMEM;
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (len > max) {
			err = DG_ERR_TOOBIG;
			goto fail;
		}
		if (n == 0) {
			if (ferror(f)) {
				err = DG_ERR_IO;
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	buf[len] = '\0';
	*out = buf;
	if (outlen)
		*outlen = len;
	return DG_OK;
fail:
	fclose(f);
	free(buf);
	return err;
}

dg_err
dg_util_mkdir_p(const char *path, unsigned mode)
{
	char *copy, *p;
	dg_err err = DG_OK;

	if (!path || !*path)
		return DG_ERR_INVAL;
	if (!(copy = strdup(path)))
		return DG_ERR_NOMEM;
	for (p = copy + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(copy, mode) < 0 && errno != EEXIST) {
				err = dg_err_from_errno(errno);
				break;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(copy);
	return err;
}

uint64_t
dg_util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
dg_util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
dg_util_timer_arm(struct event *ev, int64_t ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(ev, &tv);
}
