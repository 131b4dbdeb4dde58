/* TUN offloads: see offload.h. */
#include "offload.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define MAX_IP_PACKET 65535
#define MAX_GROUP 64

static uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t be32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void putle16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

uint32_t offload_sum(const uint8_t *data, size_t len, uint32_t sum) {
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2) acc += (uint32_t)((data[i] << 8) | data[i + 1]);
  if (i < len) acc += (uint32_t)(data[i] << 8);
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return (uint32_t)acc;
}

uint16_t offload_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* Sum of the TCP/UDP pseudo header for `l4len` bytes of transport data. */
static uint32_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len) {
  uint32_t sum;
  if (v6) {
    sum = offload_sum(ip + 8, 32, 0);
    sum += (l4len >> 16) + (l4len & 0xffff) + proto;
  } else {
    sum = offload_sum(ip + 12, 8, 0);
    sum += proto + l4len;
  }
  return sum;
}

static void ipv4_fix_checksum(uint8_t *ip, int ihl) {
  ip[10] = ip[11] = 0;
  put16(ip + 10, (uint16_t)~offload_fold(offload_sum(ip, (size_t)ihl, 0)));
}

static void tcp_fix_checksum(uint8_t *ip, int v6, size_t l4, size_t total) {
  uint8_t *tcp = ip + l4;
  tcp[16] = tcp[17] = 0;
  uint32_t sum = pseudo_sum(ip, v6, 6, (uint32_t)(total - l4));
  put16(tcp + 16, (uint16_t)~offload_fold(offload_sum(tcp, total - l4, sum)));
}

int offload_split(const uint8_t *frame, size_t len, uint8_t *scratch, offload_emit_fn emit, void *ctx) {
  if (len < VNET_HDR_LEN) return -1;
  uint8_t flags = frame[0];
  uint8_t gso = frame[1] & (uint8_t)~VNET_GSO_ECN;
  uint16_t gso_size = le16(frame + 4);
  uint16_t csum_start = le16(frame + 6);
  uint16_t csum_off = le16(frame + 8);
  const uint8_t *pkt = frame + VNET_HDR_LEN;
  size_t plen = len - VNET_HDR_LEN;
  if (plen == 0) return 0;
  if (plen > MAX_IP_PACKET) return -1;

  if (gso == VNET_GSO_NONE) {
    if (!(flags & VNET_F_NEEDS_CSUM)) {
      emit(ctx, pkt, plen);
      return 1;
    }
    /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum; sum from csum_start to the end */
    if ((size_t)csum_start + csum_off + 2 > plen) return -1;
    memcpy(scratch, pkt, plen);
    uint16_t c = (uint16_t)~offload_fold(offload_sum(scratch + csum_start, plen - csum_start, 0));
    if (c == 0 && csum_off == 6) c = 0xffff; /* UDP: zero means "no checksum" */
    put16(scratch + csum_start + csum_off, c);
    emit(ctx, scratch, plen);
    return 1;
  }
  if (gso != VNET_GSO_TCPV4 && gso != VNET_GSO_TCPV6) return -1;

  int v6 = (pkt[0] >> 4) == 6;
  if (v6 != (gso == VNET_GSO_TCPV6)) return -1;
  size_t l4 = csum_start;
  if (v6) {
    if (plen < 40 || l4 < 40) return -1;
  } else {
    if (plen < 20 || (size_t)((pkt[0] & 0x0f) * 4) != l4 || pkt[9] != 6) return -1;
  }
  if (l4 + 20 > plen) return -1;
  size_t tcphl = (size_t)((pkt[l4 + 12] >> 4) * 4);
  size_t hdrs = l4 + tcphl;
  if (tcphl < 20 || hdrs > plen || gso_size == 0) return -1;
  size_t payload = plen - hdrs;
  uint32_t seq = be32(pkt + l4 + 4);
  uint16_t id = v6 ? 0 : be16(pkt + 4);
  uint8_t tcp_flags = pkt[l4 + 13];
  int count = 0;
  size_t off = 0;
  do {
    size_t seg = payload - off < gso_size ? payload - off : gso_size;
    int first = off == 0;
    int last = off + seg >= payload;
    memcpy(scratch, pkt, hdrs);
    memcpy(scratch + hdrs, pkt + hdrs + off, seg);
    size_t total = hdrs + seg;
    if (v6) {
      put16(scratch + 4, (uint16_t)(total - 40));
    } else {
      put16(scratch + 2, (uint16_t)total);
      put16(scratch + 4, (uint16_t)(id + count));
      ipv4_fix_checksum(scratch, (int)l4);
    }
    uint8_t *tcp = scratch + l4;
    put32(tcp + 4, seq + (uint32_t)off);
    uint8_t f = tcp_flags;
    if (!last) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (!first) f &= (uint8_t)~TCP_CWR;
    tcp[13] = f;
    tcp_fix_checksum(scratch, v6, l4, total);
    count++;
    if (emit(ctx, scratch, total)) break;
    off += seg;
  } while (off < payload);
  return count;
}

/* A parsed TCP packet that could take part in coalescing. */
typedef struct {
  int v6;
  size_t l4, tcphl, hdrs, payload;
  uint32_t seq;
  uint8_t flags;
} tcp_view;

