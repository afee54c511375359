import { randomBytes, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { FileListSchema, createCodec } from '../../protocol/index.ts';
import { loadServerConfig } from '../../bin/config.ts';
import { createLogger } from '../../bin/logger.ts';
import { buildServer, type Server } from '../../bin/serve.ts';
import { freePort } from '../../test/support/net.ts';

/** The veth address the test network namespace gives us (see test/run.sh). */
export const E2E_HOST = '10.77.0.1';
export const MiB = 1024 * 1024;
export const ARTIFACTS_DIR = new URL('../artifacts/', import.meta.url).pathname;
const fileListCodec = createCodec(FileListSchema);

/**
 * WebRTC between tabs must stay on this machine, and Chromium gathers no ICE candidate
 * from loopback alone: the suite needs the namespace's veth address. Without it, fail
 * loudly with how to get it, rather than skip or leak WebRTC onto a real network.
 */
export function requireTestNetwork(): void {
  const hasAddress = Object.values(networkInterfaces()).some((list) => list?.some((address) => address.address === E2E_HOST));
  if (hasAddress) return;
  throw new Error(
    `e2e needs ${E2E_HOST} on a local veth inside a network namespace (so WebRTC stays on this machine). ` +
      `Run \`npm test\` as root (it creates one; PEERFILL_TEST_NETNS=${process.env.PEERFILL_TEST_NETNS ?? 'unset'}), ` +
      `or create it by hand as in docs/DESIGN ("Test infrastructure") and run \`ip netns exec NS npx vitest run e2e\`.`,
  );
}

export interface TestFile {
  name: string;
  bytes: Uint8Array;
  sha256: string;
  fileId: string;
}

export interface E2eServer {
  server: Server;
  url: string;
  port: number;
  dir: string;
  files: TestFile[];
  /** Bytes the origin's signed data plane (`/d/`) wrote to sockets, headers included. */
  originBytes(): number;
  /** Every `/d/` request (path without query, Range header), in arrival order. */
  ranges: Array<{ path: string; range: string; status?: number }>;
  /** Stop listening (as a crashed or unplugged server would), keeping its files and data dir. */
  stop(): Promise<void>;
  /** Start again after stop(), on the same port, with the same files, keys and saved sessions. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export function randomFile(name: string, sizeBytes: number): { name: string; bytes: Uint8Array } {
  return { name, bytes: randomBytes(sizeBytes) };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The real `peerfill serve` composition (config + buildServer), on the veth address. */
export async function startServer(files: Array<{ name: string; bytes: Uint8Array }>, extraArgs: string[] = []): Promise<E2eServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pf-e2e-'));
  const filesDir = join(dir, 'files');
  await mkdir(filesDir, { recursive: true });
  for (const file of files) await writeFile(join(filesDir, file.name), file.bytes);
  const port = await freePort(E2E_HOST);
  const url = `http://${E2E_HOST}:${port}`;
  const config = loadServerConfig(
    ['--files', filesDir, '--data-dir', join(dir, 'data'), '--host', E2E_HOST, '--port', String(port), '--server-url', url, '--log-level', 'warn', '--announce-interval', '5', ...extraArgs],
    {},
    dir,
  );
  let originBytes = 0;
  const ranges: Array<{ path: string; range: string; status?: number }> = [];
  const listen = async (): Promise<Server> => {
    const built = await buildServer(config, createLogger(config.logLevel));
    countDataPlane(built);
    await built.app.listen({ host: E2E_HOST, port });
    return built;
  };
  const countDataPlane = (built: Server) => built.app.server.on('request', (request: { url?: string; headers: Record<string, string | string[] | undefined>; socket: Socket }, response: { statusCode: number; once(event: 'close', listener: () => void): void }) => {
    if (!request.url?.startsWith('/d/')) return;
    const range = request.headers.range;
    const entry: { path: string; range: string; status?: number } = { path: request.url.split('?')[0] ?? '', range: typeof range === 'string' ? range : '' };
    ranges.push(entry);
    const socket = request.socket;
    const before = socket.bytesWritten;
    response.once('close', () => {
      originBytes += socket.bytesWritten - before;
      entry.status = response.statusCode;
    });
  });
  let server = await listen();
  let isStopped = false;
  const published: TestFile[] = [];
  const deadline = Date.now() + 60_000;
  while (published.length < files.length) {
    if (Date.now() > deadline) throw new Error('the server did not publish the test files in time');
    const list = fileListCodec.parse(await (await fetch(`${url}/files`)).json());
    published.length = 0;
    for (const file of files) {
      const entry = list.files.find((candidate) => candidate.name === file.name);
      if (entry) published.push({ name: file.name, bytes: file.bytes, sha256: sha256Hex(file.bytes), fileId: entry.file_id });
    }
    if (published.length < files.length) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    get server() {
      return server;
    },
    url,
    port,
    dir,
    files: published,
    originBytes: () => originBytes,
    ranges,
    async stop() {
      isStopped = true;
      server.app.server.closeAllConnections();
      await server.close();
    },
    async restart() {
      server = await listen();
      isStopped = false;
    },
    async close() {
      if (!isStopped) await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Debian's Chromium, never a downloaded one; host ICE candidates allowed on the veth.
 * `executablePath` may be a wrapper that starts it elsewhere (the lab runs it inside a host).
 * Each of `serverUrl` is treated as a secure context (OPFS and WebCrypto need one); none
 * when it is empty. `extraArgs` go on the command line too.
 */
export async function launchChromium(serverUrl: string | string[], executablePath = '/usr/bin/chromium', extraArgs: string[] = []): Promise<Browser> {
  const secureOrigins = [serverUrl].flat();
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      // Plain-IP host candidates instead of mDNS names (no mDNS responder in the namespace).
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // See openTab: a fake microphone, granted without a prompt.
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      // OPFS and WebCrypto need a secure context; the test server is plain HTTP on a veth IP.
      ...(secureOrigins.length > 0 ? [`--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(',')}`] : []),
      // Background tabs must not be throttled: each tab here is a separate downloader.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
      ...extraArgs,
    ],
  });
}

export interface Tab {
  context: BrowserContext;
  page: Page;
  logs: string[];
}

/**
 * A separate browser context (its own OPFS, storage and peer id) with the page open.
 * The save picker is hidden so Save takes the download-link path Playwright can catch.
 * `initScript` runs in every document before the page's own scripts.
 */
export async function openTab(browser: Browser, serverUrl: string, options: { initScript?: string } = {}): Promise<Tab> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 }, permissions: ['microphone'] });
  await context.addInitScript(() => {
    Reflect.deleteProperty(window, 'showSaveFilePicker');
  });
  if (options.initScript !== undefined) await context.addInitScript(options.initScript);
  return { context, ...(await openPage(context, serverUrl)) };
}

