/* deltagate deploy - stage an image (and its deltas) in storage, publish
 * the desired state device by device in waves, stop by itself when too
 * many fail; --cancel and --resume. State: dg_rollout (SQLite). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "dg_cli.h"
#include "dg_command.h"
#include "dg_delta.h"
#include "dg_json.h"
#include "dg_jws.h"
#include "dg_log.h"
#include "dg_manifest.h"
#include "dg_mqtt.h"
#include "dg_rollout.h"
#include "dg_s3.h"
#include "dg_sigv4.h"
#include "dg_topic.h"
#include "dg_util.h"

#define EXIT_STOPPED 3
#define MAX_WAVES 16
#define MAX_FROM 16
#define MAX_GATEWAYS 64

enum dstate { D_PENDING, D_GETTING, D_PUBLISHED, D_SUCCEEDED, D_FAILED, D_CANCELED };
static const char *dstate_names[] = { "pending", "getting", "published", "succeeded", "failed", "canceled" };

struct dev {
	char *id;
	int wave;
	enum dstate st;
	int rc;
	int64_t ext;
};

struct run {
	dg_store *st;
	dg_topic *topic;
	dg_mqtt *mqtt;
	struct event_base *base;
	struct event *tick;
	const char *job;
	json_t *command;        /* unsigned desired state */
	dg_jws_key *key;        /* NULL: unsigned */
	int64_t expires;
	int nwaves, waves[MAX_WAVES];
	double abort_rate;
	int64_t wave_timeout;
	int wave;               /* current wave (0-based) */
	int64_t wave_started;
	struct dev *devs;
	size_t ndevs;
	int cancel;             /* --cancel mode */
	int tty, json, exit_status, finished;
	size_t pending_ops;     /* cancel: answers awaited */
	uint64_t n_get, n_update; /* requests published (bench/deploy) */
	int64_t drain_until;      /* finished: wait for PUBACKs until then */
};

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/* ------------------------------------------------------------ state */

static void
dev_save(struct run *r, struct dev *d, const char *prev_json)
{
	sqlite3_stmt *s = dg_store_prepare(r->st, prev_json ?
	    "UPDATE rdevice SET state = ?, result_code = ?, ext_code = ?, updated = ?, prev = ? WHERE job_id = ? AND device = ?" :
	    "UPDATE rdevice SET state = ?, result_code = ?, ext_code = ?, updated = ?, prev = prev WHERE job_id = ? AND device = ?");
	int i = 1;

	if (!s)
		return;
	sqlite3_bind_text(s, i++, dstate_names[d->st == D_GETTING ? D_PENDING : d->st], -1, SQLITE_STATIC);
	sqlite3_bind_int(s, i++, d->rc);
	sqlite3_bind_int64(s, i++, d->ext);
	sqlite3_bind_int64(s, i++, now_s());
	if (prev_json)
		sqlite3_bind_text(s, i++, prev_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, i++, r->job, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, i++, d->id, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		dg_log_err("%s: cannot record the state of %s", r->job, d->id);
	sqlite3_reset(s);
}

static void
rollout_save(struct run *r, const char *status)
{
	sqlite3_stmt *s = dg_store_prepare(r->st,
	    "UPDATE rollout SET wave = ?, wave_started = ?, status = ?, updated = ? WHERE job_id = ?");

	if (!s)
		return;
	sqlite3_bind_int(s, 1, r->wave);
	sqlite3_bind_int64(s, 2, r->wave_started);
	sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now_s());
	sqlite3_bind_text(s, 5, r->job, -1, SQLITE_STATIC);
	sqlite3_step(s);
	sqlite3_reset(s);
}

static struct dev *
find_dev(struct run *r, const char *id)
{
	size_t i;

	for (i = 0; i < r->ndevs; i++)
		if (strcmp(r->devs[i].id, id) == 0)
			return &r->devs[i];
	return NULL;
}

/* ------------------------------------------------------------ output */

static void
counts(struct run *r, size_t *started, size_t *ok, size_t *failed, size_t *canceled)
{
	size_t i;

	*started = *ok = *failed = *canceled = 0;
	for (i = 0; i < r->ndevs; i++) {
		enum dstate s = r->devs[i].st;

		*started += s == D_PUBLISHED || s == D_SUCCEEDED || s == D_FAILED;
		*ok += s == D_SUCCEEDED;
		*failed += s == D_FAILED;
		*canceled += s == D_CANCELED;
	}
}

static void
progress(struct run *r, const char *event)
{
	size_t started, ok, failed, canceled;

	if (r->json)
		return;
	counts(r, &started, &ok, &failed, &canceled);
	if (r->tty)
		fprintf(stderr, "\r\033[K%s: wave %d/%d, %zu of %zu devices started, %zu succeeded, %zu failed%s%s",
		    r->job, r->wave + 1, r->nwaves, started, r->ndevs, ok, failed, event ? " - " : "",
		    event ? event : "");
	else if (event)
		fprintf(stderr, "%s: %s (wave %d/%d: %zu started, %zu succeeded, %zu failed)\n", r->job,
		    event, r->wave + 1, r->nwaves, started, ok, failed);
}

/* ------------------------------------------------------------ MQTT */

static void
publish_json(struct run *r, const char *id, const char *leaf, json_t *msg)
{
	char topic[512], *text = dg_json_dumps(msg);
	dg_err e;

	if (text && dg_topic_build(r->topic, id, leaf, topic, sizeof(topic)) == DG_OK &&
	    (e = dg_mqtt_publish(r->mqtt, topic, text, strlen(text), 1, 0, NULL, NULL)) != DG_OK)
		dg_log_err("%s: %s: publish failed: %s", r->job, id, dg_strerror(e));
	free(text);
}

static void
send_get(struct run *r, struct dev *d)
{
	char tok[300];
	json_t *m;

	snprintf(tok, sizeof(tok), "deploy:%s:%s", r->job, d->id);
	m = json_pack("{s:s}", "clientToken", tok);
	r->n_get++;
	publish_json(r, d->id, "get", m);
	json_decref(m);
}

