/** peerfill client: hybrid peer + HTTP downloads with per-chunk SHA-256 verification. */
export { createClient, type Client } from './engine.ts';
export type { ClientOptions } from './options.ts';
export type { Download, DownloadEvents, DownloadTarget } from './download.ts';
export type { ChunkStore, ResumeData } from './chunk-store.ts';
export { MemoryChunkStore } from './memory-chunk-store.ts';
export type { ProgressInfo } from './progress.ts';
export type { PolicyInfo, PolicyDecisions } from './hybrid-policy.ts';
