/**
 * `kubespand discovery serve|watch`.
 *
 *   serve  the open discovery server (Sidero discovery API) — runs until SIGINT/SIGTERM
 *   watch  prints a cluster's decrypted affiliates each time they change (debugging aid)
 *
 * Logs are pino JSON on stderr with secrets redacted; `watch` output goes to stdout and never
 * contains the cluster secret.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { DiscoveryClient } from '../discovery-client/client.js';
import { DiscoveryServer } from '../discovery-server/server.js';
import { DEFAULT_DISCOVERY_ENDPOINT } from '../discovery/limits.js';
import type { DiscoveredAffiliate } from '../discovery/types.js';
import type { Command } from './main.js';

const REDACT = ['clusterSecret', '*.clusterSecret', 'credentials', '*.credentials', 'secret', '*.secret'];

/** Where the subcommands write, and what stops them (tests pass their own). */
export interface DiscoveryIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Aborting stops `serve` / `watch` and makes them return 0. */
  signal: AbortSignal;
  /** pino destination for logs (default: stderr). */
  logDestination?: pino.DestinationStream;
  /** Called once `serve` is listening, with the bound ports. */
  onListening?: (ports: { port: number; metricsPort?: number }) => void;
}

const USAGE = `usage:
  kubespand discovery serve --listen host:port [--tls-cert FILE --tls-key FILE] [--state-file FILE]
                            [--redirect-endpoint host:port] [--trust-forwarded-headers]
                            [--metrics-listen host:port] [--gc-interval 1m] [--snapshot-interval 10m]
                            [--no-client-ip] [--no-rate-limit] [--log-level info]
  kubespand discovery watch --cluster-id ID (--cluster-secret SECRET | --cluster-secret-file FILE)
                            [--endpoint URL] [--ca-file FILE]... [--json] [--once] [--log-level warn]

  serve: open discovery server speaking Sidero's gRPC API (TLS when --tls-cert/--tls-key are given).
  watch: print the cluster's decrypted affiliates whenever they change (default endpoint
         ${DEFAULT_DISCOVERY_ENDPOINT}; proxies from https_proxy/http_proxy/grpc_proxy/no_proxy).
`;

