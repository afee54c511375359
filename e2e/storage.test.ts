import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer } from './support/harness.ts';

describe('browser storage, said plainly', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    server = await startServer([randomFile('too big.bin', 30 * MiB + 999)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('the page: a full quota says how much is free and needed, offers Retry, and Retry finishes once there is room', async () => {
    const file = server.files[0]!;
    const { page, context, logs } = await openTab(browser, server.url);
    try {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 20 * MiB });
      console.log(`estimate under a 20 MiB quota: ${JSON.stringify(await page.evaluate('navigator.storage.estimate()'))}`);
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      const message = card.locator('.message');
      await expect.poll(() => message.textContent(), { timeout: 60_000 }).toMatch(/\S/);
      console.log(`card says: ${await card.locator('.status-text').textContent()} | ${await message.textContent()} | storage: ${await card.locator('.storage-text').textContent()}`);
      // OPFS makes room for the whole file when it opens: said before a byte is fetched.
      expect(await message.textContent()).toMatch(/^Browser storage is full: less than 30\.0 MiB free, 30\.0 MiB needed\. What is verified is kept/);
      expect(await card.getAttribute('data-status')).toBe('failed');
      expect(server.ranges.filter((range) => range.path.includes(file.fileId))).toEqual([]);
      expect(await card.locator('.storage-text').textContent()).toMatch(/^(Persistent|Not persistent): /);
      // Space is freed: Retry resumes from what was kept.
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 200 * MiB });
      const before = server.ranges.length;
      await card.getByRole('button', { name: 'Retry' }).click();
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      expect(server.ranges.length).toBeGreaterThan(before);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
    } catch (error) {
      const cards = await page.locator('#downloads').innerHTML({ timeout: 5000 }).catch((e: unknown) => String(e));
      throw new Error(`${String(error)}\ncards: ${cards}\npage log:\n${logs.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  it('IndexedDB: a quota met mid-download keeps every verified chunk, and the next download() resumes from them', async () => {
    const file = server.files[0]!;
    const { page, context } = await openTab(browser, server.url);
    try {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 20 * MiB });
      const failed = await page.evaluate(`(async () => {
        const api = await import('/assets/peerfill.js');
        const dl = await api.download(location.origin + '/${file.fileId}', { storage: 'indexeddb' });
        const error = await dl.done.then(() => undefined, (error) => error);
        const store = await api.openBrowserChunkStore(api.storeKey(location.origin, '${file.fileId}'), { storage: 'indexeddb' });
        return { code: error?.code, message: error?.message, kept: (await store.peek())?.verifiedChunks };
      })()`);
      console.log(`IndexedDB at 20 MiB: ${JSON.stringify(failed)}`);
      expect(failed).toMatchObject({ code: 'PF_ERR_STORAGE_QUOTA' });
      expect((failed as { message: string }).message).toMatch(/^Browser storage is full: less than \d+\.\d MiB free, \d+\.\d MiB needed/);
      const kept = (failed as { kept: number }).kept;
      expect(kept).toBeGreaterThan(0);
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: 200 * MiB });
      const resumed = await page.evaluate(`(async () => {
        const api = await import('/assets/peerfill.js');
        const dl = await api.download(location.origin + '/${file.fileId}', { storage: 'indexeddb' });
        const { sha256 } = await dl.done;
        return { sha256, resumedBytes: dl.engine.progress().resumedBytes };
      })()`);
      expect(resumed).toMatchObject({ sha256: file.sha256 });
      // Every kept chunk is resumed (one of them may be the short last chunk: HTTP fills start at random offsets).
      expect((resumed as { resumedBytes: number }).resumedBytes).toBeGreaterThan((kept - 1) * 256 * 1024);
    } finally {
      await context.close();
    }
  });
});
