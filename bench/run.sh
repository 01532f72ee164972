#!/usr/bin/env bash
# bench/run.sh - litesafe backup against cp and SQLite's own tools, side by side.
#
# What it measures (DESIGN.md section 4), all in one run on this machine:
#   1. Idle backup of a BENCH_MB MiB WAL database, N rounds, tools interleaved
#      in each round: `cp`, `cp` + `sync FILE` (litesafe fsyncs, cp does not),
#      `sqlite3 .backup`, `sqlite3 VACUUM INTO`, Python's backup API + SHA-256,
#      `litesafe backup` (SHA-256 and fsync included). Medians, and the ratios
#      litesafe/cp, litesafe/(cp+sync), sqlite3 .backup/litesafe.
#      Targets: litesafe <= 2x cp, sqlite3 .backup >= 2x litesafe.
#   2. A writer (bench/writer.py: one connection in another process, one-row
#      transactions as fast as it can, synchronous=NORMAL) for WRITER_SECS
#      windows, each on a fresh copy of the database: alone; with `litesafe
#      backup` back to back; with a backup every second (its commit timeline
#      gives the rate during backups vs between them, bench/inside.py); with
#      only a read transaction held open (bench/holder.py, the control: the
#      cost any consistent copy imposes); alone again. Writer throughput ratios (target >= 0.9) and backup time under
#      the writer / idle (target < 2).
#   3. The same writer on a SMALL_MB MiB database against `sqlite3 .backup`
#      (capped at CAP seconds: it restarts whenever the source changes) and
#      against `litesafe backup`.
# The page cache is warm (it is not dropped: that needs privileges a shared
# machine should not use); every destination is deleted and `sync` run,
# untimed, between two measurements so no tool pays for another's dirty pages.
#
# Usage: bench/run.sh [path/to/litesafe]        (default: build/litesafe)
# Environment: BENCH_MB (1024), N (5), WRITER_SECS (15), SMALL_MB (128),
#   CAP (30), BENCH_DIR (bench/out; the databases are built once and reused).
# Output: progress on stderr, a Markdown summary on stdout, also saved as
#   $BENCH_DIR/results-<UTC time>.md.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
LS=$(realpath "${1:-$ROOT/build/litesafe}")
BENCH_MB=${BENCH_MB:-1024}
N=${N:-5}
WRITER_SECS=${WRITER_SECS:-15}
SMALL_MB=${SMALL_MB:-128}
CAP=${CAP:-30}
BENCH_DIR=${BENCH_DIR:-$HERE/out}
PY=/usr/bin/python3
export CAP

[ -x "$LS" ] || { echo "run.sh: $LS: not executable (build first)" >&2; exit 2; }
for t in sqlite3 sha256sum timeout realpath; do
    command -v "$t" >/dev/null || { echo "run.sh: $t not found" >&2; exit 2; }
done
mkdir -p "$BENCH_DIR"
SRC=$BENCH_DIR/src-${BENCH_MB}.db
SMALL=$BENCH_DIR/src-${SMALL_MB}.db
WORK=$BENCH_DIR/work.db
DST=$BENCH_DIR/dst.db
TMPD=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
WPID=
cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null || true
    rm -rf "$TMPD"
    rm -f "$DST" "$DST-journal" "$WORK" "$WORK-wal" "$WORK-shm" "$WORK-journal"
}
trap cleanup EXIT

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0 || a == "nan" || b == "nan") print "nan"; else printf "%.2f", a / b}'; }
secs() { awk -v ms="$1" 'BEGIN {if (ms == "nan") print "nan"; else printf "%.2f", ms / 1000}'; }
settle() { rm -f "$DST" "$DST-journal"; sync; }
json_field() { $PY -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }

# ---- the databases (built once, reused while their size setting is the same)
for spec in "$SRC:$BENCH_MB" "$SMALL:$SMALL_MB"; do
    f=${spec%%:*}
    if [ ! -f "$f" ]; then
        log "building ${spec##*:} MiB database $f"
        $PY "$HERE/mkdb.py" "$f" "${spec##*:}" >&2
    fi
done
rm -f "$SRC-wal" "$SRC-shm" "$SMALL-wal" "$SMALL-shm"

