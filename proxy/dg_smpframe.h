/* dg_smpframe - the SMP console framing of mcumgr / MCUboot serial
 * recovery (mcumgr transport/smp-console.md): a packet is
 * <2-byte big-endian length> <SMP header + CBOR body> <CRC-16/XMODEM of
 * the body, big endian>, base64 encoded (OpenSSL) and cut into frames of
 * at most 127 bytes: 0x06 0x09 before the first, 0x04 0x14 before each
 * continuation, '\n' after each. The length counts the body and the CRC.
 * Used by the SMP engine and by the simulator's SMP target.
 */
#ifndef DG_SMPFRAME_H
#define DG_SMPFRAME_H

#include <stddef.h>
#include <stdint.h>

#define DG_SMPFRAME_MAX 127           /* bytes per frame, markers and '\n' included */
#define DG_SMP_HDR 8                  /* op, flags, len(2), group(2), seq, id */

typedef struct dg_smpframe_dec dg_smpframe_dec;

/* CRC-16/XMODEM (poly 0x1021, init 0, no reflection). */
uint16_t dg_smpframe_crc16(const uint8_t *buf, size_t n);

/* Frame pkt (n bytes, at most 65533) into a malloc'd buffer *out of *outn
 * bytes. 0 = ok, -1 = too big or out of memory. */
int dg_smpframe_encode(const uint8_t *pkt, size_t n, uint8_t **out, size_t *outn);

/* A decoder holding packets of up to max bytes; NULL when out of memory. */
dg_smpframe_dec *dg_smpframe_dec_new(size_t max);
void dg_smpframe_dec_free(dg_smpframe_dec *d);

/* Feed one received byte. 1: a whole packet with a good CRC is ready
 * (dg_smpframe_dec_packet, valid until the next push); 0: more needed;
 * -1: a packet was dropped (bad base64, bad CRC, too long); bytes outside
 * frames (console text) are ignored. */
int dg_smpframe_dec_push(dg_smpframe_dec *d, uint8_t c);
const uint8_t *dg_smpframe_dec_packet(const dg_smpframe_dec *d, size_t *n);

#endif
