// A thin Kubernetes REST client: raw JSON in and out (no model classes, no
// Date conversion, unknown fields kept), one keep-alive connection pool for
// every request, and @kubernetes/client-node's KubeConfig for where the
// cluster is and who we are (kubeconfig files, in-cluster tokens, exec plugins).

import { Agent, request, type RequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { StartupError } from '../startup-error.ts';

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  /** The apiserver's own message (Status.message), without the request it answered. */
  readonly detail: string;
  constructor(status: number, reason: string, message: string, detail = message) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.detail = detail;
  }
  /** Worth another try: conflicts, throttling, timeouts and server errors. */
  get retriable(): boolean {
    return this.status === 409 || this.status === 429 || this.status >= 500 || this.status === 0;
  }
}

export type PatchType = 'strategic' | 'merge' | 'json' | 'apply';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  strategic: 'application/strategic-merge-patch+json',
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** Counts writes by verb: the benchmarks compare API writes per pod. */
export type RequestObserver = (method: string, status: number) => void;

const AUTH_REFRESH_MS = 30_000;

export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no cluster configured: set KUBECONFIG or run inside a cluster');
  return kc;
}

export class KubeClient {
  readonly server: URL;
  private readonly kc: KubeConfig;
  private readonly tls: Pick<RequestOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
  private readonly agent: Agent | HttpAgent;
  private readonly watchAgent: Agent | HttpAgent;
  private headers: Record<string, string> = {};
  private headersAt = 0;
  private readonly userAgent: string;
  observer: RequestObserver | undefined;
  /** A guarded view's signal: requests start only while it is not aborted, and end when it aborts. */
  private guard: (() => AbortSignal) | undefined;

  private constructor(kc: KubeConfig, server: URL, tls: KubeClient['tls'], userAgent: string) {
    this.kc = kc;
    this.server = server;
    this.tls = tls;
    this.userAgent = userAgent;
    const secure = this.server.protocol === 'https:';
    this.agent = secure ? new Agent({ keepAlive: true, maxSockets: 16, ...tls }) : new HttpAgent({ keepAlive: true, maxSockets: 16 });
    this.watchAgent = secure ? new Agent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  }

