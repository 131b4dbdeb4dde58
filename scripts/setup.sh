#!/usr/bin/env bash
# One-shot setup from a fresh checkout: system packages (as root), npm dependencies, native addon and
# TypeScript build. Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building native addon and TypeScript"
npm run --silent build
echo "setup: done (bin/kubespand is ready)"
