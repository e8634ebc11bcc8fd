/* dg_mqtt - Paho MQTTAsync bridged into a libevent loop. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <MQTTAsync.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/rand.h>

#include "dg_json.h"
#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_util.h"

enum item_kind { IT_MESSAGE, IT_CONNECTED, IT_CONNECT_FAILED, IT_LOST, IT_PUB_DONE };

/* One event handed from a Paho thread to the loop. */
struct item {
	STAILQ_ENTRY(item) link;
	enum item_kind kind;
	struct pubctx *pub;     /* IT_PUB_DONE */
	int ok;                 /* IT_PUB_DONE */
	int qos, retained;      /* IT_MESSAGE */
	char *topic;            /* IT_MESSAGE */
	size_t len;
	char why[128];          /* IT_CONNECT_FAILED, IT_LOST */
	unsigned char payload[]; /* IT_MESSAGE */
};
STAILQ_HEAD(itemq, item);

/* A publish: queued locally while the window is full, then in Paho. */
struct pubctx {
	TAILQ_ENTRY(pubctx) link;
	dg_mqtt *m;
	dg_mqtt_pub_cb cb;
	void *cookie;
	int queued;             /* still in m->sendq, not handed to Paho */
	int orphan;             /* outcome already reported as a disconnect */
	char *topic;
	void *payload;
	size_t len;
	int qos, retain;
	uint64_t sent_ms;       /* handed to Paho (monotonic) */
};
TAILQ_HEAD(pubq, pubctx);

struct sub {
	char *filter;
	int qos;
};

struct dg_mqtt {
	struct event_base *base;
	struct event *wake;     /* activated from Paho threads */
	struct event *retry;    /* reconnect timer */
	struct event *tick;     /* 1 s watchdog; also keeps the loop alive */
	MQTTAsync client;
	dg_mqtt_callbacks cbs;
	void *arg;
	char *uri, *client_id, *ca_file, *cert_file, *key_file, *username, *password;
	int version, max_inflight, keepalive, clean_session;
	int ack_timeout_ms;
	int backoff_min_ms, backoff_max_ms, backoff_ms;
	int connected, connecting, closing;
	struct sub *subs;
	int nsubs;

	pthread_mutex_t lock;   /* guards q, and nothing else */
	struct itemq q;

	/* loop-thread only */
	struct pubq inflight;   /* handed to Paho */
	struct pubq sendq;      /* waiting for a slot */
	struct pubq orphans;    /* sent before a disconnect, Paho may still answer */
	int ninflight;
};

int
dg_mqtt_topic_valid(const char *s, int allow_wildcards)
{
	size_t len, i;

	if (!s || !*s)
		return 0;
	len = strlen(s);
	if (len > 65535 || !dg_json_utf8_valid(s, len))
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '+' || s[i] == '#') {
			if (!allow_wildcards)
				return 0;
			/* a wildcard fills a whole level; '#' only the last */
			if ((i > 0 && s[i - 1] != '/') ||
			    (s[i] == '+' && i + 1 < len && s[i + 1] != '/') ||
			    (s[i] == '#' && i + 1 != len))
				return 0;
		}
	}
	return 1;
}

static void
push(dg_mqtt *m, struct item *it)
{
	pthread_mutex_lock(&m->lock);
	STAILQ_INSERT_TAIL(&m->q, it, link);
	pthread_mutex_unlock(&m->lock);
	event_active(m->wake, EV_READ, 0);
}

static void
push_simple(dg_mqtt *m, enum item_kind kind, const char *why)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it)
		return; /* nothing sane to do in a Paho thread; the retry timer recovers */
	it->kind = kind;
	if (why)
		snprintf(it->why, sizeof(it->why), "%s", why);
	push(m, it);
}

/* ---------------------------------------------------------- Paho threads */