# ---- 1. idle, interleaved rounds
t_cp() { cp "$SRC" "$DST"; }
t_cpsync() { cp "$SRC" "$DST" && sync "$DST"; }
t_sqlbackup() { sqlite3 "$SRC" ".backup '$DST'"; }
t_vacuum() { sqlite3 "$SRC" "VACUUM INTO '$DST'"; }
t_python() { $PY "$HERE/pybackup.py" "$SRC" "$DST" >/dev/null; }
t_litesafe() { "$LS" -q backup "$SRC" "$DST" >/dev/null; }
TOOLS="cp cpsync sqlbackup vacuum python litesafe"
declare -A T
for tool in $TOOLS; do T[$tool]=""; done

log "warming the page cache with $SRC"
cat "$SRC" >/dev/null
settle
# correctness first: litesafe's SHA-256 is the file's
out=$("$LS" --json backup "$SRC" "$DST")
[ "$(echo "$out" | json_field sha256)" = "$(sha256sum "$DST" | cut -d' ' -f1)" ] ||
    { echo "run.sh: litesafe's sha256 differs from sha256sum" >&2; exit 1; }
settle
for round in $(seq 1 "$N"); do
    for tool in $TOOLS; do
        s=${EPOCHREALTIME/./}
        "t_$tool"
        e=${EPOCHREALTIME/./}
        ms=$(( (e - s) / 1000 ))
        T[$tool]+="$ms "
        settle
    done
    log "round $round/$N (ms): $(for tool in $TOOLS; do printf '%s=%s ' "$tool" "$(echo "${T[$tool]}" | awk '{print $NF}')"; done)"
done
declare -A M
for tool in $TOOLS; do M[$tool]=$(echo "${T[$tool]}" | tr ' ' '\n' | grep . | median); done

# ---- 2. writer throughput with and without litesafe backups, each window on a
# fresh copy of the source (the writer makes it grow)
writer() { # DB SECONDS OUTFILE [READYFILE [TIMELINE]]: start the writer; sets WPID
    $PY "$HERE/writer.py" "$1" "$2" ${4:+--ready "$4"} ${5:+--timeline "$5"} >"$3" &
    WPID=$!
}
wait_ready() { while [ ! -e "$1" ]; do kill -0 "$WPID" 2>/dev/null || return 1; sleep 0.01; done; }
fresh_work() { rm -f "$WORK" "$WORK-wal" "$WORK-shm"; cp "$SRC" "$WORK"; settle; }

log "copying $SRC to $WORK for the writer runs"
fresh_work
idle_work=""
for i in 1 2 3; do
    s=${EPOCHREALTIME/./}; "$LS" -q backup "$WORK" "$DST" >/dev/null; e=${EPOCHREALTIME/./}
    idle_work+="$(( (e - s) / 1000 )) "; settle
done
IDLE_WORK=$(echo "$idle_work" | tr ' ' '\n' | grep . | median)

