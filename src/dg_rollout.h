/* dg_rollout - the operator's durable rollout state (SQLite), shared by
 * `deltagate deploy` (writer) and `deltagate status`.
 *
 * One database per operator state directory (deploy.db). A rollout is a
 * job id, the command it publishes, its waves and thresholds and its
 * status (running, done, stopped, canceled); each device of it has its
 * wave, its state (pending, published, succeeded, failed, canceled), the
 * desired state it had before (to restore on cancel) and its result codes.
 * Every change is committed before the effect it records is published, so
 * `deploy --resume` after a kill continues where the state says.
 */
#ifndef DG_ROLLOUT_H
#define DG_ROLLOUT_H

#include <stdint.h>

#include "dg_err.h"
#include "dg_store.h"

/* Open (creating) DIR/deploy.db, DIR created 0700 if needed. NULL with
 * *err as dg_store_open, or DG_ERR_IO/DG_ERR_PERM for the directory. */
dg_store *dg_rollout_open(const char *dir, dg_err *err);

/* The default state directory: $XDG_STATE_HOME/deltagate, else
 * $HOME/.local/state/deltagate, into buf. DG_ERR_RANGE, DG_ERR_NOENT. */
dg_err dg_rollout_default_dir(char *buf, size_t size);

/* The next command sequence number: larger than every one handed out
 * before from this state and not below the wall clock in ms (so a lost
 * state directory still gives growing numbers). Durable on return. */
dg_err dg_rollout_next_seq(dg_store *st, int64_t *seq);

#endif