static int
paho_message(void *ctx, char *topic, int topiclen, MQTTAsync_message *msg)
{
	dg_mqtt *m = ctx;
	size_t tlen = topiclen > 0 ? (size_t)topiclen : strlen(topic);
	size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	struct item *it = malloc(sizeof(*it) + plen + 1 + tlen + 1);

	if (it) {
		memset(it, 0, sizeof(*it));
		it->kind = IT_MESSAGE;
		it->qos = msg->qos;
		it->retained = msg->retained;
		it->len = plen;
		memcpy(it->payload, msg->payload, plen);
		it->payload[plen] = '\0';
		it->topic = (char *)it->payload + plen + 1;
		memcpy(it->topic, topic, tlen);
		it->topic[tlen] = '\0';
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	if (it)
		push(m, it);
	else
		dg_log_err("mqtt: out of memory: message dropped");
	return 1;
}

static void
paho_lost(void *ctx, char *cause)
{
	push_simple(ctx, IT_LOST, cause ? cause : "connection lost");
}

static void
paho_connected(void *ctx, MQTTAsync_successData *resp)
{
	push_simple(ctx, IT_CONNECTED, NULL);
}

static void
paho_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	char why[128];

	snprintf(why, sizeof(why), "connect failed: %s (%d)",
	    resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : -1),
	    resp ? resp->code : -1);
	push_simple(ctx, IT_CONNECT_FAILED, why);
}

static void
pub_result(struct pubctx *p, int ok)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it)
		return;
	it->kind = IT_PUB_DONE;
	it->pub = p;
	it->ok = ok;
	push(p->m, it);
}

static void
paho_pub_ok(void *ctx, MQTTAsync_successData *resp)
{
	pub_result(ctx, 1);
}

static void
paho_pub_failed(void *ctx, MQTTAsync_failureData *resp)
{
	pub_result(ctx, 0);
}

static void
paho_sub_failed(void *ctx, MQTTAsync_failureData *resp)
{
	dg_log_err("mqtt: subscribe failed (%d)", resp ? resp->code : -1);
}

/* ---------------------------------------------------------- loop thread */

static void connect_now(dg_mqtt *m);

static void
schedule_retry(dg_mqtt *m)
{
	struct timeval tv;
	uint32_t r = 0;
	int delay;

	if (m->closing)
		return;
	/* full jitter around the current step: [0.5, 1.5) x backoff */
	RAND_bytes((unsigned char *)&r, sizeof(r));
	delay = m->backoff_ms / 2 + (int)(r % (uint32_t)(m->backoff_ms > 0 ? m->backoff_ms : 1));
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(m->retry, &tv);
	m->backoff_ms = m->backoff_ms * 2 > m->backoff_max_ms ? m->backoff_max_ms : m->backoff_ms * 2;
}

static void
free_pub(struct pubctx *p)
{
	free(p->topic);
	free(p->payload);
	free(p);
}

static int
send_pub(dg_mqtt *m, struct pubctx *p)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	int rc;

	ro.onSuccess = paho_pub_ok;
	ro.onFailure = paho_pub_failed;
	ro.context = p;
	msg.payload = p->payload;
	msg.payloadlen = (int)p->len;
	msg.qos = p->qos;
	msg.retained = p->retain;
	rc = MQTTAsync_sendMessage(m->client, p->topic, &msg, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		return rc;
	p->queued = 0;
	p->sent_ms = dg_util_now_ms();
	TAILQ_INSERT_TAIL(&m->inflight, p, link);
	m->ninflight++;
	return MQTTASYNC_SUCCESS;
}

static void
complete(dg_mqtt *m, struct pubctx *p, dg_err result)
{
	if (p->cb)
		p->cb(m, p->cookie, result);
	free_pub(p);
}

