/* dg_cache - the content-addressed image cache.
 *
 * A file lives at <root>/<provider>/sha256-<encoded hash>, where <encoded
 * hash> is the base64 of the file's SHA-256 with '+' written "_2B", '/'
 * written "_2F" and '=' written "_3D": the layout of the Azure Device Update
 * source update cache, so a cache made by one is usable by the other.
 * An SQLite index (<root>/.index.db) holds sizes, use order and pins.
 * Names under <root> that start with '.' belong to the cache itself:
 * .index.db*, .lock, .partial/ (resumable downloads), .quarantine/.
 *
 * Crash safety: every file enters its final name by rename after fsync, so
 * a reader never sees a partial file; dg_cache_new reconciles the index with
 * the disk (see docs/cache.md).
 *
 * A dg_cache is used from one thread. Several processes may open the same
 * root; the first one reconciles, the others share.
 */
#ifndef DG_CACHE_H
#define DG_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

#define DG_CACHE_SHA256_LEN 32
/* strlen("sha256-") + 44 base64 chars with the one '=' written "_3D" and
 * every '+' / '/' possibly written as 3 chars, plus NUL */
#define DG_CACHE_NAME_MAX (7 + 43 * 3 + 3 + 1)
#define DG_CACHE_PROVIDER_MAX 255

typedef struct dg_cache dg_cache;
typedef struct dg_cache_writer dg_cache_writer;

/* Flags of dg_cache_new. */
#define DG_CACHE_VERIFY_ON_READ 0x1u /* re-hash in dg_cache_map/_open_fd */
#define DG_CACHE_VERIFY_AT_OPEN 0x2u /* re-hash every entry when reconciling
                                       (default: size check only) */

typedef struct dg_cache_entry {
	char provider[DG_CACHE_PROVIDER_MAX + 1];
	unsigned char sha256[DG_CACHE_SHA256_LEN];
	uint64_t size;
	uint64_t inserted_ms; /* wall clock, ms since the epoch */
	uint64_t used_ms;     /* wall clock of the last use */
	uint64_t pins;        /* sum of the pin counts of every holder */
} dg_cache_entry;

/* What a reconciliation, verify or adopt pass found. */
typedef struct dg_cache_report {
	uint64_t checked;     /* entries / files examined */
	uint64_t adopted;     /* files indexed (found on disk, hash matched) */
	uint64_t dropped;     /* index entries whose file was gone */
	uint64_t quarantined; /* files with a wrong size or hash, moved away */
	uint64_t temps;       /* stale temp files removed */
	uint64_t evicted;     /* entries evicted to meet the quota */
	uint64_t skipped;     /* files ignored (foreign names) */
} dg_cache_report;

/* --- naming (pure functions, no cache needed) */

/* 0 if provider is a valid provider name: 1..255 bytes, not "." or "..",
 * no '/', not starting with '.' (reserved for the cache's own files).
 * DG_ERR_CACHE_PROVIDER otherwise. */
dg_err dg_cache_provider_check(const char *provider);
/* "sha256-<encoded hash>" of a digest into out (DG_CACHE_NAME_MAX bytes). */
void dg_cache_name_encode(const unsigned char sha256[DG_CACHE_SHA256_LEN], char *out);
/* The digest named by a file name "sha256-<encoded hash>".
 * DG_ERR_CACHE_NAME if name is not exactly such a name. */
dg_err dg_cache_name_decode(const char *name, unsigned char sha256[DG_CACHE_SHA256_LEN]);
/* SHA-256 of a whole file. DG_ERR_IO/NOENT/PERM/..., DG_ERR_CRYPTO. */
dg_err dg_cache_hash_file(const char *path, unsigned char sha256[DG_CACHE_SHA256_LEN],
    uint64_t *size);

/* --- the cache */

/* Open (creating) the cache at root with a quota in bytes (0: unlimited),
 * reconcile it with the disk (report may be NULL) and, if over the quota,
 * evict. Returns NULL and sets *err: DG_ERR_NOMEM, DG_ERR_PERM/NOSPC/IO/
 * SYSTEM (cannot create root, logged), DG_ERR_DB* (index). */
dg_cache *dg_cache_new(const char *root, uint64_t quota, unsigned flags,
    dg_cache_report *report, dg_err *err);