/** Another tab of `context` (same profile: same OPFS, localStorage and Web Locks) with the page open. */
export async function openPage(context: BrowserContext, serverUrl: string): Promise<{ page: Page; logs: string[] }> {
  const page = await context.newPage();
  const logs: string[] = [];
  page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
  await page.goto(`${serverUrl}/`);
  // The namespace has no default route, and without one Chromium gathers ICE candidates
  // only for pages that were granted media capture. A real host has a default route; here
  // one getUserMedia call on a fake device unlocks the veth's host candidates.
  const capture = await page.evaluate(`navigator.mediaDevices.getUserMedia({ audio: true }).then((stream) => { stream.getTracks().forEach((track) => track.stop()); return 'ok'; }, (error) => String(error))`);
  if (capture !== 'ok') throw new Error(`could not enable host ICE candidates: ${String(capture)}`);
  return { page, logs };
}

/** A number from a card's data-* attribute (0 when not rendered yet). */
export async function cardNumber(page: Page, fileId: string, attribute: string, kind: 'dl' | 'seed' = 'dl'): Promise<number> {
  const value = await page.locator(cardSelector(fileId, kind)).getAttribute(`data-${attribute}`);
  return value === null ? 0 : Number(value);
}

export function cardSelector(fileId: string, kind: 'dl' | 'seed' = 'dl'): string {
  return kind === 'seed' ? `li.card[data-file-id="${fileId}"][data-kind="seed"]` : `li.card[data-file-id="${fileId}"]:not([data-kind="seed"])`;
}

/** Save the finished download through the page's Save button; returns the saved bytes' SHA-256. */
export async function saveAndHash(page: Page, fileId: string): Promise<string> {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.locator(`${cardSelector(fileId)} button.save`).click()]);
  const path = await download.path();
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) if (chunk instanceof Uint8Array) hash.update(chunk);
  return hash.digest('hex');
}

export async function ensureArtifactsDir(): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  return ARTIFACTS_DIR;
}
