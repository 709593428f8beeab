// Prometheus metrics with controller-runtime's webhook names, so existing
// dashboards and alerts for Go webhooks work unchanged. Seconds everywhere.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface WebhookMetrics {
  registry: Registry;
  latency: Histogram<'webhook'>;
  requests: Counter<'webhook' | 'code'>;
  inFlight: Gauge<'webhook'>;
  panics: Counter;
  decisions: Counter<'webhook' | 'decision' | 'reason'>;
  certificateReloads: Counter<'result'>;
  certificateExpiry: Gauge;
}

export function createWebhookMetrics(): WebhookMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    latency: new Histogram({
      name: 'controller_runtime_webhook_latency_seconds',
      help: 'Histogram of the latency of processing admission requests',
      labelNames: ['webhook'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    requests: new Counter({
      name: 'controller_runtime_webhook_requests_total',
      help: 'Total number of admission requests by HTTP status code',
      labelNames: ['webhook', 'code'],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'controller_runtime_webhook_requests_in_flight',
      help: 'Current number of admission requests being served',
      labelNames: ['webhook'],
      registers: [registry],
    }),
    panics: new Counter({
      name: 'controller_runtime_webhook_panics_total',
      help: 'Total number of admission requests that failed with an unexpected error',
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'inplace_gate_admission_decisions_total',
      help: 'Admission decisions by outcome (allow, patch, deny) and reason',
      labelNames: ['webhook', 'decision', 'reason'],
      registers: [registry],
    }),
    certificateReloads: new Counter({
      name: 'inplace_gate_certificate_reloads_total',
      help: 'Serving certificate reloads from disk by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    // cert-manager's name shape (certmanager_certificate_expiration_timestamp_seconds): alerts compare it with time().
    certificateExpiry: new Gauge({
      name: 'inplace_gate_certificate_expiration_timestamp_seconds',
      help: 'When the serving certificate in use expires (Unix seconds)',
      registers: [registry],
    }),
  };
}