/** `90s`, `1m`, `500ms`, `2h`, or plain milliseconds. Throws naming the flag. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new Error(`${flag}: "${value}" is not a duration (e.g. 500ms, 30s, 1m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const ms = n * (unit === 'h' ? 3_600_000 : unit === 'm' ? 60_000 : unit === 's' ? 1000 : 1);
  if (!(ms > 0)) throw new Error(`${flag}: "${value}" must be positive`);
  return ms;
}

function logger(level: string | undefined, fallback: LevelWithSilent, dest: pino.DestinationStream | undefined): Logger {
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  const lvl = level ?? fallback;
  if (!levels.includes(lvl)) throw new Error(`--log-level: "${lvl}" is not one of ${levels.join(', ')}`);
  return pino(
    { name: 'kubespand', level: lvl, redact: { paths: REDACT, censor: '[redacted]' } },
    dest ?? pino.destination({ dest: 2, sync: true }),
  );
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

async function serve(argv: string[], io: DiscoveryIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      listen: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'state-file': { type: 'string' },
      'redirect-endpoint': { type: 'string' },
      'trust-forwarded-headers': { type: 'boolean' },
      'metrics-listen': { type: 'string' },
      'gc-interval': { type: 'string' },
      'snapshot-interval': { type: 'string' },
      'no-client-ip': { type: 'boolean' },
      'no-rate-limit': { type: 'boolean' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  if (values.listen === undefined) throw new Error('--listen host:port is required');
  const log = logger(values['log-level'], 'info', io.logDestination);
  const server = new DiscoveryServer({
    listen: values.listen,
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    stateFile: values['state-file'],
    redirectEndpoint: values['redirect-endpoint'],
    trustForwardedHeaders: values['trust-forwarded-headers'] ?? false,
    reportClientIp: !(values['no-client-ip'] ?? false),
    rateLimit: values['no-rate-limit'] ? false : undefined,
    gcIntervalMs: values['gc-interval'] === undefined ? undefined : parseDuration(values['gc-interval'], '--gc-interval'),
    snapshotIntervalMs:
      values['snapshot-interval'] === undefined ? undefined : parseDuration(values['snapshot-interval'], '--snapshot-interval'),
    metricsListen: values['metrics-listen'],
    logger: log,
  });
  const ports = await server.start();
  io.onListening?.(ports);
  await untilAborted(io.signal);
  await server.stop();
  return 0;
}

/** Human-readable listing of affiliates (no secrets: only what the nodes published). */
export function formatAffiliates(affiliates: readonly DiscoveredAffiliate[], publicIp: string | undefined): string {
  const lines = [`${new Date().toISOString()} ${affiliates.length} affiliate(s)${publicIp ? `, our public IP ${publicIp}` : ''}`];
  for (const a of affiliates) {
    lines.push(`  ${a.nodeId}  hostname=${a.hostname || '-'} nodename=${a.nodename || '-'} type=${a.machineType || '-'} os="${a.operatingSystem}"`);
    if (a.addresses.length) lines.push(`    addresses: ${a.addresses.join(' ')}`);
    if (a.kubespan) {
      lines.push(`    kubespan: key=${a.kubespan.publicKey} address=${a.kubespan.address}`);
      if (a.kubespan.additionalAddresses.length) lines.push(`      additional: ${a.kubespan.additionalAddresses.join(' ')}`);
      if (a.kubespan.excludeAdvertisedAddresses.length) lines.push(`      exclude: ${a.kubespan.excludeAdvertisedAddresses.join(' ')}`);
    }
    if (a.endpoints.length) {
      lines.push(`    endpoints: ${a.endpoints.map((e) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`)).join(' ')}`);
    }
    if (a.controlPlane) lines.push(`    control plane: api server port ${a.controlPlane.apiServerPort}`);
  }
  return lines.join('\n') + '\n';
}

async function watch(argv: string[], io: DiscoveryIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      endpoint: { type: 'string' },
      'cluster-id': { type: 'string' },
      'cluster-secret': { type: 'string' },
      'cluster-secret-file': { type: 'string' },
      'ca-file': { type: 'string', multiple: true },
      json: { type: 'boolean' },
      once: { type: 'boolean' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const clusterId = values['cluster-id'];
  if (clusterId === undefined) throw new Error('--cluster-id is required');
  let secret = values['cluster-secret'];
  if (values['cluster-secret-file'] !== undefined) {
    if (secret !== undefined) throw new Error('--cluster-secret and --cluster-secret-file are exclusive');
    try {
      secret = readFileSync(values['cluster-secret-file'], 'utf8').trim();
    } catch (err) {
      throw new Error(`--cluster-secret-file: cannot read "${values['cluster-secret-file']}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (secret === undefined) throw new Error('--cluster-secret or --cluster-secret-file is required');
  const log = logger(values['log-level'], 'warn', io.logDestination);
  const client = new DiscoveryClient({
    endpoint: values.endpoint ?? DEFAULT_DISCOVERY_ENDPOINT,
    clusterId,
    clusterSecret: secret,
    // a watcher publishes nothing; a random id never collides with (and so never hides) a real node
    affiliateId: `kubespand-watch-${randomBytes(6).toString('hex')}`,
    caFiles: values['ca-file'] ?? [],
    logger: log,
  });
  let last = '';
  let lastError: string | undefined;
  let printedOnce!: () => void;
  const firstPrint = new Promise<void>((r) => (printedOnce = r));
  const print = () => {
    if (client.state() !== 'connected') return;
    const affiliates = client.affiliates();
    const key = JSON.stringify([affiliates, client.publicIp()]);
    if (key === last) return;
    last = key;
    io.stdout(values.json ? JSON.stringify({ publicIp: client.publicIp() ?? null, affiliates }) + '\n' : formatAffiliates(affiliates, client.publicIp()));
    printedOnce();
  };
  client.onChange(print);
  const errorTimer = setInterval(() => {
    const e = client.lastError();
    if (e !== undefined && e !== lastError && client.state() !== 'connected') io.stderr(`discovery: ${e}\n`);
    lastError = e;
    print();
  }, 250);
  client.start();
  try {
    await Promise.race([untilAborted(io.signal), values.once ? firstPrint : new Promise<never>(() => {})]);
  } finally {
    clearInterval(errorTimer);
    await client.stop();
  }
  return 0;
}

/** Runs `discovery <serve|watch> …` with explicit I/O (used by the CLI and by tests). */
export async function runDiscovery(argv: string[], io: DiscoveryIo): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'serve':
      return serve(rest, io);
    case 'watch':
      return watch(rest, io);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      io.stdout(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      io.stderr(`discovery: unknown subcommand "${sub}"\n${USAGE}`);
      return 2;
  }
}

export const discoveryCommand: Command = {
  summary: 'discovery server (serve) and affiliate watcher (watch)',
  async run(argv: string[]): Promise<number> {
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      return await runDiscovery(argv, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        signal: controller.signal,
      });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
