import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines, one per event, with the component's name and the level as a
 * word (`"level":"info"`, what people grep for and log pipelines map), on
 * stdout unless given a destination (`npm start` writes them to a file).
 */
export function createLogger(component: string, level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
