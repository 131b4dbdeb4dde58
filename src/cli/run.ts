/**
 * `kubespand run --config node.yaml`: turns this host into a KubeSpan node. The config is validated
 * before anything on the host is touched; then the daemon runs in the foreground until SIGINT/SIGTERM,
 * when it removes the device, routes, rules and nftables table it installed.
 *
 * Operations (packaging/systemd/kubespand.service, docs/operations.md):
 * - systemd `Type=notify`: READY=1 once the device, dataplane and control socket are up, STATUS=
 *   lines with the peer count, RELOADING=1/READY=1 around a reload, STOPPING=1 on the way out. The
 *   datagram is sent from this process (the native addon's sdNotify), so NotifyAccess=main suffices.
 * - SIGHUP (`systemctl reload`) and the control socket's `reload` re-read the config file
 *   (src/kubespan/reload.ts); a refused file is logged and the running state is kept.
 * - `kubespand.metricsListen`: Prometheus metrics (src/metrics).
 */
import { parseArgs } from 'node:util';
import { ConfigError, LOG_LEVELS, parseNodeConfigFile, type LogLevel } from '../kubespan/config.js';
import { KubespanDaemon } from '../kubespan/daemon.js';
import { startControlServer, type ControlServer } from '../kubespan/control.js';
import { ConfigReloader, runtimeConfigFrom, type RuntimeConfig } from '../kubespan/reload.js';
import { createMetricsRegistry } from '../metrics/metrics.js';
import { startMetricsServer, type MetricsListen, type MetricsServer } from '../metrics/server.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KUBESPAN_IDENTITY_FILE, loadOrCreateIdentity } from '../kubespan/identity.js';
import { parseProxyUrl } from '../discovery-client/proxy.js';
import { sdNotify } from '../native.js';
import { createLogger, levelFromEnv, SecretScrubber, type Logger } from '../log.js';
import { VERSION } from '../kubespan/daemon.js';
import type { Command } from './main.js';

const USAGE = 'usage: kubespand run --config <node.yaml> [--log-level fatal|error|warn|info|debug|trace|silent]';

/**
 * sd_notify(3) for a service manager listening on $NOTIFY_SOCKET. Without the variable every call is
 * a no-op; a send that fails is logged once as a warning and never stops the daemon.
 */
export class SystemdNotifier {
  readonly socket: string | undefined;
  private warned = false;
  private lastStatus = '';

  constructor(
    private readonly log: Logger,
    env: NodeJS.ProcessEnv = process.env,
    private readonly send: (path: string, text: string) => number = sdNotify,
  ) {
    this.socket = env.NOTIFY_SOCKET || undefined;
  }

  notify(fields: Record<string, string | number>): boolean {
    if (!this.socket) return false;
    const text = Object.entries(fields).map(([k, v]) => `${k}=${v}`).join('\n');
    try {
      this.send(this.socket, text);
      return true;
    } catch (err) {
      if (!this.warned) this.log.warn({ notifySocket: this.socket, err: err instanceof Error ? err.message : String(err) }, 'cannot notify the service manager');
      this.warned = true;
      return false;
    }
  }

  /** STATUS= only when the text changed (systemctl status shows the latest). */
  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify({ STATUS: text });
  }
}

/** The node's secrets in every spelling a log line could carry them, for the logger's scrubber. */
function registerSecrets(scrubber: SecretScrubber, rc: RuntimeConfig, privateKey?: Uint8Array): void {
  const { clusterSecret, discovery } = rc.settings;
  scrubber.add(clusterSecret);
  scrubber.add(new Uint8Array(Buffer.from(clusterSecret, 'base64')));
  if (privateKey) scrubber.add(privateKey);
  for (const [key, value] of Object.entries(discovery.proxy ?? {})) {
    if (!value || !/_proxy$/i.test(key) || /^no_/i.test(key)) continue;
    try {
      const credentials = parseProxyUrl(value, key).credentials;
      if (!credentials) continue;
      scrubber.add(credentials);
      const colon = credentials.indexOf(':');
      if (colon >= 0) scrubber.add(credentials.slice(colon + 1));
      scrubber.add(Buffer.from(credentials).toString('base64')); // a Proxy-Authorization: Basic value
      const raw = /^[a-z][a-z0-9+.-]*:\/\/([^/@]*)@/i.exec(value)?.[1];
      if (raw) scrubber.add(raw);
    } catch {
      /* validated already */
    }
  }
}

function peerSummary(daemon: KubespanDaemon): string {
  const st = daemon.status();
  const peers = daemon.resources().kubespanpeerstatuses;
  const up = peers.filter((p) => p.state === 'up').length;
  return `${up}/${peers.length} peers up, discovery ${st.discovery.state}`;
}

