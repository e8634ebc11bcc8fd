/* dg_jws - Ed25519 JWS (RFC 7515 compact, RFC 8037 EdDSA) over OpenSSL. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dg_json.h"
#include "dg_jws.h"
#include "dg_log.h"
#include "dg_util.h"

struct dg_jws_key {
	EVP_PKEY *pkey;
	int has_private;
	char kid[48];
};

/* ------------------------------------------------------------ base64url */

char *
dg_jws_b64url_encode(const unsigned char *in, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1, i, o = 0;
	unsigned char *b = malloc(cap);
	int n;

	if (!b)
		return NULL;
	n = EVP_EncodeBlock(b, in, (int)len);
	for (i = 0; i < (size_t)n && b[i] != '='; i++)
		b[o++] = b[i] == '+' ? '-' : b[i] == '/' ? '_' : b[i];
	b[o] = '\0';
	return (char *)b;
}

dg_err
dg_jws_b64url_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen)
{
	size_t padded = (inlen + 3) / 4 * 4, i, pad = padded - inlen;
	unsigned char *std = NULL, *dec = NULL;
	int n;

	*out = NULL;
	*outlen = 0;
	if (inlen % 4 == 1)
		return DG_ERR_INVAL;
	for (i = 0; i < inlen; i++) {
		char c = in[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_'))
			return DG_ERR_INVAL;
	}
	std = malloc(padded + 1);
	dec = malloc(padded / 4 * 3 + 1);
	if (!std || !dec) {
		free(std);
		free(dec);
		return DG_ERR_NOMEM;
	}
	for (i = 0; i < inlen; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
	for (; i < padded; i++)
		std[i] = '=';
	n = padded ? EVP_DecodeBlock(dec, std, (int)padded) : 0;
	free(std);
	if (n < 0 || (size_t)n < pad) {
		free(dec);
		return DG_ERR_INVAL;
	}
	*outlen = (size_t)n - pad;
	dec[*outlen] = '\0';
	*out = dec;
	return DG_OK;
}

/* ------------------------------------------------------------ keys */

static dg_err
key_finish(dg_jws_key *k)
{
	unsigned char raw[32], md[32];
	size_t rawlen = sizeof(raw);
	unsigned int mdlen = 0;
	char *kid;

	if (EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_ED25519)
		return DG_ERR_KEY;
	if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) != 1 || rawlen != 32 ||
	    !EVP_Digest(raw, rawlen, md, &mdlen, EVP_sha256(), NULL))
		return DG_ERR_CRYPTO;
	if (!(kid = dg_jws_b64url_encode(md, 32)))
		return DG_ERR_NOMEM;
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	free(kid);
	return DG_OK;
}

dg_jws_key *
dg_jws_key_load(const char *path, dg_err *err)
{
	dg_jws_key *k = calloc(1, sizeof(*k));
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	dg_err e = DG_ERR_NOMEM;

	if (!k)
		goto fail;
	if ((e = dg_util_read_file(path, 64 * 1024, &text, &len)) != DG_OK)
		goto fail;
	e = DG_ERR_KEY;
	if (!(bio = BIO_new_mem_buf(text, (int)len)))
		goto fail;
	if ((k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL))) {
		k->has_private = 1;
	} else {
		BIO_free(bio);
		if (!(bio = BIO_new_mem_buf(text, (int)len)))
			goto fail;
		if (!(k->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)))
			goto fail;
	}
	if ((e = key_finish(k)) != DG_OK)
		goto fail;
	BIO_free(bio);
	OPENSSL_cleanse(text, len);
	free(text);
	*err = DG_OK;
	return k;
fail:
	if (e == DG_ERR_KEY)
		dg_log_err("%s: not an Ed25519 PEM key", path);
	else
		dg_log_err("%s: %s", path, dg_strerror(e));
	BIO_free(bio);
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	dg_jws_key_free(k);
	*err = e;
	return NULL;
}

void
dg_jws_key_free(dg_jws_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *
dg_jws_key_id(const dg_jws_key *k)
{
	return k->kid;
}

/* The PEM of pkey (private or public) from a memory BIO. */
static dg_err
pem_write(const char *path, EVP_PKEY *pkey, int private, unsigned mode)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	dg_err e = DG_ERR_CRYPTO;
	int ok;

	if (!bio)
		return DG_ERR_NOMEM;
	ok = private ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) :
	    PEM_write_bio_PUBKEY(bio, pkey);
	if (ok && (len = BIO_get_mem_data(bio, &data)) > 0)
		e = dg_util_write_atomic(path, data, (size_t)len, mode);
	BIO_free(bio);
	return e;
}

