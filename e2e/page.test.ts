import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
