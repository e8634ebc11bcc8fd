/* dg_outbox - durable, ordered, rate-capped publishing of reports upstream. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dg_fault.h"
#include "dg_json.h"
#include "dg_log.h"
#include "dg_outbox.h"
#include "dg_util.h"

const char dg_outbox_migration_sql[] =
	"CREATE TABLE outbox ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" key TEXT NOT NULL,"
	" topic TEXT NOT NULL,"
	" payload TEXT NOT NULL,"
	" coalescable INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX outbox_key ON outbox(key, seq);";

/* A report handed to MQTT, waiting for its PUBACK. */
struct flight {
	dg_outbox *ob;
	int64_t seq;
	char *key;
	struct flight *next;
};

struct dg_outbox {
	struct event_base *base;
	dg_store *store;
	dg_mqtt *mqtt;
	struct event *timer;
	double rate, tokens;
	uint64_t last_refill;
	struct flight *flights;   /* in flight, one per key at most */
	int64_t sent, failed;
	/* rows not yet durable (the store's open batch): never published.
	 * Rows from batch_first on were inserted in it; dirty[] were
	 * coalesced (their payload changed) in it. Cleared at its commit. */
	int64_t batch_first;
	int64_t *dirty;
	size_t ndirty, dirty_cap;
};

static int
key_in_flight(dg_outbox *ob, const char *key)
{
	struct flight *f;

	for (f = ob->flights; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			return 1;
	return 0;
}

static int
seq_in_flight(dg_outbox *ob, int64_t seq)
{
	struct flight *f;

	for (f = ob->flights; f; f = f->next)
		if (f->seq == seq)
			return 1;
	return 0;
}

static void
drop_flight(dg_outbox *ob, struct flight *gone)
{
	struct flight **pp;

	for (pp = &ob->flights; *pp; pp = &(*pp)->next) {
		if (*pp == gone) {
			*pp = gone->next;
			break;
		}
	}
	free(gone->key);
	free(gone);
}

static void
arm(dg_outbox *ob, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!evtimer_pending(ob->timer, NULL))
		evtimer_add(ob->timer, &tv);
}

static void
on_puback(dg_mqtt *m, void *cookie, dg_err result)
{
	struct flight *f = cookie;
	dg_outbox *ob = f->ob;

	DG_FAULT("outbox/after-puback", result = DG_ERR_IO);
	if (result == DG_OK) {
		sqlite3_stmt *s = dg_store_prepare(ob->store, "DELETE FROM outbox WHERE seq = ?");

		if (s) {
			sqlite3_bind_int64(s, 1, f->seq);
			if (sqlite3_step(s) != SQLITE_DONE)
				dg_store_error(ob->store, sqlite3_errcode(dg_store_db(ob->store)), "outbox delete");
			sqlite3_reset(s);
		}
		ob->sent++;
	} else {
		/* stays in the table; sent again after the reconnect */
		ob->failed++;
	}
	drop_flight(ob, f);
	arm(ob, result == DG_OK ? 0 : 500);
}

static int
seq_uncommitted(dg_outbox *ob, int64_t seq)
{
	size_t i;

	if (!dg_store_pending(ob->store))
		return 0;
	if (ob->batch_first && seq >= ob->batch_first)
		return 1;
	for (i = 0; i < ob->ndirty; i++)
		if (ob->dirty[i] == seq)
			return 1;
	return 0;
}

/* payload with "clientToken":"dg-<created>-<seq>" (the row's own, unique
 * in this database and across a database made anew later); NULL when the
 * payload is not a JSON object (sent as it is) or on ENOMEM. */
static char *
with_token(const char *payload, int64_t created, int64_t seq)
{
	json_t *v = json_loads(payload, 0, NULL);
	char tok[64], *out = NULL;

	if (!v)
		return NULL;
	if (json_is_object(v)) {
		snprintf(tok, sizeof(tok), "dg-%" PRId64 "-%" PRId64, created, seq);
		if (json_object_set_new(v, "clientToken", json_string(tok)) == 0)
			out = dg_json_dumps(v);
	}
	json_decref(v);
	return out;
}