/* The desired state to publish to d: the command, signed for d. */
static void
send_command(struct run *r, struct dev *d)
{
	json_t *desired = json_deep_copy(r->command), *m;
	int64_t seq;
	dg_err e;

	if (!desired)
		return;
	if (r->key) {
		if ((e = dg_rollout_next_seq(r->st, &seq)) != DG_OK ||
		    (e = dg_command_sign(desired, r->key, d->id, seq, r->expires)) != DG_OK) {
			dg_log_err("%s: %s: cannot sign: %s", r->job, d->id, dg_strerror(e));
			json_decref(desired);
			return;
		}
	} else {
		json_object_set_new(desired, "signature", json_null());
	}
	d->st = D_PUBLISHED;
	dev_save(r, d, NULL);
	/* durable before it is published: a resume knows it went out */
	dg_store_sync(r->st);
	m = json_pack("{s:{s:o}}", "state", "desired", desired);
	r->n_update++;
	publish_json(r, d->id, "update", m);
	json_decref(m);
}

/* Cancel: put back what d desired before this rollout. */
static void
send_restore(struct run *r, struct dev *d)
{
	sqlite3_stmt *s = dg_store_prepare(r->st, "SELECT prev FROM rdevice WHERE job_id = ? AND device = ?");
	json_t *prev = NULL, *desired = json_object(), *m;
	const char *k;
	json_t *v;
	dg_err e;

	if (s) {
		sqlite3_bind_text(s, 1, r->job, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, d->id, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
			prev = dg_json_parse((const char *)sqlite3_column_text(s, 0),
			    (size_t)sqlite3_column_bytes(s, 0), 1 << 20, 32, &e, NULL, 0);
		sqlite3_reset(s);
	}
	/* every key the command set goes back to its old value, or away */
	json_object_foreach(r->command, k, v) {
		json_t *old = json_object_get(prev, k);

		json_object_set_new(desired, k, old ? json_incref(old) : json_null());
	}
	{
		json_t *old = json_object_get(prev, "signature");

		json_object_set_new(desired, "signature", old ? json_incref(old) : json_null());
	}
	m = json_pack("{s:{s:o}}", "state", "desired", desired);
	publish_json(r, d->id, "update", m);
	json_decref(m);
	json_decref(prev);
	d->st = D_CANCELED;
	dev_save(r, d, NULL);
}

static void evaluate(struct run *r);

static void
start_wave(struct run *r)
{
	size_t i, n = 0;
	char ev[64];

	r->wave_started = now_s();
	rollout_save(r, "running");
	dg_store_sync(r->st);
	for (i = 0; i < r->ndevs; i++)
		if (r->devs[i].wave == r->wave && r->devs[i].st == D_PENDING) {
			r->devs[i].st = D_GETTING;
			send_get(r, &r->devs[i]);
			n++;
		}
	snprintf(ev, sizeof(ev), "wave %d started: %zu devices", r->wave + 1, n);
	progress(r, ev);
}

static void
finish(struct run *r, int status, const char *rollout_status)
{
	if (r->finished)
		return;
	r->finished = 1;
	r->exit_status = status;
	rollout_save(r, rollout_status);
	dg_store_sync(r->st);
	/* leave once the broker has acknowledged every publish (on_tick) */
	r->drain_until = now_s() + 30;
	if (r->tick) {
		struct timeval tv = { 0, 50000 };

		event_del(r->tick);
		event_add(r->tick, &tv);
	}
}

static void
evaluate(struct run *r)
{
	size_t started, ok, failed, canceled, i, open = 0;
	char ev[128];

	if (r->finished || r->cancel)
		return;
	counts(r, &started, &ok, &failed, &canceled);
	if (ok + failed > 0 && (double)failed / (double)(ok + failed) > r->abort_rate) {
		snprintf(ev, sizeof(ev), "stopped: failure rate %.1f%% above %.1f%%",
		    100.0 * (double)failed / (double)(ok + failed), 100.0 * r->abort_rate);
		progress(r, ev);
		finish(r, EXIT_STOPPED, "stopped");
		return;
	}
	for (i = 0; i < r->ndevs; i++)
		if (r->devs[i].wave <= r->wave &&
		    (r->devs[i].st == D_PENDING || r->devs[i].st == D_GETTING || r->devs[i].st == D_PUBLISHED))
			open++;
	if (open && now_s() - r->wave_started < r->wave_timeout)
		return;
	if (open) {
		snprintf(ev, sizeof(ev), "wave %d timed out with %zu devices unfinished", r->wave + 1, open);
		progress(r, ev);
	}
	if (r->wave + 1 >= r->nwaves) {
		progress(r, "done");
		finish(r, DG_EXIT_OK, "done");
		return;
	}
	r->wave++;
	start_wave(r);
}

/* A shadow document (get/accepted, or update/documents' current) of d. */
static void
on_document(struct run *r, struct dev *d, const json_t *doc, int from_get)
{
	const json_t *state = json_object_get(doc, "state");
	const json_t *desired = json_object_get(state, "desired");
	const json_t *rep = json_object_get(state, "reported");
	const char *rjob = dg_json_get_str(rep, "jobId"), *status = dg_json_get_str(rep, "status");
	char ev[300];

	if (d->st == D_GETTING && from_get) {
		char *prev = desired ? dg_json_dumps(desired) : strdup("null");

		if (r->cancel) {
			d->st = D_PUBLISHED;
		} else {
			dev_save(r, d, prev ? prev : "null");
			send_command(r, d);
			free(prev);
			return; /* the document is from before the command */
		}
		free(prev);
	}
	if (r->cancel && from_get && d->st == D_PUBLISHED) {
		/* not started: the device has not reported on this job */
		if (!rjob || strcmp(rjob, r->job) != 0)
			send_restore(r, d);
		if (r->pending_ops && --r->pending_ops == 0)
			finish(r, DG_EXIT_OK, "canceled");
		return;
	}
	if (d->st != D_PUBLISHED)
		return;
	if (from_get && !r->cancel) {
		/* a resume: make sure the command went out */
		const char *djob = dg_json_get_str(desired, "jobId");

		if (!djob || strcmp(djob, r->job) != 0)
			send_command(r, d);
	}
	if (rjob && strcmp(rjob, r->job) == 0 && status &&
	    (strcmp(status, "SUCCEEDED") == 0 || strcmp(status, "FAILED") == 0)) {
		int64_t rc = 0, ext = 0;

		dg_json_get_i64(rep, "resultCode", &rc);
		dg_json_get_i64(rep, "extendedResultCode", &ext);
		d->st = strcmp(status, "SUCCEEDED") == 0 ? D_SUCCEEDED : D_FAILED;
		d->rc = (int)rc;
		d->ext = ext;
		dev_save(r, d, NULL);
		snprintf(ev, sizeof(ev), "%s %s (resultCode %d, extendedResultCode 0x%08" PRIx64 ")", d->id,
		    d->st == D_SUCCEEDED ? "succeeded" : "failed", d->rc, (uint64_t)d->ext);
		progress(r, ev);
		evaluate(r);
	}
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
    int retained, void *arg)
{
	struct run *r = arg;
	char id[DG_TOPIC_ID_MAX + 1];
	const char *leaf;
	struct dev *d;
	json_t *msg;
	dg_err e;

	(void)m;
	(void)qos;
	(void)retained;
	if (!dg_topic_match(r->topic, topic, id, &leaf) || !(d = find_dev(r, id)))
		return;
	if (!(msg = dg_json_parse(payload, len, 1 << 20, 32, &e, NULL, 0)))
		return;
	if (strncmp(leaf, "get/", 4) == 0) {
		/* only the answers to our own gets (the gateways get too) */
		char tok[300];
		const char *t = dg_json_get_str(msg, "clientToken");

		snprintf(tok, sizeof(tok), "deploy:%s:%s", r->job, d->id);
		if (!t || strcmp(t, tok) != 0) {
			json_decref(msg);
			return;
		}
	}
	if (strcmp(leaf, "get/accepted") == 0) {
		on_document(r, d, msg, 1);
	} else if (strcmp(leaf, "get/rejected") == 0) {
		json_t *empty = json_object();

		on_document(r, d, empty, 1); /* no shadow yet: nothing desired */
		json_decref(empty);
	} else if (strcmp(leaf, "update/documents") == 0) {
		on_document(r, d, json_object_get(msg, "current"), 0);
	}
	json_decref(msg);
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	struct run *r = arg;
	size_t i;

	(void)m;
	if (r->wave_started == 0 || r->cancel) {
		if (r->cancel) {
			for (i = 0; i < r->ndevs; i++) {
				struct dev *d = &r->devs[i];

				if (d->st == D_PENDING) {
					d->st = D_CANCELED;
					dev_save(r, d, NULL);
				} else if (d->st == D_PUBLISHED) {
					d->st = D_GETTING;
					r->pending_ops++;
					send_get(r, d);
				}
			}
			if (!r->pending_ops)
				finish(r, DG_EXIT_OK, "canceled");
			return;
		}
		start_wave(r);
		return;
	}
	/* resume (or a reconnect): ask for what may have been missed */
	for (i = 0; i < r->ndevs; i++) {
		struct dev *d = &r->devs[i];

		if (d->st == D_PUBLISHED)
			send_get(r, d);
		else if (d->st == D_GETTING || (d->st == D_PENDING && d->wave <= r->wave)) {
			d->st = D_GETTING;
			send_get(r, d);
		}
	}
	evaluate(r);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	if (r->finished) {
		if (dg_mqtt_inflight(r->mqtt) == 0 || now_s() > r->drain_until)
			event_base_loopbreak(r->base);
		return;
	}
	evaluate(r);
}

/* ------------------------------------------------------------ staging */

static dg_err
file_sha(const char *path, char hex[65], uint64_t *size)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char *data = NULL;
	size_t len = 0;
	dg_err e;

	if ((e = dg_util_read_file(path, (size_t)1 << 31, &data, &len)) != DG_OK)
		return e;
	e = EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ? DG_OK : DG_ERR_CRYPTO;
	free(data);
	dg_util_hex_encode(md, 32, hex);
	*size = len;
	return e;
}

