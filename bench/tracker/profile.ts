// Where one tracker process spends its time under bench/tracker's load.
//
//   node --import tsx bench/tracker/profile.ts [--kind peerfill|bittorrent-tracker] [--peers 4000]
//     [--seconds 10] [--generators 2] [--top 25] [--keep path.cpuprofile]
//
// Starts server.ts under `node --cpu-prof` pinned to core 0, the load generators (load.ts,
// raw client, closed loop, one offer per announce) on the other cores, loads it for --seconds,
// then stops the server with SIGINT so that V8 writes the profile. Prints the announces/s it
// answered meanwhile, and self time by category (ws framing, JSON, the store, our code,
// node's net/streams, GC, idle) and by function. Bounded; stops by itself.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Type } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';
import { summarizeProfile } from './cpu-profile.ts';
import { freePort } from '../../test/support/net.ts';

const { values } = parseArgs({
  options: {
    kind: { type: 'string', default: 'peerfill' },
    peers: { type: 'string', default: '4000' },
    seconds: { type: 'string', default: '10' },
    generators: { type: 'string', default: '2' },
    top: { type: 'string', default: '25' },
    keep: { type: 'string' },
  },
});
const KIND = values.kind === 'bittorrent-tracker' ? 'bittorrent-tracker' : 'peerfill';
const PEERS = Math.max(1, Math.min(20_000, Number(values.peers)));
const SECONDS = Math.max(2, Math.min(60, Number(values.seconds)));
const GENERATORS = Math.max(1, Math.min(8, Number(values.generators)));
const TOP = Math.max(5, Math.min(100, Number(values.top)));
const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));
const cores = readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? 1;
const pin = (cpus: string) => (cores > 1 ? ['taskset', '-c', cpus] : []);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const cpuSeconds = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
};

const resultCodec = createCodec(Type.Object({ answered: Type.Integer(), seconds: Type.Number() }));

function waitForLine(child: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (data: Buffer) => {
      buffer += data.toString('utf8');
      const line = buffer.split('\n').find((candidate) => candidate.startsWith(prefix));
      if (line) {
        clearTimeout(timer);
        resolve(line.slice(prefix.length).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before "${prefix}"`));
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'pf-bench-profile-'));
const children: ChildProcess[] = [];
const limit = setTimeout(() => {
  console.log('STOPPED: the profile run passed its time limit');
  for (const child of children) child.kill('SIGKILL');
  process.exit(3);
}, (SECONDS + 180) * 1000);
try {
  const port = await freePort();
  const url = KIND === 'peerfill' ? `ws://127.0.0.1:${port}/announce` : `ws://127.0.0.1:${port}`;
  const server = spawn(pin('0')[0] ?? process.execPath, [...pin('0').slice(1), ...(cores > 1 ? [process.execPath] : []), '--cpu-prof', '--cpu-prof-dir', dir, '--import', 'tsx', here('server.ts'), KIND, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  await waitForLine(server, 'READY', 30_000);
  const swarms = Array.from({ length: 50 }, () => randomBytes(20).toString('hex'));
  const generators: ChildProcess[] = [];
  for (let g = 0; g < GENERATORS; g++) {
    const firstPeer = Math.floor((g * PEERS) / GENERATORS);
    const count = Math.floor(((g + 1) * PEERS) / GENERATORS) - firstPeer;
    const options = { mode: 'throughput', client: 'raw', url, peers: count, firstPeer, swarms, sourceAddresses: 20 };
    const cpus = cores > 1 ? `1-${cores - 1}` : '0';
    const generator = spawn(pin(cpus)[0] ?? process.execPath, [...pin(cpus).slice(1), ...(cores > 1 ? [process.execPath] : []), '--import', 'tsx', here('load.ts'), JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(generator);
    generators.push(generator);
  }
  await Promise.all(generators.map((generator) => waitForLine(generator, 'READY', 120_000)));
  const results = generators.map((generator) => waitForLine(generator, 'RESULT', 60_000 + SECONDS * 2000));
  const send = (line: string) => generators.forEach((generator) => generator.stdin!.write(`${line}\n`));
  send('start');
  await sleep(1000);
  const cpuBefore = cpuSeconds(server.pid!);
  const startedAt = process.hrtime.bigint();
  send('measure');
  await sleep(SECONDS * 1000);
  send('stop');
  const serverCpu = (100 * (cpuSeconds(server.pid!) - cpuBefore)) / (Number(process.hrtime.bigint() - startedAt) / 1e9);
  const rate = (await Promise.all(results)).map((line) => {
    const parsed = parseJson(line);
    return resultCodec.parse(parsed.ok ? parsed.value : undefined);
  }).reduce((sum, result) => sum + result.answered / result.seconds, 0);
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGINT');
  await exited;
  const file = (await readdir(dir)).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error('the server wrote no .cpuprofile');
  if (values.keep) await copyFile(join(dir, file), values.keep);
  console.log(`profile of ${KIND} (bench/tracker/profile.ts): ${PEERS} closed-loop peers, ${GENERATORS} generators, ${SECONDS}s; ${rate.toFixed(0)} announces/s at server CPU ${serverCpu.toFixed(0)}%; load average ${loadAverage()}`);
  for (const line of summarizeProfile(await readFile(join(dir, file), 'utf8'), TOP)) console.log(line);
} finally {
  clearTimeout(limit);
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
}
