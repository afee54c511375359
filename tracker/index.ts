export { createTracker, type Tracker, type TrackerDeps } from './tracker.ts';
export { DEFAULT_TRACKER_LIMITS, type TrackerConfig, type TrackerLimits } from './config.ts';
export { TRUST_NO_PROXY, addressGroup, clientAddress, parseTrustProxy, type AddressGroup, type ProxyTrust } from './client-address.ts';
export { createStore, type StoreConfig } from './store/create-store.ts';
export type { Store, PeerRecord, SwarmCounts } from './store/store.ts';
export { createRemoteDirectory, type RemoteDirectoryOptions } from './remote-directory.ts';
export { createSigningMinter, type SigningMinterOptions } from './signing-minter.ts';
