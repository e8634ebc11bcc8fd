/* dg_driver_exec - flash devices by running a command per delivery (how
 * vendor tools such as stm32flash or esptool are used today). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dg_driver.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_util.h"

struct exec_driver {
	dg_driver base;
	struct event_base *evbase;
	struct event *sigchld;
	char *command;
	int default_timeout_s;
	dg_delivery *running;   /* list of deliveries with a live child */
};

struct dg_delivery {
	struct exec_driver *drv;
	dg_delivery *next;
	pid_t pid;
	int out_fd;
	struct event *out_ev;
	struct event *timer;
	dg_delivery_events ev;
	void *arg;
	char *device;
	char line[512];
	size_t linelen;
	char version[64];
	int exited, status, timed_out, eof;
};

static void
unlink_delivery(struct exec_driver *drv, dg_delivery *d)
{
	dg_delivery **pp;

	for (pp = &drv->running; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			return;
		}
	}
}

static void
free_delivery(dg_delivery *d)
{
	if (d->out_ev)
		event_free(d->out_ev);
	if (d->timer)
		event_free(d->timer);
	if (d->out_fd >= 0)
		close(d->out_fd);
	free(d->device);
	free(d);
}

/* Both the child's exit and the end of its output are needed to finish. */
static void
maybe_finish(dg_delivery *d)
{
	int ok;
	uint32_t ext = 0;
	char detail[128];

	if (!d->exited || !d->eof)
		return;
	/* the tool has exited, its result is not yet the job's */
	DG_FAULT("driver/exec/after-exit", (void)0);
	unlink_delivery(d->drv, d);
	if (d->timed_out) {
		ok = 0;
		ext = DG_DRIVER_EXT_TIMEOUT;
		snprintf(detail, sizeof(detail), "timed out");
	} else if (WIFEXITED(d->status)) {
		ok = WEXITSTATUS(d->status) == 0;
		ext = ok ? 0 : DG_DRIVER_EXT_EXIT(WEXITSTATUS(d->status));
		snprintf(detail, sizeof(detail), "exit status %d", WEXITSTATUS(d->status));
	} else {
		ok = 0;
		ext = DG_DRIVER_EXT_SIGNAL(WTERMSIG(d->status));
		snprintf(detail, sizeof(detail), "killed by signal %d", WTERMSIG(d->status));
	}
	d->ev.done(d->arg, ok, d->version[0] ? d->version : NULL, ext, detail);
	free_delivery(d);
}

static void
parse_line(dg_delivery *d, const char *line)
{
	uint64_t done, total;
	unsigned pct;
	char v[64];

	if (sscanf(line, "progress %" SCNu64 " %" SCNu64, &done, &total) == 2 && done <= total) {
		d->ev.progress(d->arg, DG_DELIVERY_TRANSFERRING, done, total);
	} else if (sscanf(line, "progress %u%%", &pct) == 1 && pct <= 100) {
		d->ev.progress(d->arg, DG_DELIVERY_TRANSFERRING, pct, 100);
	} else if (strcmp(line, "installing") == 0) {
		d->ev.progress(d->arg, DG_DELIVERY_INSTALLING, 0, 0);
	} else if (sscanf(line, "version %63s", v) == 1) {
		snprintf(d->version, sizeof(d->version), "%s", v);
	} else if (*line) {
		dg_log_debug("%s: exec: %s", d->device, line);
	}
}

static void
on_output(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;
	char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf));
	ssize_t i;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		event_del(d->out_ev);
		d->eof = 1;
		maybe_finish(d);
		return;
	}
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n' || d->linelen == sizeof(d->line) - 1) {
			d->line[d->linelen] = '\0';
			parse_line(d, d->line);
			d->linelen = 0;
			if (buf[i] == '\n')
				continue;
		}
		d->line[d->linelen++] = buf[i];
	}
}

/* Reap every exited child first, then finish the deliveries one at a
 * time, each time from the head of the list: a done callback may start a
 * new delivery (which runs this handler again) or cancel one, so no
 * pointer into the list survives a callback. */
static void
on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct exec_driver *drv = arg;
	dg_delivery *d;

	for (d = drv->running; d; d = d->next) {
		int st;

		if (!d->exited && waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->exited = 1;
			d->status = st;
		}
	}
	for (;;) {
		for (d = drv->running; d && !(d->exited && d->eof); d = d->next)
			;
		if (!d)
			break;
		maybe_finish(d);
	}
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;

	if (d->exited)
		return;
	if (!d->timed_out) {
		d->timed_out = 1;
		kill(-d->pid, SIGTERM);
		dg_util_timer_arm(d->timer, 5000);
	} else {
		kill(-d->pid, SIGKILL);
	}
}

