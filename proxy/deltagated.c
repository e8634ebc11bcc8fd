/* deltagated - the deltagate gateway daemon.
 *
 * One libevent loop: MQTT (Paho, bridged), HTTPS downloads (libcurl multi),
 * downstream drivers, timers and signals. Start-up order: configuration,
 * then ports and keys, then privileges dropped, then the pid file, then
 * readiness, then the loop.
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

#include "dg_cache.h"
#include "dg_config.h"
#include "dg_daemon.h"
#include "dg_driver.h"
#include "dg_driver_coap.h"
#include "dg_driver_serial.h" /* serial (issue 12) */
#include "dg_fetch.h"
#include "dg_job.h"
#include "dg_json.h"
#include "dg_fault.h"
#include "dg_jws.h"
#include "dg_log.h"
#include "dg_mirror.h"
#include "dg_mqtt.h"
#include "dg_outbox.h"
#include "dg_store.h"
#include "dg_topic.h"
#include "dg_util.h"

struct cfg {
	char *gateway_id;
	char *broker, *client_id, *topic_root;
	int64_t mqtt_version, mqtt_ack_timeout;
	char *mqtt_ca_file, *mqtt_cert_file, *mqtt_key_file, *mqtt_username, *mqtt_password;
	char *db;
	char *cache_root;
	uint64_t cache_quota;
	char *provider;
	char *http_ca_file;
	char *http_proxy;
	int64_t max_downloads;
	int64_t download_retries;
	int64_t stall_timeout;
	int64_t stage_timeout;
	char *exec_command;
	int64_t exec_timeout;
	char *coap_listen, *coaps_listen, *coap_secret, *coap_install_path;
	int64_t coap_token_lifetime, coap_max_transmit_span;
	int coap_allow_unknown;
	int64_t max_deliveries;
	int64_t max_per_driver;
	int64_t max_per_link;
	int64_t report_rate;
	int64_t progress_interval;
	uint64_t max_image_size;
	dg_config_list devices;
	dg_config_list trusted_keys; /* signed commands (issue 13) */
	dg_config_list serial_models; /* serial driver (issue 12) */
	char *log_level;
	int syslog;
	char *pid_file;
	char *user;
};

static int
check_id(const char *v, char *why, size_t whylen)
{
	if (!dg_topic_id_valid(v)) {
		snprintf(why, whylen, "'%s' is not a valid id (1-128 of A-Z a-z 0-9 _ : . -)", v);
		return -1;
	}
	return 0;
}

static int check_device(const char *v, char *why, size_t whylen);

