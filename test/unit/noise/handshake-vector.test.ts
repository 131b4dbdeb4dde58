/**
 * The deterministic IKpsk2 handshake of spec/wireguard.md §13.3 (whose initiation real wireguard-go
 * accepted), reproduced byte for byte with each crypto provider, step by step as wireguard-go's
 * noise_test.go: chaining key and hash after each message, transport keys, and transport packets.
 */
import { describe, expect, it } from 'vitest';
import { nodeCrypto } from '../../../src/noise/crypto-node.js';
import { nobleCrypto } from '../../../src/noise/crypto-noble.js';
import { nativeCrypto } from '../../../src/noise/crypto-native.js';
import { bytesToHex, hexToBytes } from '../../../src/noise/bytes.js';
import { beginSession, consumeInitiation, consumeResponse, createInitiation, createResponse, initialChainKeyAndHash, precomputeStaticStatic } from '../../../src/noise/handshake.js';
import { CookieChecker, CookieGenerator, cookieKey, cookieSource, mac1Key } from '../../../src/noise/cookie.js';
import { paddedLength, parseMessage, type CookieReplyMessage, type InitiationMessage, type ResponseMessage } from '../../../src/noise/messages.js';
import { tai64n } from '../../../src/noise/tai64n.js';
import type { Random } from '../../../src/noise/clock.js';

const V = {
  iPriv: 'c80794b8e4a8dfad13c553dfbdc121b533f0f6e22e45a89937fe4666e43c3652',
  iPub: 'a3a0c8a0017900f53415cba639af2ac0b2c2f2c84365a5ad0a483d423c79e31f',
  rPriv: 'a0e493fb4105c0f1d5fdd0ad968be1d894b263389a93c0f2672719e882ae7454',
  rPub: '53cc8dd1fdf3c7ce81b7b15ad423f400223a002a1519d198ef1c041258f7f807',
  iEph: '500b2db6b020361f6c6c2d794f4362550e03d38dd6bc7de80db9f665c9c3d346',
  rEph: 'd870f38d29c13dd1ba304216a3561dfb91a6869fdc1277534ad4b22af54ccd49',
  iIndex: 0x2a3b4c5d,
  rIndex: 0x6e7f8091,
  timestamp: '400000006553f10a00000000',
  initiation:
    '01000000' + '5d4c3b2a' + 'a88bde599a869c5a6f0f443c0fc9f592e8caa565dc13f14156fa72ec00243500' +
    '03b6774d6441ff109f0f7d1c3f69470c8647fd198e73c79280053bb6079e046c148c1da4002930a2e6323aaa1b2f2d0f' +
    '1ea5323de80840c4b03d0a92db8fb02b714ca12cde152478cc35ff86' + 'a28a6d019f21cba656502d39a03d72da' + '00'.repeat(16),
  c1: '5665ddc1b748890fca336e5d214894c3ba5e5ef5556fbcfb78edf7de12885253',
  h1: '55cca3943f7da2c12b0b3c780c4e8ba7565c8855b1fea5314799334203adf450',
  response:
    '02000000' + '91807f6e' + '5d4c3b2a' + '3d9d1b608b2a320cbf1458b14cad07e8f5876c8a7736e6aab9f062b63542f75b' +
    'c19d722ed9ed2a749b49c5791d5ac3f6' + 'b11d80d997a2594f02182c274b8add5c' + '00'.repeat(16),
  c2: '8f3ba7e4fa7ffb2300448594c3303f1478f7ef644f8a148ef3ba63e93e826117',
  h2: '5276b3eaaffd3cd61c32b96c221a8b0c3aafe76e640867a6c61a3c92267028d3',
  t1: '502e86a16300cba2fceadb4e83cddd5ad07952c48bfe91470f64ee26cb9818ec',
  t2: 'c6b74a8d5cde968aeae213bf70fc4534481bc6517d6394b0e4cac69cb6e85912',
  keepalive: '0400000091807f6e0000000000000000' + 'c6f9d0b5b5459d8b4174e9fa8324bbcf',
  innerIcmp: '4500001c00000000400166df0a0000020a0000010800e5ca12340001',
  dataWire:
    '040000005d4c3b2a0000000000000000' + '642b973ba71600ec47ef8d1fcd955af4cdae2a0efc73d6dd987e39e751217c9d' + '00448d9f253cf1ff64c555b6a20f1416',
};