  static async create(kc: KubeConfig, userAgent = 'inplace-gate'): Promise<KubeClient> {
    const opts: RequestOptions = {};
    // A kubeconfig that cannot be used (a plain-HTTP server without insecure-skip-tls-verify, a missing
    // certificate file, a failing exec plugin) is the operator's to fix: one line, no stack trace.
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new StartupError(`the kubeconfig has no current cluster (context "${kc.getCurrentContext()}")`);
    try {
      await kc.applyToHTTPSOptions(opts);
    } catch (err) {
      throw new StartupError(`cannot use the kubeconfig's cluster ${cluster.server} (context "${kc.getCurrentContext()}"): ${(err as Error).message}`, { cause: err });
    }
    const tls = {
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.cert ? { cert: opts.cert } : {}),
      ...(opts.key ? { key: opts.key } : {}),
      ...(opts.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: opts.rejectUnauthorized }),
      ...(opts.servername ? { servername: opts.servername } : {}),
    };
    const client = new KubeClient(kc, new URL(cluster.server), tls, userAgent);
    client.headers = flattenHeaders(opts.headers);
    client.headersAt = Date.now();
    return client;
  }

  /** Tokens rotate (in-cluster files, exec plugins): re-read them now and then. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - this.headersAt > AUTH_REFRESH_MS) {
      const opts: RequestOptions = {};
      await this.kc.applyToHTTPSOptions(opts);
      (opts.agent as Agent | undefined)?.destroy();
      this.headers = flattenHeaders(opts.headers);
      this.headersAt = Date.now();
    }
    return this.headers;
  }

  /**
   * The same client (connections, credentials, observer), every request of
   * which carries `signal()`: a request is not sent once it has aborted, and one
   * in flight is cut off when it aborts. The watcher's reconcilers write through
   * one whose signal aborts when leadership is lost.
   */
  guarded(signal: () => AbortSignal): KubeClient {
    const view = Object.create(this) as KubeClient;
    view.guard = signal;
    return view;
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000, abort?: AbortSignal): Promise<T> {
    const signals = [abort, this.guard?.()].filter((s) => s !== undefined);
    const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    if (signal?.aborted) throw new ApiError(0, 'Aborted', `${method} ${path}: not sent: ${abortReason(signal)}`);
    const headers = { ...(await this.authHeaders()), accept: 'application/json', 'user-agent': this.userAgent };
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) Object.assign(headers, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(payload)) });
    const url = new URL(path, this.server);
    const send = this.server.protocol === 'https:' ? request : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method, headers, agent: this.agent, timeout: timeoutMs, ...(signal ? { signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          this.observer?.(method, status);
          const text = Buffer.concat(chunks).toString();
          if (status >= 200 && status < 300) {
            resolve((text === '' ? undefined : JSON.parse(text)) as T);
            return;
          }
          reject(apiError(status, text, `${method} ${url.pathname}`));
        });
      });
      req.on('timeout', () => req.destroy(new ApiError(0, 'Timeout', `${method} ${url.pathname}: no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => {
        if (err instanceof ApiError) reject(err);
        else if (signal?.aborted) reject(new ApiError(0, 'Aborted', `${method} ${url.pathname}: cut off: ${abortReason(signal)}`));
        else reject(new ApiError(0, 'ConnectionError', `${method} ${url.pathname}: ${err.message}`));
      });
      req.end(payload);
    });
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>('GET', path, undefined, undefined, undefined, signal);
  }

  patch<T>(path: string, body: unknown, type: PatchType, fieldManager?: string): Promise<T> {
    const query = fieldManager ? `${path.includes('?') ? '&' : '?'}fieldManager=${encodeURIComponent(fieldManager)}` : '';
    return this.request<T>('PATCH', `${path}${query}`, body, PATCH_CONTENT_TYPES[type]);
  }

  post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>('POST', path, body, undefined, undefined, signal);
  }

  put<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>('PUT', path, body, undefined, undefined, signal);
  }

  /**
   * Streams watch events until the server ends the watch, the signal aborts,
   * or nothing (not even a bookmark) arrives for `idleMs`. Resolves on a clean
   * end; rejects with an ApiError (410 Gone means: list again).
   */
  async watch<T>(path: string, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal, idleMs = 120_000): Promise<void> {
    const headers = { ...(await this.authHeaders()), accept: 'application/json', 'user-agent': this.userAgent };
    const url = new URL(path, this.server);
    const send = this.server.protocol === 'https:' ? request : httpRequest;
    return new Promise<void>((resolve, reject) => {
      const req = send(url, { method: 'GET', headers, agent: this.watchAgent, signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => { reject(apiError(status, Buffer.concat(chunks).toString(), `watch ${url.pathname}`)); });
          return;
        }
        let idle = setTimeout(() => req.destroy(new ApiError(0, 'Timeout', `watch ${url.pathname}: idle for ${idleMs} ms`)), idleMs);
        const lines = createInterface({ input: res });
        // readline re-emits the response's errors (a reset connection): unhandled, they would end the process.
        lines.on('error', (err) => { clearTimeout(idle); reject(err); });
        lines.on('line', (line) => {
          if (line === '') return;
          clearTimeout(idle);
          idle = setTimeout(() => req.destroy(new ApiError(0, 'Timeout', `watch ${url.pathname}: idle for ${idleMs} ms`)), idleMs);
          const event = JSON.parse(line) as WatchEvent<T>;
          if (event.type === 'ERROR') {
            const s = event.object as { code?: number; reason?: string; message?: string };
            req.destroy(new ApiError(s.code ?? 500, s.reason ?? 'WatchError', s.message ?? 'watch error'));
            return;
          }
          onEvent(event);
        });
        res.on('end', () => { clearTimeout(idle); resolve(); });
        res.on('error', (err) => { clearTimeout(idle); reject(err); });
      });
      req.on('error', (err) => {
        if (signal.aborted) resolve();
        else reject(err instanceof ApiError ? err : new ApiError(0, 'ConnectionError', `watch ${url.pathname}: ${err.message}`));
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}

function flattenHeaders(headers: RequestOptions['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers && !Array.isArray(headers)) {
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason);
}

function apiError(status: number, text: string, what: string): ApiError {
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    return new ApiError(status, s.reason ?? String(status), `${what}: ${s.message ?? text}`, s.message ?? text);
  } catch {
    return new ApiError(status, String(status), `${what}: ${text.slice(0, 500)}`, text.slice(0, 500));
  }
}

/** `context "c", server https://...` of the kubeconfig loadKubeConfig(path) would use, for a line before acting on it. */
export function describeKubeConfig(path?: string): string {
  const kc = loadKubeConfig(path);
  return `context "${kc.getCurrentContext()}", server ${kc.getCurrentCluster()?.server ?? '(none)'}${path ? ` (kubeconfig ${path})` : ''}`;
}
