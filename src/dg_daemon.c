/* dg_daemon - start-up chores shared by deltagate's daemons. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "dg_daemon.h"
#include "dg_log.h"
#include "dg_util.h"

dg_err
dg_daemon_drop_privileges(const char *user)
{
	struct passwd *pw;

	if (!user || !*user)
		return DG_OK;
	errno = 0;
	if (!(pw = getpwnam(user))) {
		dg_log_err("user '%s': no such user", user);
		return DG_ERR_NOENT;
	}
	if (pw->pw_uid == getuid() && pw->pw_uid == geteuid() && pw->pw_uid != 0) {
		dg_log_info("running as user %s", user);
		return DG_OK;
	}
	if (initgroups(user, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
		dg_log_err("cannot switch to user '%s': %s", user, strerror(errno));
		return DG_ERR_PERM;
	}
	/* make sure there is no way back */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		dg_log_err("privileges of user '%s' could be regained", user);
		return DG_ERR_PERM;
	}
	dg_log_info("running as user %s", user);
	return DG_OK;
}

static int assumed;

dg_err
dg_daemon_assume_user(const char *user)
{
	struct passwd *pw;

	if (!user || !*user || geteuid() != 0)
		return DG_OK;
	if (!(pw = getpwnam(user))) {
		dg_log_err("user '%s': no such user", user);
		return DG_ERR_NOENT;
	}
	if (initgroups(user, pw->pw_gid) != 0 || setegid(pw->pw_gid) != 0 || seteuid(pw->pw_uid) != 0) {
		dg_log_err("cannot act as user '%s': %s", user, strerror(errno));
		return DG_ERR_PERM;
	}
	assumed = 1;
	return DG_OK;
}

dg_err
dg_daemon_resume_root(void)
{
	if (!assumed)
		return DG_OK;
	if (seteuid(0) != 0 || setegid(0) != 0) {
		dg_log_err("cannot go back to root: %s", strerror(errno));
		return DG_ERR_PERM;
	}
	assumed = 0;
	return DG_OK;
}

dg_err
dg_daemon_write_pidfile(const char *path)
{
	char buf[32];
	int n;

	if (!path || !*path)
		return DG_OK;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	return dg_util_write_atomic(path, buf, (size_t)n, 0644);
}

void
dg_daemon_remove_pidfile(const char *path)
{
	if (path && *path)
		unlink(path);
}

void
dg_daemon_notify_ready(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
}

void
dg_daemon_notify_stopping(void)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
}

struct dg_watchdog {
	struct event *timer;
};

#ifdef HAVE_SYSTEMD
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
}
#endif

dg_watchdog *
dg_daemon_watchdog_new(struct event_base *base, dg_err *err)
{
	dg_watchdog *wd = calloc(1, sizeof(*wd));
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;
	struct timeval tv;
	int r;
#endif

	*err = DG_ERR_NOMEM;
	if (!wd)
		return NULL;
#ifdef HAVE_SYSTEMD
	if ((r = sd_watchdog_enabled(0, &usec)) < 0) {
		dg_log_err("watchdog: WATCHDOG_USEC/WATCHDOG_PID unusable: %s", strerror(-r));
		*err = DG_ERR_CONFIG_VALUE;
		goto fail;
	}
	if (r > 0) {
		usec = usec / 2 > 1000 ? usec / 2 : 1000;
		tv.tv_sec = (time_t)(usec / 1000000);
		tv.tv_usec = (suseconds_t)(usec % 1000000);
		if (!(wd->timer = event_new(base, -1, EV_PERSIST, on_watchdog, wd)) ||
		    event_add(wd->timer, &tv) != 0)
			goto fail;
		sd_notify(0, "WATCHDOG=1");
		dg_log_info("watchdog: pinging every %llu ms", (unsigned long long)(usec / 1000));
	}
#endif
	*err = DG_OK;
	return wd;
#ifdef HAVE_SYSTEMD
fail:
	dg_daemon_watchdog_free(wd);
	return NULL;
#endif
}

void
dg_daemon_watchdog_free(dg_watchdog *wd)
{
	if (!wd)
		return;
	if (wd->timer)
		event_free(wd->timer);
	free(wd);
}
