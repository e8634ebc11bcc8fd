/* Unit tests: dg_manifest (builder, hashing, validation against the
 * structure of azure-deviceupdate-import-manifest-5.0.json). */
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

#include "dg_manifest.h"
#include "dg_util.h"

static char dir[64];
static char tgt[128], delta[128], src[128], empty[128];

/* sha256("abc") in base64 */
#define ABC_SHA256 "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="

static const char good_text[] =
    "{\"updateId\": {\"provider\": \"Contoso\", \"name\": \"Gateway\", \"version\": \"1.2.3\"},"
    " \"description\": \"test update\","
    " \"compatibility\": [{\"manufacturer\": \"Contoso\", \"model\": \"GW1\"}],"
    " \"instructions\": {\"steps\": ["
    "   {\"type\": \"inline\", \"handler\": \"microsoft/swupdate:2\", \"files\": [\"t.swu\"],"
    "    \"handlerProperties\": {\"installedCriteria\": \"1.2.3\"}},"
    "   {\"type\": \"reference\", \"updateId\": {\"provider\": \"C\", \"name\": \"N\", \"version\": \"1.0\"}}]},"
    " \"files\": [{\"filename\": \"t.swu\", \"sizeInBytes\": 3,"
    "   \"hashes\": {\"sha256\": \"" ABC_SHA256 "\"},"
    "   \"downloadHandler\": {\"id\": \"microsoft/delta:1\"},"
    "   \"relatedFiles\": [{\"filename\": \"d.bin\", \"sizeInBytes\": 3,"
    "     \"hashes\": {\"sha256\": \"" ABC_SHA256 "\"},"
    "     \"properties\": {\"microsoft.sourceFileHashAlgorithm\": \"sha256\","
    "       \"microsoft.sourceFileHash\": \"" ABC_SHA256 "\"}}]}],"
    " \"createdDateTime\": \"2020-10-02T22:18:04.9446744Z\","
    " \"manifestVersion\": \"5.0\"}";

static json_t *
good(void)
{
	json_error_t je;
	json_t *doc = json_loads(good_text, 0, &je);

	assert_non_null(doc);
	return doc;
}

/* Apply a change at a dotted path ("a.b[0].c"): set to value, or delete
 * when value is NULL. Array indexes as [n]. */
static void
mutate(json_t *doc, const char *path, json_t *value)
{
	char buf[256], *p = buf, *tok;
	json_t *cur = doc;

	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		char *dot = strpbrk(p, ".[");
		char key[64];
		int last;

		if (*p == '[') {
			size_t idx = strtoul(p + 1, &tok, 10);

			p = tok + 1;
			if (*p == '.')
				p++;
			last = *p == '\0';
			if (last) {
				if (value && idx == json_array_size(cur))
					assert_int_equal(json_array_append_new(cur, value), 0);
				else if (value)
					assert_int_equal(json_array_set_new(cur, idx, value), 0);
				else
					assert_int_equal(json_array_remove(cur, idx), 0);
				return;
			}
			cur = json_array_get(cur, idx);
			assert_non_null(cur);
			continue;
		}
		snprintf(key, sizeof(key), "%.*s", dot ? (int)(dot - p) : (int)strlen(p), p);
		if (!dot) {
			if (value)
				assert_int_equal(json_object_set_new(cur, key, value), 0);
			else
				assert_int_equal(json_object_del(cur, key), 0);
			return;
		}
		cur = json_object_get(cur, key);
		assert_non_null(cur);
		p = *dot == '.' ? dot + 1 : dot;
	}
}

static void
expect_bad(const char *path, json_t *value, const char *why_part)
{
	json_t *doc = good();
	char why[256] = "";

	mutate(doc, path, value);
	if (dg_manifest_validate(doc, why, sizeof(why)) != DG_ERR_MANIFEST)
		fail_msg("%s: accepted", path);
	if (!strstr(why, why_part))
		fail_msg("%s: reason '%s' lacks '%s'", path, why, why_part);
	json_decref(doc);
}

