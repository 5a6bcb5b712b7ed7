#!/usr/bin/env bash
# Installs, with apt-get, only the Debian 12 packages weft needs that are missing.
# Idempotent: a machine that has everything is left untouched and no index is fetched.
# Usage: scripts/deps.sh [build|test|docker|systemd]   (default: build)
#   docker:  the container engine and compose, for tests/compose (optional)
#   systemd: systemd-analyze, for checking deploy/systemd units (optional)
set -euo pipefail

want=(build-essential pkg-config meson ninja-build
      libuv1-dev libssl-dev libsodium-dev libjansson-dev libsqlite3-dev node-llhttp
      openssl curl sqlite3 python3)
if [ "${1:-build}" = test ]; then
  want+=(libcmocka-dev clang llvm libclang-rt-14-dev python3-yaml iperf3 mosquitto mosquitto-clients
         stunnel4 wrk iproute2 nftables procps psmisc jq)
fi
if [ "${1:-build}" = docker ]; then
  want+=(docker.io docker-compose iptables busybox-static mosquitto mosquitto-clients jq)
fi
if [ "${1:-build}" = systemd ]; then
  want+=(systemd)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# mosquitto's package starts a system broker on 1883; tests run their own brokers.
if printf '%s\n' "${missing[@]}" | grep -qx mosquitto; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || pkill -x mosquitto 2>/dev/null || true
fi
