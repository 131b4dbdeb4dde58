/**
 * Live reload of the node config (SIGHUP, `systemctl reload`, the control socket's `reload` op).
 *
 * The file is read and validated exactly as `kubespand run` does at start, its mode and the CA files'
 * contents included: a file that others can read (it holds the cluster secret) is refused with the
 * same message as at start. A file with any problem is refused as a whole, the running state is kept,
 * and the reload counts as failed. Fields
 * that define who this node is, or which device and sockets it owns, cannot change under a running
 * daemon: a reload that changes one is refused with a message naming the key and saying to restart.
 * Everything else is applied in place by the daemon, the logger and the metrics listener, without
 * touching established WireGuard sessions (peers, keys and the UDP socket stay as they are).
 *
 *   restart needed   cluster.id, cluster.secret, kubespand.stateDir, kubespand.interface,
 *                    kubespand.listenPort, kubespand.identityLink, kubespand.controlSocket
 *   applied live     machine.network.kubespan.* (mtu, filters, bypass, harvest, extra endpoints, …),
 *                    cluster.discovery.* endpoint, kubespand.discovery.caFiles, machine.env proxies,
 *                    kubespand.nodeName/hostname/podCIDRs, kubespand.logLevel, kubespand.metricsListen
 *
 * Change lists name keys only, never values: some of them (the secret, proxy URLs) are secrets.
 */
import { isDeepStrictEqual } from 'node:util';
import { checkConfigFileMode, checkConfigFiles, ConfigError, parseNodeConfigFile, type LogLevel, type NodeConfig } from './config.js';
import { toDaemonSettings } from './settings.js';
import type { DaemonSettings } from './daemon.js';
import type { MetricsListen } from '../metrics/server.js';

/** The parts of a config a running node uses: daemon settings plus what `run` itself owns. */
export interface RuntimeConfig {
  settings: DaemonSettings;
  logLevel: LogLevel;
  controlSocket: string;
  metricsListen: MetricsListen | undefined;
}

/** Config keys (as written in the file) and how to read them from a RuntimeConfig. */
interface Field {
  key: string;
  get(c: RuntimeConfig): unknown;
}

export const RESTART_FIELDS: readonly Field[] = [
  { key: 'cluster.id', get: (c) => c.settings.clusterId },
  { key: 'cluster.secret', get: (c) => c.settings.clusterSecret },
  { key: 'kubespand.stateDir', get: (c) => c.settings.node.stateDir },
  { key: 'kubespand.interface', get: (c) => c.settings.node.interface },
  { key: 'kubespand.listenPort', get: (c) => c.settings.node.listenPort },
  { key: 'kubespand.identityLink', get: (c) => c.settings.node.identityLink },
  { key: 'kubespand.controlSocket', get: (c) => c.controlSocket },
];

export const LIVE_FIELDS: readonly Field[] = [
  { key: 'machine.network.kubespan.mtu', get: (c) => c.settings.kubespan.mtu },
  { key: 'machine.network.kubespan.allowDownPeerBypass', get: (c) => c.settings.kubespan.allowDownPeerBypass },
  { key: 'machine.network.kubespan.harvestExtraEndpoints', get: (c) => c.settings.kubespan.harvestExtraEndpoints },
  { key: 'machine.network.kubespan.advertiseKubernetesNetworks', get: (c) => c.settings.kubespan.advertiseKubernetesNetworks },
  { key: 'machine.network.kubespan.filters.endpoints', get: (c) => c.settings.kubespan.endpointFilters },
  { key: 'machine.network.kubespan.filters.excludeAdvertisedNetworks', get: (c) => c.settings.kubespan.excludeAdvertisedNetworks },
  { key: 'machine.network.kubespan.extraAnnouncedEndpoints', get: (c) => c.settings.kubespan.extraAnnouncedEndpoints },
  { key: 'cluster.discovery.enabled', get: (c) => c.settings.discovery.enabled },
  { key: 'cluster.discovery.registries.service.endpoint', get: (c) => c.settings.discovery.endpoint },
  { key: 'kubespand.discovery.caFiles', get: (c) => c.settings.discovery.caFiles },
  { key: 'machine.env', get: (c) => c.settings.discovery.proxy ?? {} },
  { key: 'kubespand.nodeName', get: (c) => c.settings.node.nodeName },
  { key: 'kubespand.hostname', get: (c) => c.settings.node.hostname },
  { key: 'kubespand.podCIDRs', get: (c) => c.settings.node.podCIDRs },
  { key: 'kubespand.logLevel', get: (c) => c.logLevel },
  { key: 'kubespand.metricsListen', get: (c) => c.metricsListen },
];

export interface ReloadPlan {
  /** Live keys whose value changed. */
  changed: string[];
  /** Keys that changed but need a restart (the reload is refused when not empty). */
  restartRequired: string[];
}

