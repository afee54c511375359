import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../client/browser/opfs-chunk-store.ts';
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

/**
 * Records, in order, every text the cards' status line and "Done" figure show, and every tab
 * title: a MutationObserver sees each change, even those that last less than a frame.
 */
const RECORD_STATES = `(() => {
  const seen = (window.__seen = []);
  new MutationObserver((records) => {
    for (const record of records) {
      const target = record.target;
      if (!(target instanceof Element)) continue;
      const card = target.closest('li.card');
      const which = target.classList.contains('status-text') ? 'status' : target.classList.contains('done-text') ? 'done' : undefined;
      if (!card || !which) continue;
      const text = [...record.addedNodes].map((node) => node.textContent).join('');
      seen.push({ card: card.dataset.fileId + (card.dataset.kind === 'seed' ? ':seed' : ''), which, text });
    }
  }).observe(document.getElementById('downloads'), { subtree: true, childList: true });
  new MutationObserver(() => seen.push({ card: '', which: 'title', text: document.title })).observe(document.querySelector('title'), { childList: true });
})()`;

interface Seen {
  card: string;
  which: 'status' | 'done' | 'title';
  text: string;
}

async function seen(page: Tab['page']): Promise<Seen[]> {
  return page.evaluate<Seen[]>('window.__seen');
}

/** One card's status texts in order, repeats dropped. */
function statusTexts(all: Seen[], card: string): string[] {
  return all.filter((entry) => entry.card === card && entry.which === 'status').map((entry) => entry.text).filter((text, index, list) => text !== list[index - 1]);
}

