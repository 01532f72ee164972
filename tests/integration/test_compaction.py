"""Compaction (compact-after, compact-interval) and snapshot-wal-ratio, with
the real binary, on a file replica and on S3 (the test s3rver):

  * a replica written one segment per commit (sync-interval 0) is compacted
    to one object per finished WAL index, and both litesafe and Litestream
    0.3.13 restore it equal to the source (latest, and an earlier -index);
  * while a writer keeps writing and compaction keeps merging and deleting,
    both tools restore again and again: every restore that succeeds is a
    state the source really had;
  * replicate killed with -9 right after a merge (the merged object and the
    old segments side by side), then restarted: restorable by both tools
    before and after the restart finishes the deletes;
  * snapshot-wal-ratio takes a snapshot once the WAL shipped outgrows the
    database (and not with 0).
"""
import os
import sqlite3
import time

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, replicator, write_config, write_s3_config, write, start_writer,
    check_log, digest, restore_cfg, wait_restorable, listing, read_progress, stop_ok)

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="Litestream 0.3.13 is not installed at %s (run "
                                       "scripts/deps.sh)" % LITESTREAM)

FAST = {"sync-interval": "0s", "compact-after": "1s", "compact-interval": "1s",
        "snapshot-wal-ratio": "0"}


def config(tmp_path, db, target, servers=None, **keys):
    """A config both tools read: `target` "file" or "s3"; keys: replica keys."""
    cfg = tmp_path / "cfg.yml"
    keys = dict(FAST, **{k.replace("_", "-"): v for k, v in keys.items()})
    if target == "file":
        write_config(cfg, db, tmp_path / "replica", replica_keys=keys)
    else:
        write_s3_config(cfg, db, servers, "compact/%d/%s" % (os.getpid(), tmp_path.name),
                        extra=keys)
    # Many WAL indexes: a checkpoint (and a new index) every ~100 pages.
    text = cfg.read_text().replace("  - path: %s\n" % db, "  - path: %s\n"
                                   "    min-checkpoint-page-count: 100\n" % db, 1)
    cfg.write_text(text)
    return str(cfg)


def newest_gen(cfg, db):
    gens = listing("generations", "-config", cfg, db)
    return max(gens, key=lambda g: (g["end"], g["start"]))["generation"] if gens else None


def segments(cfg, db, gen=None):
    """{index: [offsets]} of a generation (the newest), as litesafe lists it."""
    wal = listing("wal", "-config", cfg, db)
    gen = gen or newest_gen(cfg, db)
    out = {}
    for x in wal:
        if x["generation"] == gen:
            out.setdefault(x["index"], []).append(x["offset"])
    return out


def wait_compacted(cfg, db, timeout=90):
    """Until every WAL index but the newest is one object; returns the listing."""
    deadline = time.monotonic() + timeout
    while True:
        segs = segments(cfg, db)
        idx = sorted(segs)
        if len(idx) >= 2 and all(len(segs[i]) == 1 for i in idx[:-1]):
            return segs
        assert time.monotonic() < deadline, "not compacted in %ss: %s" % (
            timeout, {i: len(v) for i, v in segs.items()})
        time.sleep(0.5)


def both_restore(tmp_path, cfg, db, src, *opts):
    """litesafe's and Litestream's restores (with opts) are equal, a state of the source."""
    mine, _ = restore_cfg("litesafe", tmp_path, cfg, db, *opts)
    theirs, _ = restore_cfg("litestream", tmp_path, cfg, db, *opts)
    assert digest(mine) == digest(theirs)
    return check_log(mine, ref=src)


@pytest.mark.parametrize("target", ["file", "s3"])
def test_compacted_replica_restores_in_both_tools(tmp_path, target, request):
    servers = request.getfixturevalue("servers") if target == "s3" else None
    db = str(tmp_path / "app.db")
    cfg = config(tmp_path, db, target, servers)
    progress = tmp_path / "progress"
    write(db, progress, txns=20, seed=1)
    rep = replicator(tmp_path, "-config", cfg)
    w = start_writer(tmp_path, db, progress, txns=500, sleep=0.003, seed=2, checkpoint_every=60)
    assert w.wait(300) == 0, w.tail()
    src = check_log(db, want_cks=True)
    commits = len(read_progress(progress).commits)
    segs = wait_compacted(cfg, db)
    rep.wait_log(r"compaction deleted", timeout=60)
    nobj = sum(len(v) for v in segs.values())
    # One segment per commit before, about one object per index after.
    assert len(segs) >= 5 and nobj <= len(segs) + 60 and commits >= 5 * len(segs), (
        commits, {i: len(v) for i, v in segs.items()})
    assert both_restore(tmp_path, cfg, db, src).rows == src.rows
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, digest(db))) == digest(db)
    # An earlier point: the end of a compacted index.
    at = "%x" % sorted(segs)[len(segs) // 2]
    got = both_restore(tmp_path, cfg, db, src, "-index", at)
    assert 0 < got.rows < src.rows
    stop_ok(rep)


def test_restores_during_compaction(tmp_path):
    """Both tools restore over and over while the writer writes and compaction
    merges and deletes: a restore may fail (an object deleted after the
    listing) but one that succeeds is a real state of the source."""
    db = str(tmp_path / "app.db")
    cfg = config(tmp_path, db, "file", compact_interval="2s")
    progress = tmp_path / "progress"
    stop = tmp_path / "stop"
    write(db, progress, txns=20, seed=5)
    rep = replicator(tmp_path, "-config", cfg)
    w = start_writer(tmp_path, db, progress, stop_file=stop, sleep=0.004, seed=6,
                     checkpoint_every=40)
    outs, ok, failed = [], {"litesafe": 0, "litestream": 0}, []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        for tool in ("litestream", "litesafe"):
            out, r = restore_cfg(tool, tmp_path, cfg, db, expect_ok=False)
            if r.rc == 0:
                ok[tool] += 1
                outs.append(out)
            else:
                failed.append((tool, (r.err or r.out).strip()[-300:]))
    stop.write_text("")
    assert w.wait(120) == 0, w.tail()
    src = check_log(db, want_cks=True)
    for out in outs:
        check_log(out, ref=src)
    log = rep.text()
    assert log.count("compaction merged") >= 3 and "compaction deleted" in log, rep.tail()
    print("restores during compaction: ok=%s failed=%d %s" % (ok, len(failed), failed[:3]))
    assert ok["litesafe"] >= 5 and ok["litestream"] >= 5, (ok, failed[:5])
    # Then the latest state, in both tools.
    wait_compacted(cfg, db)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, digest(db))) == digest(db)
    assert both_restore(tmp_path, cfg, db, src).rows == src.rows
    stop_ok(rep)


