/* Unit tests: dg_mqtt (what needs no broker) and dg_topic */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "dg_log.h"
#include "dg_mqtt.h"
#include "dg_topic.h"

static void
test_topic_valid(void **state)
{
	assert_true(dg_mqtt_topic_valid("state/dev1/update", 0));
	assert_false(dg_mqtt_topic_valid("state/+/update", 0));
	assert_false(dg_mqtt_topic_valid("state/#", 0));
	assert_false(dg_mqtt_topic_valid("", 0));
	assert_false(dg_mqtt_topic_valid(NULL, 0));
	assert_false(dg_mqtt_topic_valid("bad\xff", 0));
	/* filters */
	assert_true(dg_mqtt_topic_valid("state/+/update", 1));
	assert_true(dg_mqtt_topic_valid("state/#", 1));
	assert_true(dg_mqtt_topic_valid("+", 1));
	assert_false(dg_mqtt_topic_valid("state/a+/update", 1));
	assert_false(dg_mqtt_topic_valid("state/#/x", 1));
	assert_false(dg_mqtt_topic_valid("state/+x", 1));
}

static void
test_bad_options(void **state)
{
	struct event_base *base = event_base_new();
	dg_mqtt_callbacks cb = { 0 };
	dg_mqtt_opts o = { 0 };
	dg_err err;

	o.client_id = "t";
	o.uri = "http://127.0.0.1:1";
	assert_null(dg_mqtt_new(base, &o, &cb, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	o.uri = "mqtt://127.0.0.1:1";
	o.version = 3;
	assert_null(dg_mqtt_new(base, &o, &cb, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	o.version = 4;
	o.password = "p";
	assert_null(dg_mqtt_new(base, &o, &cb, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	o.password = NULL;
	o.persist_dir = "relative/dir";
	assert_null(dg_mqtt_new(base, &o, &cb, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	o.persist_dir = NULL;
	o.client_id = "";
	assert_null(dg_mqtt_new(base, &o, &cb, NULL, &err));
	assert_int_equal(err, DG_ERR_INVAL);
	event_base_free(base);
}

/* A client on a closed port: publishing is refused while disconnected,
 * a wildcard topic is refused always, and free works. */
static void
test_disconnected(void **state)
{
	struct event_base *base = event_base_new();
	dg_mqtt_callbacks cb = { 0 };
	dg_mqtt_opts o = { 0 };
	dg_mqtt *m;
	dg_err err;

	o.client_id = "t";
	o.uri = "mqtt://127.0.0.1:1";
	m = dg_mqtt_new(base, &o, &cb, NULL, &err);
	assert_non_null(m);
	assert_false(dg_mqtt_is_connected(m));
	assert_int_equal(dg_mqtt_publish(m, "a/b", "x", 1, 1, 0, NULL, NULL), DG_ERR_MQTT_DISCONNECTED);
	assert_int_equal(dg_mqtt_publish(m, "a/+", "x", 1, 1, 0, NULL, NULL), DG_ERR_MQTT_TOPIC);
	assert_int_equal(dg_mqtt_subscribe(m, "a/+/c", 1), DG_OK);
	assert_int_equal(dg_mqtt_subscribe(m, "a/b+", 1), DG_ERR_MQTT_TOPIC);
	assert_int_equal(dg_mqtt_inflight(m), 0);
	dg_mqtt_free(m, 0);
	dg_mqtt_free(NULL, 0);
	event_base_free(base);
}

static void
test_topic_templates(void **state)
{
	dg_err err;
	dg_topic *t = dg_topic_new("state/{id}", &err);
	dg_topic *aws = dg_topic_new("aws", &err);
	char buf[256], id[DG_TOPIC_ID_MAX + 1];
	const char *leaf;

	assert_non_null(t);
	assert_non_null(aws);
	assert_int_equal(dg_topic_build(t, "dev1", "update/delta", buf, sizeof(buf)), DG_OK);
	assert_string_equal(buf, "state/dev1/update/delta");
	assert_int_equal(dg_topic_build(aws, "dev1", "get", buf, sizeof(buf)), DG_OK);
	assert_string_equal(buf, "$aws/things/dev1/shadow/get");
	assert_int_equal(dg_topic_filter(aws, "update", buf, sizeof(buf)), DG_OK);
	assert_string_equal(buf, "$aws/things/+/shadow/update");
	assert_true(dg_topic_match(aws, "$aws/things/x-9/shadow/update/accepted", id, &leaf));
	assert_string_equal(id, "x-9");
	assert_string_equal(leaf, "update/accepted");
	assert_false(dg_topic_match(aws, "$aws/things/x-9/other/update", id, &leaf));
	assert_false(dg_topic_match(t, "state//update", id, &leaf));
	assert_int_equal(dg_topic_build(t, "bad/id", "get", buf, sizeof(buf)), DG_ERR_INVAL);
	assert_int_equal(dg_topic_build(t, "dev1", "get", buf, 8), DG_ERR_RANGE);
	dg_topic_free(t);
	dg_topic_free(aws);
	/* invalid templates */
	assert_null(dg_topic_new("state/x{id}", &err));
	assert_null(dg_topic_new("state/{id}/{id}", &err));
	assert_null(dg_topic_new("state/+/{id}", &err));
	assert_null(dg_topic_new("state/{id}/", &err));
	assert_null(dg_topic_new("state", &err));
	assert_int_equal(err, DG_ERR_CONFIG_VALUE);
	/* ids */
	assert_true(dg_topic_id_valid("Pump_7:a.b-c"));
	assert_false(dg_topic_id_valid(".."));
	assert_false(dg_topic_id_valid("a b"));
	assert_false(dg_topic_id_valid("a+"));
	assert_false(dg_topic_id_valid(""));
	memset(buf, 'a', 129);
	buf[129] = '\0';
	assert_false(dg_topic_id_valid(buf));
	buf[128] = '\0';
	assert_true(dg_topic_id_valid(buf));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topic_valid),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_disconnected),
		cmocka_unit_test(test_topic_templates),
	};

	dg_log_open("test_mqtt", 0, DG_LOG_ERR + 0);
	dg_log_set_level(DG_LOG_ERR);
	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