describe('two tabs of one profile, and states that say what is happening', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    // Capped so that a download is still running when the test looks at it.
    server = await startServer(
      [randomFile('two-tabs.bin', 10 * MiB), randomFile('states.bin', 3 * MiB + 4321), randomFile('seed-good.bin', 2 * MiB), randomFile('seed-bad.bin', 2 * MiB), randomFile('paused.bin', 8 * MiB)],
      ['--egress-limit', String(2 * MiB)],
    );
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
      // The embeddable API in that tab is refused the same way, with its code.
      const refused = await second.page.evaluate(`import('/assets/peerfill.js').then((api) => api.download(location.origin + '/${file.fileId}')).then(() => 'started', (error) => error.code + ': ' + error.message)`);
      expect(refused).toBe(`PF_ERR_OUTPUT_LOCKED: ${file.name} is being downloaded in another tab of this browser`);
      expect(await first.page.locator(cardSelector(file.fileId)).getAttribute('data-status')).toBe('running');
      const handedOverAt = await cardNumber(first.page, file.fileId, 'verified-bytes');
      expect(handedOverAt).toBeLessThan(file.bytes.length);
      await first.page.close();
      // The queued lock request is granted: the second tab goes on from what the first stored.
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 15_000 }).not.toBe('elsewhere');
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      const resumed = await cardNumber(second.page, file.fileId, 'resumed-bytes');
      console.log(`first tab closed at ${handedOverAt} of ${file.bytes.length} B; the second resumed ${resumed} B from storage`);
      // What the first tab had recorded (its last chunks may not have been, closed between two state flushes) is not fetched again.
      expect(resumed).toBeGreaterThan(0);
      expect(resumed + (await cardNumber(second.page, file.fileId, 'from-http-bytes')) + (await cardNumber(second.page, file.fileId, 'from-peers-bytes'))).toBe(file.bytes.length);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(second.page, file.fileId)).toBe(file.sha256);
      for (const { logs } of tabs) expect(logs.join('\n')).not.toMatch(/NoModificationAllowedError|Access Handles cannot be created/);
    } catch (error) {
      throw await explain(tabs, error);
    } finally {
      await first.context.close();
    }
  });

  it('"Verifying" during the whole-file check; the new card gets focus and view; the tab title shows progress; a finished file is deleted only after a confirm', async () => {
    const file = server.files.find((candidate) => candidate.name === 'states.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      // A phone's viewport, short enough that the card starts below the fold.
      await page.setViewportSize({ width: 390, height: 420 });
      await page.evaluate(RECORD_STATES);
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      expect(await card.evaluate((element) => element === document.activeElement)).toBe(true);
      const box = await card.evaluate((element) => {
        const rect = element.getBoundingClientRect();
        return { top: rect.top, bottom: rect.bottom, height: innerHeight, scrollY };
      });
      expect(box.scrollY).toBeGreaterThan(0);
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.top).toBeLessThan(box.height);
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      const all = await seen(page);
      const statuses = statusTexts(all, file.fileId);
      console.log(`status line: ${statuses.join(' → ')}`);
      // Not "Done, sharing with others" for a moment either: it is not kept seeding.
      expect(statuses).toEqual(['Starting…', 'Downloading', 'Verifying', 'Done']);
      // Never "Downloading" with the whole file in: the check is said as what it is.
      let status = '';
      for (const entry of all.filter((candidate) => candidate.card === file.fileId)) {
        if (entry.which === 'status') status = entry.text;
        else if (entry.text.endsWith('(100%)')) expect(status, `"${entry.text}" shown`).not.toBe('Downloading');
      }
      const titles = all.filter((entry) => entry.which === 'title').map((entry) => entry.text);
      console.log(`titles: ${[...new Set(titles)].join(' | ')}`);
      expect(titles.some((title) => /^\d+% · states\.bin – peerfill$/.test(title) && !title.startsWith('100%'))).toBe(true);
      expect(await page.title()).toBe('peerfill');

      // Done: the button says it deletes, and asks; dismissed, nothing is deleted.
      const cancel = card.locator('button.cancel');
      expect(await cancel.textContent()).toBe('Delete…');
      const dialogs: string[] = [];
      page.once('dialog', (dialog) => {
        dialogs.push(`${dialog.type()}: ${dialog.message()}`);
        void dialog.dismiss();
      });
      await cancel.click();
      await page.waitForTimeout(300);
      expect(dialogs).toEqual([`confirm: Delete ${file.name} from this browser's storage? You would have to download it again.`]);
      expect(await card.count()).toBe(1);
      page.once('dialog', (dialog) => void dialog.accept());
      await cancel.click();
      await card.waitFor({ state: 'detached' });
      const stored = await page.evaluate(`(async () => {
        const api = await import('/assets/peerfill.js');
        const store = await api.openBrowserChunkStore(api.storeKey(location.origin, '${file.fileId}'));
        const record = await store.peek();
        await store.close();
        return record?.verifiedChunks ?? 0;
      })()`);
      expect(stored).toBe(0);
    } catch (error) {
      throw await explain([tab], error);
    } finally {
      await context.close();
    }
  });

  it('"Seed my copy…": "Checking your copy" while it is read; a corrupt copy says it does not match and asks the CDN for nothing', async () => {
    const good = server.files.find((candidate) => candidate.name === 'seed-good.bin')!;
    const bad = server.files.find((candidate) => candidate.name === 'seed-bad.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      await page.evaluate(RECORD_STATES);
      await page.locator(`tr[data-file-id="${good.fileId}"] input.seed-input`).setInputFiles({ name: good.name, mimeType: 'application/octet-stream', buffer: Buffer.from(good.bytes) });
      const goodCard = page.locator(cardSelector(good.fileId, 'seed'));
      await expect.poll(() => goodCard.getAttribute('data-status'), { timeout: 30_000 }).toBe('seeding');
      expect(await goodCard.getAttribute('data-sha256')).toBe(good.sha256);

      const corrupt = Buffer.from(bad.bytes);
      corrupt[1000] = corrupt[1000]! ^ 0xff;
      await page.locator(`tr[data-file-id="${bad.fileId}"] input.seed-input`).setInputFiles({ name: bad.name, mimeType: 'application/octet-stream', buffer: corrupt });
      const badCard = page.locator(cardSelector(bad.fileId, 'seed'));
      await expect.poll(() => badCard.getAttribute('data-status'), { timeout: 30_000 }).toBe('mismatch');
      // Given time to ask the CDN, were it going to.
      await page.waitForTimeout(1500);
      const all = await seen(page);
      const goodStatuses = statusTexts(all, `${good.fileId}:seed`);
      const badStatuses = statusTexts(all, `${bad.fileId}:seed`);
      const badMessage = await badCard.locator('.message').textContent();
      console.log(`good copy: ${goodStatuses.join(' → ')}; corrupt copy: ${badStatuses.join(' → ')} | ${badMessage}`);
      expect(goodStatuses).toEqual(['Checking your copy', 'Done', 'Done, sharing with others']);
      // Not "Downloading", nor "Done, sharing with others" for a moment: it is neither.
      expect(badStatuses).toEqual(['Checking your copy', 'Your copy does not match']);
      expect(badMessage).toBe('Your copy does not match the published file: 1 of its 8 chunks differ. The 7 that match are shared with others; nothing is downloaded.');
      expect(await badCard.getAttribute('data-status')).toBe('mismatch');
      // Neither copy sent a Range request to the CDN.
      expect(server.ranges.filter((range) => range.path.includes(good.fileId) || range.path.includes(bad.fileId))).toEqual([]);
    } catch (error) {
      throw await explain([tab], error);
    } finally {
      await context.close();
    }
  });

  it('closing the tab mid-download asks first; paused, it does not, and after the reload the card shows what is stored', async () => {
    const file = server.files.find((candidate) => candidate.name === 'paused.bin')!;
    const tab = await openTab(browser, server.url);
    const { page, context } = tab;
    try {
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 30_000 }).toBeGreaterThan(0);
      // Running: leaving warns, and staying keeps it running.
      const warned = page.waitForEvent('dialog', { timeout: 10_000 });
      const leaving = page.evaluate('location.reload()').catch((error: unknown) => String(error));
      const dialog = await warned;
      expect(dialog.type()).toBe('beforeunload');
      await dialog.dismiss();
      await leaving;
      expect(await card.getAttribute('data-status')).toBe('running');

      await card.getByRole('button', { name: 'Pause' }).click();
      await page.locator(`${cardSelector(file.fileId)}[data-status="paused"]`).waitFor({ timeout: 10_000 });
      const pausedBytes = await cardNumber(page, file.fileId, 'verified-bytes');
      const shown = await card.locator('.done-text').textContent();
      expect(pausedBytes).toBeGreaterThan(0);
      expect(pausedBytes).toBeLessThan(file.bytes.length);
      // Paused: nothing runs, so nothing to warn about (a dialog would hold the reload up).
      page.once('dialog', (unexpected) => void unexpected.accept());
      let dialogs = 0;
      page.on('dialog', () => dialogs++);
      await page.reload();
      await expect.poll(() => card.locator('.done-text').textContent(), { timeout: 10_000 }).not.toBe('0 B');
      const after = await card.locator('.done-text').textContent();
      console.log(`paused at ${pausedBytes} B: "${shown}"; after the reload: "${after}", status "${await card.locator('.status-text').textContent()}"`);
      expect(dialogs).toBe(0);
      expect(await card.getAttribute('data-status')).toBe('paused');
      expect(await card.locator('.status-text').textContent()).toBe('Paused');
      expect(await cardNumber(page, file.fileId, 'verified-bytes')).toBe(pausedBytes);
      const percent = Math.round((pausedBytes / file.bytes.length) * 100);
      expect(after).toBe(`${formatBytes(pausedBytes)} of ${formatBytes(file.bytes.length)} (${percent}%)`);
      expect(after).toBe(shown);
      expect(await card.locator('.bar').getAttribute('aria-valuenow')).toBe(String(percent));
    } catch (error) {
      throw await explain([tab], error);
    } finally {
      await context.close();
    }
  });
});
