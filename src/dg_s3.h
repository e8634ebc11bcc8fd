/* dg_s3 - objects on S3-compatible storage for `deltagate deploy`:
 * uploads signed by libcurl's own SigV4 (CURLOPT_AWS_SIGV4), existence
 * checks by HEAD. Download links are dg_sigv4_presign's. */
#ifndef DG_S3_H
#define DG_S3_H

#include <stdint.h>

#include "dg_err.h"
#include "dg_sigv4.h"

/* Upload the file at path to url (the object's http(s) URL, from
 * dg_sigv4_s3_http_url) unless an object of the same size is there
 * already (HEAD): content-hash names make that the same object.
 * *uploaded: bytes sent (0 when it was there). ca_file may be NULL.
 * DG_ERR_STORAGE (HTTP error, logged with its status), DG_ERR_FETCH_NETWORK,
 * DG_ERR_NOENT / DG_ERR_IO (the file), DG_ERR_NOMEM. */
dg_err dg_s3_put_file(const char *url, const char *region, const dg_sigv4_creds *creds,
    const char *path, const char *ca_file, uint64_t *uploaded);

#endif