export const runCommand: Command = {
  summary: 'run a KubeSpan node',
  async run(argv) {
    let values;
    try {
      ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
    } catch (err) {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (!values.config) {
      process.stderr.write(`kubespand run: --config is required\n${USAGE}\n`);
      return 2;
    }
    const flagLevel = values['log-level'];
    if (flagLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(flagLevel)) {
      process.stderr.write(`kubespand run: --log-level must be one of ${LOG_LEVELS.join(', ')} (got "${flagLevel}")\n`);
      return 2;
    }
    const configFile = values.config;
    let rc: RuntimeConfig;
    let cfg;
    try {
      cfg = parseNodeConfigFile(configFile);
      // a world-readable file, unreadable CA files: refused here as validate refuses them (and as
      // every reload refuses them: runtimeConfigFrom checks both)
      rc = runtimeConfigFrom(cfg);
    } catch (err) {
      process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `kubespand run: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    // the command line, then the environment, override the file (also across reloads)
    // LOG_LEVEL takes wireguard-go's words too (verbose = debug); an unknown word is ignored
    const envText = process.env.LOG_LEVEL?.trim().toLowerCase();
    const envLevel = envText && (envText === 'verbose' || (LOG_LEVELS as readonly string[]).includes(envText)) ? levelFromEnv(envText) : undefined;
    const levelOverride = (flagLevel ?? envLevel) as LogLevel | undefined;
    const scrubber = new SecretScrubber();
    registerSecrets(scrubber, rc);
    const log = createLogger({ name: 'kubespand', level: levelOverride ?? rc.logLevel, scrubber });
    for (const w of cfg.warnings) log.warn(w);
    const scrubPrivateKey = (): void => {
      // only an existing identity is read here: creating one is the daemon's job (and its log line)
      if (!existsSync(join(rc.settings.node.stateDir, KUBESPAN_IDENTITY_FILE))) return;
      try {
        registerSecrets(scrubber, rc, loadOrCreateIdentity(rc.settings.node.stateDir).privateKey);
      } catch {
        /* the daemon reports identity problems itself */
      }
    };
    scrubPrivateKey();

    const notifier = new SystemdNotifier(log);
    const daemon = new KubespanDaemon(rc.settings, log);
    let control: ControlServer | null = null;
    const serving: { metrics: MetricsServer | null } = { metrics: null };
    let reloader: ConfigReloader | null = null;
    const stopped = new Promise<string>((resolve) => daemon.onStopped(resolve));
    const onStop = (signal: NodeJS.Signals): void => {
      notifier.notify({ STOPPING: 1, STATUS: `stopping (${signal})` });
      void daemon.stop(`received ${signal}`);
    };

    let markStarted!: (ok: boolean) => void;
    const started = new Promise<boolean>((r) => (markStarted = r));
    const reload = async (trigger: string): Promise<unknown> => {
      if (!(await started) || !reloader) throw new Error('kubespand is not running');
      notifier.notify({ RELOADING: 1, STATUS: `reloading ${configFile}` });
      try {
        const result = await reloader.reload();
        log.info({ trigger, file: configFile, changed: result.changed, overridden: result.overridden }, result.changed.length ? 'config reloaded' : 'config reloaded: nothing changed');
        registerSecrets(scrubber, reloader.config);
        return result;
      } catch (err) {
        log.error({ trigger, err: err instanceof Error ? err.message : String(err) }, 'config reload failed');
        throw err;
      } finally {
        notifier.notify({ READY: 1, STATUS: peerSummary(daemon) });
      }
    };
    const onHup = (): void => void reload('SIGHUP').catch(() => undefined);
    process.on('SIGINT', onStop);
    process.on('SIGTERM', onStop);
    process.on('SIGHUP', onHup);

    const setMetricsListen = async (listen: MetricsListen | undefined): Promise<void> => {
      const previous = serving.metrics;
      if (previous) {
        await previous.close();
        serving.metrics = null;
      }
      if (!listen) return;
      try {
        serving.metrics = await startMetricsServer(listen, registry);
        log.info({ metrics: serving.metrics.url }, 'metrics listening');
      } catch (err) {
        if (previous) serving.metrics = await startMetricsServer(previous.address, registry).catch(() => null);
        throw err;
      }
    };
    const registry = createMetricsRegistry(
      () => daemon.metricsSnapshot({ succeeded: reloader?.counters.succeeded ?? 0, failed: reloader?.counters.failed ?? 0, lastSuccessAt: reloader?.counters.lastSuccessAt ?? 0 }),
      { version: VERSION },
    );

    try {
      await daemon.start();
      scrubPrivateKey();
      if (rc.metricsListen) await setMetricsListen(rc.metricsListen);
      reloader = new ConfigReloader(
        configFile,
        rc,
        {
          applySettings: (next, changed) => daemon.applySettings(next, changed),
          setLogLevel: (level) => {
            log.level = level;
          },
          setMetricsListen,
        },
        { logLevelOverride: levelOverride },
      );
      control = await startControlServer(rc.controlSocket, {
        get: (kind) => daemon.resources()[kind] as unknown[],
        status: () => ({
          ...daemon.status(),
          logLevel: log.level,
          metrics: serving.metrics?.url ?? null,
          configFile,
          reload: reloader?.counters,
        }),
        leave: () => daemon.leave(),
        reload: () => reload('control socket'),
      });
      log.info({ controlSocket: control.path }, 'kubespand is running');
      if (notifier.socket) daemon.onReconciled(() => notifier.status(peerSummary(daemon)));
      notifier.notify({ READY: 1, STATUS: peerSummary(daemon), MAINPID: process.pid });
      markStarted(true);
    } catch (err) {
      markStarted(false);
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'start failed');
      process.stderr.write(`kubespand run: ${err instanceof Error ? err.message : String(err)}\n`);
      notifier.notify({ STATUS: `start failed: ${err instanceof Error ? err.message : String(err)}`, ERRNO: 1 });
      await daemon.stop('start failed');
      await control?.close();
      await serving.metrics?.close();
      process.off('SIGHUP', onHup);
      return 1;
    }
    const reason = await stopped;
    await control.close();
    await serving.metrics?.close();
    process.off('SIGINT', onStop);
    process.off('SIGTERM', onStop);
    process.off('SIGHUP', onHup);
    if (scrubber.hits > 0) log.warn({ scrubbed: scrubber.hits }, 'secrets were scrubbed from log lines: this is a bug, please report it');
    log.info({ reason }, 'stopped');
    return 0;
  },
};
