/* dg_coap_parse: what CoAP devices send the gateway, accepted and refused. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dg_coap_parse.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF"

static dg_err
rd(const char *query, const char *body, dg_coap_reg *reg)
{
	const char *why = NULL;
	dg_err err = dg_coap_parse_rd(query, query ? strlen(query) : 0, (const uint8_t *)body,
	    body ? strlen(body) : 0, reg, &why);

	assert_non_null(why);
	return err;
}

static dg_err
report(const char *body, dg_coap_report *r)
{
	return dg_coap_parse_report((const uint8_t *)body, strlen(body), r);
}

static void
test_rd_accepts(void **state)
{
	dg_coap_reg r;

	(void)state;
	assert_int_equal(rd("ep=dev-1", NULL, &r), DG_OK);
	assert_string_equal(r.id, "dev-1");
	assert_int_equal(r.mode, -1);
	assert_int_equal(r.szx, -1);
	assert_int_equal(r.has_version, 0);
	assert_string_equal(r.sha256, "");
	assert_string_equal(r.firmware, "");

	assert_int_equal(rd("ep=a:b.c_d", "{\"version\":\"1.2\",\"sha256\":\"" SHA "\",\"szx\":2,"
	    "\"mode\":\"push\",\"firmware\":\"/5/0/0\"}", &r), DG_OK);
	assert_string_equal(r.id, "a:b.c_d");
	assert_int_equal(r.mode, 1);
	assert_int_equal(r.szx, 2);
	assert_int_equal(r.has_version, 1);
	assert_string_equal(r.version, "1.2");
	assert_string_equal(r.sha256, SHA);
	assert_string_equal(r.firmware, "/5/0/0");

	/* other RFC 9176 parameters around ep= are ignored */
	assert_int_equal(rd("lt=300&ep=x7&d=home", "{\"mode\":\"pull\",\"version\":\"\"}", &r), DG_OK);
	assert_string_equal(r.id, "x7");
	assert_int_equal(r.mode, 0);
	assert_int_equal(r.has_version, 1);
	assert_string_equal(r.version, "");
	assert_int_equal(rd("ep=x", "{\"szx\":0}", &r), DG_OK);
	assert_int_equal(r.szx, 0);
	assert_int_equal(rd("ep=x", "{\"szx\":6,\"unknown\":[1,2]}", &r), DG_OK);
	assert_int_equal(r.szx, 6);
}

