// POST /mutate and /validate on node:https directly, not through fastify's
// routing, hooks, content-type parser, validator and serialiser (fastify keeps
// every other path). Measured on the 2-core machine with wrk against the bare
// server of bench/servers.ts (CPU per request from /proc, 5 alternating rounds,
// CREATE review): bare 157 µs, bare + the real decision 168 µs, the same
// decision through the fastify routes 233 µs; the framework's per-request work
// cost four times the decision itself. What fastify did here is done the same
// way below: the in-flight budget (429), 415 for other content types, 413 over
// the body limit (from Content-Length before reading, or as the body grows),
// 400 for an empty or malformed body and for an envelope the schema refuses
// (ajv, the same schema and message), 500 for a decision that throws, 503 once
// the server is closing, and the controller-runtime metrics.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Ajv, type ErrorObject } from 'ajv';
import type { Judgement } from '../core/admission/index.ts';
import type { Logger } from '../log.ts';
import type { WebhookMetrics } from './metrics.ts';
import { ADMISSION_API_VERSION, admissionReviewSchema, completeResponse, type AdmissionReview } from './review.ts';

export type Judge = (review: AdmissionReview, now: Date) => Judgement;

export interface AdmissionRouteOptions {
  name: 'mutate' | 'validate';
  judge: Judge;
  metrics: WebhookMetrics;
  logger: Logger;
  clock: () => Date;
  bodyLimit: number;
  /** Review bytes being read or judged at once, shared by both routes. */
  budget: { limit: number; inFlight: number };
  closing: () => boolean;
}

// fastify's options for this schema: no coercion, no removal, the first error only.
const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, allErrors: false, strict: false });
const checkEnvelope = ajv.compile(admissionReviewSchema);

/** The envelope's first error as one line ("body/request/uid must ..."), with the hint for an old apiVersion. */
export function envelopeError(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  const where = `body${e?.instancePath ?? ''}`;
  const allowed = e?.keyword === 'const' ? ` "${String((e.params as { allowedValue?: unknown }).allowedValue)}"` : '';
  const hint = e?.instancePath === '/apiVersion' ? ` (this webhook speaks ${ADMISSION_API_VERSION}: list it in admissionReviewVersions)` : '';
  return `not an AdmissionReview: ${where} ${e?.message ?? 'is invalid'}${allowed}${hint}`;
}

/** application/json, with or without parameters (charset), as fastify's JSON parser takes it. */
function isJson(type: string): boolean {
  const semi = type.indexOf(';');
  return (semi === -1 ? type : type.slice(0, semi)).trim().toLowerCase() === 'application/json';
}

