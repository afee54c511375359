import { connect } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../bin/config.ts';
import { BODY_LIMIT_BYTES } from '../../bin/http-app.ts';
import { createLogger } from '../../bin/logger.ts';
import { buildServer, type Server } from '../../bin/serve.ts';
import { FileListSchema, createCodec, createDownloadResponseCodec } from '../../protocol/index.ts';
import { contractViolation, parseRawResponse } from '../support/error-contract.ts';

const fileListCodec = createCodec(FileListSchema);

/** Send raw bytes, return everything the server sent until it closed. */
async function rawExchange(port: number, chunks: string[], options: { pauseMs?: number } = {}): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  for (const chunk of chunks) socket.write(chunk);
  if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return received;
}

describe('one error contract for every route and every framework error', () => {
  let dir: string;
  let server: Server;
  let base: string;
  let port: number;
  let fileId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pf-contract-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', 'a.bin'), Buffer.alloc(4096, 7));
    const config = loadServerConfig(['--files', join(dir, 'files'), '--data-dir', dir, '--port', '0', '--log-level', 'silent'], { PEERFILL_REQUEST_TIMEOUT_SECONDS: '1' }, dir);
    server = await buildServer(config, createLogger('silent'));
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    const address = server.app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
    base = `http://127.0.0.1:${port}`;
    fileId = fileListCodec.parse(await (await fetch(`${base}/files`)).json()).files[0]!.file_id;
  });

  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function expectContract(response: Response, status: number, code: string): Promise<string> {
    const body = await response.text();
    expect(contractViolation(response.status, body)).toBeUndefined();
    expect(response.status).toBe(status);
    expect(JSON.parse(body)).toMatchObject({ error: { code } });
    return body;
  }

  it('maps a malformed URL to PF_ERR_BAD_REQUEST without echoing it (nor its signature)', async () => {
    const body = await expectContract(await fetch(`${base}/files/%E0%A4%A?sig=SECRETSIG`), 400, 'PF_ERR_BAD_REQUEST');
    expect(body).not.toContain('SECRETSIG');
    expect(body).not.toContain('%E0');
    const data = await expectContract(await fetch(`${base}/d/%E0%A4%A/x?exp=1&kid=k&sig=SECRETSIG`), 400, 'PF_ERR_BAD_REQUEST');
    expect(data).not.toContain('SECRETSIG');
  });

  it('maps a too-long parameter to 414 PF_ERR_URI_TOO_LONG', async () => {
    const body = await expectContract(await fetch(`${base}/downloads/${'a'.repeat(400)}`), 414, 'PF_ERR_URI_TOO_LONG');
    expect(body).not.toContain('aaaa');
  });

  it('refuses a body over the limit, a deeply nested 1 MB body included, with 413 before parsing it', async () => {
    const nested = '['.repeat(512 * 1024) + ']'.repeat(512 * 1024);
    await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: nested }), 413, 'PF_ERR_PAYLOAD_TOO_LARGE');
    const big = JSON.stringify({ file_id: fileId, client_id: 'x'.repeat(BODY_LIMIT_BYTES) });
    await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big }), 413, 'PF_ERR_PAYLOAD_TOO_LARGE');
  });

  it('lets the largest valid body through the limit (a PATCH with a full-size bitfield and every counter)', async () => {
    const created = createDownloadResponseCodec.parse(
      await (await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_id: fileId, client_id: 'c'.repeat(128) }) })).json(),
    );
    const max = Number.MAX_SAFE_INTEGER;
    const largest = JSON.stringify({ status: 'resumed', have: 'A'.repeat(1 << 16), bytes_confirmed: max, bytes_from_peers: max, bytes_from_http: max });
    expect(largest.length).toBeLessThan(BODY_LIMIT_BYTES);
    expect(largest.length).toBeGreaterThan(BODY_LIMIT_BYTES * 0.85);
    const response = await fetch(`${base}/downloads/${created.session_id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${created.session_token}` },
      body: largest,
    });
    // Read and checked against the file (this one has one chunk), not refused for its size.
    await expectContract(response, 400, 'PF_ERR_VALIDATION');
  });

  it('maps bad JSON, an empty JSON body and a wrong content type into the contract, quoting nothing', async () => {
    const bad = await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"file_id": SECRET' }), 400, 'PF_ERR_BAD_REQUEST');
    expect(bad).not.toContain('SECRET');
    await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' }), 400, 'PF_ERR_BAD_REQUEST');
    await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: '<a/>' }), 415, 'PF_ERR_UNSUPPORTED_MEDIA_TYPE');
    await expectContract(await fetch(`${base}/downloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"file_id": 5}' }), 400, 'PF_ERR_VALIDATION');
    await expectContract(await fetch(`${base}/downloads`, { method: 'DELETE' }), 404, 'PF_ERR_NOT_FOUND');
  });

  it('answers node-level client errors in the contract: 431 for huge headers, 400 for garbage, 408 for a request that never finishes', async () => {
    const huge = parseRawResponse(await rawExchange(port, [`GET /files?sig=SECRETSIG HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`]));
    expect(huge.status).toBe(431);
    expect(contractViolation(huge.status, huge.body)).toBeUndefined();
    expect(huge.body).not.toContain('SECRETSIG');
    const garbage = parseRawResponse(await rawExchange(port, ['\x00\x01 not http at all\r\n\r\n']));
    expect(garbage.status).toBe(400);
    expect(contractViolation(garbage.status, garbage.body)).toBeUndefined();
    // Headers done, body promised and never sent: cut at the request timeout (1 s here) with 408.
    const slow = parseRawResponse(await rawExchange(port, [`POST /downloads?sig=SECRETSIG HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"fi`]));
    expect(slow.status).toBe(408);
    expect(contractViolation(slow.status, slow.body)).toBeUndefined();
    expect(slow.body).not.toContain('SECRETSIG');
  });
});
