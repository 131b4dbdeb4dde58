#!/usr/bin/env bash
# Throughput and latency baseline on the interop bed (docs/interop.md): two network namespaces joined by a
# veth, one WireGuard device per side. Rows: bare veth, wireguard-go<->wireguard-go, kubespand<->wireguard-go
# (kubespand on side a) and kubespand<->kubespand. Each row: iperf3 TCP, 1 stream, DURATION seconds, a->b and
# b->a (-R), plus ping RTT over the tunnel; ratios are to wireguard-go<->wireguard-go from the same run.
# A kubespand row is skipped with a note when kubespand is not built or does not start.
#
#   sudo bash bench/netns-throughput.sh            # DURATION=10 by default
#   DURATION=3 bash bench/netns-throughput.sh      # quicker
#   KSN_KUBESPAND_BIN=/path/to/kubespand bash bench/netns-throughput.sh
#
#        ns a                                     ns b
#   [wg a] 10.232.0.1/24                     [wg b] 10.232.0.2/24        (tunnel, MTU 1420)
#   [veth] 10.231.0.1/24  <-------------->   [veth] 10.231.0.2/24        (outer, UDP 51831 <-> 51832)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
PING_COUNT=${PING_COUNT:-50}
KUBESPAND=${KSN_KUBESPAND_BIN:-$ROOT/bin/kubespand}
TAG="ksnb$(($$ % 100000))"
NS_A="$TAG-a"
NS_B="$TAG-b"
WORK=$(mktemp -d /tmp/ksn-bench.XXXXXX)
chmod 700 "$WORK"
PIDS=()
IFACES=()

die() { echo "netns-throughput: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TUN devices)"
for tool in ip wg wireguard-go iperf3 ping node; do command -v "$tool" >/dev/null || die "missing tool: $tool"; done
[[ "$DURATION" =~ ^[0-9]+$ ]] && [ "$DURATION" -gt 0 ] || die "DURATION must be a positive integer of seconds (got \"$DURATION\")"

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for ns in "$NS_A" "$NS_B"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for ifn in "${IFACES[@]}"; do rm -f "/var/run/wireguard/$ifn.sock"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kubespand_built() {
  if [ -n "${KSN_KUBESPAND_BIN:-}" ]; then [ -x "$KSN_KUBESPAND_BIN" ]; else [ -f "$ROOT/dist/src/cli/main.js" ] && [ -f "$ROOT/dist/src/cli/device.js" ]; fi
}

# --- topology
for ns in "$NS_A" "$NS_B"; do
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "${TAG}va" netns "$NS_A" type veth peer name "${TAG}vb" netns "$NS_B"
ip -n "$NS_A" addr add 10.231.0.1/24 dev "${TAG}va"
ip -n "$NS_B" addr add 10.231.0.2/24 dev "${TAG}vb"
ip -n "$NS_A" link set "${TAG}va" up
ip -n "$NS_B" link set "${TAG}vb" up

# start_dev NS IFNAME IMPL -> 0 when the UAPI socket answers; the pid goes to PIDS and DEV_PID
start_dev() {
  local ns=$1 ifn=$2 impl=$3 log="$WORK/$2.log"
  IFACES+=("$ifn")
  case $impl in
    wireguard-go) ip netns exec "$ns" env WG_PROCESS_FOREGROUND=1 wireguard-go -f "$ifn" >"$log" 2>&1 & ;;
    kubespand) ip netns exec "$ns" "$KUBESPAND" device "$ifn" >"$log" 2>&1 & ;;
    *) die "unknown implementation $impl" ;;
  esac
  DEV_PID=$!
  PIDS+=("$DEV_PID")
  for _ in $(seq 150); do
    if ! kill -0 "$DEV_PID" 2>/dev/null; then
      START_ERR="$impl exited: $(tail -c 300 "$log" | tr '\n' ' ')"
      return 1
    fi
    if [ -S "/var/run/wireguard/$ifn.sock" ] && ip netns exec "$ns" wg show "$ifn" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  START_ERR="$impl did not serve /var/run/wireguard/$ifn.sock within 15 s"
  return 1
}

stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

# configure NS IFNAME PRIVFILE PORT PEERPUB PEERTUNNEL [ENDPOINT] TUNNELADDR
configure() {
  local ns=$1 ifn=$2 priv=$3 port=$4 peer=$5 peer_ip=$6 endpoint=$7 addr=$8
  local ep=()
  [ -n "$endpoint" ] && ep=(endpoint "$endpoint")
  ip netns exec "$ns" wg set "$ifn" private-key "$priv" listen-port "$port" peer "$peer" allowed-ips "$peer_ip/32" "${ep[@]}"
  ip -n "$ns" addr add "$addr" dev "$ifn"
  ip -n "$ns" link set "$ifn" up
}

# iperf3 CLIENT_NS SERVER_NS ADDR [-R] -> Mbit/s received, on stdout
iperf() {
  local cns=$1 sns=$2 addr=$3 rev=${4:-} port=5201 out="$WORK/iperf.json" spid
  ip netns exec "$sns" iperf3 -s -1 -B "$addr" -p "$port" >/dev/null 2>&1 &
  spid=$!
  PIDS+=("$spid")
  for _ in $(seq 50); do ip netns exec "$sns" ss -Htln "sport = :$port" | grep -q . && break; sleep 0.1; done
  if ! ip netns exec "$cns" iperf3 -c "$addr" -p "$port" -t "$DURATION" -P 1 $rev -J >"$out" 2>&1; then
    stop_pid "$spid"
    echo "iperf3 failed: $(tail -c 300 "$out" | tr '\n' ' ')" >&2
    echo "-"
    return
  fi
  stop_pid "$spid"
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (r.error) { console.error("iperf3: " + r.error); console.log("-"); process.exit(0); }
    console.log((r.end.sum_received.bits_per_second / 1e6).toFixed(0));
  ' "$out"
}