#define O(f) offsetof(struct cfg, f)
static const dg_option options[] = {
	DG_OPTION_GROUP("upstream"),
	{ "gateway-id", DG_OPT_STR, O(gateway_id), 0, 0, "gateway", 0, check_id, "this gateway's id (its own shadow)" },
	{ "broker", DG_OPT_STR, O(broker), 0, 0, "mqtt://127.0.0.1:1883", 0, NULL, "MQTT broker URI" },
	{ "client-id", DG_OPT_STR, O(client_id), 0, 0, NULL, 0, NULL, "MQTT client id (default: deltagated-<gateway-id>)" },
	{ "topic-root", DG_OPT_STR, O(topic_root), 0, 0, DG_TOPIC_DEFAULT_ROOT, 0, NULL, "shadow topic root template ('aws' preset)" },
	{ "mqtt-version", DG_OPT_INT, O(mqtt_version), 4, 5, "4", 0, NULL, "4 (3.1.1) or 5" },
	{ "mqtt-ack-timeout", DG_OPT_INT, O(mqtt_ack_timeout), 1, 3600, "30", 0, NULL, "seconds without a PUBACK before the connection is made anew" },
	{ "mqtt-ca-file", DG_OPT_STR, O(mqtt_ca_file), 0, 0, NULL, 0, NULL, "CA to verify an mqtts:// broker" },
	{ "mqtt-cert-file", DG_OPT_STR, O(mqtt_cert_file), 0, 0, NULL, 0, NULL, "client certificate" },
	{ "mqtt-key-file", DG_OPT_STR, O(mqtt_key_file), 0, 0, NULL, 0, NULL, "client key" },
	{ "mqtt-username", DG_OPT_STR, O(mqtt_username), 0, 0, NULL, 0, NULL, "MQTT user name" },
	{ "mqtt-password", DG_OPT_STR, O(mqtt_password), 0, 0, NULL, 0, NULL, "MQTT password" },
	DG_OPTION_GROUP("storage and cache"),
	{ "db", DG_OPT_STR, O(db), 0, 0, NULL, 0, NULL, "SQLite state file (required)" },
	{ "cache-root", DG_OPT_STR, O(cache_root), 0, 0, NULL, 0, NULL, "image cache directory (required)" },
	{ "cache-quota", DG_OPT_SIZE, O(cache_quota), 0, 0, "0", 1, NULL, "image cache quota in bytes (0: none)" },
	{ "provider", DG_OPT_STR, O(provider), 0, 0, "default", 0, NULL, "cache provider of the images" },
	{ "http-ca-file", DG_OPT_STR, O(http_ca_file), 0, 0, NULL, 0, NULL, "CA bundle for HTTPS downloads (default: system)" },
	{ "http-proxy", DG_OPT_STR, O(http_proxy), 0, 0, NULL, 0, NULL, "proxy for downloads (default: environment)" },
	DG_OPTION_GROUP("drivers and devices"),
	{ "exec-command", DG_OPT_STR, O(exec_command), 0, 0, NULL, 1, NULL, "command of the exec driver" },
	{ "exec-timeout", DG_OPT_INT, O(exec_timeout), 1, 86400, "600", 1, NULL, "bound of one exec delivery, seconds" },
	{ "coap-listen", DG_OPT_STR, O(coap_listen), 0, 0, NULL, 0, NULL, "CoAP (UDP) ADDR:PORT of the coap driver" },
	{ "coaps-listen", DG_OPT_STR, O(coaps_listen), 0, 0, NULL, 0, NULL, "CoAP over DTLS (PSK) ADDR:PORT" },
	{ "coap-secret", DG_OPT_STR, O(coap_secret), 0, 0, NULL, 0, NULL, "HMAC key of /fw tokens (default: random per start)" },
	{ "coap-token-lifetime", DG_OPT_INT, O(coap_token_lifetime), 1, 86400 * 30, "3600", 0, NULL, "seconds a /fw token is valid" },
	{ "coap-allow-unknown", DG_OPT_BOOL, O(coap_allow_unknown), 0, 0, "no", 0, NULL, "accept /rd registrations of unconfigured ids (plain UDP only)" },
	{ "coap-install-path", DG_OPT_STR, O(coap_install_path), 0, 0, "5/0/2", 0, NULL, "push: path POSTed after the image ('' for none)" },
	{ "coap-max-transmit-span", DG_OPT_INT, O(coap_max_transmit_span), 1, 600, "45", 0, NULL, "push: seconds a request (or DTLS handshake) is retried before the job fails" },
	{ "device", DG_OPT_LIST, O(devices), 0, 0, NULL, 1, check_device, "ID [driver=exec|coap|serial] [address=A] [link=L] [sha256=HEX] [version=V] [psk=hex:H|text:T] [dtls=required|optional] [mode=pull|push] [tty=PATH model=NAME baud=B parity=P data-bits=N stop-bits=N flow=none|rtscts rs485=yes|no hotplug=yes|no lock-dir=D]" },
	/* --- serial driver (issue 12) */
	{ "serial-model", DG_OPT_LIST, O(serial_models), 0, 0, NULL, 0, dg_serial_model_check, "NAME protocol=ymodem|stm32|smp [line settings] [version-send= version-expect= enter-send= enter-expect= enter-lines= done-expect= fail-expect= chat-timeout= retries= unit-timeout= unit-retries= reopen-delay= opt.KEY=V]: a serial device model and its chat script (repeatable; docs/serial.md)" },
	/* --- end serial driver */
	DG_OPTION_GROUP("limits"),
	{ "max-downloads", DG_OPT_INT, O(max_downloads), 1, 64, "4", 1, NULL, "concurrent downloads" },
	{ "download-retries", DG_OPT_INT, O(download_retries), 0, 100, "5", 1, NULL, "retries of a failed download" },
	{ "stall-timeout", DG_OPT_INT, O(stall_timeout), 1, 3600, "30", 1, NULL, "seconds without progress before a download is retried" },
	{ "stage-timeout", DG_OPT_INT, O(stage_timeout), 1, 86400 * 7, "3600", 1, NULL, "bound of a fetch or rebuild stage, seconds" },
	{ "max-deliveries", DG_OPT_INT, O(max_deliveries), 1, 10000, "4", 1, NULL, "concurrent downstream transfers" },
	{ "max-deliveries-per-driver", DG_OPT_INT, O(max_per_driver), 0, 10000, "0", 1, NULL, "concurrent transfers through one driver (0: no limit)" },
	{ "max-deliveries-per-link", DG_OPT_INT, O(max_per_link), 1, 10000, "1", 1, NULL, "concurrent transfers among devices sharing a link= name" },
	{ "report-rate", DG_OPT_INT, O(report_rate), 1, 100000, "50", 1, NULL, "reports published per second at most" },
	{ "progress-interval", DG_OPT_INT, O(progress_interval), 10, 3600000, "1000", 1, NULL, "ms between progress reports of a device" },
	{ "max-image-size", DG_OPT_SIZE, O(max_image_size), 1, 0, "256M", 1, NULL, "largest image accepted" },
	DG_OPTION_GROUP("logging and process"),
	{ "log-level", DG_OPT_STR, O(log_level), 0, 0, "info", 1, dg_config_check_log_level, "err, warn, info or debug" },
	/* signed commands (issue 13) */
	{ "trusted-key", DG_OPT_LIST, O(trusted_keys), 0, 0, NULL, 0, NULL, "Ed25519 public key (PEM) whose signed commands are accepted; with none, commands are not checked (repeatable)" },
	{ "syslog", DG_OPT_BOOL, O(syslog), 0, 0, "no", 0, NULL, "log to syslog instead of stderr" },
	{ "pid-file", DG_OPT_STR, O(pid_file), 0, 0, NULL, 0, NULL, "write the process id here" },
	{ "user", DG_OPT_STR, O(user), 0, 0, NULL, 0, NULL, "drop privileges to this user after start-up" },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* What examples/deltagated.conf shows for options without a default; the
 * active ones are set there (the required ones). */
static const dg_config_example examples[] = {
	{ "client-id", "deltagated-gateway", 0 },
	{ "mqtt-ca-file", "/etc/deltagate/mqtt-ca.pem", 0 },
	{ "mqtt-cert-file", "/etc/deltagate/gateway.crt", 0 },
	{ "mqtt-key-file", "/etc/deltagate/gateway.key", 0 },
	{ "mqtt-username", "gateway", 0 },
	{ "mqtt-password", "change-me", 0 },
	{ "db", "/var/lib/deltagate/deltagated.db", 1 },
	{ "cache-root", "/var/lib/deltagate/cache", 1 },
	{ "http-ca-file", "/etc/ssl/certs/ca-certificates.crt", 0 },
	{ "http-proxy", "http://proxy.example:3128", 0 },
	{ "exec-command", "/etc/deltagate/flash-device", 0 },
	{ "coap-listen", "0.0.0.0:5683", 0 },
	{ "coaps-listen", "0.0.0.0:5684", 0 },
	{ "coap-secret", "change-me-to-a-long-random-string", 0 },
	{ "device", "sensor-1 driver=exec address=/dev/ttyUSB0 version=1.0.0", 0 },
	{ "serial-model", "iap protocol=ymodem baud=115200 version-send=version\\r version-expect='version ([0-9.]+)\\r' enter-send=update\\r enter-expect='bootloader ready\\r\\n' done-expect='install ok' fail-expect='install failed'", 0 },
	{ "trusted-key", "/etc/deltagate/operator.pub.pem", 0 },
	{ "pid-file", "/run/deltagated.pid", 0 },
	{ "user", "deltagate", 0 },
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

static const char example_header[] =
    "# deltagated.conf - configuration of deltagated(8), the deltagate gateway.\n"
    "#\n"
    "# One option per line, \"name value\"; lines starting with '#' are comments;\n"
    "# a value with blanks goes in \"double quotes\". Every option can also be\n"
    "# given on the command line as --name value, which wins over this file.\n"
    "# \"#name value\" lines show the default: remove the '#' to change it.\n"
    "# SIGHUP re-reads the file: options marked [SIGHUP reloads] change without\n"
    "# a restart. Check a file with: deltagated -c FILE --test-config\n"
    "#\n"
    "# Generated from the daemon's option table (deltagated --dump-config-example);\n"
    "# a test fails when this file and the table differ.\n";

/* A parsed "device" line. */
struct devspec {
	char id[DG_TOPIC_ID_MAX + 1];
	char driver[16];
	char address[256];
	char sha256[65];
	char version[64];
	char link[64];
	char serial[512];    /* serial driver attributes (issue 12) */
	unsigned char psk[64];
	size_t psk_len;
	int psk_required;
	int push;
};

/* psk=hex:HEX, psk=text:TEXT, or a bare value: hex if it is, else text. */
static int
parse_psk(const char *v, struct devspec *d)
{
	size_t n;

	if (strncmp(v, "text:", 5) == 0) {
		v += 5;
		goto text;
	}
	if (strncmp(v, "hex:", 4) == 0)
		v += 4;
	n = strlen(v);
	if (n && n % 2 == 0 && n / 2 <= sizeof(d->psk) && dg_util_hex_decode(v, d->psk, n / 2) == DG_OK) {
		d->psk_len = n / 2;
		return 0;
	}
	if (v[-1] == ':' && strncmp(v - 4, "hex:", 4) == 0)
		return -1;
text:
	n = strlen(v);
	if (n == 0 || n > sizeof(d->psk))
		return -1;
	memcpy(d->psk, v, n);
	d->psk_len = n;
	return 0;
}

/* serial driver (issue 12): the device attributes it takes */
static int
is_serial_attr(const char *k)
{
	static const char *const keys[] = { "tty", "model", "baud", "parity", "data-bits",
		"stop-bits", "flow", "rs485", "rs485-delay-before", "rs485-delay-after",
		"hotplug", "lock-dir" };
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return 1;
	return 0;
}

static int
parse_device(const char *line, struct devspec *d, char *why, size_t whylen)
{
	char buf[1024], *tok, *save = NULL;
	int first = 1;

	memset(d, 0, sizeof(*d));
	snprintf(d->driver, sizeof(d->driver), "exec");
	if (strlen(line) >= sizeof(buf)) {
		snprintf(why, whylen, "device line too long");
		return -1;
	}
	strcpy(buf, line);
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		size_t n;

		if (first) {
			if (!dg_topic_id_valid(tok)) {
				snprintf(why, whylen, "'%s' is not a valid device id", tok);
				return -1;
			}
			snprintf(d->id, sizeof(d->id), "%s", tok);
			first = 0;
			continue;
		}
		if (!eq) {
			snprintf(why, whylen, "'%s': expected key=value", tok);
			return -1;
		}
		*eq++ = '\0';
		n = strlen(eq);
		if (strcmp(tok, "driver") == 0 && n < sizeof(d->driver)) {
			if (strcmp(eq, "exec") != 0 && strcmp(eq, "coap") != 0 && strcmp(eq, "serial") != 0) {
				snprintf(why, whylen, "driver '%s' is not built in (exec, coap, serial)", eq);
				return -1;
			}
			strcpy(d->driver, eq);
		} else if (strcmp(tok, "address") == 0 && n < sizeof(d->address)) {
			strcpy(d->address, eq);
		} else if (strcmp(tok, "sha256") == 0 && n == 64) {
			unsigned char tmp[32];

			if (dg_util_hex_decode(eq, tmp, 32) != DG_OK) {
				snprintf(why, whylen, "sha256 must be 64 hex digits");
				return -1;
			}
			strcpy(d->sha256, eq);
		} else if (strcmp(tok, "version") == 0 && n < sizeof(d->version)) {
			strcpy(d->version, eq);
		} else if (strcmp(tok, "link") == 0 && n > 0 && n < sizeof(d->link)) {
			strcpy(d->link, eq);
		} else if (is_serial_attr(tok)) {
			/* serial driver (issue 12): checked as a whole below */
			size_t used = strlen(d->serial);

			if (used + strlen(tok) + n + 3 > sizeof(d->serial)) {
				snprintf(why, whylen, "serial attributes too long");
				return -1;
			}
			snprintf(d->serial + used, sizeof(d->serial) - used, "%s%s=%s", used ? " " : "", tok, eq);
		} else if (strcmp(tok, "psk") == 0) {
			if (parse_psk(eq, d) != 0) {
				snprintf(why, whylen, "psk must be hex:HEX or text:TEXT of 1-64 bytes");
				return -1;
			}
			d->psk_required = 1;
		} else if (strcmp(tok, "dtls") == 0 && (strcmp(eq, "required") == 0 || strcmp(eq, "optional") == 0)) {
			d->psk_required = strcmp(eq, "required") == 0 ? 2 : 3;
		} else if (strcmp(tok, "mode") == 0 && (strcmp(eq, "pull") == 0 || strcmp(eq, "push") == 0)) {
			d->push = strcmp(eq, "push") == 0;
		} else {
			snprintf(why, whylen, "unknown or oversized device attribute '%s'", tok);
			return -1;
		}
	}
	if (first) {
		snprintf(why, whylen, "device line without an id");
		return -1;
	}
	/* serial driver (issue 12) */
	if (strcmp(d->driver, "serial") == 0) {
		if (dg_serial_device_check(d->serial, why, whylen) != 0)
			return -1;
	} else if (d->serial[0]) {
		snprintf(why, whylen, "tty=, model= and the line settings are serial driver attributes");
		return -1;
	}
	/* psk_required: 1 psk given, 2 dtls=required, 3 dtls=optional */
	if (d->psk_required >= 2 && d->psk_len == 0) {
		snprintf(why, whylen, "dtls= needs a psk=");
		return -1;
	}
	if ((d->psk_len || d->push) && strcmp(d->driver, "coap") != 0) {
		snprintf(why, whylen, "psk=, dtls= and mode= are coap driver attributes");
		return -1;
	}
	d->psk_required = d->psk_len && d->psk_required != 3;
	if (d->push && strncmp(d->address, "coaps://", 8) == 0 && !d->psk_len) {
		snprintf(why, whylen, "a coaps:// push address needs psk=");
		return -1;
	}
	if (d->push && strncmp(d->address, "coap://", 7) == 0 && d->psk_required) {
		snprintf(why, whylen, "the device requires DTLS: its push address must be coaps:// (or dtls=optional)");
		return -1;
	}
	return 0;
}

static int
check_device(const char *v, char *why, size_t whylen)
{
	struct devspec d;

	return parse_device(v, &d, why, whylen);
}

/* Device lines may hold keys: psk=... becomes psk=<redacted> in place. */
static void
redact_devices(dg_config_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++) {
		char *p = l->items[i], *w;

		while ((p = strstr(p, "psk="))) {
			if (p != l->items[i] && p[-1] != ' ' && p[-1] != '\t') {
				p += 4;
				continue;
			}
			p += 4;
			w = p + strcspn(p, " \t");
			if (w - p >= 10) {
				memcpy(p, "<redacted>", 10);
				memmove(p + 10, w, strlen(w) + 1);
			} else {
				/* shorter than the marker: overwrite what is there */
				memset(p, '*', (size_t)(w - p));
			}
		}
	}
}