def test_kill9_after_merge_then_restart(tmp_path):
    db = str(tmp_path / "app.db")
    # A long grace period: killed after the merge, before its deletes.
    cfg = config(tmp_path, db, "file", compact_interval="3s")
    progress = tmp_path / "progress"
    write(db, progress, txns=20, seed=7)
    rep = replicator(tmp_path, "-config", cfg)
    w = start_writer(tmp_path, db, progress, txns=300, sleep=0.003, seed=8, checkpoint_every=50)
    assert w.wait(300) == 0, w.tail()
    rep.wait_log(r"compaction merged", timeout=60)
    rep.kill9()
    src = check_log(db, want_cks=True)
    gen = newest_gen(cfg, db)
    segs = segments(cfg, db, gen)
    assert any(len(v) > 1 for i, v in segs.items() if i < max(segs)), segs
    assert both_restore(tmp_path, cfg, db, src).rows == src.rows

    # Restarted (a kill -9 may start a new generation: the old one stays as the kill left
    # it, restorable), more commits; the newest generation compacted; both tools again.
    rep = replicator(tmp_path, "-config", cfg)
    write(db, progress, txns=200, sleep=0.003, seed=9)
    wait_compacted(cfg, db)
    assert both_restore(tmp_path, cfg, db, src, "-generation", gen).rows == src.rows
    src = check_log(db, want_cks=True)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, digest(db))) == digest(db)
    assert both_restore(tmp_path, cfg, db, src).rows == src.rows
    stop_ok(rep)


def rewrite(db, rounds, rows=100, size=10000):
    """A small database rewritten `rounds` times: much WAL, no growth."""
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    for _ in range(rounds):
        c.execute("BEGIN")
        for i in range(rows):
            c.execute("INSERT OR REPLACE INTO t VALUES(?, randomblob(?))", (i, size))
        c.execute("COMMIT")
        time.sleep(0.01)
    c.close()


@pytest.mark.parametrize("ratio", ["2", "0"])
def test_snapshot_wal_ratio(tmp_path, ratio):
    db = str(tmp_path / "app.db")
    cfg = config(tmp_path, db, "file", snapshot_wal_ratio=ratio, compact_after="0s")
    rewrite(db, 1)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)
    rewrite(db, 30)  # ~30 MiB of WAL for a ~1 MiB database (16 MiB is the least that counts)
    want = digest(db)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, want)) == want
    snaps = listing("snapshots", "-config", cfg, db)
    if ratio == "0":
        assert len(snaps) == 1, snaps
    else:
        assert len(snaps) >= 2, snaps
    theirs, _ = restore_cfg("litestream", tmp_path, cfg, db)
    assert digest(theirs) == want
    stop_ok(rep)


def test_snapshot_wal_ratio_never_replaces_an_earlier_snapshot(tmp_path):
    """A WAL index that outgrows the database while a reader keeps it from
    restarting: the snapshot it calls for would have the key of the index's
    first snapshot (Litestream's layout names snapshots by WAL index), and
    replacing that one loses every point in time before it. It waits for the
    next index instead; a restore to a moment before it still works."""
    db = str(tmp_path / "app.db")
    cfg = config(tmp_path, db, "file", snapshot_wal_ratio="1", compact_after="0s")
    rewrite(db, 1)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)
    early = digest(db)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, early)) == early
    time.sleep(1.1)
    t_early = time.time()
    time.sleep(1.1)

    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # the WAL cannot restart
    rewrite(db, 30)  # ~30 MiB of WAL in one index, for a ~1 MiB database
    want = digest(db)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, want)) == want
    assert [s["index"] for s in listing("snapshots", "-config", cfg, db)] == [0]
    out, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-timestamp",
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_early)))
    assert digest(out) == early

    # Released: the WAL restarts, and the snapshot comes at the new index.
    reader.execute("COMMIT")
    reader.close()
    # The new index begins with the first write after the replicator's
    # checkpoint: write until it came (under valgrind the checkpoint came
    # after a fixed number of writes, and the snapshot waited for ever).
    deadline = time.monotonic() + 120
    while len(listing("snapshots", "-config", cfg, db)) < 2:
        assert time.monotonic() < deadline, listing("snapshots", "-config", cfg, db)
        rewrite(db, 1)
        time.sleep(0.3)
    want = digest(db)
    assert digest(wait_restorable("litesafe", tmp_path, cfg, db, want)) == want
    stop_ok(rep)
