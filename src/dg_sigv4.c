/* dg_sigv4 - AWS Signature Version 4 pre-signing and nginx secure_link. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dg_log.h"
#include "dg_sigv4.h"
#include "dg_util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* ------------------------------------------------------------ a growing string */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap))) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* ------------------------------------------------------------ encoding */

char *
dg_sigv4_uri_encode(const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, o = 0;
	char *out = malloc(3 * n + 1);

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && keep_slash)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static dg_err
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return DG_ERR_CRYPTO;
	dg_util_hex_encode(md, 32, out);
	return DG_OK;
}

static dg_err
hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len) ||
	    len != 32)
		return DG_ERR_CRYPTO;
	return DG_OK;
}

/* ------------------------------------------------------------ dates */

dg_err
dg_sigv4_parse_date(const char *s, int64_t *unix_s)
{
	struct tm tm;
	int i;
	time_t t;

	if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return DG_ERR_INVAL;
	for (i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)s[i]))
			return DG_ERR_INVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
	tm.tm_mon = (s[4] - '0') * 10 + (s[5] - '0') - 1;
	tm.tm_mday = (s[6] - '0') * 10 + (s[7] - '0');
	tm.tm_hour = (s[9] - '0') * 10 + (s[10] - '0');
	tm.tm_min = (s[11] - '0') * 10 + (s[12] - '0');
	tm.tm_sec = (s[13] - '0') * 10 + (s[14] - '0');
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return DG_ERR_INVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return DG_ERR_INVAL;
	if (unix_s)
		*unix_s = (int64_t)t;
	return DG_OK;
}

void
dg_sigv4_now(char out[17])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ------------------------------------------------------------ signing */

struct kv {
	char *name, *value;
};

static int
kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

static void
kv_free(struct kv *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
}

