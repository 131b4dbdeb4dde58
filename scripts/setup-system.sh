#!/usr/bin/env bash
# Installs the system packages kubespand and its tests use (Debian/Ubuntu, as root).
# --no-install-recommends matters: without it apt pulls a kernel image via wireguard-tools.
set -euo pipefail
PKGS=(wireguard-go wireguard-tools iperf3 iproute2 nftables iputils-ping tinyproxy openssl ca-certificates tcpdump ncat
  # virtual IP (issue 7): etcd for the election in netns tests, arping -U for gratuitous ARP
  etcd-server iputils-arping
  # operations tests (issue 5): systemd-analyze verify on the unit; a real podman build of the image
  # (runc: crun refuses this VM's hybrid cgroups; debootstrap: ../shared/tools/container-base.sh's stand-in base image)
  systemd podman runc debootstrap
  # the data-path addon opens libsodium at run time for X25519 and small-packet AEAD (issue 6: latency)
  libsodium23)
if [ "${KUBESPAND_SETUP_EXTRA:-}" != "" ]; then PKGS+=(${KUBESPAND_SETUP_EXTRA}); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "setup-system: all packages present"; exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "setup-system: need root to install: ${missing[*]}" >&2; exit 1; fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
