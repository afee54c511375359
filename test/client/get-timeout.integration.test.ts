import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GET_USAGE, parseTimeoutSeconds, runGet } from '../../client/node/cli-get.ts';
import { EXIT_CODES } from '../../client/node/exit-codes.ts';
import { freePort } from '../support/net.ts';
import { killProcess, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { MiB, finished, getCli, lineOf, publishFile } from './fixtures/get-cli.ts';
import type { TestServer } from './fixtures/server.ts';

/** `peerfill get --timeout S`: the connect and idle timeout of API and data-plane requests. */
let dir: string;
const servers: TestServer[] = [];
const children: CliProcess[] = [];
const hung: Array<{ server: Server; sockets: Socket[] }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-timeout-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) await killProcess(child);
  for (const server of servers.splice(0)) await server.close();
  for (const { server, sockets } of hung.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
  await rm(dir, { recursive: true, force: true });
});

/** A server that accepts connections and never answers; its port. */
async function hungServer(): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => void sockets.push(socket));
  hung.push({ server, sockets });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, sockets };
}

function get(args: string[]): CliProcess {
  const child = getCli(args);
  children.push(child);
  return child;
}

/** runGet in this process, with its output captured. */
async function runInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runGet(args, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) }, env: {} });
  return { code, stdout, stderr };
}

describe('get --timeout', () => {
  it('takes seconds above 0 and at most an hour; 15 s without the flag', () => {
    expect(parseTimeoutSeconds(undefined)).toBe(15_000);
    expect(parseTimeoutSeconds('2')).toBe(2000);
    expect(parseTimeoutSeconds('0.5')).toBe(500);
    expect(parseTimeoutSeconds(' 30 ')).toBe(30_000);
    expect(parseTimeoutSeconds('3600')).toBe(3_600_000);
    for (const bad of ['0', '0.0001', '-1', '', 'abc', '1e3', '3601', 'Infinity', '10s', '0x10']) expect(parseTimeoutSeconds(bad), bad).toBeUndefined();
  });

  it('a bad value is a usage error (exit 2) that says what is wrong, before anything is fetched', async () => {
    const port = await freePort();
    for (const bad of ['0', '-3', 'soon']) {
      const { code, stderr } = await runInProcess([`http://127.0.0.1:${port}/f`, '-o', join(dir, 'x.bin'), `--timeout=${bad}`]);
      expect(code).toBe(EXIT_CODES.USAGE);
      expect(stderr).toBe(`peerfill get: --timeout must be a number of seconds above 0 and at most 3600 (got ${JSON.stringify(bad)})\n`);
    }
  });

  it('--help documents it with its default', async () => {
    const { code, stdout } = await runInProcess(['--help']);
    expect(code).toBe(0);
    expect(stdout).toBe(GET_USAGE);
    expect(stdout).toMatch(/--timeout S {2}a request that connects or answers no byte for S seconds counts as a lost\n\s+connection \(API and data-plane requests alike; 3600 at most\) \[15\]/);
  });

  it('an API request to a hung server fails after --timeout seconds, and says so', async () => {
    const { port, sockets } = await hungServer();
    const { code, lines } = await finished(get([`http://127.0.0.1:${port}/some_file`, '-o', join(dir, 'x.bin'), '--no-peers', '--retry-for', '0', '--timeout', '1']));
    expect(code).toBe(EXIT_CODES.NETWORK);
    expect(lineOf(lines, 'error')!.message).toBe(`connection lost: 127.0.0.1:${port} did not answer for 1 s (--timeout) [ETIMEDOUT]`);
    expect(sockets.length).toBeGreaterThan(0);
  });

  it('a data-plane Range request to a hung server fails after --timeout seconds (the API answers; minted URLs point at the hung port)', async () => {
    const data = await hungServer();
    const published = await publishFile(dir, testBytes(2 * MiB, 161), { publicUrl: `http://127.0.0.1:${data.port}` });
    servers.push(published.server);
    const { code, lines } = await finished(get([published.url, '-o', join(dir, 'x.bin'), '--no-peers', '--retry-for', '0', '--timeout', '1.5']));
    expect(code).toBe(EXIT_CODES.NETWORK);
    expect(lineOf(lines, 'error')!.message).toBe(`connection lost: 127.0.0.1:${data.port} sent nothing for 1.5 s`);
    expect(data.sockets.length).toBeGreaterThan(0);
    expect(published.server.dataPlaneBytes()).toBe(0);
  });
});
