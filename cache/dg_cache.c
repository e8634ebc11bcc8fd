/* dg_cache - the content-addressed image cache (see dg_cache.h and
 * docs/cache.md for the layout, the index schema and the crash rules). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dg_cache.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_store.h"
#include "dg_util.h"

#define INDEX_NAME ".index.db"
#define LOCK_NAME ".lock"
#define PARTIAL_DIR ".partial"
#define QUARANTINE_DIR ".quarantine"
#define TMP_PREFIX ".tmp-"
#define NAME_PREFIX "sha256-"
#define HASH_BUF (256 * 1024)
#define DIR_MODE 0755
#define FILE_MODE 0644

struct dg_cache {
	char *root;
	dg_store *st;
	int lockfd;
	uint64_t quota;
	unsigned flags;
	uint64_t last_seq; /* last_used of the latest use: strictly increasing */
};

struct dg_cache_writer {
	dg_cache *c;
	char provider[DG_CACHE_PROVIDER_MAX + 1];
	char *path; /* temp file, or partial file when resumable */
	int fd;
	EVP_MD_CTX *md;
	uint64_t off;
	uint64_t expect_size;
	unsigned char expect[DG_CACHE_SHA256_LEN];
	int has_expect;
	int resumable;
	dg_err failed;
};

/* An entry chosen for eviction or removal: the file goes after the index
 * transaction that dropped it has committed. */
struct victim {
	char *provider;
	unsigned char sha[DG_CACHE_SHA256_LEN];
};

struct victims {
	struct victim *v;
	size_t n, cap;
};

/* The index. last_used orders uses (microseconds, strictly increasing per
 * process); totals is kept by triggers so that the quota check is O(1). */
static const dg_store_migration migrations[] = {
	{
	    "CREATE TABLE entries ("
	    " provider TEXT NOT NULL,"
	    " sha256 BLOB NOT NULL,"
	    " size INTEGER NOT NULL,"
	    " inserted_ms INTEGER NOT NULL,"
	    " used_ms INTEGER NOT NULL,"
	    " last_used INTEGER NOT NULL,"
	    " pins INTEGER NOT NULL DEFAULT 0,"
	    " PRIMARY KEY (provider, sha256)) WITHOUT ROWID;"
	    "CREATE INDEX entries_sha ON entries (sha256, last_used);"
	    "CREATE INDEX entries_lru ON entries (pins, last_used);"
	    "CREATE TABLE pins ("
	    " provider TEXT NOT NULL,"
	    " sha256 BLOB NOT NULL,"
	    " holder TEXT NOT NULL,"
	    " count INTEGER NOT NULL CHECK (count > 0),"
	    " PRIMARY KEY (provider, sha256, holder),"
	    " FOREIGN KEY (provider, sha256) REFERENCES entries (provider, sha256)"
	    "  ON DELETE CASCADE) WITHOUT ROWID;"
	    "CREATE INDEX pins_holder ON pins (holder);"
	    "CREATE TABLE totals ("
	    " id INTEGER PRIMARY KEY CHECK (id = 1),"
	    " bytes INTEGER NOT NULL,"
	    " pinned_bytes INTEGER NOT NULL,"
	    " entries INTEGER NOT NULL);"
	    "INSERT INTO totals VALUES (1, 0, 0, 0);"
	    "CREATE TRIGGER entries_ins AFTER INSERT ON entries BEGIN"
	    " UPDATE totals SET bytes = bytes + NEW.size, entries = entries + 1,"
	    "  pinned_bytes = pinned_bytes + (CASE WHEN NEW.pins > 0 THEN NEW.size ELSE 0 END);"
	    " END;"
	    "CREATE TRIGGER entries_del AFTER DELETE ON entries BEGIN"
	    " UPDATE totals SET bytes = bytes - OLD.size, entries = entries - 1,"
	    "  pinned_bytes = pinned_bytes - (CASE WHEN OLD.pins > 0 THEN OLD.size ELSE 0 END);"
	    " END;"
	    "CREATE TRIGGER entries_upd AFTER UPDATE OF size, pins ON entries BEGIN"
	    " UPDATE totals SET bytes = bytes - OLD.size + NEW.size,"
	    "  pinned_bytes = pinned_bytes"
	    "   - (CASE WHEN OLD.pins > 0 THEN OLD.size ELSE 0 END)"
	    "   + (CASE WHEN NEW.pins > 0 THEN NEW.size ELSE 0 END);"
	    " END;"
	    "CREATE TRIGGER pins_ins AFTER INSERT ON pins BEGIN"
	    " UPDATE entries SET pins = pins + NEW.count"
	    "  WHERE provider = NEW.provider AND sha256 = NEW.sha256;"
	    " END;"
	    "CREATE TRIGGER pins_upd AFTER UPDATE OF count ON pins BEGIN"
	    " UPDATE entries SET pins = pins + NEW.count - OLD.count"
	    "  WHERE provider = NEW.provider AND sha256 = NEW.sha256;"
	    " END;"
	    "CREATE TRIGGER pins_del AFTER DELETE ON pins BEGIN"
	    " UPDATE entries SET pins = pins - OLD.count"
	    "  WHERE provider = OLD.provider AND sha256 = OLD.sha256;"
	    " END;"
	},
};

/* ------------------------------------------------------------------ naming */

dg_err
dg_cache_provider_check(const char *provider)
{
	size_t n;

	if (!provider)
		return DG_ERR_CACHE_PROVIDER;
	n = strlen(provider);
	if (n == 0 || n > DG_CACHE_PROVIDER_MAX || provider[0] == '.' ||
	    strchr(provider, '/'))
		return DG_ERR_CACHE_PROVIDER;
	return DG_OK;
}

void
dg_cache_name_encode(const unsigned char sha256[DG_CACHE_SHA256_LEN], char *out)
{
	unsigned char b64[64];
	char *p = out;
	int i, n;

	n = EVP_EncodeBlock(b64, sha256, DG_CACHE_SHA256_LEN);
	memcpy(p, NAME_PREFIX, sizeof(NAME_PREFIX) - 1);
	p += sizeof(NAME_PREFIX) - 1;
	for (i = 0; i < n; i++) {
		switch (b64[i]) {
		case '+': memcpy(p, "_2B", 3); p += 3; break;
		case '/': memcpy(p, "_2F", 3); p += 3; break;
		case '=': memcpy(p, "_3D", 3); p += 3; break;
		default: *p++ = (char)b64[i]; break;
		}
	}
	*p = '\0';
}

dg_err
dg_cache_name_decode(const char *name, unsigned char sha256[DG_CACHE_SHA256_LEN])
{
	unsigned char b64[48], raw[36];
	char again[DG_CACHE_NAME_MAX];
	const char *p;
	size_t n = 0;

	if (!name || strncmp(name, NAME_PREFIX, sizeof(NAME_PREFIX) - 1) != 0)
		return DG_ERR_CACHE_NAME;
	for (p = name + sizeof(NAME_PREFIX) - 1; *p; ) {
		char ch = *p;

		if (n == 44)
			return DG_ERR_CACHE_NAME;
		if (ch == '_') {
			if (strncmp(p, "_2B", 3) == 0)
				ch = '+';
			else if (strncmp(p, "_2F", 3) == 0)
				ch = '/';
			else if (strncmp(p, "_3D", 3) == 0)
				ch = '=';
			else
				return DG_ERR_CACHE_NAME;
			p += 3;
		} else if (ch == '+' || ch == '/' || ch == '=') {
			return DG_ERR_CACHE_NAME; /* must be escaped */
		} else {
			p++;
		}
		b64[n++] = (unsigned char)ch;
	}
	if (n != 44 || EVP_DecodeBlock(raw, b64, 44) != 33)
		return DG_ERR_CACHE_NAME;
	/* only the canonical spelling names a digest (no stray low bits) */
	dg_cache_name_encode(raw, again);
	if (strcmp(again, name) != 0)
		return DG_ERR_CACHE_NAME;
	memcpy(sha256, raw, DG_CACHE_SHA256_LEN);
	return DG_OK;
}

