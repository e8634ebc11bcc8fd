/* dg_daemon - the start-up chores shared by deltagate's daemons:
 * privileges, pid file, readiness notification. Daemons stay in the
 * foreground (procd and systemd supervise). */
#ifndef DG_DAEMON_H
#define DG_DAEMON_H

#include "dg_err.h"

struct event_base;

/* Switch to user, its primary group and the supplementary groups
 * /etc/group gives it (initgroups: dialout for serial lines); the root's
 * groups are dropped. NULL, "" or the user we already run as (a service
 * manager's User=) is a no-op. DG_ERR_NOENT unknown user, DG_ERR_PERM
 * failure. */
dg_err dg_daemon_drop_privileges(const char *user);

/* While root and given a user (NULL/"" or not root: no-op), act as that
 * user - effective uid and gid, its groups - so that the state opened at
 * start-up (database, cache) is created owned by it and checked against its
 * rights; dg_daemon_resume_root goes back before dg_daemon_drop_privileges.
 * DG_ERR_NOENT unknown user, DG_ERR_PERM failure (logged). */
dg_err dg_daemon_assume_user(const char *user);
dg_err dg_daemon_resume_root(void);

/* Write our pid to path durably; NULL is a no-op. Errors as
 * dg_util_write_atomic. dg_daemon_remove_pidfile unlinks it. */
dg_err dg_daemon_write_pidfile(const char *path);
void dg_daemon_remove_pidfile(const char *path);

/* Tell systemd we are ready / stopping (no-op without --with-systemd). */
void dg_daemon_notify_ready(void);
void dg_daemon_notify_stopping(void);

/* The service manager's watchdog (systemd WatchdogSec=, read through
 * sd_watchdog_enabled: WATCHDOG_USEC, WATCHDOG_PID): a timer of base sends
 * WATCHDOG=1 at half the interval, so pings stop when the loop is wedged,
 * not only when the process is gone. Without a watchdog (or without
 * --with-systemd) the object holds no timer. NULL on DG_ERR_NOMEM, or
 * DG_ERR_CONFIG_VALUE for an unusable WATCHDOG_USEC (logged).
 * dg_daemon_watchdog_free(NULL) is a no-op. */
typedef struct dg_watchdog dg_watchdog;
dg_watchdog *dg_daemon_watchdog_new(struct event_base *base, dg_err *err);
void dg_daemon_watchdog_free(dg_watchdog *wd);

#endif
