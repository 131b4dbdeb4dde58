/**
 * UAPI requests (spec/wireguard.md §11) from a local client: `createUapiSession` fed byte streams
 * built from a grammar of get/set requests whose lines mix valid and broken keys and values, plus
 * raw garbage, split into arbitrary chunks.
 *
 * Contract: the session never rejects; every reply is `errno=N\n\n` or a well-formed get reply;
 * how the bytes are chunked changes nothing (same replies, same close, same device state); the
 * device stays consistent (a fresh `get=1` answers); and no private or preshared key value given in
 * a request ever appears in a log line (the get reply carries keys by design, logs never do).
 */
import fc from 'fast-check';
import { createUapiSession, formatGet } from '../../src/uapi/protocol.js';
import type { UapiLog } from '../../src/uapi/types.js';
import { FakeUapiDevice } from '../support/fake-uapi-device.js';
import { chunk } from './mutate.js';
import { expectThat, type FuzzTarget } from './target.js';

const hex = (n: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString('hex'));

/** A key value (64 hex) or something close to one. Marked so the check knows it is secret. */
const secretValueArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: hex(32) },
  { weight: 1, arbitrary: hex(32).map((h) => h.toUpperCase()) },
  { weight: 1, arbitrary: hex(32).map((h) => h.slice(0, 63)) },
  { weight: 1, arbitrary: hex(33) },
  { weight: 1, arbitrary: fc.tuple(hex(32), fc.integer({ min: 0, max: 63 }), fc.constantFrom('g', 'z', ' ', '=', '-')).map(([h, i, c]) => h.slice(0, i) + c + h.slice(i + 1)) },
  { weight: 1, arbitrary: fc.constant('0'.repeat(64)) },
);

const publicKeyArb: fc.Arbitrary<string> = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...Array.from({ length: 4 }, (_, i) => (i + 1).toString(16).repeat(64))) }, { weight: 1, arbitrary: hex(32) }, { weight: 1, arbitrary: fc.string({ maxLength: 70 }) });

const ipArb = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string({ maxLength: 20 }));
const endpointArb = fc.oneof(
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 70000 })).map(([a, p]) => `${a}:${p}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 70000 })).map(([a, p]) => `[${a}]:${p}`),
  fc.tuple(fc.ipV6(), fc.string({ maxLength: 6 }), fc.nat(65535)).map(([a, z, p]) => `[${a}%${z}]:${p}`),
  fc.tuple(ipArb, fc.string({ maxLength: 6 })).map(([a, p]) => `${a}:${p}`),
  fc.string({ maxLength: 40 }),
);
const numberArb = fc.oneof(fc.nat(70000).map(String), fc.constantFrom('0', '00025', '65535', '65536', '4294967295', '4294967296', '-1', '1e3', ' 1', ''), fc.string({ maxLength: 8 }));
const prefixArb = fc.oneof(
  fc.tuple(fc.ipV4(), fc.integer({ min: -1, max: 40 })).map(([a, n]) => `${a}/${n}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 140 })).map(([a, n]) => `${a}/${n}`),
  fc.tuple(fc.boolean(), fc.ipV4()).map(([neg, a]) => `${neg ? '-' : ''}${a}/32`),
  fc.string({ maxLength: 30 }),
);
const boolArb = fc.constantFrom('true', 'false', 'TRUE', '', '1');

/** One line of a set request, and the secret it carries (if any). */
type SetLine = { text: string; secret?: string };

const setLineArb: fc.Arbitrary<SetLine> = fc.oneof(
  { weight: 2, arbitrary: secretValueArb.map((v) => ({ text: `private_key=${v}`, secret: v })) },
  { weight: 3, arbitrary: secretValueArb.map((v) => ({ text: `preshared_key=${v}`, secret: v })) },
  { weight: 6, arbitrary: publicKeyArb.map((v) => ({ text: `public_key=${v}` })) },
  { weight: 1, arbitrary: numberArb.map((v) => ({ text: `listen_port=${v}` })) },
  { weight: 1, arbitrary: numberArb.map((v) => ({ text: `fwmark=${v}` })) },
  { weight: 1, arbitrary: boolArb.map((v) => ({ text: `replace_peers=${v}` })) },
  { weight: 3, arbitrary: endpointArb.map((v) => ({ text: `endpoint=${v}` })) },
  { weight: 2, arbitrary: numberArb.map((v) => ({ text: `persistent_keepalive_interval=${v}` })) },
  { weight: 1, arbitrary: boolArb.map((v) => ({ text: `replace_allowed_ips=${v}` })) },
  { weight: 4, arbitrary: prefixArb.map((v) => ({ text: `allowed_ip=${v}` })) },
  { weight: 1, arbitrary: boolArb.map((v) => ({ text: `update_only=${v}` })) },
  { weight: 1, arbitrary: boolArb.map((v) => ({ text: `remove=${v}` })) },
  { weight: 1, arbitrary: fc.constantFrom('1', '2', '').map((v) => ({ text: `protocol_version=${v}` })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }).filter((s) => !s.includes('\n')).map((text) => ({ text })) },
);