static void
expect_ok(const char *path, json_t *value)
{
	json_t *doc = good();
	char why[256] = "";

	mutate(doc, path, value);
	if (dg_manifest_validate(doc, why, sizeof(why)) != DG_OK)
		fail_msg("%s: refused: %s", path, why);
	json_decref(doc);
}

static void
test_validate_good(void **state)
{
	json_t *doc = good();
	char why[256];

	assert_int_equal(dg_manifest_validate(doc, why, sizeof(why)), DG_OK);
	json_decref(doc);
	/* optional members may go */
	expect_ok("description", NULL);
	expect_ok("files[0].relatedFiles", NULL);
	expect_ok("files[0].downloadHandler", NULL);
	expect_ok("instructions.steps[0].type", NULL);
	expect_ok("instructions.steps[0].handlerProperties", NULL);
	expect_ok("$schema", json_string("https://json.schemastore.org/azure-deviceupdate-import-manifest-5.0.json"));
	expect_ok("updateId.version", json_string("2021.11.8.0"));
	expect_ok("updateId.version", json_string("0.2147483647"));
	expect_ok("createdDateTime", json_string("2020-10-02T22:18:04+02:00"));
	expect_ok("files[0].hashes.sha1", json_string("abc"));
}

static void
test_validate_required(void **state)
{
	expect_bad("updateId", NULL, "updateId");
	expect_bad("updateId.provider", NULL, "updateId.provider");
	expect_bad("updateId.name", NULL, "updateId.name");
	expect_bad("updateId.version", NULL, "updateId.version");
	expect_bad("compatibility", NULL, "compatibility");
	expect_bad("instructions", NULL, "instructions");
	expect_bad("instructions.steps", NULL, "instructions.steps");
	expect_bad("manifestVersion", NULL, "manifestVersion");
	expect_bad("createdDateTime", NULL, "createdDateTime");
	expect_bad("instructions.steps[0].handler", NULL, "steps[0].handler");
	expect_bad("instructions.steps[0].files", NULL, "steps[0].files");
	expect_bad("instructions.steps[1].updateId", NULL, "steps[1].updateId");
	expect_bad("files[0].filename", NULL, "files[0].filename");
	expect_bad("files[0].sizeInBytes", NULL, "files[0].sizeInBytes");
	expect_bad("files[0].hashes", NULL, "files[0].hashes");
	expect_bad("files[0].hashes.sha256", NULL, "hashes.sha256");
	expect_bad("files[0].downloadHandler.id", NULL, "downloadHandler.id");
}