struct gw {
	struct cfg cfg;
	const char *cfg_path;
	char **args;
	int nargs;
	struct event_base *base;
	dg_store *store;
	dg_mqtt *mqtt;
	dg_topic *topic;
	dg_cache *cache;
	dg_fetcher *fetcher;
	dg_outbox *outbox;
	dg_mirror *mirror;
	dg_jobs *jobs;
	dg_driver *exec;
	dg_driver *coap;
	dg_driver *serial; /* issue 12 */
	int lost;       /* the state database lost writes: exit 75 */
};

#define COMMIT_DELAY_MS 20

static dg_store_migration migrations[3];

static void
on_document(dg_mirror *mi, const char *id, const json_t *doc, void *arg)
{
	struct gw *gw = arg;

	dg_jobs_on_document(gw->jobs, id, doc);
}

static void
on_message(dg_mqtt *m, const char *topic, const void *payload, size_t len,
    int qos, int retained, void *arg)
{
	struct gw *gw = arg;

	dg_mirror_handle(gw->mirror, topic, payload, len);
}

static void
on_connect(dg_mqtt *m, void *arg)
{
	struct gw *gw = arg;

	dg_mirror_resync(gw->mirror);
	dg_outbox_kick(gw->outbox);
}

/* Load the configuration: file (if any) then command line. */
static dg_err
load_config(struct gw *gw, struct cfg *c)
{
	int optind = 1;
	dg_err err;

	if ((err = dg_config_defaults(options, NOPTIONS, c)) != DG_OK)
		return err;
	if (gw->cfg_path && (err = dg_config_load_file(options, NOPTIONS, c, gw->cfg_path)) != DG_OK)
		return err;
	if ((err = dg_config_parse_args(options, NOPTIONS, c, gw->nargs, gw->args, &optind)) != DG_OK)
		return err;
	if (optind < gw->nargs) {
		dg_log_err("unexpected argument '%s'", gw->args[optind]);
		return DG_ERR_USAGE;
	}
	if (!c->db || !c->cache_root) {
		dg_log_err("--db FILE and --cache-root DIR are required");
		return DG_ERR_USAGE;
	}
	return DG_OK;
}

