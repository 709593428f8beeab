// What an admission rule decides, with no bytes or HTTP in it. The webhook's
// completion step turns a decision into an AdmissionResponse: it echoes the
// uid, derives the JSONPatch by diffing, and encodes it.

export type Decision =
  | { type: 'allow'; reason: string; warnings: string[]; detail?: string }
  | { type: 'patch'; reason: string; warnings: string[]; mutated: unknown }
  | { type: 'deny'; reason: string; warnings: string[]; code: number; message: string };

/** `reason` is a short stable word for logs and metrics; messages are for people. */
export function allow(reason: string, warnings: string[] = [], detail?: string): Decision {
  return { type: 'allow', reason, warnings, ...(detail === undefined ? {} : { detail }) };
}

/** `mutated` is a copy-on-write copy of the request object: untouched subtrees stay shared. */
export function patch(mutated: unknown, reason: string, warnings: string[] = []): Decision {
  return { type: 'patch', reason, warnings, mutated };
}

export function deny(reason: string, message: string, code = 403): Decision {
  return { type: 'deny', reason, warnings: [], code, message };
}
