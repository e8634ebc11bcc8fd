/* dg_fault - named fault points on libfiu, for tests that must stop the
 * program at an exact line instead of hoping to catch it there.
 *
 * Built only with ./configure --enable-fault-injection (which defines
 * DG_FAULT_INJECTION and links libfiu); otherwise DG_FAULT() and
 * dg_fault_init() compile to nothing and no fiu symbol is referenced.
 *
 * A point is switched on by name, with libfiu's own tools: in a running
 * process `fiu-ctrl -c 'enable name=NAME,failnum=N[,onetime]' PID`, or at
 * start through the environment (FIU_ENABLE: one such command a line, as
 * fiu-run sets it; FIU_CTRL_FIFO: the prefix of the control fifos). The
 * failnum says what the point does (docs/reliability.md lists the points):
 *   1..999  fail with that errno (5 EIO, 28 ENOSPC): the point's error
 *           path runs, with errno set
 *   1000    crash: SIGKILL to the process, the same as kill -9 at that line
 *   1001    pause: SIGSTOP to the process; a test sees the state T in
 *           /proc/PID/stat and then kills it or sends SIGCONT (enable the
 *           point with onetime, or it stops again at its next pass)
 */
#ifndef DG_FAULT_H
#define DG_FAULT_H

#define DG_FAULT_CRASH 1000
#define DG_FAULT_PAUSE 1001

#ifdef DG_FAULT_INJECTION
#include <errno.h>
#ifndef FIU_ENABLE
#define FIU_ENABLE 1 /* fiu.h's macros are real only with it */
#endif
#include <fiu.h>

/* Carry out failnum n of point name (crash and pause do not return with
 * an error); the errno to fail with, or 0 to go on as if not enabled. */
int dg_fault_act(const char *name, int n);

/* At point NAME: run on_error (with errno set) if the point fails. */
#define DG_FAULT(name, on_error) do { \
	int dg_fault_n_ = fiu_fail(name); \
	if (dg_fault_n_ && (dg_fault_n_ = dg_fault_act((name), dg_fault_n_)) != 0) { \
		errno = dg_fault_n_; \
		on_error; \
	} \
} while (0)

/* Start libfiu and its remote control (FIU_CTRL_FIFO, FIU_ENABLE from the
 * environment, unless fiu-run's preload library did it already). Call once
 * at start, before other threads. Returns 0, or -1 (logged) when the
 * environment asks for something that cannot be set up. */
int dg_fault_init(void);
#else
#define DG_FAULT(name, on_error) do { } while (0)
#define dg_fault_init() 0
#endif

#endif