/* Copy src to DIR/name unless it is there already (content-hash names:
 * same name, same bytes). *copied: bytes written. */
static dg_err
stage_file(const char *dir, const char *name, const char *src, uint64_t *copied)
{
	char dst[4096], *data = NULL;
	size_t len = 0;
	struct stat sb;
	dg_err e;

	*copied = 0;
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	if (stat(dst, &sb) == 0)
		return DG_OK;
	if ((e = dg_util_read_file(src, (size_t)1 << 31, &data, &len)) != DG_OK)
		return e;
	e = dg_util_write_atomic(dst, data, len, 0644);
	free(data);
	if (e == DG_OK)
		*copied = len;
	return e;
}

/* Where staged objects go and how their links are made. */
struct stagectx {
	const char *dir;          /* file:// directory (s3: local work dir) */
	const char *base_url;     /* file://: the nginx location serving dir */
	const char *secret;       /* file://: secure_link secret */
	const char *client_ip;    /* file://: links bound to this address, or NULL */
	const char *s3;           /* s3://BUCKET[/PREFIX], or NULL */
	const char *endpoint, *region;
	dg_sigv4_creds creds;
	int64_t expires;
};

/* Stage src as name; *link (fresh) is its download link, *copied the
 * bytes written or uploaded (0: it was there). */
static dg_err
stage(struct stagectx *x, const char *src, const char *name, char **link, uint64_t *copied)
{
	char buf[4096], *http = NULL;
	dg_err e;

	*link = NULL;
	if (x->s3) {
		const char *p = x->s3 + 5;
		size_t l = strlen(p);

		while (l && p[l - 1] == '/')
			l--;
		if ((size_t)snprintf(buf, sizeof(buf), "s3://%.*s/%s", (int)l, p, name) >= sizeof(buf))
			return DG_ERR_RANGE;
		if ((e = dg_sigv4_s3_http_url(buf, x->region, x->endpoint, &http)) != DG_OK)
			return e;
		if ((e = dg_s3_put_file(http, x->region, &x->creds, src, NULL, copied)) == DG_OK)
			e = dg_sigv4_presign(http, x->region, "s3", &x->creds, NULL,
			    x->expires - now_s() > 0 ? x->expires - now_s() : 1, link);
		free(http);
		return e;
	}
	if (strcmp(src, name) != 0 && (e = stage_file(x->dir, name, src, copied)) != DG_OK)
		return e;
	{
		/* the path part of the base URL: what nginx's $uri holds */
		const char *sl = strstr(x->base_url, "//");
		const char *path = strchr(sl ? sl + 2 : x->base_url, '/');
		char *origin = strndup(x->base_url, path ? (size_t)(path - x->base_url) : strlen(x->base_url));

		snprintf(buf, sizeof(buf), "%s/%s", path ? path : "", name);
		e = origin ? dg_sigv4_secure_link(origin, buf, x->secret, x->client_ip, x->expires, link) : DG_ERR_NOMEM;
		free(origin);
	}
	return e;
}

