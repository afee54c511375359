import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SEED_USAGE, runSeed } from '../../client/node/cli-seed.ts';
import { EXIT_CODES } from '../../client/node/exit-codes.ts';
import { freePort } from '../support/net.ts';
import { killProcess, runCli, type CliProcess } from './fixtures/cli.ts';

/** `peerfill seed --timeout S`: the connect and idle timeout of its requests, as get's. */
let dir: string;
const children: CliProcess[] = [];
const hung: Array<{ server: Server; sockets: Socket[] }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-seed-timeout-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) await killProcess(child);
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

async function runInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runSeed(args, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) }, env: {} });
  return { code, stdout, stderr };
}

describe('seed --timeout', () => {
  it('a bad value is a usage error (exit 2) that says what is wrong, before anything is asked', async () => {
    const port = await freePort();
    const file = join(dir, 'f.bin');
    await writeFile(file, 'x');
    for (const bad of ['0', '-3', 'soon', '3601']) {
      const { code, stderr } = await runInProcess([file, '--server', `http://127.0.0.1:${port}`, `--timeout=${bad}`]);
      expect(code).toBe(EXIT_CODES.USAGE);
      expect(stderr).toBe(`peerfill seed: --timeout must be a number of seconds above 0 and at most 3600 (got ${JSON.stringify(bad)})\n`);
    }
  });

  it('--help documents it with its default', async () => {
    const { code, stdout } = await runInProcess(['--help']);
    expect(code).toBe(0);
    expect(stdout).toBe(SEED_USAGE);
    expect(stdout).toMatch(/--timeout S {2}a request that connects or answers no byte for S seconds counts as a lost\n\s+connection \(3600 at most\) \[15\]/);
  });

  it('the catalog request to a hung server fails after --timeout seconds (exit 4), and says so', async () => {
    const { port, sockets } = await hungServer();
    const file = join(dir, 'f.bin');
    await writeFile(file, 'x');
    const seeder = runCli(['seed', file, '--server', `http://127.0.0.1:${port}`, '--timeout', '1', '--json']);
    children.push(seeder);
    expect(await seeder.exit).toBe(EXIT_CODES.NETWORK);
    const error = seeder.lines().find((line) => line.event === 'error');
    expect(error).toMatchObject({ code: 'PF_ERR_UPSTREAM' });
    expect(error!.message).toBe(`127.0.0.1:${port} did not answer for 1 s (--timeout) [ETIMEDOUT]`);
    expect(sockets.length).toBeGreaterThan(0);
  });
});
