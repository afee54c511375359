import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { SendBatch, type HeldFrames } from '../../tracker/ws/send-batch.ts';
import { encodeTextFrames } from '../../tracker/ws/ws-frames.ts';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A server that hands the raw upgraded socket to `onSocket`, and a ws client connected to it. */
async function connect(onSocket: (stream: Duplex, ws: WebSocket) => void): Promise<{ client: WebSocket; received: string[] }> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server = createServer();
  server.on('upgrade', (request, socket, head) => wss.handleUpgrade(request, socket, head, (ws) => onSocket(socket, ws)));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const client = new WebSocket(`ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);
  const received: string[] = [];
  client.on('message', (data: Buffer, isBinary) => {
    expect(isBinary).toBe(false);
    received.push(data.toString('utf8'));
  });
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('error', reject);
  });
  return { client, received };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
};

describe('batched server frames', () => {
  it('encodes every payload length class (7-, 16- and 64-bit) so that ws reads them back in order', async () => {
    const texts = ['', 'a', 'x'.repeat(125), 'é'.repeat(63), 'y'.repeat(126), '€'.repeat(21_845), 'z'.repeat(65_535), 'w'.repeat(65_536), `{"sdp":"${'ü'.repeat(40_000)}"}`];
    const { client, received } = await connect((stream) => stream.write(encodeTextFrames(texts)));
    await until(() => received.length === texts.length);
    expect(received).toEqual(texts);
    client.terminate();
  });

  it('holds frames until the end of the turn, writes each target once, and keeps order', async () => {
    const batch = new SendBatch();
    const flushed: string[] = [];
    const target = (name: string): HeldFrames => ({ flush: () => flushed.push(name) });
    const a = target('a');
    const b = target('b');
    batch.hold(a);
    batch.hold(b);
    expect(flushed).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushed).toEqual(['a', 'b']);
    batch.hold(a);
    batch.flush();
    expect(flushed).toEqual(['a', 'b', 'a']);
  });
});
