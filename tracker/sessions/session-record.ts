import { Type, type Static } from '@sinclair/typebox';
import {
  Sha256HexSchema,
  ChecksumSchema,
  ClientIdSchema,
  FileIdSchema,
  GrantUserSchema,
  HaveSchema,
  InfoHashSchema,
  SessionIdSchema,
  SessionStatusSchema,
  createCodec,
} from '../../protocol/index.ts';

const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/**
 * A download session as the store keeps it. Only the SHA-256 of the bearer token is
 * stored, and no signed URL (one is minted for each answer that carries it). Records read
 * back from Redis or a snapshot are checked with this codec.
 */
export const SessionRecordSchema = Type.Object({
  session_id: SessionIdSchema,
  token_sha256: Sha256HexSchema,
  client_id: Type.Optional(ClientIdSchema),
  /** The user a publisher's grant named (private files). */
  user: Type.Optional(GrantUserSchema),
  file_id: FileIdSchema,
  info_hash: InfoHashSchema,
  checksum: ChecksumSchema,
  total_bytes: Counter,
  chunk_size: Type.Integer({ minimum: 1 }),
  chunk_count: Counter,
  status: SessionStatusSchema,
  have: HaveSchema,
  bytes_confirmed: Counter,
  contiguous_bytes: Counter,
  bytes_from_peers: Counter,
  bytes_from_http: Counter,
  transfer_rate_bps: Type.Number({ minimum: 0 }),
  /** Milliseconds of the last bytes_confirmed sample that fed the rate estimate. */
  rate_sampled_at_ms: Counter,
  created_at_ms: Counter,
  updated_at_ms: Counter,
  expires_at_ms: Counter,
});
export type SessionRecord = Static<typeof SessionRecordSchema>;
export const sessionRecordCodec = createCodec(SessionRecordSchema);
