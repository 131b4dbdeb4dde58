/**
 * pino logger factory. Secrets never reach logs: key material is never passed to the logger by our
 * code; as a second line of defence the redact list censors every field name that could carry one;
 * and as a third, a SecretScrubber given the node's actual secrets (private key, cluster secret in
 * base64 and hex, proxy passwords) replaces any of them found in an output line and counts the hit,
 * so a leak is both contained and visible (the log test asserts the count stays 0). Peers are named
 * `peer(abcd…wxyz)` (src/noise/keys.ts peerTag).
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'privateKey',
  'presharedKey',
  'secret',
  'clusterSecret',
  'password',
  'proxyAuthorization',
  'credentials',
  'authorization',
  'http_proxy',
  'https_proxy',
  'grpc_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'GRPC_PROXY',
  '*.credentials',
  '*.authorization',
  '*.http_proxy',
  '*.https_proxy',
  '*.grpc_proxy',
  '*.HTTP_PROXY',
  '*.HTTPS_PROXY',
  '*.GRPC_PROXY',
  'discovery.proxy',
  'settings.clusterSecret',
  'settings.discovery.proxy',
  '*.privateKey',
  '*.presharedKey',
  '*.secret',
  '*.clusterSecret',
  '*.password',
  '*.proxyAuthorization',
  'config.cluster.secret',
  'wireguard.privateKey',
  'wireguard.peers[*].presharedKey',
];

/** Maps wireguard-go's LOG_LEVEL words (verbose, debug, error, silent) and pino's own names to a pino level. */
export function levelFromEnv(value: string | undefined, fallback: LevelWithSilent = 'info'): LevelWithSilent {
  switch ((value ?? '').toLowerCase()) {
    case 'verbose':
    case 'debug':
      return 'debug';
    case 'trace':
      return 'trace';
    case 'info':
      return 'info';
    case 'warn':
      return 'warn';
    case 'error':
      return 'error';
    case 'fatal':
      return 'fatal';
    case 'silent':
      return 'silent';
    default:
      return fallback;
  }
}

/** The shortest secret text worth scrubbing; shorter strings would censor ordinary words. */
const MIN_SCRUB_LENGTH = 6;

/**
 * Last line of defence: replaces known secret strings in rendered log lines with [redacted] and
 * counts how often it had to. A non-zero count is a bug (some code logged a secret).
 */
export class SecretScrubber {
  private secrets: string[] = [];
  hits = 0;

  /** Registers a secret; Uint8Arrays are added as standard base64, base64url and hex. */
  add(secret: string | Uint8Array | undefined | null): void {
    if (secret === undefined || secret === null) return;
    const forms = typeof secret === 'string' ? [secret] : [Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), Buffer.from(secret).toString('hex')];
    for (const f of forms) {
      if (f.length < MIN_SCRUB_LENGTH || this.secrets.includes(f)) continue;
      this.secrets.push(f);
    }
    this.secrets.sort((a, b) => b.length - a.length);
  }

  scrub(line: string): string {
    let out = line;
    for (const s of this.secrets) {
      if (out.includes(s)) {
        out = out.split(s).join('[redacted]');
        this.hits++;
      }
    }
    return out;
  }
}

/** JSON logs to stderr (stdout stays free for command output). */
export function createLogger(opts: { level?: LevelWithSilent; name?: string; destination?: number; scrubber?: SecretScrubber } = {}): Logger {
  const scrubber = opts.scrubber;
  return pino(
    {
      name: opts.name ?? 'kubespand',
      level: opts.level ?? levelFromEnv(process.env.LOG_LEVEL),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      ...(scrubber ? { hooks: { streamWrite: (s: string) => scrubber.scrub(s) } } : {}),
    },
    pino.destination({ dest: opts.destination ?? 2, sync: true }),
  );
}
