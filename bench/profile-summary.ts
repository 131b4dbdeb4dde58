/**
 * Where the time goes in a `.cpuprofile` (from `npm run bench -- --profile`, or any
 * `node --cpu-prof` run): top functions and files by self time, as in docs/benchmarks.md.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top 25] [--json]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatProfileSummary, summarizeProfile, type CpuProfile } from './lib/cpu-profile.js';

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
const top = Number(values.top);
if (positionals.length !== 1 || !Number.isInteger(top) || top < 1) {
  process.stderr.write(`usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--json]${!Number.isInteger(top) || top < 1 ? `\n--top: expected a positive whole number, got ${JSON.stringify(values.top)}` : ''}\n`);
  process.exit(2);
}
const file = positionals[0]!;
let profile: CpuProfile;
try {
  profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
} catch (err) {
  process.stderr.write(`profile-summary: ${file}: ${(err as Error).message}\n`);
  process.exit(1);
}
const summary = summarizeProfile(profile, top);
process.stdout.write(values.json ? JSON.stringify(summary, null, 2) + '\n' : formatProfileSummary(file, summary, top) + '\n');
