/* deltagate presign, deltagate keygen - one pre-signed link; an Ed25519
 * key pair for signed update commands. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdint.h>

#include "dg_cli.h"
#include "dg_command.h"
#include "dg_json.h"
#include "dg_jws.h"
#include "dg_log.h"
#include "dg_sigv4.h"
#include "dg_util.h"

static void
presign_usage(FILE *out)
{
	fprintf(out,
	    "usage: deltagate presign URL --expires S [--region R] [--endpoint URL]\n"
	    "         [--at YYYYMMDDTHHMMSSZ] [--secret-file F [--client-ip A]]\n"
	    "\n"
	    "Prints one pre-signed download link valid for S seconds:\n"
	    "  s3://BUCKET/KEY       AWS Signature Version 4 query-string link (credentials\n"
	    "                        from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /\n"
	    "                        AWS_SESSION_TOKEN or ~/.aws/credentials); --endpoint\n"
	    "                        gives the path-style URL of an S3-compatible store;\n"
	    "  http(s)://HOST/PATH   with --secret-file: an nginx secure_link link\n"
	    "                        (md5=..&expires=..; --client-ip binds it to an address);\n"
	    "                        without: a SigV4 link for that URL (S3-compatible).\n"
	    "--region defaults to AWS_REGION, else us-east-1. --at fixes the signing time\n"
	    "(reproducible output). Exit status: 0 printed, 1 error, 2 bad options.\n");
}

/* A secret from a file: its first line. */
static dg_err
read_secret(const char *path, char **out)
{
	char *text = NULL, *nl;
	size_t len = 0;
	dg_err e;

	if ((e = dg_util_read_file(path, 4096, &text, &len)) != DG_OK)
		return e;
	if ((nl = strpbrk(text, "\r\n")))
		*nl = '\0';
	if (!*text) {
		free(text);
		return DG_ERR_INVAL;
	}
	*out = text;
	return DG_OK;
}

int
dg_cli_presign(int argc, char **argv)
{
	const char *url = NULL, *region = getenv("AWS_REGION"), *endpoint = NULL, *at = NULL;
	const char *secret_file = NULL, *client_ip = NULL;
	char *secret = NULL, *link = NULL, *http = NULL;
	dg_sigv4_creds creds = { 0 };
	int64_t expires = -1, at_unix = 0;
	int rc = DG_EXIT_USAGE, i;
	dg_err e;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			presign_usage(stdout);
			return DG_EXIT_OK;
		}
		if (o[0] != '-' || o[1] != '-') {
			if (url) {
				fprintf(stderr, "deltagate presign: one URL only\n");
				return DG_EXIT_USAGE;
			}
			url = o;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "deltagate presign: %s needs a value\n", o);
			return DG_EXIT_USAGE;
		}
		if (strcmp(o, "--expires") == 0) {
			if (dg_util_parse_i64(argv[++i], 1, 604800, &expires) != DG_OK) {
				fprintf(stderr, "deltagate presign: --expires: 1..604800 seconds\n");
				return DG_EXIT_USAGE;
			}
		} else if (strcmp(o, "--region") == 0) {
			region = argv[++i];
		} else if (strcmp(o, "--endpoint") == 0) {
			endpoint = argv[++i];
		} else if (strcmp(o, "--at") == 0) {
			at = argv[++i];
			if (dg_sigv4_parse_date(at, &at_unix) != DG_OK) {
				fprintf(stderr, "deltagate presign: --at: YYYYMMDDTHHMMSSZ\n");
				return DG_EXIT_USAGE;
			}
		} else if (strcmp(o, "--secret-file") == 0) {
			secret_file = argv[++i];
		} else if (strcmp(o, "--client-ip") == 0) {
			client_ip = argv[++i];
		} else {
			fprintf(stderr, "deltagate presign: unknown option '%s'\n", o);
			presign_usage(stderr);
			return DG_EXIT_USAGE;
		}
	}
	if (!url || expires < 0) {
		fprintf(stderr, "deltagate presign: a URL and --expires are required\n");
		presign_usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (!region || !*region)
		region = "us-east-1";
	rc = DG_EXIT_FAIL;
	if (secret_file) {
		const char *p;

		if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
			fprintf(stderr, "deltagate presign: --secret-file signs http(s) links only\n");
			return DG_EXIT_USAGE;
		}
		p = strchr(strstr(url, "//") + 2, '/');
		if (!p) {
			fprintf(stderr, "deltagate presign: %s: no path\n", url);
			return DG_EXIT_USAGE;
		}
		if ((e = read_secret(secret_file, &secret)) != DG_OK) {
			fprintf(stderr, "deltagate presign: %s: %s\n", secret_file, dg_strerror(e));
			goto out;
		}
		{
			char *origin = strndup(url, (size_t)(p - url));

			e = origin ? dg_sigv4_secure_link(origin, p, secret, client_ip,
			    (at ? at_unix : (int64_t)time(NULL)) + expires, &link) : DG_ERR_NOMEM;
			free(origin);
		}
	} else {
		if (strncmp(url, "s3://", 5) == 0) {
			if ((e = dg_sigv4_s3_http_url(url, region, endpoint, &http)) != DG_OK) {
				fprintf(stderr, "deltagate presign: %s: not s3://BUCKET/KEY\n", url);
				rc = DG_EXIT_USAGE;
				goto out;
			}
		} else if (!(http = strdup(url))) {
			e = DG_ERR_NOMEM;
			goto failed;
		}
		if ((e = dg_sigv4_creds_load(&creds)) != DG_OK) {
			fprintf(stderr, "deltagate presign: no AWS credentials (AWS_ACCESS_KEY_ID and "
			    "AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)\n");
			goto out;
		}
		e = dg_sigv4_presign(http, region, "s3", &creds, at, expires, &link);
	}
	if (e != DG_OK)
		goto failed;
	printf("%s\n", link);
	rc = fflush(stdout) == 0 ? DG_EXIT_OK : DG_EXIT_FAIL;
	goto out;