static dg_err
hash_fd(int fd, const char *what, unsigned char sha[DG_CACHE_SHA256_LEN],
    uint64_t *size, EVP_MD_CTX *keep)
{
	EVP_MD_CTX *md = keep;
	unsigned char *buf = NULL;
	uint64_t total = 0;
	dg_err err = DG_OK;

	if (!(buf = malloc(HASH_BUF))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if (!md && (!(md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)) {
		err = DG_ERR_CRYPTO;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = dg_err_from_errno(errno);
			dg_log_err("%s: read: %s", what, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			err = DG_ERR_CRYPTO;
			goto fail;
		}
		total += (uint64_t)n;
	}
	if (!keep && sha && EVP_DigestFinal_ex(md, sha, NULL) != 1) {
		err = DG_ERR_CRYPTO;
		goto fail;
	}
	if (size)
		*size = total;
fail:
	if (!keep)
		EVP_MD_CTX_free(md);
	free(buf);
	return err;
}

dg_err
dg_cache_hash_file(const char *path, unsigned char sha256[DG_CACHE_SHA256_LEN], uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	dg_err err;

	if (fd < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot open: %s", path, strerror(errno));
		return err;
	}
	err = hash_fd(fd, path, sha256, size, NULL);
	close(fd);
	return err;
}

static char *
entry_path(const char *root, const char *provider, const unsigned char *sha)
{
	char name[DG_CACHE_NAME_MAX], *p;

	dg_cache_name_encode(sha, name);
	if (asprintf(&p, "%s/%s/%s", root, provider, name) < 0)
		return NULL;
	return p;
}

char *
dg_cache_path(const dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], dg_err *err)
{
	char *p;

	if ((*err = dg_cache_provider_check(provider)) != DG_OK)
		return NULL;
	if (!(p = entry_path(c->root, provider, sha256)))
		*err = DG_ERR_NOMEM;
	return p;
}

static void
hexof(const unsigned char *sha, char *hex)
{
	dg_util_hex_encode(sha, DG_CACHE_SHA256_LEN, hex);
}

/* ------------------------------------------------------------ index helpers */

static sqlite3_stmt *
prep(dg_cache *c, const char *sql)
{
	return dg_store_prepare(c->st, sql);
}

static void
bind_key(sqlite3_stmt *s, int i, const char *provider, const unsigned char *sha)
{
	sqlite3_bind_text(s, i, provider, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, i + 1, sha, DG_CACHE_SHA256_LEN, SQLITE_STATIC);
}

static uint64_t
next_seq(dg_cache *c)
{
	uint64_t now = dg_util_wall_ms() * 1000u;

	c->last_seq = now > c->last_seq ? now : c->last_seq + 1;
	return c->last_seq;
}

/* Run one statement to completion. */
static dg_err
step_done(dg_cache *c, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	dg_err err = rc == SQLITE_DONE ? DG_OK : dg_store_error(c->st, rc, what);

	sqlite3_reset(s);
	return err;
}

/* Fill e from a row: provider, sha256, size, inserted_ms, used_ms, pins. */
static void
row_entry(sqlite3_stmt *s, dg_cache_entry *e)
{
	const unsigned char *p = sqlite3_column_text(s, 0);
	const void *sha = sqlite3_column_blob(s, 1);

	memset(e, 0, sizeof(*e));
	if (p)
		snprintf(e->provider, sizeof(e->provider), "%s", (const char *)p);
	if (sha && sqlite3_column_bytes(s, 1) == DG_CACHE_SHA256_LEN)
		memcpy(e->sha256, sha, DG_CACHE_SHA256_LEN);
	e->size = (uint64_t)sqlite3_column_int64(s, 2);
	e->inserted_ms = (uint64_t)sqlite3_column_int64(s, 3);
	e->used_ms = (uint64_t)sqlite3_column_int64(s, 4);
	e->pins = (uint64_t)sqlite3_column_int64(s, 5);
}

#define ENTRY_COLS "provider, sha256, size, inserted_ms, used_ms, pins"

/* DG_OK and *e if (provider, sha) is indexed, DG_ERR_CACHE_MISS if not. */
static dg_err
get_entry(dg_cache *c, const char *provider, const unsigned char *sha, dg_cache_entry *e)
{
	sqlite3_stmt *s = prep(c, "SELECT " ENTRY_COLS " FROM entries"
	    " WHERE provider = ? AND sha256 = ?");
	int rc;
	dg_err err;

	if (!s)
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		row_entry(s, e);
		err = DG_OK;
	} else if (rc == SQLITE_DONE) {
		err = DG_ERR_CACHE_MISS;
	} else {
		err = dg_store_error(c->st, rc, "look up entry");
	}
	sqlite3_reset(s);
	return err;
}

static dg_err
delete_row(dg_cache *c, const char *provider, const unsigned char *sha)
{
	sqlite3_stmt *s = prep(c, "DELETE FROM entries WHERE provider = ? AND sha256 = ?");

	if (!s)
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha);
	return step_done(c, s, "delete entry");
}

/* Mark an entry used. Uses are not worth an fsync each: they are
 * committed with synchronous=NORMAL (durable against a process crash and
 * made durable against power loss by the next FULL commit). */
static void
touch(dg_cache *c, const char *provider, const unsigned char *sha, dg_cache_entry *e)
{
	sqlite3_stmt *s;
	uint64_t seq = next_seq(c);
	int autocommit = sqlite3_get_autocommit(dg_store_db(c->st));

	if (autocommit)
		dg_store_exec(c->st, "PRAGMA synchronous=NORMAL");
	if ((s = prep(c, "UPDATE entries SET last_used = ?, used_ms = ?"
	    " WHERE provider = ? AND sha256 = ?"))) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)(seq / 1000u));
		bind_key(s, 3, provider, sha);
		if (step_done(c, s, "mark entry used") == DG_OK && e)
			e->used_ms = seq / 1000u;
	}
	if (autocommit)
		dg_store_exec(c->st, "PRAGMA synchronous=FULL");
}

static dg_err
insert_row(dg_cache *c, const char *provider, const unsigned char *sha, uint64_t size,
    dg_cache_entry *e)
{
	sqlite3_stmt *s = prep(c, "INSERT INTO entries"
	    " (provider, sha256, size, inserted_ms, used_ms, last_used)"
	    " VALUES (?, ?, ?, ?, ?, ?)"
	    " ON CONFLICT (provider, sha256) DO UPDATE SET size = excluded.size,"
	    " used_ms = excluded.used_ms, last_used = excluded.last_used");
	uint64_t seq = next_seq(c);
	dg_err err;

	if (!s)
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)size);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)(seq / 1000u));
	sqlite3_bind_int64(s, 5, (sqlite3_int64)(seq / 1000u));
	sqlite3_bind_int64(s, 6, (sqlite3_int64)seq);
	if ((err = step_done(c, s, "insert entry")) != DG_OK)
		return err;
	if (e)
		err = get_entry(c, provider, sha, e);
	return err;
}

