/* Unit tests: dg_sigv4 (AWS Signature Version 4, nginx secure_link) and
 * dg_jws (Ed25519 JWS).
 *
 * The expected values of the first two tests are AWS's published worked
 * examples (Amazon S3 API reference, "Signature Calculations for the
 * Authorization Header: Example GET Object" and "Authenticating Requests:
 * Using Query Parameters", examplebucket/test.txt, AKIAIOSFODNN7EXAMPLE,
 * 20130524T000000Z). The rest are cross-checked against an independent
 * signer run here (tests/sigv4_ref.py: Python's hmac/hashlib) and against
 * the openssl command line. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dg_command.h"
#include "dg_jws.h"
#include "dg_sigv4.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void
test_aws_header_example(void **state)
{
	const dg_sigv4_pair h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA },
		{ "x-amz-date", "20130524T000000Z" },
	};
	dg_sigv4_request r = { "GET", "/test.txt", NULL, 0, h, 4, EMPTY_SHA, "20130524T000000Z",
		"us-east-1", "s3" };
	char sig[65], *canon = NULL, *sh = NULL;

	(void)state;
	assert_int_equal(dg_sigv4_sign(&r, SK, sig, &canon, &sh), DG_OK);
	assert_string_equal(canon,
	    "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
	    "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
	    "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA);
	assert_string_equal(sh, "host;range;x-amz-content-sha256;x-amz-date");
	/* AWS's published signature of this request */
	assert_string_equal(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(canon);
	free(sh);
	/* another secret, another signature */
	assert_int_equal(dg_sigv4_sign(&r, SK "x", sig, NULL, NULL), DG_OK);
	assert_string_not_equal(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void
test_aws_presigned_get_example(void **state)
{
	dg_sigv4_creds c = { AK, SK, NULL };
	char *url = NULL, *http = NULL;

	(void)state;
	assert_int_equal(dg_sigv4_s3_http_url("s3://examplebucket/test.txt", "us-east-1", NULL, &http),
	    DG_OK);
	assert_string_equal(http, "https://examplebucket.s3.amazonaws.com/test.txt");
	assert_int_equal(dg_sigv4_presign(http, "us-east-1", "s3", &c, "20130524T000000Z", 86400, &url),
	    DG_OK);
	/* AWS's published pre-signed URL, signature included */
	assert_string_equal(url,
	    "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
	    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
	    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
	    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
	free(url);
	free(http);
}

static void
test_presign_refusals(void **state)
{
	dg_sigv4_creds c = { AK, SK, NULL };
	char *url = (char *)"x";

	(void)state;
	assert_int_equal(dg_sigv4_presign("ftp://h/x", "us-east-1", "s3", &c, NULL, 60, &url), DG_ERR_INVAL);
	assert_null(url);
	assert_int_equal(dg_sigv4_presign("https://h/x?a=b", "us-east-1", "s3", &c, NULL, 60, &url),
	    DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_presign("https://h", "us-east-1", "s3", &c, NULL, 60, &url), DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_presign("https://h/x", "us-east-1", "s3", &c, NULL, 0, &url), DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_presign("https://h/x", "us-east-1", "s3", &c, NULL, 604801, &url),
	    DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_presign("https://h/x", "us-east-1", "s3", &c, "20130524T000000", 60, &url),
	    DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_presign("https://h/x", "us-east-1", "s3", &c, "20131324T000000Z", 60, &url),
	    DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_s3_http_url("s3://bucket", NULL, NULL, &url), DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_s3_http_url("s3:///key", NULL, NULL, &url), DG_ERR_INVAL);
	assert_int_equal(dg_sigv4_s3_http_url("s3://b/k", "eu-west-1", NULL, &url), DG_OK);
	assert_string_equal(url, "https://b.s3.eu-west-1.amazonaws.com/k");
	free(url);
	assert_int_equal(dg_sigv4_s3_http_url("s3://b/k/l", NULL, "http://127.0.0.1:9000/", &url), DG_OK);
	assert_string_equal(url, "http://127.0.0.1:9000/b/k/l");
	free(url);
}

static void
test_uri_encode(void **state)
{
	char *s;

	(void)state;
	s = dg_sigv4_uri_encode("a b+c~d/e\xc3\xbc*", 1);
	assert_string_equal(s, "a%20b%2Bc~d/e%C3%BC%2A");
	free(s);
	s = dg_sigv4_uri_encode("a/b=c", 0);
	assert_string_equal(s, "a%2Fb%3Dc");
	free(s);
}

/* Run tests/sigv4_ref.py on the same input and compare. */
static void
cross_check(const char *url, const char *region, const char *ak, const char *sk, const char *tok,
    int64_t expires)
{
	const char *top = getenv("top_srcdir");
	dg_sigv4_creds c = { ak, sk, tok };
	char cmd[4096], ref[8192], *mine = NULL;
	FILE *p;
	size_t n;

	assert_int_equal(dg_sigv4_presign(url, region, "s3", &c, "20260102T030405Z", expires, &mine), DG_OK);
	setenv("AWS_ACCESS_KEY_ID", ak, 1);
	setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
	if (tok)
		setenv("AWS_SESSION_TOKEN", tok, 1);
	else
		unsetenv("AWS_SESSION_TOKEN");
	snprintf(cmd, sizeof(cmd), "python3 '%s/tests/sigv4_ref.py' '%s' '%s' 20260102T030405Z %lld",
	    top ? top : "..", url, region, (long long)expires);
	assert_non_null(p = popen(cmd, "r"));
	n = fread(ref, 1, sizeof(ref) - 1, p);
	assert_int_equal(pclose(p), 0);
	ref[n] = '\0';
	if (n && ref[n - 1] == '\n')
		ref[n - 1] = '\0';
	assert_string_equal(mine, ref);
	free(mine);
}

static void
test_cross_check_keys(void **state)
{
	(void)state;
	/* spaces, +, ~ and UTF-8 in the key */
	cross_check("https://examplebucket.s3.amazonaws.com/dir with space/a+b~c/\xc3\xbc\xe2\x82\xac.bin",
	    "us-east-1", AK, SK, NULL, 3600);
	/* a secret with + and a session token (which is signed) */
	cross_check("http://127.0.0.1:4569/bucket/fw-2.0.bin", "eu-central-1", "ASIAEXAMPLE",
	    "ab+cd/ef==gh", "FwoGZXIvYXdzE+token/with=chars", 900);
	/* another token, another link */
	{
		dg_sigv4_creds a = { AK, SK, "t1" }, b = { AK, SK, "t2" };
		char *x = NULL, *y = NULL;

		assert_int_equal(dg_sigv4_presign("https://h/k", "us-east-1", "s3", &a, "20260102T030405Z",
		    60, &x), DG_OK);
		assert_int_equal(dg_sigv4_presign("https://h/k", "us-east-1", "s3", &b, "20260102T030405Z",
		    60, &y), DG_OK);
		assert_non_null(strstr(x, "X-Amz-Security-Token=t1&"));
		assert_string_not_equal(strrchr(x, '='), strrchr(y, '='));
		free(x);
		free(y);
	}
}

static void
test_secure_link(void **state)
{
	char *url = NULL, cmd[1024], ref[128];
	FILE *p;
	size_t n;

	(void)state;
	assert_int_equal(dg_sigv4_secure_link("https://127.0.0.1:8443", "/s/fw 1.bin", "sec ret", NULL,
	    2000000000, &url), DG_OK);
	/* the md5 as nginx's documentation computes it with the openssl tool */
	snprintf(cmd, sizeof(cmd), "printf '%%s' '2000000000/s/fw 1.bin sec ret' | openssl md5 -binary |"
	    " openssl base64 | tr '+/' '-_' | tr -d '='");
	assert_non_null(p = popen(cmd, "r"));
	n = fread(ref, 1, sizeof(ref) - 1, p);
	assert_int_equal(pclose(p), 0);
	ref[n] = '\0';
	if (n && ref[n - 1] == '\n')
		ref[n - 1] = '\0';
	{
		char want[512];

		snprintf(want, sizeof(want), "https://127.0.0.1:8443/s/fw%%201.bin?md5=%s&expires=2000000000", ref);
		assert_string_equal(url, want);
	}
	free(url);
	assert_int_equal(dg_sigv4_secure_link("https://h", "s/x", "k", NULL, 1, &url), DG_ERR_INVAL);
}

static void
test_b64url(void **state)
{
	/* RFC 4648 section 10 vectors (the base64url alphabet has no padding) */
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	unsigned char bin[] = { 0xfb, 0xff, 0xfe }, *d;
	size_t i, len;
	char *e;

	(void)state;
	for (i = 0; i < 7; i++) {
		e = dg_jws_b64url_encode((const unsigned char *)in[i], strlen(in[i]));
		assert_string_equal(e, out[i]);
		assert_int_equal(dg_jws_b64url_decode(e, strlen(e), &d, &len), DG_OK);
		assert_int_equal(len, strlen(in[i]));
		assert_memory_equal(d, in[i], len);
		free(d);
		free(e);
	}
	e = dg_jws_b64url_encode(bin, 3);
	assert_string_equal(e, "-__-");
	free(e);
	assert_int_equal(dg_jws_b64url_decode("Zm9v+A", 6, &d, &len), DG_ERR_INVAL);
	assert_int_equal(dg_jws_b64url_decode("Zm9v=", 5, &d, &len), DG_ERR_INVAL);
	assert_int_equal(dg_jws_b64url_decode("Z", 1, &d, &len), DG_ERR_INVAL);
}

static void
test_jws(void **state)
{
	char dir[] = "/tmp/dg-jws-XXXXXX", a[128], apub[128], b[128], bpub[128];
	dg_jws_key *ka, *kapub, *kb, *kbpub;
	dg_jws_key *trust[2];
	char *jws = NULL, *payload = NULL;
	const char *msg = "{\"jobId\":\"j1\",\"seq\":7}";
	size_t plen;
	dg_err e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a.pem", dir);
	snprintf(apub, sizeof(apub), "%s/a.pub.pem", dir);
	snprintf(b, sizeof(b), "%s/b.pem", dir);
	snprintf(bpub, sizeof(bpub), "%s/b.pub.pem", dir);
	assert_int_equal(dg_jws_keygen(a, apub), DG_OK);
	assert_int_equal(dg_jws_keygen(a, apub), DG_ERR_EXIST);
	assert_int_equal(dg_jws_keygen(b, bpub), DG_OK);
	assert_non_null(ka = dg_jws_key_load(a, &e));
	assert_non_null(kapub = dg_jws_key_load(apub, &e));
	assert_non_null(kb = dg_jws_key_load(b, &e));
	assert_non_null(kbpub = dg_jws_key_load(bpub, &e));
	assert_string_equal(dg_jws_key_id(ka), dg_jws_key_id(kapub));
	assert_string_not_equal(dg_jws_key_id(ka), dg_jws_key_id(kb));
	assert_int_equal(strlen(dg_jws_key_id(ka)), 43);
	assert_int_equal(dg_jws_sign(kapub, msg, strlen(msg), &jws), DG_ERR_KEY);

	assert_int_equal(dg_jws_sign(ka, msg, strlen(msg), &jws), DG_OK);
	trust[0] = kbpub;
	trust[1] = kapub;
	assert_int_equal(dg_jws_verify(trust, 2, jws, &payload, &plen), DG_OK);
	assert_int_equal(plen, strlen(msg));
	assert_string_equal(payload, msg);
	free(payload);
	/* only b trusted: unknown key */
	assert_int_equal(dg_jws_verify(trust, 1, jws, &payload, &plen), DG_ERR_JWS_UNKNOWN_KEY);
	assert_null(payload);
	/* one payload character changed: the signature fails */
	{
		char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
		char *t = strdup(jws);

		t[(d1 - jws) + 3] = t[(d1 - jws) + 3] == 'A' ? 'B' : 'A';
		assert_int_equal(dg_jws_verify(trust, 2, t, &payload, &plen), DG_ERR_JWS_SIGNATURE);
		strcpy(t, jws);
		t[(d2 - jws) + 5] = t[(d2 - jws) + 5] == 'A' ? 'B' : 'A';
		assert_int_equal(dg_jws_verify(trust, 2, t, &payload, &plen), DG_ERR_JWS_SIGNATURE);
		free(t);
	}
	/* malformed */
	assert_int_equal(dg_jws_verify(trust, 2, "a.b", &payload, &plen), DG_ERR_JWS_FORMAT);
	assert_int_equal(dg_jws_verify(trust, 2, "a.b.c.d", &payload, &plen), DG_ERR_JWS_FORMAT);
	assert_int_equal(dg_jws_verify(trust, 2, "", &payload, &plen), DG_ERR_JWS_FORMAT);
	/* alg none, the classic downgrade */
	{
		char *h = dg_jws_b64url_encode((const unsigned char *)"{\"alg\":\"none\"}", 14);
		char t[4096];

		snprintf(t, sizeof(t), "%s%s", h, strchr(jws, '.'));
		assert_int_equal(dg_jws_verify(trust, 2, t, &payload, &plen), DG_ERR_JWS_FORMAT);
		free(h);
	}
	free(jws);
	dg_jws_key_free(ka);
	dg_jws_key_free(kapub);
	dg_jws_key_free(kb);
	dg_jws_key_free(kbpub);
	assert_null(dg_jws_key_load("/nonexistent/key.pem", &e));
	assert_int_equal(e, DG_ERR_NOENT);
	unlink(a);
	unlink(apub);
	unlink(b);
	unlink(bpub);
	rmdir(dir);
}

static void
test_command(void **state)
{
	char dir[] = "/tmp/dg-cmd-XXXXXX", a[128], apub[128];
	dg_jws_key *k, *pub;
	json_t *d, *c;
	int64_t seq = 0;
	dg_err e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a.pem", dir);
	snprintf(apub, sizeof(apub), "%s/a.pub.pem", dir);
	assert_int_equal(dg_jws_keygen(a, apub), DG_OK);
	assert_non_null(k = dg_jws_key_load(a, &e));
	assert_non_null(pub = dg_jws_key_load(apub, &e));
	d = json_pack("{s:s,s:s,s:s,s:i,s:s,s:n}", "softwareURL", "https://s/fw.bin", "softwareVersion", "2",
	    "softwareSha256", "00", "softwareSize", 5, "jobId", "j1", "relatedFiles");
	assert_int_equal(dg_command_verify(d, &pub, 1, "dev1", 100, &seq), DG_ERR_CMD_UNSIGNED);
	assert_int_equal(dg_command_sign(d, k, "dev1", 42, 1000), DG_OK);
	assert_int_equal(dg_command_verify(d, &pub, 1, "dev1", 100, &seq), DG_OK);
	assert_int_equal(seq, 42);
	/* the signature is for dev1 only */
	assert_int_equal(dg_command_verify(d, &pub, 1, "dev2", 100, &seq), DG_ERR_CMD_ALTERED);
	/* past its expiry */
	assert_int_equal(dg_command_verify(d, &pub, 1, "dev1", 1001, &seq), DG_ERR_CMD_EXPIRED);
	/* every signed field counts: URL, size, an added related file */
	c = json_deep_copy(d);
	json_object_set_new(c, "softwareURL", json_string("https://evil/fw.bin"));
	assert_int_equal(dg_command_verify(c, &pub, 1, "dev1", 100, &seq), DG_ERR_CMD_ALTERED);
	json_decref(c);
	c = json_deep_copy(d);
	json_object_set_new(c, "softwareSize", json_integer(6));
	assert_int_equal(dg_command_verify(c, &pub, 1, "dev1", 100, &seq), DG_ERR_CMD_ALTERED);
	json_decref(c);
	c = json_deep_copy(d);
	json_object_set_new(c, "relatedFiles", json_pack("[{s:s}]", "url", "https://evil/d"));
	assert_int_equal(dg_command_verify(c, &pub, 1, "dev1", 100, &seq), DG_ERR_CMD_ALTERED);
	json_decref(c);
	/* an unsigned member does not matter; an absent relatedFiles is a null one */
	c = json_deep_copy(d);
	json_object_set_new(c, "note", json_string("x"));
	json_object_del(c, "relatedFiles");
	assert_int_equal(dg_command_verify(c, &pub, 1, "dev1", 100, &seq), DG_OK);
	json_decref(c);
	/* no trusted key matches */
	assert_int_equal(dg_command_verify(d, NULL, 0, "dev1", 100, &seq), DG_ERR_JWS_UNKNOWN_KEY);
	json_decref(d);
	dg_jws_key_free(k);
	dg_jws_key_free(pub);
	unlink(a);
	unlink(apub);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aws_header_example),
		cmocka_unit_test(test_aws_presigned_get_example),
		cmocka_unit_test(test_presign_refusals),
		cmocka_unit_test(test_uri_encode),
		cmocka_unit_test(test_cross_check_keys),
		cmocka_unit_test(test_secure_link),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_jws),
		cmocka_unit_test(test_command),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