const h = hexToBytes;

for (const crypto of [nodeCrypto, nobleCrypto, nativeCrypto]) {
  describe(`IKpsk2 known-answer handshake (${crypto.name})`, () => {
    const initiator = { privateKey: h(V.iPriv), publicKey: h(V.iPub) };
    const responder = { privateKey: h(V.rPriv), publicKey: h(V.rPub) };

    it('has the protocol constants Ci and Hi', () => {
      const { chainKey, hash } = initialChainKeyAndHash(crypto);
      expect(bytesToHex(chainKey)).toBe('60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
      expect(bytesToHex(hash)).toBe('2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3');
    });

    it('derives public keys and the mac1/cookie keys', () => {
      expect(bytesToHex(crypto.publicKey(initiator.privateKey))).toBe(V.iPub);
      expect(bytesToHex(crypto.publicKey(responder.privateKey))).toBe(V.rPub);
      expect(bytesToHex(mac1Key(crypto, responder.publicKey))).toBe('da8119d3f3d44a53c21a69d7c760e6de6af1638860b13ac3f38f9bf51fbe5216');
      expect(bytesToHex(cookieKey(crypto, responder.publicKey))).toBe('3daabe206f0c48bd0835c0008abeede66ea24538590148ce8da137980b246b4b');
      expect(bytesToHex(tai64n(1_700_000_000_000))).toBe(V.timestamp);
    });

    function runHandshake(psk: Uint8Array | null) {
      const ss = precomputeStaticStatic(crypto, initiator.privateKey, responder.publicKey)!;
      const created = createInitiation(crypto, initiator, responder.publicKey, ss, h(V.iEph), V.iIndex, h(V.timestamp))!;
      new CookieGenerator(crypto, responder.publicKey).addMacs(created.message, 0);
      const parsedInit = parseMessage(created.message) as InitiationMessage;
      const ssR = precomputeStaticStatic(crypto, responder.privateKey, initiator.publicKey)!;
      const consumed = consumeInitiation(crypto, responder, parsedInit, (pub) => (bytesToHex(pub) === V.iPub ? { peer: 'I', staticStatic: ssR } : undefined));
      if (typeof consumed === 'string') throw new Error(consumed);
      const response = createResponse(crypto, consumed.consumed, psk, h(V.rEph), V.rIndex)!;
      new CookieGenerator(crypto, initiator.publicKey).addMacs(response.message, 0);
      const parsedResp = parseMessage(response.message) as ResponseMessage;
      const final = consumeResponse(crypto, initiator, created.state, psk, parsedResp);
      if (typeof final === 'string') throw new Error(final);
      return { created, consumed, response, final };
    }

    it('creates the exact initiation and both sides agree on C and H after message 1', () => {
      const { created, consumed } = runHandshake(null);
      expect(bytesToHex(created.message)).toBe(V.initiation);
      expect(bytesToHex(created.state.chainKey)).toBe(V.c1);
      expect(bytesToHex(created.state.hash)).toBe(V.h1);
      expect(consumed.peer).toBe('I');
      expect(bytesToHex(consumed.consumed.chainKey)).toBe(V.c1);
      expect(bytesToHex(consumed.consumed.hash)).toBe(V.h1);
      expect(bytesToHex(consumed.consumed.timestamp)).toBe(V.timestamp);
      expect(consumed.consumed.remoteIndex).toBe(V.iIndex);
    });

    it('creates the exact response, agrees on C and H after message 2, and splits T1/T2', () => {
      const { response, final } = runHandshake(null);
      expect(bytesToHex(response.message)).toBe(V.response);
      expect(bytesToHex(response.chainKey)).toBe(V.c2);
      expect(bytesToHex(response.hash)).toBe(V.h2);
      expect(bytesToHex(final.chainKey)).toBe(V.c2);
      expect(bytesToHex(final.hash)).toBe(V.h2);
      expect(final.remoteIndex).toBe(V.rIndex);
      const i = beginSession(crypto, final.chainKey, true);
      const r = beginSession(crypto, response.chainKey, false);
      expect(bytesToHex(i.sendKey)).toBe(V.t1);
      expect(bytesToHex(i.receiveKey)).toBe(V.t2);
      expect(bytesToHex(r.receiveKey)).toBe(V.t1);
      expect(bytesToHex(r.sendKey)).toBe(V.t2);
    });

    it('encrypts the keepalive and the ICMP data packet exactly', () => {
      const i = crypto.aead(h(V.t1));
      const keepalive = i.seal(0, new Uint8Array(0));
      expect(bytesToHex(keepalive)).toBe(V.keepalive.slice(32));
      const inner = h(V.innerIcmp);
      expect(paddedLength(inner.length, 1420)).toBe(32);
      const padded = new Uint8Array(32);
      padded.set(inner);
      const r = crypto.aead(h(V.t2));
      expect(bytesToHex(r.seal(0, padded))).toBe(V.dataWire.slice(32));
      const opened = crypto.aead(h(V.t2)).open(0, h(V.dataWire).subarray(16));
      expect(opened && bytesToHex(opened.subarray(0, 28))).toBe(V.innerIcmp);
    });

    it('with a preshared key: initiation unchanged, response and keys as the vector', () => {
      const psk = h('6d1854a6dcf942a435753f169c040376577c6f439cd7491b2a326a545d9a0123');
      const { created, response, final } = runHandshake(psk);
      expect(bytesToHex(created.message)).toBe(V.initiation);
      expect(bytesToHex(response.message.subarray(44, 60))).toBe('dc6b8f839dbf45c81567af2f3e8a509a');
      expect(bytesToHex(response.message.subarray(60, 76))).toBe('0bd7266d369d3a9dd1e45fe3aae68931');
      const keys = beginSession(crypto, final.chainKey, true);
      expect(bytesToHex(keys.sendKey)).toBe('4399a653ab52cf17065f0463b82dc90176c9f80cbad2688ba0c573139c070141');
      expect(bytesToHex(keys.receiveKey)).toBe('5da90cfaf0e3feee5b89ecc9b1dcba00b370e7ca94598e94e003fd019832f185');
      expect(bytesToHex(crypto.aead(keys.sendKey).seal(0, new Uint8Array(0)))).toBe('418b6886aad8f886b685d14a44ef0f8e');
    });

    it('makes and consumes the cookie reply of the vector, and mac2 from the cookie', () => {
      const { created } = runHandshake(null);
      const secret = h('f6c24d63643e8f97b72b88cea5407241d0b80840522a2ce5a916b22363552e51');
      const nonce = h('000102030405060708090a0b0c0d0e0f1011121314151617');
      const fills = [secret, nonce];
      const scripted: Random = { fill: (out) => (out.set(fills.shift()!), out), u32: () => 0 };
      const checker = new CookieChecker(crypto, scripted);
      checker.init(responder.publicKey);
      const source = cookieSource(h('c0000201'), 51820);
      expect(bytesToHex(source)).toBe('c00002016cca');
      const reply = checker.createReply(created.message, V.iIndex, source, 0)!;
      expect(bytesToHex(reply)).toBe('030000005d4c3b2a' + '000102030405060708090a0b0c0d0e0f1011121314151617' + '3fbedb92e689a249149c75e0fea085966fc8f83509300b249176c2df1ab3d1ad');
      // the initiator consumes it and its next initiation carries the vector's mac2
      const gen = new CookieGenerator(crypto, responder.publicKey);
      const msg = created.message.slice();
      gen.addMacs(msg, 0);
      expect(gen.consumeReply(parseMessage(reply) as CookieReplyMessage, 0)).toBe(true);
      gen.addMacs(msg, 1000);
      expect(bytesToHex(msg.subarray(132))).toBe('1f4172471b0eab250d56b16094a7d3f6');
      expect(checker.checkMac1(msg)).toBe(true);
      expect(checker.checkMac2(msg, source, 1000)).toBe(true);
      expect(checker.checkMac2(msg, cookieSource(h('c0000202'), 51820), 1000)).toBe(false);
      // cookies expire after 120 s
      expect(checker.checkMac2(msg, source, 120_000)).toBe(false);
    });
  });
}
