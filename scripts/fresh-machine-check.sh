#!/usr/bin/env bash
# The README's Install commands, as they stand, on a brand-new minimal Debian 12:
# builds a root with `debootstrap --variant=minbase bookworm`, copies the
# git-tracked files of this tree (no build/, no node_modules) to
# <root>/root/litesafe, and runs each command of the README's Install code block
# there in a chroot, as root, one after the other. Prints a PASS/FAIL line per
# command with its duration; exits 0 when all passed. Takes minutes (the whole
# test suite runs); not part of CI. Needs root (debootstrap, chroot, mount).
#   scripts/fresh-machine-check.sh            (make fresh-check)
#   scripts/fresh-machine-check.sh --refresh  build the cached minbase root anew
#   scripts/fresh-machine-check.sh [--refresh] -- CMD...
#                                  run these shell command lines instead
# Environment:
#   FRESH_CACHE  where the minbase root is cached as a tarball, and the last
#                run's logs are kept (default /var/cache/litesafe-fresh-check);
#                each run unpacks a pristine copy of it
#   FRESH_WORK   where the run's root is unpacked (default /var/tmp); it is
#                removed afterwards
# What this machine needs to reach its package registries goes into the chroot
# too: the Debian mirror of /etc/apt/sources.list.d/debian.sources (or
# sources.list), apt's proxy and Check-Valid-Until/Check-Date settings, npm's
# registry, proxy and CA file settings, the proxy and NODE_EXTRA_CA_CERTS
# variables, /etc/resolv.conf. A policy-rc.d keeps package installs from
# starting daemons (sshd) in the chroot.
set -euo pipefail

die() { echo "fresh-machine-check: $*" >&2; exit 2; }
log() { echo "fresh-machine-check: $*" >&2; }

refresh=""
commands=()
while [ $# -gt 0 ]; do
  case "$1" in
    --refresh) refresh=1 ;;
    --) shift; commands=("$@"); break ;;
    *) die "usage: scripts/fresh-machine-check.sh [--refresh] [-- CMD...]" ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v git >/dev/null 2>&1 || die "git is needed to list the tree's files"
git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || die "$repo is not a git checkout"

cache=${FRESH_CACHE:-/var/cache/litesafe-fresh-check}
work_base=${FRESH_WORK:-/var/tmp}
arch=$(dpkg --print-architecture)
tarball=$cache/minbase-bookworm-$arch.tar.gz
logs=$cache/last-run
mkdir -p "$cache"

