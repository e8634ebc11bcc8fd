/* deltagate-shadowd - the reference upstream device shadow service.
 *
 * Serves the shadow topics of every device under one root template from
 * one process and one wildcard subscription per request kind. Requests are
 * handled in batches: each batch is applied in one SQLite transaction
 * (group commit), and only after that commit are the answers published, so
 * nothing acknowledged is ever lost.
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dg_config.h"
#include "dg_daemon.h"
#include "dg_json.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_shadow.h"
#include "dg_store.h"
#include "dg_topic.h"
#include "dg_util.h"

struct cfg {
	char *broker;
	char *db;
	char *topic_root;
	char *client_id;
	int64_t mqtt_version;
	int64_t max_inflight;
	char *ca_file, *cert_file, *key_file, *username, *password;
	uint64_t max_doc_bytes;
	uint64_t max_request_bytes;
	char *log_level;
	int syslog;
	char *pid_file;
	char *user;
	int clean_session;
};

static const dg_option options[] = {
	DG_OPTION_GROUP("upstream"),
	{ "broker", DG_OPT_STR, offsetof(struct cfg, broker), 0, 0, "mqtt://127.0.0.1:1883", 0, NULL, "MQTT broker URI (mqtt:// or mqtts://)" },
	{ "topic-root", DG_OPT_STR, offsetof(struct cfg, topic_root), 0, 0, DG_TOPIC_DEFAULT_ROOT, 0, NULL, "topic root template with {id}; 'aws' for $aws/things/{id}/shadow" },
	{ "client-id", DG_OPT_STR, offsetof(struct cfg, client_id), 0, 0, "deltagate-shadowd", 0, NULL, "MQTT client id" },
	{ "mqtt-version", DG_OPT_INT, offsetof(struct cfg, mqtt_version), 4, 5, "4", 0, NULL, "MQTT protocol: 4 (3.1.1) or 5" },
	{ "ca-file", DG_OPT_STR, offsetof(struct cfg, ca_file), 0, 0, NULL, 0, NULL, "CA bundle to verify an mqtts:// broker" },
	{ "cert-file", DG_OPT_STR, offsetof(struct cfg, cert_file), 0, 0, NULL, 0, NULL, "client certificate (mqtts://)" },
	{ "key-file", DG_OPT_STR, offsetof(struct cfg, key_file), 0, 0, NULL, 0, NULL, "client key (mqtts://)" },
	{ "username", DG_OPT_STR, offsetof(struct cfg, username), 0, 0, NULL, 0, NULL, "MQTT user name" },
	{ "password", DG_OPT_STR, offsetof(struct cfg, password), 0, 0, NULL, 0, NULL, "MQTT password" },
	{ "clean-session", DG_OPT_BOOL, offsetof(struct cfg, clean_session), 0, 0, "no", 0, NULL,
	  "start a clean MQTT session (no: the broker keeps requests while we are away)" },
	DG_OPTION_GROUP("storage"),
	{ "db", DG_OPT_STR, offsetof(struct cfg, db), 0, 0, NULL, 0, NULL, "SQLite database file (required)" },
	DG_OPTION_GROUP("limits"),
	{ "max-inflight", DG_OPT_INT, offsetof(struct cfg, max_inflight), 1, 65535, "1024", 0, NULL, "outgoing QoS 1 messages in flight" },
	{ "max-doc-bytes", DG_OPT_SIZE, offsetof(struct cfg, max_doc_bytes), 256, 1 << 24, "8K", 0, NULL, "largest desired+reported document (413 beyond)" },
	{ "max-request-bytes", DG_OPT_SIZE, offsetof(struct cfg, max_request_bytes), 256, 1 << 24, "64K", 0, NULL, "largest request payload (400 beyond)" },
	DG_OPTION_GROUP("logging and process"),
	{ "log-level", DG_OPT_STR, offsetof(struct cfg, log_level), 0, 0, "info", 1, dg_config_check_log_level, "err, warn, info or debug" },
	{ "syslog", DG_OPT_BOOL, offsetof(struct cfg, syslog), 0, 0, "no", 0, NULL, "log to syslog instead of stderr" },
	{ "pid-file", DG_OPT_STR, offsetof(struct cfg, pid_file), 0, 0, NULL, 0, NULL, "write the process id here" },
	{ "user", DG_OPT_STR, offsetof(struct cfg, user), 0, 0, NULL, 0, NULL, "drop privileges to this user after start-up" },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* What examples/deltagate-shadowd.conf shows for options without a default;
 * the active ones are set there (the required ones). */
