/**
 * The lab's NAT routers: a namespace between a host and the hub, with a `wan` port on the
 * hub's bridge (the host's public address) and a `lan` veth to the host (192.168.<n>.0/24).
 *
 * - 'eim', endpoint-independent mapping: iptables MASQUERADE keeps the source port where it
 *   can, so one local port maps to one public port whatever the destination. What STUN sees is
 *   what a peer sees, and hole punching works (RFC 4787's "endpoint-independent mapping").
 * - 'symmetric', address-and-port-dependent mapping: MASQUERADE --random-fully picks a new
 *   public port for every destination, so the port STUN saw is not the one a peer would see.
 *
 * Both filter as home routers do: only replies to what went out come back in (conntrack
 * ESTABLISHED, from the address and port it went to), nothing unasked is forwarded or even
 * answered, and the private network is not routed.
 */
export type NatKind = 'eim' | 'symmetric';
export const NAT_KINDS: readonly NatKind[] = ['eim', 'symmetric'];

/** The private network behind host `index`'s router. */
export function privateNet(index: number): { router: string; host: string } {
  const octet = index + 1; // 192.168.1.0/24 for the first host; a lab holds at most 244 hosts
  return { router: `192.168.${octet}.1`, host: `192.168.${octet}.2` };
}

/** `ip -batch` lines inside the router: its wan address and a lan veth whose far end is the host's eth0. */
export function natRouterLines(publicIp: string, index: number, hostNetns: string): string[] {
  return [
    'link set lo up',
    'link set wan addrgenmode none',
    `addr add ${publicIp}/24 dev wan`,
    'link set wan up',
    `link add lan type veth peer name eth0 netns ${hostNetns}`,
    'link set lan addrgenmode none',
    `addr add ${privateNet(index).router}/24 dev lan`,
    'link set lan up',
  ];
}

/** `ip -batch` lines inside a NATed host: its private address and the router as its gateway. */
export function natHostLines(index: number): string[] {
  const net = privateNet(index);
  return [`addr add ${net.host}/24 dev eth0`, 'link set eth0 up', `route add default via ${net.router}`];
}

/** The router's ruleset, for iptables-restore. */
export function natRules(kind: NatKind): string {
  return [
    '*nat',
    `-A POSTROUTING -o wan -j MASQUERADE${kind === 'symmetric' ? ' --random-fully' : ''}`,
    'COMMIT',
    '*filter',
    // Unasked packets to the router are dropped, not answered: had the router taken them (and
    // sent back port-unreachable), conntrack would keep their entry, and the next outbound
    // packet to that peer would clash with it and be given another port. That is what breaks
    // hole punching behind a plain Linux box; home routers drop silently.
    '-A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A INPUT -i wan -j DROP',
    ':FORWARD DROP [0:0]',
    '-A FORWARD -i lan -o wan -j ACCEPT',
    '-A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
}
