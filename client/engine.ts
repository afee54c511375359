import type { ChunkStore } from './chunk-store.ts';
import { Download, type DownloadTarget } from './download.ts';
import { resolveOptions, stripUndefined, type ClientOptions } from './options.ts';
import { parseDownloadUrl } from './session-client.ts';

/** A peerfill client: one peer id, shared settings, any number of downloads. */
export interface Client {
  readonly peerIdHex: string;
  /**
   * Download (or seed, when the store already holds the file) `url`: `<server>/<file_id>`
   * or `<server>/files/<file_id>`. Call `start()` on the result, or await `done`.
   */
  download(url: string | DownloadTarget, store: ChunkStore, overrides?: ClientOptions): Download;
}

export function createClient(options: ClientOptions = {}): Client {
  const resolved = resolveOptions(options);
  return {
    peerIdHex: resolved.peerIdHex,
    download(url, store, overrides = {}) {
      const target = typeof url === 'string' ? parseDownloadUrl(url) : url;
      return new Download(target, store, { ...resolved, ...stripUndefined(overrides) });
    },
  };
}