dg_err
dg_cache_usage(dg_cache *c, uint64_t *bytes, uint64_t *pinned_bytes, uint64_t *entries)
{
	sqlite3_stmt *s = prep(c, "SELECT bytes, pinned_bytes, entries FROM totals WHERE id = 1");
	int rc;
	dg_err err = DG_OK;

	if (!s)
		return DG_ERR_DB;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (bytes)
			*bytes = (uint64_t)sqlite3_column_int64(s, 0);
		if (pinned_bytes)
			*pinned_bytes = (uint64_t)sqlite3_column_int64(s, 1);
		if (entries)
			*entries = (uint64_t)sqlite3_column_int64(s, 2);
	} else {
		err = rc == SQLITE_DONE ? DG_ERR_DB_CORRUPT : dg_store_error(c->st, rc, "read totals");
	}
	sqlite3_reset(s);
	return err;
}

/* ------------------------------------------------------------- files */

static dg_err
victims_add(struct victims *vs, const char *provider, const unsigned char *sha)
{
	if (vs->n == vs->cap) {
		size_t ncap = vs->cap ? vs->cap * 2 : 16;
		struct victim *nv = realloc(vs->v, ncap * sizeof(*nv));

		if (!nv)
			return DG_ERR_NOMEM;
		vs->v = nv;
		vs->cap = ncap;
	}
	if (!(vs->v[vs->n].provider = strdup(provider)))
		return DG_ERR_NOMEM;
	memcpy(vs->v[vs->n].sha, sha, DG_CACHE_SHA256_LEN);
	vs->n++;
	return DG_OK;
}

static void
victims_clear(struct victims *vs)
{
	size_t i;

	for (i = 0; i < vs->n; i++)
		free(vs->v[i].provider);
	free(vs->v);
	memset(vs, 0, sizeof(*vs));
}

/* Unlink the files of entries whose rows are gone (committed). A failure
 * leaves an orphan that the next reconciliation adopts again: logged. */
static void
victims_unlink(dg_cache *c, struct victims *vs)
{
	size_t i;

	for (i = 0; i < vs->n; i++) {
		char *p = entry_path(c->root, vs->v[i].provider, vs->v[i].sha);

		if (!p)
			continue;
		if (unlink(p) < 0 && errno != ENOENT)
			dg_log_warn("%s: cannot remove evicted file: %s", p, strerror(errno));
		else
			dg_log_debug("%s: evicted", p);
		dg_util_fsync_dir(p);
		free(p);
	}
}

/* Move a damaged file out of the way (never served, kept for inspection). */
static void
quarantine(dg_cache *c, const char *path, const char *provider, const char *why)
{
	char *qdir = NULL, *dst = NULL;
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (asprintf(&qdir, "%s/%s", c->root, QUARANTINE_DIR) < 0) {
		qdir = NULL;
		goto fail;
	}
	if (dg_util_mkdir_p(qdir, DIR_MODE) != DG_OK)
		goto fail;
	if (asprintf(&dst, "%s/%s_%s.%" PRIu64, qdir, provider, base, dg_util_wall_ms()) < 0) {
		dst = NULL;
		goto fail;
	}
	if (rename(path, dst) < 0)
		goto fail;
	dg_util_fsync_dir(path);
	dg_util_fsync_dir(dst);
	dg_log_warn("%s: %s: moved to %s", path, why, dst);
	free(qdir);
	free(dst);
	return;
fail:
	/* cannot keep it: still never serve it */
	dg_log_warn("%s: %s: cannot quarantine (%s), removing", path, why, strerror(errno));
	unlink(path);
	free(qdir);
	free(dst);
}

/* Within a transaction: drop least recently used unpinned rows until need
 * more bytes fit under the quota. With partial_ok, evict what can be even
 * if that is not enough (gc); otherwise fail before touching anything. */
static dg_err
make_room(dg_cache *c, uint64_t need, int partial_ok, const char *keep_prov,
    const unsigned char *keep_sha, struct victims *vs, uint64_t *evicted)
{
	uint64_t bytes, pinned, freed = 0, target;
	sqlite3_stmt *s;
	dg_err err, full = DG_OK;
	size_t i;
	int rc;

	if (c->quota == 0)
		return DG_OK;
	if ((err = dg_cache_usage(c, &bytes, &pinned, NULL)) != DG_OK)
		return err;
	if (bytes + need <= c->quota)
		return DG_OK;
	if (need > c->quota || pinned + need > c->quota) {
		full = DG_ERR_CACHE_FULL;
		if (!partial_ok) {
			dg_log_err("%s: cannot make room for %" PRIu64 " bytes under the quota"
			    " of %" PRIu64 ": %" PRIu64 " bytes are pinned", c->root, need,
			    c->quota, pinned);
			return full;
		}
	}
	target = bytes + need - c->quota;
	/* the (pins, last_used) index walks the oldest unpinned entries first:
	 * O(log n) per victim */
	if (!(s = prep(c, "SELECT provider, sha256, size FROM entries WHERE pins = 0"
	    " ORDER BY last_used")))
		return DG_ERR_DB;
	while (freed < target && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const void *sha = sqlite3_column_blob(s, 1);

		if (!sha || sqlite3_column_bytes(s, 1) != DG_CACHE_SHA256_LEN)
			continue;
		/* a stale row of the entry being inserted is replaced, not evicted
		 * (its unlink would take the new file) */
		if (keep_prov && memcmp(sha, keep_sha, DG_CACHE_SHA256_LEN) == 0 &&
		    strcmp((const char *)sqlite3_column_text(s, 0), keep_prov) == 0)
			continue;
		if ((err = victims_add(vs, (const char *)sqlite3_column_text(s, 0), sha)) != DG_OK) {
			sqlite3_reset(s);
			return err;
		}
		freed += (uint64_t)sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	if (freed < target && !partial_ok) {
		/* totals and rows disagree: only a damaged index gets here */
		dg_log_err("%s: index totals inconsistent", c->root);
		return DG_ERR_CACHE_FULL;
	}
	for (i = 0; i < vs->n; i++)
		if ((err = delete_row(c, vs->v[i].provider, vs->v[i].sha)) != DG_OK)
			return err;
	if (evicted)
		*evicted += vs->n;
	return full;
}

/* ---------------------------------------------------------------- open */

struct key_list {
	struct victims drop;   /* file missing: drop row */
	struct victims damage; /* file wrong: quarantine + drop row */
};

static dg_err
reconcile_index(dg_cache *c, dg_cache_report *r, struct key_list *kl)
{
	sqlite3_stmt *s = prep(c, "SELECT provider, sha256, size FROM entries");
	dg_err err = DG_OK;
	size_t i;
	int rc;

	if (!s)
		return DG_ERR_DB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *prov = (const char *)sqlite3_column_text(s, 0);
		const void *sha = sqlite3_column_blob(s, 1);
		uint64_t size = (uint64_t)sqlite3_column_int64(s, 2), got;
		unsigned char h[DG_CACHE_SHA256_LEN];
		struct stat sb;
		char *p;

		if (!prov || !sha || sqlite3_column_bytes(s, 1) != DG_CACHE_SHA256_LEN)
			continue;
		r->checked++;
		if (!(p = entry_path(c->root, prov, sha))) {
			err = DG_ERR_NOMEM;
			break;
		}
		if (lstat(p, &sb) < 0) {
			dg_log_warn("%s: indexed but missing: dropped", p);
			err = victims_add(&kl->drop, prov, sha);
		} else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != size) {
			dg_log_warn("%s: size %" PRIu64 ", index says %" PRIu64,
			    p, (uint64_t)sb.st_size, size);
			err = victims_add(&kl->damage, prov, sha);
		} else if (c->flags & DG_CACHE_VERIFY_AT_OPEN) {
			if (dg_cache_hash_file(p, h, &got) != DG_OK ||
			    memcmp(h, sha, sizeof(h)) != 0 || got != size)
				err = victims_add(&kl->damage, prov, sha);
		}
		free(p);
		if (err != DG_OK)
			break;
	}
	sqlite3_reset(s);
	if (err == DG_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = dg_store_error(c->st, rc, "scan index");
	for (i = 0; err == DG_OK && i < kl->drop.n; i++) {
		err = delete_row(c, kl->drop.v[i].provider, kl->drop.v[i].sha);
		r->dropped++;
	}
	for (i = 0; err == DG_OK && i < kl->damage.n; i++) {
		char *p = entry_path(c->root, kl->damage.v[i].provider, kl->damage.v[i].sha);

		if (!p)
			return DG_ERR_NOMEM;
		quarantine(c, p, kl->damage.v[i].provider, "size or hash does not match");
		free(p);
		err = delete_row(c, kl->damage.v[i].provider, kl->damage.v[i].sha);
		r->quarantined++;
	}
	return err;
}

