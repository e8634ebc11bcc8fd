/* dg_job - update jobs and the artifacts they share. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dg_command.h"
#include "dg_delta.h"
#include "dg_job.h"
#include "dg_json.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_util.h"

const char dg_jobs_migration_sql[] =
	"CREATE TABLE device ("
	" id TEXT PRIMARY KEY,"
	" image_sha256 TEXT,"
	" version TEXT) WITHOUT ROWID;"
	"CREATE TABLE job ("
	" device TEXT NOT NULL,"
	" job_id TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" stage TEXT NOT NULL,"
	" via TEXT,"
	" fallback_ext INTEGER NOT NULL DEFAULT 0,"
	" result_code INTEGER NOT NULL DEFAULT 0,"
	" ext_code INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" PRIMARY KEY (device, job_id)) WITHOUT ROWID;"
	"CREATE TABLE image ("
	" sha256 TEXT PRIMARY KEY,"
	" via TEXT NOT NULL,"
	" fallback_ext INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE INDEX job_stage ON job(stage);"
	"CREATE INDEX job_id ON job(job_id);";

enum stage {
	ST_QUEUED, ST_FETCHING, ST_REBUILDING, ST_STAGED, ST_TRANSFERRING,
	ST_INSTALLING, ST_SUCCEEDED, ST_FAILED, ST_SUPERSEDED
};
static const char *stage_names[] = {
	"queued", "fetching", "rebuilding", "staged", "transferring",
	"installing", "succeeded", "failed", "superseded"
};

enum art_state { A_DELTA_FETCH, A_REBUILD, A_FULL_FETCH, A_READY, A_FAILED };

struct device;
struct job;

/* One image needed by one or more jobs (keyed by its SHA-256). */
struct artifact {
	struct artifact *next;
	dg_jobs *j;
	enum art_state state;
	unsigned char sha[32];
	char hex[65];
	uint64_t size;
	char *full_url;
	/* the chosen delta, if any */
	int have_delta;
	char *delta_url;
	unsigned char delta_sha[32], source_sha[32];
	uint64_t delta_size;
	uint32_t fallback_ext;   /* why the delta was not used (0: it was) */
	uint32_t fail_ext;       /* A_FAILED: why */
	int via_delta;
	dg_fetch *fetch;
	int timed_out;           /* the stage timer canceled the fetch */
	int fault_passed, fault_errno; /* rebuild/mid-apply (fault injection) */
	int freeing;             /* art_free is canceling: ignore callbacks */
	dg_cache_writer *writer;
	unsigned char writing_sha[32];
	uint64_t writing_size;
	struct event *stage_timer;
	/* delta application on a worker thread */
	pthread_t thread;
	int thread_running;
	struct event *rebuilt_ev;
	atomic_int cancel;
	char *src_path, *delta_path, *out_path;
	dg_err rebuild_err;
};

struct job {
	struct job *next;
	dg_jobs *j;
	struct device *dev;
	char *job_id;
	char *command;           /* the desired state as received (JSON text) */
	char *url, *version;
	unsigned char target[32];
	char target_hex[65];
	uint64_t size;
	json_t *related;         /* relatedFiles, may be NULL */
	enum stage stage;
	struct artifact *art;
	dg_delivery *delivery;
	int delivering;          /* holds a delivery slot */
	int settle;              /* its artifact settled; not yet moved on */
	uint64_t last_progress_ms;
	int last_percent;
	uint32_t fallback_ext;
	int via_delta;
	uint64_t seq;            /* arrival order of its command */
};

/* A medium shared by devices (link=): its deliveries in flight, and when
 * it was last given a slot (fair scheduling). */
struct link {
	struct link *next;
	int delivering;
	uint64_t served;
	char name[];
};

/* Deliveries in flight through one driver. */
struct drv_count {
	struct drv_count *next;
	dg_driver *driver;
	int delivering;
};

struct device {
	struct device *next;
	char *id;
	dg_driver *driver;
	char *address;
	struct link *link;       /* shared medium, NULL: alone on it */
	struct drv_count *drvc;  /* of driver, NULL if none */
	uint64_t served;         /* alone on its link: when last given a slot */
	char image_hex[65];      /* what it runs, "" if unknown */
	char *version;
	struct job *job;         /* the active job, if any */
};

struct dg_jobs {
	struct event_base *base;
	dg_store *store;
	dg_cache *cache;
	dg_fetcher *fetcher;
	dg_outbox *outbox;
	const dg_topic *topic;
	dg_jobs_opts o;
	char *gateway_id, *provider;
	struct device *devices;
	struct job *jobs;
	struct artifact *arts;
	struct link *links;
	struct drv_count *drvcs;
	int rebuilding, delivering;
	int kicking;             /* kick_deliveries is running */
	int defer;               /* > 0: hold kick_deliveries (a batch is staged) */
	uint64_t seq;            /* of the last command */
	uint64_t serve_clock;    /* of the last slot given */
	struct event *rollup_timer;
	char **dirty;            /* job ids whose roll-up is due */
	size_t ndirty, dirty_cap;
	struct dg_jws_key *const *keys; /* trusted command signers (issue 13) */
	size_t nkeys;
};

static void job_advance(struct job *jb);
static void art_start(struct artifact *a);
static void job_finish(struct job *jb, int ok, uint32_t ext, const char *version);
static void kick_deliveries(dg_jobs *j);

/* ------------------------------------------------------------ helpers */

static int
parse_sha(const char *s, unsigned char out[32])
{
	size_t n = s ? strlen(s) : 0;

	if (n == 64)
		return dg_util_hex_decode(s, out, 32) == DG_OK;
	if (n == 44) { /* base64, as in import manifests */
		unsigned char buf[36];

		if (EVP_DecodeBlock(buf, (const unsigned char *)s, 44) != 33 || s[43] != '=')
			return 0;
		memcpy(out, buf, 32);
		return 1;
	}
	return 0;
}

/* The cache pin holder of the image dev runs: "device:<id>;" (no id is a
 * prefix of another's). Made when needed, not kept per device. */
#define HOLDER_MAX (DG_TOPIC_ID_MAX + 16)
static const char *
holder_of(const struct device *dev, char buf[HOLDER_MAX])
{
	snprintf(buf, HOLDER_MAX, "device:%s;", dev->id);
	return buf;
}

