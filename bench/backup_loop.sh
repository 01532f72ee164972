#!/usr/bin/env bash
# bench/backup_loop.sh - backups one after the other while something else runs.
#
# Measures: the wall time of each `litesafe backup SRC DST` (SHA-256 and fsync
# included) taken while process PID is alive, with PAUSE seconds between two
# backups (0: back to back); DST is deleted after each. Prints one line per
# backup: "<start, Unix us> <end, Unix us> <ms> <exit code>".
#
# Usage: backup_loop.sh LITESAFE SRC DST PID [PAUSE]
set -euo pipefail
export LC_ALL=C
LS=$1 SRC=$2 DST=$3 PID=$4 PAUSE=${5:-0}
while kill -0 "$PID" 2>/dev/null; do
    rm -f "$DST"
    s=${EPOCHREALTIME/./}
    rc=0
    "$LS" -q backup "$SRC" "$DST" >/dev/null 2>&1 || rc=$?
    e=${EPOCHREALTIME/./}
    # a failure because the window ended under it is not a result
    kill -0 "$PID" 2>/dev/null || [ "$rc" -eq 0 ] || break
    echo "$s $e $(( (e - s) / 1000 )) $rc"
    rm -f "$DST"
    [ "$PAUSE" = 0 ] || sleep "$PAUSE"
done
