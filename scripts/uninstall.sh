#!/bin/sh
# uninstall.sh - remove what `make install` installed (make uninstall).
#   scripts/uninstall.sh MANIFEST [DESTDIR]
# MANIFEST is the list `cmake --install` wrote (one installed path a line,
# without DESTDIR; `make install` keeps a copy as build/installed-files.txt).
# Removes exactly those files and links, then litesafe's own directories
# (a name containing "litesafe") once they are empty. Shared directories
# (bin, lib, share/man/man1, ...) stay, even when empty.
set -eu
manifest=${1:?usage: uninstall.sh MANIFEST [DESTDIR]}
destdir=${2:-}
[ -f "$manifest" ] || { echo "uninstall: $manifest: no installation recorded" >&2; exit 1; }
dirs=""
while IFS= read -r f || [ -n "$f" ]; do
  [ -n "$f" ] || continue
  if [ -e "$destdir$f" ] || [ -L "$destdir$f" ]; then
    rm -f "$destdir$f"
    echo "-- Removed: $destdir$f"
  fi
  d=$(dirname "$f")
  while case $d in *litesafe*) true ;; *) false ;; esac; do
    dirs="$dirs
$d"
    d=$(dirname "$d")
  done
done <"$manifest"
# deepest first
printf '%s\n' "$dirs" | awk 'NF' | sort -u | awk '{ print length($0) " " $0 }' | sort -rn |
  cut -d' ' -f2- | while IFS= read -r d; do
    rmdir "$destdir$d" 2>/dev/null || true
  done
