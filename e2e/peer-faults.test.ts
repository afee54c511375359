import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, startServer, type E2eServer, type Tab } from './support/harness.ts';

/**
 * A tab that seeds through the embeddable API with a store that flips a bit in every block
 * it serves, once its own copy is verified. Built in the test from public exports: no test
 * hook exists in the production bundle.
 */
const CORRUPT_SEEDER = `(async () => {
  const api = await import('/assets/peerfill.js');
  const input = document.getElementById('corrupt-source');
  const honest = new api.FileSeedStore(input.files[0]);
  let isLying = false;
  const store = {
    open: (manifest, verify) => honest.open(manifest, verify),
    put: (index, bytes) => honest.put(index, bytes),
    read: async (index, offset, length) => {
      const bytes = await honest.read(index, offset, length);
      if (bytes && isLying) bytes[0] ^= 0x01;
      return bytes;
    },
    flush: () => honest.flush(),
    loadResumeData: () => honest.loadResumeData(),
    saveResumeData: (data) => honest.saveResumeData(data),
    finalize: () => honest.finalize(),
    close: () => honest.close(),
  };
  const client = api.createClient();
  const handle = await api.download(location.origin + '/' + FILE_ID, { client, store, keepSeeding: true });
  await handle.done;
  isLying = true;
  return client.peerIdHex;
})()`;

describe('peer faults', () => {
  let server: E2eServer;
  let browser: Browser;
  const tabs: Tab[] = [];

  beforeAll(async () => {
    requireTestNetwork();
    server = await startServer([randomFile('corrupt.bin', 16 * MiB), randomFile('seeder-leaves.bin', 64 * MiB)], ['--egress-limit', String(6 * MiB)]);
    browser = await launchChromium(server.url);
  });

  afterAll(async () => {
    for (const tab of tabs) await tab.context.close().catch(() => undefined);
    await browser?.close();
    await server?.close();
  });

  it('a tab serving corrupted chunks is banned, and every other tab still gets the right file', { timeout: 150_000 }, async () => {
    const file = server.files.find((candidate) => candidate.name === 'corrupt.bin')!;
    const liar = await openTab(browser, server.url);
    tabs.push(liar);
    await liar.page.evaluate(`(() => { const input = document.createElement('input'); input.type = 'file'; input.id = 'corrupt-source'; input.hidden = true; document.body.append(input); })()`);
    await liar.page.locator('#corrupt-source').setInputFiles(join(server.dir, 'files', file.name));
    const liarPeerId = await liar.page.evaluate(CORRUPT_SEEDER.replace('FILE_ID', JSON.stringify(file.fileId)));
    expect(typeof liarPeerId).toBe('string');

    const leechers = [await openTab(browser, server.url), await openTab(browser, server.url)];
    tabs.push(...leechers);
    await Promise.all(leechers.map((tab) => tab.page.locator(`tr[data-file-id="${file.fileId}"] button.download`).click()));
    for (const tab of leechers) await tab.page.locator(`${cardSelector(file.fileId)} button.save:not([disabled])`).waitFor({ timeout: 120_000 });

    for (const tab of leechers) {
      expect(await tab.page.locator(cardSelector(file.fileId)).getAttribute('data-sha256')).toBe(file.sha256);
      expect(await saveAndHash(tab.page, file.fileId)).toBe(file.sha256);
    }
    // The engine's warnings go to the page console: the liar failed SHA-256 and was banned.
    const logs = leechers.flatMap((tab) => tab.logs);
    expect(logs.some((line) => line.includes('chunk failed SHA-256'))).toBe(true);
    expect(logs.some((line) => line.includes(String(liarPeerId)) && line.includes('banned'))).toBe(true);
  });

  it('the seeding tab closes mid-transfer: HTTP completes the download', { timeout: 150_000 }, async () => {
    const file = server.files.find((candidate) => candidate.name === 'seeder-leaves.bin')!;
    const seeder = await openTab(browser, server.url);
    tabs.push(seeder);
    await seeder.page.locator(`tr[data-file-id="${file.fileId}"] input.seed-input`).setInputFiles(join(server.dir, 'files', file.name));
    await seeder.page.locator(`${cardSelector(file.fileId, 'seed')}[data-status="seeding"]`).waitFor({ timeout: 60_000 });

    const leecher = await openTab(browser, server.url);
    tabs.push(leecher);
    await leecher.page.locator(`tr[data-file-id="${file.fileId}"] button.download`).click();
    await expect.poll(() => cardNumber(leecher.page, file.fileId, 'from-peers-bytes'), { timeout: 60_000, interval: 50 }).toBeGreaterThan(0);
    await seeder.context.close();
    const verifiedAtCloseBytes = await cardNumber(leecher.page, file.fileId, 'verified-bytes');
    const httpAtCloseBytes = await cardNumber(leecher.page, file.fileId, 'from-http-bytes');
    expect(verifiedAtCloseBytes).toBeLessThan(file.bytes.length);

    const card = leecher.page.locator(cardSelector(file.fileId));
    await card.locator('button.save:not([disabled])').waitFor({ timeout: 120_000 });
    expect(await cardNumber(leecher.page, file.fileId, 'from-http-bytes')).toBeGreaterThan(httpAtCloseBytes);
    expect(await card.getAttribute('data-sha256')).toBe(file.sha256);
    expect(await saveAndHash(leecher.page, file.fileId)).toBe(file.sha256);
  });
});
