/** `kubespand validate --config FILE`: "FILE: valid", or every problem in the file; exit 0 or 1. */
import { parseArgs } from 'node:util';
import { checkConfigFileMode, checkConfigFiles, ConfigError, formatProblem, parseNodeConfigFile } from '../kubespan/config.js';
import type { Command } from './main.js';

const USAGE = [
  'usage: kubespand validate --config FILE',
  '',
  'Checks a node config file: YAML syntax, every key and value, and that configured CA files are',
  'readable. Prints "FILE: valid" (and any warnings) and exits 0, or prints every problem as',
  '"FILE: path.in.file: problem (got value)" and exits 1.',
].join('\n');

export const validateCommand: Command = {
  summary: 'check a node config file and report every problem',
  async run(argv) {
    let file: string | undefined;
    try {
      const { values, positionals } = parseArgs({
        args: argv,
        options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
        allowPositionals: true,
      });
      if (values.help) {
        process.stdout.write(USAGE + '\n');
        return 0;
      }
      if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
      file = values.config;
    } catch (err) {
      process.stderr.write(`kubespand validate: ${(err as Error).message}\n\n${USAGE}\n`);
      return 2;
    }
    if (file === undefined || file === '') {
      process.stderr.write(`kubespand validate: --config FILE is required\n\n${USAGE}\n`);
      return 2;
    }
    try {
      const config = parseNodeConfigFile(file);
      const problems = [...checkConfigFileMode(config), ...checkConfigFiles(config)];
      if (problems.length > 0) throw new ConfigError(file, problems);
      process.stdout.write(`${file}: valid\n`);
      for (const w of config.warnings) process.stderr.write(`warning: ${w}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems) process.stderr.write(formatProblem(err.sourceName, p) + '\n');
      return 1;
    }
  },
};
