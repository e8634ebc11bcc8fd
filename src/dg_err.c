/* dg_err - descriptions of the error codes. */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "dg_err.h"

static const struct {
	dg_err code;
	const char *text;
} errtab[] = {
	{ DG_OK, "success" },
	{ DG_ERR_NOMEM, "out of memory" },
	{ DG_ERR_INVAL, "invalid argument" },
	{ DG_ERR_IO, "input/output error" },
	{ DG_ERR_NOENT, "no such file or entry" },
	{ DG_ERR_EXIST, "already exists" },
	{ DG_ERR_PERM, "permission denied" },
	{ DG_ERR_NOSPC, "no space left on device" },
	{ DG_ERR_RANGE, "value out of range" },
	{ DG_ERR_TOOBIG, "input exceeds a configured limit" },
	{ DG_ERR_TIMEOUT, "timed out" },
	{ DG_ERR_CANCELED, "canceled" },
	{ DG_ERR_BUSY, "resource busy" },
	{ DG_ERR_UNSUPPORTED, "not supported" },
	{ DG_ERR_INTERNAL, "internal error" },
	{ DG_ERR_CRYPTO, "cryptographic library error" },
	{ DG_ERR_SYSTEM, "system call failed" },
	{ DG_ERR_CONFIG, "bad configuration" },
	{ DG_ERR_CONFIG_UNKNOWN, "unknown configuration option" },
	{ DG_ERR_CONFIG_VALUE, "bad configuration value" },
	{ DG_ERR_USAGE, "bad command line" },
	{ DG_ERR_JSON, "invalid JSON" },
	{ DG_ERR_JSON_DEPTH, "JSON nested too deeply" },
	{ DG_ERR_JSON_TYPE, "JSON member of the wrong type" },
	{ DG_ERR_JSON_UTF8, "not valid UTF-8" },
	{ DG_ERR_DB, "database error" },
	{ DG_ERR_DB_SCHEMA, "database schema is newer than this program" },
	{ DG_ERR_DB_BUSY, "database is locked" },
	{ DG_ERR_DB_CORRUPT, "database file is corrupt" },
	{ DG_ERR_MQTT, "MQTT client error" },
	{ DG_ERR_MQTT_CONNECT, "could not connect to the MQTT broker" },
	{ DG_ERR_MQTT_TOPIC, "invalid MQTT topic" },
	{ DG_ERR_MQTT_DISCONNECTED, "not connected to the MQTT broker" },
	{ DG_ERR_SHADOW_BAD_REQUEST, "bad shadow request" },
	{ DG_ERR_SHADOW_NOT_FOUND, "no such shadow" },
	{ DG_ERR_SHADOW_CONFLICT, "shadow version conflict" },
	{ DG_ERR_SHADOW_TOO_LARGE, "shadow document too large" },
	/* cache (issue 3) */
	{ DG_ERR_CACHE_MISS, "not in the cache" },
	{ DG_ERR_CACHE_HASH, "content does not match its SHA-256" },
	{ DG_ERR_CACHE_SIZE, "content does not match its expected size" },
	{ DG_ERR_CACHE_FULL, "cache quota cannot be met: the remaining entries are pinned" },
	{ DG_ERR_CACHE_PROVIDER, "invalid cache provider name" },
	{ DG_ERR_CACHE_CORRUPT, "cached file is damaged (quarantined)" },
	{ DG_ERR_CACHE_NOT_PINNED, "no such pin on the cache entry" },
	{ DG_ERR_CACHE_LOCKED, "partial download is in use by another writer" },
	{ DG_ERR_CACHE_NAME, "not a cache file name (sha256-<encoded hash>)" },
	/* delta (issue 6) */
	{ DG_ERR_DELTA_FORMAT, "not a deltagate delta" },
	{ DG_ERR_DELTA_VERSION, "unsupported delta format version" },
	{ DG_ERR_DELTA_RECIPE, "unsupported delta recipe item, filter or codec" },
	{ DG_ERR_DELTA_CORRUPT, "corrupt delta" },
	{ DG_ERR_DELTA_TRUNCATED, "truncated delta" },
	{ DG_ERR_DELTA_SOURCE, "source does not match the delta" },
	{ DG_ERR_DELTA_TARGET, "rebuilt target does not match the delta" },
	{ DG_ERR_DELTA_MEMLIMIT, "delta needs more memory than the limit" },
	{ DG_ERR_DELTA_NOGAIN, "delta is not smaller than the compressed target" },
	{ DG_ERR_DELTA_VERIFY, "generated delta failed its self-check" },
	{ DG_ERR_DELTA_CODEC, "compression library failure" },
	{ DG_ERR_SWU_FORMAT, "malformed cpio (.swu) archive" },
	{ DG_ERR_SWU_TRUNCATED, "cpio (.swu) archive is truncated" },
	{ DG_ERR_SWU_NAME, "refused cpio member name" },
	{ DG_ERR_SWU_DUPLICATE, "duplicate cpio member name" },
	{ DG_ERR_SWU_CHECKSUM, "cpio member checksum mismatch" },
	{ DG_ERR_SWU_NO_DESC, "sw-description is not the first member" },
	{ DG_ERR_SWU_SIGN, "signing command failed" },
	{ DG_ERR_SWU_SIZE, "cpio member data does not match its size" },
	{ DG_ERR_GZIP_FORMAT, "malformed gzip data" },
	{ DG_ERR_GZIP_TRUNCATED, "gzip data is truncated" },
	{ DG_ERR_GZIP_CRC, "gzip CRC or length mismatch" },
	{ DG_ERR_GZIP_NOT_REPRODUCIBLE, "gzip stream not reproducible with zlib" },
	{ DG_ERR_GZIP_MULTI, "multi-member gzip or trailing data" },
	{ DG_ERR_ZLIB, "zlib error" },
	{ DG_ERR_MANIFEST, "invalid import manifest" },
	/* fetch, jobs (issue 4) */
	{ DG_ERR_FETCH_FORBIDDEN, "HTTP 403: URL forbidden or expired" },
	{ DG_ERR_FETCH_NOT_FOUND, "HTTP 404/410: not found" },
	{ DG_ERR_FETCH_HTTP, "HTTP client error" },
	{ DG_ERR_FETCH_SERVER, "HTTP server error" },
	{ DG_ERR_FETCH_NETWORK, "network error" },
	{ DG_ERR_FETCH_STALLED, "transfer stalled" },
	{ DG_ERR_FETCH_TOO_BIG, "download larger than expected" },
	{ DG_ERR_FETCH_SHORT, "download shorter than expected" },
	{ DG_ERR_FETCH_TLS, "TLS certificate verification failed" },
	{ DG_ERR_FETCH_SINK, "download sink error" },
	{ DG_ERR_FETCH_REDIRECTS, "too many HTTP redirects" },
	/* drivers (issues 4, 5) */
	{ DG_ERR_COAP_SETUP, "CoAP context, endpoint or DTLS set-up failed" },
	{ DG_ERR_COAP_ADDRESS, "bad CoAP address" },
	/* operator tools and signed commands (issue 13) */
	{ DG_ERR_PRESIGN_URL, "URL cannot be pre-signed" },
	{ DG_ERR_CREDENTIALS, "no storage credentials found" },
	{ DG_ERR_KEY, "not a usable Ed25519 key" },
	{ DG_ERR_JWS_FORMAT, "malformed JWS signature" },
	{ DG_ERR_JWS_UNKNOWN_KEY, "signed by an untrusted key" },
	{ DG_ERR_JWS_SIGNATURE, "signature does not verify" },
	{ DG_ERR_CMD_UNSIGNED, "command is not signed" },
	{ DG_ERR_CMD_ALTERED, "command differs from what was signed" },
	{ DG_ERR_CMD_EXPIRED, "signed command has expired" },
	{ DG_ERR_CMD_REPLAYED, "signed command replayed or older than the last one" },
	{ DG_ERR_ROLLOUT_UNKNOWN, "no such rollout" },
	{ DG_ERR_ROLLOUT_STOPPED, "rollout stopped by its failure threshold" },
	{ DG_ERR_STORAGE, "staging to storage failed" },
};

const char *
dg_strerror(dg_err err)
{
	size_t i;

	for (i = 0; i < sizeof(errtab) / sizeof(errtab[0]); i++)
		if (errtab[i].code == err)
			return errtab[i].text;
	return "unknown error";
}

dg_err
dg_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0: return DG_OK;
	case ENOMEM: return DG_ERR_NOMEM;
	case EINVAL: return DG_ERR_INVAL;
	case ENOENT: return DG_ERR_NOENT;
	case EEXIST: return DG_ERR_EXIST;
	case EACCES: case EPERM: case EROFS: return DG_ERR_PERM;
	case ENOSPC: case EDQUOT: case EFBIG: return DG_ERR_NOSPC;
	case ERANGE: return DG_ERR_RANGE;
	case ETIMEDOUT: return DG_ERR_TIMEOUT;
	case EBUSY: return DG_ERR_BUSY;
	case EIO: return DG_ERR_IO;
	default: return DG_ERR_SYSTEM;
	}
}
