/* dg_fault - fault points on libfiu (see dg_fault.h). */
#include "config.h"

#include "dg_fault.h"

#ifdef DG_FAULT_INJECTION
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fiu-control.h>

#include "dg_log.h"

int
dg_fault_act(const char *name, int n)
{
	switch (n) {
	case DG_FAULT_CRASH:
		dg_log_warn("fault point %s: crash", name);
		kill(getpid(), SIGKILL);
		_exit(137); /* not reached */
	case DG_FAULT_PAUSE:
		dg_log_warn("fault point %s: pause", name);
		/* the whole process stops here until SIGCONT (or SIGKILL) */
		raise(SIGSTOP);
		dg_log_warn("fault point %s: continued", name);
		return 0;
	default:
		if (n < 1 || n > 999) {
			dg_log_warn("fault point %s: failnum %d means nothing (1-999 errno, 1000 crash, 1001 pause)",
			    name, n);
			return 0;
		}
		dg_log_warn("fault point %s: failing with %s", name, strerror(n));
		return n;
	}
}

int
dg_fault_init(void)
{
	const char *preload = getenv("LD_PRELOAD");
	const char *fifo = getenv("FIU_CTRL_FIFO");
	const char *enable = getenv("FIU_ENABLE");

	/* under fiu-run, its preload library has done all of this */
	if (preload && strstr(preload, "fiu_run_preload"))
		return 0;
	if (fiu_init(0) != 0) {
		dg_log_err("fault injection: fiu_init failed");
		return -1;
	}
	if (enable && *enable) {
		char *copy = strdup(enable), *line, *save = NULL;

		if (!copy)
			return -1;
		for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			char *error = NULL;

			while (*line == ' ' || *line == '\t')
				line++;
			if (!*line)
				continue;
			if (fiu_rc_string(line, &error) != 0) {
				dg_log_err("fault injection: FIU_ENABLE '%s': %s", line, error ? error : "refused");
				free(copy);
				return -1;
			}
			dg_log_info("fault injection: %s", line);
		}
		free(copy);
	}
	if (fifo && *fifo && fiu_rc_fifo(fifo) != 0) {
		dg_log_err("fault injection: cannot open the control fifos %s-%d", fifo, (int)getpid());
		return -1;
	}
	return 0;
}
#endif
