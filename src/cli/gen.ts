/**
 * `kubespand gen config --with-kubespan [--name NODE] [--endpoint URL] [-o FILE] [--force]` and
 * `kubespand gen config --from FILE [--name NODE] [-o FILE]`: like `talosctl gen config --with-kubespan`.
 * Without -o the config goes to stdout; with -o the file is written with mode 0600 (it holds the
 * cluster secret) and an existing file is kept unless --force.
 */
import { parseArgs } from 'node:util';
import { normaliseEndpoint } from '../discovery/endpoint-url.js';
import { ConfigError, parseNodeConfigFile } from '../kubespan/config.js';
import { generateNodeConfig, generateNodeConfigFrom, writeSecretFile } from '../kubespan/gen-config.js';
import type { Command } from './main.js';

const USAGE = [
  'usage: kubespand gen config --with-kubespan [--name NODE] [--endpoint URL] [-o FILE] [--force]',
  '       kubespand gen config --from FILE [--name NODE] [-o FILE] [--force]',
  '',
  'Makes a new cluster (random cluster id and secret) and the config of one node, or with --from',
  "another node's config for the cluster of FILE (same id, secret and discovery settings).",
  '',
  '  --with-kubespan   enable KubeSpan in the generated config (as talosctl gen config)',
  '  --name NODE       Kubernetes node name of the node (kubespand.nodeName)',
  '  --endpoint URL    discovery service (default https://discovery.talos.dev/)',
  '  --from FILE       an existing node config of the cluster',
  '  -o, --output FILE write the config to FILE with mode 0600 instead of stdout',
  '  --force           replace FILE if it exists',
].join('\n');

export const genCommand: Command = {
  summary: 'generate node configs (gen config)',
  async run(argv) {
    let values: { 'with-kubespan'?: boolean; name?: string; endpoint?: string; from?: string; output?: string; force?: boolean; help?: boolean };
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: argv,
        options: {
          'with-kubespan': { type: 'boolean' },
          name: { type: 'string' },
          endpoint: { type: 'string' },
          from: { type: 'string' },
          output: { type: 'string', short: 'o' },
          force: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: true,
      }));
    } catch (err) {
      process.stderr.write(`kubespand gen: ${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (positionals.length !== 1 || positionals[0] !== 'config') {
      process.stderr.write(`kubespand gen: ${positionals.length === 0 ? 'what to generate? only "config" exists' : `unknown target ${JSON.stringify(positionals.join(' '))}; only "config" exists`}\n\n${USAGE}\n`);
      return 2;
    }
    if (values.from !== undefined && values.endpoint !== undefined) {
      process.stderr.write('kubespand gen: --endpoint cannot be combined with --from: the new node uses the discovery service of the --from file\n');
      return 2;
    }
    if (values.endpoint !== undefined) normaliseEndpoint(values.endpoint, '--endpoint'); // throws a clear error
    let text: string;
    try {
      if (values.from !== undefined) {
        const base = parseNodeConfigFile(values.from);
        const opts: { nodeName?: string; withKubespan?: boolean } = { withKubespan: values['with-kubespan'] === true };
        if (values.name !== undefined) opts.nodeName = values.name;
        text = generateNodeConfigFrom(base, opts);
      } else {
        const opts: { nodeName?: string; endpoint?: string; withKubespan: boolean } = { withKubespan: values['with-kubespan'] === true };
        if (values.name !== undefined) opts.nodeName = values.name;
        if (values.endpoint !== undefined) opts.endpoint = values.endpoint;
        text = generateNodeConfig(opts).text;
      }
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(err.message.replace(/^generated config: kubespand\.nodeName:/gm, '--name:') + '\n');
      return 1;
    }
    if (values.output === undefined || values.output === '-') {
      process.stdout.write(text);
      return 0;
    }
    writeSecretFile(values.output, text, values.force === true);
    process.stderr.write(`wrote ${values.output} (mode 0600: it holds the cluster secret)\n`);
    return 0;
  },
};