static void
flush_sendq(dg_mqtt *m)
{
	struct pubctx *p;

	while (m->connected && m->ninflight < m->max_inflight && (p = TAILQ_FIRST(&m->sendq))) {
		int rc;

		TAILQ_REMOVE(&m->sendq, p, link);
		if ((rc = send_pub(m, p)) != MQTTASYNC_SUCCESS) {
			dg_log_err("mqtt: publish to %s failed: %s", p->topic, MQTTAsync_strerror(rc));
			complete(m, p, DG_ERR_MQTT);
		}
	}
}

/* The connection is gone: report every publish not acknowledged as failed
 * now (its owner retries), and keep those Paho holds as orphans so that a
 * late answer from Paho finds valid memory and is ignored. */
static void
fail_pending(dg_mqtt *m)
{
	struct pubctx *p;

	while ((p = TAILQ_FIRST(&m->inflight))) {
		TAILQ_REMOVE(&m->inflight, p, link);
		if (p->cb)
			p->cb(m, p->cookie, DG_ERR_MQTT_DISCONNECTED);
		p->cb = NULL;
		p->orphan = 1;
		TAILQ_INSERT_TAIL(&m->orphans, p, link);
	}
	m->ninflight = 0;
	while ((p = TAILQ_FIRST(&m->sendq))) {
		TAILQ_REMOVE(&m->sendq, p, link);
		complete(m, p, DG_ERR_MQTT_DISCONNECTED);
	}
}

static void
resubscribe(dg_mqtt *m)
{
	int i;

	for (i = 0; i < m->nsubs; i++) {
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		int rc;

		ro.onFailure = paho_sub_failed;
		ro.context = m;
		rc = MQTTAsync_subscribe(m->client, m->subs[i].filter, m->subs[i].qos, &ro);
		if (rc != MQTTASYNC_SUCCESS)
			dg_log_err("mqtt: subscribe %s: %s", m->subs[i].filter, MQTTAsync_strerror(rc));
	}
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	dg_mqtt *m = arg;
	struct itemq batch;
	struct item *it;
	int messages = 0;

	pthread_mutex_lock(&m->lock);
	STAILQ_INIT(&batch);
	STAILQ_CONCAT(&batch, &m->q);
	pthread_mutex_unlock(&m->lock);

	while ((it = STAILQ_FIRST(&batch))) {
		STAILQ_REMOVE_HEAD(&batch, link);
		switch (it->kind) {
		case IT_MESSAGE:
			messages++;
			if (m->cbs.on_message)
				m->cbs.on_message(m, it->topic, it->payload, it->len,
				    it->qos, it->retained, m->arg);
			break;
		case IT_CONNECTED:
			m->connecting = 0;
			m->connected = 1;
			m->backoff_ms = m->backoff_min_ms;
			dg_log_info("mqtt: connected to %s as %s", m->uri, m->client_id);
			resubscribe(m);
			if (m->cbs.on_connect)
				m->cbs.on_connect(m, m->arg);
			flush_sendq(m);
			break;
		case IT_CONNECT_FAILED:
		case IT_LOST:
			m->connecting = 0;
			if (m->connected || it->kind == IT_CONNECT_FAILED)
				dg_log_warn("mqtt: %s: %s", m->uri, it->why);
			m->connected = 0;
			fail_pending(m);
			if (m->cbs.on_disconnect)
				m->cbs.on_disconnect(m, it->why, m->arg);
			schedule_retry(m);
			break;
		case IT_PUB_DONE:
			if (it->pub->orphan) {
				TAILQ_REMOVE(&m->orphans, it->pub, link);
				free_pub(it->pub);
				break;
			}
			TAILQ_REMOVE(&m->inflight, it->pub, link);
			m->ninflight--;
			complete(m, it->pub, it->ok ? DG_OK : DG_ERR_MQTT_DISCONNECTED);
			flush_sendq(m);
			break;
		}
		free(it);
	}
	if (messages && m->cbs.on_batch_end)
		m->cbs.on_batch_end(m, m->arg);
}