static const dg_config_example examples[] = {
	{ "ca-file", "/etc/deltagate/mqtt-ca.pem", 0 },
	{ "cert-file", "/etc/deltagate/shadowd.crt", 0 },
	{ "key-file", "/etc/deltagate/shadowd.key", 0 },
	{ "username", "shadowd", 0 },
	{ "password", "change-me", 0 },
	{ "db", "/var/lib/deltagate/shadowd.db", 1 },
	{ "pid-file", "/run/deltagate-shadowd.pid", 0 },
	{ "user", "deltagate", 0 },
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

static const char example_header[] =
    "# deltagate-shadowd.conf - configuration of deltagate-shadowd(8), the\n"
    "# reference upstream device shadow service.\n"
    "#\n"
    "# One option per line, \"name value\"; lines starting with '#' are comments;\n"
    "# a value with blanks goes in \"double quotes\". Every option can also be\n"
    "# given on the command line as --name value, which wins over this file.\n"
    "# \"#name value\" lines show the default: remove the '#' to change it.\n"
    "# SIGHUP re-reads the file: options marked [SIGHUP reloads] change without\n"
    "# a restart. Check a file with: deltagate-shadowd -c FILE --test-config\n"
    "#\n"
    "# Generated from the daemon's option table\n"
    "# (deltagate-shadowd --dump-config-example); a test fails when this file\n"
    "# and the table differ.\n";

static const dg_store_migration migrations[] = {
	{ "CREATE TABLE shadow ("
	  " id TEXT PRIMARY KEY,"
	  " doc TEXT NOT NULL,"
	  " version INTEGER NOT NULL,"
	  " updated INTEGER NOT NULL"
	  ") WITHOUT ROWID;" },
	/* 'clean-stop': present only while the service is stopped cleanly */
	{ "CREATE TABLE service (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;" },
};

/* After a crash, answers of the last committed batch may never have gone
 * out: its update/delta messages are what tells a device (a gateway) of a
 * new desired state. Shadows changed within this many seconds before the
 * start have their delta published again (devices take a repeated delta
 * as the same command). */
#define RECOVER_WINDOW_S 3600

/* A request received, waiting for the end of its batch. */
struct req {
	char *topic;
	char *payload;
	size_t len;
};

/* An answer to publish once the batch is committed. */
struct out {
	char topic[512];
	char *payload;
};

struct shadowd {
	struct cfg cfg;
	const char *cfg_path;
	struct event_base *base;
	dg_mqtt *mqtt;
	dg_store *store;
	dg_topic *topic;
	dg_shadow_limits lim;
	struct req *reqs;
	size_t nreqs, capreqs;
	struct out *outs;
	size_t nouts, capouts;
	uint64_t handled, rejected, publish_failed;
	int recover;            /* started after a crash: republish deltas */
};

/* Did the last run end cleanly? Clears the mark (this run may not). */
static int
after_crash(struct shadowd *sd)
{
	sqlite3_stmt *s = dg_store_prepare(sd->store, "SELECT count(*) FROM service WHERE key = 'clean-stop'");
	sqlite3_stmt *n = dg_store_prepare(sd->store, "SELECT count(*) FROM shadow");
	int clean = 0, shadows = 0;

	if (s && sqlite3_step(s) == SQLITE_ROW)
		clean = sqlite3_column_int(s, 0);
	if (s)
		sqlite3_reset(s);
	if (n && sqlite3_step(n) == SQLITE_ROW)
		shadows = sqlite3_column_int(n, 0);
	if (n)
		sqlite3_reset(n);
	dg_store_exec(sd->store, "DELETE FROM service WHERE key = 'clean-stop'");
	return !clean && shadows > 0;
}

static void
mark_clean_stop(struct shadowd *sd)
{
	if (dg_store_exec(sd->store, "INSERT OR REPLACE INTO service (key, value) VALUES ('clean-stop', '1')") != DG_OK)
		dg_log_warn("cannot record the clean stop: deltas are published again at the next start");
}

/* Publish update/delta again for the shadows changed lately (see
 * RECOVER_WINDOW_S) whose desired state differs from the reported one. */
static void
republish_deltas(struct shadowd *sd)
{
	sqlite3_stmt *s = dg_store_prepare(sd->store, "SELECT id, doc FROM shadow WHERE updated >= ?");
	unsigned n = 0;

	if (!s)
		return;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)time(NULL) - RECOVER_WINDOW_S);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);
		dg_err err;
		dg_shadow *sh = dg_shadow_from_json((const char *)sqlite3_column_text(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1), &err);
		json_t *st = sh ? dg_shadow_delta_state(sh) : NULL, *msg;
		char topic[512], *payload;

		if (st && json_object_size(st) > 0 &&
		    (msg = json_pack("{s:O,s:I,s:I}", "state", st, "version", (json_int_t)dg_shadow_version(sh),
		        "timestamp", (json_int_t)time(NULL)))) {
			if (dg_topic_build(sd->topic, id, "update/delta", topic, sizeof(topic)) == DG_OK &&
			    (payload = dg_json_dumps(msg))) {
				if (dg_mqtt_publish(sd->mqtt, topic, payload, strlen(payload), 1, 0, NULL, NULL) == DG_OK)
					n++;
				free(payload);
			}
			json_decref(msg);
		}
		json_decref(st);
		dg_shadow_free(sh);
	}
	sqlite3_reset(s);
	dg_log_info("started after a crash: update/delta published again for %u shadow(s) changed in the last %d s",
	    n, RECOVER_WINDOW_S);
}

