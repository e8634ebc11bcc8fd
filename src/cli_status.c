/* deltagate status - the fleet at a glance: the gateways' roll-up shadows
 * (per job: queued, in progress, succeeded, after fallback, failed) and,
 * with --job, each device's reported state. Shadow get only, no topic of
 * its own; works with any topic root (the AWS preset too). */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dg_cli.h"
#include "dg_json.h"
#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_rollout.h"
#include "dg_topic.h"
#include "dg_util.h"

#define EXIT_NO_ANSWER 3
#define MAX_IDS 100000

struct target {
	char *id;
	int gateway;     /* a gateway (roll-up) rather than a device */
	json_t *doc;     /* get/accepted, or NULL */
	int answered;
};

struct st {
	struct event_base *base;
	dg_mqtt *mqtt;
	dg_topic *topic;
	struct target *t;
	size_t n, answered;
	char token[64];
};

static struct target *
find(struct st *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->t[i].id, id) == 0)
			return &s->t[i];
	return NULL;
}

static int
add(struct st *s, const char *id, int gateway)
{
	struct target *n;

	if (find(s, id) || s->n >= MAX_IDS)
		return 0;
	if (!dg_topic_id_valid(id)) {
		fprintf(stderr, "deltagate status: '%s' is not a valid id\n", id);
		return -1;
	}
	if (!(n = realloc(s->t, (s->n + 1) * sizeof(*n))))
		return -1;
	s->t = n;
	memset(&n[s->n], 0, sizeof(*n));
	if (!(n[s->n].id = strdup(id)))
		return -1;
	n[s->n++].gateway = gateway;
	return 0;
}

static void
send_gets(struct st *s)
{
	char topic[512], msg[128];
	size_t i;

	snprintf(msg, sizeof(msg), "{\"clientToken\":\"%s\"}", s->token);
	for (i = 0; i < s->n; i++)
		if (!s->t[i].answered && dg_topic_build(s->topic, s->t[i].id, "get", topic, sizeof(topic)) == DG_OK)
			dg_mqtt_publish(s->mqtt, topic, msg, strlen(msg), 1, 0, NULL, NULL);
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	(void)m;
	send_gets(arg);
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
    int retained, void *arg)
{
	struct st *s = arg;
	char id[DG_TOPIC_ID_MAX + 1];
	const char *leaf, *tok;
	struct target *t;
	json_t *msg;
	dg_err e;

	(void)m;
	(void)qos;
	(void)retained;
	if (!dg_topic_match(s->topic, topic, id, &leaf) || !(t = find(s, id)) || t->answered)
		return;
	if (!(msg = dg_json_parse(payload, len, 1 << 20, 32, &e, NULL, 0)))
		return;
	tok = dg_json_get_str(msg, "clientToken");
	if (tok && strcmp(tok, s->token) == 0) {
		if (strcmp(leaf, "get/accepted") == 0)
			t->doc = json_incref(msg);
		if (strcmp(leaf, "get/accepted") == 0 || strcmp(leaf, "get/rejected") == 0) {
			t->answered = 1;
			if (++s->answered == s->n)
				event_base_loopbreak(s->base);
		}
	}
	json_decref(msg);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct st *)arg)->base);
}

/* The devices behind gateways: each gateway's shadow lists them in
 * reported.devices (deltagated publishes it). A comma-separated list, NULL
 * when a gateway did not answer in time or lists none (said on stderr). */
