/**
 * The lab: an internet-like network of Linux network namespaces built from a few HostSpecs.
 * A hub namespace holds a bridge; each host is a namespace whose veth `eth0` plugs into it. The
 * host's uplink is shaped on the egress of its eth0, its downlink on the egress of the hub-side
 * end. See README.md beside this file.
 */
import type { ChildProcess } from 'node:child_process';
import { run } from './command.ts';
import { killGroup, makeHost, waitForExit, type LabHost } from './host.ts';
import { LabError } from './lab-error.ts';
import { deleteNetns, deleteNetnsSync, labNetnsName, NETNS_PREFIX, removeStaleNetns } from './netns.ts';
import { parseRate } from './rate.ts';
import { labSupport } from './support.ts';
import { NAT_KINDS, natHostLines, natRouterLines, natRules, privateNet, type NatKind } from './nat.ts';
import { startDelayLines } from './delay-line.ts';
import { needsNetem, shapingCommands } from './tc.ts';

export { parseRate } from './rate.ts';
export { labSupport, type LabSupport } from './support.ts';
export { LabError, type LabErrorCode } from './lab-error.ts';
export { parseLinkCounters, type LabHost, type SpawnOptions } from './host.ts';
export type { NatKind } from './nat.ts';

export interface HostSpec {
  /** [a-z0-9]{1,8}: it becomes part of interface and namespace names (interfaces allow 15 chars). */
  name: string;
  /** What the host can receive, as a tc rate ('100mbit'; bit, kbit, mbit, gbit). */
  down: string;
  /** What the host can send ('20mbit'). */
  up: string;
  /** One-way delay of the access link, applied in each direction: RTT between hosts = 2*(d1+d2). Default 0. */
  delayMs?: number;
  /** Random variation of delayMs, each direction. Default 0. */
  jitterMs?: number;
  /** Fraction of packets dropped on the downlink, e.g. 0.002. Default 0. */
  loss?: number;
  /**
   * A NAT router between the host and the hub (see nat.ts): 'eim' maps endpoint-independently
   * (iptables MASQUERADE keeps the source port where it can, as most home routers do), 'symmetric'
   * maps address-and-port-dependently (MASQUERADE --random-fully: a new port per destination, as
   * carrier-grade and many office NATs do). Both filter what was not asked for. Default: none,
   * the host is on the hub's network itself.
   */
  nat?: NatKind;
}

export interface Lab {
  /** `pflab<pid>-<n>`, the prefix of every namespace of this lab. */
  readonly id: string;
  host(name: string): LabHost;
  readonly hosts: LabHost[];
  /** Kill every spawned process and delete every namespace. Safe to call twice. */
  close(): Promise<void>;
}

const HOST_NAME = /^[a-z0-9]{1,8}$/;
const FIRST_HOST_OCTET = 10;
const MAX_HOSTS = 254 - FIRST_HOST_OCTET;

interface LabState {
  readonly netnsNames: string[];
  readonly children: Set<ChildProcess>;
}

let labCounter = 0;
const openLabs = new Set<LabState>();

// close() may never run (a test that throws before it, a worker that exits): the namespaces
// would outlive the process, so the exit handler removes them synchronously.
process.once('exit', () => {
  for (const state of openLabs) {
    for (const child of state.children) killGroup(child);
    deleteNetnsSync(state.netnsNames);
  }
});

/** How a lab makes delay, jitter and loss: netem in tc, the userspace delay line, or not at all. */
export type DelayMethod = 'netem' | 'delay-line' | undefined;