static void
add_out(struct shadowd *sd, const char *id, const char *leaf, json_t *msg)
{
	struct out *o;
	char *payload;

	if (!msg)
		return;
	payload = dg_json_dumps(msg);
	if (!payload) {
		dg_log_err("%s: out of memory building %s", id, leaf);
		return;
	}
	if (sd->nouts == sd->capouts) {
		size_t cap = sd->capouts ? sd->capouts * 2 : 64;
		struct out *n = realloc(sd->outs, cap * sizeof(*n));

		if (!n) {
			free(payload);
			return;
		}
		sd->outs = n;
		sd->capouts = cap;
	}
	o = &sd->outs[sd->nouts];
	if (dg_topic_build(sd->topic, id, leaf, o->topic, sizeof(o->topic)) != DG_OK) {
		free(payload);
		return;
	}
	o->payload = payload;
	sd->nouts++;
}

static void
reject(struct shadowd *sd, const char *id, const char *leaf, int code,
    const char *msg, const char *token)
{
	json_t *e = dg_shadow_error(code, msg, token);

	sd->rejected++;
	add_out(sd, id, leaf, e);
	json_decref(e);
}

/* Load a shadow; NULL and *found = 0 when there is none. */
static dg_shadow *
load(struct shadowd *sd, const char *id, int *found, dg_err *err)
{
	sqlite3_stmt *s = dg_store_prepare(sd->store, "SELECT doc FROM shadow WHERE id = ?");
	dg_shadow *sh;
	int rc;

	*found = 0;
	if (!s) {
		*err = DG_ERR_DB;
		return NULL;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		*err = DG_OK;
		return dg_shadow_new();
	}
	if (rc != SQLITE_ROW) {
		*err = dg_store_error(sd->store, rc, "load shadow");
		return NULL;
	}
	sh = dg_shadow_from_json((const char *)sqlite3_column_text(s, 0),
	    (size_t)sqlite3_column_bytes(s, 0), err);
	sqlite3_reset(s);
	if (!sh)
		dg_log_err("%s: stored shadow is unreadable: %s", id, dg_strerror(*err));
	*found = sh != NULL;
	return sh;
}

static dg_err
save(struct shadowd *sd, const char *id, const dg_shadow *sh)
{
	sqlite3_stmt *s = dg_store_prepare(sd->store,
	    "INSERT INTO shadow (id, doc, version, updated) VALUES (?, ?, ?, ?)"
	    " ON CONFLICT(id) DO UPDATE SET doc = excluded.doc,"
	    " version = excluded.version, updated = excluded.updated");
	char *doc = dg_shadow_to_json(sh);
	int rc;

	if (!s || !doc) {
		free(doc);
		return s ? DG_ERR_NOMEM : DG_ERR_DB;
	}
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, doc, -1, free);
	sqlite3_bind_int64(s, 3, dg_shadow_version(sh));
	sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? DG_OK : dg_store_error(sd->store, rc, "save shadow");
}