char *
dg_cli_gateway_devices(const char *broker, const char *root, char *const *gws, size_t ngw,
    int timeout_s)
{
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	dg_mqtt_opts mo = { 0 };
	struct timeval tv = { (time_t)timeout_s, 0 };
	struct event *tev = NULL;
	char filter[512], cid[64], *out = NULL;
	size_t i, j, len = 0;
	struct st s;
	dg_err e;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < ngw; i++)
		if (add(&s, gws[i], 1) != 0)
			goto done;
	if (!(s.topic = dg_topic_new(root, &e)) || evthread_use_pthreads() != 0 ||
	    !(s.base = event_base_new()))
		goto done;
	snprintf(cid, sizeof(cid), "deltagate-fleet-%ld", (long)getpid());
	snprintf(s.token, sizeof(s.token), "fleet:%ld:%" PRIu64, (long)getpid(), dg_util_now_ms());
	mo.uri = broker;
	mo.client_id = cid;
	mo.version = 4;
	mo.clean_session = 1;
	if (!(s.mqtt = dg_mqtt_new(s.base, &mo, &cb, &s, &e)) ||
	    dg_topic_filter(s.topic, "get/accepted", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(s.mqtt, filter, 1) != DG_OK ||
	    dg_topic_filter(s.topic, "get/rejected", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(s.mqtt, filter, 1) != DG_OK || !(tev = evtimer_new(s.base, on_timeout, &s))) {
		fprintf(stderr, "deltagate: %s: cannot ask the gateways' shadows\n", broker);
		goto done;
	}
	evtimer_add(tev, &tv);
	event_base_dispatch(s.base);
	for (i = 0; i < s.n; i++) {
		json_t *devs = s.t[i].doc ? json_object_get(json_object_get(json_object_get(s.t[i].doc,
		    "state"), "reported"), "devices") : NULL;

		if (!json_is_array(devs) || json_array_size(devs) == 0) {
			fprintf(stderr, "deltagate: gateway %s: %s\n", s.t[i].id, !s.t[i].answered ?
			    "its shadow did not answer" : "its shadow lists no devices (reported.devices)");
			free(out);
			out = NULL;
			goto done;
		}
		for (j = 0; j < json_array_size(devs); j++) {
			const char *id = json_string_value(json_array_get(devs, j));
			size_t l = id ? strlen(id) : 0;
			char *n;

			if (!l || !dg_topic_id_valid(id) || !(n = realloc(out, len + l + 2)))
				continue;
			out = n;
			if (len)
				out[len++] = ',';
			memcpy(out + len, id, l + 1);
			len += l;
		}
	}
done:
	if (tev)
		event_free(tev);
	dg_mqtt_free(s.mqtt, 1000);
	for (i = 0; i < s.n; i++) {
		free(s.t[i].id);
		json_decref(s.t[i].doc);
	}
	free(s.t);
	dg_topic_free(s.topic);
	if (s.base)
		event_base_free(s.base);
	return out;
}

static const char *const keys[] = { "queued", "inProgress", "succeeded", "succeededAfterFallback", "failed" };

/* The summary and table as JSON. */
static json_t *
report(struct st *s, const char *job)
{
	json_t *out = json_object(), *gws = json_object(), *total = json_object(), *devs = json_array();
	size_t i, k;

	for (i = 0; i < s->n; i++) {
		struct target *t = &s->t[i];
		json_t *jobs, *per = json_object();
		const char *jid;
		json_t *c;

		if (!t->gateway)
			continue;
		jobs = json_object_get(json_object_get(json_object_get(t->doc, "state"), "reported"), "jobs");
		json_object_foreach(jobs, jid, c) {
			json_t *tj;

			if (job && strcmp(job, jid) != 0)
				continue;
			json_object_set(per, jid, c);
			if (!(tj = json_object_get(total, jid))) {
				tj = json_object();
				for (k = 0; k < 5; k++)
					json_object_set_new(tj, keys[k], json_integer(0));
				json_object_set_new(total, jid, tj);
			}
			for (k = 0; k < 5; k++) {
				int64_t a = 0, b = 0;

				dg_json_get_i64(tj, keys[k], &a);
				dg_json_get_i64(c, keys[k], &b);
				json_object_set_new(tj, keys[k], json_integer(a + b));
			}
		}
		json_object_set_new(gws, t->id, t->answered && t->doc ? per : (json_decref(per), json_null()));
	}
	for (i = 0; i < s->n; i++) {
		struct target *t = &s->t[i];
		json_t *rep = json_object_get(json_object_get(t->doc, "state"), "reported");
		json_t *des = json_object_get(json_object_get(t->doc, "state"), "desired");
		const char *rjob = dg_json_get_str(rep, "jobId"), *status = dg_json_get_str(rep, "status");
		int64_t rc = -1, ext = 0, ts = 0;
		json_t *meta;

		if (t->gateway)
			continue;
		if (job && (!rjob || strcmp(rjob, job) != 0)) {
			/* not (yet) reporting on the job */
			const char *djob = dg_json_get_str(des, "jobId");

			json_array_append_new(devs, json_pack("{s:s,s:s,s:s?,s:s?}", "device", t->id, "status",
			    djob && strcmp(djob, job) == 0 ? "QUEUED" : "NOT_TARGETED", "version",
			    dg_json_get_str(rep, "softwareVersion"), "desiredVersion",
			    dg_json_get_str(des, "softwareVersion")));
			continue;
		}
		dg_json_get_i64(rep, "resultCode", &rc);
		dg_json_get_i64(rep, "extendedResultCode", &ext);
		meta = json_object_get(json_object_get(json_object_get(t->doc, "metadata"), "reported"), "status");
		dg_json_get_i64(meta, "timestamp", &ts);
		json_array_append_new(devs, json_pack("{s:s,s:s,s:s?,s:s?,s:s,s:I,s:I,s:I}", "device", t->id,
		    "status", status ? status : "?", "version", dg_json_get_str(rep, "softwareVersion"),
		    "desiredVersion", dg_json_get_str(des, "softwareVersion"), "outcome",
		    rc == 1 ? "direct" : rc == 2 ? "fallback" : "-", "resultCode", (json_int_t)rc,
		    "extendedResultCode", (json_int_t)ext, "timestamp", (json_int_t)ts));
	}
	json_object_set_new(out, "gateways", gws);
	json_object_set_new(out, "total", total);
	if (job)
		json_object_set_new(out, "devices", devs);
	else
		json_decref(devs);
	return out;
}

static void
print_text(json_t *r, const char *job)
{
	json_t *gws = json_object_get(r, "gateways"), *total = json_object_get(r, "total"), *per, *c;
	const char *gw, *jid;
	size_t i, k;

	printf("%-24s %-24s %8s %10s %10s %10s %8s\n", "GATEWAY", "JOB", "QUEUED", "INPROGRESS",
	    "SUCCEEDED", "FALLBACK", "FAILED");
	json_object_foreach(gws, gw, per) {
		if (json_is_null(per)) {
			printf("%-24s (no shadow)\n", gw);
			continue;
		}
		json_object_foreach(per, jid, c) {
			int64_t v[5] = { 0 };

			for (k = 0; k < 5; k++)
				dg_json_get_i64(c, keys[k], &v[k]);
			printf("%-24s %-24s %8" PRId64 " %10" PRId64 " %10" PRId64 " %10" PRId64 " %8" PRId64 "\n",
			    gw, jid, v[0], v[1], v[2], v[3], v[4]);
		}
	}
	json_object_foreach(total, jid, c) {
		int64_t v[5] = { 0 };

		for (k = 0; k < 5; k++)
			dg_json_get_i64(c, keys[k], &v[k]);
		printf("%-24s %-24s %8" PRId64 " %10" PRId64 " %10" PRId64 " %10" PRId64 " %8" PRId64 "\n",
		    "TOTAL", jid, v[0], v[1], v[2], v[3], v[4]);
	}
	if (!job)
		return;
	printf("\n%-24s %-12s %-10s %-10s %-8s %6s %12s\n", "DEVICE", "STATUS", "VERSION", "DESIRED",
	    "OUTCOME", "RESULT", "EXTENDED");
	for (i = 0; i < json_array_size(json_object_get(r, "devices")); i++) {
		json_t *d = json_array_get(json_object_get(r, "devices"), i);
		int64_t rc = -1, ext = 0;
		const char *v = dg_json_get_str(d, "version"), *dv = dg_json_get_str(d, "desiredVersion");

		dg_json_get_i64(d, "resultCode", &rc);
		dg_json_get_i64(d, "extendedResultCode", &ext);
		printf("%-24s %-12s %-10s %-10s %-8s %6s   0x%08" PRIx64 "\n", dg_json_get_str(d, "device"),
		    dg_json_get_str(d, "status"), v ? v : "-", dv ? dv : "-",
		    dg_json_get_str(d, "outcome") ? dg_json_get_str(d, "outcome") : "-",
		    rc >= 0 ? (rc == 0 ? "0" : rc == 1 ? "1" : "2") : "-", (uint64_t)ext);
	}
}

/* Devices of job from the operator's rollout state, when it has them. */
static void
devices_from_state(struct st *s, const char *state_dir, const char *job)
{
	char dir[4096];
	dg_store *db;
	sqlite3_stmt *q;
	dg_err e;

	if (!state_dir) {
		if (dg_rollout_default_dir(dir, sizeof(dir)) != DG_OK)
			return;
		state_dir = dir;
	}
	if (access(state_dir, F_OK) != 0 || !(db = dg_rollout_open(state_dir, &e)))
		return;
	if ((q = dg_store_prepare(db, "SELECT device FROM rdevice WHERE job_id = ? ORDER BY ord"))) {
		sqlite3_bind_text(q, 1, job, -1, SQLITE_STATIC);
		while (sqlite3_step(q) == SQLITE_ROW)
			add(s, (const char *)sqlite3_column_text(q, 0), 0);
		sqlite3_reset(q);
	}
	dg_store_free(db);
}

int
dg_cli_status(int argc, char **argv)
{
	const char *broker = "mqtt://127.0.0.1:1883", *root = DG_TOPIC_DEFAULT_ROOT, *job = NULL;
	const char *state_dir = NULL, *devlist = NULL;
	int json = 0, watch = 0, rc = DG_EXIT_USAGE, i, ngw = 0;
	int64_t timeout = 10, interval = 2;
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	dg_mqtt_opts mo = { 0 };
	struct st s;
	char filter[512], cid[64];
	struct event *tev = NULL;
	dg_err e;

	memset(&s, 0, sizeof(s));
	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			printf("usage: deltagate status [--job ID] [--gateway GW ...] [--devices ID,...]\n"
			    "         [--state-dir DIR] [--watch] [--json] [--broker URI] [--topic-root T]\n"
			    "         [--timeout S]\n\n"
			    "Per job and gateway, and in total: devices queued, in progress, succeeded,\n"
			    "succeeded after the full-image fallback, failed - from the gateways' roll-up\n"
			    "shadows. --job adds a row per device (its reported state: version, delta or\n"
			    "full, result codes); the devices come from --devices or from deploy's state.\n"
			    "--watch refreshes every 2 s. Exit status: 0, 1 error, 2 bad options,\n"
			    "3 a shadow did not answer within --timeout.\n");
			return DG_EXIT_OK;
		}
		if (strcmp(o, "--json") == 0) {
			json = 1;
			continue;
		}
		if (strcmp(o, "--watch") == 0) {
			watch = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "deltagate status: %s needs a value\n", o);
			return DG_EXIT_USAGE;
		}
		if (strcmp(o, "--job") == 0) job = argv[++i];
		else if (strcmp(o, "--broker") == 0) broker = argv[++i];
		else if (strcmp(o, "--topic-root") == 0) root = argv[++i];
		else if (strcmp(o, "--state-dir") == 0) state_dir = argv[++i];
		else if (strcmp(o, "--devices") == 0) devlist = argv[++i];
		else if (strcmp(o, "--gateway") == 0) {
			if (add(&s, argv[++i], 1) != 0)
				return DG_EXIT_USAGE;
			ngw++;
		} else if (strcmp(o, "--timeout") == 0) {
			if (dg_util_parse_i64(argv[++i], 1, 3600, &timeout) != DG_OK) {
				fprintf(stderr, "deltagate status: --timeout: 1..3600\n");
				return DG_EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "deltagate status: unknown option '%s'\n", o);
			return DG_EXIT_USAGE;
		}
	}
	if (!ngw && !job) {
		fprintf(stderr, "deltagate status: --gateway GW or --job ID is required\n");
		return DG_EXIT_USAGE;
	}
	if (job && devlist) {
		char *copy = strdup(devlist), *tok, *save = NULL;

		for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save))
			if (add(&s, tok, 0) != 0) {
				free(copy);
				return DG_EXIT_USAGE;
			}
		free(copy);
	} else if (job) {
		devices_from_state(&s, state_dir, job);
	}
	rc = DG_EXIT_FAIL;
	if (!(s.topic = dg_topic_new(root, &e)))
		goto out;
	if (evthread_use_pthreads() != 0 || !(s.base = event_base_new()))
		goto out;
	snprintf(cid, sizeof(cid), "deltagate-status-%ld", (long)getpid());
	mo.uri = broker;
	mo.client_id = cid;
	mo.version = 4;
	mo.clean_session = 1;
	mo.max_inflight = 256;
	if (!(s.mqtt = dg_mqtt_new(s.base, &mo, &cb, &s, &e)))
		goto out;
	if (dg_topic_filter(s.topic, "get/accepted", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(s.mqtt, filter, 1) != DG_OK ||
	    dg_topic_filter(s.topic, "get/rejected", filter, sizeof(filter)) != DG_OK ||
	    dg_mqtt_subscribe(s.mqtt, filter, 1) != DG_OK)
		goto out;
	if (!(tev = evtimer_new(s.base, on_timeout, &s)))
		goto out;
	for (;;) {
		struct timeval tv = { (time_t)timeout, 0 };
		json_t *r;
		size_t k;

		snprintf(s.token, sizeof(s.token), "status:%ld:%" PRIu64, (long)getpid(), dg_util_now_ms());
		for (k = 0; k < s.n; k++) {
			json_decref(s.t[k].doc);
			s.t[k].doc = NULL;
			s.t[k].answered = 0;
		}
		s.answered = 0;
		if (dg_mqtt_is_connected(s.mqtt))
			send_gets(&s);
		evtimer_add(tev, &tv);
		if (s.n)
			event_base_dispatch(s.base);
		evtimer_del(tev);
		r = report(&s, job);
		if (watch && isatty(1))
			printf("\033[H\033[2J");
		if (json) {
			char *text = dg_json_dumps(r);

			printf("%s\n", text ? text : "{}");
			free(text);
		} else {
			print_text(r, job);
		}
		fflush(stdout);
		json_decref(r);
		rc = s.answered == s.n ? DG_EXIT_OK : EXIT_NO_ANSWER;
		if (rc != DG_EXIT_OK)
			fprintf(stderr, "deltagate status: %zu of %zu shadows did not answer\n",
			    s.n - s.answered, s.n);
		if (!watch)
			break;
		sleep((unsigned)interval);
	}
out:
	if (tev)
		event_free(tev);
	dg_mqtt_free(s.mqtt, 1000);
	if (s.base)
		event_base_free(s.base);
	dg_topic_free(s.topic);
	for (i = 0; i < (int)s.n; i++) {
		free(s.t[i].id);
		json_decref(s.t[i].doc);
	}
	free(s.t);
	return rc;
}
