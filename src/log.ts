import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout, one per event, with the component's name in each. */
export function createLogger(component: string, level: string): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
