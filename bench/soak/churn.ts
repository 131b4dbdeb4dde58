/**
 * Peer churn through discovery, for the soak: every --every-ms one short-lived affiliate joins the
 * cluster (a fresh node id and WireGuard key, an address in the cluster's KubeSpan /64, an endpoint
 * nobody answers on) and the oldest one leaves (AffiliateDelete), so `--live` of them exist at a time
 * and every KubeSpan node adds one WireGuard peer and removes one each period.
 *
 *   node dist/bench/soak/churn.js --endpoint http://10.242.0.254:3000/ --cluster-id ID \
 *     --cluster-secret-file FILE --prefix fd7f:175a:b97c:5602::/64 [--every-ms 10000] [--live 2]
 *
 * The secret is read from a file (0600) so it never shows in `ps`. Prints one line per change
 * (`joined <id>` / `left <id>`) and a JSON summary on SIGTERM.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DiscoveryClient } from '../../src/discovery-client/client.js';
import { formatIp, parsePrefix } from '../../src/noise/allowed-ips.js';
import { nodeCrypto } from '../../src/noise/crypto-node.js';
import { clampPrivateKey, keyToBase64 } from '../../src/noise/keys.js';

interface Fake {
  id: string;
  client: DiscoveryClient;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      'cluster-id': { type: 'string' },
      'cluster-secret-file': { type: 'string' },
      prefix: { type: 'string' },
      'every-ms': { type: 'string', default: '10000' },
      live: { type: 'string', default: '2' },
    },
    strict: true,
  });
  const need = (v: string | undefined, name: string): string => {
    if (!v) throw new Error(`--${name} is required`);
    return v;
  };
  const endpoint = need(values.endpoint, 'endpoint');
  const clusterId = need(values['cluster-id'], 'cluster-id');
  const clusterSecret = readFileSync(need(values['cluster-secret-file'], 'cluster-secret-file'), 'utf8').trim();
  const prefix = parsePrefix(need(values.prefix, 'prefix'), '--prefix');
  const everyMs = Number(values['every-ms']);
  const live = Number(values.live);
  if (!(everyMs > 0) || !(live >= 1)) throw new Error('--every-ms and --live must be positive');

  const fakes: Fake[] = [];
  let joined = 0;
  let left = 0;
  let n = 0;
  const join = (): void => {
    n++;
    const id = `soak-churn-${process.pid}-${n}`;
    const address = new Uint8Array(prefix.address);
    address.set(randomBytes(8), 8);
    const publicKey = keyToBase64(nodeCrypto.publicKey(clampPrivateKey(randomBytes(32))));
    const client = new DiscoveryClient({ endpoint, clusterId, clusterSecret, affiliateId: id, clientVersion: 'soak-churn' });
    client.setLocalAffiliate({
      nodeId: id,
      addresses: [],
      hostname: `${id}.soak`,
      nodename: id,
      machineType: 'worker',
      operatingSystem: 'soak churn',
      kubespan: { publicKey, address: formatIp(address), additionalAddresses: [], excludeAdvertisedAddresses: [] },
    });
    // an endpoint in TEST-NET-2: handshakes to it go nowhere, as to a peer that is down
    client.setLocalEndpoints([{ address: `198.51.100.${(n % 250) + 1}`, port: 51820 }]);
    client.start();
    fakes.push({ id, client });
    joined++;
    process.stdout.write(`joined ${id}\n`);
  };
  const leaveOldest = async (): Promise<void> => {
    const f = fakes.shift();
    if (!f) return;
    await f.client.leave().catch(() => undefined);
    await f.client.stop();
    left++;
    process.stdout.write(`left ${f.id}\n`);
  };
  join();
  const timer = setInterval(() => {
    void (async () => {
      if (fakes.length >= live) await leaveOldest();
      join();
    })();
  }, everyMs);
  const stop = async (): Promise<void> => {
    clearInterval(timer);
    while (fakes.length > 0) await leaveOldest();
    process.stdout.write(`${JSON.stringify({ joined, left })}\n`);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`churn: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
