import { Type, type Static } from '@sinclair/typebox';
import { createCodec } from './codec.ts';
import { ConnectionCountsSchema } from './ice.ts';
import { AnnounceProofSchema, HaveSchema, SessionIdSchema } from './session.ts';

/**
 * The WebTorrent WebSocket tracker protocol (as spoken by npm `bittorrent-tracker`),
 * plus optional `pf_*` fields of our own. info_hash and peer_id travel as 20-char
 * "binary strings" (each char 0..255); see protocol/hex.ts for conversions.
 */

export const BinaryId20Schema = Type.String({ pattern: '^[\\u0000-\\u00ff]{20}$' });
export const OfferIdSchema = Type.String({ minLength: 1, maxLength: 64 });
export const SdpSchema = Type.Object({
  type: Type.Union([Type.Literal('offer'), Type.Literal('answer')]),
  sdp: Type.String({ maxLength: 16 * 1024 }),
});
export type Sdp = Static<typeof SdpSchema>;

export const AnnounceEventSchema = Type.Union([
  Type.Literal('started'),
  Type.Literal('update'),
  Type.Literal('completed'),
  Type.Literal('stopped'),
  Type.Literal('paused'),
]);
export type AnnounceEvent = Static<typeof AnnounceEventSchema>;

/** Caps that the schema enforces; the tracker may apply lower ones from its config. */
export const MAX_OFFERS_PER_ANNOUNCE = 50;
export const MAX_SCRAPE_HASHES = 50;

const ByteCount = Type.Number({ minimum: 0 });

export const AnnounceRequestSchema = Type.Object({
  action: Type.Literal('announce'),
  info_hash: BinaryId20Schema,
  peer_id: BinaryId20Schema,
  event: Type.Optional(AnnounceEventSchema),
  uploaded: Type.Optional(ByteCount),
  downloaded: Type.Optional(ByteCount),
  // bittorrent-tracker sends `left: Infinity`, which JSON turns into null.
  left: Type.Optional(Type.Union([ByteCount, Type.Null()])),
  numwant: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  offers: Type.Optional(
    Type.Array(Type.Object({ offer_id: OfferIdSchema, offer: SdpSchema }), { maxItems: MAX_OFFERS_PER_ANNOUNCE }),
  ),
  // An answer to a relayed offer.
  to_peer_id: Type.Optional(BinaryId20Schema),
  answer: Type.Optional(SdpSchema),
  offer_id: Type.Optional(OfferIdSchema),
  trackerid: Type.Optional(Type.String({ maxLength: 64 })),
  // peerfill extensions: keep the download session fresh without extra REST calls.
  pf_session: Type.Optional(SessionIdSchema),
  // Without a valid proof of pf_session's token, the tracker ignores every pf_* field.
  pf_proof: Type.Optional(AnnounceProofSchema),
  pf_have: Type.Optional(HaveSchema),
  pf_bytes_confirmed: Type.Optional(ByteCount),
  pf_from_peers: Type.Optional(ByteCount),
  pf_from_http: Type.Optional(ByteCount),
  /** Live connections the announcing client initiated, by type (host, srflx, relay). */
  pf_connections: Type.Optional(ConnectionCountsSchema),
});
export type AnnounceRequest = Static<typeof AnnounceRequestSchema>;

export const ScrapeRequestSchema = Type.Object({
  action: Type.Literal('scrape'),
  info_hash: Type.Optional(
    Type.Union([BinaryId20Schema, Type.Array(BinaryId20Schema, { maxItems: MAX_SCRAPE_HASHES })]),
  ),
});
export type ScrapeRequest = Static<typeof ScrapeRequestSchema>;

export const TrackerRequestSchema = Type.Union([AnnounceRequestSchema, ScrapeRequestSchema]);
export type TrackerRequest = Static<typeof TrackerRequestSchema>;
export const trackerRequestCodec = createCodec(TrackerRequestSchema);

/** Server -> client frames. */
export const AnnounceResponseSchema = Type.Object({
  action: Type.Literal('announce'),
  info_hash: BinaryId20Schema,
  interval: Type.Integer({ minimum: 1 }),
  'min interval': Type.Optional(Type.Integer({ minimum: 1 })),
  complete: Type.Integer({ minimum: 0 }),
  incomplete: Type.Integer({ minimum: 0 }),
});
export type AnnounceResponse = Static<typeof AnnounceResponseSchema>;

export const RelayedOfferSchema = Type.Object({
  action: Type.Literal('announce'),
  info_hash: BinaryId20Schema,
  peer_id: BinaryId20Schema,
  offer_id: OfferIdSchema,
  offer: SdpSchema,
});
export type RelayedOffer = Static<typeof RelayedOfferSchema>;

export const RelayedAnswerSchema = Type.Object({
  action: Type.Literal('announce'),
  info_hash: BinaryId20Schema,
  peer_id: BinaryId20Schema,
  offer_id: OfferIdSchema,
  answer: SdpSchema,
});
export type RelayedAnswer = Static<typeof RelayedAnswerSchema>;

export const ScrapeResponseSchema = Type.Object({
  action: Type.Literal('scrape'),
  files: Type.Record(
    Type.String(),
    Type.Object({ complete: Type.Integer(), incomplete: Type.Integer(), downloaded: Type.Integer() }),
  ),
  flags: Type.Optional(Type.Object({ min_request_interval: Type.Integer({ minimum: 1 }) })),
});
export type ScrapeResponse = Static<typeof ScrapeResponseSchema>;

/**
 * Error frame, as bittorrent-tracker sends it; `pf_code` carries our error code. Stock
 * clients ignore a failure frame without `action` and `info_hash`, so send both when known.
 */
export const FailureFrameSchema = Type.Object({
  'failure reason': Type.String(),
  action: Type.Optional(Type.String()),
  info_hash: Type.Optional(BinaryId20Schema),
  pf_code: Type.Optional(Type.String()),
});
export type FailureFrame = Static<typeof FailureFrameSchema>;

export const TrackerResponseSchema = Type.Union([
  RelayedOfferSchema,
  RelayedAnswerSchema,
  AnnounceResponseSchema,
  ScrapeResponseSchema,
  FailureFrameSchema,
]);
export type TrackerResponse = Static<typeof TrackerResponseSchema>;
export const trackerResponseCodec = createCodec(TrackerResponseSchema);
