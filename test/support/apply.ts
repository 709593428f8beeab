import jsonpatch, { type Operation } from 'fast-json-patch';
import type { Decision } from '../../src/core/admission/decision.ts';
import type { Judgement } from '../../src/core/admission/index.ts';
import type { Pod } from '../../src/core/kube-types.ts';
import { UPDATE_ANNOTATION } from '../../src/core/names.ts';
import { parseUpdateState, type UpdateState } from '../../src/core/state.ts';
import { completeResponse } from '../../src/webhook/review.ts';

/** The JSONPatch operations the apiserver would receive for this decision. */
export function patchOf(original: unknown, decision: Judgement): Operation[] {
  if (decision.type === 'invalid') throw new Error(`invalid: ${decision.message}`);
  const response = completeResponse('uid', decision, original);
  return response.patch === undefined ? [] : (JSON.parse(Buffer.from(response.patch, 'base64').toString()) as Operation[]);
}

/** The object as the apiserver stores it after applying the decision's patch. */
export function applied(original: Pod, decision: Judgement): Pod {
  const ops = patchOf(original, decision);
  return jsonpatch.applyPatch(structuredClone(original), ops, true, false).newDocument;
}

export function stateOf(pod: Pod): UpdateState | undefined {
  const parsed = parseUpdateState(pod.metadata.annotations?.[UPDATE_ANNOTATION]);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.state;
}

export function expectDecision(j: Judgement): Decision {
  if (j.type === 'invalid') throw new Error(`invalid: ${j.message}`);
  return j;
}