/* Leftover temp files go; partial downloads stay (only names that are a
 * hex digest: anything else in .partial is a leftover too). */
static void
reconcile_partials(dg_cache *c, dg_cache_report *r)
{
	char *dir = NULL;
	DIR *d;
	struct dirent *de;
	unsigned char sha[DG_CACHE_SHA256_LEN];

	if (asprintf(&dir, "%s/%s", c->root, PARTIAL_DIR) < 0)
		return;
	if (!(d = opendir(dir))) {
		free(dir);
		return;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (dg_util_hex_decode(de->d_name, sha, sizeof(sha)) == DG_OK)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			dg_log_info("%s/%s: stale temp file removed", dir, de->d_name);
			r->temps++;
		}
	}
	closedir(d);
	free(dir);
}

/* Index a file found under its final name if its content matches. */
static dg_err
adopt_in_place(dg_cache *c, const char *prov, const char *path,
    const unsigned char *named, dg_cache_report *r)
{
	unsigned char h[DG_CACHE_SHA256_LEN];
	uint64_t size;
	dg_err err;

	if ((err = dg_cache_hash_file(path, h, &size)) != DG_OK)
		return err;
	if (memcmp(h, named, sizeof(h)) != 0) {
		quarantine(c, path, prov, "content does not match its name");
		r->quarantined++;
		return DG_OK;
	}
	if ((err = insert_row(c, prov, named, size, NULL)) != DG_OK)
		return err;
	dg_log_info("%s: adopted (%" PRIu64 " bytes)", path, size);
	r->adopted++;
	return DG_OK;
}

static dg_err
reconcile_provider(dg_cache *c, const char *prov, dg_cache_report *r)
{
	char *dir = NULL, *p = NULL;
	DIR *d = NULL;
	struct dirent *de;
	int removed = 0;
	dg_err err = DG_OK;

	if (asprintf(&dir, "%s/%s", c->root, prov) < 0)
		return DG_ERR_NOMEM;
	if (!(d = opendir(dir))) {
		dg_log_warn("%s: cannot read: %s", dir, strerror(errno));
		goto done;
	}
	while ((de = readdir(d))) {
		unsigned char sha[DG_CACHE_SHA256_LEN];
		dg_cache_entry e;
		struct stat sb;

		if (strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0) {
			if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
				dg_log_info("%s/%s: stale temp file removed", dir, de->d_name);
				r->temps++;
				removed = 1;
			}
			continue;
		}
		if (dg_cache_name_decode(de->d_name, sha) != DG_OK) {
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				dg_log_debug("%s/%s: not a cache file name: ignored", dir, de->d_name);
				r->skipped++;
			}
			continue;
		}
		err = get_entry(c, prov, sha, &e);
		if (err == DG_OK)
			continue;
		if (err != DG_ERR_CACHE_MISS)
			break;
		err = DG_OK;
		free(p);
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			p = NULL;
			err = DG_ERR_NOMEM;
			break;
		}
		if (lstat(p, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			r->skipped++;
			continue;
		}
		r->checked++;
		if ((err = adopt_in_place(c, prov, p, sha, r)) != DG_OK)
			break;
	}
	if (removed)
		dg_util_fsync_dir(dir);
done:
	if (d)
		closedir(d);
	free(p);
	free(dir);
	return err;
}

static dg_err
reconcile(dg_cache *c, dg_cache_report *r)
{
	struct key_list kl;
	struct victims vs;
	DIR *d = NULL;
	struct dirent *de;
	dg_err err;

	memset(&kl, 0, sizeof(kl));
	memset(&vs, 0, sizeof(vs));
	if ((err = dg_store_begin(c->st)) != DG_OK)
		return err;
	if ((err = reconcile_index(c, r, &kl)) != DG_OK)
		goto fail;
	reconcile_partials(c, r);
	if (!(d = opendir(c->root))) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot read: %s", c->root, strerror(errno));
		goto fail;
	}
	while ((de = readdir(d))) {
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode) || dg_cache_provider_check(de->d_name) != DG_OK) {
			r->skipped++;
			continue;
		}
		if ((err = reconcile_provider(c, de->d_name, r)) != DG_OK)
			goto fail;
	}
	/* adopted orphans may exceed the quota; pinned ones cannot be helped */
	err = make_room(c, 0, 1, NULL, NULL, &vs, &r->evicted);
	if (err != DG_OK && err != DG_ERR_CACHE_FULL)
		goto fail;
	if ((err = dg_store_commit(c->st)) != DG_OK)
		goto fail;
	victims_unlink(c, &vs);
	closedir(d);
	victims_clear(&vs);
	victims_clear(&kl.drop);
	victims_clear(&kl.damage);
	return DG_OK;
fail:
	dg_store_rollback(c->st);
	if (d)
		closedir(d);
	victims_clear(&vs);
	victims_clear(&kl.drop);
	victims_clear(&kl.damage);
	return err;
}

dg_cache *
dg_cache_new(const char *root, uint64_t quota, unsigned flags,
    dg_cache_report *report, dg_err *err)
{
	dg_cache *c = NULL;
	dg_cache_report local;
	char *p = NULL;
	sqlite3_stmt *s;
	size_t n;

	if (!report)
		report = &local;
	memset(report, 0, sizeof(*report));
	if (!root || !*root) {
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(c = calloc(1, sizeof(*c))) || !(c->root = strdup(root))) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	c->lockfd = -1;
	c->quota = quota;
	c->flags = flags;
	n = strlen(c->root);
	while (n > 1 && c->root[n - 1] == '/')
		c->root[--n] = '\0';
	if ((*err = dg_util_mkdir_p(c->root, DIR_MODE)) != DG_OK) {
		dg_log_err("%s: cannot create cache root: %s", c->root, strerror(errno));
		goto fail;
	}
	if (asprintf(&p, "%s/%s", c->root, LOCK_NAME) < 0) {
		p = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((c->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE)) < 0) {
		*err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot open: %s", p, strerror(errno));
		goto fail;
	}
	free(p);
	if (asprintf(&p, "%s/%s", c->root, INDEX_NAME) < 0) {
		p = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if (!(c->st = dg_store_open(p, migrations, 1, err)))
		goto fail;
	if ((s = prep(c, "SELECT coalesce(max(last_used), 0) FROM entries")) &&
	    sqlite3_step(s) == SQLITE_ROW)
		c->last_seq = (uint64_t)sqlite3_column_int64(s, 0);
	if (s)
		sqlite3_reset(s);
	/* Only a process alone with the cache may reconcile: the temp files
	 * of another live process are not stale. */
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) == 0) {
		if ((*err = reconcile(c, report)) != DG_OK) {
			dg_log_err("%s: reconciliation failed: %s", c->root, dg_strerror(*err));
			goto fail;
		}
		if (report->adopted || report->dropped || report->quarantined ||
		    report->temps || report->evicted)
			dg_log_info("%s: reconciled: %" PRIu64 " adopted, %" PRIu64 " dropped, %"
			    PRIu64 " quarantined, %" PRIu64 " temp files removed, %" PRIu64
			    " evicted", c->root, report->adopted, report->dropped,
			    report->quarantined, report->temps, report->evicted);
	} else {
		dg_log_info("%s: in use by another process: not reconciled", c->root);
	}
	if (flock(c->lockfd, LOCK_SH) < 0) {
		*err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot lock: %s", c->root, strerror(errno));
		goto fail;
	}
	free(p);
	*err = DG_OK;
	return c;
