"""Interoperability with Litestream 0.3.13 (tests/tools, installed by
scripts/deps.sh) on file replicas, in both directions:

  * litesafe replicates, Litestream restores (latest, every -index, a
    -timestamp pause point): each equals the source as it was, and equals
    litesafe's own restore of the same point;
  * Litestream replicates (it adds its _litestream_seq/_litestream_lock tables
    to the database and writes one-frame segments after its checkpoints),
    litesafe restores the same points: equal to the source and to
    Litestream's own restores;
  * litesafe's generations/snapshots/wal list a replica exactly as Litestream
    lists it (names, indexes, offsets, compressed sizes, creation times).
"""
import os
import signal
import time

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, file_url, replicator, litestream_replicator, write_config, write,
    check_log, digest, integrity, restore, litestream_restore, wait_replicated, generations,
    wal_segments, snapshots, rfc3339, litestream_table, litesafe_table, stray_temp_files,
    replica_objects)

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="Litestream 0.3.13 is not installed at %s (run "
                                       "scripts/deps.sh)" % LITESTREAM)


def sample(xs, n=6):
    """Up to about n elements spread over xs, always the first and the last."""
    if len(xs) <= n:
        return list(xs)
    step = max(1, len(xs) // (n - 1))
    return sorted(set(xs[::step]) | {xs[0], xs[-1]})


def compare_timestamp_restores(tmp_path, url, rep, src):
    """At instants half-way between consecutive uploads (never on a
    millisecond boundary), litesafe's and Litestream's -timestamp restores
    hold the same content, a clean prefix of the source. Litestream refuses
    instants after a generation's last upload ("no matching backups found"),
    litesafe restores the newest state then; those are compared only when
    Litestream restores."""
    times = sorted({o[2] for g in os.listdir(rep / "generations")
                    for kind in ("wal", "snapshots") for o in replica_objects(rep, g, kind)})
    mids = [(a + b) / 2000.0 for a, b in zip(times, times[1:]) if b - a >= 2]
    compared = 0
    for t in sample(mids, 8):
        mine, r = restore(tmp_path, url, "-timestamp", rfc3339(t), expect_ok=False)
        theirs, p = litestream_restore(tmp_path, url, "-timestamp", rfc3339(t), expect_ok=False)
        if p.returncode != 0:
            continue
        assert r.rc == 0, "Litestream restores %s, litesafe does not: %r" % (rfc3339(t), r)
        check_log(mine, ref=src)
        assert digest(mine) == digest(theirs), "restores at %s differ" % rfc3339(t)
        compared += 1
    assert compared >= 2, "too few instants both tools restore (%d)" % compared


def compare_listings(url):
    """litesafe's and Litestream's listings of one replica are the same."""
    lg = {(g["generation"]) for g in litestream_table("generations", url)}
    sg = {(g["generation"]) for g in litesafe_table("generations", url)}
    assert lg == sg and lg, (lg, sg)

    key = ("replica", "generation", "index", "size", "created")
    ls_snaps = sorted(tuple(x[k] for k in key) for x in litestream_table("snapshots", url))
    my_snaps = sorted(tuple(x[k] for k in key) for x in litesafe_table("snapshots", url))
    assert my_snaps == ls_snaps

    key = ("replica", "generation", "index", "offset", "size", "created")
    ls_wal = sorted(tuple(x[k] for k in key) for x in litestream_table("wal", url))
    my_wal = sorted(tuple(x[k] for k in key) for x in litesafe_table("wal", url))
    assert len(my_wal) == len(ls_wal) and len(ls_wal) > 0
    assert my_wal == ls_wal
    return len(ls_snaps), len(ls_wal)


# ------------------------------------------------- litesafe -> Litestream

def test_litesafe_replica_restored_by_litestream(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=20, seed=1)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 100},
                       replica_keys={"snapshot-interval": "2s"})
    r = replicator(tmp_path, "-config", cfg)
    r.wait_log("snapshot written")
    pauses = []
    for phase in range(3):
        write(db, prog, txns=80, sleep=0.003, big_every=40, big_bytes=2 << 20, seed=10 + phase)
        d = digest(db)
        wait_replicated(tmp_path, url, d)
        pauses.append((time.time(), d))
        time.sleep(1.1)  # Litestream compares times at full precision; keep them apart
    assert r.stop() == 0, r.tail()

    src = check_log(db, want_cks=True)
    src_digest = digest(db)
    out, p = litestream_restore(tmp_path, url)
    assert integrity(out) == "ok"
    assert digest(out) == src_digest

    indexes = sorted({s["index"] for s in wal_segments(url)})
    assert len(indexes) >= 3, indexes
    for i in sample(indexes):
        theirs, _ = litestream_restore(tmp_path, url, "-index", "%x" % i)
        mine, _ = restore(tmp_path, url, "-index", "%x" % i)
        check_log(theirs, ref=src)
        assert digest(theirs) == digest(mine), "index %d: Litestream and litesafe differ" % i

    t, d = pauses[1]
    theirs, _ = litestream_restore(tmp_path, url, "-timestamp", rfc3339(t))
    assert digest(theirs) == d
    compare_timestamp_restores(tmp_path, url, rep, src)
    compare_listings(url)


