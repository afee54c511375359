import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer } from './support/harness.ts';

const FILE_BYTES = 16 * MiB;

/** Bytes covered by the union of `bytes=a-b` ranges. */
function coveredBytes(ranges: string[]): number {
  const spans = ranges
    .map((range) => /^bytes=(\d+)-(\d+)$/.exec(range))
    .filter((match) => match !== null)
    .map((match) => [Number(match[1]), Number(match[2]) + 1] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let reached = 0;
  for (const [start, end] of spans) {
    if (end <= reached) continue;
    total += end - Math.max(start, reached);
    reached = end;
  }
  return total;
}

describe('one tab against a slow origin: reload and pause', () => {
  let server: E2eServer;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    // A 6 MiB/s origin, so there is a "middle" of the download to reload or pause in.
    server = await startServer([randomFile('reload.bin', FILE_BYTES), randomFile('pause.bin', FILE_BYTES)], ['--egress-limit', String(6 * MiB)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a reload mid-download resumes from OPFS and its session, refetching no verified chunk', { timeout: 120_000 }, async () => {
    const file = server.files.find((candidate) => candidate.name === 'reload.bin')!;
    const { page, context } = await openTab(browser, server.url);
    try {
      await page.locator(`tr[data-file-id="${file.fileId}"] button.download`).click();
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 60_000, interval: 50 }).toBeGreaterThan(FILE_BYTES / 4);
      // Leaving mid-download asks first (see e2e/states.test.ts); here the user says leave.
      const dialogs: string[] = [];
      page.once('dialog', (dialog) => {
        dialogs.push(dialog.type());
        void dialog.accept();
      });
      await page.reload();
      expect(dialogs).toEqual(['beforeunload']);
      const requestsBeforeResume = server.ranges.length;

      // The page restores the card by itself and continues.
      const card = page.locator(cardSelector(file.fileId));
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      const resumedBytes = await cardNumber(page, file.fileId, 'resumed-bytes');
      expect(resumedBytes).toBeGreaterThan(0);
      expect(resumedBytes).toBeLessThan(FILE_BYTES);

      // What the origin was asked for after the reload covers exactly what was not verified
      // before it: no verified chunk again. (Distinct byte ranges: Chromium or the engine
      // sometimes issues the same Range GET twice, resume or not; reported separately.)
      const after = server.ranges.slice(requestsBeforeResume).filter((request) => request.path.startsWith(`/d/${file.fileId}/`));
      expect(after.length).toBeGreaterThan(0);
      expect(coveredBytes(after.map((request) => request.range))).toBe(FILE_BYTES - resumedBytes);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
    } finally {
      await context.close();
    }
  });

  it('pauses and resumes with the page’s own buttons', { timeout: 120_000 }, async () => {
    const file = server.files.find((candidate) => candidate.name === 'pause.bin')!;
    const { page, context } = await openTab(browser, server.url);
    try {
      await page.locator(`tr[data-file-id="${file.fileId}"] button.download`).click();
      const card = page.locator(cardSelector(file.fileId));
      await expect.poll(() => cardNumber(page, file.fileId, 'verified-bytes'), { timeout: 60_000, interval: 50 }).toBeGreaterThan(FILE_BYTES / 8);
      const pause = card.getByRole('button', { name: 'Pause' });
      await pause.click();
      await page.locator(`${cardSelector(file.fileId)}[data-status="paused"]`).waitFor({ timeout: 10_000 });
      expect(await card.locator('button.pause').getAttribute('aria-pressed')).toBe('true');

      // Paused: the origin is asked for nothing more, and the count stands still.
      const requestsWhenPaused = server.ranges.length;
      const pausedBytes = await cardNumber(page, file.fileId, 'verified-bytes');
      expect(pausedBytes).toBeLessThan(FILE_BYTES);
      await page.waitForTimeout(2000);
      expect(server.ranges.length).toBe(requestsWhenPaused);
      expect(await cardNumber(page, file.fileId, 'verified-bytes')).toBe(pausedBytes);

      // Resume from the keyboard.
      await card.getByRole('button', { name: 'Resume' }).focus();
      await page.keyboard.press('Enter');
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 60_000 });
      expect(server.ranges.length).toBeGreaterThan(requestsWhenPaused);
      expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
    } finally {
      await context.close();
    }
  });
});