static void
test_validate_values(void **state)
{
	char long65[66], long33[34], long256[257];

	memset(long65, 'a', 65);
	long65[65] = '\0';
	memset(long33, 'k', 33);
	long33[33] = '\0';
	memset(long256, 'f', 256);
	long256[256] = '\0';
	/* patterns and lengths of the update id */
	expect_bad("updateId.provider", json_string("Con toso"), "provider");
	expect_bad("updateId.provider", json_string(""), "provider");
	expect_bad("updateId.provider", json_string(long65), "provider");
	expect_bad("updateId.name", json_string("a/b"), "name");
	expect_bad("updateId.provider", json_integer(5), "provider");
	expect_bad("updateId.version", json_string("1"), "version");
	expect_bad("updateId.version", json_string("1.2.3.4.5"), "version");
	expect_bad("updateId.version", json_string("1.a"), "version");
	expect_bad("updateId.version", json_string("1..2"), "version");
	expect_bad("updateId.version", json_string("1.2."), "version");
	expect_bad("updateId.version", json_string("2147483648.0"), "version");
	expect_bad("updateId.extra", json_string("x"), "'extra' is not allowed");
	/* compatibility */
	expect_bad("compatibility", json_array(), "compatibility");
	expect_bad("compatibility[0]", json_object(), "compatibility[0]");
	expect_bad("compatibility[0].model", json_integer(1), "compatibility[0].model");
	expect_bad("compatibility[0].model", json_string(""), "compatibility[0].model");
	expect_bad("compatibility[0].model", json_string(long65), "compatibility[0].model");
	expect_bad("compatibility[0]", json_pack("{s:s}", long33, "v"), "compatibility[0]");
	expect_bad("compatibility[0]", json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "a", "1", "b", "2", "c",
	    "3", "d", "4", "e", "5", "f", "6"), "compatibility[0]");
	/* steps */
	expect_bad("instructions.steps", json_array(), "instructions.steps");
	expect_bad("instructions.steps[0].handler", json_string("swupdate"), "handler");
	expect_bad("instructions.steps[0].handler", json_string("a/b:123456"), "handler");
	expect_bad("instructions.steps[0].handler", json_string("a /b:1"), "handler");
	expect_bad("instructions.steps[0].handler", json_string("/ab:1"), "handler");
	expect_bad("instructions.steps[0].files", json_pack("[s]", "other.bin"), "not in files");
	expect_bad("instructions.steps[0].files", json_array(), "files");
	expect_bad("instructions.steps[0].type", json_string("script"), "type");
	expect_bad("instructions.steps[0].handlerProperties", json_string("x"), "handlerProperties");
	expect_bad("instructions.steps[0].description", json_string(long65), "description");
	expect_bad("instructions.steps[0].updateId", json_string("x"), "is not allowed");
	expect_bad("instructions.steps[1].handler", json_string("a/b:1"), "is not allowed");
	expect_bad("instructions.extra", json_true(), "is not allowed");
	/* files */
	expect_bad("files[0].sizeInBytes", json_integer(0), "sizeInBytes");
	expect_bad("files[0].sizeInBytes", json_string("3"), "sizeInBytes");
	expect_bad("files[0].sizeInBytes", json_integer(INT64_C(3000000000)), "2 GB");
	expect_bad("files[0].filename", json_string(""), "filename");
	expect_bad("files[0].filename", json_string(long256), "filename");
	expect_bad("files[0].hashes.sha256", json_string("abc"), "sha256");
	expect_bad("files[0].hashes.sha256", json_string("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa1="), "sha256");
	expect_bad("files[0].hashes.sha256", json_string("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0"), "sha256");
	expect_bad("files[0].hashes.sha256", json_string("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIA.a0="), "sha256");
	expect_bad("files[0].hashes", json_pack("{s:s,s:s,s:s}", "sha256", ABC_SHA256, "sha1", "x",
	    "md5", "y"), "at most 2 hashes");
	expect_bad("files[0].hashes.sha1", json_integer(1), "hashes.sha1");
	expect_bad("files[0].hashes.verylongname", json_string("x"), "hashes.verylongname");
	expect_bad("files[0].downloadHandler.id", json_string("delta"), "downloadHandler");
	expect_bad("files[0].properties", json_array(), "properties");
	expect_bad("files[0].extra", json_true(), "'extra' is not allowed");
	expect_bad("files[0].relatedFiles[0].relatedFiles", json_array(), "is not allowed");
	expect_bad("files[0].relatedFiles[0].hashes.sha256", json_string("x"), "relatedFiles[0]");
	expect_bad("files[0].relatedFiles", json_pack("[{},{},{},{},{}]"), "relatedFiles");
	{
		json_t *g = good();

		expect_bad("files[1]", json_deep_copy(json_array_get(json_object_get(g, "files"), 0)),
		    "twice");
		json_decref(g);
	}
	/* top level */
	expect_bad("manifestVersion", json_string("4.0"), "manifestVersion");
	expect_bad("manifestVersion", json_real(5.0), "manifestVersion");
	expect_bad("createdDateTime", json_string("yesterday"), "createdDateTime");
	expect_bad("createdDateTime", json_string("2020-10-02 22:18:04Z"), "createdDateTime");
	expect_bad("createdDateTime", json_string("2020-10-02T22:18:04"), "createdDateTime");
	expect_bad("description", json_string(""), "description");
	expect_bad("isDeployable", json_true(), "'isDeployable' is not allowed");
	expect_bad("$schema", json_integer(5), "$schema");
	{
		json_t *arr = json_array();
		int i;
		char name[16];

		for (i = 0; i < 11; i++) {
			snprintf(name, sizeof(name), "f%d", i);
			json_array_append_new(arr, json_pack("{s:s,s:i,s:{s:s}}", "filename", name,
			    "sizeInBytes", 1, "hashes", "sha256", ABC_SHA256));
		}
		expect_bad("files", arr, "files");
	}
	{
		json_t *a = json_array();

		assert_int_equal(dg_manifest_validate(a, NULL, 0), DG_ERR_MANIFEST);
		json_decref(a);
	}
}

