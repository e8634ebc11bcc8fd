/* dg_log - leveled logging to stderr or syslog.
 *
 * Chosen once at start-up with dg_log_open(); before that, messages go to
 * stderr at DG_LOG_INFO. Safe to call from any thread (one write per line).
 * Never pass secrets (PSKs, URL signatures, tokens): use dg_log_redact_url().
 */
#ifndef DG_LOG_H
#define DG_LOG_H

#include <stddef.h>

typedef enum dg_log_level {
	DG_LOG_ERR = 0,
	DG_LOG_WARN = 1,
	DG_LOG_INFO = 2,
	DG_LOG_DEBUG = 3
} dg_log_level;

/* Send messages to syslog (ident) when use_syslog, else to stderr; drop
 * messages above level. */
void dg_log_open(const char *ident, int use_syslog, dg_log_level level);
void dg_log_set_level(dg_log_level level);
dg_log_level dg_log_get_level(void);
/* Parse "err", "warn", "info" or "debug"; returns -1 for anything else. */
int dg_log_level_parse(const char *s);

void dg_log_msg(dg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define dg_log_err(...) dg_log_msg(DG_LOG_ERR, __VA_ARGS__)
#define dg_log_warn(...) dg_log_msg(DG_LOG_WARN, __VA_ARGS__)
#define dg_log_info(...) dg_log_msg(DG_LOG_INFO, __VA_ARGS__)
#define dg_log_debug(...) dg_log_msg(DG_LOG_DEBUG, __VA_ARGS__)

/* Copy url into buf (size bytes), replacing the query string, if any, with
 * "?<redacted>" so that pre-signed URL signatures never reach a log.
 * Always NUL-terminates; truncates if buf is too small. Returns buf. */
char *dg_log_redact_url(const char *url, char *buf, size_t size);

#endif
