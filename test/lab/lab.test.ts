import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLab, labSupport, parseRate, validateHosts, type Lab, type LabHost } from './lab.ts';
import { listNetns, NETNS_PREFIX } from './netns.ts';

const TCP_TOOL = fileURLToPath(new URL('./tools/tcp-tool.mjs', import.meta.url));
const UDP_TOOL = fileURLToPath(new URL('./tools/udp-tool.mjs', import.meta.url));
const support = labSupport();
const hasNetem = support.isSupported && support.hasNetem;
const hasDelay = support.isSupported && (support.hasNetem || support.hasDelayLine);
const hasPing = (() => {
  try {
    execFileSync('ping', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!support.isSupported) console.log(`test/lab: lab tests skipped: ${support.reason}`);
else if (!hasDelay) console.log('test/lab: delay/jitter/loss cases skipped: no netem qdisc (CONFIG_NET_SCH_NETEM) and no delay line (NFQUEUE, cc, libnetfilter-queue-dev)');
else if (!hasNetem) console.log('test/lab: delay, jitter and loss come from the userspace delay line (this kernel has no netem)');

describe('parseRate', () => {
  it('reads tc bit rates', () => {
    expect(parseRate('100mbit')).toBe(100_000_000);
    expect(parseRate('1.5Mbit')).toBe(1_500_000);
    expect(parseRate('64kbit')).toBe(64_000);
    expect(parseRate('1gbit')).toBe(1_000_000_000);
    expect(parseRate('9600bit')).toBe(9600);
  });

  it.each(['', 'fast', '20', 'mbit', '-5mbit', '20mbps', '20 mb', '1e3kbit', '0bit'])('rejects %j with a clear error', (junk) => {
    expect(() => parseRate(junk)).toThrow(/bad rate .*(bit, kbit, mbit, gbit|at least)/);
  });
});

/** Spawn a tcp-tool server in `host` and wait for its "ready" line. */
async function startServer(host: LabHost, args: string[]): Promise<ChildProcess> {
  const child = host.spawn(process.execPath, [TCP_TOOL, ...args]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (data: Buffer) => {
      if (data.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tcp-tool ${args.join(' ')} exited with ${code}`)));
  });
  return child;
}

describe.skipIf(!support.isSupported)('lab', () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.close();
    lab = undefined;
  });

  it('connects two hosts (TCP round trips); close() kills spawned processes and leaves no namespace', async () => {
    const startedAt = performance.now();
    lab = await createLab([
      { name: 'a', down: '100mbit', up: '20mbit' },
      { name: 'b', down: '100mbit', up: '20mbit' },
    ]);
    console.log(`test/lab: 2-host lab built in ${(performance.now() - startedAt).toFixed(0)} ms`);
    expect(lab.hosts.map((host) => host.ip)).toEqual(['10.99.0.10', '10.99.0.11']);
    const server = await startServer(lab.host('b'), ['echo-serve', '7000']);
    const { stdout } = await lab.host('a').exec(process.execPath, [TCP_TOOL, 'rtt', lab.host('b').ip, '7000', '5']);
    expect((JSON.parse(stdout) as { rttMs: number[] }).rttMs).toHaveLength(5);

    const id = lab.id;
    await lab.close();
    expect(server.signalCode).toBe('SIGKILL');
    expect((await listNetns()).filter((name) => name.startsWith(`${id}-`))).toEqual([]);
    expect((await listNetns()).filter((name) => name.startsWith(`${NETNS_PREFIX}${process.pid}-`))).toEqual([]);
  });

  it.skipIf(!hasDelay)("gives an RTT of about 2*(d1+d2)", async () => {
    lab = await createLab([
      { name: 'a', down: '100mbit', up: '20mbit', delayMs: 10 },
      { name: 'b', down: '100mbit', up: '20mbit', delayMs: 15 },
    ]);
    const expectedMs = 2 * (10 + 15);
    let rttMs: number;
    if (hasPing) {
      const { stdout } = await lab.host('a').exec('ping', ['-c', '3', '-i', '0.2', lab.host('b').ip]);
      rttMs = Number(/= [\d.]+\/([\d.]+)\//.exec(stdout)?.[1]);
    } else {
      await startServer(lab.host('b'), ['echo-serve', '7000']);
      const { stdout } = await lab.host('a').exec(process.execPath, [TCP_TOOL, 'rtt', lab.host('b').ip, '7000', '5']);
      const samples = (JSON.parse(stdout) as { rttMs: number[] }).rttMs.slice(1); // the first may wait for ARP
      rttMs = samples.reduce((sum, value) => sum + value, 0) / samples.length;
    }
    console.log(`test/lab: RTT ${rttMs.toFixed(1)} ms for 2*(10+15) = ${expectedMs} ms (${hasNetem ? 'netem' : 'delay line'})`);
    expect(rttMs).toBeGreaterThan(0.7 * expectedMs);
    expect(rttMs).toBeLessThan(2 * expectedMs);
  });

  it.skipIf(!hasDelay)('drops about the loss asked for on the downlink', async () => {
    lab = await createLab([
      { name: 'a', down: '100mbit', up: '100mbit' },
      { name: 'b', down: '100mbit', up: '100mbit', loss: 0.2 },
    ]);
    const listener = await startUdp(lab.host('b'), ['listen', '7100', '2500']);
    await lab.host('a').exec(process.execPath, [UDP_TOOL, 'burst', `${lab.host('b').ip}:7100`, '1000']);
    await new Promise((resolve) => listener.child.once('exit', resolve));
    const received = (listener.output().match(/^got /gm) ?? []).length;
    console.log(`test/lab: ${received} of 1000 datagrams through a link with 20% loss`);
    // Binomial(1000, 0.8): 800 +- 13 (sd); the margin is over 5 sd.
    expect(received).toBeGreaterThan(720);
    expect(received).toBeLessThan(880);
  });

  it.skipIf(!hasDelay)('carries a bulk TCP transfer at the link rate across a 40 ms RTT', async () => {
    lab = await createLab([
      { name: 'sender', down: '200mbit', up: '100mbit', delayMs: 10 },
      { name: 'receiver', down: '100mbit', up: '20mbit', delayMs: 10 },
    ]);
    const bytes = 24 * 1024 * 1024;
    await startServer(lab.host('sender'), ['bulk-serve', '7200', String(bytes)]);
    const { stdout } = await lab.host('receiver').exec(process.execPath, [TCP_TOOL, 'bulk-fetch', lab.host('sender').ip, '7200']);
    const result = JSON.parse(stdout) as { bytes: number; elapsedMs: number };
    const mbitPerSecond = (result.bytes * 8) / (result.elapsedMs / 1000) / 1e6;
    console.log(`test/lab: ${result.bytes} bytes at ${mbitPerSecond.toFixed(1)} Mbit/s over a 100 Mbit/s path with a 40 ms RTT`);
    expect(result.bytes).toBe(bytes);
    // TCP's slow start costs a few RTTs of a ~2 s transfer; the delay line must not cap it.
    expect(mbitPerSecond).toBeGreaterThan(60);
  });

  it('limits a bulk TCP transfer to the sender uplink, and the receiver counters see it', async () => {
    const upRate = '20mbit';
    lab = await createLab([
      { name: 'sender', down: '100mbit', up: upRate },
      { name: 'receiver', down: '100mbit', up: '20mbit' },
    ]);
    const sentBytes = 6 * 1024 * 1024;
    await startServer(lab.host('sender'), ['bulk-serve', '7001', String(sentBytes)]);
    const before = await lab.host('receiver').counters();
    const { stdout } = await lab.host('receiver').exec(process.execPath, [TCP_TOOL, 'bulk-fetch', lab.host('sender').ip, '7001']);
    const after = await lab.host('receiver').counters();
    const result = JSON.parse(stdout) as { bytes: number; elapsedMs: number };
    const bitsPerSecond = (result.bytes * 8) / (result.elapsedMs / 1000);
    const ratio = bitsPerSecond / parseRate(upRate);
    console.log(`test/lab: ${result.bytes} bytes at ${(bitsPerSecond / 1e6).toFixed(2)} Mbit/s (${ratio.toFixed(3)}x of ${upRate}); receiver rx +${after.rxBytes - before.rxBytes} bytes`);
    expect(result.bytes).toBe(sentBytes);
    expect(ratio).toBeGreaterThan(0.6);
    expect(ratio).toBeLessThan(1.15);
    expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(sentBytes);
  });

  it('removes a namespace left by a dead run', async () => {
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    const stale = `${NETNS_PREFIX}${deadPid}-0-hub`;
    execFileSync('ip', ['netns', 'add', stale]);
    expect(await listNetns()).toContain(stale);
    lab = await createLab([{ name: 'a', down: '10mbit', up: '10mbit' }]);
    expect(await listNetns()).not.toContain(stale);
  });

  it('refuses bad specs with a clear error', async () => {
    await expect(createLab([{ name: 'TooLongName', down: '1mbit', up: '1mbit' }])).rejects.toThrow(/bad host name/);
    await expect(createLab([{ name: 'a', down: '1mbps', up: '1mbit' }])).rejects.toThrow(/bad rate/);
    await expect(createLab([{ name: 'a', down: '1mbit', up: '1mbit', loss: 2 }])).rejects.toThrow(/loss/);
  });

  it('refuses delay, jitter and loss where neither netem nor the delay line can make them', () => {
    expect(() => validateHosts([{ name: 'a', down: '1mbit', up: '1mbit', delayMs: 10 }], undefined, true)).toThrow(/netem qdisc, which this kernel lacks .* or the delay line/);
    expect(() => validateHosts([{ name: 'a', down: '1mbit', up: '1mbit', loss: 0.01 }], undefined, true)).toThrow(/netem/);
    expect(() => validateHosts([{ name: 'a', down: '1mbit', up: '1mbit', delayMs: 10 }], 'delay-line', true)).not.toThrow();
    expect(() => validateHosts([{ name: 'a', down: '1mbit', up: '1mbit', nat: 'eim' }], 'netem', false)).toThrow(/iptables/);
  });

  it('builds a 10-host lab quickly', async () => {
    const startedAt = performance.now();
    lab = await createLab(Array.from({ length: 10 }, (_, index) => ({ name: `h${index}`, down: '50mbit', up: '10mbit' })));
    const elapsedMs = performance.now() - startedAt;
    console.log(`test/lab: 10-host lab built in ${elapsedMs.toFixed(0)} ms`);
    await startServer(lab.host('h9'), ['echo-serve', '7000']);
    const { stdout } = await lab.host('h0').exec(process.execPath, [TCP_TOOL, 'rtt', lab.host('h9').ip, '7000', '2']);
    expect((JSON.parse(stdout) as { rttMs: number[] }).rttMs).toHaveLength(2);
  });
});

/** Start a udp-tool in `host` and wait for its "ready" line; resolves with the process and what it prints. */
async function startUdp(host: LabHost, args: string[]): Promise<{ child: ChildProcess; output: () => string }> {
  const child = host.spawn(process.execPath, [UDP_TOOL, ...args]);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (data: Buffer) => {
      output += data.toString();
      if (output.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`udp-tool ${args.join(' ')} exited with ${code}`)));
  });
  return { child, output: () => output };
}

describe.skipIf(!support.isSupported || !support.hasNat)('lab NAT routers', () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.close();
    lab = undefined;
  });

  it('maps endpoint-independently (eim) or per destination (symmetric), and lets nothing in unasked', async () => {
    lab = await createLab([
      { name: 'pub1', down: '1gbit', up: '1gbit' },
      { name: 'pub2', down: '1gbit', up: '1gbit' },
      { name: 'home', down: '100mbit', up: '20mbit', nat: 'eim' },
      { name: 'cgn', down: '100mbit', up: '20mbit', nat: 'symmetric' },
    ]);
    const [pub1, pub2, home, cgn] = lab.hosts as [LabHost, LabHost, LabHost, LabHost];
    expect(home.ip).toMatch(/^192\.168\.\d+\.2$/);
    expect(home.publicIp).toMatch(/^10\.99\.0\.\d+$/);
    await Promise.all([startUdp(pub1, ['echo', '4000']), startUdp(pub2, ['echo', '4000'])]);
    const probe = async (host: LabHost) => {
      const { stdout } = await host.exec(process.execPath, [UDP_TOOL, 'probe', '5555', `${pub1.ip}:4000`, `${pub2.ip}:4000`]);
      return [...stdout.matchAll(/saw (\S+)/g)].map((match) => match[1]!);
    };
    const fromHome = await probe(home);
    const fromCgn = await probe(cgn);
    console.log(`test/lab: eim NAT mapped 5555 as ${fromHome.join(' and ')}; symmetric as ${fromCgn.join(' and ')}`);
    // Both echo servers see the router's public address, never the private one.
    for (const seen of [...fromHome, ...fromCgn]) expect(seen).toMatch(/^10\.99\.0\.\d+:\d+$/);
    expect(fromHome[0]).toBe(`${home.publicIp}:5555`);
    expect(fromHome[1]).toBe(fromHome[0]);
    expect(fromCgn[0]!.startsWith(`${cgn.publicIp}:`)).toBe(true);
    expect(fromCgn[1]).not.toBe(fromCgn[0]);

    // Unasked: a datagram from pub2 to the eim mapping that only pub1 was sent to (address-dependent filtering)...
    const listener = await startUdp(home, ['listen', '6666', '1500', `${pub1.ip}:4000`]);
    await pub2.exec(process.execPath, [UDP_TOOL, 'send', `${home.publicIp}:6666`]);
    // ...and one straight to the private address, which the hub cannot route.
    await pub2.exec('ip', ['route', 'get', home.ip]).then(
      () => expect.unreachable('the private network must not be routable from the hub'),
      (error: unknown) => expect(String(error)).toMatch(/unreachable|No route/i),
    );
    await pub1.exec(process.execPath, [UDP_TOOL, 'send', `${home.publicIp}:6666`]);
    await new Promise((resolve) => listener.child.once('exit', resolve));
    // The answer from the address and port it sent to comes in; the same host from another
    // port does not, nor does another host (port-restricted filtering, as conntrack does it).
    expect(listener.output()).toContain(`got ${home.publicIp}:6666 from ${pub1.ip}:4000`);
    expect(listener.output()).not.toContain('got hello');
  });
});
