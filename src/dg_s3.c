/* dg_s3 - S3 uploads through libcurl's SigV4. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "dg_log.h"
#include "dg_s3.h"

static size_t
discard(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

/* One request; *status the HTTP status, *length the Content-Length seen. */
static dg_err
request(const char *url, const char *region, const dg_sigv4_creds *c, const char *ca_file,
    FILE *body, curl_off_t size, long *status, curl_off_t *length)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char sigv4[128], userpwd[1024], tok[4096];
	CURLcode rc;

	if (!h)
		return DG_ERR_NOMEM;
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", region);
	snprintf(userpwd, sizeof(userpwd), "%s:%s", c->access_key, c->secret_key);
	hdr = curl_slist_append(hdr, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	if (c->session_token && *c->session_token) {
		snprintf(tok, sizeof(tok), "x-amz-security-token: %s", c->session_token);
		hdr = curl_slist_append(hdr, tok);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	if (body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READDATA, body);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size);
	} else {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	}
	rc = curl_easy_perform(h);
	*status = 0;
	*length = -1;
	if (rc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, length);
	} else {
		dg_log_err("s3: %s: %s", region, curl_easy_strerror(rc));
	}
	memset(userpwd, 0, sizeof(userpwd));
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return rc == CURLE_OK ? DG_OK : DG_ERR_FETCH_NETWORK;
}

dg_err
dg_s3_put_file(const char *url, const char *region, const dg_sigv4_creds *creds,
    const char *path, const char *ca_file, uint64_t *uploaded)
{
	struct stat sb;
	long status;
	curl_off_t len;
	FILE *f;
	dg_err e;

	*uploaded = 0;
	if (stat(path, &sb) != 0)
		return DG_ERR_NOENT;
	if ((e = request(url, region, creds, ca_file, NULL, 0, &status, &len)) != DG_OK)
		return e;
	if (status == 200 && len == (curl_off_t)sb.st_size)
		return DG_OK; /* there already */
	if (status != 200 && status != 404) {
		dg_log_err("s3: HEAD of an object answered HTTP %ld", status);
		return DG_ERR_STORAGE;
	}
	if (!(f = fopen(path, "rb")))
		return DG_ERR_IO;
	e = request(url, region, creds, ca_file, f, (curl_off_t)sb.st_size, &status, &len);
	fclose(f);
	if (e != DG_OK)
		return e;
	if (status != 200) {
		dg_log_err("s3: PUT of %s answered HTTP %ld", path, status);
		return DG_ERR_STORAGE;
	}
	*uploaded = (uint64_t)sb.st_size;
	return DG_OK;
}
