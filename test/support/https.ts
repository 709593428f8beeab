import { request, Agent } from 'node:https';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = unknown>(): T;
}

/** A real HTTPS client trusting only the given CA, as the apiserver does with caBundle. */
export function httpsClient(base: string, ca: string, agentOptions: ConstructorParameters<typeof Agent>[0] = {}) {
  const agent = new Agent({ ca, keepAlive: true, ...agentOptions });
  function send(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, base), { method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }
  return {
    agent,
    get: (path: string) => send('GET', path),
    post: (path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
      send('POST', path, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body), headers),
    close: () => { agent.destroy(); },
  };
}