static void
handle_update(struct shadowd *sd, const char *id, const struct req *r)
{
	dg_shadow_result res = { 0 };
	dg_shadow *sh;
	dg_err err;
	int found;

	if (!(sh = load(sd, id, &found, &err))) {
		reject(sd, id, "update/rejected", 500, "internal error", NULL);
		return;
	}
	if (dg_shadow_update(sh, r->payload, r->len, (int64_t)time(NULL), &sd->lim, &res) != DG_OK) {
		reject(sd, id, "update/rejected", 500, "internal error", NULL);
		goto out;
	}
	if (res.code != 0) {
		sd->rejected++;
		add_out(sd, id, "update/rejected", res.error);
		goto out;
	}
	if (res.replayed) {
		/* a retry of an update already applied: answered, not applied */
		dg_log_info("%s: update with a recent clientToken again: accepted, not applied twice", id);
		add_out(sd, id, "update/accepted", res.accepted);
		goto out;
	}
	if ((err = save(sd, id, sh)) != DG_OK) {
		reject(sd, id, "update/rejected", 500, "internal error", NULL);
		goto out;
	}
	add_out(sd, id, "update/accepted", res.accepted);
	add_out(sd, id, "update/documents", res.documents);
	add_out(sd, id, "update/delta", res.delta);
out:
	dg_shadow_result_clear(&res);
	dg_shadow_free(sh);
}

/* get and delete take an empty payload or a JSON object with a
 * clientToken; anything else is a 400. */
static int
check_token_payload(struct shadowd *sd, const char *id, const char *leaf,
    const struct req *r, char **token)
{
	dg_err err;
	json_t *v;

	*token = NULL;
	if (r->len == 0)
		return 0;
	v = dg_json_parse(r->payload, r->len, sd->lim.max_request_bytes, sd->lim.max_depth, &err, NULL, 0);
	if (!v || !json_is_object(v)) {
		json_decref(v);
		reject(sd, id, leaf, 400, "Payload contains invalid json", NULL);
		return -1;
	}
	json_decref(v);
	*token = dg_shadow_client_token(r->payload, r->len, &sd->lim);
	return 0;
}

static void
handle_get(struct shadowd *sd, const char *id, const struct req *r)
{
	dg_shadow *sh = NULL;
	json_t *doc = NULL;
	char *token = NULL, msg[200];
	dg_err err;
	int found;

	if (check_token_payload(sd, id, "get/rejected", r, &token) != 0)
		return;
	if (!(sh = load(sd, id, &found, &err))) {
		reject(sd, id, "get/rejected", 500, "internal error", token);
		goto out;
	}
	if (!dg_shadow_exists(sh)) {
		snprintf(msg, sizeof(msg), "No shadow exists with name: '%s'", id);
		reject(sd, id, "get/rejected", 404, msg, token);
		goto out;
	}
	if (!(doc = dg_shadow_get_accepted(sh, token, (int64_t)time(NULL)))) {
		reject(sd, id, "get/rejected", 500, "internal error", token);
		goto out;
	}
	add_out(sd, id, "get/accepted", doc);
out:
	json_decref(doc);
	free(token);
	dg_shadow_free(sh);
}

/* The document goes; the version stays (the next update makes version+1,
 * as AWS does), so the row is kept with the emptied document. */
static void
handle_delete(struct shadowd *sd, const char *id, const struct req *r)
{
	dg_shadow *sh = NULL;
	json_t *ack = NULL;
	char *token = NULL, msg[200];
	dg_err err;
	int found;

	if (check_token_payload(sd, id, "delete/rejected", r, &token) != 0)
		return;
	if (!(sh = load(sd, id, &found, &err))) {
		reject(sd, id, "delete/rejected", 500, "internal error", token);
		goto out;
	}
	err = dg_shadow_delete(sh, (int64_t)time(NULL), token, &ack);
	if (err == DG_ERR_SHADOW_NOT_FOUND) {
		snprintf(msg, sizeof(msg), "No shadow exists with name: '%s'", id);
		reject(sd, id, "delete/rejected", 404, msg, token);
		goto out;
	}
	if (err != DG_OK || save(sd, id, sh) != DG_OK) {
		reject(sd, id, "delete/rejected", 500, "internal error", token);
		goto out;
	}
	add_out(sd, id, "delete/accepted", ack);
out:
	json_decref(ack);
	free(token);
	dg_shadow_free(sh);
}

