/**
 * pino logger factory. Secrets never reach logs: key material is never passed to the logger by our
 * code, and as a second line of defence the redact list censors every field name that could carry
 * one. Peers are named `peer(abcd…wxyz)` (src/noise/keys.ts peerTag).
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
    case 'silent':
      return 'silent';
    default:
      return fallback;
  }
}

/** JSON logs to stderr (stdout stays free for command output). */
export function createLogger(opts: { level?: LevelWithSilent; name?: string; destination?: number } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'kubespand',
      level: opts.level ?? levelFromEnv(process.env.LOG_LEVEL),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination({ dest: opts.destination ?? 2, sync: true }),
  );
}