static struct device *
find_device(dg_jobs *j, const char *id)
{
	struct device *d;

	for (d = j->devices; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static void
persist(struct job *jb, int result_code, uint32_t ext)
{
	sqlite3_stmt *s = dg_store_prepare(jb->j->store,
	    "UPDATE job SET stage = ?, via = ?, fallback_ext = ?, result_code = ?,"
	    " ext_code = ?, updated = ? WHERE device = ? AND job_id = ?");
	int rc;

	if (!s)
		return;
	sqlite3_bind_text(s, 1, stage_names[jb->stage], -1, SQLITE_STATIC);
	if (jb->stage >= ST_STAGED)
		sqlite3_bind_text(s, 2, jb->via_delta ? "delta" : "full", -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 2);
	sqlite3_bind_int64(s, 3, jb->fallback_ext);
	sqlite3_bind_int(s, 4, result_code);
	sqlite3_bind_int64(s, 5, ext);
	sqlite3_bind_int64(s, 6, now_s());
	sqlite3_bind_text(s, 7, jb->dev->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, jb->job_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		dg_store_error(jb->j->store, rc, "job stage");
}

/* ------------------------------------------------------------ reports */

static void
publish_report(struct job *jb, json_t *reported, int coalesce)
{
	char topic[512];
	json_t *msg = json_pack("{s:{s:o}}", "state", "reported", reported);
	char *text = msg ? dg_json_dumps(msg) : NULL;
	dg_err err;

	if (text && dg_topic_build(jb->j->topic, jb->dev->id, "update", topic, sizeof(topic)) == DG_OK &&
	    (err = dg_outbox_put(jb->j->outbox, jb->dev->id, topic, text, coalesce)) != DG_OK)
		dg_log_err("%s: job %s: report not queued: %s", jb->dev->id, jb->job_id, dg_strerror(err));
	free(text);
	json_decref(msg);
}

/* The roll-up of a job id on the gateway's own shadow, now. */
static void
rollup_now(dg_jobs *j, const char *job_id)
{
	sqlite3_stmt *s = dg_store_prepare(j->store,
	    "SELECT stage, fallback_ext != 0, count(*) FROM job WHERE job_id = ? GROUP BY 1, 2");
	int64_t queued = 0, running = 0, ok = 0, ok_fb = 0, failed = 0;
	char topic[512], *text, key[300];
	json_t *msg;

	if (!s)
		return;
	sqlite3_bind_text(s, 1, job_id, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *st = (const char *)sqlite3_column_text(s, 0);
		int fb = sqlite3_column_int(s, 1);
		int64_t n = sqlite3_column_int64(s, 2);

		if (strcmp(st, "queued") == 0)
			queued += n;
		else if (strcmp(st, "succeeded") == 0)
			*(fb ? &ok_fb : &ok) += n;
		else if (strcmp(st, "failed") == 0)
			failed += n;
		else if (strcmp(st, "superseded") != 0)
			running += n;
	}
	sqlite3_reset(s);
	msg = json_pack("{s:{s:{s:{s:{s:I,s:I,s:I,s:I,s:I}}}}}", "state", "reported", "jobs", job_id,
	    "queued", (json_int_t)queued, "inProgress", (json_int_t)running,
	    "succeeded", (json_int_t)(ok + ok_fb), "failed", (json_int_t)failed,
	    "succeededAfterFallback", (json_int_t)ok_fb);
	text = msg ? dg_json_dumps(msg) : NULL;
	snprintf(key, sizeof(key), "%s#rollup#%s", j->gateway_id, job_id);
	if (text && dg_topic_build(j->topic, j->gateway_id, "update", topic, sizeof(topic)) == DG_OK)
		dg_outbox_put(j->outbox, key, topic, text, 1);
	free(text);
	json_decref(msg);
}

static void
on_rollup_timer(evutil_socket_t fd, short what, void *arg)
{
	dg_jobs *j = arg;

	while (j->ndirty) {
		char *id = j->dirty[--j->ndirty];

		rollup_now(j, id);
		free(id);
	}
}

/* The roll-up of job_id changed: publish it within progress_interval_ms,
 * once for all the changes meanwhile (1,000 devices on one job id moved
 * the roll-up thousands of times, each a durable outbox write). */
static void
publish_rollup(dg_jobs *j, const char *job_id)
{
	size_t i;
	char *id;

	for (i = 0; i < j->ndirty; i++)
		if (strcmp(j->dirty[i], job_id) == 0)
			return;
	if (j->ndirty == j->dirty_cap) {
		size_t cap = j->dirty_cap ? j->dirty_cap * 2 : 8;
		char **n = realloc(j->dirty, cap * sizeof(*n));

		if (!n) {
			rollup_now(j, job_id);
			return;
		}
		j->dirty = n;
		j->dirty_cap = cap;
	}
	if (!(id = strdup(job_id)) || !j->rollup_timer) {
		free(id);
		rollup_now(j, job_id);
		return;
	}
	j->dirty[j->ndirty++] = id;
	if (!evtimer_pending(j->rollup_timer, NULL))
		dg_util_timer_arm(j->rollup_timer, j->o.progress_interval_ms);
}

static void
report_progress(struct job *jb, const char *stage, int percent)
{
	json_t *r = json_pack("{s:s,s:s,s:{s:s,s:i}}", "jobId", jb->job_id, "status", "IN_PROGRESS",
	    "progress", "stage", stage, "percent", percent);

	if (r)
		publish_report(jb, r, 1);
}

/* Fault point job/after-stage-<name>: the stage is written (in the open
 * batch, not yet committed); crash or pause only. */
static void
stage_fault(enum stage st)
{
#ifdef DG_FAULT_INJECTION
	char point[64];

	snprintf(point, sizeof(point), "job/after-stage-%s", stage_names[st]);
	DG_FAULT(point, (void)0);
#else
	(void)st;
#endif
}

static void
set_stage(struct job *jb, enum stage st)
{
	if (jb->stage == st)
		return;
	jb->stage = st;
	persist(jb, 0, 0);
	dg_log_info("%s: job %s: %s", jb->dev->id, jb->job_id, stage_names[st]);
	stage_fault(st);
	if (st < ST_SUCCEEDED)
		report_progress(jb, stage_names[st], st == ST_STAGED ? 0 : -1);
	publish_rollup(jb->j, jb->job_id);
}

/* ------------------------------------------------------------ artifacts */

static struct artifact *
find_art(dg_jobs *j, const unsigned char sha[32])
{
	struct artifact *a;

	for (a = j->arts; a; a = a->next)
		if (memcmp(a->sha, sha, 32) == 0)
			return a;
	return NULL;
}

static void
art_free(struct artifact *a)
{
	dg_jobs *j = a->j;
	struct artifact **pp;

	for (pp = &j->arts; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	a->freeing = 1;
	if (a->fetch)
		dg_fetch_cancel(a->fetch); /* calls on_fetched, which sees freeing */
	dg_cache_writer_abort(a->writer);
	if (a->thread_running) {
		atomic_store(&a->cancel, 1);
		pthread_join(a->thread, NULL);
		j->rebuilding--;
	}
	if (a->out_path)
		unlink(a->out_path);
	if (a->rebuilt_ev)
		event_free(a->rebuilt_ev);
	if (a->stage_timer)
		event_free(a->stage_timer);
	free(a->full_url);
	free(a->delta_url);
	free(a->src_path);
	free(a->delta_path);
	free(a->out_path);
	free(a);
}

/* The artifact is ready or failed: move every job waiting on it. */
static void
art_settle(struct artifact *a)
{
	dg_jobs *j = a->j;
	struct job *jb;
	enum art_state state = a->state;
	uint32_t fail_ext = a->fail_ext;

	/* mark first, then move jobs one at a time from the list's head:
	 * moving a job may finish and free others */
	for (jb = j->jobs; jb; jb = jb->next) {
		if (jb->art != a)
			continue;
		jb->art = NULL;
		jb->settle = 1;
		jb->via_delta = a->via_delta;
		jb->fallback_ext = a->fallback_ext;
	}
	art_free(a);
	/* stage them all, then let the scheduler choose who starts first */
	j->defer++;
	for (;;) {
		for (jb = j->jobs; jb && !jb->settle; jb = jb->next)
			;
		if (!jb)
			break;
		jb->settle = 0;
		if (state == A_READY) {
			set_stage(jb, ST_STAGED);
			job_advance(jb);
		} else {
			job_finish(jb, 0, fail_ext, NULL);
		}
	}
	j->defer--;
	kick_deliveries(j);
}

static void
art_fail(struct artifact *a, uint32_t ext)
{
	a->state = A_FAILED;
	a->fail_ext = ext;
	art_settle(a);
}

static void
art_ready(struct artifact *a, int via_delta)
{
	sqlite3_stmt *s = dg_store_prepare(a->j->store,
	    "INSERT OR REPLACE INTO image (sha256, via, fallback_ext) VALUES (?, ?, ?)");

	/* how the image came: jobs that find it cached later report the same */
	if (s) {
		sqlite3_bind_text(s, 1, a->hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, via_delta ? "delta" : "full", -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, a->fallback_ext);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	a->state = A_READY;
	a->via_delta = via_delta;
	dg_log_info("image %s ready (%s%s)", a->hex, via_delta ? "rebuilt from a delta" : "full image",
	    a->fallback_ext ? ", after a fallback" : "");
	art_settle(a);
}

static void
full_fallback(struct artifact *a, uint32_t why)
{
	if (!a->fallback_ext)
		a->fallback_ext = why;
	dg_log_warn("image %s: delta not usable (0x%08" PRIx32 "): downloading the full image",
	    a->hex, why);
	a->have_delta = 0;
	a->state = A_FULL_FETCH;
	art_start(a);
}

/* --- fetch into the cache through a resumable writer */

static dg_err
sink_write(void *arg, const void *buf, size_t len)
{
	struct artifact *a = arg;

	return a->writer ? dg_cache_writer_write(a->writer, buf, len) : DG_ERR_INTERNAL;
}

static dg_err
sink_restart(void *arg)
{
	struct artifact *a = arg;
	dg_err err;

	/* the server ignored our Range: start the partial over */
	dg_cache_writer_abort(a->writer);
	dg_cache_partial_remove(a->j->cache, a->writing_sha);
	a->writer = dg_cache_writer_resume(a->j->cache, a->j->provider, a->writing_sha,
	    a->writing_size, NULL, &err);
	return a->writer ? DG_OK : err;
}

/* The transfer is over: on success the cache verifies size and SHA-256 and
 * commits; otherwise the partial stays for a later resume. */
static dg_err
sink_finish(void *arg, dg_err outcome)
{
	struct artifact *a = arg;
	dg_cache_writer *w = a->writer;

	a->writer = NULL;
	if (!w)
		return outcome == DG_OK ? DG_ERR_INTERNAL : DG_OK;
	if (outcome == DG_OK)
		return dg_cache_writer_commit(w, NULL);
	dg_cache_writer_abort(w);
	return DG_OK;
}

static uint64_t
sink_offset(void *arg)
{
	struct artifact *a = arg;

	return a->writer ? dg_cache_writer_offset(a->writer) : 0;
}

static void rebuild_start(struct artifact *a);

static void
fetched(struct artifact *a, dg_err result)
{
	evtimer_del(a->stage_timer);
	/* a download that failed for good leaves no partial file: the job is
	 * over, and on a full disk its bytes are what the next one lacks (a
	 * crash, which must resume, never gets here) */
	if (result != DG_OK && dg_cache_partial_remove(a->j->cache, a->writing_sha) == DG_OK)
		dg_log_debug("image %s: partial download removed", a->hex);
	if (a->state == A_DELTA_FETCH) {
		if (result != DG_OK)
			full_fallback(a, a->timed_out ? DG_EXT_JOB_TIMEOUT : DG_EXT_DELTA_FETCH(result));
		else
			rebuild_start(a);
		return;
	}
	if (result != DG_OK) {
		dg_log_err("image %s: download failed: %s", a->hex, dg_strerror(result));
		art_fail(a, a->timed_out ? DG_EXT_JOB_TIMEOUT :
		    result == DG_ERR_NOSPC ? DG_EXT_JOB_NOSPACE : DG_EXT_DOWNLOAD(result));
		return;
	}
	art_ready(a, 0);
}

static void
on_fetched(dg_fetch *fetch, dg_err result, const dg_fetch_stats *st, void *arg)
{
	struct artifact *a = arg;

	a->fetch = NULL;
	if (a->freeing)
		return;
	/* a cache refusal (wrong hash or size, full) is the real reason */
	if (result == DG_ERR_FETCH_SINK && st && st->sink_err != DG_OK)
		result = st->sink_err;
	if (st)
		dg_log_info("image %s: %s after %u request(s), %" PRIu64 " bytes received (from byte %" PRIu64 ")",
		    a->state == A_DELTA_FETCH ? "delta" : a->hex, result == DG_OK ? "downloaded" : dg_strerror(result),
		    st->attempts, st->bytes_received, st->resumed_from);
	fetched(a, result);
}

static void
fetch_into_cache(struct artifact *a, const char *url, const unsigned char sha[32], uint64_t size)
{
	dg_fetch_req req = { 0 };
	dg_fetch_sink sink = { sink_write, sink_restart, sink_offset, sink_finish, a };
	char hex[65];
	uint64_t have = 0;
	dg_err err;

	a->timed_out = 0;
	memcpy(a->writing_sha, sha, 32);
	a->writing_size = size;
	if (dg_cache_lookup(a->j->cache, a->j->provider, sha, NULL) == DG_OK) {
		/* complete already (e.g. before a crash): not fetched again */
		fetched(a, DG_OK);
		return;
	}
	a->writer = dg_cache_writer_resume(a->j->cache, a->j->provider, sha, size, &have, &err);
	if (!a->writer) {
		fetched(a, err);
		return;
	}
	dg_util_hex_encode(sha, 32, hex);
	req.url = url;
	req.expected_size = size;
	req.sha256 = hex;
	req.key = hex;
	if (have)
		dg_log_info("%s: resuming download at byte %" PRIu64, hex, have);
	err = dg_fetch_start(a->j->fetcher, &req, &sink, on_fetched, a, &a->fetch);
	if (err != DG_OK) {
		a->fetch = NULL;
		dg_cache_writer_abort(a->writer);
		a->writer = NULL;
		fetched(a, err);
		return;
	}
	dg_util_timer_arm(a->stage_timer, (int64_t)(a->j->o.stage_timeout_s) * 1000);
}

/* --- rebuild from a delta, on a worker thread */

#ifdef DG_FAULT_INJECTION
/* Fault point rebuild/mid-apply: once half of the target is written. An
 * error stops the apply as a cancel would and is its result. */
static void
rebuild_progress(void *arg, uint64_t done, uint64_t total)
{
	struct artifact *a = arg;

	if (a->fault_passed || done < total / 2)
		return;
	a->fault_passed = 1;
	DG_FAULT("rebuild/mid-apply", {
		a->fault_errno = errno;
		atomic_store(&a->cancel, 1);
	});
}
#endif

static void *
rebuild_thread(void *arg)
{
	struct artifact *a = arg;
	dg_delta_apply_opts o = { 0 };

	o.cancel = &a->cancel;
	o.max_target_size = a->size;
#ifdef DG_FAULT_INJECTION
	a->fault_passed = 0;
	a->fault_errno = 0;
	o.progress = rebuild_progress;
	o.progress_arg = a;
#endif
	a->rebuild_err = dg_delta_apply_file(a->src_path, a->delta_path, a->out_path, &o);
#ifdef DG_FAULT_INJECTION
	if (a->fault_errno && a->rebuild_err == DG_ERR_CANCELED)
		a->rebuild_err = dg_err_from_errno(a->fault_errno);
#endif
	event_active(a->rebuilt_ev, EV_READ, 0);
	return NULL;
}

static void
on_rebuilt(evutil_socket_t fd, short what, void *arg)
{
	struct artifact *a = arg;
	dg_jobs *j = a->j;
	dg_err err = a->rebuild_err;

	pthread_join(a->thread, NULL);
	a->thread_running = 0;
	j->rebuilding--;
	evtimer_del(a->stage_timer);
	dg_cache_unpin(j->cache, j->provider, a->source_sha, "rebuild");
	if (err == DG_OK) {
		DG_FAULT("rebuild/before-insert", err = dg_err_from_errno(errno));
	}
	if (err == DG_OK) {
		err = dg_cache_insert_file(j->cache, j->provider, a->out_path, a->sha, NULL);
		unlink(a->out_path);
		if (err == DG_ERR_CACHE_HASH) {
			full_fallback(a, DG_EXT_DELTA_REBUILT_MISMATCH);
			return;
		}
		if (err != DG_OK) {
			art_fail(a, err == DG_ERR_NOSPC ? DG_EXT_JOB_NOSPACE : DG_EXT_JOB_CACHE);
			return;
		}
		art_ready(a, 1);
		return;
	}
	unlink(a->out_path);
	dg_log_warn("image %s: applying the delta failed: %s", a->hex, dg_strerror(err));
	full_fallback(a, dg_delta_result_code(err));
}

static void
rebuild_start(struct artifact *a)
{
	dg_jobs *j = a->j;
	dg_err err;

	a->state = A_REBUILD;
	free(a->src_path);
	free(a->delta_path);
	free(a->out_path);
	a->src_path = a->delta_path = a->out_path = NULL;
	if (dg_cache_pin(j->cache, j->provider, a->source_sha, "rebuild") != DG_OK ||
	    !(a->src_path = dg_cache_path(j->cache, j->provider, a->source_sha, &err)) ||
	    !(a->delta_path = dg_cache_path(j->cache, j->provider, a->delta_sha, &err)) ||
	    asprintf(&a->out_path, "%s/.rebuild-%s", dg_cache_root(j->cache), a->hex) < 0) {
		a->out_path = NULL;
		full_fallback(a, DG_EXT_SOURCE_CACHE_MISS);
		return;
	}
	/* jobs waiting on it see the stage */
	{
		struct job *jb;

		for (jb = j->jobs; jb; jb = jb->next)
			if (jb->art == a)
				set_stage(jb, ST_REBUILDING);
	}
	atomic_store(&a->cancel, 0);
	if (pthread_create(&a->thread, NULL, rebuild_thread, a) != 0) {
		dg_cache_unpin(j->cache, j->provider, a->source_sha, "rebuild");
		full_fallback(a, DG_EXT_JOB(6));
		return;
	}
	a->thread_running = 1;
	j->rebuilding++;
	dg_util_timer_arm(a->stage_timer, (int64_t)(j->o.stage_timeout_s) * 1000);
}

static void
on_stage_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct artifact *a = arg;

	if (a->state == A_REBUILD && a->thread_running) {
		atomic_store(&a->cancel, 1); /* on_rebuilt falls back */
		return;
	}
	/* the cancel reports through on_fetched, which falls back or fails */
	a->timed_out = 1;
	if (a->fetch)
		dg_fetch_cancel(a->fetch);
}

static void
art_start(struct artifact *a)
{
	if (a->state == A_DELTA_FETCH)
		fetch_into_cache(a, a->delta_url, a->delta_sha, a->delta_size);
	else
		fetch_into_cache(a, a->full_url, a->sha, a->size);
}

/* Choose a delta whose source the cache holds. */
static void
choose_delta(struct artifact *a, const json_t *related)
{
	size_t i;
	json_t *rf;

	/* no delta offered: a plain full-image update, not a fallback */
	if (!json_is_array(related) || json_array_size(related) == 0)
		return;
	a->fallback_ext = DG_EXT_SOURCE_CACHE_MISS;
	json_array_foreach(related, i, rf) {
		unsigned char src[32], dsha[32];
		const char *url = dg_json_get_str(rf, "url");
		int64_t size = 0;

		if (!url || !parse_sha(dg_json_get_str(rf, "sha256"), dsha) ||
		    !parse_sha(dg_json_get_str(rf, "sourceSha256"), src) ||
		    !dg_json_get_i64(rf, "size", &size) || size <= 0)
			continue;
		if (dg_cache_lookup_any(a->j->cache, src, NULL) != DG_OK)
			continue;
		a->have_delta = 1;
		a->fallback_ext = 0;
		memcpy(a->source_sha, src, 32);
		memcpy(a->delta_sha, dsha, 32);
		a->delta_size = (uint64_t)size;
		a->delta_url = strdup(url);
		return;
	}
}

/* The artifact of jb's target: existing or new. */
static struct artifact *
art_get(struct job *jb)
{
	dg_jobs *j = jb->j;
	struct artifact *a = find_art(j, jb->target);

	if (a)
		return a;
	if (!(a = calloc(1, sizeof(*a))))
		return NULL;
	a->j = j;
	memcpy(a->sha, jb->target, 32);
	memcpy(a->hex, jb->target_hex, 65);
	a->size = jb->size;
	a->full_url = strdup(jb->url);
	a->stage_timer = evtimer_new(j->base, on_stage_timeout, a);
	a->rebuilt_ev = event_new(j->base, -1, 0, on_rebuilt, a);
	if (!a->full_url || !a->stage_timer || !a->rebuilt_ev) {
		free(a->full_url);
		if (a->stage_timer)
			event_free(a->stage_timer);
		if (a->rebuilt_ev)
			event_free(a->rebuilt_ev);
		free(a);
		return NULL;
	}
	a->next = j->arts;
	j->arts = a;
	return a;
}

/* ------------------------------------------------------------ jobs */

static void
job_unlink_free(struct job *jb)
{
	struct job **pp;

	for (pp = &jb->j->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == jb) {
			*pp = jb->next;
			break;
		}
	}
	if (jb->dev && jb->dev->job == jb)
		jb->dev->job = NULL;
	json_decref(jb->related);
	free(jb->job_id);
	free(jb->command);
	free(jb->url);
	free(jb->version);
	free(jb);
}

/* Is there a delivery slot for jb: in total, through its driver and on
 * its link? */
static int
can_deliver(struct job *jb)
{
	dg_jobs *j = jb->j;

	if (j->delivering >= j->o.max_deliveries)
		return 0;
	if (j->o.max_per_driver > 0 && jb->dev->drvc && jb->dev->drvc->delivering >= j->o.max_per_driver)
		return 0;
	if (jb->dev->link && jb->dev->link->delivering >= j->o.max_per_link)
		return 0;
	return 1;
}

/* Count a delivery of dev in (by +1) or out (-1) of its driver and link. */
static void
slot_count(struct device *dev, int by)
{
	if (dev->drvc)
		dev->drvc->delivering += by;
	if (dev->link)
		dev->link->delivering += by;
}

static void
slot_take(struct job *jb)
{
	jb->delivering = 1;
	jb->j->delivering++;
	slot_count(jb->dev, 1);
}

static void
slot_release(struct job *jb)
{
	dg_jobs *j = jb->j;

	if (!jb->delivering)
		return;
	jb->delivering = 0;
	j->delivering--;
	slot_count(jb->dev, -1);
	dg_cache_unpin(j->cache, j->provider, jb->target, "deliver");
}

/* When jb's link (or jb's device, alone on its link) was last served. */
static uint64_t *
served_of(struct job *jb)
{
	return jb->dev->link ? &jb->dev->link->served : &jb->dev->served;
}

/* Should a start before b? The link served least recently goes first
 * (round-robin across links, so a link with hundreds of devices waiting
 * does not starve one with a few); within a link, arrival order. */
static int
goes_before(struct job *a, struct job *b)
{
	uint64_t sa = *served_of(a), sb = *served_of(b);

	if (sa != sb)
		return sa < sb;
	return a->seq < b->seq;
}

/* Start staged jobs while delivery slots are free, fairly (goes_before).
 * Each advance may free jobs, so the list is searched again from its head
 * every time; every advance moves its job out of the staged stage, so
 * this ends. */
static void
kick_deliveries(dg_jobs *j)
{
	struct job *jb;

	if (j->kicking || j->defer)
		return;
	j->kicking = 1;
	while (j->delivering < j->o.max_deliveries) {
		struct job *pick = NULL;

		for (jb = j->jobs; jb; jb = jb->next)
			if (jb->stage == ST_STAGED && !jb->delivering && !jb->settle && can_deliver(jb) &&
			    (!pick || goes_before(jb, pick)))
				pick = jb;
		if (!pick)
			break;
		*served_of(pick) = ++j->serve_clock;
		job_advance(pick);
	}
	j->kicking = 0;
}

static void
job_finish(struct job *jb, int ok, uint32_t ext, const char *version)
{
	dg_jobs *j = jb->j;
	struct device *dev = jb->dev;
	json_t *r;
	/* resultCode: 1 success (delta or cached), 2 success after the
	 * full-image fallback, 0 failure (ADU-style: > 0 is success) */
	int rc = ok ? (jb->fallback_ext ? 2 : 1) : 0;
	uint32_t xc = ok ? jb->fallback_ext : ext;

	slot_release(jb);
	jb->stage = ok ? ST_SUCCEEDED : ST_FAILED;
	persist(jb, rc, xc);
	if (ok) {
		sqlite3_stmt *s;
		unsigned char old[32];
		char hb[HOLDER_MAX];

		/* the device now runs the target: it is the next delta's
		 * source, pinned for as long as the device runs it */
		if (dev->image_hex[0] && parse_sha(dev->image_hex, old) && memcmp(old, jb->target, 32) != 0)
			dg_cache_unpin(j->cache, j->provider, old, holder_of(dev, hb));
		if (!dev->image_hex[0] || strcmp(dev->image_hex, jb->target_hex) != 0)
			dg_cache_pin(j->cache, j->provider, jb->target, holder_of(dev, hb));
		memcpy(dev->image_hex, jb->target_hex, 65);
		free(dev->version);
		dev->version = strdup(version ? version : (jb->version ? jb->version : ""));
		s = dg_store_prepare(j->store,
		    "INSERT INTO device (id, image_sha256, version) VALUES (?, ?, ?)"
		    " ON CONFLICT(id) DO UPDATE SET image_sha256 = excluded.image_sha256, version = excluded.version");
		if (s) {
			sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, dev->image_hex, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, dev->version ? dev->version : "", -1, SQLITE_STATIC);
			sqlite3_step(s);
			sqlite3_reset(s);
		}
		r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:n}",
		    "softwareURL", jb->url, "softwareVersion", dev->version ? dev->version : "",
		    "softwareSha256", jb->target_hex, "jobId", jb->job_id, "status", "SUCCEEDED",
		    "resultCode", rc, "extendedResultCode", (json_int_t)xc, "progress");
	} else {
		r = json_pack("{s:s,s:s,s:i,s:I,s:n}", "jobId", jb->job_id, "status", "FAILED",
		    "resultCode", rc, "extendedResultCode", (json_int_t)xc, "progress");
	}
	dg_log_info("%s: job %s: %s (resultCode %d, extendedResultCode 0x%08" PRIx32 ")",
	    dev->id, jb->job_id, ok ? "succeeded" : "failed", rc, xc);
	if (r)
		publish_report(jb, r, 0);
	/* durable before this returns: the driver acknowledges the device's
	 * report (CoAP 2.04) right after, and the device forgets it then */
	dg_store_sync(j->store);
	stage_fault(jb->stage);
	publish_rollup(j, jb->job_id);
	job_unlink_free(jb);
	kick_deliveries(j);
}

