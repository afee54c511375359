// A Chromium tab behind a symmetric NAT downloads from a seeding tab behind another, through
// the publisher's TURN (coturn): Debian's Chromium started inside lab hosts, driven by Playwright
// over its pipe.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cardNumber, cardSelector, launchChromium, openTab, saveAndHash, type Tab } from '../../e2e/support/harness.ts';
import { hasCoturn, startCoturn, type Coturn } from './coturn.ts';
import { createLab, labSupport, type Lab, type LabHost } from './lab.ts';
import { fileIds, startServe } from './peerfill.ts';

const MiB = 1024 * 1024;
const SECRET = 'lab-turn-secret-0123456789';
const support = labSupport();
const canRun = support.isSupported && support.hasNat && hasCoturn() && existsSync('/usr/bin/chromium');
if (!canRun) console.log('test/lab: Chromium NAT test skipped: needs root, iptables, coturn and /usr/bin/chromium');

/** A Chromium that starts inside `host`: Playwright's pipe (fds 3 and 4) passes through `ip netns exec`. */
async function chromiumIn(host: LabHost, dir: string, serverUrl: string): Promise<Browser> {
  const wrapper = join(dir, `chromium-${host.name}`);
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${host.netns} /usr/bin/chromium "$@"\n`);
  await chmod(wrapper, 0o755);
  return launchChromium(serverUrl, wrapper);
}

describe.skipIf(!canRun)('Chromium behind symmetric NATs', () => {
  let dir: string;
  let lab: Lab;
  let coturn: Coturn;
  const browsers: Browser[] = [];
  const tabs: Tab[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-lab-chromium-'));
    await mkdir(join(dir, 'files'));
    lab = await createLab([
      { name: 'pub', down: '1gbit', up: '16mbit' },
      { name: 'seedtab', down: '200mbit', up: '100mbit', nat: 'symmetric' },
      { name: 'leechtab', down: '200mbit', up: '20mbit', nat: 'symmetric' },
    ]);
    coturn = await startCoturn(lab.host('pub'), { secret: SECRET, port: 3478 });
  }, 60_000);

  afterAll(async () => {
    for (const tab of tabs) await tab.context.close().catch(() => undefined);
    for (const browser of browsers) await browser.close().catch(() => undefined);
    coturn?.close();
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a tab downloads from a seeding tab through TURN (relay), and the page says so', { timeout: 240_000 }, async () => {
    const bytes = randomBytes(24 * MiB);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(dir, 'files', 'tabs.bin'), bytes);
    const pub = lab.host('pub');
    const { url } = await startServe(pub, {
      filesDir: join(dir, 'files'),
      dataDir: join(dir, 'data'),
      port: 8080,
      extraArgs: ['--stun', coturn.stunUrl, '--turn', coturn.turnUrl],
      env: { PEERFILL_TURN_SECRET: SECRET },
    });
    const fileId = (await fileIds(pub, url)).get('tabs.bin')!;

    const seederBrowser = await chromiumIn(lab.host('seedtab'), dir, url);
    const leecherBrowser = await chromiumIn(lab.host('leechtab'), dir, url);
    browsers.push(seederBrowser, leecherBrowser);
    const seeder = await openTab(seederBrowser, url);
    const leecher = await openTab(leecherBrowser, url);
    tabs.push(seeder, leecher);

    await seeder.page.locator(`tr[data-file-id="${fileId}"] input.seed-input`).setInputFiles(join(dir, 'files', 'tabs.bin'));
    await seeder.page.locator(`${cardSelector(fileId, 'seed')}[data-status="seeding"]`).waitFor({ timeout: 60_000 });
    await leecher.page.locator(`tr[data-file-id="${fileId}"] button.download`).click();
    // Connected through the relay, and the page says so while it downloads.
    await leecher.page.locator(`${cardSelector(fileId)}[data-connections*="relay:1"]`).waitFor({ timeout: 60_000 });
    const peersText = await leecher.page.locator(`${cardSelector(fileId)} .peer-count`).textContent();
    // The page says which ICE servers are in use (never their credentials).
    const iceText = await leecher.page.locator(`${cardSelector(fileId)} .ice-text`).textContent();
    expect(iceText).toBe(`STUN ${coturn.stunUrl} · TURN ${coturn.turnUrl}`);
    await leecher.page.locator(`${cardSelector(fileId)} button.save:not([disabled])`).waitFor({ timeout: 120_000 }).catch(async (error: unknown) => {
      const card = await leecher.page.locator(cardSelector(fileId)).evaluate((element) => `${JSON.stringify((element as HTMLElement).dataset)} ${element.textContent ?? ''}`);
      throw new Error(`the download did not finish: ${card}\nleecher console: ${leecher.logs.slice(-30).join('\n')}\nseeder console: ${seeder.logs.slice(-15).join('\n')}`, { cause: error });
    });
    const fromPeers = await cardNumber(leecher.page, fileId, 'from-peers-bytes');
    console.log(`test/lab Chromium NAT: leecher page says "${peersText}"; ${(fromPeers / MiB).toFixed(1)} MiB of ${bytes.length / MiB} MiB from the seeding tab through TURN`);
    expect(peersText).toMatch(/1 peer, 1 through relay/);
    expect(fromPeers).toBeGreaterThan(0);
    expect(await saveAndHash(leecher.page, fileId)).toBe(sha256);
    expect(coturn.log()).toMatch(/ALLOCATE processed, success/);
  });

  it('with TURN credentials coturn refuses, the page says there is no relay and why, and HTTP completes the file', { timeout: 120_000 }, async () => {
    const bytes = randomBytes(4 * MiB);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(dir, 'files', 'refused.bin'), bytes);
    const pub = lab.host('pub');
    const { url } = await startServe(pub, {
      filesDir: join(dir, 'files'),
      dataDir: join(dir, 'data-refused'),
      port: 8081,
      extraArgs: ['--stun', coturn.stunUrl, '--turn', coturn.turnUrl],
      env: { PEERFILL_TURN_SECRET: 'not-the-coturn-secret-42' },
    });
    const fileId = (await fileIds(pub, url)).get('refused.bin')!;
    const browser = await chromiumIn(lab.host('leechtab'), dir, url);
    browsers.push(browser);
    const tab = await openTab(browser, url);
    tabs.push(tab);
    await tab.page.locator(`tr[data-file-id="${fileId}"] button.download`).click();
    await tab.page.locator(`${cardSelector(fileId)}[data-relay-problem]`).waitFor({ timeout: 60_000 });
    expect(await tab.page.locator(`${cardSelector(fileId)} .peer-count`).textContent()).toMatch(/No relay: the TURN server gave no relay \(wrong or expired credentials/);
    await tab.page.locator(`${cardSelector(fileId)} button.save:not([disabled])`).waitFor({ timeout: 60_000 });
    expect(await saveAndHash(tab.page, fileId)).toBe(sha256);
  });
});
