// A fatal start-up error the CLI reports as one line (no stack trace) before exiting non-zero.

export class StartupError extends Error {}

/** `cannot listen on 127.0.0.1:9443: address already in use (EADDRINUSE)`, from a listen failure. */
export function listenError(what: string, host: string | undefined, port: number, err: unknown): StartupError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use',
    EACCES: 'permission denied',
    EADDRNOTAVAIL: 'address not available on this machine',
  };
  const cause = code !== undefined && why[code] !== undefined ? `${why[code]} (${code})` : (err as Error).message;
  return new StartupError(`${what} cannot listen on ${host ?? '*'}:${port}: ${cause}`, { cause: err });
}
