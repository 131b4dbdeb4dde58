/**
 * kubespand command-line entry. Each subcommand lives in its own module, loaded on demand so that
 * `kubespand genkey` does not pay for gRPC or the native addon.
 */

export interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

type Loader = () => Promise<Command>;

const commands: Record<string, Loader> = {
  device: async () => (await import('./device.js')).deviceCommand,
  up: async () => (await import('./up.js')).upCommand,
  genkey: async () => (await import('./keys.js')).genkeyCommand,
  pubkey: async () => (await import('./keys.js')).pubkeyCommand,
  genpsk: async () => (await import('./keys.js')).genpskCommand,
  discovery: async () => (await import('./discovery.js')).discoveryCommand,
  validate: async () => (await import('./validate.js')).validateCommand,
  gen: async () => (await import('./gen.js')).genCommand,
  run: async () => (await import('./run.js')).runCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  get: async () => (await import('./get.js')).getCommand,
  status: async () => (await import('./get.js')).statusCommand,
  leave: async () => (await import('./get.js')).leaveCommand,
  reload: async () => (await import('./get.js')).reloadCommand,
};

export const VERSION = '0.1.0';

function usage(): string {
  return [
    'usage: kubespand <command> [options]',
    '',
    'commands:',
    '  device <ifname>                 userspace WireGuard device (drop-in for wireguard-go -f)',
    '  up --config <file.yaml>         static WireGuard device from a Talos-shaped YAML file',
    '  genkey | pubkey | genpsk        key tools, output identical to wg',
    '  demo [--nodes N] [--once]       a KubeSpan mesh in network namespaces on this machine (root)',
    '  run --config <node.yaml>        run a KubeSpan node (identity, discovery, mesh, routing)',
    '  get <kind> [-o table|yaml|json] kubespanidentities|kubespanpeerspecs|kubespanpeerstatuses|kubespanendpoints|affiliates|vip',
    '  get links [-o table|yaml|json]  the host links with driver, bus path and predictable names (no daemon needed)',
    '  status [-w]                     one-screen summary of the running node',
    '  leave                           delete this node from discovery',
    '  reload                          re-read the running node\'s config file (like SIGHUP)',
    '  discovery serve|watch           discovery server / affiliate watcher',
    '  validate --config <file.yaml>   check a node config file, report every problem',
    '  gen config --with-kubespan      new cluster id/secret and node config (--from FILE: another node)',
    '  gen wireguard --cidr C ...      one `kubespand up` config per node of a quick-start WireGuard mesh',
    '  version                         print the version',
    '',
    "Run 'kubespand <command> --help' for a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 1 : 0;
  }
  if (name === 'version' || name === '--version') {
    const { describeDatapath } = await import('../native-datapath.js');
    process.stdout.write(`kubespand v${VERSION} (node ${process.version}) · ${describeDatapath()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`kubespand: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const command = await load();
  try {
    return await command.run(rest);
  } catch (err) {
    process.stderr.write(`kubespand ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
