/* dg_manifest - import manifests version 5.0 for Device Update.
 *
 * A builder gathers what `az iot du update init v5` takes (update id,
 * compatibility sets, steps, files with related files and a download
 * handler), hashes the files (size, base64 SHA-256) and builds the JSON
 * document. dg_manifest_validate checks a document against the structure
 * of the public schema azure-deviceupdate-import-manifest-5.0.json
 * (required members, types, patterns, lengths, counts, no unknown
 * members) plus what the service checks beyond it: step files name
 * listed files, file names are unique and hashes are base64 SHA-256.
 *
 * Every function that can fail returns DG_ERR_MANIFEST for a value the
 * schema refuses, with a one-line reason in why (whylen bytes; may be
 * NULL), and file errors (DG_ERR_NOENT, DG_ERR_IO, ...) for the files.
 */
#ifndef DG_MANIFEST_H
#define DG_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dg_err.h"

#define DG_MANIFEST_B64_SHA256_LEN 44 /* base64 of 32 bytes, without NUL */

typedef struct dg_manifest dg_manifest;

/* NULL with *err = DG_ERR_NOMEM. */
dg_manifest *dg_manifest_new(dg_err *err);
void dg_manifest_free(dg_manifest *m);

/* Set the update id (copied). Checked as the schema says: provider and
 * name 1-64 of [a-zA-Z0-9.-], version 2-4 dot-separated numbers each at
 * most 2147483647. */
dg_err dg_manifest_set_update_id(dg_manifest *m, const char *provider,
    const char *name, const char *version, char *why, size_t whylen);
/* Optional description, 1-512 bytes. */
dg_err dg_manifest_set_description(dg_manifest *m, const char *desc,
    char *why, size_t whylen);

/* Add one compatibility set from n "key=value" strings (1-5 pairs, key
 * 1-32, value 1-64 bytes, keys unique). At most 10 sets. */
dg_err dg_manifest_add_compat(dg_manifest *m, char *const *kv, size_t n,
    char *why, size_t whylen);

/* Add an inline step from n "key=value" strings: handler=H (required,
 * ^\S+/\S+:\d{1,5}$, 5-32 bytes), properties=JSON object, description=D,
 * files=a,b (names of added files; default: every file). At most 10. */
dg_err dg_manifest_add_step(dg_manifest *m, char *const *kv, size_t n,
    char *why, size_t whylen);

/* Add a payload file from n "key=value" strings: path=F (required; the
 * manifest names it by its base name), downloadHandler=ID, properties=JSON
 * object. Hashes the file. At most 10 files. */
dg_err dg_manifest_add_file(dg_manifest *m, char *const *kv, size_t n,
    char *why, size_t whylen);

/* Add a related file to the file added last, from "key=value" strings:
 * path=D (required), properties=JSON object, source=S (sets
 * microsoft.sourceFileHashAlgorithm "sha256" and microsoft.sourceFileHash
 * to S's base64 SHA-256). At most 4 per file; DG_ERR_MANIFEST if no file
 * was added yet. */
dg_err dg_manifest_add_related_file(dg_manifest *m, char *const *kv,
    size_t n, char *why, size_t whylen);

/* Build the document (new reference) with createdDateTime = created (NULL:
 * now, or $SOURCE_DATE_EPOCH if set), then validate it. NULL with *err:
 * DG_ERR_MANIFEST (nothing or something invalid), DG_ERR_NOMEM. */
json_t *dg_manifest_build(const dg_manifest *m, const char *created,
    dg_err *err, char *why, size_t whylen);

/* Check doc against the version 5.0 structure (see above). DG_OK or
 * DG_ERR_MANIFEST with the JSON path of the first problem in why. */
dg_err dg_manifest_validate(const json_t *doc, char *why, size_t whylen);

/* Size and base64 SHA-256 (out: DG_MANIFEST_B64_SHA256_LEN + 1 bytes) of
 * the file at path, read in chunks. DG_ERR_NOENT, DG_ERR_IO, ... ,
 * DG_ERR_CRYPTO. */
dg_err dg_manifest_hash_file(const char *path, uint64_t *size, char *out);

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) for t into out (21 bytes). */
void dg_manifest_format_time(int64_t t, char *out);

#endif
