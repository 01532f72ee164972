#!/usr/bin/env bash
# Run the libFuzzer targets of tests/fuzz (built by `make fuzz` in build-fuzz).
#   scripts/fuzz.sh run BINARY SEEDS WORKDIR SECONDS
#       One target for SECONDS. Its working corpus, WORKDIR/corpus/<name>, starts
#       from SEEDS (the repository's, never written to) and keeps what it found
#       across runs; a crash, leak or timeout lands in WORKDIR/findings/<name>/
#       and fails the run (exit 1) with the command that replays it.
#   scripts/fuzz.sh all BUILDDIR SECONDS
#       Every target built in BUILDDIR, one after the other; a summary at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

run_one() {
  local bin=$1 seeds=$2 work=$3 secs=$4 name
  name=$(basename "$bin")
  mkdir -p "$work/corpus/$name" "$work/findings/$name" "$work/logs"
  local log="$work/logs/$name.log"
  # -max_len: the largest seed or 64 KiB, so WAL frames and snapshots fit.
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
    -print_final_stats=1 -artifact_prefix="$work/findings/$name/" \
    "$work/corpus/$name" "$seeds" >"$log" 2>&1
  local rc=$?
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "fuzz $name: FINDING after ${execs:-?} runs (exit $rc); log $log" >&2
    grep -m3 -E "ERROR: |SUMMARY: |Test unit written to" "$log" >&2
    local art
    art=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    [ -n "$art" ] && echo "replay: $bin $art" >&2
    return 1
  fi
  echo "fuzz $name: ${execs:-?} runs in ${secs}s, corpus $(ls "$work/corpus/$name" | wc -l) + $(ls "$seeds" | wc -l) seeds, no finding"
}

case ${1:-} in
  run)
    [ $# -eq 5 ] || { echo "usage: $0 run BINARY SEEDS WORKDIR SECONDS" >&2; exit 2; }
    run_one "$2" "$3" "$4" "$5" ;;
  all)
    [ $# -eq 3 ] || { echo "usage: $0 all BUILDDIR SECONDS" >&2; exit 2; }
    failed=0
    for bin in "$2"/tests/fuzz/fuzz_*; do
      [ -x "$bin" ] || continue
      run_one "$bin" "$here/tests/fuzz/corpus/$(basename "$bin")" "$2/fuzz" "$3" || failed=1
    done
    exit $failed ;;
  *) echo "usage: $0 run|all ..." >&2; exit 2 ;;
esac