void dg_cache_free(dg_cache *c);
const char *dg_cache_root(const dg_cache *c);
uint64_t dg_cache_quota(const dg_cache *c);
/* Change the quota; does not evict until the next insert or dg_cache_gc. */
void dg_cache_set_quota(dg_cache *c, uint64_t quota);
/* Bytes the index accounts for (all entries) and of those, pinned ones. */
dg_err dg_cache_usage(dg_cache *c, uint64_t *bytes, uint64_t *pinned_bytes,
    uint64_t *entries);

/* The path an entry of provider with that digest has or would have:
 * a fresh string the caller frees. NULL on DG_ERR_CACHE_PROVIDER or
 * DG_ERR_NOMEM (in *err). */
char *dg_cache_path(const dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], dg_err *err);

/* Insert the file at path under provider (copying it). expected_sha256 may
 * be NULL. An identical existing entry makes this a no-op (DG_OK). out may
 * be NULL. Errors as dg_cache_writer_write/_commit, plus DG_ERR_NOENT etc.
 * for path. */
dg_err dg_cache_insert_file(dg_cache *c, const char *provider, const char *path,
    const unsigned char *expected_sha256, dg_cache_entry *out);

/* --- incremental writers (libcurl writes into one chunk by chunk)
 *
 * A writer owns a temp file <root>/<provider>/.tmp-XXXXXX. It hashes while
 * writing; commit checks the expected size and hash (when given), fsyncs,
 * makes room under the quota and renames the file to its final name.
 * Nothing is visible to readers before commit. */

/* expected_sha256 may be NULL; expected_size 0 means unknown. Fails early
 * with DG_ERR_CACHE_FULL if expected_size can never fit (quota minus pinned
 * bytes). NULL and *err: DG_ERR_CACHE_PROVIDER, DG_ERR_CACHE_FULL,
 * DG_ERR_NOMEM, DG_ERR_PERM/NOSPC/IO/SYSTEM (cannot create the temp file). */
dg_cache_writer *dg_cache_writer_new(dg_cache *c, const char *provider,
    const unsigned char *expected_sha256, uint64_t expected_size, dg_err *err);

/* A resumable writer for a download of known SHA-256: its bytes live in
 * <root>/.partial/<hex sha256> and survive a crash of the process. *have
 * (may be NULL) gets the bytes already there (re-hashed, so writing
 * continues at that offset: ask the server for "Range: bytes=<have>-").
 * A partial longer than expected_size (when given) is discarded.
 * NULL and *err: as dg_cache_writer_new, plus DG_ERR_INVAL (no expected
 * hash), DG_ERR_CACHE_LOCKED (another writer has that partial open). */
dg_cache_writer *dg_cache_writer_resume(dg_cache *c, const char *provider,
    const unsigned char expected_sha256[DG_CACHE_SHA256_LEN], uint64_t expected_size,
    uint64_t *have, dg_err *err);

/* Bytes written so far (including those a resumed partial already had). */
uint64_t dg_cache_writer_offset(const dg_cache_writer *w);

/* Append len bytes. DG_ERR_CACHE_SIZE if past expected_size; DG_ERR_NOSPC,
 * DG_ERR_IO, ... from write(2) (logged). After an error the writer is
 * failed: further writes return the same error; call _abort. A resumable
 * writer keeps only the bytes of successful writes. */
dg_err dg_cache_writer_write(dg_cache_writer *w, const void *buf, size_t len);

/* Finish: verify, fsync, evict as needed, rename, index. Always frees w.
 * out (may be NULL) gets the entry. Errors: the writer's earlier error;
 * DG_ERR_CACHE_SIZE / DG_ERR_CACHE_HASH (content differs from what was
 * expected: the bytes are deleted, partial included); DG_ERR_CACHE_FULL
 * (the quota cannot be met without evicting pinned entries: nothing
 * cached is evicted; a resumable writer keeps its complete partial so a
 * later resume commits without downloading again); DG_ERR_NOSPC/IO/...,
 * DG_ERR_DB*. On every error no new file is visible and the index is as
 * before. */
dg_err dg_cache_writer_commit(dg_cache_writer *w, dg_cache_entry *out);

/* Give up and free w (NULL: no-op). A plain writer's temp file is deleted;
 * a resumable writer's partial is kept for a later dg_cache_writer_resume. */
void dg_cache_writer_abort(dg_cache_writer *w);

/* Delete the partial download of a digest. DG_OK also if there was none;
 * DG_ERR_CACHE_LOCKED if a writer has it open. */
