// The webhook's HTTPS server: one fastify plugin per concern (admission,
// health, metrics). Only the admission plugin sees AdmissionReviews; the
// decisions themselves are the pure functions of src/core.

import fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import { mutate, validate, type Judgement } from '../core/admission/index.ts';
import type { AdmissionConfig } from '../core/config.ts';
import type { Logger } from '../log.ts';
import type { WebhookMetrics } from './metrics.ts';
import {
  ADMISSION_API_VERSION,
  admissionReviewResponseSchema,
  admissionReviewSchema,
  completeResponse,
  type AdmissionReview,
} from './review.ts';
import type { KeyPair } from './certs.ts';

/**
 * The largest review the apiserver sends: it refuses request bodies over 3 MiB (MaxRequestBodyBytes),
 * so an object it admits is at most 3 MiB of JSON, and an UPDATE review carries two (object and
 * oldObject): 6 MiB, plus 1 MiB for the rest (userInfo, options, the envelope). controller-runtime
 * refuses above the same 7 MiB. Anything larger is not from the apiserver: 413 before it is buffered.
 */
export const BODY_LIMIT_BYTES = 7 * 1024 * 1024;
/** Longer than the apiserver's 90 s idle timeout, so the apiserver, not us, closes idle connections. */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;
/**
 * The apiserver gives up on a webhook call after its timeoutSeconds, at most 30 s, and writes the
 * whole review at once: a request still arriving after 30 s (headers, body, a silent socket) has no
 * one waiting for its answer. fastify turns Node's request timeout off; these put it back.
 */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A TLS handshake is a few round trips; a client that has not finished it in 10 s is not the apiserver. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * Connections at once. The apiserver keeps up to 25 idle connections per webhook host
 * (client-go's MaxIdleConnsPerHost) and opens more under load; 250 leaves room for several apiservers
 * and bursts, and bounds what idle TLS sockets (tens of KiB each) and 7 MiB bodies can hold.
 */
export const MAX_CONNECTIONS = 250;

/**
 * Review bytes being read or judged at once, across all connections. A review costs the process
 * several times its size while it is read, parsed and judged, so the connection cap alone does not
 * bound memory: 25 reviews of 7 MiB at once took the webhook from 127 to 610 MiB RSS against its
 * 256Mi limit (bench/RESULTS.md, `npm run bench:memory`). Two maximal reviews at once, with the heap
 * cap of the shipped Deployment (NODE_OPTIONS), stayed under it; a typical review (4-30 KiB) is
 * refused only with hundreds in flight. Past it, a review gets a 429 before its body is read.
 */
export const IN_FLIGHT_BYTES = 2 * BODY_LIMIT_BYTES;

export interface Timeouts {
  requestMs: number;
  handshakeMs: number;
  /** How often Node checks headersTimeout and requestTimeout (its default, 30 s, would double them). */
  checkEveryMs: number;
}

const DEFAULT_TIMEOUTS: Timeouts = { requestMs: REQUEST_TIMEOUT_MS, handshakeMs: HANDSHAKE_TIMEOUT_MS, checkEveryMs: 1_000 };

export interface ServerOptions {
  tls: KeyPair;
  admission: AdmissionConfig;
  metrics: WebhookMetrics;
  logger: Logger;
  clock?: () => Date;
  /** Shorter in tests; the defaults above otherwise. */
  timeouts?: Timeouts;
  maxConnections?: number;
  inFlightBytes?: number;
}

export interface WebhookServer {
  app: FastifyInstance<HttpsServer>;
  /** Swap the serving certificate; new connections use it at once, open ones keep theirs. */
  setCertificate(pair: KeyPair): void;
  /** Readiness drops first, then the server stops taking connections and lets in-flight requests finish. */
  shutdown(delayMs: number): Promise<void>;
}

type Judge = (review: AdmissionReview, now: Date) => Judgement;

export function buildWebhookServer(options: ServerOptions): WebhookServer {
  const { admission, metrics, logger } = options;
  const clock = options.clock ?? (() => new Date());
  const tlsOptions = { minVersion: 'TLSv1.2' as const };
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const app = fastify({
    https: {
      ...options.tls,
      ...tlsOptions,
      handshakeTimeout: timeouts.handshakeMs,
      headersTimeout: timeouts.requestMs,
      connectionsCheckingInterval: timeouts.checkEveryMs,
    },
    requestTimeout: timeouts.requestMs,
    // A socket silent this long in the middle of a request (between requests keepAliveTimeout rules).
    connectionTimeout: timeouts.requestMs,
    loggerInstance: logger,
    // One line per admission comes from the route; fastify's own request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    // Each admission line carries its uid; a pino child per request would only cost time.
    childLoggerFactory: (logger) => logger,
    bodyLimit: BODY_LIMIT_BYTES,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    // JSON.parse alone: the regex scans for "__proto__"/"constructor" cost a pass over
    // every body, and nothing here merges request data into prototypes (spreads and
    // JSON copies define own properties only).
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  }) as unknown as FastifyInstance<HttpsServer>;
  // Past it, Node closes new connections at once: the apiserver sees a refused call, not a hang.
  app.server.maxConnections = options.maxConnections ?? MAX_CONNECTIONS;

  let ready = true;
  const inFlightBudget = options.inFlightBytes ?? IN_FLIGHT_BYTES;
  let inFlightBytes = 0;

  app.register((scope, _opts, done) => {
    scope.register(admissionRoutes('mutate', (r, now) => mutate(r.request, admission, now)));
    scope.register(admissionRoutes('validate', (r) => validate(r.request, admission)));
    done();
  });

  function admissionRoutes(name: 'mutate' | 'validate', judge: Judge) {
    const webhook = `/${name}`;
    return (scope: FastifyInstance, _opts: unknown, done: (err?: Error) => void) => {
      // Label children bound once: prom-client hashes label objects on every call otherwise.
      const inFlight = metrics.inFlight.labels({ webhook });
      const latency = metrics.latency.labels({ webhook });
      const byCode = new Map<number, { inc(): void }>();
      const byDecision = new Map<string, { inc(): void }>();
      scope.addHook('onRequest', (request, reply, next) => {
        inFlight.inc();
        // The apiserver sends a Content-Length; a body without one may grow to the limit.
        const length = Number(request.headers['content-length'] ?? BODY_LIMIT_BYTES);
        const bytes = Number.isFinite(length) && length >= 0 ? Math.min(length, BODY_LIMIT_BYTES) : BODY_LIMIT_BYTES;
        if (inFlightBytes > 0 && inFlightBytes + bytes > inFlightBudget) {
          // Refused unread; closing the connection drops the body instead of reading it.
          reply.code(429).header('retry-after', '1').header('connection', 'close').send({
            statusCode: 429, error: 'Too Many Requests',
            message: `inplace-gate: ${Math.ceil(inFlightBytes / 1024 / 1024)} MiB of reviews in flight, at most ${inFlightBudget / 1024 / 1024} MiB: try again`,
          });
          return;
        }
        inFlightBytes += bytes;
        reply.raw.once('close', () => { inFlightBytes -= bytes; });
        next();
      });
      scope.addHook('onResponse', (_request, reply, next) => {
        latency.observe(reply.elapsedTime / 1000);
        inFlight.dec();
        let counter = byCode.get(reply.statusCode);
        if (counter === undefined) {
          counter = metrics.requests.labels({ webhook, code: String(reply.statusCode) });
          byCode.set(reply.statusCode, counter);
        }
        counter.inc();
        next();
      });
      // Reviews are JSON; anything else is refused with a 415 before a handler runs.
      scope.removeContentTypeParser(['text/plain']);
      scope.setSchemaErrorFormatter((errors, dataVar) => {
        const e = errors[0];
        const where = `${dataVar}${e?.instancePath ?? ''}`;
        const allowed = e?.keyword === 'const' ? ` "${String((e.params as { allowedValue?: unknown }).allowedValue)}"` : '';
        const hint = e?.instancePath === '/apiVersion' ? ` (this webhook speaks ${ADMISSION_API_VERSION}: list it in admissionReviewVersions)` : '';
        return new Error(`not an AdmissionReview: ${where} ${e?.message ?? 'is invalid'}${allowed}${hint}`);
      });
      scope.setErrorHandler((error: FastifyError, request, reply) => {
        const code = error.statusCode ?? 500;
        if (code < 500) {
          if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
            error.message = `content-type ${request.headers['content-type'] ?? '(none)'} is not accepted: send application/json`;
          }
          if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
            error.message = `body over ${BODY_LIMIT_BYTES / 1024 / 1024} MiB: larger than any AdmissionReview the apiserver sends`;
          }
          request.log.debug({ webhook, code, err: error.message }, 'bad admission request');
          return reply.code(code).send({ statusCode: code, error: error.code, message: error.message });
        }
        metrics.panics.inc();
        request.log.error({ webhook, err: error }, 'admission failed unexpectedly');
        return reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: `inplace-gate: ${error.message}` });
      });
      scope.post(
        webhook,
        { schema: { body: admissionReviewSchema, response: { 200: admissionReviewResponseSchema } } },
        (request: FastifyRequest<{ Body: AdmissionReview }>, reply: FastifyReply) => {
          const review = request.body;
          const req = review.request;
          const judgement = judge(review, clock());
          if (judgement.type === 'invalid') {
            request.log.debug({ webhook, uid: req.uid, err: judgement.message }, 'bad admission request');
            return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `not a review this webhook judges: ${judgement.message}` });
          }
          const response = completeResponse(req.uid, judgement, req.object);
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
          if (!logger.isLevelEnabled(notable ? 'info' : 'debug')) {
            return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
          }
          const line = {
            webhook,
            uid: req.uid,
            operation: req.subResource ? `${req.operation} ${req.subResource}` : req.operation,
            object: `${req.namespace ?? ''}/${req.name ?? ''}`,
            user: req.userInfo.username,
            dryRun: req.dryRun === true,
            decision: judgement.type,
            reason: judgement.reason,
            ...(judgement.type === 'allow' && judgement.detail ? { detail: judgement.detail } : {}),
            latencyMs: reply.elapsedTime,
          };
          if (notable) logger.info(line, 'admission');
          else logger.debug(line, 'admission');
          return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
        },
      );
      done();
    };
  }

  app.get('/healthz', (_request, reply) => reply.send('ok'));
  app.get('/readyz', (_request, reply) => (ready ? reply.send('ok') : reply.code(503).send('shutting down')));
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });

  return {
    app,
    setCertificate(pair) {
      app.server.setSecureContext({ ...pair, ...tlsOptions });
    },
    async shutdown(delayMs) {
      ready = false;
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      await app.close();
    },
  };
}