# --- the README's commands: the lines of the first sh block of "## Install"
[ "${#commands[@]}" -gt 0 ] || mapfile -t commands < <(awk '
  /^## / { ins = ($0 == "## Install") }
  ins && /^```sh/ && !done { inb = 1; next }
  inb && /^```/ { inb = 0; done = 1 }
  inb { sub(/[ \t]*#.*/, ""); if ($0 != "") print }
' "$repo/README.md")
[ "${#commands[@]}" -gt 0 ] || die "README.md: no sh code block in its Install section"

# --- this machine's Debian mirror
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk 'BEGIN { RS = "" } /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t]|\n|$)/ {
                  if (match($0, /(^|\n)URIs:[ \t]*[^ \t\n]+/)) {
                    s = substr($0, RSTART, RLENGTH); sub(/.*URIs:[ \t]*/, "", s); print s; exit } }' \
             /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "no Debian bookworm mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

# --- the cached minbase root
if [ -n "$refresh" ] || [ ! -f "$tarball" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  boot=$(mktemp -d "$work_base/litesafe-debootstrap.XXXXXX")
  log "debootstrap --variant=minbase bookworm from $mirror (cached in $tarball)"
  if ! debootstrap --variant=minbase bookworm "$boot/root" "$mirror" >"$boot/debootstrap.log" 2>&1; then
    tail -n 20 "$boot/debootstrap.log" >&2
    rm -rf --one-file-system "$boot"
    die "debootstrap failed"
  fi
  tar --numeric-owner -C "$boot/root" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf --one-file-system "$boot"
fi

# --- a pristine root for this run, and its clean-up (always: trap)
work=$(mktemp -d "$work_base/litesafe-fresh.XXXXXX")
root=$work/root
mounted=()
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  local pid link i
  set +e
  # processes the run left in the chroot (its servers, a daemon): ours to end
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    link=$(readlink "/proc/$pid/root" 2>/dev/null) || continue
    case "$link" in "$root" | "$root"/*) kill -KILL "$pid" 2>/dev/null ;; esac
  done
  sleep 0.5
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" ||
      echo "fresh-machine-check: could not unmount ${mounted[i]}" >&2
  done
  # never remove through a mount that is still there (it would reach /dev)
  if grep -qF -e " $root/" -e " $root " /proc/self/mountinfo; then
    echo "fresh-machine-check: mounts remain under $root; left in place" >&2
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$root"
tar --numeric-owner -C "$root" -xzf "$tarball"

# registries: apt
cp /etc/resolv.conf "$root/etc/resolv.conf"
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
fi
apt-config dump | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date)' \
  >"$root/etc/apt/apt.conf.d/99fresh-check-host" || true
printf '#!/bin/sh\n# fresh-machine-check: no daemon starts in this chroot\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# registries: npm (its settings from this machine's npm, the CA files copied in)
carry=$root/usr/local/share/fresh-check
mkdir -p "$carry"
npmrc=$root/root/.npmrc
: >"$npmrc"
if command -v npm >/dev/null 2>&1; then
  for key in registry proxy https-proxy noproxy strict-ssl; do
    val=$(npm config get "$key" 2>/dev/null || true)
    case "$val" in "" | null | undefined) ;; *) printf '%s=%s\n' "$key" "$val" >>"$npmrc" ;; esac
  done
  cafile=$(npm config get cafile 2>/dev/null || true)
  if [ -f "$cafile" ]; then
    cp "$cafile" "$carry/npm-ca.crt"
    echo "cafile=/usr/local/share/fresh-check/npm-ca.crt" >>"$npmrc"
  fi
fi
chmod 600 "$npmrc"
envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb)
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!var:-}" ]; then envs+=("$var=${!var}"); fi
done
if [ -f "${NODE_EXTRA_CA_CERTS:-}" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$carry/node-extra-ca.crt"
  envs+=(NODE_EXTRA_CA_CERTS=/usr/local/share/fresh-check/node-extra-ca.crt)
fi

# the tree: git-tracked files as they are in the work tree
mkdir -p "$root/root/litesafe"
(cd "$repo" && git ls-files -z --cached | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
  tar -C "$root/root/litesafe" -xf -

# mounts (undone by cleanup, in reverse order)
mnt() {
  local target=$root$1
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounted+=("$target")
}
mnt /proc -t proc proc
mnt /sys --bind /sys
mnt /dev --bind /dev
mnt /dev/pts --bind /dev/pts
mnt /dev/shm -t tmpfs -o mode=1777 shm

# --- the commands
rm -rf "$logs"
mkdir -p "$logs"
results=()
status=0
n=0
for cmd in "${commands[@]}"; do
  n=$((n + 1))
  logf=$logs/$n-$(echo "$cmd" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-40 | sed 's/_*$//').log
  log "running \`$cmd\` in the chroot (log: $logf)"
  start=$(date +%s)
  # in the background, so that a signal reaches the trap at once (bash runs
  # it only after a foreground command ends); pipefail: the command's status
  { chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/sh -c "cd /root/litesafe && $cmd" </dev/null 2>&1 |
      tee "$logf"; } &
  rc=0
  wait $! || rc=$?
  secs=$(($(date +%s) - start))
  took=$(printf '%dm%02ds' $((secs / 60)) $((secs % 60)))
  if [ "$rc" = 0 ]; then
    results+=("PASS  $cmd  ($took)")
  else
    results+=("FAIL  $cmd  ($took, exit $rc; log: $logf)")
    status=1
  fi
done

echo
echo "fresh-machine-check: Debian 12 minbase chroot, checkout at /root/litesafe"
for r in "${results[@]}"; do
  echo "fresh-machine-check: $r"
done
exit $status