static void
handle(struct shadowd *sd, const struct req *r)
{
	char id[DG_TOPIC_ID_MAX + 1];
	const char *leaf;

	if (!dg_topic_match(sd->topic, r->topic, id, &leaf))
		return; /* not ours: the subscriptions make this rare */
	sd->handled++;
	if (!dg_topic_id_valid(id)) {
		/* no answer topic can be built from an invalid id */
		dg_log_debug("ignoring request for invalid id on %s", r->topic);
		sd->rejected++;
		return;
	}
	if (strcmp(leaf, "update") == 0)
		handle_update(sd, id, r);
	else if (strcmp(leaf, "get") == 0)
		handle_get(sd, id, r);
	else if (strcmp(leaf, "delete") == 0)
		handle_delete(sd, id, r);
}

static void
on_published(dg_mqtt *m, void *cookie, dg_err result)
{
	struct shadowd *sd = cookie;

	if (result != DG_OK)
		sd->publish_failed++;
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len,
    int qos, int retained, void *arg)
{
	struct shadowd *sd = arg;
	struct req *r;

	if (retained)
		return; /* a retained request is stale by definition */
	if (len > sd->lim.max_request_bytes) {
		/* answer at once, without keeping the payload */
		char id[DG_TOPIC_ID_MAX + 1], leaf_rej[32];
		const char *leaf;

		if (dg_topic_match(sd->topic, topic, id, &leaf) && dg_topic_id_valid(id) &&
		    (strcmp(leaf, "update") == 0 || strcmp(leaf, "get") == 0 || strcmp(leaf, "delete") == 0)) {
			snprintf(leaf_rej, sizeof(leaf_rej), "%s/rejected", leaf);
			reject(sd, id, leaf_rej, 400, "Payload exceeds the maximum size", NULL);
		}
		return;
	}
	if (sd->nreqs == sd->capreqs) {
		size_t cap = sd->capreqs ? sd->capreqs * 2 : 256;
		struct req *n = realloc(sd->reqs, cap * sizeof(*n));

		if (!n) {
			dg_log_err("out of memory: request on %s dropped", topic);
			return;
		}
		sd->reqs = n;
		sd->capreqs = cap;
	}
	r = &sd->reqs[sd->nreqs];
	r->topic = strdup(topic);
	r->payload = malloc(len + 1);
	if (!r->topic || !r->payload) {
		free(r->topic);
		free(r->payload);
		dg_log_err("out of memory: request on %s dropped", topic);
		return;
	}
	memcpy(r->payload, payload, len);
	r->payload[len] = '\0';
	r->len = len;
	sd->nreqs++;
}

/* One batch: apply all requests in one transaction, then answer. */
static void
on_batch_end(dg_mqtt *m, void *arg)
{
	struct shadowd *sd = arg;
	size_t i;
	dg_err err;

	if (sd->nreqs > 0) {
		if ((err = dg_store_begin(sd->store)) != DG_OK) {
			dg_log_err("cannot begin a transaction: %s; %zu requests unanswered",
			    dg_strerror(err), sd->nreqs);
		} else {
			for (i = 0; i < sd->nreqs; i++)
				handle(sd, &sd->reqs[i]);
			if ((err = dg_store_commit(sd->store)) != DG_OK) {
				/* nothing was made durable: answer nothing, the
				 * clients time out and retry */
				dg_store_rollback(sd->store);
				dg_log_err("commit failed: %s; %zu requests unanswered",
				    dg_strerror(err), sd->nreqs);
				for (i = 0; i < sd->nouts; i++)
					free(sd->outs[i].payload);
				sd->nouts = 0;
			} else {
				/* durable, nothing answered yet (crash or pause only) */
				DG_FAULT("shadowd/after-commit", (void)0);
			}
		}
		for (i = 0; i < sd->nreqs; i++) {
			free(sd->reqs[i].topic);
			free(sd->reqs[i].payload);
		}
		sd->nreqs = 0;
	}
	for (i = 0; i < sd->nouts; i++) {
		size_t tl = strlen(sd->outs[i].topic);

		if (tl >= 15 && strcmp(sd->outs[i].topic + tl - 15, "update/accepted") == 0)
			DG_FAULT("shadowd/before-accepted", (void)0); /* crash or pause only */
		err = dg_mqtt_publish(sd->mqtt, sd->outs[i].topic, sd->outs[i].payload,
		    strlen(sd->outs[i].payload), 1, 0, on_published, sd);
		if (err != DG_OK) {
			sd->publish_failed++;
			dg_log_warn("publish to %s: %s", sd->outs[i].topic, dg_strerror(err));
		}
		free(sd->outs[i].payload);
	}
	sd->nouts = 0;
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	struct shadowd *sd = arg;

	dg_log_info("serving shadows");
	if (sd->recover) {
		sd->recover = 0;
		republish_deltas(sd);
	}
}