static void
test_hash_file(void **state)
{
	char out[DG_MANIFEST_B64_SHA256_LEN + 1], p[128];
	uint64_t size;

	assert_int_equal(dg_manifest_hash_file(tgt, &size, out), DG_OK);
	assert_int_equal(size, 3);
	assert_string_equal(out, ABC_SHA256);
	/* a file larger than the read buffer: compare with openssl */
	{
		uint8_t *big = malloc(200001);
		char cmd[512], *ref;
		size_t reflen;

		for (size_t i = 0; i < 200001; i++)
			big[i] = (uint8_t)(i * 31 + (i >> 9));
		snprintf(p, sizeof(p), "%s/big", dir);
		assert_int_equal(dg_util_write_atomic(p, big, 200001, 0644), DG_OK);
		snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -binary %s | base64 > %s/big.ref", p, dir);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "%s/big.ref", dir);
		assert_int_equal(dg_util_read_file(cmd, 1000, &ref, &reflen), DG_OK);
		assert_int_equal(dg_manifest_hash_file(p, &size, out), DG_OK);
		assert_int_equal(size, 200001);
		assert_memory_equal(out, ref, DG_MANIFEST_B64_SHA256_LEN);
		free(ref);
		free(big);
	}
	snprintf(p, sizeof(p), "%s/none", dir);
	assert_int_equal(dg_manifest_hash_file(p, &size, out), DG_ERR_NOENT);
}

