#!/bin/sh
# The README's commands on a machine that may have nothing yet (a fresh
# Debian 12, as root or with sudo): installs make and bash with apt-get when
# they are missing, then runs the same make targets, which install the rest
# (scripts/deps.sh).
#   sh setup.sh demo     = make demo
#   sh setup.sh check    = make check
#   sh setup.sh [TARGET|VAR=VALUE]...   any make arguments (default: demo)
set -eu
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- demo

missing=""
command -v make >/dev/null 2>&1 || missing="make"
command -v bash >/dev/null 2>&1 || missing="${missing:+$missing }bash"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "setup: $missing missing: run as root (sudo is not installed)" >&2
    exit 1
  fi
  echo "setup: installing $missing" >&2
  $sudo apt-get update -qq
  # shellcheck disable=SC2086  # $missing is a list of words
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
exec make "$@"
