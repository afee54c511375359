import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions, type OutputFile } from 'esbuild';
import type { FastifyPluginAsync } from 'fastify';
import type { ServerConfig } from './config.ts';

/**
 * The web page and the browser bundle, built in memory by esbuild when the server
 * starts: `/` (index.html), `/assets/page.css`, `/assets/page.js`, `/assets/peerfill.js`
 * (the embeddable API), shared `chunk-*.js` and `/assets/opfs-worker.js`.
 */
const BROWSER_DIR = fileURLToPath(new URL('../client/browser/', import.meta.url));

export interface BrowserAsset {
  bytes: Buffer;
  contentType: string;
  etag: string;
  /** Content-hashed name: cacheable forever. */
  isImmutable: boolean;
}

export interface BrowserAssets {
  /** By URL path, e.g. `/assets/peerfill.js`. */
  files: Map<string, BrowserAsset>;
  /** Minified JavaScript bytes, and gzipped, over every script. */
  scriptBytes: number;
  scriptGzipBytes: number;
}

export interface BuildBrowserOptions {
  /** Minify [true]. */
  minify?: boolean;
}

function shared(minify: boolean): BuildOptions {
  return {
    bundle: true,
    write: false,
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify,
    // Node-isms in simple-peer / readable-stream / debug, met by two tiny shims instead of polyfill packages.
    alias: { events: `${BROWSER_DIR}shims/events.js` },
    inject: [`${BROWSER_DIR}shims/process.js`],
    define: { global: 'globalThis' },
    logLevel: 'silent',
  };
}

function asset(bytes: Uint8Array, contentType: string, isImmutable: boolean): BrowserAsset {
  const buffer = Buffer.from(bytes);
  return { bytes: buffer, contentType, etag: `"${createHash('sha256').update(buffer).digest('base64url').slice(0, 22)}"`, isImmutable };
}

/** Build the page and the browser bundle in memory (a second or two). */
export async function buildBrowserAssets(options: BuildBrowserOptions = {}): Promise<BrowserAssets> {
  const minify = options.minify ?? true;
  const [main, worker, html, css] = await Promise.all([
    build({
      ...shared(minify),
      entryPoints: { peerfill: `${BROWSER_DIR}index.ts`, page: `${BROWSER_DIR}page.ts` },
      format: 'esm',
      splitting: true,
      outdir: '/assets',
      entryNames: '[name]',
      chunkNames: 'chunk-[hash]',
    }),
    build({ ...shared(minify), entryPoints: { 'opfs-worker': `${BROWSER_DIR}opfs-worker.ts` }, format: 'esm', outdir: '/assets' }),
    readFile(`${BROWSER_DIR}index.html`),
    readFile(`${BROWSER_DIR}page.css`),
  ]);
  const files = new Map<string, BrowserAsset>();
  let scriptBytes = 0;
  let scriptGzipBytes = 0;
  const outputs: OutputFile[] = [...(main.outputFiles ?? []), ...(worker.outputFiles ?? [])];
  for (const output of outputs) {
    const path = output.path.slice(output.path.indexOf('/assets/'));
    files.set(path, asset(output.contents, 'text/javascript; charset=utf-8', path.includes('/chunk-')));
    scriptBytes += output.contents.length;
    scriptGzipBytes += gzipSync(output.contents).length;
  }
  files.set('/', asset(html, 'text/html; charset=utf-8', false));
  files.set('/assets/page.css', asset(css, 'text/css; charset=utf-8', false));
  return { files, scriptBytes, scriptGzipBytes };
}

export interface PageOptions {
  /** Origins the page may fetch from or open sockets to besides its own (the CDN, the tracker). */
  connectSources?: string[];
}

function originOf(url: string): string {
  return new URL(url).origin;
}

/**
 * What the page reaches besides its own origin: the tracker's WebSocket (`serverUrl`, when
 * the page is opened under another name), the CDN that download URLs point at, and S3 when
 * it hands out presigned URLs.
 */
export function pageOptionsFrom(config: Pick<ServerConfig, 'serverUrl' | 'publicUrl' | 's3'>): PageOptions {
  const sources = [originOf(config.serverUrl).replace(/^http/, 'ws'), originOf(config.publicUrl)];
  if (config.s3?.presign) sources.push(config.s3.endpoint === undefined ? 'https://*.amazonaws.com' : originOf(config.s3.endpoint));
  return { connectSources: sources };
}

/**
 * The page's Content-Security-Policy: scripts, styles and workers only from this server
 * (the validators are generated ahead of time, so no 'unsafe-eval'; no inline script or
 * style), connections to this server and `connectSources`, and nothing else.
 */
export function pageContentSecurityPolicy(options: PageOptions = {}): string {
  const connect = ["'self'", ...new Set(options.connectSources ?? [])].join(' ');
  return `default-src 'self'; connect-src ${connect}; base-uri 'none'; object-src 'none'; form-action 'none'; frame-ancestors 'none'`;
}

/** Serves the page at `/` (with its CSP) and the bundle under `/assets/`. */
export const pagePlugin: FastifyPluginAsync<PageOptions> = async (app, options) => {
  const { files } = await buildBrowserAssets();
  const policy = pageContentSecurityPolicy(options);
  for (const [path, file] of files) {
    app.get(path, async (request, reply) => {
      reply
        .header('etag', file.etag)
        .header('cache-control', file.isImmutable ? 'public, max-age=31536000, immutable' : 'no-cache')
        .header('x-content-type-options', 'nosniff');
      if (path === '/') reply.header('content-security-policy', policy);
      // Publishers import /assets/peerfill.js from their own pages: module scripts need CORS.
      else reply.header('access-control-allow-origin', '*');
      if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
      return reply.type(file.contentType).send(file.bytes);
    });
  }
};

/**
 * Whether a browser treats `url` as a secure context by its address alone: https:, or http:
 * at localhost (and `*.localhost`), 127.0.0.0/8 or [::1], as Chromium and Firefox do.
 */
export function isSecureContextUrl(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === 'https:') return true;
  const host = hostname.toLowerCase().replace(/\.$/, '');
  return host === 'localhost' || host.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(host) || host === '[::1]';
}

/**
 * What `serve` says when the page URL it prints is plain http:// at an address other than
 * localhost: there the page has no secure context (no storage, no SHA-256), so it cannot
 * download anything, and disables its buttons saying so. Undefined for a URL that works.
 */
export function insecurePageWarning(pageUrl: string): string | undefined {
  if (isSecureContextUrl(pageUrl)) return undefined;
  return (
    `warning: ${pageUrl} is plain HTTP at an address other than localhost: browsers give the page no secure context there ` +
    '(no storage, no SHA-256), so it cannot download anything and disables its buttons. ' +
    'Serve HTTPS with --tls-cert FILE --tls-key FILE, or put a TLS proxy in front and set --server-url https://...'
  );
}