static void
on_delivery_progress(void *arg, dg_delivery_stage stage, uint64_t done, uint64_t total)
{
	struct job *jb = arg;
	uint64_t now = dg_util_now_ms();
	int pct = total ? (int)(done * 100 / total) : 0;

	if (stage == DG_DELIVERY_INSTALLING) {
		set_stage(jb, ST_INSTALLING);
		return;
	}
	/* coalesced in the outbox, and spaced here */
	if (pct != jb->last_percent &&
	    (now - jb->last_progress_ms >= (uint64_t)jb->j->o.progress_interval_ms || pct == 100)) {
		jb->last_progress_ms = now;
		jb->last_percent = pct;
		report_progress(jb, "transferring", pct);
	}
}

static void
on_delivery_done(void *arg, int ok, const char *version, uint32_t ext, const char *detail)
{
	struct job *jb = arg;

	jb->delivery = NULL;
	if (!ok)
		dg_log_warn("%s: job %s: delivery failed: %s", jb->dev->id, jb->job_id, detail ? detail : "");
	job_finish(jb, ok, ext, version);
}

static void
job_deliver(struct job *jb)
{
	dg_jobs *j = jb->j;
	dg_delivery_events ev = { on_delivery_progress, on_delivery_done };
	dg_delivery_req req = { 0 };
	char *path;
	dg_err err;

	if (!jb->dev->driver) {
		job_finish(jb, 0, DG_EXT_JOB_NO_DRIVER, NULL);
		return;
	}
	if (!j->kicking) {
		/* the scheduler decides who goes first (it may be jb) */
		kick_deliveries(j);
		return;
	}
	if (!can_deliver(jb))
		return; /* staged: kick_deliveries starts it when a slot frees */
	if (dg_cache_pin(j->cache, j->provider, jb->target, "deliver") != DG_OK ||
	    !(path = dg_cache_path(j->cache, j->provider, jb->target, &err))) {
		/* the image vanished (evicted or quarantined): fetch again */
		set_stage(jb, ST_QUEUED);
		job_advance(jb);
		return;
	}
	slot_take(jb);
	set_stage(jb, ST_TRANSFERRING);
	req.device_id = jb->dev->id;
	req.address = jb->dev->address;
	req.job_id = jb->job_id;
	req.image_path = path;
	req.image_size = jb->size;
	req.sha256_hex = jb->target_hex;
	req.version = jb->version;
	req.timeout_s = j->o.delivery_timeout_s;
	jb->delivery = jb->dev->driver->ops->deliver(jb->dev->driver, &req, &ev, jb, &err);
	free(path);
	if (!jb->delivery)
		job_finish(jb, 0, DG_DRIVER_EXT_SPAWN, NULL);
}