failed:
	fprintf(stderr, "deltagate presign: %s: %s\n", url, e == DG_ERR_INVAL ?
	    "cannot be pre-signed (an absolute http(s) or s3 URL without a query)" : dg_strerror(e));
out:
	if (secret) {
		memset(secret, 0, strlen(secret));
		free(secret);
	}
	dg_sigv4_creds_clear(&creds);
	free(http);
	free(link);
	return rc;
}

int
dg_cli_keygen(int argc, char **argv)
{
	const char *priv = NULL, *pub = NULL;
	char *pubdef = NULL;
	dg_jws_key *k;
	dg_err e;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: deltagate keygen PRIVATE.pem [PUBLIC.pem]\n\n"
			    "Writes a fresh Ed25519 key pair for signed update commands: the private\n"
			    "key (PKCS#8 PEM, mode 0600; deploy --sign-key) and the public key\n"
			    "(default PRIVATE.pub.pem; deltagated --trusted-key). Never overwrites.\n"
			    "Prints the key id. Exit status: 0 written, 1 error, 2 bad options.\n");
			return DG_EXIT_OK;
		}
		if (argv[i][0] == '-') {
			fprintf(stderr, "deltagate keygen: unknown option '%s'\n", argv[i]);
			return DG_EXIT_USAGE;
		}
		if (!priv)
			priv = argv[i];
		else if (!pub)
			pub = argv[i];
		else {
			fprintf(stderr, "deltagate keygen: too many arguments\n");
			return DG_EXIT_USAGE;
		}
	}
	if (!priv) {
		fprintf(stderr, "usage: deltagate keygen PRIVATE.pem [PUBLIC.pem]\n");
		return DG_EXIT_USAGE;
	}
	if (!pub) {
		size_t n = strlen(priv);

		if (!(pubdef = malloc(n + 9)))
			return DG_EXIT_FAIL;
		if (n > 4 && strcmp(priv + n - 4, ".pem") == 0)
			snprintf(pubdef, n + 9, "%.*s.pub.pem", (int)(n - 4), priv);
		else
			snprintf(pubdef, n + 9, "%s.pub.pem", priv);
		pub = pubdef;
	}
	if ((e = dg_jws_keygen(priv, pub)) != DG_OK) {
		fprintf(stderr, "deltagate keygen: %s\n", e == DG_ERR_EXIST ?
		    "a key file exists already (never overwritten)" : dg_strerror(e));
		free(pubdef);
		return DG_EXIT_FAIL;
	}
	if (!(k = dg_jws_key_load(pub, &e))) {
		free(pubdef);
		return DG_EXIT_FAIL;
	}
	printf("%s %s kid=%s\n", priv, pub, dg_jws_key_id(k));
	dg_jws_key_free(k);
	free(pubdef);
	return DG_EXIT_OK;
}