log "writer alone, ${WRITER_SECS}s"
writer "$WORK" "$WRITER_SECS" "$TMPD/alone1.json"; wait "$WPID"; WPID=
fresh_work
log "writer with litesafe backups back to back, ${WRITER_SECS}s"
writer "$WORK" "$WRITER_SECS" "$TMPD/with.json" "$TMPD/ready1"
wait_ready "$TMPD/ready1"
"$HERE/backup_loop.sh" "$LS" "$WORK" "$DST" "$WPID" >"$TMPD/loop.txt"
wait "$WPID"; WPID=
size_after=$(stat -c %s "$WORK")
fresh_work
log "writer with litesafe backups every 1 s, ${WRITER_SECS}s"
writer "$WORK" "$WRITER_SECS" "$TMPD/paced.json" "$TMPD/ready2" "$TMPD/timeline.txt"
wait_ready "$TMPD/ready2"
"$HERE/backup_loop.sh" "$LS" "$WORK" "$DST" "$WPID" 1 >"$TMPD/loop2.txt"
wait "$WPID"; WPID=
fresh_work
log "writer with a read transaction held open (no copy), ${WRITER_SECS}s"
writer "$WORK" "$WRITER_SECS" "$TMPD/held.json" "$TMPD/ready3"
wait_ready "$TMPD/ready3"
$PY "$HERE/holder.py" "$WORK" "$(awk -v w="$WRITER_SECS" 'BEGIN {print w - 0.5}')"
wait "$WPID"; WPID=
fresh_work
log "writer alone again, ${WRITER_SECS}s"
writer "$WORK" "$WRITER_SECS" "$TMPD/alone2.json"; wait "$WPID"; WPID=
settle
size_before=$(stat -c %s "$SRC")
RATE1=$(json_field per_s <"$TMPD/alone1.json")
RATE2=$(json_field per_s <"$TMPD/alone2.json")
RATEW=$(json_field per_s <"$TMPD/with.json")
RATEH=$(json_field per_s <"$TMPD/held.json")
MAX_HELD=$(json_field max_commit_ms <"$TMPD/held.json")
RATE_ALONE=$(awk -v a="$RATE1" -v b="$RATE2" 'BEGIN {printf "%.0f", (a + b) / 2}')
$PY "$HERE/inside.py" "$TMPD/timeline.txt" "$TMPD/loop2.txt" >"$TMPD/inside.json"
IN_RATE=$(json_field inside_per_s <"$TMPD/inside.json")
OUT_RATE=$(json_field outside_per_s <"$TMPD/inside.json")
IN_RATIO=$(json_field ratio <"$TMPD/inside.json")
cat "$TMPD/loop.txt" "$TMPD/loop2.txt" >"$TMPD/loops.txt"
NB=$(awk '$4 == 0' "$TMPD/loops.txt" | wc -l)
NF_=$(awk '$4 != 0' "$TMPD/loops.txt" | wc -l)
UNDER=$(awk '$4 == 0 {print $3}' "$TMPD/loops.txt" | median)
UNDER_MAX=$(awk '$4 == 0 {print $3}' "$TMPD/loops.txt" | sort -n | tail -1)
P99_ALONE=$(json_field p99_commit_ms <"$TMPD/alone1.json")
P99_WITH=$(json_field p99_commit_ms <"$TMPD/with.json")
MAX_ALONE=$(json_field max_commit_ms <"$TMPD/alone1.json")
MAX_WITH=$(json_field max_commit_ms <"$TMPD/with.json")
rm -f "$WORK" "$WORK-wal" "$WORK-shm"

# ---- 3. small database: sqlite3 .backup and litesafe under the same writer
rm -f "$SMALL-wal" "$SMALL-shm"
cp "$SMALL" "$WORK"
settle
s=${EPOCHREALTIME/./}; sqlite3 "$WORK" ".backup '$DST'"; e=${EPOCHREALTIME/./}
SQL_IDLE_SMALL=$(( (e - s) / 1000 )); settle
s=${EPOCHREALTIME/./}; "$LS" -q backup "$WORK" "$DST" >/dev/null; e=${EPOCHREALTIME/./}
LS_IDLE_SMALL=$(( (e - s) / 1000 )); settle
log "sqlite3 .backup of the ${SMALL_MB} MiB database under the writer (cap ${CAP}s)"
writer "$WORK" $((CAP + 10)) "$TMPD/sqlw.json" "$TMPD/ready2"
wait_ready "$TMPD/ready2"
s=${EPOCHREALTIME/./}
rc=0; timeout "$CAP" sqlite3 "$WORK" ".backup '$DST'" >/dev/null 2>&1 || rc=$?
e=${EPOCHREALTIME/./}
SQL_SMALL_MS=$(( (e - s) / 1000 )); SQL_SMALL_RC=$rc
settle
log "litesafe backup of the ${SMALL_MB} MiB database under the same writer"
ls_small=""
for i in 1 2 3; do
    s=${EPOCHREALTIME/./}; rc=0; "$LS" -q backup "$WORK" "$DST" >/dev/null || rc=$?; e=${EPOCHREALTIME/./}
    [ "$rc" -eq 0 ] && ls_small+="$(( (e - s) / 1000 )) "
    settle
done
wait "$WPID"; WPID=
LS_SMALL=$(echo "$ls_small" | tr ' ' '\n' | grep . | median)
if [ "$SQL_SMALL_RC" -eq 124 ]; then SQL_SMALL="did not finish in ${CAP} s (stopped)"
elif [ "$SQL_SMALL_RC" -eq 0 ]; then SQL_SMALL="$(secs "$SQL_SMALL_MS") s"
else SQL_SMALL="failed (exit $SQL_SMALL_RC) after $(secs "$SQL_SMALL_MS") s"; fi