/* The import manifest (v5, dg_manifest) of the staged image and deltas:
 * DIR/<sha256>.importmanifest.json, written once (content-hash name). */
static dg_err
write_manifest(const char *dir, const char *name, const char *sha, const char *prov,
    const char *mname, const char *compat, const char *version, char **rel, char **src, int nrel,
    uint64_t *written)
{
	char path[4096], why[512] = "", kv[2][4096], *cs = NULL, *tok, *save = NULL, *pairs[5];
	char *argv1[1];
	dg_manifest *m = NULL;
	json_t *doc = NULL;
	char *text = NULL;
	struct stat sb;
	size_t np = 0;
	dg_err e = DG_ERR_NOMEM;
	int i;

	*written = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.importmanifest.json", dir, sha) >= sizeof(path))
		return DG_ERR_RANGE;
	if (stat(path, &sb) == 0)
		return DG_OK;
	if (!(m = dg_manifest_new(&e)) || !(cs = strdup(compat)))
		goto fail;
	for (tok = strtok_r(cs, ",", &save); tok && np < 5; tok = strtok_r(NULL, ",", &save))
		pairs[np++] = tok;
	snprintf(kv[0], sizeof(kv[0]), "handler=deltagate/image:1");
	argv1[0] = kv[0];
	if ((e = dg_manifest_set_update_id(m, prov, mname, version, why, sizeof(why))) != DG_OK ||
	    (e = dg_manifest_add_compat(m, pairs, np, why, sizeof(why))) != DG_OK ||
	    (e = dg_manifest_add_step(m, argv1, 1, why, sizeof(why))) != DG_OK)
		goto fail;
	e = DG_ERR_RANGE;
	if ((size_t)snprintf(kv[0], sizeof(kv[0]), "path=%s/%s", dir, name) >= sizeof(kv[0]))
		goto fail;
	if ((e = dg_manifest_add_file(m, argv1, 1, why, sizeof(why))) != DG_OK)
		goto fail;
	for (i = 0; i < nrel; i++) {
		char *a2[2] = { kv[0], kv[1] };

		e = DG_ERR_RANGE;
		if ((size_t)snprintf(kv[0], sizeof(kv[0]), "path=%s", rel[i]) >= sizeof(kv[0]) ||
		    (size_t)snprintf(kv[1], sizeof(kv[1]), "source=%s", src[i]) >= sizeof(kv[1]))
			goto fail;
		if ((e = dg_manifest_add_related_file(m, a2, 2, why, sizeof(why))) != DG_OK)
			goto fail;
	}
	if (!(doc = dg_manifest_build(m, NULL, &e, why, sizeof(why))))
		goto fail;
	e = DG_ERR_NOMEM;
	if (!(text = json_dumps(doc, JSON_INDENT(2))))
		goto fail;
	if ((e = dg_util_write_atomic(path, text, strlen(text), 0644)) == DG_OK)
		*written = strlen(text);
fail:
	if (e != DG_OK)
		fprintf(stderr, "deltagate deploy: import manifest: %s\n", why[0] ? why : dg_strerror(e));
	free(text);
	json_decref(doc);
	free(cs);
	dg_manifest_free(m);
	return e;
}

/* ------------------------------------------------------------ the command */

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: deltagate deploy --image NEW --version V [--from OLD ...]\n"
	    "         --devices ID,ID...|--devices-file F|--gateway GW... --storage file:///DIR\n"
	    "         --base-url URL --secret-file F [--link-expires S] [--link-client-ip A]\n"
	    "         [--job-id ID]\n"
	    "         [--waves 1%%,10%%,50%%,100%%] [--abort-failure-rate 5%%] [--wave-timeout S]\n"
	    "         [--sign-key FILE] [--state-dir DIR] [--broker URI] [--topic-root T] [--json]\n"
	    "         [--manifest-provider P [--manifest-name N] [--manifest-compat K=V,...]]\n"
	    "       deltagate deploy --resume JOB [--abort-failure-rate R] [...]\n"
	    "       deltagate deploy --cancel JOB [...]\n"
	    "\n"
	    "Stages NEW (and a delta from each OLD) in DIR under content-hash names (what\n"
	    "is there already is not copied again), links them through nginx secure_link\n"
	    "(--base-url is the location serving DIR, --secret-file its secret), and\n"
	    "publishes the desired state device by device in waves: a wave starts when\n"
	    "every device of the one before has reported, or after --wave-timeout (600).\n"
	    "It stops, leaving the remaining devices untouched, when the failure rate of\n"
	    "the devices done passes --abort-failure-rate. --sign-key signs every command\n"
	    "(for deltagated --trusted-key). State: --state-dir (default\n"
	    "$XDG_STATE_HOME/deltagate), so that --resume continues a killed or stopped\n"
	    "rollout; --cancel restores the previous desired state of the devices that\n"
	    "have not started. --gateway GW (repeatable) takes every device that gateway\n"
	    "serves, as its shadow lists them (reported.devices). --link-client-ip binds\n"
	    "nginx links to the address the gateway downloads from ($remote_addr in\n"
	    "secure_link_md5). Exit status: 0 done,\n"
	    "3 stopped by the threshold, 1 error, 2 bad options.\n");
}

static int
parse_rate(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || (*end && strcmp(end, "%") != 0) || v < 0 || v > 100)
		return -1;
	*out = v / 100.0;
	return 0;
}

static int
parse_waves(const char *s, int *waves, int *n)
{
	char buf[256], *tok, *save = NULL;
	int64_t v, last = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t l = strlen(tok);

		if (l && tok[l - 1] == '%')
			tok[l - 1] = '\0';
		if (*n >= MAX_WAVES || dg_util_parse_i64(tok, 1, 100, &v) != DG_OK || v <= last)
			return -1;
		waves[(*n)++] = (int)v;
		last = v;
	}
	return *n && last == 100 ? 0 : -1;
}