static int tcp_checksum_ok(const uint8_t *p, const tcp_view *v, size_t len) {
  uint32_t sum = pseudo_sum(p, v->v6, 6, (uint32_t)(len - v->l4));
  return offload_fold(offload_sum(p + v->l4, len - v->l4, sum)) == 0xffff;
}

static int parse_tcp(const uint8_t *p, size_t len, tcp_view *v) {
  if (len < 40) return 0;
  int version = p[0] >> 4;
  if (version == 4) {
    if ((p[0] & 0x0f) != 5 || p[9] != 6) return 0;
    if (be16(p + 2) != len) return 0;
    if ((be16(p + 6) & 0x3fff) != 0) return 0; /* MF or a fragment offset */
    v->v6 = 0;
    v->l4 = 20;
  } else if (version == 6) {
    if (p[6] != 6 || len < 60 || (size_t)be16(p + 4) + 40 != len) return 0;
    v->v6 = 1;
    v->l4 = 40;
  } else {
    return 0;
  }
  v->tcphl = (size_t)((p[v->l4 + 12] >> 4) * 4);
  v->hdrs = v->l4 + v->tcphl;
  if (v->tcphl < 20 || v->hdrs >= len) return 0; /* pure ACKs (no payload) are not coalesced */
  v->payload = len - v->hdrs;
  v->seq = be32(p + v->l4 + 4);
  v->flags = p[v->l4 + 13];
  if (v->flags != TCP_ACK && v->flags != (TCP_ACK | TCP_PSH)) return 0;
  return tcp_checksum_ok(p, v, len);
}

/* Same flow and same header fields that must match for the kernel's GRO to merge two segments. */
static int same_flow(const uint8_t *a, const tcp_view *va, const uint8_t *b, const tcp_view *vb) {
  if (va->v6 != vb->v6 || va->tcphl != vb->tcphl) return 0;
  if (va->v6) {
    if (memcmp(a, b, 4) != 0 || a[7] != b[7] || memcmp(a + 8, b + 8, 32) != 0) return 0;
  } else {
    if (a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || memcmp(a + 12, b + 12, 8) != 0) return 0;
  }
  const uint8_t *ta = a + va->l4, *tb = b + vb->l4;
  if (memcmp(ta, tb, 4) != 0) return 0;            /* ports */
  if (memcmp(ta + 8, tb + 8, 4) != 0) return 0;    /* ack number */
  if (memcmp(ta + 14, tb + 14, 2) != 0) return 0;  /* window */
  return memcmp(ta + 20, tb + 20, va->tcphl - 20) == 0; /* options, timestamps included */
}

int offload_group(const uint8_t *const *pkts, const size_t *lens, int n) {
  tcp_view first;
  if (n < 2 || !parse_tcp(pkts[0], lens[0], &first) || (first.flags & TCP_PSH)) return 1;
  size_t total = lens[0];
  uint32_t next_seq = first.seq + (uint32_t)first.payload;
  int count = 1;
  for (int i = 1; i < n && count < MAX_GROUP; i++) {
    tcp_view v;
    if (!parse_tcp(pkts[i], lens[i], &v) || !same_flow(pkts[0], &first, pkts[i], &v)) break;
    if (v.seq != next_seq || v.payload > first.payload) break;
    if (total + v.payload > MAX_IP_PACKET) break;
    total += v.payload;
    next_seq += (uint32_t)v.payload;
    count++;
    if (v.payload < first.payload || (v.flags & TCP_PSH)) break;
  }
  return count;
}

size_t offload_build(const uint8_t *const *pkts, const size_t *lens, int count, uint8_t *out) {
  memset(out, 0, VNET_HDR_LEN);
  if (count <= 1) {
    memcpy(out + VNET_HDR_LEN, pkts[0], lens[0]);
    return VNET_HDR_LEN + lens[0];
  }
  tcp_view v;
  parse_tcp(pkts[0], lens[0], &v);
  uint8_t *ip = out + VNET_HDR_LEN;
  memcpy(ip, pkts[0], lens[0]);
  size_t total = lens[0];
  uint8_t last_flags = v.flags;
  for (int i = 1; i < count; i++) {
    size_t pay = lens[i] - v.hdrs;
    memcpy(ip + total, pkts[i] + v.hdrs, pay);
    total += pay;
    last_flags = pkts[i][v.l4 + 13];
  }
  if (v.v6) {
    put16(ip + 4, (uint16_t)(total - 40));
  } else {
    put16(ip + 2, (uint16_t)total);
    ipv4_fix_checksum(ip, 20);
  }
  uint8_t *tcp = ip + v.l4;
  tcp[13] = (uint8_t)(v.flags | (last_flags & TCP_PSH));
  /* CHECKSUM_PARTIAL: the field holds the (uncomplemented) pseudo-header sum; the kernel sums the rest */
  put16(tcp + 16, offload_fold(pseudo_sum(ip, v.v6, 6, (uint32_t)(total - v.l4))));
  out[0] = VNET_F_NEEDS_CSUM;
  out[1] = v.v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
  putle16(out + 2, (uint16_t)v.hdrs);
  putle16(out + 4, (uint16_t)v.payload);
  putle16(out + 6, (uint16_t)v.l4);
  putle16(out + 8, 16);
  return VNET_HDR_LEN + total;
}
