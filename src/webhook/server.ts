// The webhook's HTTPS server: one fastify plugin per concern (admission,
// health, metrics). Only the admission plugin sees AdmissionReviews; the
// decisions themselves are the pure functions of src/core.

import fastify, { LogController, type FastifyHttpsOptions, type FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server as HttpsServer } from 'node:https';
import { mutate, validate } from '../core/admission/index.ts';
import type { AdmissionConfig } from '../core/config.ts';
import type { Logger } from '../log.ts';
import type { WebhookMetrics } from './metrics.ts';
import { admissionRoute } from './admission-route.ts';
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

export function buildWebhookServer(options: ServerOptions): WebhookServer {
  const { admission, metrics, logger } = options;
  const clock = options.clock ?? (() => new Date());
  const tlsOptions = { minVersion: 'TLSv1.2' as const };
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  let ready = true;
  let closing = false;
  const budget = { limit: options.inFlightBytes ?? IN_FLIGHT_BYTES, inFlight: 0 };
  const route = (name: 'mutate' | 'validate', judge: Parameters<typeof admissionRoute>[0]['judge']) =>
    admissionRoute({ name, judge, metrics, logger, clock, bodyLimit: BODY_LIMIT_BYTES, budget, closing: () => closing });
  // The admission paths skip fastify (admission-route.ts says why, with the figures); fastify serves the rest.
  const routes = new Map([
    ['/mutate', route('mutate', (r, now) => mutate(r.request, admission, now))],
    ['/validate', route('validate', (r) => validate(r.request, admission))],
  ]);
  const serverFactory = (fastifyHandler: (req: IncomingMessage, res: ServerResponse) => void) => {
    const server = createServer({
      ...options.tls,
      ...tlsOptions,
      handshakeTimeout: timeouts.handshakeMs,
      headersTimeout: timeouts.requestMs,
      requestTimeout: timeouts.requestMs,
      connectionsCheckingInterval: timeouts.checkEveryMs,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    }, (req, res) => {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      const handler = req.method === 'POST' ? routes.get(q === -1 ? url : url.slice(0, q)) : undefined;
      if (handler) handler(req, res);
      else fastifyHandler(req, res);
    });
    // A socket silent this long in the middle of a request (between requests keepAliveTimeout rules).
    server.setTimeout(timeouts.requestMs);
    return server;
  };
  const app = fastify({
    serverFactory,
    // Only for the URLs listen() reports (https://): the server above is the one that serves.
    https: {},
    requestTimeout: timeouts.requestMs,
    connectionTimeout: timeouts.requestMs,
    loggerInstance: logger,
    // fastify's own request lines would be noise next to the admission lines.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (logger) => logger,
    bodyLimit: BODY_LIMIT_BYTES,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
  } satisfies FastifyHttpsOptions<HttpsServer>) as unknown as FastifyInstance<HttpsServer>;
  // Past it, Node closes new connections at once: the apiserver sees a refused call, not a hang.
  app.server.maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
  // From app.close() on, admission answers 503 as fastify's routes do (return503OnClosing).
  app.addHook('preClose', (done) => { closing = true; done(); });

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
