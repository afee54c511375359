import { fastify, type FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { TRUST_NO_PROXY, addressGroup, clientAddress, parseTrustProxy, type ProxyTrust } from '../../tracker/index.ts';

function trustOf(text: string): ProxyTrust {
  const parsed = parseTrustProxy(text);
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.trust;
}

/** A bare fastify app whose `request.ip` is what proxy-addr makes of `trustProxy`. */
function ipEcho(trustProxy: string | string[] | ProxyTrust | undefined): FastifyInstance {
  const app = fastify(trustProxy === undefined ? {} : { trustProxy });
  app.get('/', async (request) => ({ ip: request.ip }));
  return app;
}

const apps: FastifyInstance[] = [];
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
});

describe('parseTrustProxy', () => {
  it('takes addresses, CIDRs and proxy-addr names; empty trusts none', () => {
    expect(parseTrustProxy(undefined)).toMatchObject({ ok: true, trust: TRUST_NO_PROXY });
    expect(parseTrustProxy(' , ')).toMatchObject({ ok: true, trust: TRUST_NO_PROXY });
    const trust = trustOf('10.1.2.3, 192.168.0.0/16,fd00::/8 , loopback');
    for (const address of ['10.1.2.3', '192.168.77.1', 'fd12::1', '127.0.0.9', '::1', '::ffff:10.1.2.3', '::ffff:127.0.0.1']) expect(trust(address, 0), address).toBe(true);
    for (const address of ['10.1.2.4', '192.169.0.1', 'fe80::1', '::2', 'garbage', '', '::ffff:10.1.2.4']) expect(trust(address, 0), address).toBe(false);
    const named = trustOf('uniquelocal,linklocal');
    for (const address of ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', 'fc00::1', '169.254.1.1', 'fe80::1']) expect(named(address, 0), address).toBe(true);
    for (const address of ['172.32.0.1', '127.0.0.1', '8.8.8.8', '2001:db8::1']) expect(named(address, 0), address).toBe(false);
  });

  it('lists every bad entry', () => {
    const parsed = parseTrustProxy('10.0.0.0/33,proxy.example,10.0.0.0/8,::/0,1.2.3.4/255.0.0.0,true');
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.errors).toHaveLength(5);
    expect(parsed.errors.join('\n')).toMatch(/10\.0\.0\.0\/33[\s\S]*proxy\.example[\s\S]*::\/0[\s\S]*255\.0\.0\.0[\s\S]*true/);
  });
});

