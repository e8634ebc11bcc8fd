/* dg_mqtt - an MQTT client (Eclipse Paho MQTTAsync) bridged into a libevent
 * loop.
 *
 * Paho runs its own threads; its callbacks only copy what they get into a
 * mutex-protected queue and wake the loop with event_active(). Every
 * callback of this module therefore runs in the loop's thread. The process
 * must call evthread_use_pthreads() before creating the event base.
 *
 * The client connects by itself, reconnects with exponential backoff and
 * jitter, and re-subscribes every filter given to dg_mqtt_subscribe() after
 * each (re)connect. It never publishes to a topic with a wildcard. QoS 1
 * publishes complete (callback) on PUBACK; messages are not buffered while
 * disconnected (DG_ERR_MQTT_DISCONNECTED): callers that must not lose a
 * message keep it (e.g. in an outbox) until its callback reports DG_OK.
 *
 * Callbacks must not call dg_mqtt_free().
 */
#ifndef DG_MQTT_H
#define DG_MQTT_H

#include <stddef.h>

#include <event2/event.h>

#include "dg_err.h"

typedef struct dg_mqtt dg_mqtt;

typedef struct dg_mqtt_opts {
	const char *uri;        /* mqtt://host:port or mqtts://host:port */
	const char *client_id;  /* required, unique per broker */
	int version;            /* 4 = MQTT 3.1.1, 5 = MQTT 5 (default 4) */
	int max_inflight;       /* outgoing QoS>0 messages in flight (default 64) */
	int keepalive;          /* seconds (default 30) */
	int ack_timeout;        /* seconds without the oldest PUBACK before the
	                         * connection is made anew (default 30) */
	int clean_session;      /* 1 (default) or 0 */
	const char *persist_dir;/* absolute directory for Paho's persistence;
				 * NULL: in memory (never / or the cwd) */
	const char *ca_file;    /* mqtts: CA bundle to verify the broker */
	const char *cert_file;  /* mqtts: optional client certificate */
	const char *key_file;   /* mqtts: its key */
	const char *username, *password;
	int backoff_min_ms;     /* first reconnect delay (default 250) */
	int backoff_max_ms;     /* cap (default 30000) */
} dg_mqtt_opts;

typedef struct dg_mqtt_callbacks {
	/* connected (after subscriptions were re-sent) */
	void (*on_connect)(dg_mqtt *m, void *arg);
	/* connection lost or a connect attempt failed; a retry is scheduled */
	void (*on_disconnect)(dg_mqtt *m, const char *why, void *arg);
	/* one message; topic and payload are valid during the call only */
	void (*on_message)(dg_mqtt *m, const char *topic, const void *payload,
	    size_t len, int qos, int retained, void *arg);
	/* after each batch of on_message calls (lets the owner group-commit
	 * before it answers); may be NULL */
	void (*on_batch_end)(dg_mqtt *m, void *arg);
} dg_mqtt_callbacks;

/* Completion of a publish: DG_OK on PUBACK (QoS 1) / when sent (QoS 0),
 * else DG_ERR_MQTT or DG_ERR_MQTT_DISCONNECTED. */
typedef void (*dg_mqtt_pub_cb)(dg_mqtt *m, void *cookie, dg_err result);

/* Create a client on base; it starts connecting at once. NULL with *err:
 * DG_ERR_INVAL (bad options, logged), DG_ERR_MQTT (Paho refused), NOMEM. */
dg_mqtt *dg_mqtt_new(struct event_base *base, const dg_mqtt_opts *opts,
    const dg_mqtt_callbacks *cbs, void *arg, dg_err *err);
/* Disconnect (waiting at most timeout_ms for in-flight publishes), free.
 * Pending publish callbacks are not called. NULL is a no-op. */
void dg_mqtt_free(dg_mqtt *m, int timeout_ms);

/* Remember filter (wildcards allowed) and subscribe now if connected and on
 * every reconnect. DG_ERR_MQTT_TOPIC for an invalid filter. */
dg_err dg_mqtt_subscribe(dg_mqtt *m, const char *filter, int qos);

/* Publish. topic must be valid and contain no wildcard (DG_ERR_MQTT_TOPIC);
 * DG_ERR_MQTT_DISCONNECTED when not connected; DG_ERR_BUSY when the
 * in-flight window is full. cb (may be NULL) is called once with the
 * outcome, in the loop's thread, unless this returns an error. */
dg_err dg_mqtt_publish(dg_mqtt *m, const char *topic, const void *payload,
    size_t len, int qos, int retain, dg_mqtt_pub_cb cb, void *cookie);

int dg_mqtt_is_connected(const dg_mqtt *m);
/* Publishes handed to Paho whose outcome is not known yet. */
int dg_mqtt_inflight(const dg_mqtt *m);

/* 1 if s is a valid topic name to publish to (non-empty, UTF-8, no NUL,
 * no '+' or '#', at most 65535 bytes); with allow_wildcards, a valid
 * subscription filter. */
int dg_mqtt_topic_valid(const char *s, int allow_wildcards);

#endif