# ------------------------------------------------- Litestream -> litesafe

def test_litestream_replica_restored_by_litesafe(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=20, seed=2)
    cfg = tmp_path / "litestream.yml"
    cfg.write_text("dbs:\n  - path: %s\n    min-checkpoint-page-count: 100\n"
                   "    replicas:\n      - url: %s\n        sync-interval: 200ms\n"
                   % (db, url))
    ls = litestream_replicator(tmp_path, "-config", cfg)
    deadline = time.monotonic() + 60
    while not list(rep.glob("generations/*/snapshots/*.snapshot.lz4")):
        assert ls.alive() and time.monotonic() < deadline, ls.tail()
        time.sleep(0.1)

    pauses = []
    for phase in range(3):
        write(db, prog, txns=80, sleep=0.003, big_every=40, big_bytes=2 << 20, seed=20 + phase)
        # Litestream's own checkpoints write to _litestream_seq: compare with
        # the source as it is at each probe
        wait_replicated(tmp_path, url, lambda: digest(db), timeout=120, what="the source")
        pauses.append((time.time(), digest(db)))
        time.sleep(1.1)
    # the sync interval is 200ms: SIGTERM makes it sync what is left and exit
    ls.signal(signal.SIGTERM)
    assert ls.wait(60) == 0, ls.tail()

    src = check_log(db, want_cks=True)
    src_digest = digest(db)
    out, _ = restore(tmp_path, url)
    assert integrity(out) == "ok"
    assert digest(out) == src_digest
    assert check_log(out, ref=src).rows == src.rows

    indexes = sorted({s["index"] for s in wal_segments(url)})
    assert len(indexes) >= 2, "Litestream should have checkpointed: %s" % indexes
    for i in sample(indexes):
        mine, _ = restore(tmp_path, url, "-index", "%x" % i)
        theirs, _ = litestream_restore(tmp_path, url, "-index", "%x" % i)
        check_log(mine, ref=src)
        assert integrity(mine) == "ok"
        assert digest(mine) == digest(theirs), "index %d: litesafe and Litestream differ" % i

    for t, d in pauses[:2]:
        mine, _ = restore(tmp_path, url, "-timestamp", rfc3339(t))
        assert digest(mine) == d
    compare_timestamp_restores(tmp_path, url, rep, src)
    compare_listings(url)


