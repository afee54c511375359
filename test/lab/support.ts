import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NETNS_PREFIX } from './netns.ts';

export type LabSupport =
  | {
      isSupported: true;
      /**
       * Whether the kernel has the netem qdisc (CONFIG_NET_SCH_NETEM). Without it the lab still
       * shapes rates with htb, but createLab refuses a HostSpec that asks for delay, jitter or loss.
       */
      hasNetem: boolean;
      /** Whether iptables (with conntrack and NAT) works in a namespace: NAT routers need it. */
      hasNat: boolean;
      /**
       * Without netem, whether delay, jitter and loss can come from the userspace delay line
       * (delay-line.ts): iptables' NFQUEUE target, a C compiler and libnetfilter_queue.
       */
      hasDelayLine: boolean;
    }
  | { isSupported: false; reason: string };

let cached: LabSupport | undefined;

function succeeds(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Can this process build a lab? Probes once (root, ip, tc, a scratch namespace, htb, netem) and caches the answer. */
export function labSupport(): LabSupport {
  cached ??= probe();
  return cached;
}

function probe(): LabSupport {
  if (process.platform !== 'linux') return { isSupported: false, reason: `the lab needs Linux network namespaces (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { isSupported: false, reason: 'the lab needs root (ip netns add)' };
  if (!succeeds('ip', ['-V'])) return { isSupported: false, reason: '`ip` (iproute2) is not installed' };
  if (!succeeds('tc', ['-V'])) return { isSupported: false, reason: '`tc` (iproute2) is not installed' };
  // The probe namespace is named like a lab's, so a probe that dies half-way is cleaned up as stale.
  const netns = `${NETNS_PREFIX}${process.pid}-probe`;
  if (!succeeds('ip', ['netns', 'add', netns])) return { isSupported: false, reason: `cannot create a network namespace (ip netns add ${netns} failed)` };
  try {
    if (!succeeds('ip', ['-n', netns, 'link', 'add', 'pa', 'type', 'veth', 'peer', 'name', 'pb'])) {
      return { isSupported: false, reason: 'cannot create a veth pair (kernel without CONFIG_VETH?)' };
    }
    if (!succeeds('ip', ['-n', netns, 'link', 'add', 'pbr', 'type', 'bridge'])) {
      return { isSupported: false, reason: 'cannot create a bridge (kernel without CONFIG_BRIDGE?)' };
    }
    if (!succeeds('tc', ['-n', netns, 'qdisc', 'add', 'dev', 'pa', 'root', 'handle', '1:', 'htb', 'default', '10'])) {
      return { isSupported: false, reason: 'the kernel has no htb qdisc (CONFIG_NET_SCH_HTB)' };
    }
    const hasNetem = succeeds('tc', ['-n', netns, 'qdisc', 'add', 'dev', 'pb', 'root', 'netem', 'delay', '1ms']);
    const hasNat =
      succeeds('ip', ['netns', 'exec', netns, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'pa', '-j', 'MASQUERADE', '--random-fully']) &&
      succeeds('ip', ['netns', 'exec', netns, 'iptables', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
    const hasDelayLine =
      existsSync('/usr/include/libnetfilter_queue/libnetfilter_queue.h') &&
      succeeds('cc', ['--version']) &&
      succeeds('ip', ['netns', 'exec', netns, 'iptables', '-t', 'mangle', '-A', 'POSTROUTING', '-o', 'pa', '-j', 'NFQUEUE', '--queue-num', '1']);
    return { isSupported: true, hasNetem, hasNat, hasDelayLine };
  } finally {
    succeeds('ip', ['netns', 'delete', netns]);
  }
}