/* A job served by an image already cached reports how that image came
 * (an image the operator imported counts as a plain full image). */
static void
image_origin(struct job *jb)
{
	sqlite3_stmt *s = dg_store_prepare(jb->j->store,
	    "SELECT via, fallback_ext FROM image WHERE sha256 = ?");

	jb->via_delta = 0;
	jb->fallback_ext = 0;
	if (!s)
		return;
	sqlite3_bind_text(s, 1, jb->target_hex, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		jb->via_delta = strcmp((const char *)sqlite3_column_text(s, 0), "delta") == 0;
		jb->fallback_ext = (uint32_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
}

/* Move jb on from its current stage. */
static void
job_advance(struct job *jb)
{
	dg_jobs *j = jb->j;
	struct artifact *a;

	switch (jb->stage) {
	case ST_QUEUED:
	case ST_FETCHING:
	case ST_REBUILDING:
		if (dg_cache_lookup(j->cache, j->provider, jb->target, NULL) == DG_OK) {
			/* in the cache already: a shared or earlier download */
			image_origin(jb);
			set_stage(jb, ST_STAGED);
			job_advance(jb);
			return;
		}
		if (!(a = art_get(jb))) {
			job_finish(jb, 0, DG_EXT_JOB_CACHE, NULL);
			return;
		}
		jb->art = a;
		if (a->fetch || a->thread_running) {
			/* someone else's download or rebuild serves this job too */
			set_stage(jb, a->state == A_REBUILD ? ST_REBUILDING : ST_FETCHING);
			return;
		}
		choose_delta(a, jb->related);
		a->state = a->have_delta ? A_DELTA_FETCH : A_FULL_FETCH;
		set_stage(jb, ST_FETCHING);
		art_start(a);
		return;
	case ST_STAGED:
		job_deliver(jb);
		return;
	case ST_TRANSFERRING:
	case ST_INSTALLING:
		/* after a restart: deliver again from the start */
		jb->stage = ST_STAGED;
		job_deliver(jb);
		return;
	default:
		return;
	}
}

/* Build a job from a command; NULL (and a reason) if the command is bad. */
static struct job *
job_new(dg_jobs *j, struct device *dev, const char *job_id, const json_t *desired,
    const char **why)
{
	struct job *jb = calloc(1, sizeof(*jb));
	const char *url = dg_json_get_str(desired, "softwareURL");
	const char *sha = dg_json_get_str(desired, "softwareSha256");
	const char *ver = dg_json_get_str(desired, "softwareVersion");
	int64_t size = 0;

	*why = NULL;
	if (!jb)
		return NULL;
	jb->j = j;
	jb->dev = dev;
	jb->job_id = strdup(job_id);
	jb->command = dg_json_dumps(desired);
	jb->related = json_incref(json_object_get(desired, "relatedFiles"));
	jb->last_percent = -1;
	jb->seq = ++j->seq;
	if (!url || !*url)
		*why = "softwareURL missing";
	else if (!sha || strlen(sha) != 64 || !parse_sha(sha, jb->target))
		*why = "softwareSha256 must be 64 hex digits";
	else if (!dg_json_get_i64(desired, "softwareSize", &size) || size <= 0 ||
	    (uint64_t)size > j->o.max_image_size)
		*why = "softwareSize missing or out of range";
	else if (jb->related && !json_is_array(jb->related))
		*why = "relatedFiles must be an array";
	jb->url = strdup(url ? url : "");
	jb->version = strdup(ver ? ver : "");
	jb->size = (uint64_t)size;
	dg_util_hex_encode(jb->target, 32, jb->target_hex);
	if (!jb->job_id || !jb->command || !jb->url || !jb->version) {
		job_unlink_free(jb);
		return NULL;
	}
	return jb;
}

/* ------------------------------------------------------------ public */

/* Rebuilt targets are written beside the cache as .rebuild-<hex>[.tmp.*]
 * and inserted from there; one that a crash left half-written is of no
 * use (the rebuild starts over), and no rebuild runs yet. */
static void
remove_stale_rebuilds(dg_jobs *j)
{
	const char *root = dg_cache_root(j->cache);
	DIR *dir = opendir(root);
	struct dirent *de;
	char path[4096];

	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, ".rebuild-", 9) != 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, de->d_name) >= sizeof(path))
			continue;
		if (unlink(path) == 0)
			dg_log_info("removed %s (left by an interrupted rebuild)", path);
		else
			dg_log_warn("%s: cannot remove: %s", path, strerror(errno));
	}
	closedir(dir);
}

