import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from '../../tracker/store/redis-url.ts';

describe('parseRedisUrl', () => {
  it('reads one server from redis:// and rediss://', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379')).toEqual({ ok: true, target: { mode: 'single', url: 'redis://127.0.0.1:6379' } });
    expect(parseRedisUrl(' rediss://user:pw@cache.example:6380/2 ')).toEqual({ ok: true, target: { mode: 'single', url: 'rediss://user:pw@cache.example:6380/2' } });
  });

  it('reads a cluster from redis+cluster://host:port,host:port, with credentials and TLS', () => {
    expect(parseRedisUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002')).toEqual({
      ok: true,
      target: { mode: 'cluster', seeds: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: '::1', port: 7002 }], username: undefined, password: undefined, tls: false },
    });
    expect(parseRedisUrl('rediss+cluster://tracker:s%40cret@a.example:7000/')).toEqual({
      ok: true,
      target: { mode: 'cluster', seeds: [{ host: 'a.example', port: 7000 }], username: 'tracker', password: 's@cret', tls: true },
    });
    expect(parseRedisUrl('redis+cluster://:only-password@a:1')).toMatchObject({ ok: true, target: { username: undefined, password: 'only-password' } });
  });

  it('reads a cluster from comma-separated seed URLs', () => {
    expect(parseRedisUrl('redis://a:7000, redis://b:7001')).toEqual({
      ok: true,
      target: { mode: 'cluster', seeds: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }], username: undefined, password: undefined, tls: false },
    });
    expect(parseRedisUrl('rediss://u:p@a:7000,rediss://a:7001')).toMatchObject({ ok: true, target: { mode: 'cluster', username: 'u', password: 'p', tls: true } });
  });

  it.each([
    ['', 'empty'],
    ['localhost:6379', 'must be redis://'],
    ['http://a:1', 'must be redis://'],
    ['redis+cluster://', 'no empty entry'],
    ['redis+cluster://a:7000,,b:7001', 'no empty entry'],
    ['redis+cluster://a', '"a" is not host:port'],
    ['redis+cluster://a:0', 'out of range'],
    ['redis+cluster://a:70000', 'out of range'],
    ['redis+cluster://a:7000/1', 'no path or database'],
    ['redis://a:7000,', 'no empty entry'],
    ['redis://a:7000,b:7001', 'seed "b:7001" is not a redis://'],
    ['redis://a:7000,redis://b', 'needs host:port'],
    ['redis://a:7000,redis://b:7001/3', 'database'],
    ['redis://a:7000,rediss://b:7001', 'must all be redis:// or all rediss://'],
  ])('refuses %j with a clear reason', (input, reason) => {
    const parsed = parseRedisUrl(input);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).toContain(reason);
  });

  it('never repeats a password in its errors', () => {
    const parsed = parseRedisUrl('redis://a:7000,redis://user:hunter22@b/1');
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.error).not.toContain('hunter22');
  });
});
