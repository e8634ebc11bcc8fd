/* dg_err - the one error enumeration of deltagate.
 *
 * Values are explicit and never renumbered; a retired value stays in the
 * enum with an _OBSOLETE suffix. 0 is success. Each area owns a block of
 * numbers so that modules can grow without colliding.
 */
#ifndef DG_ERR_H
#define DG_ERR_H

typedef enum dg_err {
	DG_OK = 0,

	/* 1-49: generic */
	DG_ERR_NOMEM = 1,        /* out of memory */
	DG_ERR_INVAL = 2,        /* invalid argument */
	DG_ERR_IO = 3,           /* I/O error (read/write/fsync/rename) */
	DG_ERR_NOENT = 4,        /* no such file or entry */
	DG_ERR_EXIST = 5,        /* already exists */
	DG_ERR_PERM = 6,         /* permission denied */
	DG_ERR_NOSPC = 7,        /* no space left on device */
	DG_ERR_RANGE = 8,        /* value out of range */
	DG_ERR_TOOBIG = 9,       /* input exceeds a configured limit */
	DG_ERR_TIMEOUT = 10,     /* deadline passed */
	DG_ERR_CANCELED = 11,    /* operation canceled by the caller */
	DG_ERR_BUSY = 12,        /* resource busy */
	DG_ERR_UNSUPPORTED = 13, /* not supported by this build or version */
	DG_ERR_INTERNAL = 14,    /* an invariant was broken: a bug */
	DG_ERR_CRYPTO = 15,      /* OpenSSL failure */
	DG_ERR_SYSTEM = 16,      /* other system call failure (see errno / log) */

	/* 50-69: configuration and command line */
	DG_ERR_CONFIG = 50,        /* bad configuration (file:line logged) */
	DG_ERR_CONFIG_UNKNOWN = 51,/* unknown option */
	DG_ERR_CONFIG_VALUE = 52,  /* bad value for an option */
	DG_ERR_USAGE = 53,         /* bad command line */

	/* 70-89: JSON */
	DG_ERR_JSON = 70,          /* invalid JSON */
	DG_ERR_JSON_DEPTH = 71,    /* nesting too deep */
	DG_ERR_JSON_TYPE = 72,     /* member of the wrong type */
	DG_ERR_JSON_UTF8 = 73,     /* not valid UTF-8 */

	/* 90-109: SQLite store */
	DG_ERR_DB = 90,            /* SQLite error (logged with its message) */
	DG_ERR_DB_SCHEMA = 91,     /* schema newer than this program */
	DG_ERR_DB_BUSY = 92,       /* database locked past the busy timeout */
	DG_ERR_DB_CORRUPT = 93,    /* database file is corrupt */

	/* 110-129: MQTT */
	DG_ERR_MQTT = 110,         /* Paho error (logged with its code) */
	DG_ERR_MQTT_CONNECT = 111, /* could not connect to the broker */
	DG_ERR_MQTT_TOPIC = 112,   /* invalid topic (e.g. a wildcard to publish) */
	DG_ERR_MQTT_DISCONNECTED = 113, /* not connected */

	/* 130-149: shadow document model */
	DG_ERR_SHADOW_BAD_REQUEST = 130, /* 400 */
	DG_ERR_SHADOW_NOT_FOUND = 131,   /* 404 */
	DG_ERR_SHADOW_CONFLICT = 132,    /* 409 */
	DG_ERR_SHADOW_TOO_LARGE = 133,   /* 413 */

	/* 150-199: image cache (issue 3) */
	DG_ERR_CACHE_MISS = 150,       /* no such entry in the cache */
	DG_ERR_CACHE_HASH = 151,       /* content does not match its SHA-256 */
	DG_ERR_CACHE_SIZE = 152,       /* content does not match its expected size */
	DG_ERR_CACHE_FULL = 153,       /* quota cannot be met: the rest is pinned */
	DG_ERR_CACHE_PROVIDER = 154,   /* invalid provider name */
	DG_ERR_CACHE_CORRUPT = 155,    /* cached file damaged (quarantined) */
	DG_ERR_CACHE_NOT_PINNED = 156, /* the holder holds no pin on the entry */
	DG_ERR_CACHE_LOCKED = 157,     /* partial download open in another writer */
	DG_ERR_CACHE_NAME = 158,       /* not a sha256-<encoded hash> file name */

	/* 200-259: delta engine (issue 6) */
	DG_ERR_DELTA_FORMAT = 200,   /* not a deltagate delta (bad magic) */
	DG_ERR_DELTA_VERSION = 201,  /* format version or header flags unknown */
	DG_ERR_DELTA_RECIPE = 202,   /* unknown recipe item, filter or codec */
	DG_ERR_DELTA_CORRUPT = 203,  /* inconsistent lengths or bad stream */
	DG_ERR_DELTA_TRUNCATED = 204,/* delta shorter than its header says */
	DG_ERR_DELTA_SOURCE = 205,   /* source size or SHA-256 does not match */
	DG_ERR_DELTA_TARGET = 206,   /* rebuilt target's SHA-256 does not match */
	DG_ERR_DELTA_MEMLIMIT = 207, /* needs more working memory than allowed */
	DG_ERR_DELTA_NOGAIN = 208,   /* delta not smaller than compressed target */
	DG_ERR_DELTA_VERIFY = 209,   /* generated delta failed its self-check */
	DG_ERR_DELTA_CODEC = 210,    /* compression library failure */
	/* 230-259: .swu (cpio), gzip, import manifest */
	DG_ERR_SWU_FORMAT = 230,    /* malformed cpio newc/crc archive */
	DG_ERR_SWU_TRUNCATED = 231, /* cpio archive cut short */
	DG_ERR_SWU_NAME = 232,      /* refused member name (.., absolute, ...) */
	DG_ERR_SWU_DUPLICATE = 233, /* two members with one name */
	DG_ERR_SWU_CHECKSUM = 234,  /* 070702 data checksum mismatch */
	DG_ERR_SWU_NO_DESC = 235,   /* sw-description is not the first member */
	DG_ERR_SWU_SIGN = 236,      /* signing command failed */
	DG_ERR_SWU_SIZE = 237,      /* member data differs from its size */
	DG_ERR_GZIP_FORMAT = 240,   /* malformed gzip header or stream */
	DG_ERR_GZIP_TRUNCATED = 241,/* gzip data cut short */
	DG_ERR_GZIP_CRC = 242,      /* gzip CRC-32 or length mismatch */
	DG_ERR_GZIP_NOT_REPRODUCIBLE = 243, /* no zlib parameters rebuild it */
	DG_ERR_GZIP_MULTI = 244,    /* more than one member, or trailing data */
	DG_ERR_ZLIB = 245,          /* zlib failure */
	DG_ERR_MANIFEST = 250,      /* import manifest invalid */

	/* 260-299: fetch (HTTP) and jobs (issue 4) */
	/* 260-279: fetch (dg_fetch outcomes; see docs/fetch.md) */
	DG_ERR_FETCH_FORBIDDEN = 260, /* HTTP 403: expired or forbidden URL */
	DG_ERR_FETCH_NOT_FOUND = 261, /* HTTP 404 or 410 */
	DG_ERR_FETCH_HTTP = 262,      /* other HTTP status not retried (4xx) */
	DG_ERR_FETCH_SERVER = 263,    /* HTTP 5xx, retries exhausted */
	DG_ERR_FETCH_NETWORK = 264,   /* connect/DNS/reset, retries exhausted */
	DG_ERR_FETCH_STALLED = 265,   /* below the low-speed limit, retries exhausted */
	DG_ERR_FETCH_TOO_BIG = 266,   /* body longer than the expected size */
	DG_ERR_FETCH_SHORT = 267,     /* body ended before the expected size */
	DG_ERR_FETCH_TLS = 268,       /* TLS certificate verification failed */
	DG_ERR_FETCH_SINK = 269,      /* the sink refused data (see stats) */
	DG_ERR_FETCH_REDIRECTS = 270, /* too many redirects */
	/* 280-299: jobs */

	/* 300-349: downstream drivers: coap, serial, exec (issues 4, 5) */
	DG_ERR_COAP_SETUP = 300,   /* libcoap: context, endpoint or DTLS set-up failed */
	DG_ERR_COAP_ADDRESS = 301, /* CoAP address does not parse or resolve */

	/* 360-379: operator tools and signed commands (issue 13) */
	DG_ERR_PRESIGN_URL = 360,     /* URL cannot be pre-signed (scheme, query) */
	DG_ERR_CREDENTIALS = 361,     /* no storage credentials found */
	DG_ERR_KEY = 362,             /* not an (Ed25519) key, or no private part */
	DG_ERR_JWS_FORMAT = 363,      /* malformed JWS, or alg not EdDSA */
	DG_ERR_JWS_UNKNOWN_KEY = 364, /* JWS signed by a key not trusted */
	DG_ERR_JWS_SIGNATURE = 365,   /* JWS signature does not verify */
	DG_ERR_CMD_UNSIGNED = 366,    /* command carries no signature */
	DG_ERR_CMD_ALTERED = 367,     /* command differs from what was signed */
	DG_ERR_CMD_EXPIRED = 368,     /* signed command past its expiry */
	DG_ERR_CMD_REPLAYED = 369,    /* sequence not newer than the last accepted */
	DG_ERR_ROLLOUT_UNKNOWN = 370, /* no such rollout in the state directory */
	DG_ERR_ROLLOUT_STOPPED = 371, /* rollout stopped by its failure threshold */
	DG_ERR_STORAGE = 372,         /* staging to storage failed */

	DG_ERR_MAX_ /* not an error: one past the largest value in use */
} dg_err;

/* A static, human-readable description of err; never NULL. */
const char *dg_strerror(dg_err err);

/* The dg_err closest to a POSIX errno value (ENOSPC -> DG_ERR_NOSPC, ...). */
dg_err dg_err_from_errno(int errnum);

#endif