static void
on_disconnect(dg_mqtt *m, const char *why, void *arg)
{
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct shadowd *sd = arg;

	if (sig == SIGHUP) {
		struct cfg fresh = { 0 };

		/* only the log level is reloadable; the rest needs a restart */
		if (!sd->cfg_path) {
			dg_log_info("SIGHUP: no configuration file to reload");
			return;
		}
		if (dg_config_defaults(options, NOPTIONS, &fresh) == DG_OK &&
		    dg_config_load_file(options, NOPTIONS, &fresh, sd->cfg_path) == DG_OK) {
			dg_log_set_level((dg_log_level)dg_log_level_parse(fresh.log_level));
			dg_log_info("SIGHUP: reloaded %s", sd->cfg_path);
		} else {
			dg_log_err("SIGHUP: %s is invalid; keeping the running configuration", sd->cfg_path);
		}
		dg_config_free(options, NOPTIONS, &fresh);
		return;
	}
	dg_log_info("signal %d: stopping (%llu requests, %llu rejected)", (int)sig,
	    (unsigned long long)sd->handled, (unsigned long long)sd->rejected);
	event_base_loopbreak(sd->base);
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: deltagate-shadowd --broker URI --db FILE [--topic-root TEMPLATE] [-c FILE] [OPTIONS]\n"
	    "       deltagate-shadowd -c FILE --test-config\n\n"
	    "The reference device shadow service (see docs/protocol.md).\n\noptions:\n");
	dg_config_usage(options, NOPTIONS);
	fprintf(out, "  -c FILE                  read options from FILE (command line wins)\n"
	    "  --test-config            check the configuration, print it, exit\n"
	    "  --dump-config-example    print an example file with every option, exit\n"
	    "  --dump-man-options       print the option list as man(7) source, exit\n"
	    "  --help, --version\n");
}

