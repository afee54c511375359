// Chunk hashing off the main thread (see manifest-builder.ts). Plain JS so that a worker
// starts the same way under node, tsx and vitest, with no TypeScript loader to inherit.
// In:  { build, id, buffer: ArrayBuffer (transferred), segments: [{ chunk, offset, length, last }] }
// Out: { build, id, digests: [{ chunk, sha256 }] }  — one answer per message, which is also the ack.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const open = new Map();
let currentBuild = -1;

parentPort.on('message', (message) => {
  // Builds run one at a time; a new build id drops whatever an aborted build left behind.
  if (message.build !== currentBuild) {
    open.clear();
    currentBuild = message.build;
  }
  const bytes = new Uint8Array(message.buffer);
  const digests = [];
  for (const segment of message.segments) {
    let hash = open.get(segment.chunk);
    if (hash === undefined) {
      hash = createHash('sha256');
      open.set(segment.chunk, hash);
    }
    hash.update(bytes.subarray(segment.offset, segment.offset + segment.length));
    if (segment.last) {
      digests.push({ chunk: segment.chunk, sha256: hash.digest('hex') });
      open.delete(segment.chunk);
    }
  }
  parentPort.postMessage({ build: currentBuild, id: message.id, digests });
});
