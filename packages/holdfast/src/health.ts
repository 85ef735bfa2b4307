/**
 * The observability endpoint: GET /health (JSON, 200 healthy/degraded, 503 unhealthy) and GET /metrics
 * (Prometheus text). It runs on the app thread but only reads stats() from shared memory and one
 * statfs per /health request, never anything on publish()'s path. Bound to 127.0.0.1 unless told
 * otherwise: a device should not expose its state to the whole network by default.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HoldfastClient } from './client.js';
import { ErrorCodes, HoldfastError } from './errors.js';
import { evaluateHealth, readDisk, type HealthLimits } from './health-status.js';
import { DEFAULTS } from './options.js';

export { LATENCY_EVENT, type DeliveryLatencyEvent } from './protocol.js';
export type { HealthReport, HealthStatus } from './health-status.js';

export interface HealthServerOptions {
  /** TCP port; 0 picks a free one (read it back from the result). @default 9464 */
  port?: number;
  /** Interface to bind. @default '127.0.0.1' */
  host?: string;
  /** The client's maxCache, for the 80% rule. @default { messages: 1000000, bytes: 1073741824 } */
  maxCache?: { messages?: number; bytes?: number };
  /** The client's cacheDir, whose file system is checked for free space. @default './holdfast-cache' */
  cacheDir?: string;
  /** Degraded when less than this share of the cache's file system is free. @default 0.05 */
  diskMinFreeRatio?: number;
  /** Degraded when fewer than this many bytes are free on the cache's file system. @default 67108864 */
  diskMinFreeBytes?: number;
}

export interface HealthServer {
  /** The port actually bound. */
  readonly port: number;
  readonly host: string;
  /** Stops listening, ends open connections and stops observing the client. */
  close(): Promise<void>;
}

export const HEALTH_DEFAULTS = { port: 9464, host: '127.0.0.1', cacheRatio: 0.8, diskMinFreeRatio: 0.05, diskMinFreeBytes: 64 * 1024 * 1024 } as const;

const ROUTES = new Set(['/health', '/metrics']);

/** Starts serving /health and /metrics for `client`. Resolves once the port is bound. */
export async function startHealthServer(client: HoldfastClient, options: HealthServerOptions = {}): Promise<HealthServer> {
  const limits: HealthLimits = {
    maxCache: { messages: options.maxCache?.messages ?? DEFAULTS.maxCache.messages, bytes: options.maxCache?.bytes ?? DEFAULTS.maxCache.bytes },
    cacheRatio: HEALTH_DEFAULTS.cacheRatio,
    diskMinFreeRatio: options.diskMinFreeRatio ?? HEALTH_DEFAULTS.diskMinFreeRatio,
    diskMinFreeBytes: options.diskMinFreeBytes ?? HEALTH_DEFAULTS.diskMinFreeBytes,
  };
  const cacheDir = options.cacheDir ?? DEFAULTS.cacheDir;
  // prom-client is loaded on first use: an app without the endpoint does not carry it.
  const { createClientMetrics } = await import('./health-metrics.js');
  const metrics = createClientMetrics(client);

  async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!ROUTES.has(path)) return send(res, 404, 'application/json', JSON.stringify({ error: 'not found', paths: [...ROUTES] }));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'application/json', JSON.stringify({ error: 'method not allowed', allow: ['GET', 'HEAD'] }));
    }
    if (path === '/metrics') return send(res, 200, metrics.registry.contentType, await metrics.render(), req.method === 'HEAD');
    const report = evaluateHealth(client.stats(), await readDisk(cacheDir), limits);
    send(res, report.status === 'unhealthy' ? 503 : 200, 'application/json', JSON.stringify(report), req.method === 'HEAD');
  }

  const server = createServer((req, res) => {
    respond(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
      else res.destroy();
    });
  });
  const host = options.host ?? HEALTH_DEFAULTS.host;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? HEALTH_DEFAULTS.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    metrics.dispose();
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new HoldfastError(ErrorCodes.INVALID_OPTION, `health server cannot listen on ${host}:${options.port ?? HEALTH_DEFAULTS.port} (${code})`, {
      cause: err,
      details: { field: 'health.port', allowed: 'a free port on the given host' },
    });
  }

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    host,
    close() {
      closing ??= new Promise<void>((resolve) => {
        metrics.dispose();
        server.close(() => resolve());
        // Keep-alive connections (Prometheus keeps one) would otherwise hold close() open.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headOnly = false): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(headOnly ? undefined : body);
}
