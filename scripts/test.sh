#!/usr/bin/env bash
# The README's test command: set up, then run every test (unit and, as root, network namespace tests).
# Prints a final "N passed, N failed" line from vitest's JSON report.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
results=$(mktemp /tmp/kubespand-vitest.XXXXXX.json)
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@"
rc=$?
node -e '
  const fs = require("fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { console.log("0 passed, 1 failed"); process.exit(0); }
  // a file that fails to load counts as a failed suite with no failed test: count it as one failure
  const brokenFiles = (r.testResults || []).filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed")).length;
  const failed = r.numFailedTests + brokenFiles;
  console.log(`${r.numPassedTests} passed, ${failed} failed` + (r.numPendingTests + r.numTodoTests ? `, ${r.numPendingTests + r.numTodoTests} skipped` : ""));
' "$results"
rm -f "$results"
exit $rc