dg_err dg_cache_partial_remove(dg_cache *c, const unsigned char sha256[DG_CACHE_SHA256_LEN]);

/* --- lookup and use */

/* Find (provider, sha256), mark it used (LRU) and fill out (may be NULL).
 * DG_ERR_CACHE_MISS if absent (also if its file vanished: the entry is
 * then dropped), DG_ERR_CACHE_PROVIDER, DG_ERR_DB*. */
dg_err dg_cache_lookup(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], dg_cache_entry *out);
/* The same for any provider (the most recently used entry with that
 * digest): a delta's source may have been cached under another provider. */
dg_err dg_cache_lookup_any(dg_cache *c, const unsigned char sha256[DG_CACHE_SHA256_LEN],
    dg_cache_entry *out);

/* Pins: counted per holder (a free-form non-empty string such as
 * "device:42" or "transfer:7"). An entry with any pin is never evicted.
 * Pins are stored in the index and survive restarts: a holder that lives
 * only as long as a process releases its pins with dg_cache_unpin_holder
 * at start-up. DG_ERR_CACHE_MISS (no such entry), DG_ERR_INVAL (empty
 * holder), DG_ERR_DB*. */
dg_err dg_cache_pin(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder);
/* Drop one pin count of holder. DG_ERR_CACHE_NOT_PINNED if holder holds
 * none on that entry. */
dg_err dg_cache_unpin(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder);
/* Drop every pin of every holder whose name starts with prefix ("" for
 * all); *n (may be NULL) gets the number of (entry, holder) pins removed. */
dg_err dg_cache_unpin_holder(dg_cache *c, const char *prefix, uint64_t *n);
/* Pin count of holder on an entry (0 if none); holder NULL: all holders. */
dg_err dg_cache_pins(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder, uint64_t *count);

/* A read-only mapping of a pinned entry: *data and *len stay valid until
 * dg_cache_unmap, even if eviction or removal runs meanwhile (the mapping
 * keeps the bytes). The caller must hold a pin on the entry while using
 * it (DG_ERR_CACHE_NOT_PINNED otherwise) so that it also stays in the
 * cache. Marks the entry used. With DG_CACHE_VERIFY_ON_READ the bytes are
 * re-hashed: DG_ERR_CACHE_CORRUPT (the file is quarantined and dropped).
 * DG_ERR_CACHE_MISS, DG_ERR_IO/..., DG_ERR_NOMEM. An empty file maps to a
 * non-NULL pointer with *len 0. */
dg_err dg_cache_map(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const void **data, size_t *len);
void dg_cache_unmap(const void *data, size_t len);

/* A read-only fd on an entry (the caller closes it); same rules and errors
 * as dg_cache_map but no pin is required. */
dg_err dg_cache_open_fd(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], int *fd);

/* --- maintenance */

/* Remove an entry (pinned: DG_ERR_BUSY). DG_ERR_CACHE_MISS if absent. */
dg_err dg_cache_remove(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN]);

/* Evict least-recently-used unpinned entries until usage <= quota (no-op
 * without a quota). DG_ERR_CACHE_FULL if pinned entries alone exceed it
 * (what could be evicted is). report may be NULL. */
dg_err dg_cache_gc(dg_cache *c, dg_cache_report *report);

/* Re-hash every entry; quarantine and drop damaged ones, drop missing ones.
 * DG_OK if all were intact, DG_ERR_CACHE_CORRUPT if any was not; I/O and
 * DB errors as usual. report may be NULL. */
dg_err dg_cache_verify(dg_cache *c, dg_cache_report *report);

/* Import every sha256-* file under dir: if provider is NULL, dir is a root
 * of the same layout (<dir>/<provider>/sha256-...), otherwise dir holds the
 * files of that provider. Each file is hashed and its name checked, then
 * copied in (dir itself is not changed). Files whose name does not match
 * their content are counted as quarantined (left where they are) and make
 * the result DG_ERR_CACHE_HASH; other names are skipped. */
dg_err dg_cache_adopt(dg_cache *c, const char *dir, const char *provider,
    dg_cache_report *report);

/* Call fn for every entry, least recently used first; a non-zero return
 * stops the walk. fn must not call into the cache. */
dg_err dg_cache_foreach(dg_cache *c, int (*fn)(const dg_cache_entry *e, void *arg),
    void *arg);

#endif