dg_jobs *
dg_jobs_new(struct event_base *base, dg_store *store, dg_cache *cache,
    dg_fetcher *fetcher, dg_outbox *outbox, const dg_topic *topic,
    const dg_jobs_opts *o, dg_err *err)
{
	dg_jobs *j = calloc(1, sizeof(*j));

	if (!j) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	j->base = base;
	j->store = store;
	j->cache = cache;
	j->fetcher = fetcher;
	j->outbox = outbox;
	j->topic = topic;
	j->o = *o;
	if (j->o.max_rebuilds <= 0)
		j->o.max_rebuilds = 1;
	if (j->o.max_deliveries <= 0)
		j->o.max_deliveries = 4;
	if (j->o.max_per_link <= 0)
		j->o.max_per_link = 1;
	if (j->o.stage_timeout_s <= 0)
		j->o.stage_timeout_s = 3600;
	if (j->o.delivery_timeout_s <= 0)
		j->o.delivery_timeout_s = 600;
	if (j->o.progress_interval_ms <= 0)
		j->o.progress_interval_ms = 1000;
	if (!j->o.max_image_size)
		j->o.max_image_size = 256u << 20;
	j->rollup_timer = evtimer_new(base, on_rollup_timer, j);
	j->gateway_id = strdup(o->gateway_id ? o->gateway_id : "gateway");
	j->provider = strdup(o->provider ? o->provider : "default");
	if (!j->gateway_id || !j->provider || !j->rollup_timer) {
		dg_jobs_free(j);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	remove_stale_rebuilds(j);
	*err = DG_OK;
	return j;
}

void
dg_jobs_free(dg_jobs *j)
{
	struct device *d;

	if (!j)
		return;
	while (j->jobs) {
		struct job *jb = j->jobs;

		if (jb->delivery)
			jb->dev->driver->ops->cancel(jb->delivery);
		if (jb->delivering)
			dg_cache_unpin(j->cache, j->provider, jb->target, "deliver");
		job_unlink_free(jb);
	}
	while (j->arts)
		art_free(j->arts);
	/* roll-ups still due go out (into the outbox) now */
	on_rollup_timer(-1, 0, j);
	free(j->dirty);
	if (j->rollup_timer)
		event_free(j->rollup_timer);
	while ((d = j->devices)) {
		j->devices = d->next;
		free(d->id);
		free(d->address);
		free(d->version);
		free(d);
	}
	while (j->links) {
		struct link *l = j->links;

		j->links = l->next;
		free(l);
	}
	while (j->drvcs) {
		struct drv_count *c = j->drvcs;

		j->drvcs = c->next;
		free(c);
	}
	free(j->gateway_id);
	free(j->provider);
	free(j);
}

/* The link named name, shared by every device on it (made on first use). */
static struct link *
link_get(dg_jobs *j, const char *name)
{
	struct link *l;
	size_t n = strlen(name);

	for (l = j->links; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	if (!(l = calloc(1, sizeof(*l) + n + 1)))
		return NULL;
	memcpy(l->name, name, n + 1);
	l->next = j->links;
	j->links = l;
	return l;
}

static struct drv_count *
drv_count_get(dg_jobs *j, dg_driver *driver)
{
	struct drv_count *c;

	for (c = j->drvcs; c; c = c->next)
		if (c->driver == driver)
			return c;
	if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	c->driver = driver;
	c->next = j->drvcs;
	j->drvcs = c;
	return c;
}

dg_err
dg_jobs_add_device(dg_jobs *j, const char *id, dg_driver *driver, const char *address,
    const char *link, const char *image_hex, const char *version)
{
	struct device *d = find_device(j, id);
	sqlite3_stmt *s;
	unsigned char sha[32];
	struct link *l = NULL;
	struct drv_count *c = NULL;
	char hb[HOLDER_MAX];

	if ((link && *link && !(l = link_get(j, link))) || (driver && !(c = drv_count_get(j, driver))))
		return DG_ERR_NOMEM;
	if (d && d->job && d->job->delivering && (d->link != l || d->drvc != c)) {
		/* a reload moves it: its slot moves with it */
		slot_count(d, -1);
		d->link = l;
		d->drvc = c;
		slot_count(d, 1);
	}
	if (!d) {
		if (!(d = calloc(1, sizeof(*d))) || !(d->id = strdup(id))) {
			free(d);
			return DG_ERR_NOMEM;
		}
		d->next = j->devices;
		j->devices = d;
	}
	d->driver = driver;
	free(d->address);
	d->address = address ? strdup(address) : NULL;
	d->link = l;
	d->drvc = c;
	/* what we recorded last wins over the configuration's initial view */
	s = dg_store_prepare(j->store, "SELECT image_sha256, version FROM device WHERE id = ?");
	if (s) {
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW) {
			const char *h = (const char *)sqlite3_column_text(s, 0);
			const char *v = (const char *)sqlite3_column_text(s, 1);

			if (h && strlen(h) == 64) {
				image_hex = NULL;
				memcpy(d->image_hex, h, 65);
			}
			if (v) {
				free(d->version);
				d->version = strdup(v);
				version = NULL;
			}
		}
		sqlite3_reset(s);
	}
	if (image_hex && parse_sha(image_hex, sha))
		dg_util_hex_encode(sha, 32, d->image_hex);
	if (version) {
		free(d->version);
		d->version = strdup(version);
	}
	/* the image a device runs is the source of its next delta: keep it */
	dg_cache_unpin_holder(j->cache, holder_of(d, hb), NULL);
	if (d->image_hex[0] && parse_sha(d->image_hex, sha))
		dg_cache_pin(j->cache, j->provider, sha, hb);
	return DG_OK;
}

static int
job_row(dg_jobs *j, const char *dev, const char *job_id, char *stage, size_t stlen,
    uint32_t *ext, char **command)
{
	sqlite3_stmt *s = dg_store_prepare(j->store,
	    "SELECT stage, ext_code, command FROM job WHERE device = ? AND job_id = ?");
	int found = 0;

	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, dev, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		found = 1;
		snprintf(stage, stlen, "%s", (const char *)sqlite3_column_text(s, 0));
		*ext = (uint32_t)sqlite3_column_int64(s, 1);
		if (command)
			*command = strdup((const char *)sqlite3_column_text(s, 2));
	}
	sqlite3_reset(s);
	return found;
}

