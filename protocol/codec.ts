import type { Static, TSchema } from '@sinclair/typebox';
import { Errors } from '@sinclair/typebox/errors';
import { Check, Hash } from '@sinclair/typebox/value';
import { PfError, type ErrorCode } from './errors.ts';
import { generatedValidators } from './validators.generated.ts';

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

/**
 * A runtime check for one schema. Everything that arrives from a socket,
 * a peer or a file is `unknown` until a codec accepts it.
 */
export interface Codec<S extends TSchema> {
  readonly schema: S;
  is(value: unknown): value is Static<S>;
  decode(value: unknown): DecodeResult<Static<S>>;
  /** Like decode, but throws a PfError carrying `code` and the first errors. */
  parse(value: unknown, code?: ErrorCode): Static<S>;
}

const MAX_REPORTED_ERRORS = 5;

/** Every schema given to createCodec in this process: what scripts/generate-validators.ts compiles. */
const codecSchemas: TSchema[] = [];

/**
 * A schema's identity for the generated table: its JSON with TypeBox's symbol keys
 * (Kind, Optional, …) spelled out, so two schemas that check differently never share a key.
 */
export function schemaKey(schema: TSchema): string {
  return JSON.stringify(schema, (_key, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const symbols = Object.getOwnPropertySymbols(value);
    if (symbols.length === 0) return value;
    const spelled: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const symbol of symbols) spelled[`~${symbol.description ?? ''}`] = (value as Record<symbol, unknown>)[symbol];
    return spelled;
  });
}

/** The generated table's key for a schema: a 64-bit FNV-1a hash of schemaKey, in hex. */
export function validatorKey(schema: TSchema): string {
  return Hash(schemaKey(schema)).toString(16);
}

/** The schemas createCodec has seen so far, in order of creation (for the generator). */
export function seenCodecSchemas(): readonly TSchema[] {
  return codecSchemas;
}

export function createCodec<S extends TSchema>(schema: S): Codec<S> {
  codecSchemas.push(schema);
  // Standalone checks generated at build time: TypeCompiler.Compile would need `new Function`,
  // which a Content-Security-Policy without 'unsafe-eval' forbids. Every codec of the shipped
  // code has one (test/protocol/validators.test.ts); only a test's own ad-hoc schema falls back
  // to TypeBox's interpreter, which needs no eval either.
  const check = generatedValidators.get(validatorKey(schema)) ?? ((value: unknown) => Check(schema, value));
  const is = (value: unknown): value is Static<S> => check(value);
  const decode = (value: unknown): DecodeResult<Static<S>> => {
    if (is(value)) return { ok: true, value };
    const errors: string[] = [];
    for (const error of Errors(schema, value)) {
      errors.push(`${error.path || '/'}: ${error.message}`);
      if (errors.length >= MAX_REPORTED_ERRORS) break;
    }
    return { ok: false, errors };
  };
  return {
    schema,
    is,
    decode,
    parse(value, code = 'PF_ERR_VALIDATION') {
      const result = decode(value);
      if (result.ok) return result.value;
      throw new PfError(code, result.errors.join('; '));
    },
  };
}

/** JSON.parse that never throws: malformed text is a decode error, not an exception. */
export function parseJson(text: string): DecodeResult<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, errors: [`invalid JSON: ${(error as Error).message}`] };
  }
}
