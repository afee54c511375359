import { describe, expect, it } from 'vitest';
import { ConfigError, loadServerConfig } from '../../bin/config.ts';
import { TRUST_NO_PROXY } from '../../tracker/index.ts';

describe('loadServerConfig', () => {
  it('uses embedded defaults on a fresh machine', () => {
    const config = loadServerConfig([], {}, '/srv/app');
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      dataDir: '/srv/app/data',
      filesDir: '/srv/app/data/files',
      serverUrl: 'http://127.0.0.1:8080',
      publicUrl: 'http://127.0.0.1:8080',
      signingKeys: undefined,
      redisUrl: undefined,
      s3: undefined,
      urlTtlSeconds: 3600,
    });
  });

  it('prefers flags over environment over defaults', () => {
    const config = loadServerConfig(['--port', '9000'], { PEERFILL_PORT: '7000', PEERFILL_DATA_DIR: 'state', PEERFILL_PUBLIC_URL: 'https://cdn.example/' }, '/srv');
    expect(config.port).toBe(9000);
    expect(config.dataDir).toBe('/srv/state');
    expect(config.publicUrl).toBe('https://cdn.example');
    expect(config.serverUrl).toBe('http://127.0.0.1:9000');
  });

  it('takes --tls-cert and --tls-key (or PEERFILL_TLS_*), relative to the working folder, and makes the default URLs https://', () => {
    const config = loadServerConfig(['--tls-cert', 'tls/cert.pem', '--workers', '2'], { PEERFILL_TLS_KEY: '/etc/pf/key.pem' }, '/srv');
    expect(config.tls).toEqual({ certPath: '/srv/tls/cert.pem', keyPath: '/etc/pf/key.pem' });
    expect(config.serverUrl).toBe('https://127.0.0.1:8080');
    expect(config.publicUrl).toBe('https://127.0.0.1:8081');
    expect(loadServerConfig([], {}, '/srv').tls).toBeUndefined();
    expect(() => loadServerConfig([], { PEERFILL_TLS_CERT: 'cert.pem' }, '/srv')).toThrow(/--tls-cert and --tls-key .* go together/);
  });

  it('reads rotation keys and S3 settings from the environment only', () => {
    const config = loadServerConfig([], {
      PEERFILL_SIGNING_KEYS: 'new:0123456789abcdef01,old:fedcba9876543210fe',
      PEERFILL_S3_BUCKET: 'releases',
      PEERFILL_S3_ENDPOINT: 'http://127.0.0.1:4569',
      PEERFILL_S3_PRESIGN: 'true',
    }, '/srv');
    expect(config.signingKeys?.map((key) => key.kid)).toEqual(['new', 'old']);
    expect(config.s3).toMatchObject({ bucket: 'releases', forcePathStyle: true, presign: true, region: 'us-east-1' });
  });

  it('lists every problem at once', () => {
    let caught: unknown;
    try {
      loadServerConfig(['--port', 'eighty', '--public-url', 'ftp://x'], {
        PEERFILL_SIGNING_KEYS: 'k1:short',
        REDIS_URL: 'localhost:6379',
        PEERFILL_URL_TTL_SECONDS: '-5',
        PEERFILL_LOG_LEVEL: 'loud',
      }, '/srv');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const errors = (caught as ConfigError).errors.join('\n');
    for (const fragment of ['--port', '--public-url', 'PEERFILL_SIGNING_KEYS', 'REDIS_URL', 'PEERFILL_URL_TTL_SECONDS', '--log-level']) {
      expect(errors).toContain(fragment);
    }
  });

  it('takes one Redis server or a Redis Cluster for --redis / REDIS_URL, and says why a value is refused', () => {
    expect(loadServerConfig(['--redis', 'redis://127.0.0.1:6379'], {}, '/srv').redisUrl).toBe('redis://127.0.0.1:6379');
    expect(loadServerConfig([], { REDIS_URL: 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000' }, '/srv').redisUrl).toBe('redis+cluster://10.0.0.1:7000,10.0.0.2:7000');
    expect(loadServerConfig([], { REDIS_URL: 'redis://10.0.0.1:7000,redis://10.0.0.2:7000' }, '/srv').redisUrl).toBe('redis://10.0.0.1:7000,redis://10.0.0.2:7000');
    for (const [value, reason] of [
      ['redis+cluster://10.0.0.1:7000,10.0.0.2', '"10.0.0.2" is not host:port'],
      ['redis+cluster://10.0.0.1:7000/2', 'no path or database'],
      ['redis://10.0.0.1:7000,10.0.0.2:7000', 'is not a redis:// or rediss:// URL'],
    ]) {
      let caught: unknown;
      try {
        loadServerConfig(['--redis', value!], {}, '/srv');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(ConfigError);
      expect((caught as ConfigError).errors.join('\n')).toContain(`--redis / REDIS_URL: `);
      expect((caught as ConfigError).errors.join('\n')).toContain(reason);
    }
  });

  it('reads the speed floor as a bit rate, from the flag or PEERFILL_SPEED_FLOOR, and refuses byte rates', () => {
    expect(loadServerConfig([], {}, '/srv').speedFloorBitsPerSecond).toBeUndefined();
    expect(loadServerConfig(['--speed-floor', '50mbit'], {}, '/srv').speedFloorBitsPerSecond).toBe(50_000_000);
    expect(loadServerConfig([], { PEERFILL_SPEED_FLOOR: '1.5gbit' }, '/srv').speedFloorBitsPerSecond).toBe(1_500_000_000);
    expect(loadServerConfig(['--speed-floor', '0'], {}, '/srv').speedFloorBitsPerSecond).toBeUndefined();
    for (const junk of ['50mbps', 'fast', '50', '-1mbit']) expect(() => loadServerConfig(['--speed-floor', junk], {}, '/srv')).toThrow(/--speed-floor/);
  });

  it('trusts no proxy by default; --trust-proxy (or PEERFILL_TRUST_PROXY) names them, the flag winning', () => {
    expect(loadServerConfig([], {}, '/srv').trustProxy).toBe(TRUST_NO_PROXY);
    const fromFlag = loadServerConfig(['--trust-proxy', '10.0.0.0/8,loopback'], { PEERFILL_TRUST_PROXY: '192.168.0.1' }, '/srv').trustProxy;
    expect([fromFlag('10.3.3.3', 0), fromFlag('::1', 0), fromFlag('192.168.0.1', 0)]).toEqual([true, true, false]);
    const fromEnv = loadServerConfig([], { PEERFILL_TRUST_PROXY: '192.168.0.1' }, '/srv').trustProxy;
    expect([fromEnv('192.168.0.1', 0), fromEnv('10.3.3.3', 0)]).toEqual([true, false]);
    expect(() => loadServerConfig(['--trust-proxy', 'true'], {}, '/srv')).toThrow(/--trust-proxy \/ PEERFILL_TRUST_PROXY: "true"/);
  });

  it('rejects unknown flags', () => {
    expect(() => loadServerConfig(['--bogus'], {}, '/srv')).toThrow(ConfigError);
  });
});