static int
load_devices(struct run *r, const char *list, const char *file)
{
	char *text = NULL, *tok, *save = NULL;
	size_t len, cap = 0;
	dg_err e;

	if (file) {
		if ((e = dg_util_read_file(file, 1 << 24, &text, &len)) != DG_OK) {
			fprintf(stderr, "deltagate deploy: %s: %s\n", file, dg_strerror(e));
			return -1;
		}
	} else if (!(text = strdup(list))) {
		return -1;
	}
	for (tok = strtok_r(text, ", \t\r\n", &save); tok; tok = strtok_r(NULL, ", \t\r\n", &save)) {
		if (!dg_topic_id_valid(tok)) {
			fprintf(stderr, "deltagate deploy: '%s' is not a valid device id\n", tok);
			free(text);
			return -1;
		}
		if (find_dev(r, tok))
			continue;
		if (r->ndevs == cap) {
			struct dev *n = realloc(r->devs, (cap = cap ? cap * 2 : 64) * sizeof(*n));

			if (!n) {
				free(text);
				return -1;
			}
			r->devs = n;
		}
		memset(&r->devs[r->ndevs], 0, sizeof(r->devs[0]));
		r->devs[r->ndevs++].id = strdup(tok);
	}
	free(text);
	return r->ndevs ? 0 : -1;
}

/* Load a rollout's settings and devices from the state. */
static int
load_rollout(struct run *r, char **sign_key)
{
	sqlite3_stmt *s = dg_store_prepare(r->st,
	    "SELECT command, waves, abort_rate, wave_timeout, sign_key, expires, wave, wave_started, status"
	    " FROM rollout WHERE job_id = ?");
	int found = 0;
	dg_err e;

	if (!s)
		return -1;
	sqlite3_bind_text(s, 1, r->job, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		found = 1;
		r->command = dg_json_parse((const char *)sqlite3_column_text(s, 0),
		    (size_t)sqlite3_column_bytes(s, 0), 1 << 20, 32, &e, NULL, 0);
		parse_waves((const char *)sqlite3_column_text(s, 1), r->waves, &r->nwaves);
		if (r->abort_rate < 0)
			r->abort_rate = sqlite3_column_double(s, 2);
		if (r->wave_timeout <= 0)
			r->wave_timeout = sqlite3_column_int64(s, 3);
		*sign_key = sqlite3_column_text(s, 4) ? strdup((const char *)sqlite3_column_text(s, 4)) : NULL;
		r->expires = sqlite3_column_int64(s, 5);
		r->wave = sqlite3_column_int(s, 6);
		r->wave_started = sqlite3_column_int64(s, 7);
		if (!r->cancel && strcmp((const char *)sqlite3_column_text(s, 8), "canceled") == 0) {
			fprintf(stderr, "deltagate deploy: %s was canceled; it cannot be resumed\n", r->job);
			found = 0;
		}
	}
	sqlite3_reset(s);
	if (!found || !r->command)
		return -1;
	if (!(s = dg_store_prepare(r->st,
	    "SELECT device, wave, state, result_code, ext_code FROM rdevice WHERE job_id = ? ORDER BY ord")))
		return -1;
	sqlite3_bind_text(s, 1, r->job, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		struct dev *n = realloc(r->devs, (r->ndevs + 1) * sizeof(*n));
		const char *st = (const char *)sqlite3_column_text(s, 2);
		int k;

		if (!n)
			break;
		r->devs = n;
		memset(&n[r->ndevs], 0, sizeof(*n));
		n[r->ndevs].id = strdup((const char *)sqlite3_column_text(s, 0));
		n[r->ndevs].wave = sqlite3_column_int(s, 1);
		for (k = 0; k <= D_CANCELED; k++)
			if (strcmp(st, dstate_names[k]) == 0)
				n[r->ndevs].st = (enum dstate)k;
		n[r->ndevs].rc = sqlite3_column_int(s, 3);
		n[r->ndevs].ext = sqlite3_column_int64(s, 4);
		r->ndevs++;
	}
	sqlite3_reset(s);
	return 0;
}

static void
final_table(struct run *r)
{
	size_t started, ok, failed, canceled, i;
	json_t *out, *arr;
	char *text;

	counts(r, &started, &ok, &failed, &canceled);
	if (r->tty)
		fprintf(stderr, "\n");
	if (r->json) {
		arr = json_array();
		for (i = 0; i < r->ndevs; i++)
			json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:i,s:I}", "device", r->devs[i].id,
			    "wave", r->devs[i].wave + 1, "state", dstate_names[r->devs[i].st], "resultCode",
			    r->devs[i].rc, "extendedResultCode", (json_int_t)r->devs[i].ext));
		out = json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:o}", "jobId", r->job, "status",
		    r->exit_status == EXIT_STOPPED ? "stopped" : r->cancel ? "canceled" : "done", "wave",
		    r->wave + 1, "waves", r->nwaves, "devices", (json_int_t)r->ndevs, "started",
		    (json_int_t)started, "succeeded", (json_int_t)ok, "failed", (json_int_t)failed,
		    "canceled", (json_int_t)canceled, "table", arr);
		json_object_set_new(out, "requests", json_pack("{s:I,s:I}", "get", (json_int_t)r->n_get,
		    "update", (json_int_t)r->n_update));
		text = out ? dg_json_dumps(out) : NULL;
		if (text)
			printf("%s\n", text);
		free(text);
		json_decref(out);
		return;
	}
	printf("%-24s %4s %-10s %10s %12s\n", "DEVICE", "WAVE", "STATE", "RESULT", "EXTENDED");
	for (i = 0; i < r->ndevs; i++)
		printf("%-24s %4d %-10s %10d   0x%08" PRIx64 "\n", r->devs[i].id, r->devs[i].wave + 1,
		    dstate_names[r->devs[i].st], r->devs[i].rc, (uint64_t)r->devs[i].ext);
	printf("%s: %zu devices, %zu started, %zu succeeded, %zu failed, %zu canceled\n", r->job,
	    r->ndevs, started, ok, failed, canceled);
}