/** Pure: which keys differ between the running config and the new one. */
export function planReload(current: RuntimeConfig, next: RuntimeConfig): ReloadPlan {
  const differs = (f: Field): boolean => !isDeepStrictEqual(f.get(current), f.get(next));
  return { changed: LIVE_FIELDS.filter(differs).map((f) => f.key), restartRequired: RESTART_FIELDS.filter(differs).map((f) => f.key) };
}

/**
 * Maps a parsed config file to what a running node uses; throws (ConfigError or Error) when it cannot
 * run, as when others can read the file or a CA file is unreadable (at start and on every reload).
 */
export function runtimeConfigFrom(cfg: NodeConfig): RuntimeConfig {
  const problems = [...checkConfigFileMode(cfg), ...checkConfigFiles(cfg)];
  if (problems.length > 0) throw new ConfigError(cfg.sourceName, problems);
  return {
    settings: toDaemonSettings(cfg),
    logLevel: cfg.kubespand.logLevel,
    controlSocket: cfg.kubespand.controlSocket,
    metricsListen: cfg.kubespand.metricsListen,
  };
}

/** What a reload acts on: the daemon, the logger and the metrics listener. */
export interface ReloadTargets {
  applySettings(next: DaemonSettings, changed: readonly string[]): Promise<void>;
  setLogLevel(level: LogLevel): void;
  setMetricsListen(listen: MetricsListen | undefined): Promise<void>;
}

export interface ReloadResult {
  file: string;
  changed: string[];
  /** Live keys whose new value is not in effect because the command line or environment overrides them. */
  overridden: string[];
}

export class ReloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReloadError';
  }
}

export interface ReloadCounters {
  succeeded: number;
  failed: number;
  /** Unix ms; 0 = none yet. */
  lastSuccessAt: number;
  lastError?: string;
  lastAttemptAt: number;
}

/**
 * Re-reads the config file on request, refuses what cannot apply, and applies the rest. Requests are
 * serialised: a reload that arrives while one runs waits for it.
 */
export class ConfigReloader {
  private current: RuntimeConfig;
  private chain: Promise<unknown> = Promise.resolve();
  readonly counters: ReloadCounters = { succeeded: 0, failed: 0, lastSuccessAt: 0, lastAttemptAt: 0 };

  constructor(
    private readonly file: string,
    initial: RuntimeConfig,
    private readonly targets: ReloadTargets,
    private readonly opts: { logLevelOverride?: LogLevel | undefined; now?: () => number } = {},
  ) {
    this.current = initial;
  }

  get config(): RuntimeConfig {
    return this.current;
  }

  reload(): Promise<ReloadResult> {
    const run = this.chain.then(() => this.reloadOnce());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async reloadOnce(): Promise<ReloadResult> {
    const now = this.opts.now ?? Date.now;
    this.counters.lastAttemptAt = now();
    try {
      const result = await this.apply();
      this.counters.succeeded++;
      this.counters.lastSuccessAt = now();
      delete this.counters.lastError;
      return result;
    } catch (err) {
      this.counters.failed++;
      this.counters.lastError = err instanceof Error ? err.message : String(err);
      throw err;
    }
  }

  private async apply(): Promise<ReloadResult> {
    let next: RuntimeConfig;
    try {
      next = runtimeConfigFrom(parseNodeConfigFile(this.file));
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      throw new ReloadError(`config reload refused, the running configuration is kept:\n${text}`);
    }
    const plan = planReload(this.current, next);
    if (plan.restartRequired.length > 0) {
      const one = plan.restartRequired.length === 1;
      throw new ReloadError(
        `config reload refused, the running configuration is kept: ${this.file}: ${plan.restartRequired.join(', ')} changed; ` +
          `a restart is needed to apply ${one ? 'it' : 'them'} (systemctl restart kubespand), as ${one ? 'this key defines' : 'these keys define'} ` +
          "the node's identity, device or sockets",
      );
    }
    const overridden: string[] = [];
    const changedLevel = plan.changed.includes('kubespand.logLevel');
    if (changedLevel && this.opts.logLevelOverride !== undefined) overridden.push('kubespand.logLevel');
    // the fallible rebinding first, so a refused address leaves everything else as it was
    if (plan.changed.includes('kubespand.metricsListen')) await this.targets.setMetricsListen(next.metricsListen);
    const daemonKeys = plan.changed.filter((k) => k !== 'kubespand.logLevel' && k !== 'kubespand.metricsListen');
    if (daemonKeys.length > 0) await this.targets.applySettings(next.settings, daemonKeys);
    if (changedLevel && this.opts.logLevelOverride === undefined) this.targets.setLogLevel(next.logLevel);
    this.current = next;
    return { file: this.file, changed: plan.changed, overridden };
  }
}
