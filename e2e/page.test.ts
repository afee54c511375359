import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBrowserAssets } from '../bin/page.ts';
import { MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer } from './support/harness.ts';

describe('the page, one tab', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    server = await startServer([randomFile('small release.bin', 3 * MiB + 12_345)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('builds a lean bundle in memory (sizes reported)', async () => {
    const assets = await buildBrowserAssets();
    console.log(`browser bundle: ${(assets.scriptBytes / 1024).toFixed(1)} KiB minified, ${(assets.scriptGzipBytes / 1024).toFixed(1)} KiB gzipped, files: ${[...assets.files.keys()].join(' ')}`);
    const scripts = [...assets.files.entries()].filter(([path]) => path.endsWith('.js'));
    // No Node built-in reaches the browser: the two shims stand in for events/process.
    for (const [path, asset] of scripts) expect(asset.bytes.toString('utf8'), path).not.toMatch(/require\(["'](node:)?(crypto|fs|stream|util|events|buffer)["']\)/);
    // Nothing compiles code at run time, so a CSP without 'unsafe-eval' runs it (see e2e/csp.test.ts).
    for (const [path, asset] of scripts) expect(asset.bytes.toString('utf8'), path).not.toMatch(/\bFunction\(|\beval\(|new Function\b/);
    // The worker carries only the OPFS code, not the engine.
    expect(assets.files.get('/assets/opfs-worker.js')!.bytes.length).toBeLessThan(16 * 1024);
  });

  it('serves the page and the bundle with content types and cache headers', async () => {
    const page = await fetch(`${server.url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const script = await fetch(`${server.url}/assets/peerfill.js`);
    expect(script.headers.get('content-type')).toContain('text/javascript');
    const etag = script.headers.get('etag');
    expect(etag).toBeTruthy();
    const again = await fetch(`${server.url}/assets/peerfill.js`, { headers: { 'if-none-match': etag ?? '' } });
    expect(again.status).toBe(304);
    expect((await fetch(`${server.url}/assets/opfs-worker.js`)).status).toBe(200);
  });

  it('lists the catalog, downloads with the keyboard, and saves the exact file', async () => {
    const file = server.files[0]!;
    const { page, context, logs } = await openTab(browser, server.url);
    try {
      const row = page.locator(`tr[data-file-id="${file.fileId}"]`);
      await expect.poll(() => row.locator('td').first().textContent()).toBe(file.name);
      await row.getByRole('button', { name: `Download ${file.name}` }).focus();
      await page.keyboard.press('Enter');
      const card = page.locator(cardSelector(file.fileId));
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 30_000 });
      expect(await cardNumber(page, file.fileId, 'verified-bytes')).toBe(file.bytes.length);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
    } catch (error) {
      const cards = await page.locator('#downloads').innerHTML({ timeout: 5000 }).catch((e: unknown) => String(e));
      throw new Error(`${String(error)}\ncards: ${cards}\npage log:\n${logs.join('\n')}`);
    } finally {
      await context.close();
    }
  });
});

describe('the embeddable API', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    server = await startServer([randomFile('embedded.bin', 2 * MiB + 777)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  // The README's example itself runs in e2e/csp.test.ts, on a publisher's page under a strict CSP.
  for (const storage of ['opfs-worker', 'opfs-async', 'indexeddb'] as const) {
    it(`stores, resumes and saves through the ${storage} backend`, async () => {
      const file = server.files[0]!;
      const { page, context } = await openTab(browser, server.url);
      try {
        const run = `(async () => {
          const api = await import('/assets/peerfill.js');
          const dl = await api.download(location.origin + '/${file.fileId}', { storage: '${storage}' });
          await dl.done;
          const kind = dl.store.backend.kind;
          const again = await api.openBrowserChunkStore(api.storeKey(location.origin, '${file.fileId}'), { storage: '${storage}' });
          const record = await again.peek();
          window.savedFile = await again.file();
          return { kind, record };
        })()`;
        const result = await page.evaluate(run);
        expect(result).toEqual({ kind: storage, record: { verifiedChunks: 9, verifiedBytes: file.bytes.length, isComplete: true } });
        // The saved Blob, hashed where it lives.
        const savedSha256 = await page.evaluate(
          `window.savedFile.arrayBuffer().then((buffer) => crypto.subtle.digest('SHA-256', buffer)).then((digest) => Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join(''))`,
        );
        expect(savedSha256).toBe(file.sha256);
      } finally {
        await context.close();
      }
    });
  }
});
