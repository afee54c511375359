/**
 * peerfill in the browser: `import { download } from '/assets/peerfill.js'`.
 * Chunks come from other browsers over WebRTC and from signed HTTP Range requests,
 * each verified with SHA-256, stored in OPFS (or IndexedDB), and saved to disk at the end.
 */
export { download, seedFile, type BrowserDownload, type BrowserDownloadOptions } from './browser-download.ts';
export { openBrowserChunkStore, storeKey, formatBytes, type BrowserChunkStore, type BrowserStoreOptions } from './opfs-chunk-store.ts';
export { ensureQuota, requestPersistence } from './storage-full.ts';
export { FileSeedStore } from './file-seed-store.ts';
export { saveFile, hasSavePicker, type SaveOptions } from './save.ts';
export { createClient, type Client, type ClientOptions, type ChunkStore, type Download, type ProgressInfo } from '../index.ts';