/** Check a lab's description against what this machine can build; throws LabError saying what is wrong. */
export function validateHosts(hosts: HostSpec[], delay: DelayMethod, hasNat: boolean): void {
  if (hosts.length === 0) throw new LabError('PF_ERR_LAB_SPEC', 'a lab needs at least one host');
  if (hosts.length > MAX_HOSTS) throw new LabError('PF_ERR_LAB_SPEC', `a lab holds at most ${MAX_HOSTS} hosts`);
  const names = new Set<string>();
  for (const host of hosts) {
    if (!HOST_NAME.test(host.name)) throw new LabError('PF_ERR_LAB_SPEC', `bad host name ${JSON.stringify(host.name)}: expected [a-z0-9]{1,8}`);
    if (host.name === 'hub') throw new LabError('PF_ERR_LAB_SPEC', 'the host name "hub" is taken by the lab');
    if (names.has(host.name)) throw new LabError('PF_ERR_LAB_SPEC', `duplicate host name ${host.name}`);
    names.add(host.name);
    parseRate(host.down);
    parseRate(host.up);
    for (const [field, value] of [['delayMs', host.delayMs], ['jitterMs', host.jitterMs]] as const) {
      if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new LabError('PF_ERR_LAB_SPEC', `${host.name}: ${field} must be a number >= 0`);
    }
    if (host.loss !== undefined && !(host.loss >= 0 && host.loss < 1)) throw new LabError('PF_ERR_LAB_SPEC', `${host.name}: loss is a fraction in [0, 1)`);
    if (host.nat !== undefined && !NAT_KINDS.includes(host.nat)) throw new LabError('PF_ERR_LAB_SPEC', `${host.name}: nat is one of ${NAT_KINDS.join(', ')}`);
    if (host.nat !== undefined && !hasNat) throw new LabError('PF_ERR_LAB_UNSUPPORTED', `${host.name}: a NAT router needs iptables with conntrack and NAT in a namespace (Debian package iptables)`);
    if (delay === undefined && needsNetem(shapeOf(host, 'down'))) {
      throw new LabError(
        'PF_ERR_LAB_UNSUPPORTED',
        `${host.name}: delayMs/jitterMs/loss need the netem qdisc, which this kernel lacks (CONFIG_NET_SCH_NETEM), or the delay line (iptables NFQUEUE, cc and Debian's libnetfilter-queue-dev)`,
      );
    }
  }
}

function shapeOf(host: HostSpec, direction: 'up' | 'down') {
  return {
    rate: direction === 'up' ? host.up : host.down,
    delayMs: host.delayMs ?? 0,
    jitterMs: host.jitterMs ?? 0,
    // Loss is a downlink property (the last mile drops what it receives), so only there.
    loss: direction === 'down' ? (host.loss ?? 0) : 0,
  };
}

