#!/usr/bin/env node
// Test helper, run inside a network namespace by test/netns/tun.test.ts:
//   node tun-echo.mjs <ifname> <v4 cidr> <v6 cidr> [mtu]
// Opens a TUN with the built native addon only (no project TypeScript), gives it the addresses,
// and answers every ICMP/ICMPv6 echo request it reads by writing the reply back into the TUN, so
// `ping <another address in the prefix>` gets answers through the poll-driven reader and the writer.
// Prints "ready <name>" when configured, "closed <code> <message>" when the reader reports an error
// (the interface was deleted), and exits 0 after that or on SIGTERM.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const native = require(fileURLToPath(new URL('../../build/Release/kubespand_native.node', import.meta.url)));

const [ifname, cidr4, cidr6, mtuText] = process.argv.slice(2);
if (!ifname || !cidr4 || !cidr6) {
  console.error('usage: tun-echo.mjs <ifname> <v4 cidr> <v6 cidr> [mtu]');
  process.exit(2);
}

// RFC 1071 sum over bytes, starting from an unfolded partial sum
function sum16(bytes, sum = 0) {
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[bytes.length - 1] << 8;
  return sum;
}
function checksum(bytes, initial = 0) {
  let s = sum16(bytes, initial);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
function putU16(b, at, v) {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}

// An echo reply for an echo request, or null: addresses swapped, type changed, checksums redone.
function replyFor(packet) {
  const version = packet[0] >> 4;
  if (version === 4) {
    const ihl = (packet[0] & 0x0f) * 4;
    const total = (packet[2] << 8) | packet[3];
    if (packet[9] !== 1 || packet.length < total || total < ihl + 8 || packet[ihl] !== 8) return null;
    const r = Buffer.from(packet.subarray(0, total));
    r.copy(r, 12, 16, 20); // dst -> src (the source's old bytes are still in `packet`)
    Buffer.from(packet.subarray(12, 16)).copy(r, 16);
    r[8] = 64;
    putU16(r, 10, 0);
    putU16(r, 10, checksum(r.subarray(0, ihl)));
    r[ihl] = 0; // echo reply
    putU16(r, ihl + 2, 0);
    putU16(r, ihl + 2, checksum(r.subarray(ihl)));
    return r;
  }
  if (version === 6) {
    const payload = (packet[4] << 8) | packet[5];
    if (packet[6] !== 58 || packet.length < 40 + payload || payload < 8 || packet[40] !== 128) return null;
    const r = Buffer.from(packet.subarray(0, 40 + payload));
    Buffer.from(packet.subarray(24, 40)).copy(r, 8);
    Buffer.from(packet.subarray(8, 24)).copy(r, 24);
    r[7] = 64;
    r[40] = 129; // echo reply
    putU16(r, 42, 0);
    const pseudo = sum16(r.subarray(8, 40)) + payload + 58;
    putU16(r, 42, checksum(r.subarray(40), pseudo));
    return r;
  }
  return null;
}

const { fd, name } = native.tunOpen(ifname);
const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
ip('link', 'set', 'dev', name, 'mtu', mtuText ?? '1420');
ip('-4', 'addr', 'add', cidr4, 'dev', name);
ip('-6', 'addr', 'add', cidr6, 'dev', name);
ip('link', 'set', 'dev', name, 'up');

let replies = 0;
let batches = 0;
const reader = native.tunReaderStart(fd, 64, 65535, (packets, err) => {
  if (packets === null) {
    console.log(`closed ${err?.code} ${err?.message}`);
    native.closeFd(fd);
    process.exit(0);
  }
  batches++;
  const out = [];
  for (const p of packets) {
    const r = replyFor(p);
    if (r) out.push(r);
  }
  if (out.length === 1) {
    const n = native.tunWrite(fd, out[0]);
    if (n !== out[0].length) console.log(`write failed ${n}`);
    else replies++;
  } else if (out.length > 1) {
    replies += native.tunWriteBatch(fd, out);
  }
  if (out.length > 0) console.log(`replied ${replies} batches ${batches}`);
});

process.on('SIGTERM', () => {
  native.tunReaderStop(reader);
  native.tunReaderStop(reader); // twice is harmless
  native.closeFd(fd);
  console.log('stopped');
  process.exit(0);
});
console.log(`ready ${name}`);
