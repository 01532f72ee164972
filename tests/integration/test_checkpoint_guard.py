"""The checkpoint guard (source.c, THE CHECKPOINT GUARD).

While litesafe holds frames of the WAL the application's checkpoints are
stopped at their first lock call (SQLITE_BUSY, nothing copied) instead of
walking the WAL up to litesafe's read mark after every commit; a database
with `checkpoint-guard: false` behaves as before. When the WAL index must be
rebuilt (its header torn by a writer killed while it wrote it), litesafe
lets go of the guard so that the application's connection can rebuild it,
and replication goes on exact.
"""
import os
import sqlite3
import struct
import threading
import time

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, file_url, replicator, write_config, write, digest, restore,
    wait_replicated, stop_ok)

# No checkpoint cycle during a test: the guard is only let go by a cycle.
NO_CYCLE = {"min-checkpoint-page-count": 100000, "max-checkpoint-page-count": 100000,
            "checkpoint-interval": "1h"}


def started(tmp_path, cfg):
    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"snapshot written", timeout=60)
    return r


def app(db):
    c = sqlite3.connect(str(db), isolation_level=None, timeout=20)
    c.execute("PRAGMA wal_autocheckpoint=0")  # the test's own checkpoints only
    return c


def insert(c, n):
    for _ in range(n):
        c.execute("INSERT INTO log(seq, txn, ntx, payload, ck) SELECT max(seq)+1, max(txn)+1, "
                  "1, randomblob(64), 'x' FROM log")


def passive(c):
    return tuple(c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
def test_application_checkpoints_stop_at_once(tmp_path, guard):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    write(db, prog, txns=5, seed=1)
    keys = dict(NO_CYCLE)
    if not guard:
        keys["checkpoint-guard"] = "false"
    r = started(tmp_path, write_config(tmp_path / "ls.yml", db, rep, db_keys=keys))
    c = app(db)
    insert(c, 20)
    wait_replicated(tmp_path, file_url(rep), digest(db))
    seen = []
    deadline = time.monotonic() + (10 if guard else 2)
    while time.monotonic() < deadline:
        seen.append(passive(c))
        if guard and seen[-1] == (1, -1, -1):
            break
        time.sleep(0.1)
    if guard:
        # busy at the checkpointer's lock: nothing counted, nothing copied
        assert seen[-1] == (1, -1, -1), seen
    else:
        # litesafe's read mark only: the copy runs, up to that mark
        assert all(s[0] == 0 and 0 <= s[2] <= s[1] for s in seen), seen
    c.close()
    stop_ok(r)
    out, _ = restore(tmp_path, file_url(rep))
    assert digest(out) == digest(db)


def tear_wal_index_header(db):
    """What a writer killed between its two copies of the WAL-index header
    leaves: the copies differ (iChange of the second one, at 48 + 8)."""
    with open(str(db) + "-shm", "r+b") as f:
        f.seek(48 + 8)
        (v,) = struct.unpack("<I", f.read(4))
        f.seek(48 + 8)
        f.write(struct.pack("<I", (v + 1) & 0xFFFFFFFF))


def test_torn_wal_index_header_is_rebuilt_by_the_application(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=5, seed=2)
    keys = dict(NO_CYCLE, **{"monitor-interval": "1s"})
    r = started(tmp_path, write_config(tmp_path / "ls.yml", db, rep, db_keys=keys))
    c = app(db)
    insert(c, 20)
    wait_replicated(tmp_path, url, digest(db))
    deadline = time.monotonic() + 10
    while passive(c) != (1, -1, -1):  # the guard is held
        assert time.monotonic() < deadline, "the guard was never taken"
        time.sleep(0.1)
    c.close()

    tear_wal_index_header(db)
    # A new connection finds the header torn and rebuilds the index, which
    # needs the checkpointer's lock byte. SQLite gives up after about ten
    # seconds of retries ("locking protocol"); litesafe lets go within its
    # monitor-interval.
    got = {}

    def read():
        try:
            c2 = app(db)
            t0 = time.monotonic()
            got["rows"] = c2.execute("SELECT count(*) FROM log").fetchone()[0]
            got["s"] = time.monotonic() - t0
            insert(c2, 5)
            c2.close()
        except sqlite3.Error as e:
            got["error"] = str(e)

    t = threading.Thread(target=read)
    t.start()
    t.join(60)
    assert not t.is_alive()
    assert "error" not in got, got
    assert got["rows"] > 0 and got["s"] < 5, got

    write(db, prog, txns=10, seed=3)
    src = digest(db)
    wait_replicated(tmp_path, url, src)
    stop_ok(r)
    out, _ = restore(tmp_path, url)
    assert digest(out) == src
