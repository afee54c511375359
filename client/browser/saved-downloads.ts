import { Type, type Static } from '@sinclair/typebox';
import { createCodec, parseJson } from '../../protocol/index.ts';

/** One download the page remembers across reloads (the chunks themselves are in OPFS). */
const SavedDownloadSchema = Type.Object({
  url: Type.String(),
  name: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  keepSeeding: Type.Boolean(),
  isPaused: Type.Boolean(),
  isDone: Type.Boolean(),
});
export type SavedDownload = Static<typeof SavedDownloadSchema>;
const savedListCodec = createCodec(Type.Array(SavedDownloadSchema));

const STORAGE_KEY = 'peerfill.downloads.v1';

/** The page's list of downloads, in localStorage; a damaged entry is dropped, never trusted. */
export function loadSavedDownloads(): SavedDownload[] {
  const text = localStorage.getItem(STORAGE_KEY);
  if (text === null) return [];
  const parsed = parseJson(text);
  const decoded = parsed.ok ? savedListCodec.decode(parsed.value) : undefined;
  return decoded?.ok ? decoded.value : [];
}

export function storeSavedDownloads(list: SavedDownload[]): void {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(list));
}
