/* dg_job - the update jobs of the gateway: one persisted state machine per
 * (device, job id), and the artifacts (images) they share.
 *
 *   queued -> fetching -> rebuilding -> staged -> transferring ->
 *   installing -> succeeded | failed        (superseded: a newer command)
 *
 * A job needs its target image in the cache. Images are "artifacts" shared
 * by every job that needs the same SHA-256: one download (or one delta
 * download and one rebuild) serves them all. An artifact is rebuilt from a
 * delta when a related file's source image is in the cache; when there is
 * no usable delta, or fetching or applying it fails, the full image is
 * downloaded instead and the reason is kept as the extended result code
 * of the fallback. Every transition is committed to SQLite before it takes
 * effect, so after a crash each job continues from its last stage; partial
 * downloads resume from their byte offset.
 *
 * Reports (status, progress) go upstream through the outbox; a roll-up per
 * job id goes to the gateway's own shadow. Everything runs in the loop
 * thread, except delta application, which runs on a worker thread and
 * hands its result back through event_active().
 */
#ifndef DG_JOB_H
#define DG_JOB_H

#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "dg_cache.h"
#include "dg_driver.h"
#include "dg_err.h"
#include "dg_fetch.h"
#include "dg_outbox.h"
#include "dg_store.h"
#include "dg_topic.h"

/* Extended result codes of the gateway (facility 0x9):
 * component 0x01 download handler, 0x08 delta handler common, 0x09 source
 * update cache, 0x0A delta processor (dg_delta), 0x0B downstream driver,
 * 0x0C gateway job. */
#define DG_EXT_DOWNLOAD(c) (0x90100000u | ((uint32_t)(c) & 0xFFFFFu))
#define DG_EXT_DELTA_COMMON(c) (0x90800000u | ((uint32_t)(c) & 0xFFFFFu))
#define DG_EXT_SOURCE_CACHE_MISS 0x90800008u
#define DG_EXT_JOB(c) (0x90C00000u | ((uint32_t)(c) & 0xFFFFFu))

#define DG_EXT_JOB_BAD_COMMAND DG_EXT_JOB(1)   /* desired state unusable */
#define DG_EXT_JOB_NO_DRIVER DG_EXT_JOB(2)     /* device's driver missing */
#define DG_EXT_JOB_CACHE DG_EXT_JOB(3)         /* image could not be cached */
#define DG_EXT_JOB_SUPERSEDED DG_EXT_JOB(4)    /* a newer command replaced it */
#define DG_EXT_JOB_TIMEOUT DG_EXT_JOB(5)       /* a stage took too long */
#define DG_EXT_JOB_NOSPACE DG_EXT_JOB(7)       /* no space left for the image (disk full) */
/* 0x0E: the gateway refused a command (signed commands, issue 13) */
#define DG_EXT_CMD(c) (0x90E00000u | ((uint32_t)(c) & 0xFFFFFu))
#define DG_EXT_CMD_UNSIGNED DG_EXT_CMD(1)    /* no signature, keys are trusted */
#define DG_EXT_CMD_UNKNOWN_KEY DG_EXT_CMD(2) /* signed by a key not trusted */
#define DG_EXT_CMD_BAD_SIGNATURE DG_EXT_CMD(3) /* does not verify / malformed */
#define DG_EXT_CMD_ALTERED DG_EXT_CMD(4)     /* differs from the signed fields */
#define DG_EXT_CMD_EXPIRED DG_EXT_CMD(5)     /* past its signed expiry */
#define DG_EXT_CMD_REPLAYED DG_EXT_CMD(6)    /* sequence not above the last accepted */
#define DG_EXT_DELTA_FETCH(c) DG_EXT_DELTA_COMMON(0x100 | ((c) & 0xFF)) /* delta download failed */
#define DG_EXT_DELTA_REBUILT_MISMATCH DG_EXT_DELTA_COMMON(0x20) /* rebuilt image != softwareSha256 */

typedef struct dg_jobs dg_jobs;

typedef struct dg_jobs_opts {
	const char *gateway_id;
	const char *provider;      /* cache provider for images and deltas */
	int max_rebuilds;          /* concurrent delta applications (1) */
	int max_deliveries;        /* concurrent downstream transfers (4) */
	int max_per_driver;        /* of them through one driver (0: no limit) */
	int max_per_link;          /* of them on one link, e.g. a radio
	                            * network or a serial bus (1) */
	int stage_timeout_s;       /* fetch/rebuild stage bound (3600) */
	int delivery_timeout_s;    /* per delivery (600) */
	int progress_interval_ms;  /* progress report spacing per device (1000) */
	uint64_t max_image_size;   /* refuse larger commands (256 MiB) */
} dg_jobs_opts;

extern const char dg_jobs_migration_sql[];

dg_jobs *dg_jobs_new(struct event_base *base, dg_store *store, dg_cache *cache,
    dg_fetcher *fetcher, dg_outbox *outbox, const dg_topic *topic,
    const dg_jobs_opts *opts, dg_err *err);
/* Stops work (nothing is lost: stages are durable). */
void dg_jobs_free(dg_jobs *j);

/* Declare a device; driver (borrowed, may be NULL for "none") delivers to
 * it at address. link (may be NULL: the device is alone on its link) names
 * the medium it shares with others, for max_per_link. image_sha256_hex /
 * version: what it runs, if known. */
dg_err dg_jobs_add_device(dg_jobs *j, const char *id, dg_driver *driver,
    const char *address, const char *link, const char *image_sha256_hex,
    const char *version);

/* Change the limits and intervals of opts at run time (SIGHUP); jobs in
 * flight keep their slots. */
void dg_jobs_set_limits(dg_jobs *j, const dg_jobs_opts *opts);

/* The device's mirrored document changed: start, supersede or leave jobs. */
void dg_jobs_on_document(dg_jobs *j, const char *id, const json_t *doc);

/* Trust only commands signed by one of the nkeys keys (borrowed: they
 * outlive j): every other command is refused before anything else happens
 * (no job, the device untouched), reported upstream as FAILED with its
 * DG_EXT_CMD_* code, and recorded so that it is reported once. The sequence
 * number of the last accepted command of each device is durable (table
 * cmd_seq): a replayed or older command is refused, across restarts too.
 * nkeys 0: commands are not checked (the default). DG_ERR_DB. */
struct dg_jws_key;
dg_err dg_jobs_set_trusted_keys(dg_jobs *j, struct dg_jws_key *const *keys, size_t nkeys);

/* Resume the jobs a previous run left unfinished (call once at start). */
void dg_jobs_resume(dg_jobs *j);

/* Counts by stage for logs and tests. */
void dg_jobs_stats(dg_jobs *j, int *active, int *done, int *failed);

#endif
