import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/net.ts';
import { killProcess, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, finished, getCli, lineOf, publishFile, sha256, type Published } from './fixtures/get-cli.ts';
import { startTestServer, type TestServer } from './fixtures/server.ts';

/** `peerfill get` while the server is away: down at start, gone mid-download, hung. */
let dir: string;
const servers: TestServer[] = [];
const children: CliProcess[] = [];
let hung: { server: Server; sockets: Socket[] } | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-outage-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) await killProcess(child);
  for (const server of servers.splice(0)) await server.close();
  if (hung) {
    for (const socket of hung.sockets) socket.destroy();
    await new Promise((resolve) => hung!.server.close(resolve));
    hung = undefined;
  }
  await rm(dir, { recursive: true, force: true });
});

async function publish(bytes: Uint8Array, egressBytesPerSecond = 0): Promise<Published> {
  const one = await publishFile(dir, bytes, { egressBytesPerSecond });
  servers.push(one.server);
  return one;
}

/** The same server again (same files, data and port), as after a restart. */
async function restart(port: number, egressBytesPerSecond = 0): Promise<TestServer> {
  const server = await startTestServer({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), port, egressBytesPerSecond });
  servers.push(server);
  return server;
}

/** Stop the server as a crash would: no new connections, and the responses in flight cut. */
async function stop(server: TestServer): Promise<void> {
  const closing = server.close();
  server.app.server.closeAllConnections();
  await closing;
  servers.splice(servers.indexOf(server), 1);
}

function get(args: string[]): CliProcess {
  const child = getCli(args);
  children.push(child);
  return child;
}

describe('peerfill get while the server is away', () => {
  it('a server that is down at start is waited for ("connection lost, retrying"), and the download then runs', async () => {
    const bytes = testBytes(2 * MiB, 81);
    const { server, url, port } = await publish(bytes).then((one) => ({ ...one, port: one.server.port }));
    await stop(server);
    const out = join(dir, 'out.bin');
    const child = get([url, '-o', out, '--no-peers', '--retry-for', '120']);
    const retry = await child.waitForLine((line) => line.event === 'retry', 'a retry while the server is down');
    expect(String(retry.message)).toBe(`nothing is listening at 127.0.0.1:${port} (connection refused) [ECONNREFUSED]`);
    expect(Number(retry.retry_in_ms)).toBeGreaterThan(0);
    expect(retry.retry_for_ms).toBe(120_000);
    await restart(port);
    const { code } = await finished(child);
    expect(code).toBe(0);
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
  });

  it('--retry-for 0 fails at the first loss, with exit 4 and the cause in plain words', async () => {
    const port = await freePort();
    const { code, lines } = await finished(get([`http://127.0.0.1:${port}/some_file`, '-o', join(dir, 'x.bin'), '--no-peers', '--retry-for', '0']));
    expect(code).toBe(4);
    expect(lineOf(lines, 'error')!.message).toBe(`connection lost: nothing is listening at 127.0.0.1:${port} (connection refused) [ECONNREFUSED]`);
  });

  it('the server goes away mid-download and comes back: the download waits, then finishes on the same data', async () => {
    const bytes = testBytes(8 * MiB, 82);
    const { server, url } = await publish(bytes, 2 * MiB);
    const port = server.port;
    const out = join(dir, 'out.bin');
    const child = get([url, '-o', out, '--no-peers']);
    let chunks = 0;
    await child.waitForLine((line) => line.event === 'chunk' && ++chunks >= 8, 'eight chunks before the outage');
    await stop(server);
    // Two waits in a row: longer than one failed request, so more than the filler's own retries.
    let retries = 0;
    await child.waitForLine((line) => line.event === 'retry' && ++retries >= 3, 'three retries during the outage');
    const second = await restart(port, 2 * MiB);
    const { code, lines } = await finished(child);
    expect(code).toBe(0);
    const waits = lines.filter((line) => line.event === 'retry').map((line) => Number(line.retry_in_ms));
    console.log(`outage: waits of ${waits.join(', ')} ms, then ${(second.dataPlaneBytes() / MiB).toFixed(1)} MiB from the restarted server`);
    // Capped exponential backoff: the waits grow.
    expect(waits[2]!).toBeGreaterThan(waits[0]!);
    expect(second.dataPlaneBytes()).toBeGreaterThan(0);
    expect(sha256(await readFile(out))).toBe(sha256(bytes));
  });

  it('an outage longer than --retry-for ends the download with exit 4, its state saved for a rerun', async () => {
    const bytes = testBytes(8 * MiB, 83);
    const { server, url } = await publish(bytes, 2 * MiB);
    const out = join(dir, 'out.bin');
    const child = get([url, '-o', out, '--no-peers', '--retry-for', '2']);
    let chunks = 0;
    await child.waitForLine((line) => line.event === 'chunk' && ++chunks >= 4, 'four chunks before the outage');
    await stop(server);
    const { code, lines } = await finished(child);
    expect(code).toBe(4);
    expect(String(lineOf(lines, 'error')!.message)).toMatch(/^connection lost for 2 s \(--retry-for\): /);
    await restart(server.port);
    const rerun = await finished(get([url, '-o', out, '--no-peers']));
    expect(rerun.code).toBe(0);
    expect(Number(lineOf(rerun.lines, 'done')!.resumed_bytes)).toBeGreaterThan(0);
  });

  it('a hung server (accepts, never answers) times out after the default 15 s instead of hanging get', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => void sockets.push(socket));
    hung = { server, sockets };
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const { code, lines } = await finished(get([`http://127.0.0.1:${port}/some_file`, '-o', join(dir, 'x.bin'), '--no-peers', '--retry-for', '0']));
    expect(code).toBe(4);
    expect(lineOf(lines, 'error')!.message).toBe(`connection lost: 127.0.0.1:${port} did not answer for 15 s (--timeout) [ETIMEDOUT]`);
    expect(sockets.length).toBeGreaterThan(0);
  });

  it('https:// to a plain-HTTP port says so in plain words (a URL mistake: exit 2, no retry)', async () => {
    const { server, fileId } = await publish(testBytes(MiB, 84));
    const { code, lines } = await finished(get([`https://127.0.0.1:${server.port}/${fileId}`, '-o', join(dir, 'x.bin'), '--no-peers']));
    expect(code).toBe(2);
    expect(lineOf(lines, 'error')!.message).toBe(`127.0.0.1:${server.port} does not speak TLS: use http:// instead of https://`);
  });
});
