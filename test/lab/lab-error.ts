/**
 * Lab failures carry a literal code like peerfill's PfError. They stay out of protocol/errors.ts
 * because the lab is test infrastructure: no component raises them and no client sees them.
 */
export type LabErrorCode =
  | 'PF_ERR_LAB_SPEC' // a HostSpec is invalid
  | 'PF_ERR_LAB_UNSUPPORTED' // not root, no ip/tc, or the kernel lacks a needed qdisc
  | 'PF_ERR_LAB_COMMAND'; // an ip/tc/spawned command failed

export class LabError extends Error {
  readonly code: LabErrorCode;

  constructor(code: LabErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LabError';
    this.code = code;
  }
}