static void
test_build(void **state)
{
	char why[512], pathkv[200], relkv[200], srckv[200];
	char *compat[] = { "manufacturer=Contoso", "model=GW1" };
	char *step[] = { "handler=microsoft/swupdate:2", "properties={\"installedCriteria\":\"1.2.3\"}" };
	char *file[] = { pathkv, "downloadHandler=microsoft/delta:1" };
	char *rel[] = { relkv, srckv };
	dg_manifest *m;
	json_t *doc, *f, *r;
	dg_err e;

	snprintf(pathkv, sizeof(pathkv), "path=%s", tgt);
	snprintf(relkv, sizeof(relkv), "path=%s", delta);
	snprintf(srckv, sizeof(srckv), "source=%s", src);
	m = dg_manifest_new(&e);
	assert_non_null(m);
	/* nothing yet */
	assert_null(dg_manifest_build(m, NULL, &e, why, sizeof(why)));
	assert_int_equal(e, DG_ERR_MANIFEST);
	assert_int_equal(dg_manifest_add_related_file(m, rel, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "must follow"));
	assert_int_equal(dg_manifest_set_update_id(m, "Contoso", "Gateway", "1.2.3", why, sizeof(why)), DG_OK);
	assert_int_equal(dg_manifest_add_compat(m, compat, 2, why, sizeof(why)), DG_OK);
	assert_int_equal(dg_manifest_add_step(m, step, 2, why, sizeof(why)), DG_OK);
	assert_int_equal(dg_manifest_add_file(m, file, 2, why, sizeof(why)), DG_OK);
	assert_int_equal(dg_manifest_add_related_file(m, rel, 2, why, sizeof(why)), DG_OK);
	doc = dg_manifest_build(m, "2024-01-02T03:04:05Z", &e, why, sizeof(why));
	assert_non_null(doc);
	assert_int_equal(dg_manifest_validate(doc, why, sizeof(why)), DG_OK);
	assert_string_equal(json_string_value(json_object_get(doc, "manifestVersion")), "5.0");
	assert_string_equal(json_string_value(json_object_get(doc, "createdDateTime")), "2024-01-02T03:04:05Z");
	f = json_array_get(json_object_get(doc, "files"), 0);
	assert_string_equal(json_string_value(json_object_get(f, "filename")), "t.swu");
	assert_int_equal(json_integer_value(json_object_get(f, "sizeInBytes")), 3);
	assert_string_equal(json_string_value(json_object_get(json_object_get(f, "hashes"), "sha256")), ABC_SHA256);
	assert_string_equal(json_string_value(json_object_get(json_object_get(f, "downloadHandler"), "id")),
	    "microsoft/delta:1");
	r = json_array_get(json_object_get(f, "relatedFiles"), 0);
	assert_string_equal(json_string_value(json_object_get(r, "filename")), "d.bin");
	assert_int_equal(json_integer_value(json_object_get(r, "sizeInBytes")), 5);
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "properties"),
	    "microsoft.sourceFileHashAlgorithm")), "sha256");
	/* sha256("source") */
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "properties"),
	    "microsoft.sourceFileHash")), "Qc9nlLpCALg5xTUxVV8POZjfTLsBpNXLC5Tjyl4jlH0=");
	/* the step got every file */
	assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(
	    json_object_get(json_object_get(doc, "instructions"), "steps"), 0), "files"), 0)), "t.swu");
	json_decref(doc);
	/* SOURCE_DATE_EPOCH fixes the time; garbage there is refused */
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	doc = dg_manifest_build(m, NULL, &e, why, sizeof(why));
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "createdDateTime")), "2023-11-14T22:13:20Z");
	json_decref(doc);
	setenv("SOURCE_DATE_EPOCH", "soon", 1);
	assert_null(dg_manifest_build(m, NULL, &e, why, sizeof(why)));
	assert_int_equal(e, DG_ERR_MANIFEST);
	unsetenv("SOURCE_DATE_EPOCH");
	/* a bad creation time is caught by validation */
	assert_null(dg_manifest_build(m, "today", &e, why, sizeof(why)));
	assert_int_equal(e, DG_ERR_MANIFEST);
	/* the same file twice */
	assert_int_equal(dg_manifest_add_file(m, file, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "two files"));
	dg_manifest_free(m);
	dg_manifest_free(NULL);
}

