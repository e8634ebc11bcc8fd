/* dg_sigv4 - AWS Signature Version 4 (HMAC-SHA256) and the other link
 * signer of deltagate's storage, nginx secure_link.
 *
 * The SigV4 signer builds the canonical request, the string to sign and
 * the signature exactly as AWS documents them ("Authenticating Requests:
 * Using Query Parameters" for pre-signed GET links, "Using the
 * Authorization Header" for header signing). Uploads do not use it: they
 * go through libcurl's own CURLOPT_AWS_SIGV4. Hashes and MACs come from
 * OpenSSL's EVP API; secrets are never logged.
 */
#ifndef DG_SIGV4_H
#define DG_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

typedef struct dg_sigv4_creds {
	const char *access_key;    /* AWS_ACCESS_KEY_ID */
	const char *secret_key;    /* AWS_SECRET_ACCESS_KEY */
	const char *session_token; /* AWS_SESSION_TOKEN, NULL without */
} dg_sigv4_creds;

/* One query parameter or header, un-encoded. */
typedef struct dg_sigv4_pair {
	const char *name;
	const char *value;
} dg_sigv4_pair;

typedef struct dg_sigv4_request {
	const char *method;          /* "GET" */
	const char *path;            /* un-encoded absolute path: "/test.txt" */
	const dg_sigv4_pair *query;  /* nquery parameters (any order) */
	size_t nquery;
	const dg_sigv4_pair *headers;/* nheaders headers to sign (any order/case) */
	size_t nheaders;
	const char *payload_hash;    /* hex SHA-256 of the body or "UNSIGNED-PAYLOAD" */
	const char *amz_date;        /* YYYYMMDDTHHMMSSZ */
	const char *region;          /* "us-east-1" */
	const char *service;         /* "s3" */
} dg_sigv4_request;

/* RFC 3986 percent-encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ kept,
 * every other byte %XX (upper case); '/' kept when keep_slash. Returns a
 * fresh string (caller frees) or NULL when out of memory. */
char *dg_sigv4_uri_encode(const char *s, int keep_slash);

/* Sign req with secret: sig_hex receives the 64 hex digits of the
 * signature; *canonical (may be NULL) the canonical request (caller
 * frees); *signed_headers (may be NULL) the "host;range;..." list.
 * DG_ERR_INVAL (missing field, bad date), DG_ERR_NOMEM, DG_ERR_CRYPTO. */
dg_err dg_sigv4_sign(const dg_sigv4_request *req, const char *secret,
    char sig_hex[65], char **canonical, char **signed_headers);

/* A pre-signed GET link: https://host/path?X-Amz-... for url, which is
 * "https://host[:port]/path" or "http://..."; the path is percent-encoded
 * here (give it un-encoded). expires_s in 1..604800. amz_date NULL: now.
 * *out is a fresh string. DG_ERR_INVAL (bad URL, date or expiry),
 * DG_ERR_NOMEM, DG_ERR_CRYPTO. */
dg_err dg_sigv4_presign(const char *url, const char *region, const char *service,
    const dg_sigv4_creds *creds, const char *amz_date, int64_t expires_s, char **out);

/* The https URL of s3://BUCKET/KEY: endpoint NULL gives AWS's
 * virtual-hosted form (https://BUCKET.s3.amazonaws.com/KEY in us-east-1,
 * https://BUCKET.s3.REGION.amazonaws.com/KEY elsewhere); an endpoint
 * ("http://127.0.0.1:9000") the path-style ENDPOINT/BUCKET/KEY of
 * S3-compatible stores. DG_ERR_INVAL for a malformed s3:// URL. */
dg_err dg_sigv4_s3_http_url(const char *s3url, const char *region, const char *endpoint,
    char **out);

/* Credentials from the environment (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or else from the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 * profile AWS_PROFILE or "default"). The strings are fresh copies that
 * dg_sigv4_creds_clear frees. DG_ERR_NOENT when none are found. */
dg_err dg_sigv4_creds_load(dg_sigv4_creds *creds);
void dg_sigv4_creds_clear(dg_sigv4_creds *creds);

/* The current UTC time as YYYYMMDDTHHMMSSZ (17 bytes with the NUL), or
 * checks that s is one: DG_ERR_INVAL otherwise. */
void dg_sigv4_now(char out[17]);
dg_err dg_sigv4_parse_date(const char *s, int64_t *unix_s);

/* An nginx secure_link URL: base_url + path with
 * ?md5=<base64url(MD5("<expires><path>[<addr>] <secret>"))>&expires=<t>,
 * the form of the ngx_http_secure_link_module documentation with
 * secure_link_md5 "$secure_link_expires$uri[$remote_addr] SECRET".
 * path begins with '/' and is the URI nginx sees. addr may be NULL.
 * DG_ERR_INVAL, DG_ERR_NOMEM, DG_ERR_CRYPTO. */
dg_err dg_sigv4_secure_link(const char *origin, const char *path, const char *secret,
    const char *addr, int64_t expires_at, char **out);

#endif
