"""The replicator's locks must survive its own file accesses.

Closing any descriptor of a file drops every POSIX lock the process holds on
it. If litesafe ever open()ed and close()d the database or its -shm next to
its SQLite connections, an application closing its last connection would win
the EXCLUSIVE lock, checkpoint past frames litesafe had not copied and delete
the WAL: transactions would be missing from the replica. These tests make the
application close its connection while litesafe replicates (and snapshots) and
check that the WAL survives and the replica holds every row.
"""
import os
import sqlite3
import subprocess
import time

from conftest import BIN, count, integrity
from repl_helpers import reaper, replicator  # noqa: F401  (reaper is an autouse fixture)


def start(tmp, *args):
    """replicate ARGS, once it has the database open (a sleep was too short
    under valgrind: the application's close then deleted the WAL, rightly)."""
    p = replicator(tmp, *args, level="info")
    p.wait_log(r'msg="source open"', timeout=60)
    return p


def stop(p):
    assert p.stop() == 0, p.tail()


def write_and_close(db, n, batch_sleep=0.0):
    """Commit n rows from a fresh connection, then close it cleanly."""
    c = sqlite3.connect(str(db), isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    for i in range(n):
        c.execute("INSERT INTO t(v) VALUES(?)", ("row %d" % i,))
        if batch_sleep and i % 100 == 0:
            time.sleep(batch_sleep)
    c.close()


def test_app_close_keeps_wal_and_rows(tmp_path):
    db = tmp_path / "app.db"
    c = sqlite3.connect(str(db), isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.close()
    url = "file://%s" % (tmp_path / "replica")
    p = start(tmp_path, db, url)
    try:
        for round_ in range(5):
            write_and_close(db, 700)
            # The application's close must not checkpoint-and-delete the WAL
            # while litesafe holds the database open.
            assert (tmp_path / "app.db-wal").exists(), "WAL deleted on app close (round %d)" % round_
    finally:
        stop(p)
    out = tmp_path / "restored.db"
    r = subprocess.run([BIN, "restore", "-o", str(out), url], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert integrity(out) == "ok"
    assert count(out) == count(db) == 3500


def test_snapshots_while_app_closes(tmp_path):
    """Snapshots (which pin the database with their own reader) run while the
    application keeps opening and closing connections."""
    db = tmp_path / "app.db"
    c = sqlite3.connect(str(db), isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    c.close()
    cfg = tmp_path / "litesafe.yml"
    cfg.write_text("dbs:\n  - path: %s\n    replicas:\n      - url: file://%s\n"
                   "        snapshot-interval: 200ms\n" % (db, tmp_path / "replica"))
    p = start(tmp_path, "-config", cfg)
    try:
        for _ in range(8):
            write_and_close(db, 300, batch_sleep=0.02)
            assert (tmp_path / "app.db-wal").exists()
    finally:
        stop(p)
    out = tmp_path / "restored.db"
    r = subprocess.run([BIN, "restore", "-o", str(out), "file://%s" % (tmp_path / "replica")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert count(out) == count(db) == 2400
    snaps = subprocess.run([BIN, "snapshots", "--json", "file://%s" % (tmp_path / "replica")],
                           capture_output=True, text=True)
    assert snaps.returncode == 0
    import json
    assert len(json.loads(snaps.stdout)["snapshots"]) >= 2
