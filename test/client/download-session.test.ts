import { afterEach, describe, expect, it } from 'vitest';
import { DownloadSession } from '../../client/download-session.ts';
import { MemoryChunkStore } from '../../client/memory-chunk-store.ts';
import { SessionClient, fetchApiRequest, type ApiRequest } from '../../client/session-client.ts';
import { startFakeServer, testBytes, type FakeServer } from './fixtures/fake-server.ts';

let server: FakeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function sessionFor(fake: FakeServer, store: MemoryChunkStore, request: ApiRequest = fetchApiRequest()) {
  const warnings: string[] = [];
  const versionChanges: number[] = [];
  const session = new DownloadSession({
    target: { serverUrl: fake.url, fileId: 'file1' },
    api: new SessionClient(fake.url, request),
    store,
    clientId: undefined,
    warn: (message) => warnings.push(message),
    onVersionChanged: () => versionChanges.push(versionChanges.length),
  });
  return { session, warnings, versionChanges };
}

describe('DownloadSession', () => {
  it('opens a session, saves it to the store, and a later run resumes it without opening another', async () => {
    server = await startFakeServer({ bytes: testBytes(100_000) });
    const store = new MemoryChunkStore();
    const first = sessionFor(server, store);
    const opened = await first.session.open(await store.loadResumeData());
    expect(server.sessionsCreated).toBe(1);
    expect(await store.loadResumeData()).toEqual(opened);
    expect(opened.tracker_url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/announce$/);
    expect(first.session.downloadUrl).toMatch(/\/d\/file1\?v=1$/);
    expect((await first.session.manifest()).manifest.info_hash).toBe(server.manifest.info_hash);

    const second = sessionFor(server, store);
    const resumed = await second.session.open(await store.loadResumeData());
    expect(resumed.session_id).toBe(opened.session_id);
    expect(server.sessionsCreated).toBe(1);
    expect(server.patches).toContainEqual({ status: 'resumed' });
    expect(second.session.downloadUrl).toMatch(/\/d\/file1\?v=2$/);
    expect(second.warnings).toEqual([]);
  });

  it('a saved session the server no longer has, or one for another file, gives way to a new one', async () => {
    server = await startFakeServer({ bytes: testBytes(100_000) });
    const store = new MemoryChunkStore();
    const saved = await sessionFor(server, store).session.open(undefined);
    server.forgetSessions();
    const { session, warnings } = sessionFor(server, store);
    const reopened = await session.open(saved);
    expect(reopened.session_id).not.toBe(saved.session_id);
    expect(warnings).toEqual(['cannot resume the saved session; starting a new one']);
    expect((await store.loadResumeData())?.session_id).toBe(reopened.session_id);

    const patchesBefore = server.patches.length;
    const other = await sessionFor(server, store).session.open({ ...reopened, file_id: 'another' });
    expect(other.session_id).not.toBe(reopened.session_id);
    expect(server.patches.length).toBe(patchesBefore);
    expect(server.sessionsCreated).toBe(3);
  });

  it('refreshUrl() mints a fresh URL; when the session is gone it opens a new one for the same file version', async () => {
    server = await startFakeServer({ bytes: testBytes(100_000) });
    const store = new MemoryChunkStore();
    const { session, warnings } = sessionFor(server, store);
    const opened = await session.open(undefined);
    const firstUrl = session.downloadUrl;
    expect(await session.refreshUrl()).not.toBe(firstUrl);
    expect(session.state?.session_id).toBe(opened.session_id);

    server.forgetSessions();
    const url = await session.refreshUrl();
    expect(url).toBe(session.downloadUrl);
    expect(session.state?.session_id).not.toBe(opened.session_id);
    expect((await store.loadResumeData())?.session_id).toBe(session.state?.session_id);
    expect(warnings).toEqual(['session lost; opening a new one']);
  });

  it('refreshUrl() goes on under a new session that names another version of the file, and says so (onVersionChanged)', async () => {
    server = await startFakeServer({ bytes: testBytes(100_000) });
    const base = fetchApiRequest();
    let isRepublished = false;
    // The publisher replaced the file: new sessions name another info_hash.
    const request: ApiRequest = async (url, init) => {
      const answer = await base(url, init);
      if (!isRepublished || init?.method !== 'POST') return answer;
      return { ...answer, text: answer.text.replaceAll(server!.manifest.info_hash, 'ab'.repeat(20)) };
    };
    const store = new MemoryChunkStore();
    const { session, versionChanges, warnings } = sessionFor(server, store, request);
    const opened = await session.open(undefined);
    expect(await session.refreshUrl()).toBe(session.downloadUrl);
    expect(versionChanges).toEqual([]);
    server.forgetSessions();
    isRepublished = true;
    const url = await session.refreshUrl();
    expect(versionChanges).toEqual([0]);
    expect(warnings).toEqual(['session lost; opening a new one']);
    expect(url).toBe(session.downloadUrl);
    expect(session.state?.session_id).not.toBe(opened.session_id);
    expect(session.state?.info_hash).toBe('ab'.repeat(20));
    // The new session is what a rerun resumes.
    expect((await store.loadResumeData())?.info_hash).toBe('ab'.repeat(20));
  });

  it('reports nothing before it is open, and PATCHes progress after', async () => {
    server = await startFakeServer({ bytes: testBytes(100_000) });
    const { session } = sessionFor(server, new MemoryChunkStore());
    await session.report({ bytes_confirmed: 1 });
    expect(server.patches).toEqual([]);
    await session.open(undefined);
    await session.report({ bytes_confirmed: 65_536 });
    expect(server.patches).toEqual([{ bytes_confirmed: 65_536 }]);
  });
});
