/**
 * The config fuzz targets parse each text once: the secrets that must not be echoed are read from the
 * document the parser under test built and checked, not from a second parse with yaml's defaults.
 * That is only as strong as before if both give the same strings, before and after the check ran.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { parseWireguardConfigYaml, readWireguardConfigYaml } from '../../../src/config/wireguard-config.js';
import { parseNodeConfigYaml, readNodeConfigYaml } from '../../../src/kubespan/config.js';
import { secretsInDocument, secretsOfDocument } from '../../fuzz/config-targets.js';
import { applyMutation, mutationArb } from '../../fuzz/mutate.js';
import { fuzzRuns, fuzzSeed } from './fuzz-env.js';

const SECRET_KEY = /secret|private|password|psk/i;
const KEY = 'YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU=';

const nodeText = stringifyYaml({
  cluster: { id: 'c', secret: KEY, discovery: { enabled: true } },
  machine: { network: { kubespan: { enabled: true, mtu: 1420 } }, env: { http_proxy: 'http://u:Pabcdef0123456789@proxy:3128' } },
  kubespand: { nodeName: 'n1', listenPort: 51820 },
});
const upText = stringifyYaml({
  interface: 'ksfz0',
  wireguard: { privateKey: KEY, peers: [{ publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', presharedKey: KEY, allowedIPs: ['10.0.0.2/32'] }] },
});

/** Mutated config texts, a few hand-written odd documents, and arbitrary text. */
const textArb = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(nodeText, upText), mutationArb).map(([t, m]) => Buffer.from(applyMutation(Buffer.from(t), m)).toString('utf8')) },
  { weight: 1, arbitrary: fc.constantFrom('secret: &a ' + KEY + '\nprivate: *a\n', 'secret: |\n  ' + KEY + '\n  more text here\n', '? [a]\n: b\n', 'psk: *missing\n', 'a: b\na: c\nsecret: 0123456789abcdef\n', '---\nsecret: 0123456789abcdef\n---\n') },
  { weight: 1, arbitrary: fc.string({ maxLength: 120 }) },
);

describe('config fuzz targets: secrets read from the parsed document', () => {
  it('node config: the parser’s own document yields the secrets of a fresh default parse, before and after the check', () => {
    let withSecrets = 0;
    fc.assert(
      fc.property(textArb, (text) => {
        const fresh = secretsInDocument(text, SECRET_KEY);
        const yaml = readNodeConfigYaml(text);
        expect(secretsOfDocument(yaml.doc, SECRET_KEY)).toEqual(fresh);
        try {
          parseNodeConfigYaml(yaml, 'node.yaml');
        } catch {
          // problems are what the fuzz target judges; here only the document matters
        }
        expect(secretsOfDocument(yaml.doc, SECRET_KEY)).toEqual(fresh);
        if (fresh.length > 0) withSecrets++;
      }),
      { numRuns: fuzzRuns(400), seed: fuzzSeed() },
    );
    // the comparison is not vacuous: many texts still carry a secret
    expect(withSecrets).toBeGreaterThan(50);
  });

  it('up config: the same', () => {
    let withSecrets = 0;
    fc.assert(
      fc.property(textArb, (text) => {
        const fresh = secretsInDocument(text, SECRET_KEY);
        const yaml = readWireguardConfigYaml(text);
        expect(secretsOfDocument(yaml.doc, SECRET_KEY)).toEqual(fresh);
        try {
          parseWireguardConfigYaml(yaml, 'fuzz.yaml');
        } catch {
          // as above
        }
        expect(secretsOfDocument(yaml.doc, SECRET_KEY)).toEqual(fresh);
        if (fresh.length > 0) withSecrets++;
      }),
      { numRuns: fuzzRuns(400), seed: fuzzSeed() },
    );
    expect(withSecrets).toBeGreaterThan(50);
  });
});
