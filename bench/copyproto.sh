#!/usr/bin/env bash
# bench/copyproto.sh - the copy methods of bench/copyproto.c against
# `litesafe backup`, `cp` and `cp` + `sync FILE`, interleaved, R rounds.
#
# Measures: wall time of a copy + SHA-256 + fdatasync of the benchmark
# database by method A (pread/pwrite, as src/backup.c), B (copy_file_range,
# hash from mmap), C (pwrite from mmap); prints the median and all runs (ms).
# Warm page cache; DST deleted and `sync` run, untimed, between runs.
#
# Usage: bench/copyproto.sh [path/to/litesafe]   (after bench/run.sh built
#   $BENCH_DIR/src-$BENCH_MB.db; R rounds, default 8)
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
LS=$(realpath "${1:-$(dirname "$HERE")/build/litesafe}")
BENCH_DIR=${BENCH_DIR:-$HERE/out}
SRC=$BENCH_DIR/src-${BENCH_MB:-1024}.db
DST=$BENCH_DIR/proto-dst.db
R=${R:-8}
[ -f "$SRC" ] || { echo "copyproto.sh: $SRC missing: run bench/run.sh first" >&2; exit 2; }
PROTO=$BENCH_DIR/copyproto
cc -O2 -o "$PROTO" "$HERE/copyproto.c" -lcrypto -lpthread
trap 'rm -f "$DST"' EXIT
declare -A T
METHODS="A B C litesafe cp cpsync"
cat "$SRC" >/dev/null
for r in $(seq 1 "$R"); do
    for m in $METHODS; do
        rm -f "$DST"; sync
        s=${EPOCHREALTIME/./}
        case $m in
        A | B | C) "$PROTO" "$m" "$SRC" "$DST" >/dev/null ;;
        litesafe) "$LS" -q backup "$SRC" "$DST" >/dev/null ;;
        cp) cp "$SRC" "$DST" ;;
        cpsync) cp "$SRC" "$DST" && sync "$DST" ;;
        esac
        e=${EPOCHREALTIME/./}
        T[$m]+="$(( (e - s) / 1000 )) "
    done
    echo "round $r/$R done" >&2
done
echo "| method | median (ms) | all runs (ms) |"
echo "|---|---:|---|"
for m in $METHODS; do
    med=$(echo "${T[$m]}" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
    echo "| $m | $med | ${T[$m]}|"
done
