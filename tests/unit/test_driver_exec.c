/* The exec driver against real child processes: several tools that have
 * all exited by the time the gateway sees SIGCHLD, and a done callback
 * that starts the next delivery from inside the handler (what the job
 * scheduler does when a slot frees). CI caught the old handler keeping a
 * pointer to the next delivery across that callback and using it after
 * the nested handler had freed it. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dg_driver.h"

#define NJOBS 4

struct job {
	char name[16];
	char pidfile[96];
	int done, ok;
	uint32_t ext;
};

static struct {
	struct event_base *base;
	dg_driver *drv;
	struct job jobs[NJOBS];
	int started, finished, chain;
	char dir[64];
} t;

static void on_done(void *arg, int ok, const char *version, uint32_t ext, const char *detail);

static void
on_progress(void *arg, dg_delivery_stage stage, uint64_t done, uint64_t total)
{
	(void)arg; (void)stage; (void)done; (void)total;
}

static const dg_delivery_events events = { on_progress, on_done };

static void
start(int i)
{
	struct job *j = &t.jobs[i];
	dg_delivery_req req;
	dg_err err;

	snprintf(j->name, sizeof(j->name), "dev%d", i);
	snprintf(j->pidfile, sizeof(j->pidfile), "%s/%d.pid", t.dir, i);
	memset(&req, 0, sizeof(req));
	req.device_id = j->name;
	req.address = j->pidfile;
	req.job_id = "job";
	req.image_path = "/dev/null";
	req.sha256_hex = "00";
	req.version = "1";
	t.started++;
	assert_non_null(t.drv->ops->deliver(t.drv, &req, &events, j, &err));
	assert_int_equal(err, DG_OK);
}

static void
on_done(void *arg, int ok, const char *version, uint32_t ext, const char *detail)
{
	struct job *j = arg;

	(void)version; (void)detail;
	j->done++;
	j->ok = ok;
	j->ext = ext;
	t.finished++;
	/* a freed slot starts the next waiting job at once */
	if (t.chain && t.started < NJOBS)
		start(t.started);
}

/* the child's pid, as the tool wrote it, then wait (without reaping) until
 * it is a zombie: the state the test needs, not a sleep */
static void
wait_exited(int i)
{
	siginfo_t si;
	FILE *f;
	long pid = 0;

	for (;;) {
		if ((f = fopen(t.jobs[i].pidfile, "r"))) {
			int n = fscanf(f, "%ld", &pid);
			fclose(f);
			if (n == 1 && pid > 0)
				break;
		}
		/* the tool has not written it yet: let it run */
		usleep(1000);
	}
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0)
		assert_int_equal(errno, EINTR);
}

static int
setup(void **state)
{
	dg_err err;
	sigset_t chld;

	(void)state;
	memset(&t, 0, sizeof(t));
	snprintf(t.dir, sizeof(t.dir), "/tmp/dg-test-exec-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	assert_non_null(t.base = event_base_new());
	/* the tool records its pid, then exits: nothing on its stdout */
	t.drv = dg_driver_exec_new(t.base, "echo $$ > \"$DG_ADDRESS.tmp\" && mv \"$DG_ADDRESS.tmp\" \"$DG_ADDRESS\"",
	    30, &err);
	assert_non_null(t.drv);
	/* SIGCHLD is held back until the test has every tool exited */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	return 0;
}

static int
teardown(void **state)
{
	sigset_t chld;
	char cmd[128];

	(void)state;
	dg_driver_free(t.drv);
	event_base_free(t.base);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", t.dir);
	return 0;
}

static void
run_until_finished(int n)
{
	while (t.finished < n)
		assert_int_equal(event_base_loop(t.base, EVLOOP_ONCE), 0);
}

/* two tools exit together; the first one finished starts a third (and the
 * third a fourth) from inside the SIGCHLD handler */
static void
test_exits_together_chain(void **state)
{
	sigset_t chld;
	int i;

	(void)state;
	t.chain = 1;
	start(0);
	start(1);
	wait_exited(0);
	wait_exited(1);
	/* both pipes are at EOF now: one pass reads both (the driver may
	 * reap both in the same pass too, without waiting for the signal) */
	assert_true(event_base_loop(t.base, EVLOOP_NONBLOCK) >= 0);
	assert_true(event_base_loop(t.base, EVLOOP_NONBLOCK) >= 0);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	run_until_finished(NJOBS);
	for (i = 0; i < NJOBS; i++) {
		assert_int_equal(t.jobs[i].done, 1);
		assert_int_equal(t.jobs[i].ok, 1);
		assert_int_equal(t.jobs[i].ext, 0);
	}
	assert_int_equal(t.started, NJOBS);
}

/* a tool that fails reports its exit status as the extended code */
static void
test_exit_status(void **state)
{
	dg_err err;
	sigset_t chld;

	(void)state;
	dg_driver_free(t.drv);
	t.drv = dg_driver_exec_new(t.base, "exit 3", 30, &err);
	assert_non_null(t.drv);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_UNBLOCK, &chld, NULL);
	start(0);
	run_until_finished(1);
	assert_int_equal(t.jobs[0].done, 1);
	assert_int_equal(t.jobs[0].ok, 0);
	assert_int_equal(t.jobs[0].ext, DG_DRIVER_EXT_EXIT(3));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exits_together_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exit_status, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