/* The store committed: what was queued is durable, publish it. */
static void
on_commit(void *arg)
{
	dg_outbox *ob = arg;

	ob->batch_first = 0;
	ob->ndirty = 0;
	arm(ob, 0);
}

/* Send the oldest waiting report of every key that has none in flight,
 * as far as the token bucket allows. */
static void
pump(dg_outbox *ob)
{
	sqlite3_stmt *s;
	uint64_t now = dg_util_now_ms();
	int starved = 0;

	ob->tokens += (double)(now - ob->last_refill) * ob->rate / 1000.0;
	if (ob->tokens > ob->rate)
		ob->tokens = ob->rate;
	ob->last_refill = now;
	if (!dg_mqtt_is_connected(ob->mqtt))
		return;
	/* the oldest report of each key, oldest keys first */
	s = dg_store_prepare(ob->store,
	    "SELECT o.seq, o.key, o.topic, o.payload, o.created FROM outbox o"
	    " JOIN (SELECT key, min(seq) AS seq FROM outbox GROUP BY key) h ON o.seq = h.seq"
	    " ORDER BY o.seq LIMIT 512");
	if (!s)
		return;
	while (sqlite3_step(s) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(s, 0);
		const char *key = (const char *)sqlite3_column_text(s, 1);
		const char *topic = (const char *)sqlite3_column_text(s, 2);
		const char *payload = (const char *)sqlite3_column_text(s, 3);
		int64_t created = sqlite3_column_int64(s, 4);
		struct flight *f;
		char *tokened;
		dg_err err;

		/* a report leaves only once it is on disk (the commit hook
		 * pumps again) */
		if (key_in_flight(ob, key) || seq_in_flight(ob, seq) || seq_uncommitted(ob, seq))
			continue;
		if (ob->tokens < 1.0) {
			starved = 1;
			break;
		}
		if (!(f = calloc(1, sizeof(*f))) || !(f->key = strdup(key))) {
			free(f);
			break;
		}
		f->ob = ob;
		f->seq = seq;
		DG_FAULT("outbox/before-publish", {
			/* as a refused publish: stays queued, tried again */
			free(f->key);
			free(f);
			arm(ob, 500);
			break;
		});
		/* the same clientToken every time this row is sent: a repeat
		 * after a crash between the PUBACK and the row's delete is
		 * recognised as such upstream (applied once) */
		tokened = with_token(payload, created, seq);
		err = dg_mqtt_publish(ob->mqtt, topic, tokened ? tokened : payload,
		    strlen(tokened ? tokened : payload), 1, 0, on_puback, f);
		free(tokened);
		if (err != DG_OK) {
			free(f->key);
			free(f);
			if (err == DG_ERR_MQTT_TOPIC) {
				/* can never be sent: drop it rather than block the key */
				dg_log_err("outbox: dropping report %lld for %s: invalid topic",
				    (long long)seq, key);
			}
			break;
		}
		f->next = ob->flights;
		ob->flights = f;
		ob->tokens -= 1.0;
	}
	sqlite3_reset(s);
	if (starved)
		arm(ob, (int)(1000.0 / ob->rate) + 1);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

dg_outbox *
dg_outbox_new(struct event_base *base, dg_store *store, dg_mqtt *mqtt, double rate, dg_err *err)
{
	dg_outbox *ob;

	if (rate <= 0) {
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(ob = calloc(1, sizeof(*ob))) || !(ob->timer = evtimer_new(base, on_timer, ob))) {
		free(ob);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	ob->base = base;
	ob->store = store;
	ob->mqtt = mqtt;
	ob->rate = rate;
	ob->tokens = rate;
	ob->last_refill = dg_util_now_ms();
	if ((*err = dg_store_on_commit(store, on_commit, ob)) != DG_OK) {
		event_free(ob->timer);
		free(ob);
		return NULL;
	}
	return ob;
}

void
dg_outbox_free(dg_outbox *ob)
{
	if (!ob)
		return;
	dg_store_on_commit_remove(ob->store, on_commit, ob);
	free(ob->dirty);
	/* in-flight reports stay in the table: sent again next time */
	while (ob->flights) {
		struct flight *f = ob->flights;

		ob->flights = f->next;
		free(f->key);
		free(f);
	}
	event_free(ob->timer);
	free(ob);
}

/* seq's payload changed in the open batch. If it cannot be remembered,
 * commit now: the row is then durable and may leave as it is. */
static dg_err
mark_dirty(dg_outbox *ob, int64_t seq)
{
	if (dg_store_pending(ob->store)) {
		if (ob->ndirty == ob->dirty_cap) {
			size_t cap = ob->dirty_cap ? ob->dirty_cap * 2 : 16;
			int64_t *n = realloc(ob->dirty, cap * sizeof(*n));

			if (!n)
				return dg_store_sync(ob->store);
			ob->dirty = n;
			ob->dirty_cap = cap;
		}
		ob->dirty[ob->ndirty++] = seq;
	}
	arm(ob, 0);
	return DG_OK;
}

dg_err
dg_outbox_put(dg_outbox *ob, const char *key, const char *topic, const char *payload, int coalesce)
{
	sqlite3_stmt *s;
	int rc;

	if (coalesce) {
		/* replace the waiting (not in-flight) report of the same kind */
		struct flight *f;

		s = dg_store_prepare(ob->store,
		    "SELECT seq FROM outbox WHERE key = ? AND coalescable = 1 ORDER BY seq DESC LIMIT 1");
		if (!s)
			return DG_ERR_DB;
		sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW) {
			int64_t seq = sqlite3_column_int64(s, 0);
			int busy = 0;

			sqlite3_reset(s);
			for (f = ob->flights; f; f = f->next)
				busy |= f->seq == seq;
			/* only the newest report of the key may be replaced, else
			 * the order of reports would change */
			if (!busy) {
				s = dg_store_prepare(ob->store,
				    "UPDATE outbox SET payload = ?, topic = ? WHERE seq = ?"
				    " AND seq = (SELECT max(seq) FROM outbox WHERE key = ?)");
				if (!s)
					return DG_ERR_DB;
				sqlite3_bind_text(s, 1, payload, -1, SQLITE_STATIC);
				sqlite3_bind_text(s, 2, topic, -1, SQLITE_STATIC);
				sqlite3_bind_int64(s, 3, seq);
				sqlite3_bind_text(s, 4, key, -1, SQLITE_STATIC);
				rc = sqlite3_step(s);
				sqlite3_reset(s);
				if (rc != SQLITE_DONE)
					return dg_store_error(ob->store, rc, "outbox coalesce");
				if (sqlite3_changes(dg_store_db(ob->store)) == 1)
					return mark_dirty(ob, seq);
			}
		} else {
			sqlite3_reset(s);
		}
	}
	s = dg_store_prepare(ob->store,
	    "INSERT INTO outbox (key, topic, payload, coalescable, created) VALUES (?, ?, ?, ?, ?)");
	if (!s)
		return DG_ERR_DB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, payload, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, coalesce ? 1 : 0);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)(dg_util_wall_ms() / 1000));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return dg_store_error(ob->store, rc, "outbox insert");
	if (dg_store_pending(ob->store) && !ob->batch_first)
		ob->batch_first = sqlite3_last_insert_rowid(dg_store_db(ob->store));
	arm(ob, 0);
	return DG_OK;
}

void
dg_outbox_set_rate(dg_outbox *ob, double rate)
{
	if (rate > 0)
		ob->rate = rate;
}

void
dg_outbox_kick(dg_outbox *ob)
{
	arm(ob, 0);
}

int64_t
dg_outbox_pending(dg_outbox *ob)
{
	sqlite3_stmt *s = dg_store_prepare(ob->store, "SELECT count(*) FROM outbox");
	int64_t n = -1;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	if (s)
		sqlite3_reset(s);
	return n;
}