export function admissionRoute(opts: AdmissionRouteOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { name, judge, metrics, logger, clock, bodyLimit, budget } = opts;
  const webhook = `/${name}`;
  // Label children bound once: prom-client hashes label objects on every call otherwise.
  const inFlight = metrics.inFlight.labels({ webhook });
  const latency = metrics.latency.labels({ webhook });
  const byCode = new Map<number, { inc(): void }>();
  const byDecision = new Map<string, { inc(): void }>();
  const bodyTooLarge = `body over ${bodyLimit / 1024 / 1024} MiB: larger than any AdmissionReview the apiserver sends`;

  return (req, res) => {
    const started = performance.now();
    inFlight.inc();
    const send = (code: number, payload: unknown, close = false) => {
      const body = JSON.stringify(payload);
      res.writeHead(code, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        ...(close ? { connection: 'close' } : {}),
      });
      res.end(body);
      latency.observe((performance.now() - started) / 1000);
      let counter = byCode.get(code);
      if (counter === undefined) {
        counter = metrics.requests.labels({ webhook, code: String(code) });
        byCode.set(code, counter);
      }
      counter.inc();
    };
    const refuse = (code: number, error: string, message: string, close = false) => {
      if (code < 500) logger.debug({ webhook, code, err: message }, 'bad admission request');
      send(code, { statusCode: code, error, message }, close);
    };

    if (opts.closing()) {
      res.once('close', () => { inFlight.dec(); });
      refuse(503, 'Service Unavailable', 'Service Unavailable', true);
      return;
    }
    // The apiserver sends a Content-Length; a body without one may grow to the limit.
    const header = req.headers['content-length'];
    const length = header === undefined ? NaN : Number(header);
    const bytes = Number.isFinite(length) && length >= 0 ? Math.min(length, bodyLimit) : bodyLimit;
    if (budget.inFlight > 0 && budget.inFlight + bytes > budget.limit) {
      res.once('close', () => { inFlight.dec(); });
      // Refused unread; closing the connection drops the body instead of reading it.
      res.setHeader('retry-after', '1');
      refuse(429, 'Too Many Requests', `inplace-gate: ${Math.ceil(budget.inFlight / 1024 / 1024)} MiB of reviews in flight, at most ${budget.limit / 1024 / 1024} MiB: try again`, true);
      return;
    }
    budget.inFlight += bytes;
    res.once('close', () => { budget.inFlight -= bytes; inFlight.dec(); });

    const type = req.headers['content-type'];
    const hasBody = req.headers['transfer-encoding'] !== undefined || (length > 0);
    if (type === undefined ? hasBody : !isJson(type)) {
      refuse(415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE', `content-type ${type ?? '(none)'} is not accepted: send application/json`);
      return;
    }
    if (length > bodyLimit) {
      refuse(413, 'FST_ERR_CTP_BODY_TOO_LARGE', bodyTooLarge);
      return;
    }

    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > bodyLimit) {
        req.off('data', onData).off('end', onEnd);
        refuse(413, 'FST_ERR_CTP_BODY_TOO_LARGE', bodyTooLarge);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      if (type === undefined && received === 0) {
        refuse(400, 'FST_ERR_VALIDATION', 'not an AdmissionReview: body must be object');
        return;
      }
      if (received === 0) {
        refuse(400, 'FST_ERR_CTP_EMPTY_JSON_BODY', "Body cannot be empty when content-type is set to 'application/json'");
        return;
      }
      let review: unknown;
      try {
        review = JSON.parse((chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received)).toString('utf8'));
      } catch {
        refuse(400, 'FST_ERR_CTP_INVALID_JSON_BODY', "Body is not valid JSON but content-type is set to 'application/json'");
        return;
      }
      if (!checkEnvelope(review)) {
        refuse(400, 'FST_ERR_VALIDATION', envelopeError(checkEnvelope.errors));
        return;
      }
      try {
        answer(review);
      } catch (error) {
        metrics.panics.inc();
        logger.error({ webhook, err: error }, 'admission failed unexpectedly');
        send(500, { statusCode: 500, error: 'Internal Server Error', message: `inplace-gate: ${(error as Error).message}` });
      }
    };
    req.on('data', onData).on('end', onEnd);

    function answer(review: AdmissionReview): void {
      const r = review.request;
      const judgement = judge(review, clock());
      if (judgement.type === 'invalid') {
        logger.debug({ webhook, uid: r.uid, err: judgement.message }, 'bad admission request');
        send(400, { statusCode: 400, error: 'Bad Request', message: `not a review this webhook judges: ${judgement.message}` });
        return;
      }
      const response = completeResponse(r.uid, judgement, r.object);
      const decisionKey = `${judgement.type}/${judgement.reason}`;
      let decided = byDecision.get(decisionKey);
      if (decided === undefined) {
        decided = metrics.decisions.labels({ webhook, decision: judgement.type, reason: judgement.reason });
        byDecision.set(decisionKey, decided);
      }
      decided.inc();
      // What a person is told (a denial, a warning: deferred, cancelled, undrained) at
      // info; the routine (allows, the gate added to a new pod) at debug.
      const notable = judgement.type === 'deny' || judgement.warnings.length > 0;
      if (logger.isLevelEnabled(notable ? 'info' : 'debug')) {
        const line = {
          webhook,
          uid: r.uid,
          operation: r.subResource ? `${r.operation} ${r.subResource}` : r.operation,
          object: `${r.namespace ?? ''}/${r.name ?? ''}`,
          user: r.userInfo.username,
          dryRun: r.dryRun === true,
          decision: judgement.type,
          reason: judgement.reason,
          ...(judgement.type === 'allow' && judgement.detail ? { detail: judgement.detail } : {}),
          latencyMs: performance.now() - started,
        };
        if (notable) logger.info(line, 'admission');
        else logger.debug(line, 'admission');
      }
      send(200, { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response });
    }
  };
}
