/**
 * EtcdGateway against a stand-in of etcd's v3 JSON gateway on loopback (the real etcd is exercised
 * in test/netns/vip.test.ts): request shapes, int64-as-string fields, endpoint fail-over, etcd
 * errors vs transport errors, revoke of a missing lease, and the watch stream.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdError, EtcdGateway } from '../../../src/vip/etcd-gateway.js';

type Handler = (path: string, body: Record<string, unknown>, res: ServerResponse) => void;
const servers: Server[] = [];
const clients: EtcdGateway[] = [];
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.closeAllConnections(), s.close(r)))));
});

async function fakeEtcd(handler: Handler): Promise<{ url: string; requests: { path: string; body: Record<string, unknown> }[] }> {
  const requests: { path: string; body: Record<string, unknown> }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(text || '{}') as Record<string, unknown>;
      requests.push({ path: req.url!, body });
      handler(req.url!, body, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const b64 = (s: string) => Buffer.from(s).toString('base64');

function client(endpoints: string[]): EtcdGateway {
  const c = new EtcdGateway({ endpoints, requestTimeoutMs: 2_000 });
  clients.push(c);
  return c;
}

describe('EtcdGateway', () => {
  it('grant, keepalive, campaign won and lost, with the gateway JSON shapes', async () => {
    const etcd = await fakeEtcd((path, body, res) => {
      if (path === '/v3/lease/grant') return json(res, 200, { header: { revision: '1' }, ID: '7587869349187946000', TTL: String(body.TTL) });
      if (path === '/v3/lease/keepalive') return json(res, 200, { result: { header: {}, ID: body.ID, TTL: '3' } });
      if (path === '/v3/kv/txn') {
        const put = (body.success as { request_put: { value: string; lease: string } }[])[0]!.request_put;
        if (Buffer.from(put.value, 'base64').toString() === 'n1') return json(res, 200, { header: { revision: '12' }, succeeded: true, responses: [{ response_put: {} }] });
        return json(res, 200, { header: { revision: '13' }, responses: [{ response_range: { kvs: [{ key: b64('/k'), value: b64('n1'), lease: '42', create_revision: '12' }], count: '1' } }] });
      }
      json(res, 404, { error: 'not found', code: 5 });
    });
    const c = client([etcd.url]);
    expect(await c.grant(3)).toBe('7587869349187946000'); // int64 ids stay exact strings
    expect(await c.keepAlive('7587869349187946000')).toBe(3);
    expect(await c.campaign('/k', 'n1', '7587869349187946000')).toEqual({ won: true, owner: 'n1', ownerLease: '7587869349187946000', revision: '12' });
    expect(await c.campaign('/k', 'n2', '99')).toEqual({ won: false, owner: 'n1', ownerLease: '42', revision: '13' });
    const txn = etcd.requests.find((r) => r.path === '/v3/kv/txn')!.body;
    expect(txn).toEqual({
      compare: [{ key: b64('/k'), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: b64('/k'), value: b64('n1'), lease: '7587869349187946000' } }],
      failure: [{ request_range: { key: b64('/k') } }],
    });
    expect(etcd.requests[0]).toEqual({ path: '/v3/lease/grant', body: { TTL: '3' } });
  });

  it('a lease that is gone: keepalive answers TTL 0, revoke is not an error', async () => {
    const etcd = await fakeEtcd((path, body, res) => {
      if (path === '/v3/lease/keepalive') return json(res, 200, { result: { header: {}, ID: body.ID } });
      json(res, 404, { error: 'etcdserver: requested lease not found', message: 'etcdserver: requested lease not found', code: 5 });
    });
    const c = client([etcd.url]);
    expect(await c.keepAlive('5')).toBe(0);
    await expect(c.revoke('5')).resolves.toBeUndefined();
  });

  it('an etcd error answer is an EtcdError naming the endpoint and call; it does not fail over', async () => {
    const a = await fakeEtcd((_p, _b, res) => json(res, 503, { error: 'etcdserver: no leader', message: 'etcdserver: no leader', code: 14 }));
    const b = await fakeEtcd((_p, _b, res) => json(res, 200, { ID: '1', TTL: '3' }));
    const c = client([a.url, b.url]);
    const err = await c.grant(3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdError);
    expect((err as EtcdError).code).toBe(14);
    expect((err as Error).message).toBe(`etcd ${a.url} /v3/lease/grant: etcdserver: no leader`);
    expect(b.requests).toEqual([]);
  });

  it('a dead endpoint fails over to the next and sticks with the one that answered', async () => {
    const dead = await fakeEtcd(() => undefined);
    const deadUrl = dead.url;
    await new Promise((r) => servers.pop()!.close(r)); // nothing listens there now
    const live = await fakeEtcd((_p, _b, res) => json(res, 200, { ID: '9', TTL: '3' }));
    const c = client([deadUrl, live.url]);
    expect(await c.grant(3)).toBe('9');
    expect(await c.grant(3)).toBe('9');
    expect(live.requests.length).toBe(2);
    const none = client([deadUrl]);
    await expect(none.grant(3)).rejects.toThrow(new RegExp(`^etcd ${deadUrl} /v3/lease/grant: .*ECONNREFUSED`));
  });

  it('watch resolves on the first event, from the revision after the one given, and on timeout or abort', async () => {
    let streamRes: ServerResponse | undefined;
    const etcd = await fakeEtcd((path, _b, res) => {
      if (path !== '/v3/watch') return json(res, 404, {});
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ result: { header: {}, created: true } })}\n`);
      streamRes = res;
    });
    const c = client([etcd.url]);
    const ctl = new AbortController();
    let done = false;
    const w = c.watch('/k', '41', 5_000, ctl.signal).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false); // "created" is not a change
    expect(etcd.requests[0]).toEqual({ path: '/v3/watch', body: { create_request: { key: b64('/k'), start_revision: '42' } } });
    streamRes!.write(`${JSON.stringify({ result: { header: {}, events: [{ type: 'DELETE', kv: { key: b64('/k') } }] } })}\n`);
    await w;
    const t0 = Date.now();
    await c.watch('/k', '50', 200, ctl.signal);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    const aborted = c.watch('/k', '50', 5_000, ctl.signal);
    ctl.abort();
    await expect(aborted).resolves.toBeUndefined();
  });

  it('names the TLS file it cannot read and refuses an empty endpoint list', () => {
    expect(() => new EtcdGateway({ endpoints: ['https://127.0.0.1:2379'], caFile: '/nonexistent/ca.pem' })).toThrow('kubespand.etcd.caFile: cannot read /nonexistent/ca.pem: ENOENT');
    expect(() => new EtcdGateway({ endpoints: [] })).toThrow('kubespand.etcd.endpoints: no etcd endpoint given');
  });
});
