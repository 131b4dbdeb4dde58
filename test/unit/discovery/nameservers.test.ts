/**
 * machine.network.nameservers: the discovery host name is resolved through the configured resolvers,
 * not the system's. A tiny DNS responder on loopback (written here, answering A queries) knows a name
 * the system resolver has never heard of; the client reaches the server through it, over plaintext and
 * over TLS with a certificate for that name (so the name, not the IP, is what TLS checks).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, eventually, startServer, testClient } from './support.js';
import { resolveWith } from '../../../src/discovery-client/client.js';
import type { DiscoveryServer } from '../../../src/discovery-server/index.js';

const NAME = 'discovery.kubespand-test';
let dns: dgram.Socket;
let dnsPort: number;
let queries: string[] = [];
let dir: string;

/** Answers A queries for NAME with 127.0.0.1, NXDOMAIN for everything else. */
function answer(query: Buffer): Buffer {
  const id = query.subarray(0, 2);
  let off = 12;
  const labels: string[] = [];
  while (query[off]! > 0) {
    labels.push(query.subarray(off + 1, off + 1 + query[off]!).toString());
    off += query[off]! + 1;
  }
  const qname = labels.join('.');
  const qtype = query.readUInt16BE(off + 1);
  const question = query.subarray(12, off + 5);
  queries.push(`${qname}/${qtype}`);
  const known = qname === NAME && qtype === 1;
  const header = Buffer.from([id[0]!, id[1]!, 0x81, known ? 0x80 : 0x83, 0, 1, 0, known ? 1 : 0, 0, 0, 0, 0]);
  if (qname === NAME && qtype !== 1) header[3] = 0x80; // NODATA for AAAA
  if (!known) return Buffer.concat([header, question]);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1]);
  return Buffer.concat([header, question, rr]);
}

beforeAll(async () => {
  dns = dgram.createSocket('udp4');
  dns.on('message', (msg, rinfo) => dns.send(answer(msg), rinfo.port, rinfo.address));
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', () => r()));
  dnsPort = dns.address().port;
  dir = mkdtempSync(join(tmpdir(), 'ksd-ns-'));
});

afterAll(() => {
  dns.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('discovery through configured nameservers', () => {
  it('resolves the host through the given resolvers only', async () => {
    await expect(resolveWith([`127.0.0.1:${dnsPort}`], NAME)).resolves.toEqual(['127.0.0.1']);
    await expect(resolveWith([`127.0.0.1:${dnsPort}`], 'unknown.kubespand-test')).rejects.toThrow(/cannot resolve unknown\.kubespand-test through nameservers 127\.0\.0\.1:\d+/);
  });

  it('connects over plaintext to a name only the configured resolver knows', async () => {
    let server: DiscoveryServer | undefined;
    let client;
    try {
      server = await startServer({ rateLimit: false });
      queries = [];
      client = testClient(server.port(), 'node-a', { endpoint: `http://${NAME}:${server.port()}`, nameservers: [`127.0.0.1:${dnsPort}`] });
      client.start();
      await eventually(() => expect(client!.state()).toBe('connected'), 10_000);
      expect(queries, JSON.stringify({ queries, err: client.lastError(), target: client.target() })).toContain(`${NAME}/1`);
    } finally {
      await cleanup(client, server);
    }
  });

  it('checks the TLS certificate against the name, not the resolved address', async () => {
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=ns test CA');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${NAME}`);
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=DNS:${NAME}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
    let server: DiscoveryServer | undefined;
    let client;
    try {
      server = await startServer({ rateLimit: false, tlsCert: join(dir, 'server.crt'), tlsKey: join(dir, 'server.key') });
      client = testClient(server.port(), 'node-b', { endpoint: `https://${NAME}:${server.port()}`, nameservers: [`127.0.0.1:${dnsPort}`], caFiles: [join(dir, 'ca.crt')] });
      client.start();
      await eventually(() => expect(client!.state()).toBe('connected'), 10_000);
    } finally {
      await cleanup(client, server);
    }
  });
});
