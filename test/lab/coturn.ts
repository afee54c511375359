// coturn (Debian's turnserver) started in a lab host, with a config written as a real
// deployment would write it: TURN REST API credentials (use-auth-secret), no TLS in the lab,
// and relaying refused to every private, loopback and special range except the lab's own.
// docs/nat.md says what to change for production.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LabHost } from './host.ts';

/** Whether Debian's coturn (turnserver) is installed; the NAT tests say they were skipped without it. */
export function hasCoturn(): boolean {
  try {
    return execFileSync('sh', ['-c', 'command -v turnserver'], { stdio: 'pipe' }).length > 0;
  } catch {
    return false;
  }
}

/** Ranges a TURN server must never relay to (RFC 6890 special-purpose, RFC 1918, loopback, link-local, CGN, multicast). */
export const DENIED_PEER_RANGES = [
  '0.0.0.0-0.255.255.255',
  '10.0.0.0-10.255.255.255',
  '100.64.0.0-100.127.255.255',
  '127.0.0.0-127.255.255.255',
  '169.254.0.0-169.254.255.255',
  '172.16.0.0-172.31.255.255',
  '192.0.0.0-192.0.0.255',
  '192.0.2.0-192.0.2.255',
  '192.88.99.0-192.88.99.255',
  '192.168.0.0-192.168.255.255',
  '198.18.0.0-198.19.255.255',
  '198.51.100.0-198.51.100.255',
  '203.0.113.0-203.0.113.255',
  '224.0.0.0-255.255.255.255',
  '::1',
  '64:ff9b::-64:ff9b::ffff:ffff',
  '::ffff:0.0.0.0-::ffff:255.255.255.255',
  'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
];

/** The lab's hub network: the one range this TURN server may relay to (what "the internet" is here). */
export const LAB_PEER_RANGE = '10.99.0.0-10.99.0.255';

export interface CoturnOptions {
  /** The shared secret (coturn static-auth-secret = peerfill's PEERFILL_TURN_SECRET). */
  secret: string;
  port: number;
  /** Relay ports; a small range keeps the lab's footprint small. */
  minRelayPort?: number;
  maxRelayPort?: number;
}

export interface Coturn {
  /** `stun:<ip>:<port>` and `turn:<ip>:<port>?transport=udp`, as peerfill serve's --stun/--turn take them. */
  stunUrl: string;
  turnUrl: string;
  child: ChildProcess;
  /** What coturn logged (allocations, refusals): the test's evidence of what the relay did. */
  log(): string;
  close(): void;
}

export function coturnConfig(host: LabHost, options: CoturnOptions, dir: string): string {
  return [
    `listening-ip=${host.ip}`,
    `relay-ip=${host.ip}`,
    `listening-port=${options.port}`,
    `min-port=${options.minRelayPort ?? 49152}`,
    `max-port=${options.maxRelayPort ?? 49407}`,
    'use-auth-secret',
    `static-auth-secret=${options.secret}`,
    'realm=lab.peerfill.test',
    'fingerprint',
    // Production serves turns: on 443 with a certificate as well (docs/nat.md); the lab has no TLS.
    'no-tls',
    'no-dtls',
    'no-cli',
    'no-multicast-peers',
    'no-rfc5780',
    'no-software-attribute',
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    'log-file=stdout',
    'simple-log',
    'verbose',
    ...DENIED_PEER_RANGES.map((range) => `denied-peer-ip=${range}`),
    // allowed-peer-ip is checked before denied-peer-ip: the lab's hub is the lab's internet.
    `allowed-peer-ip=${LAB_PEER_RANGE}`,
    '',
  ].join('\n');
}

/** Start coturn in `host`; resolves once its UDP listener is open. */
export async function startCoturn(host: LabHost, options: CoturnOptions): Promise<Coturn> {
  const dir = mkdtempSync(join(tmpdir(), 'pf-lab-coturn-'));
  const configPath = join(dir, 'turnserver.conf');
  writeFileSync(configPath, coturnConfig(host, options, dir), { mode: 0o600 });
  const child = host.spawn('turnserver', ['-c', configPath]);
  let text = '';
  const append = (line: string) => {
    if (text.length < 1024 * 1024) text += `${line}\n`;
  };
  if (child.stderr) createInterface({ input: child.stderr }).on('line', append);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coturn did not open its listener within 15 s:\n${text.slice(-3000)}`)), 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`coturn exited (${code}) before listening:\n${text.slice(-3000)}`));
    });
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (line) => {
        append(line);
        if (/UDP listener opened on\s*:?\s*\S*:\d+/i.test(line) || /UDP\s+.*listener opened/i.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
  return {
    stunUrl: `stun:${host.ip}:${options.port}`,
    turnUrl: `turn:${host.ip}:${options.port}?transport=udp`,
    child,
    log: () => text,
    close() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