static void
supersede(struct job *old)
{
	dg_jobs *j = old->j;

	if (old->delivery) {
		old->dev->driver->ops->cancel(old->delivery);
		old->delivery = NULL;
	}
	slot_release(old);
	/* an artifact it waited on goes on for the others (or alone: it is
	 * still a useful image to have) */
	old->art = NULL;
	old->stage = ST_SUPERSEDED;
	persist(old, 0, DG_EXT_JOB_SUPERSEDED);
	dg_log_info("%s: job %s superseded", old->dev->id, old->job_id);
	publish_rollup(j, old->job_id);
	job_unlink_free(old);
}

/* ------------------------------------------------------------ signed commands (issue 13) */

dg_err
dg_jobs_set_trusted_keys(dg_jobs *j, struct dg_jws_key *const *keys, size_t nkeys)
{
	/* tables of their own, created here rather than in the job migration:
	 * they exist only where commands are checked */
	dg_err e = dg_store_exec(j->store,
	    "CREATE TABLE IF NOT EXISTS cmd_seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
	    "CREATE TABLE IF NOT EXISTS cmd_refused (device TEXT NOT NULL, job_id TEXT NOT NULL,"
	    " command_sha256 TEXT NOT NULL, ext_code INTEGER NOT NULL, at INTEGER NOT NULL,"
	    " PRIMARY KEY (device, job_id, command_sha256)) WITHOUT ROWID;");

	if (e != DG_OK)
		return e;
	j->keys = keys;
	j->nkeys = nkeys;
	return DG_OK;
}

