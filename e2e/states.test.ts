import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, cardNumber, cardSelector, launchChromium, openPage, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer, type Tab } from './support/harness.ts';

/** On failure, what the cards and the page's log said. */
async function explain(tabs: Array<{ page: Tab['page']; logs: string[] }>, error: unknown): Promise<Error> {
  const parts = await Promise.all(
    tabs.map(async ({ page, logs }, index) => {
      const cards = page.isClosed() ? '(closed)' : await page.locator('#downloads').innerHTML({ timeout: 5000 }).catch((e: unknown) => String(e));
      return `tab ${index + 1} cards: ${cards}\ntab ${index + 1} log:\n${logs.join('\n')}`;
    }),
  );
  return new Error(`${String(error)}\n${parts.join('\n')}`);
}

describe('two tabs of one profile, and states that say what is happening', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    // Capped so that a download is still running when the test looks at it.
    server = await startServer([randomFile('two-tabs.bin', 10 * MiB)], ['--egress-limit', String(2 * MiB)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a second tab says the download runs in the first one, and takes it over from storage when that tab closes', async () => {
    const file = server.files.find((candidate) => candidate.name === 'two-tabs.bin')!;
    const first = await openTab(browser, server.url);
    const tabs: Array<{ page: Tab['page']; logs: string[] }> = [first];
    try {
      await first.page.getByRole('button', { name: `Download ${file.name}` }).click();
      await expect.poll(() => cardNumber(first.page, file.fileId, 'verified-bytes'), { timeout: 30_000 }).toBeGreaterThan(0);
      // Same profile: the second tab finds the download in the saved list and boots its card.
      const second = await openPage(first.context, server.url);
      tabs.push(second);
      const card = second.page.locator(cardSelector(file.fileId));
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 15_000 }).toBe('elsewhere');
      expect(await card.locator('.status-text').textContent()).toBe('This download is running in another tab');
      expect(await card.locator('.message').textContent()).toBe('');
      // Its files belong to the first tab: nothing here can delete or pause them.
      expect(await card.locator('button.cancel').isDisabled()).toBe(true);
      expect(await card.locator('button.pause').isDisabled()).toBe(true);
      expect(await first.page.locator(cardSelector(file.fileId)).getAttribute('data-status')).toBe('running');
      const handedOverAt = await cardNumber(first.page, file.fileId, 'verified-bytes');
      expect(handedOverAt).toBeLessThan(file.bytes.length);
      await first.page.close();
      // The queued lock request is granted: the second tab goes on from what the first stored.
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 15_000 }).not.toBe('elsewhere');
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      const resumed = await cardNumber(second.page, file.fileId, 'resumed-bytes');
      console.log(`first tab closed at ${handedOverAt} of ${file.bytes.length} B; the second resumed ${resumed} B from storage`);
      expect(resumed).toBeGreaterThanOrEqual(handedOverAt);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(second.page, file.fileId)).toBe(file.sha256);
      for (const { logs } of tabs) expect(logs.join('\n')).not.toMatch(/NoModificationAllowedError|Access Handles cannot be created/);
    } catch (error) {
      throw await explain(tabs, error);
    } finally {
      await first.context.close();
    }
  });
});
