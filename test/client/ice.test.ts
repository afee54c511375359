import { describe, expect, it } from 'vitest';
import { connectionTypeOf } from '../../protocol/index.ts';
import { selectedConnectionType } from '../../client/peer/connection-type.ts';
import { relayProblem } from '../../client/peer/ice-check.ts';
import { describeIceServers, describePeers } from '../../client/progress.ts';

const candidate = (id: string, kind: 'local' | 'remote', candidateType: string) => ({ id, type: `${kind}-candidate`, candidateType, address: '10.99.0.1', port: 5000 });

describe('how a peer connection was made', () => {
  it('reads the selected pair from the transport (Chromium, libwebrtc)', () => {
    const reports = [
      { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' },
      { id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'failed' },
      { id: 'CP2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', state: 'succeeded', nominated: true },
      candidate('L1', 'local', 'host'),
      candidate('L2', 'local', 'relay'),
      candidate('R1', 'remote', 'srflx'),
    ];
    expect(selectedConnectionType(reports)).toBe('relay');
  });

  it('falls back to a selected or nominated and succeeded pair, and says nothing when the stats do not tell', () => {
    expect(selectedConnectionType([{ id: 'P', type: 'candidatepair', selected: true, localCandidateId: 'L', remoteCandidateId: 'R' }, candidate('L', 'local', 'srflx'), candidate('R', 'remote', 'host')])).toBe('srflx');
    expect(selectedConnectionType([{ id: 'P', type: 'candidate-pair', nominated: true, state: 'succeeded', localCandidateId: 'L', remoteCandidateId: 'R' }, candidate('L', 'local', 'host'), candidate('R', 'remote', 'host')])).toBe('host');
    expect(selectedConnectionType([{ id: 'P', type: 'candidate-pair', state: 'in-progress', localCandidateId: 'L', remoteCandidateId: 'R' }, candidate('L', 'local', 'host')])).toBeUndefined();
    expect(selectedConnectionType([null, 3, 'x', { type: 'transport', selectedCandidatePairId: 'nope' }])).toBeUndefined();
  });

  it('ranks relay over a NAT mapping over host, with prflx as a mapping', () => {
    expect(connectionTypeOf('host', 'relay')).toBe('relay');
    expect(connectionTypeOf('prflx', 'host')).toBe('srflx');
    expect(connectionTypeOf('host', 'host')).toBe('host');
  });

  it('puts it in words: "3 peers, 1 through relay"', () => {
    expect(describePeers({ peerCount: 3, connections: { host: 1, srflx: 1, relay: 1 } })).toBe('3 peers, 1 through relay, 1 through a NAT');
    expect(describePeers({ peerCount: 1, connections: { host: 1, srflx: 0, relay: 0 } })).toBe('1 peer');
  });

  it('says which ICE servers are in use', () => {
    expect(describeIceServers(undefined)).toBe("the browser's default STUN servers (no TURN)");
    expect(describeIceServers(['stun:a.example:3478', 'turn:a.example:3478?transport=udp'])).toBe('STUN stun:a.example:3478 · TURN turn:a.example:3478?transport=udp');
    expect(describeIceServers(['stun:a.example'])).toBe('STUN stun:a.example · no TURN');
  });
});

describe('why there is no relay', () => {
  const sdpWith = (types: string[]) => ['v=0', ...types.map((type, index) => `a=candidate:${index} 1 udp 2122260223 10.99.0.${index + 1} 5000${index} typ ${type}`)].join('\r\n');
  const turn = (username: string) => [{ urls: ['stun:10.99.0.10:3478'] }, { urls: ['turn:10.99.0.10:3478'], username, credential: 'x' }];
  const now = 1_700_000_000_000;

  it('says nothing without TURN, or when the SDP has a relay candidate', () => {
    expect(relayProblem(undefined, sdpWith(['host']), now)).toBeUndefined();
    expect(relayProblem([{ urls: 'stun:10.99.0.10:3478' }], sdpWith(['host', 'srflx']), now)).toBeUndefined();
    expect(relayProblem(turn(`${now / 1000 + 60}:s`), sdpWith(['host', 'srflx', 'relay']), now)).toBeUndefined();
  });

  it('names expired credentials, else a refused or unreachable TURN server', () => {
    expect(relayProblem(turn(`${now / 1000 - 1}:s`), sdpWith(['host']), now)).toMatch(/^TURN credentials expired at 2023-11-14T22:13:19.000Z/);
    expect(relayProblem(turn(`${now / 1000 + 60}:s`), sdpWith(['host', 'srflx']), now)).toMatch(/TURN server gave no relay/);
    expect(relayProblem([{ urls: 'turn:10.99.0.10', username: 'static-user' }], sdpWith(['host']), now)).toMatch(/TURN server gave no relay/);
  });
});
