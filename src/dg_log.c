/* dg_log - leveled logging to stderr or syslog. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "dg_log.h"

static int log_syslog;
static dg_log_level log_level = DG_LOG_INFO;
static const char *log_ident = "deltagate";

void
dg_log_open(const char *ident, int use_syslog, dg_log_level level)
{
	log_ident = ident ? ident : "deltagate";
	log_level = level;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
dg_log_set_level(dg_log_level level)
{
	log_level = level;
}

dg_log_level
dg_log_get_level(void)
{
	return log_level;
}

int
dg_log_level_parse(const char *s)
{
	static const char *names[] = { "err", "warn", "info", "debug" };
	int i;

	if (!s)
		return -1;
	for (i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

void
dg_log_msg(dg_log_level level, const char *fmt, ...)
{
	static const char *tags[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", line);
	} else {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		/* one fprintf per line: stdio locks the stream, so lines from
		 * Paho's threads never interleave with the loop's */
		fprintf(stderr, "%s.%03ld %s[%s]: %s\n", stamp, ts.tv_nsec / 1000000L,
		    log_ident, tags[level], line);
	}
}

char *
dg_log_redact_url(const char *url, char *buf, size_t size)
{
	const char *q;
	size_t n;

	if (size == 0)
		return buf;
	if (!url) {
		snprintf(buf, size, "(null)");
		return buf;
	}
	q = strchr(url, '?');
	n = q ? (size_t)(q - url) : strlen(url);
	if (n >= size)
		n = size - 1;
	memcpy(buf, url, n);
	buf[n] = '\0';
	if (q)
		snprintf(buf + n, size - n, "?<redacted>");
	return buf;
}
