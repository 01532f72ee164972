#!/bin/sh
# make-deb.sh - Debian packages from a built tree, with dpkg-deb (make deb).
#   scripts/make-deb.sh BUILD OUTDIR
# Installs BUILD into a staging root with `cmake --install --prefix /usr` (no
# rebuild: the tree `make build` made) and splits it into
#   litesafe        the command, its man pages, the systemd unit, bash
#                   completion, /etc/litesafe.yml (a conffile), and the
#                   maintainer scripts: the system user `litesafe`, the unit
#                   enabled (started once the configuration names a database),
#                   /var/lib/litesafe removed at purge
#   liblitesafe0    the shared library (SONAME liblitesafe.so.0)
#   liblitesafe-dev the headers, liblitesafe.so, liblitesafe.a, litesafe.pc
# and writes OUTDIR/<package>_<version>_<arch>.deb. Runtime dependencies come
# from dpkg-shlibdeps. DEB_MAINTAINER overrides the Maintainer field.
set -eu
build=$(cd "${1:?usage: make-deb.sh BUILD OUTDIR}" && pwd)
out=${2:?usage: make-deb.sh BUILD OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
maintainer=${DEB_MAINTAINER:-litesafe maintainers <maintainers@litesafe.example>}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
[ -n "$version" ] || { echo "make-deb: no version in $build/CMakeCache.txt" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage
DESTDIR=$stage cmake --install "$build" --prefix /usr >/dev/null
[ -f "$stage/usr/lib/$multiarch/liblitesafe.so.0" ] ||
  { echo "make-deb: the library is not in /usr/lib/$multiarch" >&2; exit 1; }

# move PKG PATH...: from the staging root into the package's tree
move() {
  pkg=$1
  shift
  for p in "$@"; do
    mkdir -p "$work/$pkg/$(dirname "$p")"
    mv "$stage/$p" "$work/$pkg/$p"
  done
}
lib=usr/lib/$multiarch
move litesafe usr/bin/litesafe usr/share/man usr/share/bash-completion
move liblitesafe0 "$lib/liblitesafe.so.0" "$lib/liblitesafe.so.$version"
move liblitesafe-dev usr/include "$lib/liblitesafe.so" "$lib/liblitesafe.a" "$lib/pkgconfig"
# Debian 12 keeps units in /lib/systemd/system; the example config is the conffile
mkdir -p "$work/litesafe/lib/systemd/system" "$work/litesafe/etc"
mv "$stage/usr/lib/systemd/system/litesafe.service" "$work/litesafe/lib/systemd/system/"
mv "$stage/usr/share/doc/litesafe/examples/litesafe.yml" "$work/litesafe/etc/litesafe.yml"
rm -r "$stage/usr/share/doc/litesafe/examples" "$stage/usr/lib/systemd/system"
left=$(cd "$stage" && find . ! -type d)
[ -z "$left" ] || { echo "make-deb: installed but in no package: $left" >&2; exit 1; }
gzip -9n "$work/litesafe/usr/share/man/"man*/*
# stripped as dh_strip does (the build keeps its debug information)
strip --remove-section=.comment --remove-section=.note "$work/litesafe/usr/bin/litesafe"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
  "$work/liblitesafe0/$lib/liblitesafe.so.$version"
strip --remove-section=.comment --remove-section=.note --strip-debug \
  --enable-deterministic-archives "$work/liblitesafe-dev/$lib/liblitesafe.a"

# /usr/share/doc/PKG: copyright and changelog.gz (a native package) in each
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -R -d "@$epoch")
year=$(date -u +%Y -d "@$epoch")
for pkg in litesafe liblitesafe0 liblitesafe-dev; do
  doc=$work/$pkg/usr/share/doc/$pkg
  mkdir -p "$doc"
  cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: litesafe

Files: *
Copyright: $year the litesafe authors
License: unknown
 The litesafe sources carry no license statement yet.
EOF
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from the litesafe source tree (make deb).\n\n -- %s  %s\n' \
    "$pkg" "$version" "$maintainer" "$date" | gzip -9n >"$doc/changelog.gz"
done

# Runtime dependencies of the ELF files, as Debian computes them.
shlibdeps() { # PKG FILE...: the ${shlibs:Depends} line
  pkg=$1
  shift
  mkdir -p "$work/sd/debian"
  printf 'Source: litesafe\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$work/sd/debian/control"
  (cd "$work/sd" && dpkg-shlibdeps -O -S"$work/liblitesafe0" "$@" 2>/dev/null) |
    sed -n 's/^shlibs:Depends=//p'
}

# control PKG SECTION DEPENDS DESCRIPTION(first line) LONG
control() {
  mkdir -p "$work/$1/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$work/$1" | cut -f1)
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' "$1" "$version" "$arch" "$maintainer"
    printf 'Installed-Size: %s\nSection: %s\nPriority: optional\n' "$size" "$2"
    [ -z "$3" ] || printf 'Depends: %s\n' "$3"
    printf 'Description: %s\n%s\n' "$4" "$5"
  } >"$work/$1/DEBIAN/control"
  (cd "$work/$1" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    xargs md5sum >DEBIAN/md5sums)
}

long=" litesafe keeps SQLite databases safe: consistent online backups of live
 databases, checkpoint control and inspection, and continuous replication to
 file, S3, Google Cloud Storage, Azure Blob Storage and SFTP replicas with
 point-in-time restore, in Litestream 0.3's replica layout."

control litesafe database "$(shlibdeps litesafe "$work/litesafe/usr/bin/litesafe"), adduser" \
  "backups and continuous replication of SQLite databases" "$long
 .
 This package holds the litesafe command, its systemd service and its
 bash completion."
printf '/etc/litesafe.yml\n' >"$work/litesafe/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "$src/etc/debian/litesafe.$s" "$work/litesafe/DEBIAN/$s"
done

control liblitesafe0 libs "$(shlibdeps liblitesafe0 "$work/liblitesafe0/$lib/liblitesafe.so.$version")" \
  "SQLite backup and replication library" "$long
 .
 This package holds the shared library."
printf 'liblitesafe 0 liblitesafe0 (>= %s)\n' "$version" >"$work/liblitesafe0/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$work/liblitesafe0/DEBIAN/triggers"

# litesafe.pc's Requires.private: their -dev packages
control liblitesafe-dev libdevel "liblitesafe0 (= $version), libsqlite3-dev, libssl-dev, liblz4-dev, libyaml-dev, libcurl4-openssl-dev | libcurl-dev, libssh2-1-dev" \
  "SQLite backup and replication library - development files" "$long
 .
 This package holds the headers, the static library and litesafe.pc."

for pkg in litesafe liblitesafe0 liblitesafe-dev; do
  chmod -R u+rwX,go+rX,go-w "$work/$pkg"
  dpkg-deb --root-owner-group -Zxz --build "$work/$pkg" "$out/${pkg}_${version}_$arch.deb" >/dev/null
  echo "$out/${pkg}_${version}_$arch.deb"
done