/** Build the network described by `hosts`. Removes namespaces of dead runs first. */
export async function createLab(hosts: HostSpec[]): Promise<Lab> {
  const support = labSupport();
  if (!support.isSupported) throw new LabError('PF_ERR_LAB_UNSUPPORTED', `cannot build a lab: ${support.reason}`);
  const delay: DelayMethod = support.hasNetem ? 'netem' : support.hasDelayLine ? 'delay-line' : undefined;
  validateHosts(hosts, delay, support.hasNat);
  await removeStaleNetns();

  const labNumber = labCounter++;
  const id = `${NETNS_PREFIX}${process.pid}-${labNumber}`;
  const hubNetns = labNetnsName(labNumber, 'hub');
  const hostNetns = hosts.map((host) => labNetnsName(labNumber, host.name));
  // A NATed host's router: `nat<name>` (host names have no dash, so it cannot clash).
  const routerNetns = hosts.map((host) => (host.nat ? labNetnsName(labNumber, `nat${host.name}`) : undefined));
  const state: LabState = { netnsNames: [hubNetns, ...hostNetns, ...routerNetns.filter((netns) => netns !== undefined)], children: new Set() };
  openLabs.add(state); // before anything exists, so that a half-built lab is cleaned up too

  let isClosed = false;
  const close = async (): Promise<void> => {
    if (isClosed) return;
    isClosed = true;
    const exits = [...state.children].map((child) => waitForExit(child));
    for (const child of state.children) killGroup(child);
    await Promise.all(exits);
    await deleteNetns(state.netnsNames);
    openLabs.delete(state);
  };

  try {
    await run('ip', ['-batch', '-'], lines(state.netnsNames.map((netns) => `netns add ${netns}`)));
    // The hub: a bridge and the hub-side end of every host's veth; the peer end is created
    // straight inside the host's namespace, so that every host's end can be called eth0. A
    // NATed host's hub veth ends in its router instead (as `wan`), and the router's `lan`
    // veth ends in the host as eth0.
    const hubLines = ['link set lo up', 'link add br0 type bridge', 'link set br0 up'];
    hosts.forEach((host, index) => {
      const dev = hubDev(host);
      const far = routerNetns[index] === undefined ? `eth0 netns ${hostNetns[index]}` : `wan netns ${routerNetns[index]}`;
      hubLines.push(`link add ${dev} type veth peer name ${far}`, `link set ${dev} master br0`, `link set ${dev} up`);
    });
    await run('ip', ['-n', hubNetns, '-batch', '-'], lines(hubLines));
    await Promise.all([
      run('tc', ['-n', hubNetns, '-batch', '-'], lines(hosts.flatMap((host) => shapingCommands(hubDev(host), tcShape(shapeOf(host, 'down'), delay))))),
      ...hosts.map((host, index) => buildHost(host, index, hostNetns[index] ?? '', routerNetns[index], delay, state)),
    ]);
  } catch (error) {
    await close();
    throw error;
  }

  const labHosts = hosts.map((host, index) =>
    makeHost({ name: host.name, netns: hostNetns[index] ?? '', ip: host.nat ? privateNet(index).host : hostIp(index), publicIp: hostIp(index), nat: host.nat }, state.children),
  );
  return {
    id,
    hosts: labHosts,
    host(name) {
      const found = labHosts.find((host) => host.name === name);
      if (!found) throw new LabError('PF_ERR_LAB_SPEC', `no host ${JSON.stringify(name)} in lab ${id}`);
      return found;
    },
    close,
  };
}

function lines(commands: string[]): string {
  return commands.map((command) => `${command}\n`).join('');
}

function hubDev(host: HostSpec): string {
  return `vh-${host.name}`; // at most 11 characters, under IFNAMSIZ's 15
}

function hostIp(index: number): string {
  return `10.99.0.${FIRST_HOST_OCTET + index}`;
}

/** What tc does of a shape: everything with netem; only the rate when the delay line does the rest. */
function tcShape(shape: ReturnType<typeof shapeOf>, delay: DelayMethod): ReturnType<typeof shapeOf> {
  return delay === 'netem' ? shape : { ...shape, delayMs: 0, jitterMs: 0, loss: 0 };
}

async function buildHost(host: HostSpec, index: number, netns: string, routerNetns: string | undefined, delay: DelayMethod, state: LabState): Promise<void> {
  if (routerNetns !== undefined && host.nat !== undefined) {
    // The router first: the host's eth0 is the far end of the router's lan veth.
    await run('ip', ['-n', routerNetns, '-batch', '-'], lines(natRouterLines(hostIp(index), index, netns)));
    await run('ip', ['netns', 'exec', routerNetns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await run('ip', ['netns', 'exec', routerNetns, 'iptables-restore'], natRules(host.nat));
  }
  const addressLines = routerNetns === undefined ? [`addr add ${hostIp(index)}/24 dev eth0`, 'link set eth0 up'] : natHostLines(index);
  await run(
    'ip',
    ['-n', netns, '-batch', '-'],
    lines([
      'link set lo up',
      // No IPv6 link-local address: no DAD, router or MLD chatter in the byte counters.
      'link set eth0 addrgenmode none',
      ...addressLines,
    ]),
  );
  await run('tc', ['-n', netns, '-batch', '-'], lines(shapingCommands('eth0', tcShape(shapeOf(host, 'up'), delay))));
  const down = shapeOf(host, 'down');
  if (delay === 'delay-line' && needsNetem(down)) await startDelayLines(netns, down, index * 1000, state.children);
}
