/*
 * TUN offloads (IFF_VNET_HDR): segmentation of the large TCP frames the kernel hands us with TSO,
 * checksum completion of CHECKSUM_PARTIAL frames, and coalescing of consecutive TCP segments into
 * one GSO frame on the way back in (the kernel then runs its TCP receive path once per frame
 * instead of once per packet). Pure functions over byte buffers; no protocol logic of WireGuard.
 */
#ifndef KUBESPAND_OFFLOAD_H
#define KUBESPAND_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#define VNET_HDR_LEN 10
#define VNET_F_NEEDS_CSUM 1
#define VNET_GSO_NONE 0
#define VNET_GSO_TCPV4 1
#define VNET_GSO_TCPV6 4
#define VNET_GSO_ECN 0x80

/* Emits one finished IP packet; returns 0 to go on, non-zero to stop. */
typedef int (*offload_emit_fn)(void *ctx, const uint8_t *packet, size_t len);

/*
 * Turns one frame read from an IFF_VNET_HDR TUN into plain IP packets (split by gso_size, checksums
 * completed), calling `emit` for each. `scratch` must hold 65535 bytes. Returns the number of
 * packets emitted, or -1 when the frame is malformed (it is then dropped).
 */
int offload_split(const uint8_t *frame, size_t len, uint8_t *scratch, offload_emit_fn emit, void *ctx);

/*
 * How many packets starting at pkts[0] can be coalesced into one GSO frame (always >= 1).
 */
int offload_group(const uint8_t *const *pkts, const size_t *lens, int n);

/*
 * Writes the frame (virtio header + packet) for pkts[0..count) into `out` (capacity
 * VNET_HDR_LEN + 65535) and returns its length. count == 1 writes the packet with an empty header.
 */
size_t offload_build(const uint8_t *const *pkts, const size_t *lens, int count, uint8_t *out);

/* RFC 1071 checksum helpers (exported for tests through the addon). */
uint32_t offload_sum(const uint8_t *data, size_t len, uint32_t sum);
uint16_t offload_fold(uint32_t sum);

#endif