static dg_err
add_devices(struct gw *gw, const struct cfg *c)
{
	size_t i;
	dg_err err;

	for (i = 0; i < c->devices.count; i++) {
		struct devspec d;
		char why[160];

		if (parse_device(c->devices.items[i], &d, why, sizeof(why)) != 0) {
			dg_log_err("device '%s': %s", c->devices.items[i], why);
			return DG_ERR_CONFIG_VALUE;
		}
		if (strcmp(d.driver, "coap") == 0) {
			if (!gw->coap) {
				dg_log_err("device %s: driver=coap needs coap-listen or coaps-listen", d.id);
				return DG_ERR_CONFIG_VALUE;
			}
			err = dg_driver_coap_add_device(gw->coap, d.id, d.psk_len ? d.psk : NULL, d.psk_len,
			    d.psk_required, d.push ? DG_COAP_PUSH : DG_COAP_PULL, d.address[0] ? d.address : NULL);
			memset(d.psk, 0, sizeof(d.psk));
			if (err != DG_OK)
				return err;
		}
		/* serial driver (issue 12) */
		if (strcmp(d.driver, "serial") == 0) {
			if (!gw->serial) {
				dg_log_err("device %s: driver=serial needs serial-model lines", d.id);
				return DG_ERR_CONFIG_VALUE;
			}
			if ((err = dg_driver_serial_add_device(gw->serial, d.id, d.serial)) != DG_OK)
				return err;
		}
		if ((err = dg_jobs_add_device(gw->jobs, d.id, strcmp(d.driver, "coap") == 0 ? gw->coap :
		    strcmp(d.driver, "serial") == 0 ? gw->serial : gw->exec,
		    d.address[0] ? d.address : NULL, d.link[0] ? d.link : NULL,
		    d.sha256[0] ? d.sha256 : NULL, d.version[0] ? d.version : NULL)) != DG_OK ||
		    (err = dg_mirror_add(gw->mirror, d.id)) != DG_OK)
			return err;
	}
	return DG_OK;
}