fail:
	free(p);
	dg_cache_free(c);
	return NULL;
}

void
dg_cache_free(dg_cache *c)
{
	if (!c)
		return;
	dg_store_free(c->st);
	if (c->lockfd >= 0)
		close(c->lockfd);
	free(c->root);
	free(c);
}

const char *
dg_cache_root(const dg_cache *c)
{
	return c->root;
}

uint64_t
dg_cache_quota(const dg_cache *c)
{
	return c->quota;
}

void
dg_cache_set_quota(dg_cache *c, uint64_t quota)
{
	c->quota = quota;
}

/* -------------------------------------------------------------- writers */

static dg_err
room_possible(dg_cache *c, uint64_t size)
{
	uint64_t pinned;
	dg_err err;

	if (c->quota == 0 || size == 0)
		return DG_OK;
	if ((err = dg_cache_usage(c, NULL, &pinned, NULL)) != DG_OK)
		return err;
	if (size > c->quota || pinned + size > c->quota) {
		dg_log_err("%s: %" PRIu64 " bytes cannot fit under the quota of %" PRIu64
		    " (%" PRIu64 " bytes pinned)", c->root, size, c->quota, pinned);
		return DG_ERR_CACHE_FULL;
	}
	return DG_OK;
}

static dg_cache_writer *
writer_alloc(dg_cache *c, const char *provider, const unsigned char *expect,
    uint64_t expect_size, dg_err *err)
{
	dg_cache_writer *w;

	if ((*err = dg_cache_provider_check(provider)) != DG_OK) {
		dg_log_err("invalid provider name '%s'", provider ? provider : "(null)");
		return NULL;
	}
	if ((*err = room_possible(c, expect_size)) != DG_OK)
		return NULL;
	if (!(w = calloc(1, sizeof(*w)))) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	w->c = c;
	w->fd = -1;
	snprintf(w->provider, sizeof(w->provider), "%s", provider);
	w->expect_size = expect_size;
	if (expect) {
		memcpy(w->expect, expect, DG_CACHE_SHA256_LEN);
		w->has_expect = 1;
	}
	if (!(w->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		*err = DG_ERR_CRYPTO;
		EVP_MD_CTX_free(w->md);
		free(w);
		return NULL;
	}
	return w;
}

static void
writer_free(dg_cache_writer *w, int remove_file)
{
	if (w->fd >= 0) {
		if (!remove_file && w->resumable)
			fsync(w->fd);
		close(w->fd);
	}
	if (remove_file && w->path) {
		unlink(w->path);
		dg_util_fsync_dir(w->path);
	}
	EVP_MD_CTX_free(w->md);
	free(w->path);
	free(w);
}

dg_cache_writer *
dg_cache_writer_new(dg_cache *c, const char *provider, const unsigned char *expected_sha256,
    uint64_t expected_size, dg_err *err)
{
	dg_cache_writer *w;
	char *dir = NULL;

	if (!(w = writer_alloc(c, provider, expected_sha256, expected_size, err)))
		return NULL;
	if (asprintf(&dir, "%s/%s", c->root, provider) < 0) {
		dir = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((*err = dg_util_mkdir_p(dir, DIR_MODE)) != DG_OK) {
		dg_log_err("%s: cannot create: %s", dir, strerror(errno));
		goto fail;
	}
	if (asprintf(&w->path, "%s/" TMP_PREFIX "XXXXXX", dir) < 0) {
		w->path = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((w->fd = mkostemp(w->path, O_CLOEXEC)) < 0) {
		*err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot create temp file: %s", dir, strerror(errno));
		free(w->path);
		w->path = NULL;
		goto fail;
	}
	if (fchmod(w->fd, FILE_MODE) < 0) {
		*err = dg_err_from_errno(errno);
		dg_log_err("%s: chmod: %s", w->path, strerror(errno));
		goto fail;
	}
	free(dir);
	return w;
fail:
	free(dir);
	writer_free(w, 1);
	return NULL;
}

dg_cache_writer *
dg_cache_writer_resume(dg_cache *c, const char *provider,
    const unsigned char expected_sha256[DG_CACHE_SHA256_LEN], uint64_t expected_size,
    uint64_t *have, dg_err *err)
{
	dg_cache_writer *w;
	char *dir = NULL, hex[2 * DG_CACHE_SHA256_LEN + 1];
	struct stat sb;

	if (!expected_sha256) {
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(w = writer_alloc(c, provider, expected_sha256, expected_size, err)))
		return NULL;
	w->resumable = 1;
	hexof(expected_sha256, hex);
	if (asprintf(&dir, "%s/%s", c->root, PARTIAL_DIR) < 0) {
		dir = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((*err = dg_util_mkdir_p(dir, DIR_MODE)) != DG_OK) {
		dg_log_err("%s: cannot create: %s", dir, strerror(errno));
		goto fail;
	}
	if (asprintf(&w->path, "%s/%s", dir, hex) < 0) {
		w->path = NULL;
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	if ((w->fd = open(w->path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE)) < 0) {
		*err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot open: %s", w->path, strerror(errno));
		goto fail;
	}
	if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
		*err = errno == EWOULDBLOCK ? DG_ERR_CACHE_LOCKED : dg_err_from_errno(errno);
		dg_log_err("%s: %s", w->path, dg_strerror(*err));
		close(w->fd);
		w->fd = -1;
		free(w->path);
		w->path = NULL; /* another writer's: not ours to remove */
		goto fail;
	}
	if (fstat(w->fd, &sb) < 0) {
		*err = dg_err_from_errno(errno);
		goto fail;
	}
	if (expected_size && (uint64_t)sb.st_size > expected_size) {
		dg_log_warn("%s: longer than the expected %" PRIu64 " bytes: restarting",
		    w->path, expected_size);
		if (ftruncate(w->fd, 0) < 0) {
			*err = dg_err_from_errno(errno);
			goto fail;
		}
	}
	/* continue the digest over what is already there */
	if ((*err = hash_fd(w->fd, w->path, NULL, &w->off, w->md)) != DG_OK)
		goto fail;
	if (lseek(w->fd, (off_t)w->off, SEEK_SET) < 0) {
		*err = dg_err_from_errno(errno);
		goto fail;
	}
	if (w->off)
		dg_log_info("%s: resuming at %" PRIu64 " bytes", w->path, w->off);
	if (have)
		*have = w->off;
	free(dir);
	return w;
fail:
	free(dir);
	writer_free(w, 0);
	return NULL;
}

uint64_t
dg_cache_writer_offset(const dg_cache_writer *w)
{
	return w->off;
}

dg_err
dg_cache_writer_write(dg_cache_writer *w, const void *buf, size_t len)
{
	dg_err err;

	if (w->failed)
		return w->failed;
	if (w->expect_size && (w->off + len > w->expect_size || w->off + len < w->off)) {
		dg_log_err("%s: more than the expected %" PRIu64 " bytes", w->path, w->expect_size);
		return w->failed = DG_ERR_CACHE_SIZE;
	}
	if ((err = dg_util_write_all(w->fd, buf, len)) != DG_OK) {
		dg_log_err("%s: write: %s", w->path, dg_strerror(err));
		/* a partial chunk must not stay: the digest does not cover it */
		if (ftruncate(w->fd, (off_t)w->off) < 0 ||
		    lseek(w->fd, (off_t)w->off, SEEK_SET) < 0)
			dg_log_warn("%s: cannot cut back to %" PRIu64 " bytes", w->path, w->off);
		return w->failed = err;
	}
	if (EVP_DigestUpdate(w->md, buf, len) != 1)
		return w->failed = DG_ERR_CRYPTO;
	w->off += len;
	return DG_OK;
}

void
dg_cache_writer_abort(dg_cache_writer *w)
{
	if (!w)
		return;
	writer_free(w, !w->resumable);
}

dg_err
dg_cache_writer_commit(dg_cache_writer *w, dg_cache_entry *out)
{
	dg_cache *c = w->c;
	unsigned char sha[DG_CACHE_SHA256_LEN];
	char *final = NULL, hexw[65], hexg[65];
	struct victims vs;
	dg_cache_entry e;
	struct stat sb;
	int remove_file = !w->resumable, renamed = 0, in_tx = 0;
	dg_err err;

	memset(&vs, 0, sizeof(vs));
	if ((err = w->failed) != DG_OK)
		goto fail;
	if (w->expect_size && w->off != w->expect_size) {
		dg_log_err("%s: %" PRIu64 " bytes, expected %" PRIu64, w->path, w->off,
		    w->expect_size);
		err = DG_ERR_CACHE_SIZE;
		remove_file = 1;
		goto fail;
	}
	if (EVP_DigestFinal_ex(w->md, sha, NULL) != 1) {
		err = DG_ERR_CRYPTO;
		goto fail;
	}
	if (w->has_expect && memcmp(sha, w->expect, sizeof(sha)) != 0) {
		hexof(w->expect, hexw);
		hexof(sha, hexg);
		dg_log_err("%s: SHA-256 %s, expected %s", w->path, hexg, hexw);
		err = DG_ERR_CACHE_HASH;
		remove_file = 1;
		goto fail;
	}
	if (!(final = entry_path(c->root, w->provider, sha))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	/* identical entry already there: nothing to do */
	if (get_entry(c, w->provider, sha, &e) == DG_OK && lstat(final, &sb) == 0 &&
	    S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == e.size && e.size == w->off) {
		touch(c, w->provider, sha, &e);
		if (out)
			*out = e;
		remove_file = 1;
		writer_free(w, remove_file);
		free(final);
		return DG_OK;
	}
	DG_FAULT("cache/insert/before-fsync", {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: fsync: %s", w->path, strerror(errno));
		goto fail;
	});
	if (fsync(w->fd) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: fsync: %s", w->path, strerror(errno));
		goto fail;
	}
	if ((err = dg_store_begin(c->st)) != DG_OK)
		goto fail;
	in_tx = 1;
	if ((err = make_room(c, w->off, 0, w->provider, sha, &vs, NULL)) != DG_OK)
		goto fail;
	if (w->resumable) {
		char *dir = NULL;

		if (asprintf(&dir, "%s/%s", c->root, w->provider) < 0) {
			err = DG_ERR_NOMEM;
			goto fail;
		}
		err = dg_util_mkdir_p(dir, DIR_MODE);
		if (err != DG_OK)
			dg_log_err("%s: cannot create: %s", dir, strerror(errno));
		free(dir);
		if (err != DG_OK)
			goto fail;
	}
	DG_FAULT("cache/insert/before-rename", {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot rename to %s: %s", w->path, final, strerror(errno));
		goto fail;
	});
	if (rename(w->path, final) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot rename to %s: %s", w->path, final, strerror(errno));
		goto fail;
	}
	renamed = 1;
	if ((err = dg_util_fsync_dir(final)) != DG_OK ||
	    (w->resumable && (err = dg_util_fsync_dir(w->path)) != DG_OK)) {
		dg_log_err("%s: fsync directory: %s", final, dg_strerror(err));
		goto fail;
	}
	DG_FAULT("cache/insert/before-index", {
		err = dg_err_from_errno(errno);
		goto fail;
	});
	if ((err = insert_row(c, w->provider, sha, w->off, &e)) != DG_OK)
		goto fail;
	if ((err = dg_store_commit(c->st)) != DG_OK)
		goto fail;
	victims_unlink(c, &vs);
	victims_clear(&vs);
	if (out)
		*out = e;
	dg_log_debug("%s: cached (%" PRIu64 " bytes)", final, w->off);
	free(final);
	writer_free(w, 0);
	return DG_OK;
fail:
	if (in_tx)
		dg_store_rollback(c->st);
	if (renamed) {
		/* not indexed: take it back so that nothing half-done shows */
		if (w->resumable && rename(final, w->path) == 0) {
			dg_util_fsync_dir(w->path);
		} else {
			unlink(final);
		}
		dg_util_fsync_dir(final);
	}
	victims_clear(&vs);
	free(final);
	writer_free(w, remove_file);
	return err;
}

dg_err
dg_cache_partial_remove(dg_cache *c, const unsigned char sha256[DG_CACHE_SHA256_LEN])
{
	char hex[2 * DG_CACHE_SHA256_LEN + 1], *p = NULL;
	int fd;
	dg_err err = DG_OK;

	hexof(sha256, hex);
	if (asprintf(&p, "%s/%s/%s", c->root, PARTIAL_DIR, hex) < 0)
		return DG_ERR_NOMEM;
	if ((fd = open(p, O_RDWR | O_CLOEXEC)) < 0) {
		if (errno != ENOENT)
			err = dg_err_from_errno(errno);
		goto done;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = DG_ERR_CACHE_LOCKED;
	} else if (unlink(p) < 0) {
		err = dg_err_from_errno(errno);
	} else {
		dg_util_fsync_dir(p);
	}
	close(fd);
done:
	if (err != DG_OK)
		dg_log_err("%s: cannot remove: %s", p, dg_strerror(err));
	free(p);
	return err;
}

dg_err
dg_cache_insert_file(dg_cache *c, const char *provider, const char *path,
    const unsigned char *expected_sha256, dg_cache_entry *out)
{
	dg_cache_writer *w = NULL;
	unsigned char *buf = NULL;
	struct stat sb;
	int fd = -1;
	dg_err err;

	if ((err = dg_cache_provider_check(provider)) != DG_OK) {
		dg_log_err("invalid provider name '%s'", provider ? provider : "(null)");
		return err;
	}
	/* known content already cached: no copy at all */
	if (expected_sha256 && dg_cache_lookup(c, provider, expected_sha256, out) == DG_OK)
		return DG_OK;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		dg_log_err("%s: not a regular file", path);
		err = DG_ERR_INVAL;
		goto fail;
	}
	if (!(buf = malloc(HASH_BUF))) {
		err = DG_ERR_NOMEM;
		goto fail;
	}
	if (!(w = dg_cache_writer_new(c, provider, expected_sha256, (uint64_t)sb.st_size, &err)))
		goto fail;
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = dg_err_from_errno(errno);
			dg_log_err("%s: read: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if ((err = dg_cache_writer_write(w, buf, (size_t)n)) != DG_OK)
			goto fail;
	}
	err = dg_cache_writer_commit(w, out);
	w = NULL;
	if (err != DG_OK)
		goto fail;
	close(fd);
	free(buf);
	return DG_OK;
fail:
	dg_cache_writer_abort(w);
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

/* -------------------------------------------------------------- lookup */

/* The entry is indexed and its file is there (else it is dropped). */
static dg_err
find(dg_cache *c, const char *provider, const unsigned char *sha, dg_cache_entry *e)
{
	struct stat sb;
	char *p;
	dg_err err;

	if ((err = get_entry(c, provider, sha, e)) != DG_OK)
		return err;
	if (!(p = entry_path(c->root, provider, sha)))
		return DG_ERR_NOMEM;
	if (lstat(p, &sb) < 0 && errno == ENOENT) {
		dg_log_warn("%s: indexed but missing: dropped", p);
		delete_row(c, provider, sha);
		free(p);
		return DG_ERR_CACHE_MISS;
	}
	free(p);
	return DG_OK;
}

dg_err
dg_cache_lookup(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], dg_cache_entry *out)
{
	dg_cache_entry e;
	dg_err err;

	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = find(c, provider, sha256, &e)) != DG_OK)
		return err;
	touch(c, provider, sha256, &e);
	if (out)
		*out = e;
	return DG_OK;
}

dg_err
dg_cache_lookup_any(dg_cache *c, const unsigned char sha256[DG_CACHE_SHA256_LEN],
    dg_cache_entry *out)
{
	char prov[DG_CACHE_PROVIDER_MAX + 1];
	sqlite3_stmt *s;
	dg_err err;
	int rc;

	/* a vanished file drops its row: try the next provider then */
	for (;;) {
		if (!(s = prep(c, "SELECT provider FROM entries WHERE sha256 = ?"
		    " ORDER BY last_used DESC LIMIT 1")))
			return DG_ERR_DB;
		sqlite3_bind_blob(s, 1, sha256, DG_CACHE_SHA256_LEN, SQLITE_STATIC);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			snprintf(prov, sizeof(prov), "%s", (const char *)sqlite3_column_text(s, 0));
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			return DG_ERR_CACHE_MISS;
		if (rc != SQLITE_ROW)
			return dg_store_error(c->st, rc, "look up digest");
		err = dg_cache_lookup(c, prov, sha256, out);
		if (err != DG_ERR_CACHE_MISS)
			return err;
	}
}

/* Open an entry's file read-only and check it against the index (and, if
 * asked, its digest). A damaged file is quarantined and dropped. */
static dg_err
open_checked(dg_cache *c, const char *provider, const unsigned char *sha,
    dg_cache_entry *e, int *fdp)
{
	unsigned char h[DG_CACHE_SHA256_LEN];
	struct stat sb;
	uint64_t got;
	char *p;
	int fd = -1;
	dg_err err;

	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = find(c, provider, sha, e)) != DG_OK)
		return err;
	if (!(p = entry_path(c->root, provider, sha)))
		return DG_ERR_NOMEM;
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot open: %s", p, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e->size)
		goto damaged;
	if (c->flags & DG_CACHE_VERIFY_ON_READ) {
		if ((err = hash_fd(fd, p, h, &got, NULL)) != DG_OK)
			goto fail;
		if (memcmp(h, sha, sizeof(h)) != 0 || got != e->size)
			goto damaged;
		if (lseek(fd, 0, SEEK_SET) < 0) {
			err = dg_err_from_errno(errno);
			goto fail;
		}
	}
	touch(c, provider, sha, e);
	*fdp = fd;
	free(p);
	return DG_OK;
damaged:
	quarantine(c, p, provider, "size or hash does not match");
	delete_row(c, provider, sha);
	err = DG_ERR_CACHE_CORRUPT;
fail:
	if (fd >= 0)
		close(fd);
	free(p);
	return err;
}