static uint32_t
refusal_code(dg_err e)
{
	switch (e) {
	case DG_ERR_CMD_UNSIGNED: return DG_EXT_CMD_UNSIGNED;
	case DG_ERR_JWS_UNKNOWN_KEY: return DG_EXT_CMD_UNKNOWN_KEY;
	case DG_ERR_CMD_ALTERED: return DG_EXT_CMD_ALTERED;
	case DG_ERR_CMD_EXPIRED: return DG_EXT_CMD_EXPIRED;
	case DG_ERR_CMD_REPLAYED: return DG_EXT_CMD_REPLAYED;
	default: return DG_EXT_CMD_BAD_SIGNATURE;
	}
}

/* Whether the command may become a job: 1 yes (its sequence number is
 * then recorded), 0 refused (reported once), -1 database error. */
static int
command_trusted(dg_jobs *j, struct device *dev, const char *job_id, const json_t *desired)
{
	char *text = dg_json_dumps(desired), hex[65], topic[512];
	unsigned char md[32];
	unsigned int mdlen = 0;
	int64_t seq = 0, last = -1;
	sqlite3_stmt *s;
	dg_err e;
	uint32_t ext;
	int rc = -1, step;

	if (!text || !EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL))
		goto out;
	dg_util_hex_encode(md, 32, hex);
	/* refused before: reported then */
	if (!(s = dg_store_prepare(j->store,
	    "SELECT 1 FROM cmd_refused WHERE device = ? AND job_id = ? AND command_sha256 = ?")))
		goto out;
	sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, hex, -1, SQLITE_STATIC);
	step = sqlite3_step(s);
	sqlite3_reset(s);
	if (step == SQLITE_ROW) {
		rc = 0;
		goto out;
	}
	e = dg_command_verify(desired, j->keys, j->nkeys, dev->id, (int64_t)time(NULL), &seq);
	if (e == DG_OK) {
		if (!(s = dg_store_prepare(j->store, "SELECT seq FROM cmd_seq WHERE device = ?")))
			goto out;
		sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			last = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (last >= 0 && seq <= last)
			e = DG_ERR_CMD_REPLAYED;
	}
	if (e == DG_OK) {
		if (!(s = dg_store_prepare(j->store,
		    "INSERT INTO cmd_seq (device, seq) VALUES (?, ?)"
		    " ON CONFLICT(device) DO UPDATE SET seq = excluded.seq")))
			goto out;
		sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, seq);
		step = sqlite3_step(s);
		sqlite3_reset(s);
		if (step != SQLITE_DONE) {
			dg_store_error(j->store, step, "cmd_seq");
			goto out;
		}
		dg_log_info("%s: job %s: signed command accepted (sequence %lld)", dev->id, job_id,
		    (long long)seq);
		rc = 1;
		goto out;
	}
	ext = refusal_code(e);
	dg_log_warn("%s: job %s: command refused: %s (extendedResultCode 0x%08" PRIx32 ")",
	    dev->id, job_id, dg_strerror(e), ext);
	if ((s = dg_store_prepare(j->store,
	    "INSERT OR IGNORE INTO cmd_refused (device, job_id, command_sha256, ext_code, at) VALUES (?, ?, ?, ?, ?)"))) {
		sqlite3_bind_text(s, 1, dev->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, hex, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, ext);
		sqlite3_bind_int64(s, 5, now_s());
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	{
		json_t *msg = json_pack("{s:{s:{s:s,s:s,s:i,s:I}}}", "state", "reported", "jobId", job_id,
		    "status", "FAILED", "resultCode", 0, "extendedResultCode", (json_int_t)ext);
		char *m = msg ? dg_json_dumps(msg) : NULL;

		if (m && dg_topic_build(j->topic, dev->id, "update", topic, sizeof(topic)) == DG_OK &&
		    (e = dg_outbox_put(j->outbox, dev->id, topic, m, 0)) != DG_OK)
			dg_log_err("%s: job %s: refusal not queued: %s", dev->id, job_id, dg_strerror(e));
		free(m);
		json_decref(msg);
	}
	rc = 0;
out:
	free(text);
	return rc;
}

