/* deltagate shadow - the command-line client of the shadow service.
 *
 *   deltagate shadow [--broker URI] [--topic-root T] [--timeout S]
 *                    get|update|delete|watch ID [JSON]
 *
 * get/update/delete send one request with a fresh clientToken and print the
 * answer (accepted on stdout, exit 0; rejected on stderr, exit 1; no answer
 * within the timeout, exit 3). watch prints every delta of ID, one JSON
 * document per line, until interrupted, --count N deltas were printed, or
 * the timeout passes (exit 0 if --count was reached, else 3 on timeout).
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/rand.h>

#include "dg_cli.h"
#include "dg_config.h"
#include "dg_json.h"
#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_topic.h"
#include "dg_util.h"

#define EXIT_NO_ANSWER 3

struct opts {
	char *broker;
	char *topic_root;
	int64_t timeout;
	int64_t count;
	int64_t mqtt_version;
	char *ca_file, *cert_file, *key_file, *username, *password;
	int quiet;
};

static const dg_option options[] = {
	{ "broker", DG_OPT_STR, offsetof(struct opts, broker), 0, 0, "mqtt://127.0.0.1:1883", 0, NULL, "MQTT broker URI" },
	{ "topic-root", DG_OPT_STR, offsetof(struct opts, topic_root), 0, 0, DG_TOPIC_DEFAULT_ROOT, 0, NULL, "topic root template ('aws' preset)" },
	{ "timeout", DG_OPT_INT, offsetof(struct opts, timeout), 1, 86400, "10", 0, NULL, "seconds to wait for an answer (watch: total)" },
	{ "count", DG_OPT_INT, offsetof(struct opts, count), 0, INT32_MAX, "0", 0, NULL, "watch: stop after this many deltas (0: never)" },
	{ "mqtt-version", DG_OPT_INT, offsetof(struct opts, mqtt_version), 4, 5, "4", 0, NULL, "4 (3.1.1) or 5" },
	{ "ca-file", DG_OPT_STR, offsetof(struct opts, ca_file), 0, 0, NULL, 0, NULL, "CA bundle (mqtts://)" },
	{ "cert-file", DG_OPT_STR, offsetof(struct opts, cert_file), 0, 0, NULL, 0, NULL, "client certificate" },
	{ "key-file", DG_OPT_STR, offsetof(struct opts, key_file), 0, 0, NULL, 0, NULL, "client key" },
	{ "username", DG_OPT_STR, offsetof(struct opts, username), 0, 0, NULL, 0, NULL, "MQTT user name" },
	{ "password", DG_OPT_STR, offsetof(struct opts, password), 0, 0, NULL, 0, NULL, "MQTT password" },
	{ "quiet", DG_OPT_BOOL, offsetof(struct opts, quiet), 0, 0, "no", 0, NULL, "print nothing on success" },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

struct client {
	struct opts o;
	struct event_base *base;
	dg_mqtt *mqtt;
	dg_topic *topic;
	const char *cmd, *id;
	char *request;          /* payload to send */
	char token[40];         /* clientToken we wait for ("" if none) */
	char t_accepted[512], t_rejected[512], t_delta[512], t_request[512];
	int sent, status;
	int64_t seen;
};

static void
finish(struct client *c, int status)
{
	c->status = status;
	event_base_loopbreak(c->base);
}

