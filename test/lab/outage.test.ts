// `peerfill get` through outages in the lab: a real `peerfill serve` on one host and a real `get`
// on another, with the server killed and restarted, hung (SIGSTOP), absent at start, or the
// client's link taken down; and the file republished by its publisher while the get runs. Small
// --timeout and --retry-for keep each case short; the assertions are on outcomes, events and byte
// counts, never on wall time.
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run } from './command.ts';
import { createLab, labSupport, type Lab, type LabHost } from './lab.ts';
import { runGet, serveFile, stop, type CliEvent, type GetResult } from './peerfill.ts';

const MiB = 1024 * 1024;
const PORT = 8080;
/** Short enough for CI, long enough that a cut at a quarter of the file lands mid-download (16 MiB at 16 Mbit/s: ~9 s). */
const SIZE = 16 * MiB;
const TIMEOUT_S = 2;
const support = labSupport();
if (!support.isSupported) console.log(`test/lab: outage tests skipped: ${support.reason}`);

let dir: string;
let lab: Lab | undefined;
let file: { sha256: string; bytes: Buffer };
let serve: ChildProcess | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pf-lab-outage-'));
  await mkdir(join(dir, 'files'));
  const bytes = randomBytes(SIZE);
  await writeFile(join(dir, 'files', 'big.bin'), bytes);
  file = { sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
  lab = await createLab([
    { name: 'pub', down: '1gbit', up: '16mbit' },
    { name: 'client', down: '100mbit', up: '100mbit' },
  ]);
});
afterEach(async () => {
  if (serve) resume(serve);
  await lab?.close();
  lab = undefined;
  serve = undefined;
  await rm(dir, { recursive: true, force: true });
});

const pub = () => lab!.host('pub');
const client = () => lab!.host('client');
const serveOptions = () => ({ filesDir: join(dir, 'files'), dataDir: join(dir, 'data'), port: PORT });

/** `peerfill serve` on the pub host (same port and data each time, as a restarted server); the file's URL. */
async function startServer(name = 'big.bin'): Promise<string> {
  const served = await serveFile(pub(), name, serveOptions());
  serve = served.child;
  return served.fileUrl;
}

/** The server dies as a crash would (SIGKILL: no graceful close, no snapshot). */
async function killServer(): Promise<void> {
  const child = serve!;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
  serve = undefined;
}

function resume(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
}

async function setLink(host: LabHost, state: 'up' | 'down'): Promise<void> {
  await run('ip', ['-n', host.netns, 'link', 'set', 'eth0', state]);
}

