import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readStateFile } from '../../client/node/state-file.ts';
import { sessionStateCodec } from '../../protocol/index.ts';
import { killProcess, runCli, type CliLine, type CliProcess } from './fixtures/cli.ts';
import { testBytes } from './fixtures/fake-server.ts';
import { startTestServer, type TestServer } from './fixtures/server.ts';

/** `peerfill get` and `peerfill seed` as real processes against the real serve composition. */
const MiB = 1024 * 1024;
const FILE_BYTES = 16 * MiB;
const bytes = testBytes(FILE_BYTES, 53);
const sha256 = createHash('sha256').update(bytes).digest('hex');

let dir: string;
let server: TestServer;
let fileId: string;
let chunkSize: number;
const procs: CliProcess[] = [];

const run = (args: string[], onLine?: NonNullable<Parameters<typeof runCli>[1]>['onLine']): CliProcess => {
  const proc = runCli(args, { cwd: dir, onLine });
  procs.push(proc);
  return proc;
};
const doneLine = (proc: CliProcess): CliLine | undefined => proc.lines().find((line) => line.event === 'done');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-cli-'));
  await mkdir(join(dir, 'files'));
  await writeFile(join(dir, 'files', 'release.bin'), bytes);
  // A capped origin: peers matter, and a download lasts long enough to interrupt.
  server = await startTestServer({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), egressBytesPerSecond: 2 * MiB, announceIntervalSeconds: 2 });
  const list = (await (await fetch(`${server.url}/files`)).json()) as { files: Array<{ file_id: string; chunk_size: number }> };
  ({ file_id: fileId, chunk_size: chunkSize } = list.files[0]!);
});
afterEach(async () => {
  for (const proc of procs.splice(0)) await killProcess(proc);
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('peerfill seed', () => {
  it('checks the file against the manifest and seeds it: a leecher gets bytes from it', async () => {
    const seeder = run(['seed', join(dir, 'files', 'release.bin'), '--server', server.url, '--json']);
    const seeding = await seeder.waitForLine((line) => line.event === 'seeding', 'the seeder to check its file');
    expect(seeding).toMatchObject({ file_id: fileId, sha256 });

    const out = join(dir, 'from-seeder.bin');
    const get = run(['get', `${server.url}/${fileId}`, '-o', out, '--json']);
    expect(await get.exit).toBe(0);
    const done = doneLine(get);
    expect(done).toMatchObject({ sha256, total_bytes: FILE_BYTES });
    expect(Number(done?.from_peers_bytes)).toBeGreaterThan(0);
    expect(Number(done?.from_peers_bytes) + Number(done?.from_http_bytes)).toBe(FILE_BYTES);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(sha256);

    seeder.child.kill('SIGINT');
    expect(await seeder.exit).toBe(0);
  });

  it('exits 3 when the file does not match the manifest', async () => {
    const wrong = Buffer.from(bytes);
    wrong[FILE_BYTES - 1]! ^= 0x01;
    await mkdir(join(dir, 'wrong'));
    await writeFile(join(dir, 'wrong', 'release.bin'), wrong);
    const seeder = run(['seed', join(dir, 'wrong', 'release.bin'), '--server', server.url, '--json']);
    expect(await seeder.exit).toBe(3);
    expect(seeder.lines().find((line) => line.event === 'error')).toMatchObject({ code: 'PF_ERR_FILE_HASH_MISMATCH' });
    expect(seeder.lines().some((line) => line.event === 'seeding')).toBe(false);
  });
});

describe('peerfill get', () => {
  it('SIGINT pauses (exit 130, session PATCHed paused); a rerun resumes without re-fetching verified chunks', async () => {
    const out = join(dir, 'paused.bin');
    const args = ['get', `${server.url}/${fileId}`, '-o', out, '--json', '--no-peers'];
    let chunks = 0;
    const first = run(args, (line, child) => {
      if (line.event === 'chunk' && ++chunks === 16) child.kill('SIGINT');
    });
    expect(await first.exit).toBe(130);
    const paused = first.lines().find((line) => line.event === 'paused');
    expect(paused).toBeDefined();
    const pausedBytes = Number(paused!.verified_bytes);
    expect(pausedBytes).toBeGreaterThanOrEqual(16 * chunkSize);
    expect(pausedBytes).toBeLessThan(FILE_BYTES);
    expect(doneLine(first)).toBeUndefined();

    // The state file names the session; the server holds it as paused.
    const state = await readStateFile(`${out}.part.state`);
    if (state.kind !== 'valid' || !state.body.resume) throw new Error(`no session in the state file (${state.kind})`);
    expect(state.body.resume.session_id).toBe(paused!.session_id);
    const response = await fetch(`${server.url}/downloads/${state.body.resume.session_id}`, { headers: { authorization: `Bearer ${state.body.resume.session_token}` } });
    expect(response.status).toBe(200);
    const session = sessionStateCodec.parse(await response.json());
    expect(session.status).toBe('paused');
    expect(session.bytes_confirmed).toBe(pausedBytes);

    const second = run(args);
    expect(await second.exit).toBe(0);
    const done = doneLine(second)!;
    expect(done).toMatchObject({ sha256, total_bytes: FILE_BYTES });
    // Everything verified before the pause was kept; only the rest came over HTTP.
    expect(Number(done.resumed_bytes)).toBe(pausedBytes);
    expect(Number(done.from_http_bytes)).toBe(FILE_BYTES - pausedBytes);
    expect(Number(done.http_received_bytes)).toBe(FILE_BYTES - pausedBytes);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(sha256);
  });

  it('exits 5 for a file id the server does not have', async () => {
    const [named, unnamed] = [
      run(['get', `${server.url}/no-such-file`, '-o', join(dir, 'nope.bin'), '--json']),
      run(['get', `${server.url}/files/no-such-file`, '--json']),
    ];
    expect(await named.exit).toBe(5);
    expect(await unnamed.exit).toBe(5);
    expect(named.lines().find((line) => line.event === 'error')?.code).toMatch(/NOT_FOUND/);
  });

  it('exits 2 on bad usage', async () => {
    const cases = [
      ['get'],
      ['get', '--bogus', `${server.url}/${fileId}`],
      ['get', 'not a url'],
      ['get', `${server.url}/${fileId}`, '--seed', '-1'],
      ['get', `${server.url}/a`, `${server.url}/b`],
      ['seed', join(dir, 'files', 'release.bin')],
      ['seed', '--server', server.url],
    ];
    const codes = await Promise.all(cases.map((args) => run(args).exit));
    expect(codes).toEqual(cases.map(() => 2));
  });
});
