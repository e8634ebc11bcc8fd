/* dg_daemon - start-up chores shared by deltagate's daemons. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
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
