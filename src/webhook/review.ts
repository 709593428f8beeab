// The AdmissionReview v1 boundary: the envelope's schema (checked by fastify
// before any handler runs) and the one completion step that turns a Decision
// into an AdmissionResponse: uid echoed, patch derived by diffing, warnings cut short.

import jsonpatch from 'fast-json-patch';
import type { Decision } from '../core/admission/decision.ts';
import type { AdmissionRequest } from '../core/admission/request.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionReview {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  request: AdmissionRequest;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patch?: string;
  patchType?: 'JSONPatch';
  warnings?: string[];
  status?: { status: 'Failure'; code: number; reason: string; message: string };
}

const objectOrNull = { type: ['object', 'null'] } as const;

export const admissionReviewSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'request'],
  properties: {
    apiVersion: { type: 'string', const: ADMISSION_API_VERSION },
    kind: { type: 'string', const: 'AdmissionReview' },
    request: {
      type: 'object',
      required: ['uid', 'kind', 'resource', 'operation', 'userInfo'],
      properties: {
        uid: { type: 'string', minLength: 1 },
        kind: {
          type: 'object',
          required: ['group', 'version', 'kind'],
          properties: { group: { type: 'string' }, version: { type: 'string' }, kind: { type: 'string' } },
        },
        resource: {
          type: 'object',
          required: ['group', 'version', 'resource'],
          properties: { group: { type: 'string' }, version: { type: 'string' }, resource: { type: 'string' } },
        },
        subResource: { type: 'string' },
        name: { type: 'string' },
        namespace: { type: 'string' },
        operation: { type: 'string', enum: ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] },
        // The decisions compare usernames and groups: their types are checked here, not trusted there.
        userInfo: {
          type: 'object',
          properties: {
            username: { type: 'string' },
            uid: { type: 'string' },
            groups: { type: 'array', items: { type: 'string' } },
            extra: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
          },
        },
        object: objectOrNull,
        oldObject: objectOrNull,
        dryRun: { type: 'boolean' },
        options: { type: ['object', 'null'], properties: { fieldManager: { type: 'string' } } },
      },
    },
  },
} as const;

/** Serialised by fast-json-stringify: only these fields ever leave the server. */
export const admissionReviewResponseSchema = {
  type: 'object',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    response: {
      type: 'object',
      properties: {
        uid: { type: 'string' },
        allowed: { type: 'boolean' },
        patch: { type: 'string' },
        patchType: { type: 'string' },
        warnings: { type: 'array', items: { type: 'string' } },
        status: {
          type: 'object',
          properties: {
            status: { type: 'string' },
            code: { type: 'integer' },
            reason: { type: 'string' },
            message: { type: 'string' },
          },
        },
      },
    },
  },
} as const;

// The apiserver truncates longer warnings; keep ours whole and readable.
const MAX_WARNING_LENGTH = 256;

const STATUS_REASONS: Record<number, string> = { 400: 'BadRequest', 403: 'Forbidden', 409: 'Conflict', 422: 'Invalid' };

/**
 * `original` is the request's object; a `patch` decision's `mutated` is a
 * copy-on-write copy of it, so the diff only walks the subtrees that changed.
 */
export function completeResponse(uid: string, decision: Decision, original: unknown): AdmissionResponse {
  const warnings = decision.warnings.map((w) => (w.length > MAX_WARNING_LENGTH ? `${w.slice(0, MAX_WARNING_LENGTH - 1)}…` : w));
  const base: AdmissionResponse = { uid, allowed: decision.type !== 'deny', ...(warnings.length > 0 ? { warnings } : {}) };
  switch (decision.type) {
    case 'allow':
      return base;
    case 'deny':
      return {
        ...base,
        status: { status: 'Failure', code: decision.code, reason: STATUS_REASONS[decision.code] ?? 'Forbidden', message: decision.message },
      };
    case 'patch': {
      const ops = jsonpatch.compare(original as object, decision.mutated as object);
      if (ops.length === 0) return base;
      return { ...base, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(ops)).toString('base64') };
    }
  }
}