/** A `get` in the client host whose events can be awaited while it runs. */
function startGet(url: string, out: string, args: string[]): { result: Promise<GetResult>; waitFor(predicate: (event: CliEvent) => boolean, what: string, limitMs?: number): Promise<CliEvent> } {
  const events: CliEvent[] = [];
  const waiters = new Set<(event: CliEvent) => void>();
  let exited = false;
  const result = runGet(client(), url, out, ['--no-peers', '--timeout', String(TIMEOUT_S), ...args], 150_000, (event) => {
    events.push(event);
    for (const waiter of [...waiters]) waiter(event);
  }).finally(() => {
    exited = true;
    for (const waiter of [...waiters]) waiter({ event: '__exit' });
  });
  return {
    result,
    waitFor(predicate, what, limitMs = 60_000) {
      const found = events.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out after ${limitMs} ms waiting for ${what}`)), limitMs);
        const finish = (error: Error | undefined, event?: CliEvent) => {
          clearTimeout(timer);
          waiters.delete(onEvent);
          if (error) reject(error);
          else resolve(event!);
        };
        const onEvent = (event: CliEvent) => {
          if (event.event === '__exit' || exited) finish(new Error(`get exited before ${what}`));
          else if (predicate(event)) finish(undefined, event);
        };
        waiters.add(onEvent);
      });
    },
  };
}

const atQuarter = (event: CliEvent) => event.event === 'progress' && Number(event.verified_bytes) >= SIZE / 4;
const retries = (result: GetResult) => result.events.filter((event) => event.event === 'retry');
const num = (event: CliEvent | undefined, field: string) => Number(event?.[field] ?? Number.NaN);

/** Exit 0, the exact file, and nothing fetched twice beyond the chunks in flight when the connection went (4 lanes, one chunk each). */
async function expectComplete(result: GetResult, out: string, label: string): Promise<void> {
  const done = result.done;
  const chunkCount = num(result.lastProgress, 'chunk_count');
  const chunkSize = SIZE / chunkCount;
  console.log(
    `test/lab outage ${label}: exit ${result.exitCode}, ${retries(result).length} retries (${retries(result).map((event) => `${String(event.message)} +${String(event.retry_in_ms)} ms`).join('; ')}), ` +
      `http ${(num(done, 'from_http_bytes') / MiB).toFixed(2)} MiB, received ${(num(done, 'http_received_bytes') / MiB).toFixed(2)} MiB, resumed ${(num(done, 'resumed_bytes') / MiB).toFixed(2)} MiB`,
  );
  expect(result.exitCode, result.stderr).toBe(0);
  expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(file.sha256);
  expect(done?.sha256).toBe(file.sha256);
  expect(num(done, 'total_bytes')).toBe(SIZE);
  expect(num(done, 'from_http_bytes') + num(done, 'resumed_bytes')).toBe(SIZE);
  expect(num(done, 'http_received_bytes')).toBeGreaterThanOrEqual(num(done, 'from_http_bytes'));
  expect(num(done, 'http_received_bytes')).toBeLessThanOrEqual(num(done, 'from_http_bytes') + 4 * chunkSize);
  // No state or lock left beside the published file.
  for (const suffix of ['.part', '.part.state', '.part.lock']) await expect(stat(`${out}${suffix}`)).rejects.toThrow();
}

describe.skipIf(!support.isSupported)('peerfill get through outages (lab)', () => {
  it('(a) the server process dies mid-download and comes back on the same port: the download survives and completes', async () => {
    const url = await startServer();
    const out = join(dir, 'a.bin');
    const get = startGet(url, out, ['--retry-for', '60']);
    await get.waitFor(atQuarter, 'a quarter of the file');
    await killServer();
    // The responses cut by the crash end as the server's kernel sends what it had queued (a
    // shaped link drains it slowly), then a new connection finds nothing listening: only then is
    // the server brought back.
    await get.waitFor((event) => event.event === 'retry' && String(event.message).startsWith('nothing is listening'), 'a retry that finds nothing listening');
    await startServer();
    const result = await get.result;
    await expectComplete(result, out, '(a) server killed and restarted');
    // The responses cut by the crash, then nothing listening, in plain words.
    expect(String(retries(result)[0]!.message)).toMatch(new RegExp(`^${pub().ip.replaceAll('.', '\\.')}:${PORT} closed the connection`));
    expect(retries(result).some((event) => String(event.message).startsWith(`nothing is listening at ${pub().ip}:${PORT} (connection refused)`))).toBe(true);
    // The bytes verified before the crash were not fetched again.
    expect(num(result.done, 'http_received_bytes')).toBeLessThan(SIZE * 1.25);
  }, 120_000);

  it('(b) the client loses its link for longer than --timeout: "connection lost, retrying", and it completes once the link is back', async () => {
    const url = await startServer();
    const out = join(dir, 'b.bin');
    const get = startGet(url, out, ['--retry-for', '60']);
    await get.waitFor(atQuarter, 'a quarter of the file');
    await setLink(client(), 'down');
    // The responses in flight go silent (no RST comes over a dead link): the idle timeout ends them.
    const first = await get.waitFor((event) => event.event === 'retry', 'a retry after the link went down');
    // New connections while it is down: no route. The link comes back only after one.
    const noRoute = await get.waitFor((event) => event.event === 'retry' && String(event.message).startsWith('no route'), 'a retry that finds no route');
    await setLink(client(), 'up');
    const result = await get.result;
    await expectComplete(result, out, '(b) link down');
    expect(String(first.message)).toBe(`${pub().ip}:${PORT} sent nothing for ${TIMEOUT_S} s`);
    expect(String(noRoute.message)).toBe(`no route to ${pub().ip}:${PORT} (is the network down?) [ENETUNREACH]`);
  }, 120_000);

  it('(c) the server is down at start: the get is retried, and completes once the server appears', async () => {
    // Learn the file's URL, then take the server away before the get starts.
    const url = await startServer();
    await stop(serve!);
    serve = undefined;
    const out = join(dir, 'c.bin');
    const get = startGet(url, out, ['--retry-for', '60']);
    let seen = 0;
    await get.waitFor((event) => event.event === 'retry' && ++seen >= 2, 'two retries while nothing listens');
    await startServer();
    const result = await get.result;
    await expectComplete(result, out, '(c) down at start');
    expect(String(retries(result)[0]!.message)).toBe(`nothing is listening at ${pub().ip}:${PORT} (connection refused) [ECONNREFUSED]`);
    expect(num(result.done, 'resumed_bytes')).toBe(0);
  }, 120_000);

  it('(d) a hung server at start (SIGSTOP): the API request times out after --timeout and is retried; it completes after SIGCONT', async () => {
    const url = await startServer();
    serve!.kill('SIGSTOP');
    const out = join(dir, 'd.bin');
    const get = startGet(url, out, ['--retry-for', '60']);
    let seen = 0;
    await get.waitFor((event) => event.event === 'retry' && ++seen >= 2, 'two retries while the server is stopped');
    resume(serve!);
    const result = await get.result;
    await expectComplete(result, out, '(d) hung at start');
    expect(String(retries(result)[0]!.message)).toBe(`${pub().ip}:${PORT} did not answer for ${TIMEOUT_S} s (--timeout) [ETIMEDOUT]`);
  }, 120_000);

  it('(e) an outage longer than --retry-for ends with exit 4 and the state kept; the rerun resumes from it', async () => {
    const url = await startServer();
    const out = join(dir, 'e.bin');
    const get = startGet(url, out, ['--retry-for', '4']);
    await get.waitFor(atQuarter, 'a quarter of the file');
    await killServer();
    const failed = await get.result;
    const error = failed.events.find((event) => event.event === 'error');
    console.log(`test/lab outage (e): exit ${failed.exitCode}, ${retries(failed).length} retries, error ${String(error?.message)}`);
    expect(failed.exitCode).toBe(4);
    expect(String(error?.message)).toMatch(/^connection lost for 4 s \(--retry-for\): /);
    expect(retries(failed).length).toBeGreaterThan(0);
    expect((await stat(`${out}.part.state`)).size).toBeGreaterThan(0);
    await expect(stat(out)).rejects.toThrow();

    await startServer();
    const rerun = startGet(url, out, ['--retry-for', '60']);
    const result = await rerun.result;
    await expectComplete(result, out, '(e) rerun');
    expect(num(result.done, 'resumed_bytes')).toBeGreaterThanOrEqual(SIZE / 4);
  }, 120_000);

  it('(f) the publisher overwrites the file with a few chunks changed while a shaped get runs: the get says so, keeps what still matches, and finishes the new version', async () => {
    // Larger, so that chunks can be changed well ahead of what serve has already read and
    // queued for each lane (up to ~3 MiB per connection): those chunks would come in their old
    // version, and a download that never sees a changed byte rightly finishes the old file.
    const size = 32 * MiB;
    const bytes = randomBytes(size);
    const path = join(dir, 'files', 'new.bin');
    await writeFile(path, bytes);
    const url = await startServer('new.bin');
    const out = join(dir, 'f.bin');
    const sentBefore = (await pub().counters()).txBytes;
    const get = startGet(url, out, ['--retry-for', '60']);
    const first = await get.waitFor((event) => event.event === 'chunk', 'a first chunk');
    const chunkCount = Number((await get.waitFor((event) => event.event === 'progress' && Number(event.chunk_count) > 0, 'the chunk count')).chunk_count);
    const chunkSize = size / chunkCount;
    // The four lanes take a quarter each in file order: change the first chunk stored (behind the
    // download) and the last chunk of each quarter (each lane's last, ~8 MiB ahead of it).
    const changed = [...new Set([Number(first.index), ...[1, 2, 3, 4].map((quarter) => (quarter * chunkCount) / 4 - 1)])];
    const next = Buffer.from(bytes);
    for (const index of changed) randomBytes(chunkSize).copy(next, index * chunkSize);
    // No rescan is asked for: serve notices the new file from its data plane, as with a real
    // publisher. A chunk read while the file is rewritten in place is a wrong chunk too: either
    // prompts the get's manifest check, which finds the new version once serve has rescanned.
    await writeFile(path, next);
    const result = await get.result;
    const sentBytes = (await pub().counters()).txBytes - sentBefore;
    const switched = result.events.find((event) => event.event === 'changed');
    console.log(
      `test/lab republished mid-run: exit ${result.exitCode}, changed ${JSON.stringify(changed)}, kept ${String(switched?.kept_chunks)} of ${chunkCount} chunks, origin sent ${(sentBytes / MiB).toFixed(2)} MiB for ${size / MiB} (${((sentBytes - size) / chunkSize).toFixed(1)} chunks extra), warnings ${JSON.stringify([...new Set(result.warnings)])}`,
    );
    expect(result.exitCode, result.stderr).toBe(0);
    expect(switched).toMatchObject({ name: 'new.bin', chunk_count: chunkCount });
    const newSha256 = createHash('sha256').update(next).digest('hex');
    expect(result.done?.sha256).toBe(newSha256);
    expect(createHash('sha256').update(await readFile(out)).digest('hex')).toBe(newSha256);
    const before = new Set(result.events.slice(0, result.events.indexOf(switched!)).filter((event) => event.event === 'chunk').map((event) => Number(event.index)));
    expect(Number(switched!.kept_chunks)).toBe([...before].filter((index) => !changed.includes(index)).length);
    expect(Number(switched!.kept_chunks)).toBeGreaterThan(0);
    // About one copy: the changed chunks and the runs cut by the switch come twice (headers: ~5 % on the wire).
    expect(sentBytes).toBeLessThan((size + (changed.length + 8) * chunkSize) * 1.06);
  }, 150_000);
});
