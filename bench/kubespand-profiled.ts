/**
 * bin/kubespand with a clean exit, for profiling: imports the compiled CLI's `main` as bin/kubespand
 * does, runs it, then calls process.exit so `node --cpu-prof` writes its profile (a daemon stopped by
 * SIGTERM returns from main; process.exit makes the exit explicit even if a handle lingers).
 *
 *   node --cpu-prof --cpu-prof-dir /tmp/prof dist/bench/kubespand-profiled.js device IFNAME
 */
import { main } from '../src/cli/main.js';

const code = await main(process.argv.slice(2));
process.exit(code);