static dg_delivery *
exec_deliver(dg_driver *base, const dg_delivery_req *req, const dg_delivery_events *ev,
    void *arg, dg_err *err)
{
	struct exec_driver *drv = (struct exec_driver *)base;
	dg_delivery *d;
	int pipefd[2] = { -1, -1 };
	int timeout = req->timeout_s > 0 ? req->timeout_s : drv->default_timeout_s;
	pid_t pid;

	if (!(d = calloc(1, sizeof(*d))) || !(d->device = strdup(req->device_id))) {
		free(d);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	d->drv = drv;
	d->ev = *ev;
	d->arg = arg;
	d->out_fd = -1;
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		*err = dg_err_from_errno(errno);
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		*err = dg_err_from_errno(errno);
		goto fail;
	}
	if (pid == 0) {
		char size[32];
		int devnull = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		/* the loop's signal handling must not leak into the tool */
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(pipefd[1], 1);
		snprintf(size, sizeof(size), "%" PRIu64, req->image_size);
		setenv("DG_IMAGE", req->image_path, 1);
		setenv("DG_IMAGE_SIZE", size, 1);
		setenv("DG_DEVICE", req->device_id, 1);
		setenv("DG_ADDRESS", req->address ? req->address : "", 1);
		setenv("DG_JOB", req->job_id, 1);
		setenv("DG_SHA256", req->sha256_hex, 1);
		setenv("DG_VERSION", req->version ? req->version : "", 1);
		execl("/bin/sh", "sh", "-c", drv->command, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	d->pid = pid;
	d->out_fd = pipefd[0];
	fcntl(d->out_fd, F_SETFL, O_NONBLOCK);
	d->out_ev = event_new(drv->evbase, d->out_fd, EV_READ | EV_PERSIST, on_output, d);
	d->timer = evtimer_new(drv->evbase, on_timeout, d);
	if (!d->out_ev || !d->timer) {
		kill(-pid, SIGKILL);
		*err = DG_ERR_NOMEM;
		/* reaped by on_sigchld? it is not in the list: reap here */
		waitpid(pid, NULL, 0);
		goto fail;
	}
	event_add(d->out_ev, NULL);
	dg_util_timer_arm(d->timer, (int64_t)(timeout) * 1000);
	d->next = drv->running;
	drv->running = d;
	dg_log_info("%s: exec driver started (pid %ld) for job %s", req->device_id, (long)pid, req->job_id);
	*err = DG_OK;
	/* its SIGCHLD comes after this returns (the child cannot have exited
	 * before fork); the handler also runs once more from the loop, never
	 * from here: a caller that starts a delivery from a done callback
	 * must not see another delivery finish inside this call */
	event_active(drv->sigchld, EV_SIGNAL, 1);
	return d;
fail:
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pipefd[0] >= 0 && d->out_fd < 0)
		close(pipefd[0]);
	free_delivery(d);
	return NULL;
}

static void
exec_cancel(dg_delivery *d)
{
	struct exec_driver *drv = d->drv;

	unlink_delivery(drv, d);
	if (!d->exited) {
		kill(-d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	free_delivery(d);
}

static void
exec_free(dg_driver *base)
{
	struct exec_driver *drv = (struct exec_driver *)base;

	while (drv->running)
		exec_cancel(drv->running);
	if (drv->sigchld)
		event_free(drv->sigchld);
	free(drv->command);
	free(drv);
}

static const struct dg_driver_ops exec_ops = {
	"exec", exec_deliver, exec_cancel, exec_free
};

dg_driver *
dg_driver_exec_new(struct event_base *base, const char *command, int default_timeout_s, dg_err *err)
{
	struct exec_driver *drv;

	if (!command || !*command) {
		dg_log_err("exec driver: no command configured (exec-command)");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(drv = calloc(1, sizeof(*drv))) || !(drv->command = strdup(command))) {
		free(drv);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	drv->base.ops = &exec_ops;
	drv->evbase = base;
	drv->default_timeout_s = default_timeout_s > 0 ? default_timeout_s : 600;
	drv->sigchld = evsignal_new(base, SIGCHLD, on_sigchld, drv);
	if (!drv->sigchld || event_add(drv->sigchld, NULL) != 0) {
		exec_free(&drv->base);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	*err = DG_OK;
	return &drv->base;
}