describe('clientAddress', () => {
  it('ignores X-Forwarded-For when no proxy is trusted', () => {
    expect(clientAddress('198.51.100.7', '203.0.113.1', TRUST_NO_PROXY)).toBe('198.51.100.7');
    expect(clientAddress('127.0.0.1', '203.0.113.1, 127.0.0.1', TRUST_NO_PROXY)).toBe('127.0.0.1');
    // A proxy that is not in the list is the client, whatever it forwards.
    expect(clientAddress('198.51.100.7', '203.0.113.1', trustOf('10.0.0.0/8'))).toBe('198.51.100.7');
  });

  it('steps left through trusted proxies only: a client cannot push its own entry past a trusted hop', () => {
    const trust = trustOf('10.0.0.0/8');
    // nginx appends the address it saw: "what the client sent, the client".
    expect(clientAddress('10.0.0.5', '203.0.113.66, 198.51.100.7', trust)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.5', '203.0.113.66, 198.51.100.7, 10.0.0.9', trust)).toBe('198.51.100.7');
    expect(clientAddress('10.0.0.5', '10.0.0.9', trust)).toBe('10.0.0.9');
    expect(clientAddress('10.0.0.5', undefined, trust)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', ['203.0.113.1'], trust)).toBe('10.0.0.5');
    expect(clientAddress(undefined, '203.0.113.1', trust)).toBe('unknown');
  });

  it('names the same client as fastify request.ip (proxy-addr) with the same list, on every case', async () => {
    const lists = ['127.0.0.1', '10.0.0.0/8,::1', 'loopback,uniquelocal', '192.168.0.0/16, 2001:db8::/32'];
    const sockets = ['127.0.0.1', '10.2.3.4', '::1', '192.168.5.5', '2001:db8::5', '203.0.113.9', '::ffff:10.9.9.9', '::ffff:127.0.0.1'];
    const headers = [
      undefined,
      '',
      '198.51.100.1',
      ' 198.51.100.1 ,\t10.0.0.7 ',
      '198.51.100.1, 127.0.0.1, 10.1.1.1',
      '2001:db8::9, 10.0.0.1',
      'not-an-ip, 10.0.0.1',
      ',,198.51.100.2,, ,',
      '198.51.100.3, 192.168.1.1, ::1',
      '::ffff:10.0.0.3, 10.0.0.4',
    ];
    let cases = 0;
    for (const list of lists) {
      const ours = trustOf(list);
      const theirs = ipEcho(list.split(',').map((entry) => entry.trim()));
      const oursInFastify = ipEcho(ours);
      apps.push(theirs, oursInFastify);
      for (const remoteAddress of sockets) {
        for (const header of headers) {
          const request = { method: 'GET' as const, url: '/', remoteAddress, headers: header === undefined ? {} : { 'x-forwarded-for': header } };
          const expected = (await theirs.inject(request)).json<{ ip: string }>().ip;
          const context = `${list} | ${remoteAddress} | ${String(header)}`;
          expect(clientAddress(remoteAddress, header, ours), context).toBe(expected);
          expect((await oursInFastify.inject(request)).json<{ ip: string }>().ip, context).toBe(expected);
          cases++;
        }
      }
    }
    expect(cases).toBe(lists.length * sockets.length * headers.length);
  });
});

describe('addressGroup', () => {
  it('keeps an IPv4 address as it is, and counts an IPv4-mapped IPv6 address as that IPv4 address', () => {
    for (const [address, group] of [
      ['203.0.113.5', '203.0.113.5'],
      ['127.0.0.1', '127.0.0.1'],
      ['::ffff:203.0.113.5', '203.0.113.5'],
      ['::FFFF:203.0.113.5', '203.0.113.5'],
      ['0:0:0:0:0:ffff:203.0.113.5', '203.0.113.5'],
      ['::ffff:cb00:7105', '203.0.113.5'],
      ['0000:0000:0000:0000:0000:ffff:cb00:7105', '203.0.113.5'],
      ['::ffff:127.0.0.1', '127.0.0.1'],
    ]) {
      expect(addressGroup(address!), address).toBe(group);
    }
  });

  it('groups IPv6 by /64, in every spelling of the same address', () => {
    const group = '2001:db8:1:2::/64';
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:0DB8:0001:0002:0000:0000:0000:0001', '2001:db8:1:2:a:b:c:d', '2001:db8:1:2:0:0:1.2.3.4']) {
      expect(addressGroup(address), address).toBe(group);
    }
    expect(addressGroup('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(addressGroup('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressGroup('2001:db8::1:0:0:0:1')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('::')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    // Not mapped: ::ffff:0:a.b.c.d (SIIT) and ::a.b.c.d (deprecated compatible) are IPv6 in ::/64.
    expect(addressGroup('::ffff:0:203.0.113.5')).toBe('0:0:0:0::/64');
    expect(addressGroup('::203.0.113.5')).toBe('0:0:0:0::/64');
  });

  it('keeps what is no address as itself, cut at 64 characters', () => {
    expect(addressGroup('unknown')).toBe('unknown');
    expect(addressGroup('x'.repeat(500))).toBe('x'.repeat(64));
    expect(addressGroup('2001:db8::1::2')).toBe('2001:db8::1::2');
  });

  it('gives 2^64 addresses of one /64 one group and neighbouring /64s different ones', () => {
    const groups = new Set<string>();
    for (let index = 0; index < 1000; index++) {
      const random = () => Math.floor(Math.random() * 0x10000).toString(16);
      groups.add(addressGroup(`2001:db8:aa:bb:${random()}:${random()}:${random()}:${random()}`));
    }
    expect([...groups]).toEqual(['2001:db8:aa:bb::/64']);
    const neighbours = new Set(Array.from({ length: 256 }, (_, index) => addressGroup(`2001:db8:aa:${index.toString(16)}::1`)));
    expect(neighbours.size).toBe(256);
  });
});
