/* dg_daemon - the start-up chores shared by deltagate's daemons:
 * privileges, pid file, readiness notification. Daemons stay in the
 * foreground (procd and systemd supervise). */
#ifndef DG_DAEMON_H
#define DG_DAEMON_H

#include "dg_err.h"

/* Switch to user (and its primary group, dropping supplementary groups).
 * NULL or "" is a no-op. DG_ERR_NOENT unknown user, DG_ERR_PERM failure. */
dg_err dg_daemon_drop_privileges(const char *user);

/* Write our pid to path durably; NULL is a no-op. Errors as
 * dg_util_write_atomic. dg_daemon_remove_pidfile unlinks it. */
dg_err dg_daemon_write_pidfile(const char *path);
void dg_daemon_remove_pidfile(const char *path);

/* Tell systemd we are ready / stopping (no-op without --with-systemd). */
void dg_daemon_notify_ready(void);
void dg_daemon_notify_stopping(void);

#endif