/* The devices this gateway serves, in its own shadow's reported state
 * ("devices": [ids], the whole list each time), so that an operator's
 * tools can address "every device behind gateway G" (deltagate deploy
 * --gateway). Durable through the outbox like every report. */
static void
publish_devices(struct gw *gw)
{
	json_t *ids = json_array(), *msg;
	char topic[512], key[300], *text = NULL;
	size_t i;

	for (i = 0; ids && i < gw->cfg.devices.count; i++) {
		struct devspec d;
		char why[160];

		if (parse_device(gw->cfg.devices.items[i], &d, why, sizeof(why)) == 0)
			json_array_append_new(ids, json_string(d.id));
		memset(d.psk, 0, sizeof(d.psk));
	}
	msg = ids ? json_pack("{s:{s:{s:o}}}", "state", "reported", "devices", ids) : NULL;
	if (msg && (text = dg_json_dumps(msg)) &&
	    dg_topic_build(gw->topic, gw->cfg.gateway_id, "update", topic, sizeof(topic)) == DG_OK) {
		snprintf(key, sizeof(key), "%s#devices", gw->cfg.gateway_id);
		if (dg_outbox_put(gw->outbox, key, topic, text, 1) != DG_OK)
			dg_log_warn("the list of devices was not queued for the gateway's shadow");
	}
	free(text);
	json_decref(msg);
}

