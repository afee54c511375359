import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MiB,
  cardNumber,
  cardSelector,
  ensureArtifactsDir,
  launchChromium,
  openTab,
  randomFile,
  requireTestNetwork,
  saveAndHash,
  startServer,
  type E2eServer,
  type Tab,
} from './support/harness.ts';

const FILE_BYTES = 64 * MiB;
const ORIGIN_BYTES_PER_SECOND = 8 * MiB;

describe('swarm: one seeding tab, four downloading tabs (separate browser contexts)', () => {
  let server: E2eServer;
  let browser: Browser;
  const tabs: Tab[] = [];

  beforeAll(async () => {
    requireTestNetwork();
    // The origin capped at 8 MiB/s for the whole swarm: a CDN whose egress is the scarce,
    // paid-for resource (the case peerfill is for). Uncapped on a veth, HTTP finishes a
    // 64 MiB file before the first WebRTC connection is up, and there is no swarm to test.
    server = await startServer([randomFile('release-64m.bin', FILE_BYTES)], ['--egress-limit', String(ORIGIN_BYTES_PER_SECOND)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    for (const tab of tabs) await tab.context.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  it('every tab gets the exact file, mostly from peers, and the origin sends under 2x the file', { timeout: 240_000 }, async () => {
    const file = server.files[0]!;
    const seeder = await openTab(browser, server.url);
    tabs.push(seeder);
    // The seeder has the file on disk: "Seed my copy…" reads and verifies it, uploads nothing to the server.
    await seeder.page.locator(`tr[data-file-id="${file.fileId}"] input.seed-input`).setInputFiles(join(server.dir, 'files', file.name));
    await seeder.page.locator(`${cardSelector(file.fileId, 'seed')}[data-status="seeding"]`).waitFor({ timeout: 60_000 });
    const originBeforeBytes = server.originBytes();

    const leechers: Tab[] = [];
    for (let i = 0; i < 4; i++) leechers.push(await openTab(browser, server.url));
    tabs.push(...leechers);
    await Promise.all(leechers.map((tab) => tab.page.locator(`tr[data-file-id="${file.fileId}"] button.download`).click()));

    // A picture of the page mid-download, kept as an artifact.
    const watched = leechers[0]!.page;
    await expect.poll(() => cardNumber(watched, file.fileId, 'verified-bytes'), { timeout: 60_000, interval: 100 }).toBeGreaterThan(FILE_BYTES / 8);
    await watched.screenshot({ path: join(await ensureArtifactsDir(), 'page-mid-download.png'), fullPage: true });

    try {
      for (const tab of leechers) await tab.page.locator(`${cardSelector(file.fileId)} button.save:not([disabled])`).waitFor({ timeout: 180_000 });
    } catch (error) {
      const states = await Promise.all(leechers.map((tab) => tab.page.locator(cardSelector(file.fileId)).evaluate((card: HTMLElement) => JSON.stringify(card.dataset)).catch(String)));
      throw new Error(`${String(error)}\n${states.join('\n')}\n${leechers.map((tab) => tab.logs.slice(-20).join('\n')).join('\n---\n')}`);
    }

    let fromPeersBytes = 0;
    let fromHttpBytes = 0;
    for (const tab of leechers) {
      expect(await tab.page.locator(cardSelector(file.fileId)).getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(tab.page, file.fileId)).toBe(file.sha256);
      fromPeersBytes += await cardNumber(tab.page, file.fileId, 'from-peers-bytes');
      fromHttpBytes += await cardNumber(tab.page, file.fileId, 'from-http-bytes');
    }
    const originBytes = server.originBytes();
    console.log(
      `swarm: ${(fromPeersBytes / MiB).toFixed(1)} MiB from peers, ${(fromHttpBytes / MiB).toFixed(1)} MiB from HTTP; origin sent ${(originBytes / MiB).toFixed(1)} MiB ` +
        `(${(originBeforeBytes / MiB).toFixed(1)} MiB before the downloads began) for a ${FILE_BYTES / MiB} MiB file`,
    );
    // At least the four files; a chunk that two sources complete at the same moment can be counted twice (engine race, reported).
    expect(fromPeersBytes + fromHttpBytes).toBeGreaterThanOrEqual(4 * FILE_BYTES);
    expect(fromPeersBytes).toBeGreaterThan(2 * FILE_BYTES);
    expect(originBytes).toBeLessThan(2 * FILE_BYTES);
  });
});