int
main(int argc, char **argv)
{
	struct shadowd sd = { 0 };
	struct event *sigs[4] = { 0 };
	static const int signums[4] = { SIGINT, SIGTERM, SIGHUP, 0 };
	dg_mqtt_opts mo = { 0 };
	dg_mqtt_callbacks cb = { on_connect, on_disconnect, on_message, on_batch_end };
	int i, optind = 1, test_config = 0, rc = 1;
	char **args = NULL;
	int nargs = 0;
	dg_config_cli cli;
	dg_err err;
	dg_watchdog *wd = NULL;

	dg_log_open("deltagate-shadowd", 0, DG_LOG_INFO);
	if (dg_config_defaults(options, NOPTIONS, &sd.cfg) != DG_OK)
		return 1;
	/* -c, --test-config, --help, --version are not table options */
	if (!(args = calloc((size_t)argc + 1, sizeof(*args))))
		return 1;
	dg_config_split_args(argc, argv, &cli, args, &nargs);
	sd.cfg_path = cli.file;
	test_config = cli.test_config;
	if (cli.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (cli.version) {
		printf("deltagate-shadowd %s\n", PACKAGE_VERSION);
		rc = 0;
		goto out;
	}
	if (cli.dump_man) {
		dg_config_print_man(options, NOPTIONS);
		rc = 0;
		goto out;
	}
	if (cli.dump_example) {
		if (dg_config_print_example(options, NOPTIONS, examples, NEXAMPLES, example_header) == DG_OK)
			rc = 0;
		goto out;
	}
	if (sd.cfg_path && dg_config_load_file(options, NOPTIONS, &sd.cfg, sd.cfg_path) != DG_OK) {
		rc = 2;
		goto out;
	}
	if (dg_config_parse_args(options, NOPTIONS, &sd.cfg, nargs, args, &optind) != DG_OK) {
		rc = 2;
		goto out;
	}
	if (optind < nargs) {
		dg_log_err("unexpected argument '%s'", args[optind]);
		rc = 2;
		goto out;
	}
	if (!sd.cfg.db) {
		dg_log_err("--db FILE is required");
		rc = 2;
		goto out;
	}
	if (!(sd.topic = dg_topic_new(sd.cfg.topic_root, &err))) {
		rc = 2;
		goto out;
	}
	dg_shadow_limits_default(&sd.lim);
	sd.lim.max_doc_bytes = sd.cfg.max_doc_bytes;
	sd.lim.max_request_bytes = sd.cfg.max_request_bytes;
	if (test_config) {
		dg_config_dump(options, NOPTIONS, &sd.cfg);
		printf("# configuration OK\n");
		rc = 0;
		goto out;
	}
	dg_log_open("deltagate-shadowd", sd.cfg.syslog, (dg_log_level)dg_log_level_parse(sd.cfg.log_level));
	if (dg_fault_init() != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0 || !(sd.base = event_base_new())) {
		dg_log_err("cannot create the event loop");
		goto out;
	}
	/* the database is created as the user the daemon will run as */
	if (dg_daemon_assume_user(sd.cfg.user) != DG_OK)
		goto out;
	if (!(sd.store = dg_store_open(sd.cfg.db, migrations,
	    (int)(sizeof(migrations) / sizeof(migrations[0])), &err)))
		goto out;
	sd.recover = after_crash(&sd);
	if (dg_daemon_resume_root() != DG_OK)
		goto out;
	for (i = 0; signums[i]; i++) {
		sigs[i] = evsignal_new(sd.base, signums[i], on_signal, &sd);
		if (!sigs[i] || event_add(sigs[i], NULL) != 0)
			goto out;
	}
	mo.uri = sd.cfg.broker;
	mo.client_id = sd.cfg.client_id;
	mo.version = (int)sd.cfg.mqtt_version;
	mo.max_inflight = (int)sd.cfg.max_inflight;
	mo.clean_session = sd.cfg.clean_session;
	mo.ca_file = sd.cfg.ca_file;
	mo.cert_file = sd.cfg.cert_file;
	mo.key_file = sd.cfg.key_file;
	mo.username = sd.cfg.username;
	mo.password = sd.cfg.password;
	if (!(sd.mqtt = dg_mqtt_new(sd.base, &mo, &cb, &sd, &err)))
		goto out;
	{
		static const char *leaves[] = { "update", "get", "delete" };
		char filter[512];

		for (i = 0; i < 3; i++) {
			if (dg_topic_filter(sd.topic, leaves[i], filter, sizeof(filter)) != DG_OK ||
			    dg_mqtt_subscribe(sd.mqtt, filter, 1) != DG_OK)
				goto out;
		}
	}
	if (dg_daemon_drop_privileges(sd.cfg.user) != DG_OK)
		goto out;
	if (dg_daemon_write_pidfile(sd.cfg.pid_file) != DG_OK)
		goto out;
	dg_daemon_notify_ready();
	if (!(wd = dg_daemon_watchdog_new(sd.base, &err)))
		goto out;
	dg_log_info("deltagate-shadowd %s: broker %s, topics %s, database %s",
	    PACKAGE_VERSION, sd.cfg.broker, sd.cfg.topic_root, sd.cfg.db);
	event_base_dispatch(sd.base);
	mark_clean_stop(&sd);
	dg_daemon_notify_stopping();
	dg_daemon_remove_pidfile(sd.cfg.pid_file);
	rc = 0;
out:
	dg_daemon_watchdog_free(wd);
	dg_mqtt_free(sd.mqtt, 1000);
	for (i = 0; i < 4; i++)
		if (sigs[i])
			event_free(sigs[i]);
	for (i = 0; (size_t)i < sd.nouts; i++)
		free(sd.outs[i].payload);
	free(sd.outs);
	for (i = 0; (size_t)i < sd.nreqs; i++) {
		free(sd.reqs[i].topic);
		free(sd.reqs[i].payload);
	}
	free(sd.reqs);
	dg_store_free(sd.store);
	dg_topic_free(sd.topic);
	if (sd.base)
		event_base_free(sd.base);
	dg_config_free(options, NOPTIONS, &sd.cfg);
	free(args);
	return rc;
}