static void
connect_now(dg_mqtt *m)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions co5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	int rc;

	if (m->version == 5) {
		co = co5;
		co.cleanstart = m->clean_session;
	} else {
		co.cleansession = m->clean_session;
	}
	co.MQTTVersion = m->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.keepAliveInterval = m->keepalive;
	co.maxInflight = m->max_inflight;
	co.automaticReconnect = 0;  /* ours has jitter and resubscribes */
	co.connectTimeout = 10;
	co.onSuccess = paho_connected;
	co.onFailure = paho_connect_failed;
	co.context = m;
	co.username = m->username;
	co.password = m->password;
	if (strncmp(m->uri, "mqtts://", 8) == 0 || strncmp(m->uri, "ssl://", 6) == 0) {
		ssl.trustStore = m->ca_file;
		ssl.keyStore = m->cert_file;
		ssl.privateKey = m->key_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	m->connecting = 1;
	rc = MQTTAsync_connect(m->client, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		m->connecting = 0;
		dg_log_warn("mqtt: connect to %s: %s", m->uri, MQTTAsync_strerror(rc));
		schedule_retry(m);
	}
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	dg_mqtt *m = arg;

	if (!m->connected && !m->connecting && !m->closing)
		connect_now(m);
}

/* Safety net: a client that is neither connected, connecting nor waiting
 * to retry (e.g. a lost wake-up) starts over. The persistent timer also
 * keeps event_base_dispatch() running while the client exists, since
 * Paho's threads, not loop events, produce its work. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	dg_mqtt *m = arg;
	struct pubctx *p;

	if (!m->connected && !m->connecting && !m->closing &&
	    !evtimer_pending(m->retry, NULL))
		schedule_retry(m);
	/* a broker that keeps the connection but stopped acknowledging: MQTT
	 * resends unacknowledged messages only on a new connection, so make
	 * one (what was in flight is reported failed and sent again) */
	if (m->connected && (p = TAILQ_FIRST(&m->inflight)) &&
	    dg_util_now_ms() - p->sent_ms > (uint64_t)m->ack_timeout_ms) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

		dg_log_warn("mqtt: %s: no acknowledgement for %d s: reconnecting",
		    m->uri, m->ack_timeout_ms / 1000);
		d.timeout = 0;
		MQTTAsync_disconnect(m->client, &d);
		m->connected = 0;
		fail_pending(m);
		if (m->cbs.on_disconnect)
			m->cbs.on_disconnect(m, "no acknowledgement", m->arg);
		schedule_retry(m);
	}
}

static char *
dup_or_null(const char *s, int *failed)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*failed = 1;
	return d;
}

