/* dg_command - signed software-update commands.
 *
 * A command is the desired state of a device's shadow (softwareURL,
 * softwareVersion, softwareSha256, softwareSize, jobId, relatedFiles; see
 * docs/gateway.md). Signing adds "signature": a JWS (dg_jws, EdDSA) whose
 * payload is those fields plus "device" (the device it is meant for),
 * "exp" (expiry, Unix seconds) and "seq" (a sequence number that grows with
 * every command the operator signs). The verifier checks the signature, that
 * every signed field equals the command's (a field absent from one is absent
 * from the other), the device and the expiry; the anti-rollback check of
 * "seq" against the last accepted one is the caller's, which stores it.
 */
#ifndef DG_COMMAND_H
#define DG_COMMAND_H

#include <stdint.h>

#include <jansson.h>

#include "dg_err.h"
#include "dg_jws.h"

/* Sign desired (modified in place: "signature" set) for device with key k.
 * DG_ERR_INVAL (no jobId or softwareURL), DG_ERR_KEY, DG_ERR_CRYPTO,
 * DG_ERR_NOMEM. */
dg_err dg_command_sign(json_t *desired, const dg_jws_key *k, const char *device,
    int64_t seq, int64_t expires_at);

/* Verify desired for device at time now against nkeys trusted keys; on
 * DG_OK *seq is the signed sequence number. DG_ERR_CMD_UNSIGNED (no
 * signature), DG_ERR_JWS_FORMAT / DG_ERR_JWS_SIGNATURE (malformed or does
 * not verify), DG_ERR_JWS_UNKNOWN_KEY, DG_ERR_CMD_ALTERED (a field differs
 * from the signed one, or signed for another device), DG_ERR_CMD_EXPIRED,
 * DG_ERR_NOMEM. */
dg_err dg_command_verify(const json_t *desired, dg_jws_key *const *keys, size_t nkeys,
    const char *device, int64_t now, int64_t *seq);

#endif