dg_err
dg_cache_open_fd(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], int *fd)
{
	dg_cache_entry e;

	return open_checked(c, provider, sha256, &e, fd);
}

static const unsigned char empty_map[1];

dg_err
dg_cache_map(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const void **data, size_t *len)
{
	dg_cache_entry e;
	void *m;
	int fd;
	dg_err err;

	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = get_entry(c, provider, sha256, &e)) != DG_OK)
		return err;
	if (e.pins == 0)
		return DG_ERR_CACHE_NOT_PINNED;
	if ((err = open_checked(c, provider, sha256, &e, &fd)) != DG_OK)
		return err;
	if (e.size > SIZE_MAX) {
		close(fd);
		return DG_ERR_TOOBIG;
	}
	if (e.size == 0) {
		close(fd);
		*data = empty_map;
		*len = 0;
		return DG_OK;
	}
	m = mmap(NULL, (size_t)e.size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s/%s: mmap: %s", c->root, provider, strerror(errno));
		close(fd);
		return err;
	}
	close(fd);
	*data = m;
	*len = (size_t)e.size;
	return DG_OK;
}

void
dg_cache_unmap(const void *data, size_t len)
{
	if (data && len > 0 && data != empty_map)
		munmap((void *)data, len);
}

/* ---------------------------------------------------------------- pins */