int
dg_cli_deploy(int argc, char **argv)
{
	const char *image = NULL, *version = NULL, *from[MAX_FROM], *devlist = NULL, *devfile = NULL;
	const char *storage = NULL, *base_url = NULL, *secret_file = NULL, *job = NULL;
	const char *waves = "100%", *sign_key = NULL, *state_dir = NULL, *broker = "mqtt://127.0.0.1:1883";
	const char *topic_root = DG_TOPIC_DEFAULT_ROOT, *resume = NULL, *cancel = NULL;
	const char *endpoint = NULL, *region = getenv("AWS_REGION");
	const char *mprov = NULL, *mname = "firmware", *mcompat = "deviceManufacturer=deltagate";
	char *mrel[MAX_FROM], *msrc[MAX_FROM], *gws[MAX_GATEWAYS], *gwdevs = NULL;
	int nrel = 0, ngw = 0;
	struct stagectx sx;
	char dirbuf[4096], jobbuf[64], *secret = NULL, *stored_key = NULL, client_id[128];
	int64_t link_expires = 7 * 86400;
	struct run r;
	int nfrom = 0, rc = DG_EXIT_USAGE, i;
	uint64_t staged_bytes = 0;
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	dg_mqtt_opts mo = { 0 };
	char filter[512];
	dg_err e;

	memset(&r, 0, sizeof(r));
	memset(&sx, 0, sizeof(sx));
	r.abort_rate = -1;
	for (i = 1; i < argc; i++) {
		const char *o = argv[i], *v;

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			usage(stdout);
			return DG_EXIT_OK;
		}
		if (strcmp(o, "--json") == 0) {
			r.json = 1;
			continue;
		}
		if (i + 1 >= argc || strncmp(o, "--", 2) != 0) {
			fprintf(stderr, "deltagate deploy: %s: %s\n", o, strncmp(o, "--", 2) ? "unexpected argument" : "needs a value");
			return DG_EXIT_USAGE;
		}
		v = argv[++i];
		if (strcmp(o, "--image") == 0) image = v;
		else if (strcmp(o, "--version") == 0) version = v;
		else if (strcmp(o, "--from") == 0) {
			if (nfrom >= MAX_FROM) {
				fprintf(stderr, "deltagate deploy: at most %d --from\n", MAX_FROM);
				return DG_EXIT_USAGE;
			}
			from[nfrom++] = v;
		} else if (strcmp(o, "--devices") == 0) devlist = v;
		else if (strcmp(o, "--devices-file") == 0) devfile = v;
		else if (strcmp(o, "--gateway") == 0) {
			if (ngw >= MAX_GATEWAYS) {
				fprintf(stderr, "deltagate deploy: at most %d --gateway\n", MAX_GATEWAYS);
				return DG_EXIT_USAGE;
			}
			gws[ngw++] = (char *)v;
		}
		else if (strcmp(o, "--storage") == 0) storage = v;
		else if (strcmp(o, "--base-url") == 0) base_url = v;
		else if (strcmp(o, "--secret-file") == 0) secret_file = v;
		else if (strcmp(o, "--job-id") == 0) job = v;
		else if (strcmp(o, "--waves") == 0) waves = v;
		else if (strcmp(o, "--sign-key") == 0) sign_key = v;
		else if (strcmp(o, "--state-dir") == 0) state_dir = v;
		else if (strcmp(o, "--broker") == 0) broker = v;
		else if (strcmp(o, "--topic-root") == 0) topic_root = v;
		else if (strcmp(o, "--resume") == 0) resume = v;
		else if (strcmp(o, "--endpoint") == 0) endpoint = v;
		else if (strcmp(o, "--manifest-provider") == 0) mprov = v;
		else if (strcmp(o, "--manifest-name") == 0) mname = v;
		else if (strcmp(o, "--manifest-compat") == 0) mcompat = v;
		else if (strcmp(o, "--region") == 0) region = v;
		else if (strcmp(o, "--cancel") == 0) cancel = v;
		else if (strcmp(o, "--link-client-ip") == 0) sx.client_ip = v;
		else if (strcmp(o, "--abort-failure-rate") == 0) {
			if (parse_rate(v, &r.abort_rate) != 0) {
				fprintf(stderr, "deltagate deploy: --abort-failure-rate: 0%%..100%%\n");
				return DG_EXIT_USAGE;
			}
		} else if (strcmp(o, "--wave-timeout") == 0 || strcmp(o, "--link-expires") == 0) {
			int64_t n;

			if (dg_util_parse_i64(v, 1, 86400 * 30, &n) != DG_OK) {
				fprintf(stderr, "deltagate deploy: %s: 1..2592000 seconds\n", o);
				return DG_EXIT_USAGE;
			}
			if (o[2] == 'w')
				r.wave_timeout = n;
			else
				link_expires = n;
		} else {
			fprintf(stderr, "deltagate deploy: unknown option '%s'\n", o);
			usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	r.tty = isatty(2);
	if (!resume && !cancel) {
		if (!image || !version || (!devlist && !devfile && !ngw) || !storage) {
			fprintf(stderr, "deltagate deploy: --image, --version, --devices, --devices-file or "
			    "--gateway, and --storage are required\n");
			return DG_EXIT_USAGE;
		}
		if (ngw && (devlist || devfile)) {
			fprintf(stderr, "deltagate deploy: --gateway or --devices/--devices-file, not both\n");
			return DG_EXIT_USAGE;
		}
		if (strncmp(storage, "file://", 7) != 0 && strncmp(storage, "s3://", 5) != 0) {
			fprintf(stderr, "deltagate deploy: --storage: file:///DIR or s3://BUCKET[/PREFIX]\n");
			return DG_EXIT_USAGE;
		}
		if (sx.client_ip) {
			unsigned char a[16];

			if (inet_pton(AF_INET, sx.client_ip, a) != 1 && inet_pton(AF_INET6, sx.client_ip, a) != 1) {
				fprintf(stderr, "deltagate deploy: --link-client-ip: '%s' is not an IPv4 or IPv6 address\n",
				    sx.client_ip);
				return DG_EXIT_USAGE;
			}
			if (strncmp(storage, "file://", 7) != 0) {
				fprintf(stderr, "deltagate deploy: --link-client-ip binds nginx secure_link links "
				    "(file:// storage) only\n");
				return DG_EXIT_USAGE;
			}
		}
		if (strncmp(storage, "file://", 7) == 0 && (!base_url || !secret_file)) {
			fprintf(stderr, "deltagate deploy: file:// storage needs --base-url and --secret-file\n");
			return DG_EXIT_USAGE;
		}
		if (parse_waves(waves, r.waves, &r.nwaves) != 0) {
			fprintf(stderr, "deltagate deploy: --waves: increasing percentages ending at 100%%\n");
			return DG_EXIT_USAGE;
		}
		if (ngw) {
			/* every device behind those gateways, from their shadows */
			if (!(gwdevs = dg_cli_gateway_devices(broker, topic_root, gws, (size_t)ngw, 10)))
				return DG_EXIT_FAIL;
			devlist = gwdevs;
		}
		if (load_devices(&r, devlist, devfile) != 0) {
			free(gwdevs);
			return DG_EXIT_USAGE;
		}
		free(gwdevs);
		gwdevs = NULL;
		devlist = NULL;
	}
	rc = DG_EXIT_FAIL;
	if (!state_dir) {
		if (dg_rollout_default_dir(dirbuf, sizeof(dirbuf)) != DG_OK) {
			fprintf(stderr, "deltagate deploy: no state directory (--state-dir, XDG_STATE_HOME or HOME)\n");
			goto out;
		}
		state_dir = dirbuf;
	}
	if (!(r.st = dg_rollout_open(state_dir, &e))) {
		fprintf(stderr, "deltagate deploy: %s: %s\n", state_dir, dg_strerror(e));
		goto out;
	}
	if (!(r.topic = dg_topic_new(topic_root, &e)))
		goto out;
	if (resume || cancel) {
		r.job = resume ? resume : cancel;
		r.cancel = cancel != NULL;
		if (load_rollout(&r, &stored_key) != 0) {
			fprintf(stderr, "deltagate deploy: %s: %s\n", r.job, dg_strerror(DG_ERR_ROLLOUT_UNKNOWN));
			goto out;
		}
		if (!sign_key)
			sign_key = stored_key;
		if (r.abort_rate < 0)
			r.abort_rate = 1;
	} else {
		const char *dir = storage + 7;
		char sha[65], name[200], workdir[4096], *link = NULL;
		int s3 = strncmp(storage, "s3://", 5) == 0;
		uint64_t size, copied;
		json_t *related = json_array();
		sqlite3_stmt *s;
		size_t k, per;

		if (r.abort_rate < 0)
			r.abort_rate = 1;
		if (r.wave_timeout <= 0)
			r.wave_timeout = 600;
		if (!job) {
			snprintf(jobbuf, sizeof(jobbuf), "deploy-%lld", (long long)dg_util_wall_ms());
			job = jobbuf;
		}
		r.job = job;
		sx.base_url = base_url;
		sx.endpoint = endpoint;
		sx.region = region && *region ? region : "us-east-1";
		if (s3) {
			if (link_expires > 604800)
				link_expires = 604800; /* SigV4's limit */
			sx.s3 = storage;
			if ((e = dg_sigv4_creds_load(&sx.creds)) != DG_OK) {
				fprintf(stderr, "deltagate deploy: no AWS credentials (AWS_ACCESS_KEY_ID and "
				    "AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)\n");
				goto out;
			}
			/* deltas are made here first, then uploaded */
			if ((size_t)snprintf(workdir, sizeof(workdir), "%s/objects", state_dir) >= sizeof(workdir))
				goto out;
			dir = workdir;
		} else {
			if ((e = dg_util_read_file(secret_file, 4096, &secret, NULL)) != DG_OK) {
				fprintf(stderr, "deltagate deploy: %s: %s\n", secret_file, dg_strerror(e));
				goto out;
			}
			secret[strcspn(secret, "\r\n")] = '\0';
			sx.secret = secret;
		}
		sx.dir = dir;
		if ((e = dg_util_mkdir_p(dir, 0755)) != DG_OK || (e = file_sha(image, sha, &size)) != DG_OK) {
			fprintf(stderr, "deltagate deploy: %s: %s\n", image, dg_strerror(e));
			goto out;
		}
		r.expires = now_s() + link_expires;
		sx.expires = r.expires;
		snprintf(name, sizeof(name), "%s.img", sha);
		if ((e = stage(&sx, image, name, &link, &copied)) != DG_OK) {
			fprintf(stderr, "deltagate deploy: staging %s: %s\n", image, dg_strerror(e));
			goto out;
		}
		staged_bytes += copied;
		r.command = json_pack("{s:s,s:s,s:s,s:I,s:s}", "softwareURL", link, "softwareVersion", version,
		    "softwareSha256", sha, "softwareSize", (json_int_t)size, "jobId", job);
		free(link);
		link = NULL;
		for (k = 0; k < (size_t)nfrom; k++) {
			char ssha[65], dname[300], dpath[4096], dsha[65];
			uint64_t ssize, dsize;
			struct stat sb;

			if ((e = file_sha(from[k], ssha, &ssize)) != DG_OK) {
				fprintf(stderr, "deltagate deploy: %s: %s\n", from[k], dg_strerror(e));
				goto out;
			}
			snprintf(dname, sizeof(dname), "%s-%s.delta", ssha, sha);
			if ((size_t)snprintf(dpath, sizeof(dpath), "%s/%s", dir, dname) >= sizeof(dpath))
				goto out;
			if (stat(dpath, &sb) != 0) {
				e = dg_delta_diff_file(from[k], image, dpath, NULL, NULL);
				if (e == DG_ERR_DELTA_NOGAIN) {
					fprintf(stderr, "deltagate deploy: no delta from %s (not smaller)\n", from[k]);
					continue;
				}
				if (e != DG_OK) {
					fprintf(stderr, "deltagate deploy: delta from %s: %s\n", from[k], dg_strerror(e));
					goto out;
				}
				if (!s3 && stat(dpath, &sb) == 0)
					staged_bytes += (uint64_t)sb.st_size;
			}
			if ((e = file_sha(dpath, dsha, &dsize)) != DG_OK)
				goto out;
			if ((e = stage(&sx, dpath, dname, &link, &copied)) != DG_OK) {
				fprintf(stderr, "deltagate deploy: staging %s: %s\n", dname, dg_strerror(e));
				goto out;
			}
			staged_bytes += copied;
			if (nrel < MAX_FROM) {
				mrel[nrel] = strdup(dpath);
				msrc[nrel++] = strdup(from[k]);
			}
			json_array_append_new(related, json_pack("{s:s,s:s,s:I,s:s}", "url", link, "sha256", dsha,
			    "size", (json_int_t)dsize, "sourceSha256", ssha));
			free(link);
			link = NULL;
		}
		json_object_set_new(r.command, "relatedFiles", json_array_size(related) ? related : json_null());
		if (!json_array_size(related))
			json_decref(related);
		if (mprov && s3) {
			/* the manifest names the files as staged (<sha256>.img):
			 * written in the work directory, then uploaded beside them */
			char ipath[4096], mpath[4096], mfile[200], *abs = realpath(image, NULL);

			if ((size_t)snprintf(ipath, sizeof(ipath), "%s/%s", dir, name) >= sizeof(ipath)) {
				free(abs);
				goto out;
			}
			if (!abs || ((unlink(ipath) != 0 && errno != ENOENT) || symlink(abs, ipath) != 0)) {
				fprintf(stderr, "deltagate deploy: %s: %s\n", ipath, strerror(errno));
				free(abs);
				goto out;
			}
			free(abs);
			snprintf(mfile, sizeof(mfile), "%s.importmanifest.json", sha);
			if ((size_t)snprintf(mpath, sizeof(mpath), "%s/%s", dir, mfile) >= sizeof(mpath) ||
			    write_manifest(dir, name, sha, mprov, mname, mcompat, version, mrel, msrc, nrel,
			    &copied) != DG_OK)
				goto out;
			if ((e = stage(&sx, mpath, mfile, &link, &copied)) != DG_OK) {
				fprintf(stderr, "deltagate deploy: uploading %s: %s\n", mfile, dg_strerror(e));
				goto out;
			}
			free(link);
			link = NULL;
			staged_bytes += copied;
		} else if (mprov) {
			if (write_manifest(dir, name, sha, mprov, mname, mcompat, version, mrel, msrc,
			    nrel, &copied) != DG_OK)
				goto out;
			staged_bytes += copied;
		}
		if (!r.json)
			fprintf(stderr, "%s: staged %" PRIu64 " bytes in %s (image %s)\n", job, staged_bytes, storage, name);
		/* the rollout, durable before anything is published */
		if (dg_store_begin(r.st) != DG_OK)
			goto out;
		if (!(s = dg_store_prepare(r.st,
		    "INSERT INTO rollout (job_id, command, waves, abort_rate, wave_timeout, sign_key, expires,"
		    " status, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)")))
			goto out;
		{
			char *ctext = dg_json_dumps(r.command), wtext[128] = "";
			int w;

			for (w = 0; w < r.nwaves; w++)
				snprintf(wtext + strlen(wtext), sizeof(wtext) - strlen(wtext), "%s%d", w ? "," : "", r.waves[w]);
			sqlite3_bind_text(s, 1, job, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, ctext, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(s, 3, wtext, -1, SQLITE_TRANSIENT);
			sqlite3_bind_double(s, 4, r.abort_rate);
			sqlite3_bind_int64(s, 5, r.wave_timeout);
			if (sign_key) {
				char *abs = realpath(sign_key, NULL);

				sqlite3_bind_text(s, 6, abs ? abs : sign_key, -1, SQLITE_TRANSIENT);
				free(abs);
			} else {
				sqlite3_bind_null(s, 6);
			}
			sqlite3_bind_int64(s, 7, r.expires);
			sqlite3_bind_int64(s, 8, now_s());
			sqlite3_bind_int64(s, 9, now_s());
			free(ctext);
			if (sqlite3_step(s) != SQLITE_DONE) {
				sqlite3_reset(s);
				dg_store_rollback(r.st);
				fprintf(stderr, "deltagate deploy: job %s exists in %s (use --resume)\n", job, state_dir);
				goto out;
			}
			sqlite3_reset(s);
		}
		/* wave w holds the devices up to waves[w] percent (at least one) */
		for (k = 0, per = 0; k < r.ndevs; k++) {
			int w = 0;

			while (w < r.nwaves - 1 && (double)k >= ceil((double)r.waves[w] * (double)r.ndevs / 100.0))
				w++;
			r.devs[k].wave = w;
			(void)per;
			if (!(s = dg_store_prepare(r.st,
			    "INSERT INTO rdevice (job_id, device, ord, wave, state, updated) VALUES (?, ?, ?, ?, 'pending', ?)")))
				goto out;
			sqlite3_bind_text(s, 1, job, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, r.devs[k].id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, (int64_t)k);
			sqlite3_bind_int(s, 4, w);
			sqlite3_bind_int64(s, 5, now_s());
			sqlite3_step(s);
			sqlite3_reset(s);
		}
		if (dg_store_commit(r.st) != DG_OK)
			goto out;
	}
	if (sign_key && !(r.key = dg_jws_key_load(sign_key, &e)))
		goto out;
	if (!r.key && !r.cancel)
		dg_log_warn("%s: commands are not signed (--sign-key)", r.job);
	/* the loop */
	if (evthread_use_pthreads() != 0 || !(r.base = event_base_new()))
		goto out;
	snprintf(client_id, sizeof(client_id), "deltagate-deploy-%ld", (long)getpid());
	mo.uri = broker;
	mo.client_id = client_id;
	mo.version = 4;
	mo.clean_session = 1;
	mo.max_inflight = 256;
	if (!(r.mqtt = dg_mqtt_new(r.base, &mo, &cb, &r, &e)))
		goto out;
	if (dg_topic_filter(r.topic, "get/accepted", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(r.mqtt, filter, 1) != DG_OK ||
	    dg_topic_filter(r.topic, "get/rejected", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(r.mqtt, filter, 1) != DG_OK ||
	    dg_topic_filter(r.topic, "update/documents", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(r.mqtt, filter, 1) != DG_OK)
		goto out;
	r.tick = event_new(r.base, -1, EV_PERSIST, on_tick, &r);
	{
		struct timeval tv = { 1, 0 };

		if (!r.tick || event_add(r.tick, &tv) != 0)
			goto out;
	}
	event_base_dispatch(r.base);
	if (!r.finished)
		goto out;
	final_table(&r);
	rc = r.exit_status;
out:
	if (r.tick)
		event_free(r.tick);
	dg_mqtt_free(r.mqtt, 2000);
	if (r.base)
		event_base_free(r.base);
	dg_jws_key_free(r.key);
	json_decref(r.command);
	for (i = 0; i < (int)r.ndevs; i++)
		free(r.devs[i].id);
	free(r.devs);
	dg_topic_free(r.topic);
	dg_store_free(r.st);
	free(secret);
	free(stored_key);
	dg_sigv4_creds_clear(&sx.creds);
	for (i = 0; i < nrel; i++) {
		free(mrel[i]);
		free(msrc[i]);
	}
	return rc;
}