int
dg_cli_sign(int argc, char **argv)
{
	const char *keyf = NULL, *device = NULL, *file = NULL;
	int64_t seq = -1, expires = 86400;
	char *text = NULL, *out = NULL;
	size_t len = 0;
	json_t *doc = NULL, *desired;
	dg_jws_key *k = NULL;
	int rc = DG_EXIT_USAGE, i;
	dg_err e;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
			printf("usage: deltagate sign --key PRIVATE.pem --device ID [--seq N] [--expires S]\n"
			    "         [FILE]\n\n"
			    "Signs the update command in FILE (or stdin): a desired state, bare or as\n"
			    "{\"state\":{\"desired\":{...}}}, printed back with its \"signature\" (JWS,\n"
			    "EdDSA) over the software fields, the device, the expiry (now + S, default\n"
			    "86400) and the sequence number N (default: the wall clock in ms, so that\n"
			    "later commands carry larger ones). Exit status: 0, 1 error, 2 bad options.\n");
			return DG_EXIT_OK;
		}
		if (o[0] != '-') {
			file = o;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "deltagate sign: %s needs a value\n", o);
			return DG_EXIT_USAGE;
		}
		if (strcmp(o, "--key") == 0)
			keyf = argv[++i];
		else if (strcmp(o, "--device") == 0)
			device = argv[++i];
		else if (strcmp(o, "--seq") == 0) {
			if (dg_util_parse_i64(argv[++i], 0, INT64_MAX, &seq) != DG_OK) {
				fprintf(stderr, "deltagate sign: --seq: a non-negative integer\n");
				return DG_EXIT_USAGE;
			}
		} else if (strcmp(o, "--expires") == 0) {
			if (dg_util_parse_i64(argv[++i], INT32_MIN, INT32_MAX, &expires) != DG_OK) {
				fprintf(stderr, "deltagate sign: --expires: seconds\n");
				return DG_EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "deltagate sign: unknown option '%s'\n", o);
			return DG_EXIT_USAGE;
		}
	}
	if (!keyf || !device) {
		fprintf(stderr, "deltagate sign: --key and --device are required\n");
		return DG_EXIT_USAGE;
	}
	rc = DG_EXIT_FAIL;
	if (!(k = dg_jws_key_load(keyf, &e)))
		goto out;
	if ((e = dg_util_read_file(file ? file : "/dev/stdin", 1 << 20, &text, &len)) != DG_OK) {
		fprintf(stderr, "deltagate sign: %s: %s\n", file ? file : "stdin", dg_strerror(e));
		goto out;
	}
	if (!(doc = dg_json_parse(text, len, 1 << 20, 16, &e, NULL, 0)) || !json_is_object(doc)) {
		fprintf(stderr, "deltagate sign: not a JSON object\n");
		goto out;
	}
	desired = json_object_get(json_object_get(doc, "state"), "desired");
	if (!desired)
		desired = doc;
	if (seq < 0)
		seq = (int64_t)dg_util_wall_ms();
	if ((e = dg_command_sign(desired, k, device, seq, (int64_t)time(NULL) + expires)) != DG_OK) {
		fprintf(stderr, "deltagate sign: %s\n", e == DG_ERR_INVAL ?
		    "the command needs jobId and softwareURL" : dg_strerror(e));
		goto out;
	}
	if (!(out = dg_json_dumps(doc)))
		goto out;
	printf("%s\n", out);
	rc = fflush(stdout) == 0 ? DG_EXIT_OK : DG_EXIT_FAIL;
out:
	free(out);
	free(text);
	json_decref(doc);
	dg_jws_key_free(k);
	return rc;
}
