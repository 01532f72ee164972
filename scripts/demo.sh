#!/usr/bin/env bash
# The main job end to end, on a local database and a local file replica
# (nothing to configure): replicate a live database while a writer runs, stop,
# restore the latest state and a point in time, verify both; then the one-shot
# safety commands (backup, verify, info, checkpoint).
#   scripts/demo.sh [path/to/litesafe]
set -euo pipefail
LS=${1:-build/litesafe}
LS=$(cd "$(dirname "$LS")" && pwd)/$(basename "$LS")
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
DIR=$(mktemp -d /tmp/litesafe-demo.XXXXXX)
cleanup() { [ -n "${REPL:-}" ] && kill "$REPL" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
cd "$DIR"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a live database in WAL mode: $DIR/app.db"
sqlite3 app.db "PRAGMA journal_mode=wal; CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT, body TEXT);" >/dev/null

say "litesafe replicate app.db file://$DIR/replica   (in the background)"
"$LS" replicate app.db "file://$DIR/replica" 2>replicate.log &
REPL=$!
sleep 0.5

say "a writer commits 3000 small transactions; we note the time half way"
"$PY" - <<'PYEOF'
import sqlite3, time, datetime
db = sqlite3.connect("app.db", isolation_level=None)
db.execute("PRAGMA busy_timeout=5000")
for i in range(1, 3001):
    db.execute("INSERT INTO events(at, body) VALUES(?, ?)",
               (datetime.datetime.utcnow().isoformat(), "event %d" % i))
    if i == 1500:
        time.sleep(1.2)
        t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        open("midpoint", "w").write(t)
        time.sleep(1.2)
PYEOF
echo "source rows: $(sqlite3 app.db 'SELECT count(*) FROM events')"
sleep 0.5

say "stop replication (SIGTERM: final sync, exit 0)"
kill -TERM "$REPL"; wait "$REPL"; REPL=
tail -n 3 replicate.log

say "what the replica holds"
"$LS" generations "file://$DIR/replica"
"$LS" snapshots "file://$DIR/replica"
echo "WAL segments: $("$LS" wal "file://$DIR/replica" | tail -n +2 | wc -l)"

say "restore the latest state and verify it"
"$LS" restore -o latest.db "file://$DIR/replica" | grep -E 'position|page_count|elapsed'
"$LS" verify latest.db | grep -E 'integrity|ok'
echo "restored rows: $(sqlite3 latest.db 'SELECT count(*) FROM events') (source: $(sqlite3 app.db 'SELECT count(*) FROM events'))"

T=$(cat midpoint)
say "restore as of $T (point in time) and verify it"
"$LS" restore -timestamp "$T" -o past.db "file://$DIR/replica" | grep -E 'position|elapsed'
"$LS" verify past.db | grep -E 'integrity|ok'
echo "rows as of $T: $(sqlite3 past.db 'SELECT count(*) FROM events') (1500 were committed before it)"

say "the one-shot commands: backup (with SHA-256), verify, info, checkpoint"
"$LS" backup app.db backup.db | grep -E 'destination|sha256|page_count|elapsed'
"$LS" verify backup.db --sha256 "$(sha256sum backup.db | cut -d' ' -f1)" | grep -E 'sha256_match|ok'
"$LS" info app.db | grep -E 'journal mode|page count|WAL frames:'
"$LS" checkpoint -m truncate app.db | grep -E '^checkpoint|busy|fully'

say "done: everything is in $DIR"
