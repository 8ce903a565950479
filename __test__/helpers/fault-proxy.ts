/**
 * A small HTTP proxy in front of the test S3 server that injects faults at a configurable rate:
 * 500 InternalError, 503 ServiceUnavailable, 503 SlowDown throttling, connections dropped before
 * the request reaches the server or after it was applied (the client never sees the answer), and
 * added latency. Decisions come from a seeded RNG, so a run with the same seed and the same
 * request order injects the same faults. `injected` counts what was done.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { seededRandom } from '../../ts/cli/mutations.js';

export const FAULT_KINDS = ['error500', 'error503', 'slowDown', 'dropBefore', 'dropAfter', 'latency'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultProxyOptions {
  /** the real server, e.g. `http://127.0.0.1:5000` */
  target: string;
  /** probability in [0, 1] that a request gets a fault */
  faultRate: number;
  seed?: number;
  /** relative weights of the fault kinds (default: all 1); 0 disables a kind */
  weights?: Partial<Record<FaultKind, number>>;
  /** delay added by a `latency` fault (default 200 ms) */
  latencyMs?: number;
  /**
   * requests for which this says true are held: never forwarded nor answered (a server that hangs);
   * `stats.held` counts them and `stats.heldClosed` those whose client closed the connection
   */
  hold?: (method: string, url: string) => boolean;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: point clients here */
  readonly endpoint: string;
  readonly injected: Record<FaultKind, number>;
  /** requests seen, requests that reached the server, requests held, and held ones the client gave up (closed) */
  readonly stats: { requests: number; forwarded: number; held: number; heldClosed: number };
  setFaultRate(rate: number): void;
  close(): Promise<void>;
}


function s3ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const random = seededRandom(options.seed ?? 1);
  const latencyMs = options.latencyMs ?? 200;
  const weights = FAULT_KINDS.map((kind) => Math.max(0, options.weights?.[kind] ?? 1));
  const totalWeight = weights.reduce((sum, w) => sum + w, 0);
  if (totalWeight === 0) throw new Error('fault proxy: every fault kind has weight 0');
  let faultRate = options.faultRate;
  const injected = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const stats = { requests: 0, forwarded: 0, held: 0, heldClosed: 0 };
  const sockets = new Set<Socket>();

  const pickFault = (): FaultKind | null => {
    if (random() >= faultRate) return null;
    let point = random() * totalWeight;
    for (let i = 0; i < FAULT_KINDS.length; i++) {
      point -= weights[i]!;
      if (point < 0) return FAULT_KINDS[i]!;
    }
    return FAULT_KINDS[FAULT_KINDS.length - 1]!;
  };

  const answerWithError = (req: IncomingMessage, res: ServerResponse, status: number, code: string) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : s3ErrorXml(code, 'injected by the fault proxy'));
    });
  };

  const forward = (req: IncomingMessage, res: ServerResponse, dropAnswer: boolean) => {
    stats.forwarded++;
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamResponse) => {
        if (dropAnswer) {
          // The server applied the request; the client only sees its connection die.
          upstreamResponse.resume();
          upstreamResponse.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
        upstreamResponse.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => {
    stats.requests++;
    if (options.hold?.(req.method ?? '', req.url ?? '')) {
      stats.held++;
      req.resume();
      req.socket.once('close', () => stats.heldClosed++);
      return;
    }
    const fault = pickFault();
    if (fault !== null) injected[fault]++;
    switch (fault) {
      case 'error500':
        return answerWithError(req, res, 500, 'InternalError');
      case 'error503':
        return answerWithError(req, res, 503, 'ServiceUnavailable');
      case 'slowDown':
        return answerWithError(req, res, 503, 'SlowDown');
      case 'dropBefore':
        return req.socket.destroy();
      case 'dropAfter':
        return forward(req, res, true);
      case 'latency':
        setTimeout(() => forward(req, res, false), latencyMs);
        return;
      case null:
        return forward(req, res, false);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    injected,
    stats,
    setFaultRate(rate: number) {
      faultRate = rate;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
