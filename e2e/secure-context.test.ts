import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../test/support/net.ts';
import { E2E_HOST, MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork } from './support/harness.ts';

/**
 * The page at a non-localhost address: over plain HTTP it is no secure context (no OPFS, no
 * WebCrypto), so `serve` warns and the page disables its buttons saying why; over HTTPS
 * (`--tls-cert`, a self-signed certificate Chromium is told to accept) the same page works.
 * Two real `peerfill serve` processes on the namespace's veth address; no
 * --unsafely-treat-insecure-origin-as-secure here, unlike the other e2e suites.
 */
const CLI = new URL('../bin/peerfill.mjs', import.meta.url).pathname;

interface Serve {
  child: ChildProcessWithoutNullStreams;
  url: string;
  out: () => string;
  err: () => string;
}

async function serve(dir: string, args: string[]): Promise<Serve> {
  const port = await freePort(E2E_HOST);
  const child = spawn(process.execPath, [CLI, 'serve', '--host', E2E_HOST, '--port', String(port), '--files', join(dir, 'files'), '--data-dir', join(dir, `data-${port}`), '--log-level', 'warn', ...args], { cwd: dir });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  await waitFor(() => out.includes('web page:') || child.exitCode !== null, 'serve to print its page URL');
  const url = /web page: (\S+)\//.exec(out)?.[1];
  if (!url) throw new Error(`serve did not start: ${err}`);
  return { child, url, out: () => out, err: () => err };
}

function stop(server: Serve | undefined): Promise<unknown> {
  if (!server || server.child.exitCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  return exited;
}

describe('the page outside and inside a secure context', () => {
  let dir: string;
  let plain: Serve | undefined;
  let secure: Serve | undefined;
  let browser: Browser | undefined;
  const file = randomFile('tls release.bin', 2 * MiB + 777);

  beforeAll(async () => {
    requireTestNetwork();
    dir = await mkdtemp(join(tmpdir(), 'pf-e2e-tls-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', file.name), file.bytes);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${E2E_HOST}`, '-addext', `subjectAltName=IP:${E2E_HOST}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    [plain, secure] = await Promise.all([serve(dir, []), serve(dir, ['--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')])]);
    browser = await launchChromium([], undefined, ['--ignore-certificate-errors']);
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([stop(plain), stop(secure)]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function catalogRow(page: Page) {
    const row = page.locator('tr', { hasText: file.name });
    await row.waitFor({ timeout: 30_000 });
    return row;
  }

  it('over plain http at the veth address: serve warns, and the page disables its buttons and says why', async () => {
    expect(plain!.url).toMatch(new RegExp(`^http://${E2E_HOST.replaceAll('.', '\\.')}:\\d+$`));
    expect(plain!.err()).toContain(`peerfill: warning: ${plain!.url}/ is plain HTTP at an address other than localhost`);
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${plain!.url}/`);
      expect(await page.evaluate('window.isSecureContext')).toBe(false);
      const row = await catalogRow(page);
      const download = row.getByRole('button', { name: `Download ${file.name}` });
      expect(await download.isDisabled()).toBe(true);
      expect(await row.locator('input.seed-input').isDisabled()).toBe(true);
      const warning = page.locator('#secure-context-warning');
      expect(await warning.isVisible()).toBe(true);
      expect(await warning.textContent()).toContain(`this page was opened at ${plain!.url}, which is not a secure context`);
      // The reason is the buttons' accessible description, so a screen reader says it too.
      expect(await download.getAttribute('aria-describedby')).toBe('secure-context-warning');
      await download.click({ force: true });
      expect(await page.locator('li.card').count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it('over https (--tls-cert) at the same address: no warning, the buttons work, and a download completes', async () => {
    expect(secure!.url).toMatch(new RegExp(`^https://${E2E_HOST.replaceAll('.', '\\.')}:\\d+$`));
    expect(secure!.err()).toBe('');
    const { page, context, logs } = await openTab(browser!, secure!.url);
    try {
      expect(await page.evaluate('window.isSecureContext')).toBe(true);
      const row = await catalogRow(page);
      const fileId = await row.getAttribute('data-file-id');
      const download = row.getByRole('button', { name: `Download ${file.name}` });
      expect(await download.isEnabled()).toBe(true);
      expect(await row.locator('input.seed-input').isEnabled()).toBe(true);
      expect(await page.locator('#secure-context-warning').isVisible()).toBe(false);
      await download.click();
      await page.locator(`${cardSelector(fileId!)} button.save:not([disabled])`).waitFor({ timeout: 30_000 });
      expect(await cardNumber(page, fileId!, 'verified-bytes')).toBe(file.bytes.length);
    } catch (error) {
      throw new Error(`${(error as Error).message}\nlogs: ${logs.slice(-10).join('\n')}`);
    } finally {
      await context.close();
    }
  });
});
