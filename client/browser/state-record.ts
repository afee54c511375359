import { Type } from '@sinclair/typebox';
import { createCodec, parseJson, sha256Hex } from '../../protocol/index.ts';
import type { ResumeData } from '../chunk-store.ts';

/**
 * The record kept beside a download's data: which chunks are verified (for which
 * manifest), the session to resume, and whether the file is complete. Its own SHA-256
 * detects a torn or edited record; it is written only after the data it describes.
 */
const RECORD_VERSION = 1;

const ResumeDataSchema = Type.Object({
  session_id: Type.String(),
  session_token: Type.String(),
  server_url: Type.String(),
  file_id: Type.String(),
  manifest_url: Type.String(),
  tracker_url: Type.String(),
  info_hash: Type.String(),
});

const StateBodySchema = Type.Object({
  v: Type.Literal(RECORD_VERSION),
  info_hash: Type.Optional(Type.String({ pattern: '^[0-9a-f]{40}$' })),
  size: Type.Optional(Type.Integer({ minimum: 0 })),
  chunk_size: Type.Optional(Type.Integer({ minimum: 1 })),
  have: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]*$' })),
  is_complete: Type.Optional(Type.Boolean()),
  resume: Type.Optional(ResumeDataSchema),
});

export interface StateBody {
  v: 1;
  info_hash?: string;
  size?: number;
  chunk_size?: number;
  have?: string;
  is_complete?: boolean;
  resume?: ResumeData;
}

const recordCodec = createCodec(Type.Object({ body: StateBodySchema, sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }));

export type StateRead =
  | { kind: 'missing' }
  | { kind: 'valid'; body: StateBody }
  /** Torn, edited or of an unknown shape: nothing in it can be trusted. */
  | { kind: 'corrupt'; reason: string };

function checksum(body: StateBody): Promise<string> {
  return sha256Hex(new TextEncoder().encode(JSON.stringify(body)));
}

export async function encodeStateRecord(body: StateBody): Promise<string> {
  return JSON.stringify({ body, sha256: await checksum(body) });
}

export async function decodeStateRecord(text: string | undefined): Promise<StateRead> {
  if (text === undefined) return { kind: 'missing' };
  const parsed = parseJson(text);
  if (!parsed.ok) return { kind: 'corrupt', reason: 'not JSON (torn write?)' };
  const decoded = recordCodec.decode(parsed.value);
  if (!decoded.ok) return { kind: 'corrupt', reason: `bad shape: ${decoded.errors[0] ?? ''}` };
  const body: StateBody = decoded.value.body;
  if ((await checksum(body)) !== decoded.value.sha256) return { kind: 'corrupt', reason: 'checksum mismatch' };
  return { kind: 'valid', body };
}