def test_litesafe_lists_litestream_replica_like_litestream(tmp_path):
    """Several generations and snapshots: Litestream restarted after the
    application checkpointed behind its back starts a second generation."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=3)
    for round_ in range(2):
        ls = litestream_replicator(tmp_path, db, url)
        write(db, prog, txns=30, sleep=0.01, seed=30 + round_, exit_open=True)
        time.sleep(2.5)  # two of Litestream's 1s sync intervals
        ls.signal(signal.SIGTERM)
        assert ls.wait(60) == 0, ls.tail()
        write(db, prog, txns=5, seed=40 + round_)  # closes: checkpoints, deletes the WAL
    nsnap, nwal = compare_listings(url)
    assert len(litestream_table("generations", url)) >= 2
    assert nsnap >= 2 and nwal >= 2
    # JSON counts agree with the text listings
    assert len(snapshots(url)) == nsnap and len(wal_segments(url)) == nwal


def test_stray_temp_files_are_ignored_by_both(tmp_path):
    """Leftovers of an interrupted upload (hidden temp files, which litesafe's
    file backend never sweeps) do not disturb either tool."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=20, seed=5)
    r = replicator(tmp_path, db, url)
    r.wait_log("snapshot written")
    write(db, prog, txns=20, seed=6)
    d = digest(db)
    wait_replicated(tmp_path, url, d)
    assert r.stop() == 0, r.tail()
    (gen,) = os.listdir(rep / "generations")
    g = rep / "generations" / gen
    (g / "wal" / ".00000000_00000020.wal.lz4.4242.0123456789abcdef.tmp").write_bytes(b"junk")
    (g / "snapshots" / ".00000000.snapshot.lz4.4242.0123456789abcdef.tmp").write_bytes(b"junk")
    (rep / "generations" / ".0123456789abcdef.4242.0123456789abcdef.tmp").write_bytes(b"junk")
    assert len(stray_temp_files(rep)) == 3
    compare_listings(url)
    out, _ = litestream_restore(tmp_path, url)
    assert digest(out) == d
    out, _ = restore(tmp_path, url)
    assert digest(out) == d


@pytest.mark.parametrize("first,then", [("litestream", "litesafe"), ("litesafe", "litestream")])
def test_switching_tools_on_the_same_replica(tmp_path, first, then):
    """A user replicates with one tool, then switches to the other with the
    same replica URL: the second tool starts its own generation next to the
    first one's, and both tools restore the newest state, equal to the
    source, and can still restore the first tool's generation."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=60)

    def run_tool(tool, seed):
        if tool == "litesafe":
            p = replicator(tmp_path, db, url)
            p.wait_log("snapshot written")
        else:
            p = litestream_replicator(tmp_path, db, url)
        write(db, prog, txns=30, sleep=0.005, seed=seed, exit_open=True)
        wait_replicated(tmp_path, url, lambda: digest(db), timeout=120)
        p.signal(signal.SIGTERM)
        assert p.wait(60) == 0, p.tail()
        return digest(db)

    d1 = run_tool(first, 61)
    (gen1,) = [g["generation"] for g in generations(url)]
    time.sleep(1.1)
    d2 = run_tool(then, 62)
    gens = [g["generation"] for g in generations(url)]
    assert len(gens) == 2 and gen1 in gens, gens
    src = check_log(db, want_cks=True)
    assert digest(db) == d2
    mine, _ = restore(tmp_path, url)
    theirs, _ = litestream_restore(tmp_path, url)
    assert digest(mine) == d2 and digest(theirs) == d2
    assert check_log(mine, ref=src).rows == src.rows
    old_mine, _ = restore(tmp_path, url, "-generation", gen1)
    old_theirs, _ = litestream_restore(tmp_path, url, "-generation", gen1)
    assert digest(old_mine) == d1 and digest(old_theirs) == d1
    compare_listings(url)


def test_linked_lz4_blocks_restored_by_litestream(tmp_path):
    """litesafe's segments are LZ4 frames of linked 64 KiB blocks (each block
    refers to the one before: about half the bytes of independent blocks for
    a WAL that repeats a page). A segment of many blocks, from a burst of
    single-row commits, is restored by Litestream 0.3.13 equal to the
    source."""
    import glob
    import sqlite3
    db, rep = tmp_path / "src.db", tmp_path / "rep"
    c = sqlite3.connect(str(db), isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    cfg = write_config(tmp_path / "ls.yml", db, rep, replica_keys={"sync-interval": "1s"})
    p = replicator(tmp_path, "-config", cfg)
    p.wait_log("snapshot written")
    for i in range(5000):
        c.execute("INSERT INTO t(v) VALUES('x')")
    c.close()
    wait_replicated(tmp_path, file_url(rep), lambda: digest(db), timeout=60)
    assert p.stop() == 0, p.tail()
    big = max(glob.glob(str(rep / "generations" / "*" / "wal" / "*.wal.lz4")),
              key=os.path.getsize)
    with open(big, "rb") as f:
        head = f.read(6)
    assert head[4] == 0x44, "FLG %#x: not linked blocks" % head[4]
    out, _ = litestream_restore(tmp_path, file_url(rep))
    assert digest(out) == digest(db) and integrity(out) == "ok"