dg_err
dg_cache_pin(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder)
{
	dg_cache_entry e;
	sqlite3_stmt *s;
	dg_err err;

	if (!holder || !*holder)
		return DG_ERR_INVAL;
	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = find(c, provider, sha256, &e)) != DG_OK)
		return err;
	if (!(s = prep(c, "INSERT INTO pins (provider, sha256, holder, count)"
	    " VALUES (?, ?, ?, 1) ON CONFLICT (provider, sha256, holder)"
	    " DO UPDATE SET count = count + 1")))
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha256);
	sqlite3_bind_text(s, 3, holder, -1, SQLITE_STATIC);
	return step_done(c, s, "pin");
}

static dg_err
unpin_tx(dg_cache *c, const char *provider, const unsigned char *sha, const char *holder)
{
	sqlite3_stmt *s;
	int64_t count;
	int rc;
	dg_err err;

	if (!(s = prep(c, "SELECT count FROM pins WHERE provider = ? AND sha256 = ? AND holder = ?")))
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha);
	sqlite3_bind_text(s, 3, holder, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	count = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return DG_ERR_CACHE_NOT_PINNED;
	if (rc != SQLITE_ROW)
		return dg_store_error(c->st, rc, "read pin");
	s = prep(c, count > 1 ?
	    "UPDATE pins SET count = count - 1 WHERE provider = ? AND sha256 = ? AND holder = ?" :
	    "DELETE FROM pins WHERE provider = ? AND sha256 = ? AND holder = ?");
	if (!s)
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha);
	sqlite3_bind_text(s, 3, holder, -1, SQLITE_STATIC);
	err = step_done(c, s, "unpin");
	return err;
}

dg_err
dg_cache_unpin(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder)
{
	dg_err err;

	if (!holder || !*holder)
		return DG_ERR_INVAL;
	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = dg_store_begin(c->st)) != DG_OK)
		return err;
	if ((err = unpin_tx(c, provider, sha256, holder)) != DG_OK) {
		dg_store_rollback(c->st);
		return err;
	}
	if ((err = dg_store_commit(c->st)) != DG_OK)
		dg_store_rollback(c->st);
	return err;
}

dg_err
dg_cache_unpin_holder(dg_cache *c, const char *prefix, uint64_t *n)
{
	sqlite3_stmt *s;
	dg_err err;

	if (!prefix)
		return DG_ERR_INVAL;
	if (!(s = prep(c, "DELETE FROM pins WHERE substr(holder, 1, length(?1)) = ?1")))
		return DG_ERR_DB;
	sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	if ((err = step_done(c, s, "unpin holder")) == DG_OK && n)
		*n = (uint64_t)sqlite3_changes(dg_store_db(c->st));
	return err;
}