static void
reload(struct gw *gw)
{
	struct cfg fresh = { 0 };

	if (load_config(gw, &fresh) != DG_OK) {
		dg_log_err("SIGHUP: the new configuration is invalid; keeping the running one");
		dg_config_free(options, NOPTIONS, &fresh);
		return;
	}
	dg_log_set_level((dg_log_level)dg_log_level_parse(fresh.log_level));
	dg_cache_set_quota(gw->cache, fresh.cache_quota);
	{
		dg_jobs_opts jo = { 0 };

		jo.max_deliveries = (int)fresh.max_deliveries;
		jo.max_per_driver = (int)fresh.max_per_driver;
		jo.max_per_link = (int)fresh.max_per_link;
		jo.stage_timeout_s = (int)fresh.stage_timeout;
		jo.delivery_timeout_s = (int)fresh.exec_timeout;
		jo.progress_interval_ms = (int)fresh.progress_interval;
		jo.max_image_size = fresh.max_image_size;
		dg_jobs_set_limits(gw->jobs, &jo);
	}
	dg_outbox_set_rate(gw->outbox, (double)fresh.report_rate);
	/* new devices join; jobs in flight are untouched */
	if (add_devices(gw, &fresh) != DG_OK)
		dg_log_err("SIGHUP: some devices could not be added");
	dg_config_free(options, NOPTIONS, &gw->cfg);
	gw->cfg = fresh;
	publish_devices(gw);
	dg_log_info("SIGHUP: configuration reloaded (%zu devices)", gw->cfg.devices.count);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw *gw = arg;

	if (sig == SIGHUP) {
		reload(gw);
		return;
	}
	dg_log_info("signal %d: stopping; unfinished jobs resume at the next start", (int)sig);
	event_base_loopbreak(gw->base);
}

/* SQLite rolled a batch of writes back: the jobs in memory are ahead of
 * the database. Stop, exit 75 (EX_TEMPFAIL): the service manager starts
 * the gateway again and every job resumes from what is durable - the path
 * the crash tests prove. */
static void
on_store_lost(void *arg)
{
	struct gw *gw = arg;

	dg_log_err("the state database lost writes; stopping so that a restart resumes from what is durable");
	gw->lost = 1;
	event_base_loopbreak(gw->base);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: deltagated -c FILE [OPTIONS]\n"
	    "       deltagated --db FILE --cache-root DIR [OPTIONS]\n\n"
	    "The deltagate gateway daemon (see docs/gateway.md).\n\noptions:\n");
	dg_config_usage(options, NOPTIONS);
	fprintf(out, "  -c FILE                  read options from FILE (command line wins)\n"
	    "  --test-config            check the configuration, print it, exit\n"
	    "  --dump-config-example    print an example file with every option, exit\n"
	    "  --dump-man-options       print the option list as man(7) source, exit\n");
}