/* A header value trimmed, inner runs of spaces made one. */
static char *
header_value(const char *s)
{
	size_t n = strlen(s), o = 0, i;
	char *out = malloc(n + 1);
	int space = 0;

	if (!out)
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	for (i = 0; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t') {
			space = 1;
			continue;
		}
		if (space && o)
			out[o++] = ' ';
		space = 0;
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

dg_err
dg_sigv4_sign(const dg_sigv4_request *req, const char *secret, char sig_hex[65],
    char **canonical, char **signed_headers)
{
	struct buf cr = { 0 }, sh = { 0 }, sts = { 0 };
	struct kv *q = NULL, *h = NULL;
	char *path = NULL, *key = NULL, hash[65], date[9];
	unsigned char k[32], sig[32];
	dg_err err = DG_ERR_NOMEM;
	size_t i, keylen;

	if (canonical)
		*canonical = NULL;
	if (signed_headers)
		*signed_headers = NULL;
	if (!req || !secret || !req->method || !req->path || req->path[0] != '/' || !req->payload_hash ||
	    !req->region || !req->service || dg_sigv4_parse_date(req->amz_date, NULL) != DG_OK)
		return DG_ERR_INVAL;
	if (!(path = dg_sigv4_uri_encode(req->path, 1)))
		goto fail;
	q = calloc(req->nquery + 1, sizeof(*q));
	h = calloc(req->nheaders + 1, sizeof(*h));
	if (!q || !h)
		goto fail;
	for (i = 0; i < req->nquery; i++) {
		q[i].name = dg_sigv4_uri_encode(req->query[i].name, 0);
		q[i].value = dg_sigv4_uri_encode(req->query[i].value ? req->query[i].value : "", 0);
		if (!q[i].name || !q[i].value)
			goto fail;
	}
	for (i = 0; i < req->nheaders; i++) {
		char *p;

		h[i].name = strdup(req->headers[i].name);
		h[i].value = header_value(req->headers[i].value);
		if (!h[i].name || !h[i].value)
			goto fail;
		for (p = h[i].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	qsort(q, req->nquery, sizeof(*q), kv_cmp);
	qsort(h, req->nheaders, sizeof(*h), kv_cmp);

	/* the canonical request */
	buf_str(&cr, req->method);
	buf_str(&cr, "\n");
	buf_str(&cr, path);
	buf_str(&cr, "\n");
	for (i = 0; i < req->nquery; i++) {
		if (i)
			buf_str(&cr, "&");
		buf_str(&cr, q[i].name);
		buf_str(&cr, "=");
		buf_str(&cr, q[i].value);
	}
	buf_str(&cr, "\n");
	for (i = 0; i < req->nheaders; i++) {
		buf_str(&cr, h[i].name);
		buf_str(&cr, ":");
		buf_str(&cr, h[i].value);
		buf_str(&cr, "\n");
		if (i)
			buf_str(&sh, ";");
		buf_str(&sh, h[i].name);
	}
	if (!req->nheaders)
		buf_str(&sh, "");
	buf_str(&cr, "\n");
	buf_str(&cr, sh.p ? sh.p : "");
	buf_str(&cr, "\n");
	buf_str(&cr, req->payload_hash);
	if (cr.oom || sh.oom)
		goto fail;
	if ((err = sha256_hex(cr.p, cr.len, hash)) != DG_OK)
		goto fail;

	/* the string to sign */
	memcpy(date, req->amz_date, 8);
	date[8] = '\0';
	buf_str(&sts, ALGORITHM "\n");
	buf_str(&sts, req->amz_date);
	buf_str(&sts, "\n");
	buf_str(&sts, date);
	buf_str(&sts, "/");
	buf_str(&sts, req->region);
	buf_str(&sts, "/");
	buf_str(&sts, req->service);
	buf_str(&sts, "/aws4_request\n");
	buf_str(&sts, hash);
	err = DG_ERR_NOMEM;
	if (sts.oom)
		goto fail;

	/* the signing key: HMAC chain from "AWS4" + secret */
	keylen = 4 + strlen(secret);
	if (!(key = malloc(keylen + 1)))
		goto fail;
	snprintf(key, keylen + 1, "AWS4%s", secret);
	if ((err = hmac(key, keylen, date, k)) != DG_OK ||
	    (err = hmac(k, 32, req->region, k)) != DG_OK ||
	    (err = hmac(k, 32, req->service, k)) != DG_OK ||
	    (err = hmac(k, 32, "aws4_request", k)) != DG_OK ||
	    (err = hmac(k, 32, sts.p, sig)) != DG_OK)
		goto fail;
	dg_util_hex_encode(sig, 32, sig_hex);
	if (canonical) {
		*canonical = cr.p;
		cr.p = NULL;
	}
	if (signed_headers) {
		*signed_headers = sh.p ? sh.p : strdup("");
		sh.p = NULL;
	}
	err = DG_OK;
fail:
	if (key) {
		OPENSSL_cleanse(key, keylen);
		free(key);
	}
	OPENSSL_cleanse(k, sizeof(k));
	kv_free(q, req->nquery);
	kv_free(h, req->nheaders);
	free(path);
	free(cr.p);
	free(sh.p);
	free(sts.p);
	return err;
}

/* Split scheme://authority/path; authority and path are fresh strings. */
static dg_err
split_url(const char *url, char **authority, char **path)
{
	const char *a, *p;

	*authority = *path = NULL;
	if (strncmp(url, "https://", 8) == 0)
		a = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		a = url + 7;
	else
		return DG_ERR_INVAL;
	p = strchr(a, '/');
	if (!p || p == a || strchr(url, '?') || strchr(url, '#'))
		return DG_ERR_INVAL;
	*authority = strndup(a, (size_t)(p - a));
	*path = strdup(p);
	if (!*authority || !*path) {
		free(*authority);
		free(*path);
		*authority = *path = NULL;
		return DG_ERR_NOMEM;
	}
	return DG_OK;
}

dg_err
dg_sigv4_presign(const char *url, const char *region, const char *service,
    const dg_sigv4_creds *creds, const char *amz_date, int64_t expires_s, char **out)
{
	char now[17], sig[65], expires[24], *authority = NULL, *path = NULL, *cred = NULL;
	char *sh = NULL;
	dg_sigv4_pair query[6];
	dg_sigv4_pair header;
	dg_sigv4_request req;
	struct buf o = { 0 };
	size_t nq = 5, i;
	dg_err err;

	*out = NULL;
	if (!url || !region || !service || !creds || !creds->access_key || !creds->secret_key ||
	    expires_s < 1 || expires_s > 604800)
		return DG_ERR_INVAL;
	if (!amz_date) {
		dg_sigv4_now(now);
		amz_date = now;
	}
	if (dg_sigv4_parse_date(amz_date, NULL) != DG_OK)
		return DG_ERR_INVAL;
	if ((err = split_url(url, &authority, &path)) != DG_OK)
		return err;
	err = DG_ERR_NOMEM;
	if (asprintf(&cred, "%s/%.8s/%s/%s/aws4_request", creds->access_key, amz_date, region,
	    service) < 0) {
		cred = NULL;
		goto fail;
	}
	snprintf(expires, sizeof(expires), "%lld", (long long)expires_s);
	query[0] = (dg_sigv4_pair){ "X-Amz-Algorithm", ALGORITHM };
	query[1] = (dg_sigv4_pair){ "X-Amz-Credential", cred };
	query[2] = (dg_sigv4_pair){ "X-Amz-Date", amz_date };
	query[3] = (dg_sigv4_pair){ "X-Amz-Expires", expires };
	query[4] = (dg_sigv4_pair){ "X-Amz-SignedHeaders", "host" };
	if (creds->session_token && *creds->session_token)
		query[nq++] = (dg_sigv4_pair){ "X-Amz-Security-Token", creds->session_token };
	header = (dg_sigv4_pair){ "host", authority };
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.path = path;
	req.query = query;
	req.nquery = nq;
	req.headers = &header;
	req.nheaders = 1;
	req.payload_hash = "UNSIGNED-PAYLOAD";
	req.amz_date = amz_date;
	req.region = region;
	req.service = service;
	if ((err = dg_sigv4_sign(&req, creds->secret_key, sig, NULL, &sh)) != DG_OK)
		goto fail;
	/* the link: the parameters in the canonical (sorted) order, then the
	 * signature */
	buf_str(&o, strncmp(url, "https://", 8) == 0 ? "https://" : "http://");
	buf_str(&o, authority);
	{
		char *p = dg_sigv4_uri_encode(path, 1);

		if (!p)
			goto fail;
		buf_str(&o, p);
		free(p);
	}
	{
		/* sorted by name: Algorithm, Credential, Date, Expires,
		 * Security-Token, SignedHeaders */
		static const int order[] = { 0, 1, 2, 3, 5, 4 };

		for (i = 0; i < 6; i++) {
			int k = order[i];
			char *v;

			if ((size_t)k >= nq)
				continue;
			buf_str(&o, i ? "&" : "?");
			buf_str(&o, query[k].name);
			buf_str(&o, "=");
			if (!(v = dg_sigv4_uri_encode(query[k].value, 0)))
				goto fail;
			buf_str(&o, v);
			free(v);
		}
	}
	buf_str(&o, "&X-Amz-Signature=");
	buf_str(&o, sig);
	if (o.oom)
		goto fail;
	*out = o.p;
	o.p = NULL;
	err = DG_OK;
fail:
	free(o.p);
	free(authority);
	free(path);
	free(cred);
	free(sh);
	return err;
}

dg_err
dg_sigv4_s3_http_url(const char *s3url, const char *region, const char *endpoint, char **out)
{
	const char *b, *k;
	int n;

	*out = NULL;
	if (!s3url || strncmp(s3url, "s3://", 5) != 0)
		return DG_ERR_INVAL;
	b = s3url + 5;
	k = strchr(b, '/');
	if (!k || k == b || !k[1])
		return DG_ERR_INVAL;
	if (endpoint && *endpoint) {
		size_t el = strlen(endpoint);

		while (el && endpoint[el - 1] == '/')
			el--;
		n = asprintf(out, "%.*s/%.*s%s", (int)el, endpoint, (int)(k - b), b, k);
	} else if (!region || strcmp(region, "us-east-1") == 0) {
		n = asprintf(out, "https://%.*s.s3.amazonaws.com%s", (int)(k - b), b, k);
	} else {
		n = asprintf(out, "https://%.*s.s3.%s.amazonaws.com%s", (int)(k - b), b, region, k);
	}
	if (n < 0) {
		*out = NULL;
		return DG_ERR_NOMEM;
	}
	return DG_OK;
}

/* ------------------------------------------------------------ credentials */

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void
creds_from_file(dg_sigv4_creds *c)
{
	const char *path = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *profile = getenv("AWS_PROFILE");
	char fallback[4096], *text = NULL, *line, *save = NULL;
	int in = 0;

	if (!profile || !*profile)
		profile = "default";
	if (!path || !*path) {
		const char *home = getenv("HOME");

		if (!home)
			return;
		snprintf(fallback, sizeof(fallback), "%s/.aws/credentials", home);
		path = fallback;
	}
	if (dg_util_read_file(path, 1 << 20, &text, NULL) != DG_OK)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *l = trim(line), *eq;

		if (*l == '[') {
			char *e = strchr(l, ']');

			if (e) {
				*e = '\0';
				in = strcmp(trim(l + 1), profile) == 0;
			}
			continue;
		}
		if (!in || *l == '#' || *l == ';' || !(eq = strchr(l, '=')))
			continue;
		*eq = '\0';
		l = trim(l);
		eq = trim(eq + 1);
		if (strcmp(l, "aws_access_key_id") == 0 && !c->access_key)
			c->access_key = strdup(eq);
		else if (strcmp(l, "aws_secret_access_key") == 0 && !c->secret_key)
			c->secret_key = strdup(eq);
		else if (strcmp(l, "aws_session_token") == 0 && !c->session_token)
			c->session_token = strdup(eq);
	}
	OPENSSL_cleanse(text, strlen(text));
	free(text);
}

dg_err
dg_sigv4_creds_load(dg_sigv4_creds *c)
{
	const char *a = getenv("AWS_ACCESS_KEY_ID"), *s = getenv("AWS_SECRET_ACCESS_KEY");
	const char *t = getenv("AWS_SESSION_TOKEN");

	memset(c, 0, sizeof(*c));
	if (a && *a && s && *s) {
		c->access_key = strdup(a);
		c->secret_key = strdup(s);
		c->session_token = t && *t ? strdup(t) : NULL;
	} else {
		creds_from_file(c);
	}
	if (!c->access_key || !c->secret_key) {
		dg_sigv4_creds_clear(c);
		return DG_ERR_NOENT;
	}
	return DG_OK;
}

void
dg_sigv4_creds_clear(dg_sigv4_creds *c)
{
	if (!c)
		return;
	if (c->secret_key)
		OPENSSL_cleanse((char *)c->secret_key, strlen(c->secret_key));
	free((char *)c->access_key);
	free((char *)c->secret_key);
	free((char *)c->session_token);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ nginx secure_link */

dg_err
dg_sigv4_secure_link(const char *origin, const char *path, const char *secret,
    const char *addr, int64_t expires_at, char **out)
{
	unsigned char md[16], b64[32];
	unsigned int mdlen = 0;
	char *msg = NULL, *enc = NULL;
	size_t i, o = 0;
	int n;
	dg_err err = DG_ERR_NOMEM;

	*out = NULL;
	if (!origin || !path || path[0] != '/' || !secret || expires_at <= 0 || strchr(path, '?'))
		return DG_ERR_INVAL;
	if (asprintf(&msg, "%lld%s%s %s", (long long)expires_at, path, addr ? addr : "", secret) < 0) {
		msg = NULL;
		goto fail;
	}
	err = DG_ERR_CRYPTO;
	if (!EVP_Digest(msg, strlen(msg), md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
		goto fail;
	n = EVP_EncodeBlock(b64, md, 16);
	/* base64url without padding, as secure_link expects */
	for (i = 0; i < (size_t)n; i++) {
		if (b64[i] == '=')
			break;
		b64[o++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	}
	b64[o] = '\0';
	err = DG_ERR_NOMEM;
	if (!(enc = dg_sigv4_uri_encode(path, 1)))
		goto fail;
	if (asprintf(out, "%s%s?md5=%s&expires=%lld", origin, enc, (const char *)b64,
	    (long long)expires_at) < 0) {
		*out = NULL;
		goto fail;
	}
	err = DG_OK;
fail:
	if (msg) {
		OPENSSL_cleanse(msg, strlen(msg));
		free(msg);
	}
	free(enc);
	return err;
}
