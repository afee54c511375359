export * from './errors.ts';
export * from './codec.ts';
export * from './hex.ts';
export * from './bitfield.ts';
export * from './manifest.ts';
export * from './session.ts';
export * from './signed-url.ts';
export * from './tracker-messages.ts';
export type * from './ports.ts';
