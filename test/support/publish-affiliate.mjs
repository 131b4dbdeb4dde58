// Publishes one affiliate to a discovery server and keeps it alive until SIGTERM: stands in for a
// Talos node's discovery client in the netns tests. Uses the compiled client (npm run build).
// argv[2] = JSON { endpoint, clusterId, clusterSecret, affiliate: LocalAffiliate, endpoints: [{address, port}] }
import { DiscoveryClient } from '../../dist/src/discovery-client/client.js';

const spec = JSON.parse(process.argv[2]);
const client = new DiscoveryClient({
  endpoint: spec.endpoint,
  clusterId: spec.clusterId,
  clusterSecret: spec.clusterSecret,
  affiliateId: spec.affiliate.nodeId,
  clientVersion: 'v1.11.0',
});
client.setLocalAffiliate(spec.affiliate);
client.setLocalEndpoints(spec.endpoints);
client.onChange(() => process.stdout.write(`affiliates ${client.affiliates().length}\n`));
client.start();
const timer = setInterval(() => process.stdout.write(`state ${client.state()}\n`), 1000);
process.on('SIGTERM', async () => {
  clearInterval(timer);
  await client.stop();
  process.exit(0);
});