# rtt NS ADDR -> average ms
rtt() {
  ip netns exec "$1" ping -n -q -c "$PING_COUNT" -i 0.02 -W 2 "$2" 2>/dev/null | awk -F/ '/^rtt|^round-trip/ { print $5; found=1 } END { if (!found) print "-" }'
}

declare -A FWD REV RTT NOTE
ROWS=("bare veth" "wireguard-go<->wireguard-go" "kubespand<->wireguard-go" "kubespand<->kubespand")
BASE="wireguard-go<->wireguard-go"

echo "netns-throughput: ${DURATION}s iperf3 TCP, 1 stream, each direction; ping x$PING_COUNT" >&2
echo "  bare veth ..." >&2
FWD["bare veth"]=$(iperf "$NS_A" "$NS_B" 10.231.0.2)
REV["bare veth"]=$(iperf "$NS_A" "$NS_B" 10.231.0.2 -R)
RTT["bare veth"]=$(rtt "$NS_A" 10.231.0.2)

n=0
for row in "${ROWS[@]:1}"; do
  n=$((n + 1))
  impl_a=${row%%<->*}
  impl_b=${row##*<->}
  echo "  $row ..." >&2
  if { [ "$impl_a" = kubespand ] || [ "$impl_b" = kubespand ]; } && ! kubespand_built; then
    NOTE[$row]="skipped: kubespand is not built (no dist/src/cli/device.js; run bash scripts/setup.sh)"
    continue
  fi
  if_a="${TAG}A$n"
  if_b="${TAG}B$n"
  if ! start_dev "$NS_A" "$if_a" "$impl_a"; then NOTE[$row]="skipped: $START_ERR"; continue; fi
  pid_a=$DEV_PID
  if ! start_dev "$NS_B" "$if_b" "$impl_b"; then NOTE[$row]="skipped: $START_ERR"; stop_pid "$pid_a"; continue; fi
  pid_b=$DEV_PID
  (umask 077; wg genkey >"$WORK/a.key"; wg genkey >"$WORK/b.key")
  pub_a=$(wg pubkey <"$WORK/a.key")
  pub_b=$(wg pubkey <"$WORK/b.key")
  configure "$NS_A" "$if_a" "$WORK/a.key" 51831 "$pub_b" 10.232.0.2 10.231.0.2:51832 10.232.0.1/24
  configure "$NS_B" "$if_b" "$WORK/b.key" 51832 "$pub_a" 10.232.0.1 "" 10.232.0.2/24
  rm -f "$WORK/a.key" "$WORK/b.key"
  if ! ip netns exec "$NS_A" ping -n -q -c 3 -i 0.2 -W 3 10.232.0.2 >/dev/null 2>&1; then
    NOTE[$row]="skipped: no ping through the tunnel (logs: $(tail -c 200 "$WORK/$if_a.log" | tr '\n' ' '))"
  else
    FWD[$row]=$(iperf "$NS_A" "$NS_B" 10.232.0.2)
    REV[$row]=$(iperf "$NS_A" "$NS_B" 10.232.0.2 -R)
    RTT[$row]=$(rtt "$NS_A" 10.232.0.2)
  fi
  stop_pid "$pid_a"
  stop_pid "$pid_b"
done

ratio() { # value base -> value/base with 2 decimals, or -
  node -e 'const [v, b] = process.argv.slice(1).map(Number); console.log(Number.isFinite(v) && Number.isFinite(b) && b > 0 ? (v / b).toFixed(2) : "-")' "${1:--}" "${2:--}"
}

echo
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(uname -r)  $(nproc) CPU  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# $(wireguard-go --version 2>/dev/null | head -1)  node $(node --version)  iperf3 $(iperf3 --version | head -1 | awk '{print $2}')"
if [ -z "${KSN_KUBESPAND_BIN:-}" ] && [ -f "$ROOT/dist/src/cli/main.js" ]; then
  echo "# kubespand: $ROOT/dist built $(date -u -r "$ROOT/dist/src/cli/main.js" +%Y-%m-%dT%H:%MZ), checkout HEAD $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
elif [ -n "${KSN_KUBESPAND_BIN:-}" ]; then
  echo "# kubespand: $KSN_KUBESPAND_BIN"
fi
printf '%-28s %12s %7s %12s %7s %9s %7s\n' "pair (a<->b)" "a->b Mbit/s" "ratio" "b->a Mbit/s" "ratio" "RTT ms" "ratio"
for row in "${ROWS[@]}"; do
  if [ -n "${NOTE[$row]:-}" ]; then
    printf '%-28s %s\n' "$row" "${NOTE[$row]}"
    continue
  fi
  printf '%-28s %12s %7s %12s %7s %9s %7s\n' "$row" \
    "${FWD[$row]:--}" "$(ratio "${FWD[$row]:-}" "${FWD[$BASE]:-}")" \
    "${REV[$row]:--}" "$(ratio "${REV[$row]:-}" "${REV[$BASE]:-}")" \
    "${RTT[$row]:--}" "$(ratio "${RTT[$row]:-}" "${RTT[$BASE]:-}")"
done
echo "# ratio = row / wireguard-go<->wireguard-go in this run (throughput: higher is better; RTT: lower is better)"
