/**
 * A small etcd v3 client over etcd's JSON gateway (`POST /v3/lease/grant`, `/v3/lease/keepalive`,
 * `/v3/lease/revoke`, `/v3/kv/txn`, streaming `/v3/watch`), with the cluster given by its endpoint
 * URLs and TLS files (CA, client certificate and key).
 *
 * Why the gateway and not an npm client: the election needs five calls; the gateway is served by
 * every etcd ≥ 3.4 on the client port, speaks JSON over plain HTTP/1.1 (node:https handles the
 * TLS files directly), and adds no dependency — the `etcd3` package would bring a second gRPC
 * stack and its proto loading for those five calls. Keys and values are base64 in the gateway's
 * JSON, and int64 fields (lease ids, revisions, TTLs) are decimal strings; they are kept as strings.
 *
 * Endpoints are tried in order from the last one that answered; a connection failure moves to the
 * next, an etcd error answer does not. Errors name the endpoint and the call, never TLS key bytes.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { CampaignResult, ElectionStore } from './election-store.js';

export interface EtcdClientOptions {
  /** `http(s)://host:port` URLs. */
  endpoints: string[];
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** Per-request timeout (default 5 s). */
  requestTimeoutMs?: number;
}

/** An answer from etcd itself (not a transport failure); `code` is the gRPC status code. */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

/** gRPC NOT_FOUND, e.g. "requested lease not found". */
const GRPC_NOT_FOUND = 5;

type Json = Record<string, unknown>;

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : undefined);

function readTlsFile(path: string | undefined, field: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`kubespand.etcd.${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export class EtcdGateway implements ElectionStore {
  private readonly urls: URL[];
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent: http.Agent;
  private current = 0;
  private readonly timeoutMs: number;

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('kubespand.etcd.endpoints: no etcd endpoint given');
    this.urls = opts.endpoints.map((e, i) => {
      try {
        return new URL(e);
      } catch {
        throw new Error(`kubespand.etcd.endpoints[${i}]: ${JSON.stringify(e)} is not a URL`);
      }
    });
    const ca = readTlsFile(opts.caFile, 'caFile');
    const cert = readTlsFile(opts.certFile, 'certFile');
    const key = readTlsFile(opts.keyFile, 'keyFile');
    this.httpsAgent = new https.Agent({ keepAlive: true, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
    this.httpAgent = new http.Agent({ keepAlive: true });
    this.timeoutMs = opts.requestTimeoutMs ?? 5_000;
  }

  /** Sends one request to `url`; resolves with the response (status and body not yet read). */
  private open(url: URL, path: string, body: Json, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<{ res: IncomingMessage; destroy: () => void }> {
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || (url.protocol === 'https:' ? 443 : 80),
          path: `/v3/${path}`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          agent: url.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
          ...(signal ? { signal } : {}),
        },
        (res) => resolve({ res, destroy: () => req.destroy() }),
      );
      if (timeoutMs !== undefined) {
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      }
      req.once('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  private static async readAll(res: IncomingMessage): Promise<string> {
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk as string;
    return text;
  }

  /** POST to each endpoint in turn until one answers; parses the JSON reply. */
  private async post(path: string, body: Json, signal?: AbortSignal): Promise<Json> {
    let lastErr: unknown;
    for (let n = 0; n < this.urls.length; n++) {
      const i = (this.current + n) % this.urls.length;
      const url = this.urls[i]!;
      let text: string;
      let status: number;
      try {
        const { res } = await this.open(url, path, body, signal, this.timeoutMs);
        status = res.statusCode ?? 0;
        text = await EtcdGateway.readAll(res);
      } catch (err) {
        if (signal?.aborted) throw err;
        lastErr = new Error(`etcd ${url.origin} /v3/${path}: ${(err as Error).message}`);
        continue;
      }
      this.current = i;
      let json: Json;
      try {
        json = JSON.parse(text) as Json;
      } catch {
        throw new Error(`etcd ${url.origin} /v3/${path}: HTTP ${status}, answer is not JSON: ${text.slice(0, 200)}`);
      }
      if (typeof json.error === 'string' || status !== 200) {
        const message = typeof json.message === 'string' ? json.message : typeof json.error === 'string' ? json.error : `HTTP ${status}`;
        throw new EtcdError(`etcd ${url.origin} /v3/${path}: ${message}`, typeof json.code === 'number' ? json.code : 0);
      }
      return json;
    }
    throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
  }

  async grant(ttlSec: number, signal?: AbortSignal): Promise<string> {
    const r = await this.post('lease/grant', { TTL: String(ttlSec) }, signal);
    if (typeof r.ID !== 'string') throw new Error(`etcd lease/grant: answer without a lease id (${typeof r.error === 'string' ? r.error : 'no error given'})`);
    return r.ID;
  }

  async keepAlive(lease: string, signal?: AbortSignal): Promise<number> {
    // a one-message stream: the gateway answers {"result": {...}} and closes
    const r = await this.post('lease/keepalive', { ID: lease }, signal);
    const result = (r.result ?? r) as Json;
    return Number(result.TTL ?? 0);
  }

  async revoke(lease: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.post('lease/revoke', { ID: lease }, signal);
    } catch (err) {
      if (err instanceof EtcdError && err.code === GRPC_NOT_FOUND) return;
      throw err;
    }
  }

  async campaign(key: string, value: string, lease: string, signal?: AbortSignal): Promise<CampaignResult> {
    const k = b64(key);
    const r = await this.post(
      'kv/txn',
      {
        compare: [{ key: k, target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
        success: [{ request_put: { key: k, value: b64(value), lease } }],
        failure: [{ request_range: { key: k } }],
      },
      signal,
    );
    const revision = String((r.header as Json | undefined)?.revision ?? '0');
    if (r.succeeded === true) return { won: true, owner: value, ownerLease: lease, revision };
    const responses = (r.responses ?? []) as Json[];
    const range = (responses[0]?.response_range ?? {}) as Json;
    const kv = ((range.kvs ?? []) as Json[])[0];
    return { won: false, owner: unb64(kv?.value), ownerLease: typeof kv?.lease === 'string' ? kv.lease : undefined, revision };
  }

  async watch(key: string, revision: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const url = this.urls[this.current]!;
    const local = new AbortController();
    const onAbort = () => local.abort();
    signal.addEventListener('abort', onAbort);
    const timer = setTimeout(() => local.abort(), timeoutMs);
    try {
      const start = (BigInt(revision) + 1n).toString();
      const { res } = await this.open(url, 'watch', { create_request: { key: b64(key), start_revision: start } }, local.signal, undefined);
      if (res.statusCode !== 200) {
        const text = await EtcdGateway.readAll(res);
        throw new Error(`etcd ${url.origin} /v3/watch: HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      }
      res.setEncoding('utf8');
      let buf = '';
      for await (const chunk of res) {
        buf += chunk as string;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          const msg = JSON.parse(line) as Json;
          const result = (msg.result ?? {}) as Json;
          if (msg.error !== undefined) throw new Error(`etcd ${url.origin} /v3/watch: ${JSON.stringify(msg.error)}`);
          // an event, or a cancel (e.g. the revision was compacted): either way, campaign again
          if ((Array.isArray(result.events) && result.events.length > 0) || result.canceled === true) return;
        }
      }
    } catch (err) {
      if (local.signal.aborted) return; // timeout or stop
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      local.abort();
    }
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }
}
