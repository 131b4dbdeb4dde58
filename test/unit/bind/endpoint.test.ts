import { describe, expect, it } from 'vitest';
import { canonicalAddress, endpointFamily, endpointKey, endpointsEqual, formatEndpoint, normalizeReceivedAddress, parseEndpoint } from '../../../src/bind/bind.js';

describe('parseEndpoint', () => {
  it.each([
    ['1.2.3.4:51820', '1.2.3.4', 51820],
    ['0.0.0.0:1', '0.0.0.0', 1],
    ['255.255.255.255:65535', '255.255.255.255', 65535],
    ['[fd00::1]:51820', 'fd00::1', 51820],
    ['[FD00:0:0:0:0:0:0:1]:51820', 'fd00::1', 51820], // canonical: lower case, zeros compressed
    ['[2001:db8:0:0:1:0:0:1]:443', '2001:db8::1:0:0:1', 443], // first of equal zero runs (RFC 5952)
    ['[2001:db8::0:1]:443', '2001:db8::1', 443],
    ['[::1]:7', '::1', 7],
    ['[::ffff:10.1.2.3]:51820', '10.1.2.3', 51820], // IPv4-mapped becomes IPv4
    ['[fe80::1%eth0]:51820', 'fe80::1%eth0', 51820],
  ])('%s', (text, address, port) => {
    expect(parseEndpoint(text)).toEqual({ address, port });
  });

  it.each([
    ['', /empty endpoint/],
    ['1.2.3.4', /has no ":port"/],
    ['1.2.3.4:', /invalid port ""/],
    ['1.2.3.4:0', /port 0 outside 1-65535/],
    ['1.2.3.4:65536', /port 65536 outside/],
    ['1.2.3.4:+80', /invalid port "\+80"/],
    ['1.2.3.4:123456', /invalid port/],
    ['1.2.3:80', /numeric IPv4/],
    ['01.2.3.4:80', /numeric IPv4/],
    ['example.com:51820', /DNS names are not accepted/],
    ['fd00::1:51820', /IPv6 endpoint without brackets/],
    ['[fd00::1:51820', /no closing "\]"/],
    ['[fd00::1]51820', /needs ":port" after "\]"/],
    ['[1.2.3.4]:80', /non-IPv6 address in brackets/],
    ['[fd00::zz]:80', /numeric IPv4 or \[IPv6\]/],
    ['[fe80::1%bad zone]:80', /numeric/],
  ])('rejects %j', (text, why) => {
    expect(() => parseEndpoint(text)).toThrow(why);
  });

  it('names the field and the value in errors', () => {
    expect(() => parseEndpoint('nope:1', 'peer 3 endpoint')).toThrow('peer 3 endpoint: "nope:1"');
  });
});

describe('formatEndpoint / endpointKey', () => {
  it('prints as wg does', () => {
    expect(formatEndpoint({ address: '1.2.3.4', port: 51820 })).toBe('1.2.3.4:51820');
    expect(formatEndpoint({ address: 'fd00::1', port: 51820 })).toBe('[fd00::1]:51820');
    expect(formatEndpoint({ address: 'fe80::1%eth0', port: 1 })).toBe('[fe80::1%eth0]:1');
  });

  it('round-trips through parseEndpoint', () => {
    for (const text of ['10.0.0.1:1', '[fd00::abcd]:65535', '[::]:9']) expect(formatEndpoint(parseEndpoint(text))).toBe(text);
  });

  it('gives equal keys to equal endpoints written differently', () => {
    expect(endpointKey(parseEndpoint('[FD00::0001]:5'))).toBe(endpointKey(parseEndpoint('[fd00:0::1]:5')));
    expect(endpointKey(parseEndpoint('[::ffff:1.2.3.4]:5'))).toBe(endpointKey(parseEndpoint('1.2.3.4:5')));
    expect(endpointKey({ address: '1.2.3.4', port: 5 })).not.toBe(endpointKey({ address: '1.2.3.4', port: 6 }));
    expect(endpointsEqual(parseEndpoint('[fd00::1]:5'), { address: 'fd00::1', port: 5 })).toBe(true);
    expect(endpointsEqual(parseEndpoint('[fd00::1]:5'), { address: 'fd00::1', port: 6 })).toBe(false);
  });

  it('knows the family', () => {
    expect(endpointFamily({ address: '1.2.3.4', port: 1 })).toBe(4);
    expect(endpointFamily({ address: '::1', port: 1 })).toBe(6);
  });
});

describe('canonicalAddress / normalizeReceivedAddress', () => {
  it('canonicalises', () => {
    expect(canonicalAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalAddress('fd00:0000::1')).toBe('fd00::1');
    expect(canonicalAddress('300.1.1.1')).toBeUndefined();
    expect(canonicalAddress('host')).toBeUndefined();
  });

  it('normalises IPv4-mapped sources from the kernel and leaves ordinary ones alone', () => {
    expect(normalizeReceivedAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeReceivedAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeReceivedAddress('fd00::1')).toBe('fd00::1');
    expect(normalizeReceivedAddress('::1.2.3.4')).toBe('::102:304');
  });
});
