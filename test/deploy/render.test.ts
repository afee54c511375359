import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { renderEdgeConfig, renderNginxConf, type EdgeConfigOptions } from '../../deploy/nginx/render.ts';
import { NGINX_BIN } from './fixtures/nginx-edge.ts';

const BASE: EdgeConfigOptions = { listen: 8080, upstreamUrl: 'http://127.0.0.1:3000', cacheDir: '/var/cache/peerfill' };

describe('render', () => {
  it('fills every placeholder', () => {
    const conf = renderEdgeConfig({ ...BASE, keysFile: '/etc/peerfill/keys', accessLog: '/var/log/nginx/peerfill.log' });
    expect(conf).not.toMatch(/\{\{[A-Z_]+\}\}/);
    expect(conf).toContain('listen 8080;');
    expect(conf).toContain('server 127.0.0.1:3000;');
    expect(conf).toContain('proxy_cache_path "/var/cache/peerfill" ');
    expect(conf).toContain('js_var $peerfill_keys_file "/etc/peerfill/keys";');
    expect(conf).toContain('access_log "/var/log/nginx/peerfill.log" peerfill_edge;');
    expect(conf).toContain('proxy_cache_key $peerfill_path$slice_range;');
  });

  it('takes keys from the environment when no keys file is given', () => {
    expect(renderEdgeConfig(BASE)).toContain('js_var $peerfill_keys_file "";');
    expect(renderNginxConf(BASE)).toContain('env PEERFILL_SIGNING_KEYS;');
  });

  it.each<[string, Partial<EdgeConfigOptions>]>([
    ['a cache dir that ends the directive', { cacheDir: '/tmp/x; include /etc/passwd' }],
    ['a keys file with a quote', { keysFile: '/tmp/"k' }],
    ['a keys file with a variable', { keysFile: '/tmp/$host' }],
    ['a path with a newline', { cacheDir: '/tmp/a\nb' }],
    ['an upstream with a path', { upstreamUrl: 'http://127.0.0.1:3000/api' }],
    ['an https upstream', { upstreamUrl: 'https://origin.example' }],
    ['a listen value that is not a port', { listen: '8080 ssl' }],
    ['a size that is not a size', { cacheMaxSize: '10g; x' }],
  ])('refuses %s', (_name, override) => {
    expect(() => renderEdgeConfig({ ...BASE, ...override })).toThrow(TypeError);
  });

  it('renders a config that nginx accepts (nginx -t)', async () => {
    const prefix = await mkdtemp(join(tmpdir(), 'pf-edge-render-'));
    try {
      const conf = renderNginxConf({
        ...BASE,
        listen: '127.0.0.1:8080',
        cacheDir: join(prefix, 'cache'),
        tempDir: prefix,
        keysFile: join(prefix, 'keys'),
        ...(process.getuid?.() === 0 ? { user: 'root' } : {}),
      });
      await writeFile(join(prefix, 'nginx.conf'), conf);
      const { stderr } = await promisify(execFile)(NGINX_BIN, ['-t', '-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log'), '-g', `pid ${join(prefix, 'nginx.pid')};`], { timeout: 30_000 });
      expect(stderr).toContain('test is successful');
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });
});
