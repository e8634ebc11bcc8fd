/* shadow_bench - throughput of shadow updates through a broker.
 *
 *   shadow_bench shadow URI N DEVICES WINDOW   update -> update/accepted
 *   shadow_bench broker URI N DEVICES WINDOW   publish -> receive (reference)
 *   shadow_bench responder URI                 a stand-in for the service
 *       that does nothing but answer every state/<id>/update with an
 *       update/accepted and an update/documents of the service's sizes
 *       (no JSON, no SQLite): the ceiling of any service on this client
 *       library, broker and machine (reference)
 *   shadow_bench publish URI < LINES            publish "TOPIC PAYLOAD"
 *       lines from stdin at QoS 1 and exit when every one is acknowledged
 *       (bench/coap sends its 1,000 commands with it)
 *
 * Keeps WINDOW requests outstanding (pipelined), QoS 1 both ways, and
 * prints "<mode> N messages in S s: R msg/s".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_util.h"

struct bench {
	struct event_base *base;
	dg_mqtt *m;
	int shadow;
	int responder;
	int publisher;
	long acked;
	long n, devices, window, sent, received, rejected;
	uint64_t t0, t1;
	int started;
};

static void
send_more(struct bench *b)
{
	char topic[128], payload[128];

	while (b->sent < b->n && b->sent - b->received < b->window) {
		long dev = b->sent % b->devices;
		int len;

		if (b->shadow)
			snprintf(topic, sizeof(topic), "state/bench%ld/update", dev);
		else
			snprintf(topic, sizeof(topic), "bench/bench%ld/echo", dev);
		len = snprintf(payload, sizeof(payload),
		    "{\"state\":{\"reported\":{\"n\":%ld,\"fw\":\"1.2.3\"}}}", b->sent);
		if (dg_mqtt_publish(b->m, topic, payload, (size_t)len, 1, 0, NULL, NULL) != DG_OK)
			break;
		b->sent++;
	}
}

/* The service answers an update of L bytes with update/accepted (the
 * request with metadata, version and timestamp: about 4 L for this bench's
 * 45-byte requests) and update/documents (previous and current: about
 * 8 L); answer with payloads of those sizes. */
static void
respond(struct bench *b, const char *topic, const void *payload, size_t len)
{
	static char out[8192];
	char t[256];
	size_t n;

	if (len > 1000 || strlen(topic) + 16 > sizeof(t))
		return;
	n = 4 * len;
	memset(out, ' ', n);
	memcpy(out, payload, len);
	snprintf(t, sizeof(t), "%s/accepted", topic);
	dg_mqtt_publish(b->m, t, out, n, 1, 0, NULL, NULL);
	n = 8 * len;
	memset(out, ' ', n);
	memcpy(out, payload, len);
	snprintf(t, sizeof(t), "%s/documents", topic);
	dg_mqtt_publish(b->m, t, out, n, 1, 0, NULL, NULL);
	b->received++;
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len,
    int qos, int retained, void *arg)
{
	struct bench *b = arg;

	if (b->responder) {
		respond(b, topic, payload, len);
		return;
	}
	if (strncmp(topic, b->shadow ? "state/bench" : "bench/bench", 11) != 0)
		return; /* another client's traffic */
	if (strstr(topic, "/rejected"))
		b->rejected++;
	b->received++;
	if (b->received >= b->n) {
		b->t1 = dg_util_now_ms();
		event_base_loopbreak(b->base);
		return;
	}
	send_more(b);
}

static void
on_puback(dg_mqtt *m, void *cookie, dg_err result)
{
	struct bench *b = cookie;

	if (result != DG_OK) {
		fprintf(stderr, "publish failed: %s\n", dg_strerror(result));
		b->rejected++;
	}
	if (++b->acked == b->sent)
		event_base_loopbreak(b->base);
}

/* Every stdin line "TOPIC PAYLOAD", read at start; b->sent of them. */
static void
publish_lines(struct bench *b)
{
	char *line = NULL, *sp;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (!(sp = strchr(line, ' ')))
			continue;
		*sp++ = '\0';
		if (dg_mqtt_publish(b->m, line, sp, strlen(sp), 1, 0, on_puback, b) != DG_OK) {
			fprintf(stderr, "cannot publish to %s\n", line);
			b->rejected++;
			continue;
		}
		b->sent++;
	}
	free(line);
	if (b->sent == 0)
		event_base_loopbreak(b->base);
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	struct bench *b = arg;

	if (b->started)
		return;
	b->started = 1;
	if (b->publisher) {
		publish_lines(b);
		return;
	}
	/* give the broker a moment to install the subscriptions */
	usleep(200000);
	b->t0 = dg_util_now_ms();
	send_more(b);
}

int
main(int argc, char **argv)
{
	struct bench b = { 0 };
	dg_mqtt_opts o = { 0 };
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	dg_err err;
	char id[64];

	b.responder = argc == 3 && strcmp(argv[1], "responder") == 0;
	b.publisher = argc == 3 && strcmp(argv[1], "publish") == 0;
	if (argc != 6 && !b.responder && !b.publisher) {
		fprintf(stderr, "usage: shadow_bench shadow|broker URI N DEVICES WINDOW\n"
		    "       shadow_bench responder|publish URI\n");
		return 2;
	}
	b.shadow = strcmp(argv[1], "shadow") == 0;
	if (b.responder || b.publisher) {
		b.n = b.devices = 1;
		b.window = 1024;
	} else {
		b.n = strtol(argv[3], NULL, 10);
		b.devices = strtol(argv[4], NULL, 10);
		b.window = strtol(argv[5], NULL, 10);
	}
	if (b.n <= 0 || b.devices <= 0 || b.window <= 0)
		return 2;
	dg_log_open("shadow_bench", 0, DG_LOG_WARN);
	evthread_use_pthreads();
	b.base = event_base_new();
	snprintf(id, sizeof(id), "shadow-bench-%ld", (long)getpid());
	o.uri = argv[2];
	o.client_id = id;
	o.max_inflight = (int)b.window;
	o.clean_session = 1;
	if (!(b.m = dg_mqtt_new(b.base, &o, &cb, &b, &err)))
		return 1;
	if (b.publisher) {
		event_base_dispatch(b.base);
		dg_mqtt_free(b.m, 1000);
		event_base_free(b.base);
		printf("published %ld, acknowledged %ld\n", b.sent, b.acked);
		return b.rejected || b.acked != b.sent ? 1 : 0;
	}
	if (b.responder) {
		dg_mqtt_subscribe(b.m, "state/+/update", 1);
		event_base_dispatch(b.base); /* until killed */
		return 0;
	}
	if (b.shadow) {
		dg_mqtt_subscribe(b.m, "state/+/update/accepted", 1);
		dg_mqtt_subscribe(b.m, "state/+/update/rejected", 1);
	} else {
		dg_mqtt_subscribe(b.m, "bench/+/echo", 1);
	}
	event_base_dispatch(b.base);
	if (b.received < b.n) {
		fprintf(stderr, "incomplete: %ld of %ld\n", b.received, b.n);
		return 1;
	}
	printf("%s %ld messages (%ld devices, window %ld) in %.3f s: %.0f msg/s%s\n",
	    b.shadow ? "shadow-update" : "broker-echo", b.n, b.devices, b.window,
	    (double)(b.t1 - b.t0) / 1000.0, (double)b.n * 1000.0 / (double)(b.t1 - b.t0),
	    b.rejected ? " (with rejections!)" : "");
	dg_mqtt_free(b.m, 1000);
	event_base_free(b.base);
	return b.rejected ? 1 : 0;
}
