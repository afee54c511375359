import { Type, type Static } from '@sinclair/typebox';
import { createCodec } from './codec.ts';
import { IceServersSchema } from './ice.ts';
import { GrantSchema } from './grant.ts';
import { FileIdSchema, InfoHashSchema, Sha256HexSchema } from './manifest.ts';
import { BASE64URL_PATTERN, DIGEST_BASE64URL_PATTERN, SESSION_ID_PATTERN } from './patterns.ts';

/** Download sessions: the REST bodies of `/downloads`. */

/** `sha256:<hex>` of the whole file. */
export const ChecksumSchema = Type.String({ pattern: '^sha256:[0-9a-f]{64}$' });

export const SessionIdSchema = Type.String({ pattern: SESSION_ID_PATTERN });
/**
 * Proof of the session's token for announces (`pf_proof`): the tracker acts on `pf_*` fields
 * only with it, and admits peers to a private file's swarm only with it. Opaque to clients.
 */
export const AnnounceProofSchema = Type.String({ pattern: DIGEST_BASE64URL_PATTERN });
export const ClientIdSchema = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$' });
/** base64url bitfield of verified chunks, MSB-first (see protocol/bitfield.ts). */
export const HaveSchema = Type.String({ pattern: BASE64URL_PATTERN, maxLength: 1 << 16 });

export const SessionStatusSchema = Type.Union([
  Type.Literal('active'),
  Type.Literal('paused'),
  Type.Literal('completed'),
  Type.Literal('expired'),
]);
export type SessionStatus = Static<typeof SessionStatusSchema>;

export const CreateDownloadBodySchema = Type.Object(
  {
    file_id: FileIdSchema,
    client_id: Type.Optional(ClientIdSchema),
    /** For a private file: the publisher's grant (protocol/grant.ts). A publisher's backend sends its key as `x-peerfill-key` instead. */
    grant: Type.Optional(GrantSchema),
  },
  { additionalProperties: false },
);
export type CreateDownloadBody = Static<typeof CreateDownloadBodySchema>;
export const createDownloadBodyCodec = createCodec(CreateDownloadBodySchema);

/**
 * The publisher's download policy: a client holds at least this many bits per second and
 * takes everything else it can from peers. Absent = never slower than plain HTTP.
 */
export const SpeedFloorSchema = Type.Integer({ minimum: 1, maximum: 1e12 });

export const CreateDownloadResponseSchema = Type.Object({
  session_id: SessionIdSchema,
  session_token: Type.String({ minLength: 32 }),
  download_url: Type.String(),
  file_size: Type.Integer({ minimum: 0 }),
  checksum: ChecksumSchema,
  content_type: Type.String(),
  expires_at: Type.String({ description: 'RFC 3339; when the download URL expires' }),
  manifest_url: Type.String(),
  tracker_url: Type.String(),
  info_hash: InfoHashSchema,
  announce_proof: Type.Optional(AnnounceProofSchema),
  speed_floor_bps: Type.Optional(SpeedFloorSchema),
  /** The publisher's STUN/TURN servers for this session (absent: the client's own defaults). */
  ice_servers: Type.Optional(IceServersSchema),
  // Open: fields added later pass through the route's serializer and old clients.
}, { additionalProperties: true });
export type CreateDownloadResponse = Static<typeof CreateDownloadResponseSchema>;
export const createDownloadResponseCodec = createCodec(CreateDownloadResponseSchema);

const Counter = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export const PatchDownloadBodySchema = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Literal('paused'), Type.Literal('resumed')])),
    bytes_confirmed: Type.Optional(Counter),
    have: Type.Optional(HaveSchema),
    bytes_from_peers: Type.Optional(Counter),
    bytes_from_http: Type.Optional(Counter),
  },
  { additionalProperties: false },
);
export type PatchDownloadBody = Static<typeof PatchDownloadBodySchema>;
export const patchDownloadBodyCodec = createCodec(PatchDownloadBodySchema);

export const SessionStateSchema = Type.Object({
  session_id: SessionIdSchema,
  file_id: FileIdSchema,
  info_hash: InfoHashSchema,
  checksum: Type.String(),
  status: SessionStatusSchema,
  total_bytes: Counter,
  bytes_confirmed: Counter,
  /** Verified bytes from offset 0 with no gap: a plain HTTP client resumes with `Range: bytes=N-`. */
  contiguous_bytes: Counter,
  have: HaveSchema,
  bytes_from_peers: Counter,
  bytes_from_http: Counter,
  /** Verified bits per second, smoothed over recent updates. */
  transfer_rate_bps: Type.Number({ minimum: 0 }),
  created_at: Type.String(),
  updated_at: Type.String(),
  expires_at: Type.String({ description: 'RFC 3339; when the idle session expires' }),
  download_url: Type.Optional(Type.String()),
  download_url_expires_at: Type.Optional(Type.String()),
  announce_proof: Type.Optional(AnnounceProofSchema),
  speed_floor_bps: Type.Optional(SpeedFloorSchema),
  /** Fresh with every answer, so TURN credentials are renewed before they expire. */
  ice_servers: Type.Optional(IceServersSchema),
  // Open: fields added later pass through the route's serializer and old clients.
}, { additionalProperties: true });
export type SessionState = Static<typeof SessionStateSchema>;
export const sessionStateCodec = createCodec(SessionStateSchema);

/** `/downloads/:id` */
export const SessionParamsSchema = Type.Object({ id: Type.String({ maxLength: 128 }) });

export const ProgressSchema = Type.Object({
  bytes_confirmed: Counter,
  total_bytes: Counter,
  percentage: Type.Number({ minimum: 0, maximum: 100 }),
  status: SessionStatusSchema,
  transfer_rate_bps: Type.Number({ minimum: 0 }),
  bytes_from_peers: Counter,
  bytes_from_http: Counter,
});
export type Progress = Static<typeof ProgressSchema>;
export const progressCodec = createCodec(ProgressSchema);

export { Sha256HexSchema };
