import { describe, expect, it } from 'vitest';
import {
  ExponentialBackoff,
  buildChannel,
  loadRootCerts,
  maskProxyUrl,
  matchesNoProxy,
  resolveProxy,
} from '../../../src/discovery-client/index.js';
import { normaliseEndpoint } from '../../../src/discovery/index.js';

describe('ExponentialBackoff (cenkalti defaults)', () => {
  it('0.5 s, ×1.5, ±50 % jitter, interval capped at 60 s, reset', () => {
    const lo = new ExponentialBackoff({}, () => 0);
    const hi = new ExponentialBackoff({}, () => 0.999999);
    const mid = new ExponentialBackoff({}, () => 0.5);
    expect([mid.next(), mid.next(), mid.next(), mid.next()]).toEqual([500, 750, 1125, 1688]);
    expect(lo.next()).toBe(250);
    expect(hi.next()).toBe(750);
    for (let i = 0; i < 30; i++) mid.next();
    expect(mid.intervalMs).toBe(60_000);
    expect(mid.next()).toBe(60_000);
    expect(lo.intervalMs).toBe(750);
    for (let i = 0; i < 30; i++) hi.next();
    expect(hi.next()).toBeLessThanOrEqual(90_000);
    mid.reset();
    expect(mid.next()).toBe(500);
  });
});

describe('proxy selection', () => {
  const tls = normaliseEndpoint('https://discovery.talos.dev/');
  const plain = normaliseEndpoint('http://10.1.2.3:3000');
  it('precedence: grpc_proxy > https_proxy (TLS only) > http_proxy; lower case before upper case', () => {
    expect(resolveProxy(tls, undefined, { HTTPS_PROXY: 'http://p1:3128', http_proxy: 'http://p2:3128' }).route?.address).toBe('p1:3128');
    expect(resolveProxy(tls, undefined, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' }).route?.address).toBe('lower:1');
    expect(resolveProxy(tls, undefined, { grpc_proxy: 'http://g:1', https_proxy: 'http://h:1' }).route?.address).toBe('g:1');
    expect(resolveProxy(tls, undefined, { http_proxy: 'proxy.corp:8080' }).route?.address).toBe('proxy.corp:8080');
    expect(resolveProxy(plain, undefined, { https_proxy: 'http://h:1' }).route).toBeUndefined();
    expect(resolveProxy(plain, undefined, { http_proxy: 'http://h:1' }).route?.address).toBe('h:1');
    expect(resolveProxy(tls, undefined, {}).route).toBeUndefined();
  });
  it('config keys win over the environment; an empty config value disables the proxy', () => {
    const env = { https_proxy: 'http://env:1' };
    expect(resolveProxy(tls, { https_proxy: 'http://cfg:2' }, env).route?.source).toBe('https_proxy (config https_proxy)');
    expect(resolveProxy(tls, { https_proxy: '' }, env).route).toBeUndefined();
    expect(resolveProxy(tls, { no_proxy: '.talos.dev' }, env).reason).toMatch(/direct.*config no_proxy/);
  });
  it('credentials go to Proxy-Authorization and are masked everywhere else', () => {
    const d = resolveProxy(tls, undefined, { https_proxy: 'http://user:s3cret@proxy:3128' });
    expect(d.route?.credentials).toBe('user:s3cret');
    expect(d.reason).not.toContain('s3cret');
    expect(d.route?.display).toBe('http://user:***@proxy:3128');
    expect(maskProxyUrl('http://u:p@h')).toBe('http://u:***@h');
    const ch = buildChannel(tls, { env: { https_proxy: 'http://user:s3cret@proxy:3128' }, keepaliveMs: 1 });
    expect(ch.address).toBe('dns:proxy:3128');
    expect(ch.options['grpc.http_connect_target']).toBe('dns:discovery.talos.dev:443');
    expect(ch.options['grpc.http_connect_creds']).toBe('user:s3cret');
    expect(ch.options['grpc.enable_http_proxy']).toBe(0);
    expect(ch.options['grpc.keepalive_time_ms']).toBe(10_000);
  });
  it('refuses non-http proxies, naming the key and masking the password', () => {
    expect(() => resolveProxy(tls, undefined, { https_proxy: 'https://u:pw@p:1' })).toThrow(
      /https_proxy: "https:\/\/u:\*\*\*@p:1" uses https; only http:\/\//,
    );
    expect(() => resolveProxy(tls, undefined, { https_proxy: 'socks5://p:1' })).toThrow(/socks5/);
  });
  it.each([
    ['*', 'anything.example', 443, true],
    ['talos.dev', 'discovery.talos.dev', 443, true],
    ['.talos.dev', 'discovery.talos.dev', 443, true],
    ['*.talos.dev', 'talos.dev', 443, true],
    ['talos.dev', 'nottalos.dev', 443, false],
    ['10.0.0.0/8', '10.1.2.3', 3000, true],
    ['10.0.0.0/8', '11.1.2.3', 3000, false],
    ['fd00::/8', 'fd00::5', 1, true],
    ['127.0.0.1', '127.0.0.1', 9, true],
    ['::1', '::1', 9, true],
    ['[::1]:9', '::1', 9, true],
    ['example.com:443', 'example.com', 443, true],
    ['example.com:443', 'example.com', 3000, false],
    ['foo, bar ,example.com', 'example.com', 1, true],
  ])('no_proxy %j vs %s:%d → %s', (list, host, port, expected) => {
    expect(matchesNoProxy(host, port, list)).toBe(expected);
  });
});

describe('trust store', () => {
  it('refuses unreadable or non-PEM CA files, naming caFiles[i] and the path', () => {
    expect(() => loadRootCerts(['/nonexistent/ca.pem'])).toThrow(/caFiles\[0\]: cannot read "\/nonexistent\/ca.pem": ENOENT/);
    expect(() => loadRootCerts(['/etc/hostname'])).toThrow(/caFiles\[0\]: "\/etc\/hostname" contains no PEM certificate/);
    expect(loadRootCerts([], '/nonexistent').toString()).toContain('BEGIN CERTIFICATE');
  });
});