static void
test_rd_rejects(void **state)
{
	dg_coap_reg r;
	char big[DG_COAP_BODY_MAX + 40], id[140];

	(void)state;
	assert_int_equal(rd(NULL, NULL, &r), DG_ERR_INVAL);
	assert_int_equal(rd("", NULL, &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=", NULL, &r), DG_ERR_INVAL);
	assert_int_equal(rd("id=x", NULL, &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=a/b", NULL, &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=a b", NULL, &r), DG_ERR_INVAL);
	memset(id, 'a', sizeof(id));
	memcpy(id, "ep=", 3);
	id[3 + 129] = '\0'; /* 129 bytes: one too many */
	assert_int_equal(rd(id, NULL, &r), DG_ERR_INVAL);
	id[3 + 128] = '\0';
	assert_int_equal(rd(id, NULL, &r), DG_OK);
	{
		/* a NUL inside the query */
		const char q[] = "ep=ab\0c";
		const char *why;

		assert_int_equal(dg_coap_parse_rd(q, sizeof(q) - 1, NULL, 0, &r, &why), DG_ERR_INVAL);
	}
	assert_int_equal(rd("ep=x", "[1]", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "\"s\"", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"mode\":\"both\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"mode\":1}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"mode\":\"push\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"mode\":\"push\",\"firmware\":\"\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"szx\":7}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"szx\":-1}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"szx\":\"6\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"sha256\":\"abc\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"sha256\":\"" SHA "0\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"sha256\":\"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
	    &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"version\":2}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"version\":\"a\\nb\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"version\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
	    &r), DG_ERR_INVAL); /* 64 bytes */
	assert_int_equal(rd("ep=x", "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", &r), DG_ERR_INVAL); /* depth 5 */
	assert_int_equal(rd("ep=x", "{\"version\":\"1\",\"version\":\"2\"}", &r), DG_ERR_INVAL);
	assert_int_equal(rd("ep=x", "{\"version\":\"\xff\"}", &r), DG_ERR_INVAL);
	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(rd("ep=x", big, &r), DG_ERR_TOOBIG);
}

static void
test_report_accepts(void **state)
{
	dg_coap_report r;

	(void)state;
	assert_int_equal(report("jobID:job-1 SUCCESS", &r), DG_OK);
	assert_string_equal(r.job, "job-1");
	assert_int_equal(r.ok, 1);
	assert_string_equal(r.version, "");
	assert_int_equal(report("jobID:j2 FAILURE\r\n", &r), DG_OK);
	assert_string_equal(r.job, "j2");
	assert_int_equal(r.ok, 0);
	assert_int_equal(report("{\"jobId\":\"j3\",\"status\":\"SUCCEEDED\",\"version\":\"2.0\"}", &r), DG_OK);
	assert_string_equal(r.job, "j3");
	assert_int_equal(r.ok, 1);
	assert_string_equal(r.version, "2.0");
	assert_int_equal(report("{\"jobId\":\"j4\",\"status\":\"FAILED\",\"extra\":{}}", &r), DG_OK);
	assert_int_equal(r.ok, 0);
}

static void
test_report_rejects(void **state)
{
	dg_coap_report r;
	char big[DG_COAP_BODY_MAX + 10], job[200];

	(void)state;
	assert_int_equal(dg_coap_parse_report((const uint8_t *)"", 0, &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID: SUCCESS", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j1", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j1 DONE", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j1 SUCCESSFUL", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j1 success", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j\x01 SUCCESS", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobid:j1 SUCCESS", &r), DG_ERR_INVAL);
	assert_int_equal(report("jobID:j\xff\xfe SUCCESS", &r), DG_ERR_INVAL); /* not UTF-8 */
	{
		const char t[] = "jobID:a\0b SUCCESS";

		assert_int_equal(dg_coap_parse_report((const uint8_t *)t, sizeof(t) - 1, &r), DG_ERR_INVAL);
	}
	memset(job, 'j', sizeof(job));
	memcpy(job, "jobID:", 6);
	memcpy(job + 6 + 128, " SUCCESS", 9); /* a 128-byte id: one too long */
	assert_int_equal(report(job, &r), DG_ERR_INVAL);
	memcpy(job + 6 + 127, " SUCCESS", 9);
	assert_int_equal(report(job, &r), DG_OK);
	assert_int_equal(strlen(r.job), 127);
	assert_int_equal(report("{\"jobId\":\"j\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"status\":\"SUCCEEDED\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"jobId\":\"\",\"status\":\"SUCCEEDED\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"jobId\":1,\"status\":\"SUCCEEDED\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"jobId\":\"j\",\"status\":\"IN_PROGRESS\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"jobId\":\"j\",\"status\":\"SUCCEEDED\",\"version\":3}", &r), DG_ERR_INVAL);
	assert_int_equal(report("{\"jobId\":\"j\",\"status\":\"SUCCEEDED\",\"version\":"
	    "\"0123456789012345678901234567890123456789012345678901234567890123\"}", &r), DG_ERR_INVAL);
	assert_int_equal(report("[\"jobId\"]", &r), DG_ERR_INVAL);
	assert_int_equal(report("SUCCESS", &r), DG_ERR_INVAL);
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "jobID:j SUCCESS", 15);
	assert_int_equal(report(big, &r), DG_ERR_TOOBIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rd_accepts),
		cmocka_unit_test(test_rd_rejects),
		cmocka_unit_test(test_report_accepts),
		cmocka_unit_test(test_report_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