dg_err
dg_cache_pins(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN], const char *holder, uint64_t *count)
{
	sqlite3_stmt *s;
	int rc;

	if (dg_cache_provider_check(provider) != DG_OK)
		return DG_ERR_CACHE_PROVIDER;
	s = prep(c, holder ?
	    "SELECT coalesce(sum(count), 0) FROM pins WHERE provider = ? AND sha256 = ? AND holder = ?" :
	    "SELECT coalesce(sum(count), 0) FROM pins WHERE provider = ? AND sha256 = ?");
	if (!s)
		return DG_ERR_DB;
	bind_key(s, 1, provider, sha256);
	if (holder)
		sqlite3_bind_text(s, 3, holder, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*count = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? DG_OK : dg_store_error(c->st, rc, "count pins");
}

/* --------------------------------------------------------- maintenance */

dg_err
dg_cache_remove(dg_cache *c, const char *provider,
    const unsigned char sha256[DG_CACHE_SHA256_LEN])
{
	struct victims vs;
	dg_cache_entry e;
	dg_err err;

	memset(&vs, 0, sizeof(vs));
	if ((err = dg_cache_provider_check(provider)) != DG_OK)
		return err;
	if ((err = dg_store_begin(c->st)) != DG_OK)
		return err;
	if ((err = get_entry(c, provider, sha256, &e)) != DG_OK)
		goto fail;
	if (e.pins > 0) {
		err = DG_ERR_BUSY;
		goto fail;
	}
	if ((err = victims_add(&vs, provider, sha256)) != DG_OK ||
	    (err = delete_row(c, provider, sha256)) != DG_OK ||
	    (err = dg_store_commit(c->st)) != DG_OK)
		goto fail;
	victims_unlink(c, &vs);
	victims_clear(&vs);
	return DG_OK;
fail:
	dg_store_rollback(c->st);
	victims_clear(&vs);
	return err;
}

dg_err
dg_cache_gc(dg_cache *c, dg_cache_report *report)
{
	dg_cache_report local;
	struct victims vs;
	dg_err err, room;

	if (!report)
		report = &local;
	memset(report, 0, sizeof(*report));
	memset(&vs, 0, sizeof(vs));
	if ((err = dg_store_begin(c->st)) != DG_OK)
		return err;
	room = make_room(c, 0, 1, NULL, NULL, &vs, &report->evicted);
	if (room != DG_OK && room != DG_ERR_CACHE_FULL) {
		dg_store_rollback(c->st);
		victims_clear(&vs);
		return room;
	}
	if ((err = dg_store_commit(c->st)) != DG_OK) {
		dg_store_rollback(c->st);
		victims_clear(&vs);
		return err;
	}
	victims_unlink(c, &vs);
	victims_clear(&vs);
	if (room != DG_OK)
		dg_log_err("%s: pinned entries alone exceed the quota of %" PRIu64,
		    c->root, c->quota);
	return room;
}

dg_err
dg_cache_verify(dg_cache *c, dg_cache_report *report)
{
	dg_cache_report local;
	struct victims all;
	sqlite3_stmt *s;
	dg_err err = DG_OK;
	size_t i;
	int rc;

	if (!report)
		report = &local;
	memset(report, 0, sizeof(*report));
	memset(&all, 0, sizeof(all));
	if (!(s = prep(c, "SELECT provider, sha256 FROM entries")))
		return DG_ERR_DB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const void *sha = sqlite3_column_blob(s, 1);

		if (sha && sqlite3_column_bytes(s, 1) == DG_CACHE_SHA256_LEN &&
		    (err = victims_add(&all, (const char *)sqlite3_column_text(s, 0), sha)) != DG_OK)
			break;
	}
	sqlite3_reset(s);
	if (err == DG_OK && rc != SQLITE_DONE)
		err = dg_store_error(c->st, rc, "scan index");
	for (i = 0; err == DG_OK && i < all.n; i++) {
		unsigned char h[DG_CACHE_SHA256_LEN];
		dg_cache_entry e;
		uint64_t size;
		char *p;
		dg_err herr;

		if (get_entry(c, all.v[i].provider, all.v[i].sha, &e) != DG_OK)
			continue;
		if (!(p = entry_path(c->root, all.v[i].provider, all.v[i].sha))) {
			err = DG_ERR_NOMEM;
			break;
		}
		report->checked++;
		herr = dg_cache_hash_file(p, h, &size);
		if (herr == DG_ERR_NOENT) {
			dg_log_warn("%s: indexed but missing: dropped", p);
			err = delete_row(c, all.v[i].provider, all.v[i].sha);
			report->dropped++;
		} else if (herr != DG_OK) {
			err = herr;
		} else if (memcmp(h, all.v[i].sha, sizeof(h)) != 0 || size != e.size) {
			quarantine(c, p, all.v[i].provider, "size or hash does not match");
			err = delete_row(c, all.v[i].provider, all.v[i].sha);
			report->quarantined++;
		}
		free(p);
	}
	victims_clear(&all);
	if (err == DG_OK && (report->dropped || report->quarantined))
		err = DG_ERR_CACHE_CORRUPT;
	return err;
}

static dg_err
adopt_provider_dir(dg_cache *c, const char *dir, const char *provider, dg_cache_report *r)
{
	DIR *d;
	struct dirent *de;
	dg_err err = DG_OK, bad = DG_OK;

	if (!(d = opendir(dir))) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot read: %s", dir, strerror(errno));
		return err;
	}
	while ((de = readdir(d))) {
		unsigned char named[DG_CACHE_SHA256_LEN], h[DG_CACHE_SHA256_LEN];
		struct stat sb;
		uint64_t size;
		char *p = NULL;

		if (dg_cache_name_decode(de->d_name, named) != DG_OK) {
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				dg_log_info("%s/%s: not a cache file name: skipped", dir, de->d_name);
				r->skipped++;
			}
			continue;
		}
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			err = DG_ERR_NOMEM;
			break;
		}
		if (stat(p, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			r->skipped++;
			free(p);
			continue;
		}
		r->checked++;
		if ((err = dg_cache_hash_file(p, h, &size)) != DG_OK) {
			free(p);
			break;
		}
		if (memcmp(h, named, sizeof(h)) != 0) {
			dg_log_err("%s: content does not match its name: not imported", p);
			r->quarantined++;
			bad = DG_ERR_CACHE_HASH;
			free(p);
			continue;
		}
		err = dg_cache_insert_file(c, provider, p, named, NULL);
		free(p);
		if (err != DG_OK)
			break;
		r->adopted++;
	}
	closedir(d);
	return err != DG_OK ? err : bad;
}

dg_err
dg_cache_adopt(dg_cache *c, const char *dir, const char *provider, dg_cache_report *report)
{
	dg_cache_report local;
	DIR *d;
	struct dirent *de;
	dg_err err = DG_OK, bad = DG_OK;

	if (!report)
		report = &local;
	memset(report, 0, sizeof(*report));
	if (provider) {
		if ((err = dg_cache_provider_check(provider)) != DG_OK)
			return err;
		return adopt_provider_dir(c, dir, provider, report);
	}
	if (!(d = opendir(dir))) {
		err = dg_err_from_errno(errno);
		dg_log_err("%s: cannot read: %s", dir, strerror(errno));
		return err;
	}
	while ((de = readdir(d))) {
		struct stat sb;
		char *p = NULL;

		if (de->d_name[0] == '.')
			continue;
		if (dg_cache_provider_check(de->d_name) != DG_OK ||
		    asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			report->skipped++;
			continue;
		}
		if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			report->skipped++;
			free(p);
			continue;
		}
		err = adopt_provider_dir(c, p, de->d_name, report);
		free(p);
		if (err == DG_ERR_CACHE_HASH) {
			bad = err;
			err = DG_OK;
		}
		if (err != DG_OK)
			break;
	}
	closedir(d);
	return err != DG_OK ? err : bad;
}

dg_err
dg_cache_foreach(dg_cache *c, int (*fn)(const dg_cache_entry *e, void *arg), void *arg)
{
	sqlite3_stmt *s;
	dg_cache_entry e;
	int rc;

	if (!(s = prep(c, "SELECT " ENTRY_COLS " FROM entries ORDER BY last_used")))
		return DG_ERR_DB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row_entry(s, &e);
		if (fn(&e, arg))
			break;
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? DG_OK :
	    dg_store_error(c->st, rc, "list entries");
}
