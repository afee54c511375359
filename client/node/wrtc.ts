import { createRequire } from 'node:module';
import type SimplePeer from 'simple-peer';

type Wrtc = NonNullable<SimplePeer.Options['wrtc']>;

/**
 * Node's WebRTC stack for simple-peer (browsers have their own). @roamhq/wrtc is
 * CommonJS with ESM-style typings, so it is loaded through require.
 */
export function loadNodeWrtc(): Wrtc {
  const loaded: unknown = createRequire(import.meta.url)('@roamhq/wrtc');
  if (!isWrtc(loaded)) throw new Error('@roamhq/wrtc did not load');
  return loaded;
}

function isWrtc(value: unknown): value is Wrtc {
  return (
    typeof value === 'object' &&
    value !== null &&
    'RTCPeerConnection' in value &&
    typeof value.RTCPeerConnection === 'function' &&
    'RTCSessionDescription' in value &&
    typeof value.RTCSessionDescription === 'function' &&
    'RTCIceCandidate' in value &&
    typeof value.RTCIceCandidate === 'function'
  );
}