void
dg_jobs_on_document(dg_jobs *j, const char *id, const json_t *doc)
{
	struct device *dev = find_device(j, id);
	const json_t *state = json_object_get(doc, "state");
	const json_t *desired = json_object_get(state, "desired");
	const json_t *reported = json_object_get(state, "reported");
	const char *job_id = dg_json_get_str(desired, "jobId");
	const char *rep_job = dg_json_get_str(reported, "jobId");
	const char *rep_status = dg_json_get_str(reported, "status");
	const char *why = NULL;
	char stage[32], *old_cmd = NULL;
	uint32_t ext = 0;
	struct job *jb;
	sqlite3_stmt *s;
	int found, rc;

	if (!dev || !job_id || !*job_id)
		return;
	if (dev->job && strcmp(dev->job->job_id, job_id) == 0)
		return; /* already working on it */
	found = job_row(j, id, job_id, stage, sizeof(stage), &ext, &old_cmd);
	if (found < 0)
		return;
	if (found) {
		/* a job that failed on an expired or forbidden URL waits for a
		 * fresh command: the same job id with another URL */
		const char *url = dg_json_get_str(desired, "softwareURL");
		json_t *oc = old_cmd ? json_loads(old_cmd, 0, NULL) : NULL;
		const char *old_url = dg_json_get_str(oc, "softwareURL");
		int retry = strcmp(stage, "failed") == 0 && ext == DG_EXT_DOWNLOAD(DG_ERR_FETCH_FORBIDDEN) &&
		    url && old_url && strcmp(url, old_url) != 0;

		json_decref(oc);
		free(old_cmd);
		if (!retry)
			return;
		if (j->nkeys && command_trusted(j, dev, job_id, desired) != 1)
			return;
		s = dg_store_prepare(j->store, "DELETE FROM job WHERE device = ? AND job_id = ?");
		if (!s)
			return;
		sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
		sqlite3_step(s);
		sqlite3_reset(s);
		dg_log_info("%s: job %s: fresh URL, retrying", id, job_id);
	} else if (rep_job && strcmp(rep_job, job_id) == 0 && rep_status &&
	    (strcmp(rep_status, "SUCCEEDED") == 0 || strcmp(rep_status, "FAILED") == 0)) {
		return; /* finished before this database knew of it */
	}
	/* a command the trusted keys did not sign never reaches the device,
	 * nor supersedes the job it has */
	if (!found && j->nkeys && command_trusted(j, dev, job_id, desired) != 1)
		return;
	if (dev->job)
		supersede(dev->job);
	if (!(jb = job_new(j, dev, job_id, desired, &why)))
		return;
	s = dg_store_prepare(j->store,
	    "INSERT INTO job (device, job_id, command, stage, created, updated) VALUES (?, ?, ?, 'queued', ?, ?)");
	if (!s) {
		job_unlink_free(jb);
		return;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, job_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, jb->command, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now_s());
	sqlite3_bind_int64(s, 5, now_s());
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		dg_store_error(j->store, rc, "job insert");
		job_unlink_free(jb);
		return;
	}
	jb->next = j->jobs;
	j->jobs = jb;
	dev->job = jb;
	dg_log_info("%s: job %s: new command for version %s (%s)", id, job_id, jb->version, jb->target_hex);
	if (why) {
		dg_log_err("%s: job %s: bad command: %s", id, job_id, why);
		job_finish(jb, 0, DG_EXT_JOB_BAD_COMMAND, NULL);
		return;
	}
	report_progress(jb, "queued", -1);
	publish_rollup(j, job_id);
	job_advance(jb);
}

void
dg_jobs_resume(dg_jobs *j)
{
	sqlite3_stmt *s = dg_store_prepare(j->store,
	    "SELECT device, job_id, command, stage, fallback_ext, via FROM job"
	    " WHERE stage NOT IN ('succeeded', 'failed', 'superseded') ORDER BY created");
	struct job *list = NULL, *jb;

	if (!s)
		return;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *dev_id = (const char *)sqlite3_column_text(s, 0);
		const char *job_id = (const char *)sqlite3_column_text(s, 1);
		const char *cmd = (const char *)sqlite3_column_text(s, 2);
		const char *st = (const char *)sqlite3_column_text(s, 3);
		struct device *dev = find_device(j, dev_id);
		json_t *desired = json_loads(cmd, 0, NULL);
		const char *why;
		int k;

		if (dev && desired && !dev->job && (jb = job_new(j, dev, job_id, desired, &why)) && !why) {
			for (k = 0; k <= ST_INSTALLING; k++)
				if (strcmp(st, stage_names[k]) == 0)
					jb->stage = (enum stage)k;
			jb->fallback_ext = (uint32_t)sqlite3_column_int64(s, 4);
			jb->via_delta = sqlite3_column_text(s, 5) &&
			    strcmp((const char *)sqlite3_column_text(s, 5), "delta") == 0;
			jb->next = list;
			list = jb;
			dev->job = jb;
			dg_log_info("%s: job %s: resuming at stage %s", dev_id, job_id, st);
		}
		json_decref(desired);
	}
	sqlite3_reset(s);
	/* advance only after the statement is done with */
	while ((jb = list)) {
		list = jb->next;
		jb->next = j->jobs;
		j->jobs = jb;
	}
	j->defer++;
	for (jb = j->jobs; jb; ) {
		struct job *next = jb->next;

		job_advance(jb);
		jb = next;
	}
	j->defer--;
	kick_deliveries(j);
}

void
dg_jobs_set_limits(dg_jobs *j, const dg_jobs_opts *o)
{
	if (o->max_deliveries > 0)
		j->o.max_deliveries = o->max_deliveries;
	j->o.max_per_driver = o->max_per_driver;
	if (o->max_per_link > 0)
		j->o.max_per_link = o->max_per_link;
	if (o->stage_timeout_s > 0)
		j->o.stage_timeout_s = o->stage_timeout_s;
	if (o->delivery_timeout_s > 0)
		j->o.delivery_timeout_s = o->delivery_timeout_s;
	if (o->progress_interval_ms > 0)
		j->o.progress_interval_ms = o->progress_interval_ms;
	if (o->max_image_size)
		j->o.max_image_size = o->max_image_size;
	kick_deliveries(j);
}

void
dg_jobs_stats(dg_jobs *j, int *active, int *done, int *failed)
{
	sqlite3_stmt *s = dg_store_prepare(j->store,
	    "SELECT sum(stage NOT IN ('succeeded','failed','superseded')),"
	    " sum(stage = 'succeeded'), sum(stage = 'failed') FROM job");

	*active = *done = *failed = 0;
	if (s && sqlite3_step(s) == SQLITE_ROW) {
		*active = sqlite3_column_int(s, 0);
		*done = sqlite3_column_int(s, 1);
		*failed = sqlite3_column_int(s, 2);
	}
	if (s)
		sqlite3_reset(s);
}