type Request = { bytes: string; secrets: string[] };

const requestArb: fc.Arbitrary<Request> = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('get=1\n\n', 'get=1\nx', 'get=1\n').map((bytes) => ({ bytes, secrets: [] })) },
  {
    weight: 6,
    arbitrary: fc.record({ lines: fc.array(setLineArb, { maxLength: 12 }), terminated: fc.boolean() }).map(({ lines, terminated }) => ({
      bytes: `set=1\n${lines.map((l) => `${l.text}\n`).join('')}${terminated ? '\n' : ''}`,
      secrets: lines.flatMap((l) => (l.secret ? [l.secret] : [])),
    })),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((bytes) => ({ bytes, secrets: [] })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => ({ bytes: Buffer.from(b).toString('latin1'), secrets: [] })) },
);

export interface UapiCase {
  requests: Request[];
  cuts: number[];
  end: boolean;
}

export const uapiCaseArb: fc.Arbitrary<UapiCase> = fc.record({
  requests: fc.array(requestArb, { minLength: 1, maxLength: 5 }),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
  end: fc.boolean(),
});

class RecordingLog implements UapiLog {
  readonly lines: string[] = [];
  debug(msg: string): void {
    this.lines.push(msg);
  }
  warn(msg: string): void {
    this.lines.push(msg);
  }
  error(msg: string): void {
    this.lines.push(msg);
  }
}

const REPLY = /^(errno=-?\d+\n\n|(?:[a-z_]+=[^\n]*\n)*errno=0\n\n)$/;

async function runSession(bytes: Uint8Array, cuts: number[], end: boolean): Promise<{ replies: string; closed: boolean; state: string; log: RecordingLog; device: FakeUapiDevice }> {
  const device = new FakeUapiDevice();
  const log = new RecordingLog();
  const session = createUapiSession(device, log);
  const replies: string[] = [];
  let closed = false;
  for (const part of chunk(bytes, cuts)) {
    const r = await session.push(part);
    for (const reply of r.replies) expectThat(REPLY.test(reply), () => `malformed UAPI reply ${JSON.stringify(reply.slice(0, 200))}`);
    replies.push(...r.replies);
    closed ||= r.close;
  }
  if (end) {
    const r = await session.end();
    replies.push(...r.replies);
    closed ||= r.close;
  }
  return { replies: replies.join(''), closed, state: formatGet(device.getState()), log, device };
}

export const uapiSessionTarget: FuzzTarget<UapiCase> = {
  name: 'uapi-session',
  description: 'createUapiSession: well-formed replies, chunking-invariant, device consistent, key values never logged',
  async: true,
  setup: () => undefined,
  arbitrary: () => uapiCaseArb,
  async check(_ctx, c) {
    const text = c.requests.map((r) => r.bytes).join('');
    const bytes = Buffer.from(text, 'utf8');
    const whole = await runSession(bytes, [], c.end);
    const split = await runSession(bytes, c.cuts, c.end);
    expectThat(whole.replies === split.replies, () => `replies depend on chunking: ${JSON.stringify(whole.replies.slice(0, 200))} vs ${JSON.stringify(split.replies.slice(0, 200))}`);
    expectThat(whole.closed === split.closed, 'close depends on chunking');
    expectThat(whole.state === split.state, 'device state depends on chunking');
    const secrets = c.requests.flatMap((r) => r.secrets).filter((s) => s.length >= 16 && !/^0+$/.test(s));
    for (const log of [whole.log, split.log]) {
      for (const line of log.lines) {
        for (const s of secrets) expectThat(!line.toLowerCase().includes(s.toLowerCase()), () => `a key value was logged: ${JSON.stringify(line)}`);
      }
    }
    // the device still answers a plain get
    const after = createUapiSession(whole.device);
    const r = await after.push('get=1\n\n');
    expectThat(r.replies.length === 1 && r.replies[0]!.endsWith('errno=0\n\n') && !r.close, 'a fresh get after the fuzz case did not answer');
  },
};
