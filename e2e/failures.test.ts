import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer, type Tab } from './support/harness.ts';

/** On failure, what the cards and the page's log said. */
async function explain(tab: Tab, error: unknown): Promise<Error> {
  const cards = await tab.page.locator('#downloads').innerHTML({ timeout: 5000 }).catch((e: unknown) => String(e));
  return new Error(`${String(error)}\ncards: ${cards}\npage log:\n${tab.logs.join('\n')}`);
}

describe('server-side failures, said plainly', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    // Capped so that each download is still running when the test breaks something.
    server = await startServer([randomFile('removed.bin', 16 * MiB), randomFile('server-lost.bin', 12 * MiB), randomFile('offline.bin', 12 * MiB)], ['--egress-limit', String(2 * MiB)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a file removed from the server mid-download ends the download at once, and its stored chunks can be deleted', async () => {
    const file = server.files.find((candidate) => candidate.name === 'removed.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 30_000 }).toBeGreaterThan(0);
      await rm(join(server.dir, 'files', file.name));
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('removed');
      const requests = server.ranges.filter((range) => range.path.includes(file.fileId));
      const firstGone = requests.findIndex((range) => range.status === 404);
      console.log(`data plane: ${requests.length} requests, the first 404 at #${firstGone}; card: ${await card.locator('.status-text').textContent()} | ${await card.locator('.message').textContent()}`);
      expect(firstGone).toBeGreaterThanOrEqual(0);
      // Ended at the first 404s: the lanes already under way may each meet one, none is retried.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const after = server.ranges.filter((range) => range.path.includes(file.fileId)).slice(firstGone);
      expect(after.length).toBeLessThanOrEqual(4);
      expect(await card.locator('.message').textContent()).toMatch(/^This file was removed from the server\. The \d+(\.\d)? [KM]iB this browser stored of it can be deleted\.$/);
      expect(await card.locator('button.pause').isDisabled()).toBe(true);
      expect(await card.locator('button.retry').isHidden()).toBe(true);
      const stored = `(async () => {
        const api = await import('/assets/peerfill.js');
        const store = await api.openBrowserChunkStore(api.storeKey(location.origin, '${file.fileId}'));
        const record = await store.peek();
        await store.close();
        return record?.verifiedChunks ?? 0;
      })()`;
      expect(await page.evaluate(stored)).toBeGreaterThan(0);
      await card.getByRole('button', { name: 'Delete stored chunks' }).click();
      await card.waitFor({ state: 'detached' });
      expect(await page.evaluate(stored)).toBe(0);
    } catch (error) {
      throw await explain(tab, error);
    } finally {
      await context.close();
    }
  });

  it('a lost server: "connection lost, retrying" with Retry, and the download completes by itself once the server is back on its port', async () => {
    const file = server.files.find((candidate) => candidate.name === 'server-lost.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 30_000 }).toBeGreaterThan(0);
      await server.stop();
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('retrying');
      const said = `${await card.locator('.status-text').textContent()} | ${await card.locator('.message').textContent()}`;
      console.log(`server stopped: ${said}`);
      expect(await card.locator('.status-text').textContent()).toMatch(/^Connection lost, retrying \(next try in \d+ s\)$/);
      expect(await card.locator('.message').textContent()).toMatch(/^Connection lost \(.+\)\. What is verified is kept/);
      expect(await card.getByRole('button', { name: 'Retry' }).isVisible()).toBe(true);
      const stoppedAt = await cardNumber(page, file.fileId, 'verified-bytes');
      await server.restart();
      // Nobody presses anything: the backoff's next try finds the server and it goes on.
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      expect(await cardNumber(page, file.fileId, 'verified-bytes')).toBe(file.bytes.length);
      expect(stoppedAt).toBeLessThan(file.bytes.length);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
    } catch (error) {
      throw await explain(tab, error);
    } finally {
      await context.close();
    }
  });

  it('the network gone: "connection lost, retrying", and going online again resumes it', async () => {
    const file = server.files.find((candidate) => candidate.name === 'offline.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 30_000 }).toBeGreaterThan(0);
      await context.setOffline(true);
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).toBe('retrying');
      console.log(`offline: ${await card.locator('.status-text').textContent()} | ${await card.locator('.message').textContent()}`);
      await context.setOffline(false);
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 30_000 }).not.toBe('retrying');
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
    } catch (error) {
      throw await explain(tab, error);
    } finally {
      await context.close();
    }
  });
});
