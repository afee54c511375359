import { readFile } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2E_HOST, MiB, cardNumber, cardSelector, launchChromium, openTab, randomFile, requireTestNetwork, saveAndHash, sha256Hex, startServer, type E2eServer } from './support/harness.ts';
import { readmeExample } from './support/readme-example.ts';

/** Records every CSP violation of the document, before any of its own scripts run. */
const RECORD_VIOLATIONS = `window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline') + (event.sample ? ' (' + event.sample + ')' : ''));
});`;

async function violations(page: Page): Promise<unknown> {
  return page.evaluate('window.cspViolations');
}

/**
 * Whether `new Function` runs in the page's own task (DevTools' evaluate is exempt from the
 * policy, a timer's callback is not): proof that the policy in force forbids eval, and that
 * the recorder sees it.
 */
async function evalOutcome(page: Page): Promise<unknown> {
  await page.evaluate(`setTimeout(() => {
    try { window.evalOutcome = new Function('return "ran"')(); } catch (error) { window.evalOutcome = error.name; }
  }, 0)`);
  await page.waitForFunction('window.evalOutcome !== undefined');
  return page.evaluate('window.evalOutcome');
}

/**
 * A publisher's site on another origin, with the strict policy such sites run: scripts only
 * from itself and the peerfill server, connections only to the peerfill server.
 */
async function startPublisher(serverUrl: string, app: string): Promise<{ url: string; policy: string; close(): Promise<void> }> {
  const policy = `default-src 'self'; script-src 'self' ${serverUrl}; connect-src ${serverUrl} ${serverUrl.replace(/^http/, 'ws')}; object-src 'none'; base-uri 'none'`;
  const http: HttpServer = createServer((request, response) => {
    if (request.url === '/app.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(app);
      return;
    }
    response
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': policy })
      .end('<!doctype html><title>publisher</title><h1>A publisher</h1><script type="module" src="/app.js"></script>');
  });
  await new Promise<void>((resolve) => http.listen(0, E2E_HOST, resolve));
  const { port } = http.address() as AddressInfo;
  return { url: `http://${E2E_HOST}:${port}`, policy, close: () => new Promise((resolve) => http.close(() => resolve())) };
}

describe('under a strict Content-Security-Policy (no unsafe-eval, no inline code)', () => {
  let server: E2eServer;
  let publisher: Awaited<ReturnType<typeof startPublisher>>;
  let browser: Browser;

  beforeAll(async () => {
    requireTestNetwork();
    server = await startServer([randomFile('strict.bin', 2 * MiB + 4321)]);
    const file = server.files[0]!;
    publisher = await startPublisher(server.url, readmeExample(server.url, file.fileId));
    browser = await launchChromium([server.url, publisher.url]);
  });

  afterAll(async () => {
    await browser?.close();
    await publisher?.close();
    await server?.close();
  });

  it("peerfill's page sends a strict policy, and downloads, verifies and saves under it", async () => {
    const file = server.files[0]!;
    const response = await fetch(`${server.url}/`);
    const policy = response.headers.get('content-security-policy') ?? '';
    console.log(`page CSP: ${policy}`);
    expect(policy).toMatch(/^default-src 'self';/);
    expect(policy).not.toMatch(/unsafe-eval|unsafe-inline|\*/);
    const { page, context, logs } = await openTab(browser, server.url, { initScript: RECORD_VIOLATIONS });
    try {
      await page.getByRole('button', { name: `Download ${file.name}` }).click();
      const card = page.locator(cardSelector(file.fileId));
      await card.locator('button.save:not([disabled])').waitFor({ timeout: 30_000 });
      expect(await cardNumber(page, file.fileId, 'verified-bytes')).toBe(file.bytes.length);
      expect(await saveAndHash(page, file.fileId)).toBe(file.sha256);
      expect(await violations(page)).toEqual([]);
      expect(await evalOutcome(page)).toBe('EvalError');
      expect(await violations(page)).toEqual([expect.stringMatching(/^script-src blocked eval/)]);
    } catch (error) {
      throw new Error(`${String(error)}\npage log:\n${logs.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  it("the README example runs on a publisher's page whose policy allows scripts only from itself and the server", async () => {
    const file = server.files[0]!;
    const { page, context, logs } = await openTab(browser, publisher.url, { initScript: RECORD_VIOLATIONS });
    try {
      const save = page.getByRole('button', { name: `Save ${file.name}` });
      await save.waitFor({ timeout: 30_000 });
      expect(await page.title()).toBe('100%');
      const [saved] = await Promise.all([page.waitForEvent('download'), save.click()]);
      expect(saved.suggestedFilename()).toBe(file.name);
      expect(sha256Hex(await readFile(await saved.path()))).toBe(file.sha256);
      expect(await violations(page)).toEqual([]);
      expect(await evalOutcome(page)).toBe('EvalError');
      expect(await violations(page)).toEqual([expect.stringMatching(/^script-src blocked eval/)]);
    } catch (error) {
      throw new Error(`${String(error)}\npublisher CSP: ${publisher.policy}\npage log:\n${logs.join('\n')}`);
    } finally {
      await context.close();
    }
  });
});