# ---- summary
REPORT=$BENCH_DIR/results-$(date -u +%Y%m%dT%H%M%SZ).md
{
echo "Command: \`BENCH_MB=$BENCH_MB N=$N WRITER_SECS=$WRITER_SECS SMALL_MB=$SMALL_MB CAP=$CAP bench/run.sh ${1:-}\`"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr); $(sqlite3 --version | cut -d' ' -f1) (sqlite3 shell), $("$LS" version 2>/dev/null | head -1); page cache warm; medians of $N interleaved rounds; $(date -u +%Y-%m-%dT%H:%MZ)."
echo
echo "### Idle backup of a $BENCH_MB MiB WAL database ($(( $(stat -c %s "$SRC") >> 20 )) MiB file)"
echo
echo "| tool | median (s) | all runs (s) |"
echo "|---|---:|---|"
for tool in $TOOLS; do
    case $tool in
    cp) name='`cp`' ;; cpsync) name='`cp` + `sync FILE`' ;; sqlbackup) name='`sqlite3 .backup`' ;;
    vacuum) name='`sqlite3 VACUUM INTO`' ;; python) name='Python backup API + SHA-256' ;;
    litesafe) name='`litesafe backup` (SHA-256, fsync)' ;;
    esac
    echo "| $name | $(secs "${M[$tool]}") | $(for v in ${T[$tool]}; do printf '%s ' "$(secs "$v")"; done)|"
done
echo
echo "| ratio | value | target |"
echo "|---|---:|---|"
echo "| litesafe / cp | $(ratio "${M[litesafe]}" "${M[cp]}") | <= 2 |"
echo "| litesafe / (cp + sync) | $(ratio "${M[litesafe]}" "${M[cpsync]}") | (reference) |"
echo "| sqlite3 .backup / litesafe | $(ratio "${M[sqlbackup]}" "${M[litesafe]}") | >= 2 |"
echo "| VACUUM INTO / litesafe | $(ratio "${M[vacuum]}" "${M[litesafe]}") | (reference) |"
echo "| Python backup + SHA-256 / litesafe | $(ratio "${M[python]}" "${M[litesafe]}") | (reference) |"
echo
echo "### Under a continuous writer ($BENCH_MB MiB database, ${WRITER_SECS} s windows)"
echo
echo "| measure | value | target |"
echo "|---|---:|---|"
echo "| writer alone (commits/s; first, last window) | $RATE_ALONE ($RATE1, $RATE2) | |"
echo "| writer with litesafe backups back to back (commits/s) | $RATEW | |"
echo "| writer throughput ratio, backups back to back | $(ratio "$RATEW" "$RATE_ALONE") | >= 0.90 |"
echo "| writer commits/s while a backup runs / between backups (backups every 1 s) | $IN_RATE / $OUT_RATE | |"
echo "| writer throughput ratio, while a backup runs / alone | $(ratio "$IN_RATE" "$RATE_ALONE") | >= 0.90 |"
echo "| writer throughput ratio, while a backup runs / between backups | $IN_RATIO | |"
echo "| control: writer with only a read transaction held open, no copy (commits/s; ratio) | $RATEH; $(ratio "$RATEH" "$RATE_ALONE") | |"
echo "| writer p99 / max commit latency alone (ms) | $P99_ALONE / $MAX_ALONE | |"
echo "| writer p99 / max commit latency, backups back to back (ms) | $P99_WITH / $MAX_WITH | |"
echo "| writer max commit latency, read transaction held (ms) | $MAX_HELD | |"
echo "| litesafe backups completed under the writer (failed) | $NB ($NF_) | |"
echo "| litesafe backup idle, same database (s, median of 3) | $(secs "$IDLE_WORK") | |"
echo "| litesafe backup under the writer (s, median; max) | $(secs "$UNDER"); $(secs "$UNDER_MAX") | |"
echo "| under writer / idle | $(ratio "$UNDER" "$IDLE_WORK") | < 2 |"
echo "| database size at the start / end of a window (MiB) | $((size_before >> 20)) / $((size_after >> 20)) | |"
echo
echo "### $SMALL_MB MiB database under the same writer"
echo
echo "| tool | idle (s) | under the writer |"
echo "|---|---:|---|"
echo "| \`sqlite3 .backup\` | $(secs "$SQL_IDLE_SMALL") | $SQL_SMALL |"
echo "| \`litesafe backup\` | $(secs "$LS_IDLE_SMALL") | $(secs "$LS_SMALL") s (median of 3) |"
echo
echo "Writer over that whole $((CAP + 10)) s window (sqlite3 .backup, then 3 litesafe backups): $(json_field per_s <"$TMPD/sqlw.json") commits/s."
} | tee "$REPORT"
log "saved $REPORT"
