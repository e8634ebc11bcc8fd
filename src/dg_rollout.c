/* dg_rollout - durable rollout state of the operator's tools. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "dg_rollout.h"
#include "dg_util.h"

static const dg_store_migration migrations[] = {
	{ "CREATE TABLE rollout ("
	  " job_id TEXT PRIMARY KEY,"
	  " command TEXT NOT NULL,"        /* desired state, unsigned */
	  " waves TEXT NOT NULL,"          /* cumulative percentages "1,10,50,100" */
	  " abort_rate REAL NOT NULL,"     /* 0..1 */
	  " wave_timeout INTEGER NOT NULL,"/* seconds */
	  " sign_key TEXT,"                /* path of the signing key, or NULL */
	  " expires INTEGER NOT NULL,"     /* links' and signatures' expiry */
	  " wave INTEGER NOT NULL DEFAULT 0,"
	  " wave_started INTEGER NOT NULL DEFAULT 0,"
	  " status TEXT NOT NULL,"
	  " created INTEGER NOT NULL,"
	  " updated INTEGER NOT NULL) WITHOUT ROWID;"
	  "CREATE TABLE rdevice ("
	  " job_id TEXT NOT NULL REFERENCES rollout(job_id),"
	  " device TEXT NOT NULL,"
	  " ord INTEGER NOT NULL,"
	  " wave INTEGER NOT NULL,"
	  " state TEXT NOT NULL,"
	  " prev TEXT,"                    /* desired state before, JSON */
	  " result_code INTEGER,"
	  " ext_code INTEGER,"
	  " updated INTEGER NOT NULL,"
	  " PRIMARY KEY (job_id, device)) WITHOUT ROWID;"
	  "CREATE TABLE staged ("
	  " name TEXT PRIMARY KEY,"        /* object name in storage */
	  " sha256 TEXT NOT NULL, size INTEGER NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;"
	  "CREATE TABLE seq (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL);" },
};

dg_store *
dg_rollout_open(const char *dir, dg_err *err)
{
	char path[4096];

	if ((*err = dg_util_mkdir_p(dir, 0700)) != DG_OK)
		return NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/deploy.db", dir) >= sizeof(path)) {
		*err = DG_ERR_RANGE;
		return NULL;
	}
	return dg_store_open(path, migrations, 1, err);
}

dg_err
dg_rollout_default_dir(char *buf, size_t size)
{
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	int n;

	if (x && *x)
		n = snprintf(buf, size, "%s/deltagate", x);
	else if (h && *h)
		n = snprintf(buf, size, "%s/.local/state/deltagate", h);
	else
		return DG_ERR_NOENT;
	return n < 0 || (size_t)n >= size ? DG_ERR_RANGE : DG_OK;
}

dg_err
dg_rollout_next_seq(dg_store *st, int64_t *seq)
{
	sqlite3_stmt *s;
	int64_t last = 0, now = (int64_t)dg_util_wall_ms();
	int rc;

	if (!(s = dg_store_prepare(st, "SELECT last FROM seq WHERE id = 0")))
		return DG_ERR_DB;
	if (sqlite3_step(s) == SQLITE_ROW)
		last = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	*seq = last + 1 > now ? last + 1 : now;
	if (!(s = dg_store_prepare(st,
	    "INSERT INTO seq (id, last) VALUES (0, ?) ON CONFLICT(id) DO UPDATE SET last = excluded.last")))
		return DG_ERR_DB;
	sqlite3_bind_int64(s, 1, *seq);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? DG_OK : DG_ERR_DB;
}
