import { createServer } from 'node:net';

/** A loopback port free at the time of asking (the OS picks it; the listener is closed again). */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => { ok(typeof address === 'object' && address ? address.port : 0); });
    });
    server.on('error', fail);
  });
}
