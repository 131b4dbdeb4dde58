/**
 * `kubespand run --config node.yaml`: turns this host into a KubeSpan node. The config is validated
 * before anything on the host is touched; then the daemon runs in the foreground until SIGINT/SIGTERM,
 * when it removes the device, routes, rules and nftables table it installed.
 */
import { parseArgs } from 'node:util';
import { ConfigError, parseNodeConfigFile } from '../kubespan/config.js';
import { toDaemonSettings } from '../kubespan/settings.js';
import { KubespanDaemon } from '../kubespan/daemon.js';
import { startControlServer, type ControlServer } from '../kubespan/control.js';
import { createLogger } from '../log.js';
import type { Command } from './main.js';

const USAGE = 'usage: kubespand run --config <node.yaml> [--log-level LEVEL]';

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
    let settings;
    let cfg;
    try {
      cfg = parseNodeConfigFile(values.config);
      settings = toDaemonSettings(cfg);
    } catch (err) {
      process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `kubespand run: ${err instanceof Error ? err.message : String(err)}\n`);
      return 1;
    }
    const level = (values['log-level'] ?? process.env.LOG_LEVEL ?? cfg.kubespand.logLevel) as 'info';
    const log = createLogger({ name: 'kubespand', level });
    for (const w of cfg.warnings) log.warn(w);
    const daemon = new KubespanDaemon(settings, log);
    let control: ControlServer | null = null;
    const stopped = new Promise<string>((resolve) => daemon.onStopped(resolve));
    const onSignal = (signal: NodeJS.Signals): void => void daemon.stop(`received ${signal}`);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await daemon.start();
      control = await startControlServer(cfg.kubespand.controlSocket, {
        get: (kind) => daemon.resources()[kind] as unknown[],
        status: () => daemon.status(),
        leave: () => daemon.leave(),
        reload: async () => {
          throw new Error('reload is not supported yet: restart the daemon');
        },
      });
      log.info({ controlSocket: control.path }, 'kubespand is running');
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'start failed');
      process.stderr.write(`kubespand run: ${err instanceof Error ? err.message : String(err)}\n`);
      await daemon.stop('start failed');
      await control?.close();
      return 1;
    }
    const reason = await stopped;
    await control.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    log.info({ reason }, 'stopped');
    return 0;
  },
};
