import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions, type OutputFile } from 'esbuild';
import type { FastifyPluginAsync } from 'fastify';

/**
 * The web page and the browser bundle, built in memory by esbuild when the server
 * starts: `/` (index.html), `/assets/page.js`, `/assets/peerfill.js` (the embeddable API),
 * shared `chunk-*.js` and `/assets/opfs-worker.js`.
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
  const [main, worker, html] = await Promise.all([
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
  return { files, scriptBytes, scriptGzipBytes };
}

/** Serves the page at `/` and the bundle under `/assets/`. */
export const pagePlugin: FastifyPluginAsync = async (app) => {
  const { files } = await buildBrowserAssets();
  for (const [path, file] of files) {
    app.get(path, async (request, reply) => {
      reply
        .header('etag', file.etag)
        .header('cache-control', file.isImmutable ? 'public, max-age=31536000, immutable' : 'no-cache')
        .header('x-content-type-options', 'nosniff');
      // Publishers import /assets/peerfill.js from their own pages: module scripts need CORS.
      if (path !== '/') reply.header('access-control-allow-origin', '*');
      if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
      return reply.type(file.contentType).send(file.bytes);
    });
  }
};