int
main(int argc, char **argv)
{
	struct gw gw = { 0 };
	struct event *sigs[3] = { 0 };
	static const int signums[3] = { SIGINT, SIGTERM, SIGHUP };
	dg_mqtt_callbacks cb = { on_connect, NULL, on_message, NULL };
	dg_mqtt_opts mo = { 0 };
	dg_fetch_opts fo = { 0 };
	dg_jobs_opts jo = { 0 };
	char client_id[200];
	dg_config_cli cli;
	int i, test_config = 0, rc = 1;
	dg_jws_key **trusted = NULL;
	size_t ntrusted = 0;
	dg_err err;
	dg_watchdog *wd = NULL;

	dg_log_open("deltagated", 0, DG_LOG_INFO);
	if (!(gw.args = calloc((size_t)argc + 1, sizeof(char *))))
		return 1;
	dg_config_split_args(argc, argv, &cli, gw.args, &gw.nargs);
	gw.cfg_path = cli.file;
	test_config = cli.test_config;
	if (cli.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (cli.version) {
		printf("deltagated %s\n", PACKAGE_VERSION);
		rc = 0;
		goto out;
	}
	if (cli.dump_example || cli.dump_man) {
		if (dg_config_check_table(options, NOPTIONS) != DG_OK)
			goto out;
		if (cli.dump_man)
			dg_config_print_man(options, NOPTIONS);
		else if (dg_config_print_example(options, NOPTIONS, examples, NEXAMPLES, example_header) != DG_OK)
			goto out;
		rc = 0;
		goto out;
	}
	if (load_config(&gw, &gw.cfg) != DG_OK) {
		rc = 2;
		goto out;
	}
	if (!(gw.topic = dg_topic_new(gw.cfg.topic_root, &err))) {
		rc = 2;
		goto out;
	}
	if (test_config) {
		redact_devices(&gw.cfg.devices);
		dg_config_dump(options, NOPTIONS, &gw.cfg);
		printf("# configuration OK\n");
		rc = 0;
		goto out;
	}
	dg_log_open("deltagated", gw.cfg.syslog, (dg_log_level)dg_log_level_parse(gw.cfg.log_level));
	if (dg_fault_init() != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0 || !(gw.base = event_base_new())) {
		dg_log_err("cannot create the event loop");
		goto out;
	}
	/* the state is created as the user the daemon will run as */
	if (dg_daemon_assume_user(gw.cfg.user) != DG_OK)
		goto out;
	migrations[0].sql = dg_outbox_migration_sql;
	migrations[1].sql = dg_mirror_migration_sql;
	migrations[2].sql = dg_jobs_migration_sql;
	if (!(gw.store = dg_store_open(gw.cfg.db, migrations, 3, &err)))
		goto out;
	/* group commit: the writes of COMMIT_DELAY_MS share one fsync (one
	 * each stalled the loop past devices' retransmission timeouts; one
	 * per loop pass still made 20 per job, as reports and their PUBACKs
	 * arrive in passes of their own). Reports leave that much later; a
	 * device's final report is synced before it is acknowledged. */
	dg_store_on_lost(gw.store, on_store_lost, &gw);
	if ((err = dg_store_batch(gw.store, gw.base, COMMIT_DELAY_MS)) != DG_OK)
		goto out;
	if (!(gw.cache = dg_cache_new(gw.cfg.cache_root, gw.cfg.cache_quota, 0, NULL, &err))) {
		dg_log_err("%s: cannot open the image cache: %s", gw.cfg.cache_root, dg_strerror(err));
		goto out;
	}
	if (dg_daemon_resume_root() != DG_OK)
		goto out;
	/* pins of transfers and rebuilds of an earlier run are stale */
	dg_cache_unpin_holder(gw.cache, "deliver", NULL);
	dg_cache_unpin_holder(gw.cache, "rebuild", NULL);
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(gw.base, signums[i], on_signal, &gw);
		if (!sigs[i] || event_add(sigs[i], NULL) != 0)
			goto out;
	}
	dg_fetch_opts_init(&fo);
	fo.ca_file = gw.cfg.http_ca_file;
	fo.proxy = gw.cfg.http_proxy;
	fo.max_transfers = (unsigned)gw.cfg.max_downloads;
	fo.retries = (unsigned)gw.cfg.download_retries;
	fo.low_speed_time = (unsigned)gw.cfg.stall_timeout;
	if (!(gw.fetcher = dg_fetcher_new(gw.base, &fo, &err)))
		goto out;
	snprintf(client_id, sizeof(client_id), "deltagated-%s", gw.cfg.gateway_id);
	mo.uri = gw.cfg.broker;
	mo.client_id = gw.cfg.client_id ? gw.cfg.client_id : client_id;
	mo.version = (int)gw.cfg.mqtt_version;
	mo.clean_session = 1;
	mo.max_inflight = 256;
	mo.ack_timeout = (int)gw.cfg.mqtt_ack_timeout;
	mo.ca_file = gw.cfg.mqtt_ca_file;
	mo.cert_file = gw.cfg.mqtt_cert_file;
	mo.key_file = gw.cfg.mqtt_key_file;
	mo.username = gw.cfg.mqtt_username;
	mo.password = gw.cfg.mqtt_password;
	if (!(gw.mqtt = dg_mqtt_new(gw.base, &mo, &cb, &gw, &err)))
		goto out;
	if (!(gw.outbox = dg_outbox_new(gw.base, gw.store, gw.mqtt, (double)gw.cfg.report_rate, &err)))
		goto out;
	if (!(gw.mirror = dg_mirror_new(gw.store, gw.mqtt, gw.topic, on_document, &gw, &err)))
		goto out;
	jo.gateway_id = gw.cfg.gateway_id;
	jo.provider = gw.cfg.provider;
	jo.max_deliveries = (int)gw.cfg.max_deliveries;
	jo.max_per_driver = (int)gw.cfg.max_per_driver;
	jo.max_per_link = (int)gw.cfg.max_per_link;
	jo.stage_timeout_s = (int)gw.cfg.stage_timeout;
	jo.delivery_timeout_s = (int)gw.cfg.exec_timeout;
	jo.progress_interval_ms = (int)gw.cfg.progress_interval;
	jo.max_image_size = gw.cfg.max_image_size;
	if (!(gw.jobs = dg_jobs_new(gw.base, gw.store, gw.cache, gw.fetcher, gw.outbox, gw.topic, &jo, &err)))
		goto out;
	/* signed commands (issue 13): keys opened before privileges drop */
	if (gw.cfg.trusted_keys.count) {
		if (!(trusted = calloc(gw.cfg.trusted_keys.count, sizeof(*trusted))))
			goto out;
		for (i = 0; i < (int)gw.cfg.trusted_keys.count; i++) {
			if (!(trusted[i] = dg_jws_key_load(gw.cfg.trusted_keys.items[i], &err)))
				goto out;
			ntrusted++;
			dg_log_info("trusted key %s (kid %s)", gw.cfg.trusted_keys.items[i],
			    dg_jws_key_id(trusted[i]));
		}
		if (dg_jobs_set_trusted_keys(gw.jobs, trusted, ntrusted) != DG_OK)
			goto out;
	} else {
		dg_log_warn("no trusted-key: update commands are not checked (anyone who can publish "
		    "to the broker can install any image)");
	}
	if (gw.cfg.exec_command &&
	    !(gw.exec = dg_driver_exec_new(gw.base, gw.cfg.exec_command, (int)gw.cfg.exec_timeout, &err)))
		goto out;
	if (gw.cfg.coap_listen || gw.cfg.coaps_listen) {
		dg_coap_opts co = { 0 };

		co.listen = gw.cfg.coap_listen;
		co.dtls_listen = gw.cfg.coaps_listen;
		co.secret = (const unsigned char *)gw.cfg.coap_secret;
		co.secret_len = gw.cfg.coap_secret ? strlen(gw.cfg.coap_secret) : 0;
		co.token_lifetime_s = (int)gw.cfg.coap_token_lifetime;
		co.default_timeout_s = (int)gw.cfg.exec_timeout;
		co.allow_unknown = gw.cfg.coap_allow_unknown;
		co.install_path = gw.cfg.coap_install_path;
		co.max_transmit_span_s = (int)gw.cfg.coap_max_transmit_span;
		if (!(gw.coap = dg_driver_coap_new(gw.base, &co, &err)))
			goto out;
	}
	/* serial driver (issue 12) */
	if (gw.cfg.serial_models.count &&
	    !(gw.serial = dg_driver_serial_new(gw.base, (const char *const *)gw.cfg.serial_models.items,
	    gw.cfg.serial_models.count, &err)))
		goto out;
	if (add_devices(&gw, &gw.cfg) != DG_OK)
		goto out;
	if (dg_daemon_drop_privileges(gw.cfg.user) != DG_OK)
		goto out;
	if (dg_daemon_write_pidfile(gw.cfg.pid_file) != DG_OK)
		goto out;
	dg_jobs_resume(gw.jobs);
	publish_devices(&gw);
	dg_daemon_notify_ready();
	if (!(wd = dg_daemon_watchdog_new(gw.base, &err)))
		goto out;
	dg_log_info("deltagated %s: gateway %s, broker %s, %zu devices, cache %s",
	    PACKAGE_VERSION, gw.cfg.gateway_id, gw.cfg.broker, gw.cfg.devices.count, gw.cfg.cache_root);
	event_base_dispatch(gw.base);
	dg_daemon_notify_stopping();
	dg_daemon_remove_pidfile(gw.cfg.pid_file);
	rc = gw.lost ? 75 : 0;
out:
	dg_daemon_watchdog_free(wd);
	dg_jobs_free(gw.jobs);
	for (i = 0; i < (int)ntrusted; i++)
		dg_jws_key_free(trusted[i]);
	free(trusted);
	dg_driver_free(gw.exec);
	dg_driver_free(gw.coap);
	dg_driver_free(gw.serial);
	dg_mirror_free(gw.mirror);
	dg_outbox_free(gw.outbox);
	dg_mqtt_free(gw.mqtt, 1000);
	dg_fetcher_free(gw.fetcher);
	dg_cache_free(gw.cache);
	for (i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	dg_store_free(gw.store);
	dg_topic_free(gw.topic);
	if (gw.base)
		event_base_free(gw.base);
	dg_config_free(options, NOPTIONS, &gw.cfg);
	free(gw.args);
	return rc;
}