dg_mqtt *
dg_mqtt_new(struct event_base *base, const dg_mqtt_opts *o,
    const dg_mqtt_callbacks *cbs, void *arg, dg_err *err)
{
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
	dg_mqtt *m = NULL;
	int rc, nomem = 0;
	char *paho_uri = NULL;

	if (!o->uri || !o->client_id || !*o->client_id) {
		dg_log_err("mqtt: a broker URI and a client id are required");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (strncmp(o->uri, "mqtt://", 7) != 0 && strncmp(o->uri, "mqtts://", 8) != 0 &&
	    strncmp(o->uri, "tcp://", 6) != 0 && strncmp(o->uri, "ssl://", 6) != 0) {
		dg_log_err("mqtt: %s: the broker URI must start with mqtt:// or mqtts://", o->uri);
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (o->version != 0 && o->version != 4 && o->version != 5) {
		dg_log_err("mqtt: protocol version must be 4 (3.1.1) or 5");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (o->password && !o->username) {
		/* MQTT sends a password only with a user name */
		dg_log_err("mqtt: a password needs a user name");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (o->persist_dir && o->persist_dir[0] != '/') {
		dg_log_err("mqtt: persistence directory must be an absolute path");
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (evthread_make_base_notifiable(base) != 0) {
		dg_log_err("mqtt: event base is not thread-aware (call evthread_use_pthreads first)");
		*err = DG_ERR_INTERNAL;
		return NULL;
	}
	if (!(m = calloc(1, sizeof(*m)))) {
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	STAILQ_INIT(&m->q);
	TAILQ_INIT(&m->inflight);
	TAILQ_INIT(&m->sendq);
	TAILQ_INIT(&m->orphans);
	m->base = base;
	m->cbs = *cbs;
	m->arg = arg;
	m->version = o->version ? o->version : 4;
	m->max_inflight = o->max_inflight > 0 ? o->max_inflight : 64;
	m->keepalive = o->keepalive > 0 ? o->keepalive : 30;
	m->ack_timeout_ms = (o->ack_timeout > 0 ? o->ack_timeout : 30) * 1000;
	m->clean_session = o->clean_session;
	m->backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 250;
	m->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	m->backoff_ms = m->backoff_min_ms;
	m->uri = dup_or_null(o->uri, &nomem);
	m->client_id = dup_or_null(o->client_id, &nomem);
	m->ca_file = dup_or_null(o->ca_file, &nomem);
	m->cert_file = dup_or_null(o->cert_file, &nomem);
	m->key_file = dup_or_null(o->key_file, &nomem);
	m->username = dup_or_null(o->username, &nomem);
	m->password = dup_or_null(o->password, &nomem);
	/* Paho spells the schemes tcp:// and ssl:// */
	if (!nomem && strncmp(o->uri, "mqtt://", 7) == 0)
		nomem = asprintf(&paho_uri, "tcp://%s", o->uri + 7) < 0;
	else if (!nomem && strncmp(o->uri, "mqtts://", 8) == 0)
		nomem = asprintf(&paho_uri, "ssl://%s", o->uri + 8) < 0;
	else if (!nomem)
		nomem = !(paho_uri = strdup(o->uri));
	m->wake = event_new(base, -1, 0, on_wake, m);
	m->retry = evtimer_new(base, on_retry, m);
	m->tick = event_new(base, -1, EV_PERSIST, on_tick, m);
	if (nomem || !m->wake || !m->retry || !m->tick ||
	    event_add(m->tick, &(struct timeval){ 1, 0 }) != 0) {
		*err = DG_ERR_NOMEM;
		goto fail;
	}
	/* Paho formats trace records of its own below this level for every
	 * packet; we report its errors ourselves */
	MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
	cro.MQTTVersion = m->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	cro.sendWhileDisconnected = 0;
	cro.maxBufferedMessages = m->max_inflight + 16;
	rc = MQTTAsync_createWithOptions(&m->client, paho_uri, m->client_id,
	    o->persist_dir ? MQTTCLIENT_PERSISTENCE_DEFAULT : MQTTCLIENT_PERSISTENCE_NONE,
	    (void *)o->persist_dir, &cro);
	if (rc != MQTTASYNC_SUCCESS) {
		dg_log_err("mqtt: cannot create client for %s: %s", o->uri, MQTTAsync_strerror(rc));
		m->client = NULL;
		*err = DG_ERR_MQTT;
		goto fail;
	}
	rc = MQTTAsync_setCallbacks(m->client, m, paho_lost, paho_message, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		*err = DG_ERR_MQTT;
		goto fail;
	}
	free(paho_uri);
	connect_now(m);
	*err = DG_OK;
	return m;
fail:
	free(paho_uri);
	dg_mqtt_free(m, 0);
	return NULL;
}

void
dg_mqtt_free(dg_mqtt *m, int timeout_ms)
{
	struct item *it;
	struct pubctx *p;
	int i;

	if (!m)
		return;
	m->closing = 1;
	if (m->client) {
		if (MQTTAsync_isConnected(m->client)) {
			MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

			d.timeout = timeout_ms;
			MQTTAsync_disconnect(m->client, &d);
		}
		/* after destroy Paho calls nothing of ours */
		MQTTAsync_destroy(&m->client);
	}
	while ((it = STAILQ_FIRST(&m->q))) {
		STAILQ_REMOVE_HEAD(&m->q, link);
		free(it);
	}
	while ((p = TAILQ_FIRST(&m->inflight))) {
		TAILQ_REMOVE(&m->inflight, p, link);
		free_pub(p);
	}
	while ((p = TAILQ_FIRST(&m->sendq))) {
		TAILQ_REMOVE(&m->sendq, p, link);
		free_pub(p);
	}
	while ((p = TAILQ_FIRST(&m->orphans))) {
		TAILQ_REMOVE(&m->orphans, p, link);
		free_pub(p);
	}
	for (i = 0; i < m->nsubs; i++)
		free(m->subs[i].filter);
	free(m->subs);
	if (m->wake)
		event_free(m->wake);
	if (m->retry)
		event_free(m->retry);
	if (m->tick)
		event_free(m->tick);
	pthread_mutex_destroy(&m->lock);
	free(m->uri);
	free(m->client_id);
	free(m->ca_file);
	free(m->cert_file);
	free(m->key_file);
	free(m->username);
	if (m->password)
		memset(m->password, 0, strlen(m->password));
	free(m->password);
	free(m);
}

dg_err
dg_mqtt_subscribe(dg_mqtt *m, const char *filter, int qos)
{
	struct sub *subs;

	if (!dg_mqtt_topic_valid(filter, 1) || qos < 0 || qos > 2) {
		dg_log_err("mqtt: invalid subscription filter '%s'", filter ? filter : "");
		return DG_ERR_MQTT_TOPIC;
	}
	if (!(subs = realloc(m->subs, (m->nsubs + 1) * sizeof(*subs))))
		return DG_ERR_NOMEM;
	m->subs = subs;
	if (!(subs[m->nsubs].filter = strdup(filter)))
		return DG_ERR_NOMEM;
	subs[m->nsubs++].qos = qos;
	if (m->connected) {
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

		ro.onFailure = paho_sub_failed;
		ro.context = m;
		if (MQTTAsync_subscribe(m->client, filter, qos, &ro) != MQTTASYNC_SUCCESS)
			dg_log_err("mqtt: subscribe %s failed", filter);
	}
	return DG_OK;
}

dg_err
dg_mqtt_publish(dg_mqtt *m, const char *topic, const void *payload, size_t len,
    int qos, int retain, dg_mqtt_pub_cb cb, void *cookie)
{
	struct pubctx *p;

	if (!dg_mqtt_topic_valid(topic, 0)) {
		dg_log_err("mqtt: refusing to publish to invalid topic '%s'", topic ? topic : "");
		return DG_ERR_MQTT_TOPIC;
	}
	if (qos < 0 || qos > 2 || len > 256 * 1024 * 1024)
		return DG_ERR_INVAL;
	if (!m->connected)
		return DG_ERR_MQTT_DISCONNECTED;
	if (!(p = calloc(1, sizeof(*p))))
		return DG_ERR_NOMEM;
	p->m = m;
	p->cb = cb;
	p->cookie = cookie;
	p->qos = qos;
	p->retain = retain;
	p->len = len;
	p->topic = strdup(topic);
	p->payload = malloc(len ? len : 1);
	if (!p->topic || !p->payload) {
		free_pub(p);
		return DG_ERR_NOMEM;
	}
	memcpy(p->payload, payload, len);
	p->queued = 1;
	TAILQ_INSERT_TAIL(&m->sendq, p, link);
	flush_sendq(m);
	return DG_OK;
}

int
dg_mqtt_is_connected(const dg_mqtt *m)
{
	return m->connected;
}

int
dg_mqtt_inflight(const dg_mqtt *m)
{
	struct pubctx *p;
	int n = m->ninflight;

	TAILQ_FOREACH(p, &m->sendq, link)
		n++;
	return n;
}