dg_err
dg_jws_keygen(const char *priv_path, const char *pub_path)
{
	EVP_PKEY *pkey = NULL;
	dg_err e;

	if (access(priv_path, F_OK) == 0 || access(pub_path, F_OK) == 0)
		return DG_ERR_EXIST;
	if (!(pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")))
		return DG_ERR_CRYPTO;
	if ((e = pem_write(priv_path, pkey, 1, 0600)) == DG_OK &&
	    (e = pem_write(pub_path, pkey, 0, 0644)) != DG_OK)
		unlink(priv_path);
	EVP_PKEY_free(pkey);
	return e;
}

/* ------------------------------------------------------------ sign / verify */

dg_err
dg_jws_sign(const dg_jws_key *k, const char *payload, size_t len, char **out)
{
	json_t *hdr = NULL;
	char *htext = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *tbs = NULL;
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = NULL;
	dg_err e = DG_ERR_NOMEM;

	*out = NULL;
	if (!k->has_private)
		return DG_ERR_KEY;
	if (!(hdr = json_pack("{s:s,s:s}", "alg", "EdDSA", "kid", k->kid)) ||
	    !(htext = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS)) ||
	    !(h64 = dg_jws_b64url_encode((const unsigned char *)htext, strlen(htext))) ||
	    !(p64 = dg_jws_b64url_encode((const unsigned char *)payload, len)) ||
	    asprintf(&tbs, "%s.%s", h64, p64) < 0) {
		tbs = NULL;
		goto fail;
	}
	e = DG_ERR_CRYPTO;
	if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)tbs, strlen(tbs)) != 1)
		goto fail;
	e = DG_ERR_NOMEM;
	if (!(s64 = dg_jws_b64url_encode(sig, siglen)) || asprintf(out, "%s.%s", tbs, s64) < 0) {
		*out = NULL;
		goto fail;
	}
	e = DG_OK;
fail:
	EVP_MD_CTX_free(ctx);
	json_decref(hdr);
	free(htext);
	free(h64);
	free(p64);
	free(s64);
	free(tbs);
	return e;
}

dg_err
dg_jws_verify(dg_jws_key *const *keys, size_t nkeys, const char *jws, char **payload,
    size_t *plen)
{
	const char *d1, *d2;
	unsigned char *hdr = NULL, *body = NULL, *sig = NULL;
	size_t hlen, blen, slen, i;
	json_t *h = NULL;
	const char *alg, *kid;
	const dg_jws_key *k = NULL;
	EVP_MD_CTX *ctx = NULL;
	dg_err e = DG_ERR_JWS_FORMAT, je;

	*payload = NULL;
	*plen = 0;
	if (!jws || !(d1 = strchr(jws, '.')) || !(d2 = strchr(d1 + 1, '.')) || strchr(d2 + 1, '.'))
		return DG_ERR_JWS_FORMAT;
	if (dg_jws_b64url_decode(jws, (size_t)(d1 - jws), &hdr, &hlen) != DG_OK ||
	    dg_jws_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &body, &blen) != DG_OK ||
	    dg_jws_b64url_decode(d2 + 1, strlen(d2 + 1), &sig, &slen) != DG_OK)
		goto fail;
	if (!(h = dg_json_parse((const char *)hdr, hlen, 4096, 2, &je, NULL, 0)) || !json_is_object(h))
		goto fail;
	alg = dg_json_get_str(h, "alg");
	kid = dg_json_get_str(h, "kid");
	if (!alg || strcmp(alg, "EdDSA") != 0 || json_object_get(h, "crit") || slen != 64)
		goto fail;
	e = DG_ERR_JWS_UNKNOWN_KEY;
	for (i = 0; kid && i < nkeys; i++)
		if (strcmp(keys[i]->kid, kid) == 0)
			k = keys[i];
	if (!k)
		goto fail;
	e = DG_ERR_CRYPTO;
	if (!(ctx = EVP_MD_CTX_new()) || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1)
		goto fail;
	e = DG_ERR_JWS_SIGNATURE;
	if (EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)jws, (size_t)(d2 - jws)) != 1)
		goto fail;
	*payload = (char *)body;
	*plen = blen;
	body = NULL;
	e = DG_OK;
fail:
	EVP_MD_CTX_free(ctx);
	json_decref(h);
	free(hdr);
	free(body);
	free(sig);
	return e;
}