static void
test_builder_rejects(void **state)
{
	char why[512], pathkv[200], emptykv[200];
	char *kv[6];
	dg_manifest *m = dg_manifest_new(NULL);
	int i;

	snprintf(pathkv, sizeof(pathkv), "path=%s", tgt);
	snprintf(emptykv, sizeof(emptykv), "path=%s", empty);
	assert_int_equal(dg_manifest_set_update_id(m, "Con toso", "N", "1.0", why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "provider"));
	assert_int_equal(dg_manifest_set_update_id(m, "P", "N/x", "1.0", why, sizeof(why)), DG_ERR_MANIFEST);
	assert_int_equal(dg_manifest_set_update_id(m, "P", "N", "1", why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "version"));
	assert_int_equal(dg_manifest_set_update_id(m, "P", "N", NULL, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_int_equal(dg_manifest_set_description(m, "", why, sizeof(why)), DG_ERR_MANIFEST);
	/* compat */
	kv[0] = "manufacturer";
	assert_int_equal(dg_manifest_add_compat(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "key=value"));
	assert_int_equal(dg_manifest_add_compat(m, kv, 0, why, sizeof(why)), DG_ERR_MANIFEST);
	kv[0] = "a=1";
	kv[1] = "a=2";
	assert_int_equal(dg_manifest_add_compat(m, kv, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "twice"));
	kv[0] = "=1";
	assert_int_equal(dg_manifest_add_compat(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	kv[0] = "a=";
	assert_int_equal(dg_manifest_add_compat(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	for (i = 0; i < 6; i++)
		kv[i] = "k=v";
	assert_int_equal(dg_manifest_add_compat(m, kv, 6, why, sizeof(why)), DG_ERR_MANIFEST);
	/* steps */
	kv[0] = "handler=swupdate";
	assert_int_equal(dg_manifest_add_step(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "handler"));
	kv[0] = "properties={}";
	assert_int_equal(dg_manifest_add_step(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	kv[0] = "handler=a/b:1";
	kv[1] = "properties={not json";
	assert_int_equal(dg_manifest_add_step(m, kv, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "not valid JSON"));
	kv[1] = "properties=[1,2]";
	assert_int_equal(dg_manifest_add_step(m, kv, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "JSON object"));
	kv[1] = "colour=red";
	assert_int_equal(dg_manifest_add_step(m, kv, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "unknown key"));
	/* a step naming a file that is not there fails at build */
	kv[1] = "files=nothere.bin";
	assert_int_equal(dg_manifest_add_step(m, kv, 2, why, sizeof(why)), DG_OK);
	/* files */
	kv[0] = "downloadHandler=microsoft/delta:1";
	assert_int_equal(dg_manifest_add_file(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "path=F"));
	kv[0] = pathkv;
	kv[1] = "downloadHandler=delta";
	assert_int_equal(dg_manifest_add_file(m, kv, 2, why, sizeof(why)), DG_ERR_MANIFEST);
	kv[0] = "path=/nonexistent/file";
	assert_int_equal(dg_manifest_add_file(m, kv, 1, why, sizeof(why)), DG_ERR_NOENT);
	assert_non_null(strstr(why, "/nonexistent/file"));
	kv[0] = emptykv;
	assert_int_equal(dg_manifest_add_file(m, kv, 1, why, sizeof(why)), DG_ERR_MANIFEST);
	assert_non_null(strstr(why, "empty"));
	kv[0] = pathkv;
	assert_int_equal(dg_manifest_add_file(m, kv, 1, why, sizeof(why)), DG_OK);
	kv[0] = "source=/nonexistent";
	kv[1] = pathkv;
	assert_int_equal(dg_manifest_add_related_file(m, kv, 2, why, sizeof(why)), DG_ERR_NOENT);
	kv[0] = "manufacturer=C";
	assert_int_equal(dg_manifest_add_compat(m, kv, 1, why, sizeof(why)), DG_OK);
	assert_int_equal(dg_manifest_set_update_id(m, "P", "N", "1.0", why, sizeof(why)), DG_OK);
	{
		dg_err e;

		assert_null(dg_manifest_build(m, "2024-01-01T00:00:00Z", &e, why, sizeof(why)));
		assert_int_equal(e, DG_ERR_MANIFEST);
		assert_non_null(strstr(why, "nothere.bin"));
	}
	dg_manifest_free(m);
}

static void
test_format_time(void **state)
{
	char out[32];

	dg_manifest_format_time(0, out);
	assert_string_equal(out, "1970-01-01T00:00:00Z");
	dg_manifest_format_time(1700000000, out);
	assert_string_equal(out, "2023-11-14T22:13:20Z");
}

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/dg_manifest_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(tgt, sizeof(tgt), "%s/t.swu", dir);
	snprintf(delta, sizeof(delta), "%s/d.bin", dir);
	snprintf(src, sizeof(src), "%s/s.swu", dir);
	snprintf(empty, sizeof(empty), "%s/e.bin", dir);
	if (dg_util_write_atomic(tgt, "abc", 3, 0644) || dg_util_write_atomic(delta, "delta", 5, 0644) ||
	    dg_util_write_atomic(src, "source", 6, 0644) || dg_util_write_atomic(empty, "", 0, 0644))
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_good),
		cmocka_unit_test(test_validate_required),
		cmocka_unit_test(test_validate_values),
		cmocka_unit_test(test_hash_file),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_builder_rejects),
		cmocka_unit_test(test_format_time),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
