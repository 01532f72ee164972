#!/usr/bin/env bash
# Install everything litesafe needs to build and test on Debian 12, as root.
# Idempotent: packages already present are skipped, so a second run is quick.
#   scripts/deps.sh          build + test dependencies (Debian packages)
#   scripts/deps.sh --npm    also the npm test servers / interop peers (tests/tools)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libsqlite3-dev sqlite3 libcurl4-openssl-dev
      libssl-dev libyaml-dev libzstd-dev liblz4-dev libssh2-1-dev libcmocka-dev
      python3 python3-pytest lz4 zstd curl ca-certificates)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