/* Does a response belong to our request? */
static int
ours(struct client *c, const void *payload, size_t len)
{
	dg_err err;
	json_t *v;
	const char *tok;
	int match;

	if (!c->token[0])
		return 1;
	v = dg_json_parse(payload, len, 1 << 20, 64, &err, NULL, 0);
	tok = v ? dg_json_get_str(v, "clientToken") : NULL;
	match = tok && strcmp(tok, c->token) == 0;
	json_decref(v);
	return match;
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len,
    int qos, int retained, void *arg)
{
	struct client *c = arg;

	if (strcmp(c->cmd, "watch") == 0) {
		if (strcmp(topic, c->t_delta) != 0)
			return;
		fwrite(payload, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		if (c->o.count > 0 && ++c->seen >= c->o.count)
			finish(c, DG_EXIT_OK);
		return;
	}
	if (strcmp(topic, c->t_accepted) == 0 && ours(c, payload, len)) {
		if (!c->o.quiet) {
			fwrite(payload, 1, len, stdout);
			fputc('\n', stdout);
		}
		finish(c, DG_EXIT_OK);
	} else if (strcmp(topic, c->t_rejected) == 0 && ours(c, payload, len)) {
		fprintf(stderr, "deltagate shadow %s %s: rejected: %.*s\n", c->cmd, c->id,
		    (int)len, (const char *)payload);
		finish(c, DG_EXIT_FAIL);
	}
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	struct client *c = arg;
	dg_err err;

	if (c->sent || strcmp(c->cmd, "watch") == 0) {
		if (strcmp(c->cmd, "watch") == 0 && !c->o.quiet && !c->sent)
			fprintf(stderr, "watching %s\n", c->t_delta);
		c->sent = 1;
		return;
	}
	/* the broker handles our SUBSCRIBE before this PUBLISH (same
	 * connection, in order), so the answer cannot be missed */
	err = dg_mqtt_publish(m, c->t_request, c->request, strlen(c->request), 1, 0, NULL, NULL);
	if (err != DG_OK) {
		fprintf(stderr, "deltagate shadow: publish: %s\n", dg_strerror(err));
		finish(c, DG_EXIT_FAIL);
		return;
	}
	c->sent = 1;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	if (strcmp(c->cmd, "watch") == 0 && c->o.count == 0) {
		finish(c, DG_EXIT_OK);
		return;
	}
	fprintf(stderr, "deltagate shadow %s %s: no answer within %lld s (broker %s)\n",
	    c->cmd, c->id, (long long)c->o.timeout, c->o.broker);
	finish(c, EXIT_NO_ANSWER);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	finish(arg, DG_EXIT_OK);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: deltagate shadow [OPTIONS] get|update|delete|watch ID [JSON]\n\noptions:\n");
	dg_config_usage(options, NOPTIONS);
	fprintf(out, "\nupdate takes a JSON request ({\"state\":{...}}) or the plain-text\n"
	    "acknowledgement 'jobID:<id> SUCCESS|FAILURE'.\n"
	    "exit: 0 accepted, 1 rejected or failed, 2 usage, 3 no answer in time\n");
}

/* Build the request payload with a fresh clientToken. */
static int
make_request(struct client *c, const char *json)
{
	unsigned char rnd[12];
	json_t *v = NULL;
	dg_err err;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	dg_util_hex_encode(rnd, sizeof(rnd), c->token);
	if (!json) {
		v = json_object();
	} else if (!(v = dg_json_parse(json, strlen(json), 1 << 20, 64, &err, NULL, 0)) ||
	    !json_is_object(v)) {
		json_decref(v);
		if (strcmp(c->cmd, "update") != 0) {
			fprintf(stderr, "deltagate shadow: %s takes a JSON object\n", c->cmd);
			return -1;
		}
		/* not JSON: sent as is (the pattern's text acknowledgement);
		 * such a request carries no token to match */
		c->token[0] = '\0';
		return (c->request = strdup(json)) ? 0 : -1;
	}
	if (!json_object_get(v, "clientToken"))
		json_object_set_new(v, "clientToken", json_string(c->token));
	else if (json_is_string(json_object_get(v, "clientToken")) &&
	    json_string_length(json_object_get(v, "clientToken")) < sizeof(c->token))
		snprintf(c->token, sizeof(c->token), "%s", json_string_value(json_object_get(v, "clientToken")));
	else
		/* not a string, or too long to be a valid token: the service
		 * rejects it without echoing it, so match any answer */
		c->token[0] = '\0';
	c->request = dg_json_dumps(v);
	json_decref(v);
	return c->request ? 0 : -1;
}

int
dg_cli_shadow(int argc, char **argv)
{
	struct client c = { 0 };
	dg_mqtt_opts mo = { 0 };
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	struct event *timer = NULL, *sigint = NULL, *sigterm = NULL;
	struct timeval tv;
	char client_id[64];
	int optind = 1, rc = DG_EXIT_USAGE;
	const char *json = NULL;
	dg_err err;

	if (dg_config_defaults(options, NOPTIONS, &c.o) != DG_OK)
		return DG_EXIT_FAIL;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		rc = DG_EXIT_OK;
		goto out;
	}
	if (dg_config_parse_args(options, NOPTIONS, &c.o, argc, argv, &optind) != DG_OK)
		goto out;
	if (argc - optind < 2 || argc - optind > 3) {
		usage(stderr);
		goto out;
	}
	c.cmd = argv[optind];
	c.id = argv[optind + 1];
	json = argc - optind == 3 ? argv[optind + 2] : NULL;
	if (strcmp(c.cmd, "get") != 0 && strcmp(c.cmd, "update") != 0 &&
	    strcmp(c.cmd, "delete") != 0 && strcmp(c.cmd, "watch") != 0) {
		fprintf(stderr, "deltagate shadow: unknown command '%s'\n", c.cmd);
		goto out;
	}
	if (strcmp(c.cmd, "update") == 0 && !json) {
		fprintf(stderr, "deltagate shadow: update needs a JSON request\n");
		goto out;
	}
	if (!dg_topic_id_valid(c.id)) {
		fprintf(stderr, "deltagate shadow: '%s' is not a valid device id\n", c.id);
		goto out;
	}
	if (!(c.topic = dg_topic_new(c.o.topic_root, &err)))
		goto out;
	{
		char acc[32], rej[32];

		snprintf(acc, sizeof(acc), "%s/accepted", c.cmd);
		snprintf(rej, sizeof(rej), "%s/rejected", c.cmd);
		if (dg_topic_build(c.topic, c.id, c.cmd, c.t_request, sizeof(c.t_request)) != DG_OK ||
		    dg_topic_build(c.topic, c.id, acc, c.t_accepted, sizeof(c.t_accepted)) != DG_OK ||
		    dg_topic_build(c.topic, c.id, rej, c.t_rejected, sizeof(c.t_rejected)) != DG_OK ||
		    dg_topic_build(c.topic, c.id, "update/delta", c.t_delta, sizeof(c.t_delta)) != DG_OK) {
			fprintf(stderr, "deltagate shadow: topic too long\n");
			goto out;
		}
	}
	rc = DG_EXIT_FAIL;
	if (strcmp(c.cmd, "watch") != 0 && make_request(&c, json) != 0) {
		rc = DG_EXIT_USAGE;
		goto out;
	}
	if (evthread_use_pthreads() != 0 || !(c.base = event_base_new()))
		goto out;
	snprintf(client_id, sizeof(client_id), "deltagate-cli-%ld-%s", (long)getpid(),
	    c.token[0] ? c.token : "w");
	mo.uri = c.o.broker;
	mo.client_id = client_id;
	mo.version = (int)c.o.mqtt_version;
	mo.clean_session = 1;
	mo.ca_file = c.o.ca_file;
	mo.cert_file = c.o.cert_file;
	mo.key_file = c.o.key_file;
	mo.username = c.o.username;
	mo.password = c.o.password;
	mo.backoff_min_ms = 100;
	mo.backoff_max_ms = 2000;
	if (!(c.mqtt = dg_mqtt_new(c.base, &mo, &cb, &c, &err)))
		goto out;
	if (strcmp(c.cmd, "watch") == 0) {
		if (dg_mqtt_subscribe(c.mqtt, c.t_delta, 1) != DG_OK)
			goto out;
	} else if (dg_mqtt_subscribe(c.mqtt, c.t_accepted, 1) != DG_OK ||
	    dg_mqtt_subscribe(c.mqtt, c.t_rejected, 1) != DG_OK) {
		goto out;
	}
	timer = evtimer_new(c.base, on_timeout, &c);
	sigint = evsignal_new(c.base, SIGINT, on_signal, &c);
	sigterm = evsignal_new(c.base, SIGTERM, on_signal, &c);
	if (!timer || !sigint || !sigterm)
		goto out;
	tv.tv_sec = (time_t)c.o.timeout;
	tv.tv_usec = 0;
	evtimer_add(timer, &tv);
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	c.status = EXIT_NO_ANSWER;
	event_base_dispatch(c.base);
	rc = c.status;
out:
	dg_mqtt_free(c.mqtt, 500);
	if (timer)
		event_free(timer);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (c.base)
		event_base_free(c.base);
	dg_topic_free(c.topic);
	free(c.request);
	dg_config_free(options, NOPTIONS, &c.o);
	return rc;
}
