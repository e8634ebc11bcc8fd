/* dg_jws - Ed25519 keys and JWS compact serialisation (RFC 7515) with
 * alg "EdDSA" (RFC 8037), for signed update commands.
 *
 * A key is an Ed25519 private or public key read from a PEM file
 * (PKCS#8 / SubjectPublicKeyInfo, as `openssl genpkey -algorithm ed25519`
 * writes them). Its key id ("kid" in the protected header) is the
 * base64url SHA-256 of the raw 32-byte public key: the verifier finds the
 * key by it. All cryptography is OpenSSL's EVP API; base64 is OpenSSL's
 * EVP_EncodeBlock/EVP_DecodeBlock with the base64url alphabet applied.
 */
#ifndef DG_JWS_H
#define DG_JWS_H

#include <stddef.h>

#include "dg_err.h"

typedef struct dg_jws_key dg_jws_key;

/* Read a PEM Ed25519 key (private, or public for verifying only).
 * NULL and *err: DG_ERR_NOENT / DG_ERR_IO (file), DG_ERR_KEY (not an
 * Ed25519 PEM key), DG_ERR_NOMEM. */
dg_jws_key *dg_jws_key_load(const char *path, dg_err *err);
void dg_jws_key_free(dg_jws_key *k);
/* The key id (43 base64url characters), owned by k. */
const char *dg_jws_key_id(const dg_jws_key *k);

/* Make a fresh Ed25519 key pair: the private key (PKCS#8 PEM, mode 0600)
 * to priv_path and the public key to pub_path, each written atomically;
 * refuses to overwrite (DG_ERR_EXIST). DG_ERR_CRYPTO, DG_ERR_IO. */
dg_err dg_jws_keygen(const char *priv_path, const char *pub_path);

/* Sign payload (any bytes, usually compact JSON) with the private key k:
 * *out = BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(sig),
 * header {"alg":"EdDSA","kid":"<kid>"}. DG_ERR_KEY (k has no private
 * part), DG_ERR_CRYPTO, DG_ERR_NOMEM. */
dg_err dg_jws_sign(const dg_jws_key *k, const char *payload, size_t len, char **out);

/* Verify jws against the nkeys trusted keys: on DG_OK *payload (fresh,
 * NUL-terminated, caller frees) holds the signed payload and *plen its
 * length. DG_ERR_JWS_FORMAT (not three base64url parts, header not JSON,
 * alg not EdDSA), DG_ERR_JWS_UNKNOWN_KEY (kid missing or not trusted),
 * DG_ERR_JWS_SIGNATURE (does not verify: altered or forged). */
dg_err dg_jws_verify(dg_jws_key *const *keys, size_t nkeys, const char *jws,
    char **payload, size_t *plen);

/* base64url without padding of len bytes: a fresh string. NULL on OOM. */
char *dg_jws_b64url_encode(const unsigned char *in, size_t len);
/* Decode base64url (no padding, no other characters): fresh buffer in
 * *out (NUL-terminated), length in *outlen. DG_ERR_INVAL, DG_ERR_NOMEM. */
dg_err dg_jws_b64url_decode(const char *in, size_t inlen, unsigned char **out, size_t *outlen);

#endif
