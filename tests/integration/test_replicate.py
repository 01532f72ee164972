"""`litesafe replicate` to a file replica, then `litesafe restore` from it.

Every check compares restored content with the source precisely: the writer
(repl_helpers.writer_main) appends rows with a running SHA-256, so a restore
must hold a contiguous prefix of the source's rows, made of whole
transactions, byte for byte (check_log with ref=); at the end the latest
restore must equal the source (digest() over every table, and dump()).

Point-in-time restores are checked without timing assumptions: at "pause
points" the writer is idle and the replica has been seen to hold the source
exactly, so a -timestamp restore at that instant must equal the source as it
was then; at random instants during writing, the restore must be a clean
prefix, never include a transaction begun after the instant, agree with the
replica's own object mtimes (the position it reports is where the segments
uploaded by then end), and be consistent with the -index restores.
"""
import os
import random
import signal
import sqlite3
import subprocess
import time
import urllib.parse

import pytest

from conftest import BIN, run, make_db, dump, count
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, start_proc, file_url, replicator, write_config, write, start_writer,
    read_progress, check_log, digest, integrity, page_count, restore, wait_replicated,
    generations, wal_segments, snapshots, replica_files, replica_objects, lz4_len,
    parse_pos, rfc3339, writer_argv)


def started(tmp_path, *args, **kw):
    """Start litesafe replicate and wait until the replica has its first snapshot."""
    r = replicator(tmp_path, *args, **kw)
    r.wait_log(r"snapshot written", timeout=60)
    return r


def stop_ok(r):
    rc = r.stop()
    assert rc == 0, "litesafe replicate exited %d on SIGTERM; log:\n%s" % (rc, r.tail())
    txt = r.text()
    assert "level=ERROR" not in txt, r.tail()


def expected_position(root, gen, t_ms):
    """Where a -timestamp restore at t_ms must stop: the end of the last
    segment uploaded at or before t_ms, in (index, offset) order (restore stops
    at the first later one), after the newest snapshot at or before t_ms."""
    snaps = [s for s in replica_objects(root, gen, "snapshots") if s[2] <= t_ms]
    assert snaps, "no snapshot at or before %d" % t_ms
    snap_idx = max(s[0] for s in snaps)
    last = None
    for idx, off, ms, path in replica_objects(root, gen, "wal"):
        if idx < snap_idx:
            continue
        if ms > t_ms:
            break
        last = (idx, off, path)
    if last is None:
        return snap_idx, 0
    return last[0], last[1] + lz4_len(last[2])


# ------------------------------------------------------------------ 1. basics

def test_restore_equals_source_latest_index_and_timestamp(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=20, seed=1)  # the database exists before replication starts
    cfg = write_config(tmp_path / "ls.yml", db, rep,
                       db_keys={"min-checkpoint-page-count": 200},
                       replica_keys={"snapshot-interval": "3s"})
    r = started(tmp_path, "-config", cfg)

    # Pause points: the writer is idle and the replica holds the source exactly.
    pauses = []
    for phase in range(3):
        # many small transactions and, every 40th, one of 3 MiB
        write(db, prog, txns=120, big_every=40, big_bytes=3 << 20, seed=10 + phase)
        d = digest(db)
        wait_replicated(tmp_path, url, d)
        t = time.time()
        pauses.append((t, d, check_log(db).rows))
        time.sleep(0.3)  # later uploads get a later mtime

    # Continuous writing, with instants sampled while it runs.
    w = start_writer(tmp_path, db, prog, txns=400, sleep=0.003, seed=99,
                     big_every=100, big_bytes=2 << 20)
    samples, live = [], []
    while w.alive():
        time.sleep(random.uniform(0.05, 0.4))
        samples.append(time.time())
        if len(samples) % 3 == 0:  # restores while the replica is being written
            out, res = restore(tmp_path, url, stem="live", expect_ok=False)
            assert res.rc == 0, "restore during replication failed: %r" % res
            live.append(out)
    assert w.wait() == 0, w.tail()
    stop_ok(r)

    assert integrity(db) == "ok"
    src = check_log(db, want_cks=True)
    src_digest = digest(db)
    gens = generations(url)
    assert len(gens) == 1, gens
    gen = gens[0]["generation"]

    for out in live:
        assert check_log(out, ref=src).rows >= pauses[-1][2]
        os.unlink(out)

    # Latest.
    latest, res = restore(tmp_path, url, "--json")
    assert integrity(latest) == "ok"
    assert digest(latest) == src_digest
    assert dump(latest) == dump(db)
    assert check_log(latest, ref=src).rows == src.rows

    # -index: every index, in hex; a clean prefix, growing with the index.
    indexes = sorted({s["index"] for s in wal_segments(url)})
    assert len(indexes) >= 5, "expected several WAL indexes, got %s" % indexes
    by_index = {}
    for i in indexes:
        out, res = restore(tmp_path, url, "-index", "%x" % i, "--json")
        st = check_log(out, ref=src)
        g, idx, _ = parse_pos(res.json["position"])
        assert (g, idx) == (gen, i), res.json
        by_index[i] = st.rows
        os.unlink(out)
    rows = [by_index[i] for i in indexes]
    assert rows == sorted(rows), by_index
    assert rows[-1] == src.rows
    # the zero-padded form Litestream prints in positions is accepted too
    out, _ = restore(tmp_path, url, "-index", "%08x" % indexes[len(indexes) // 2])
    assert check_log(out).rows == by_index[indexes[len(indexes) // 2]]

    # -timestamp at the pause points: exactly the source as it was then.
    ts_points = []
    for t, d, nrows in pauses:
        out, res = restore(tmp_path, url, "-timestamp", rfc3339(t), "--json")
        assert digest(out) == d, "restore at pause point %s differs" % rfc3339(t)
        ts_points.append((t, parse_pos(res.json["position"]), nrows))
    # the same instant written with a UTC offset
    t, d, _ = pauses[1]
    ms = int(t * 1000)
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000 + 2 * 3600))
    out, _ = restore(tmp_path, url, "-timestamp", "%s.%03d+02:00" % (local, ms % 1000))
    assert digest(out) == d

    # -timestamp at instants sampled during writing.
    pr = read_progress(prog)
    begun = {c[1]: c[2] for c in pr.commits}  # last seq of a txn -> when it began
    prev = pauses[-1][2]
    for t in samples:
        out, res = restore(tmp_path, url, "-timestamp", rfc3339(t), "--json")
        st = check_log(out, ref=src)
        assert st.rows >= prev, "restore at %s went back in time" % rfc3339(t)
        prev = st.rows
        if st.rows:
            assert begun[st.rows] <= t + 0.1, (
                "restore at %s holds a transaction begun at %.3f" % (rfc3339(t), begun[st.rows]))
        pos = parse_pos(res.json["position"])
        assert pos == (gen,) + expected_position(rep, gen, int(t * 1000)), (rfc3339(t), pos)
        ts_points.append((t, pos, st.rows))
        os.unlink(out)

    # Timestamp and index restores agree: a restore that stopped inside index
    # i holds no more than the whole of index i, and no less than index i-1.
    for t, (_, idx, _), nrows in ts_points:
        if idx in by_index:
            assert nrows <= by_index[idx]
        earlier = [by_index[i] for i in indexes if i < idx]
        if earlier:
            assert nrows >= max(earlier)


# ------------------------------------------------------- 2. WAL wrap-around

def test_wal_wraps_around_many_times_in_one_generation(tmp_path):
    """A small min-checkpoint-page-count makes litesafe's checkpoint cycle
    restart the WAL again and again: one generation, many WAL indexes, each
    starting at offset 0 with the header, and the restore equals the source."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=5, seed=2)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 10})
    r = started(tmp_path, "-config", cfg)
    for phase in range(6):
        write(db, prog, txns=40, rows="1:4", payload="500:4000", sleep=0.005, seed=20 + phase)
        wait_replicated(tmp_path, url, digest(db))
    r.signal(signal.SIGINT)  # SIGINT stops it like SIGTERM: final sync, exit 0
    assert r.wait(120) == 0, r.tail()

    src = check_log(db, want_cks=True)
    gens = generations(url)
    assert len(gens) == 1, gens
    segs = wal_segments(url)
    indexes = sorted({s["index"] for s in segs})
    assert len(indexes) >= 3, "the WAL should have restarted several times: %s" % indexes
    assert indexes == list(range(indexes[0], indexes[-1] + 1)), "WAL indexes not contiguous"
    for i in indexes:
        offs = sorted(s["offset"] for s in segs if s["index"] == i)
        assert offs[0] == 0, "index %d has no initial segment" % i
    # each index holds a real WAL: its offset-0 segment starts with the WAL magic
    for idx, off, _, path in replica_objects(rep, gens[0]["generation"]):
        if off == 0:
            head = subprocess.run(["lz4", "-dc", path], capture_output=True).stdout[:4]
            assert head in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"), (idx, head)
    out, _ = restore(tmp_path, url)
    assert integrity(out) == "ok"
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == digest(db)


def test_grow_then_shrink_with_delete_and_vacuum(tmp_path):
    """The database grows, then DELETE + VACUUM shrink it (VACUUM rewrites
    every page through the WAL and commits a smaller size): the latest restore
    equals the source, page count included, and restores at the grown and the
    shrunk instants equal the source as it was then."""
    db, rep = tmp_path / "src.db", tmp_path / "rep"
    url = file_url(rep)
    con = make_db(db, rows=10)
    con.execute("PRAGMA busy_timeout=5000")
    con.execute("CREATE TABLE extra(k INTEGER PRIMARY KEY, v TEXT)")
    r = started(tmp_path, db, url)

    for _ in range(30):  # ~12 MB in 30 transactions
        con.execute("BEGIN")
        con.executemany("INSERT INTO t(v) VALUES(randomblob(?))", [(4000,)] * 100)
        con.execute("INSERT INTO extra(v) VALUES(hex(randomblob(50)))")
        con.execute("COMMIT")
    grown_digest, grown_pages = digest(db), page_count(db)
    wait_replicated(tmp_path, url, grown_digest)
    t_grown = time.time()
    time.sleep(0.3)

    con.execute("DELETE FROM t WHERE id % 10 != 0")
    con.execute("VACUUM")
    shrunk_digest, shrunk_pages = digest(db), page_count(db)
    assert shrunk_pages * 3 < grown_pages, (shrunk_pages, grown_pages)
    wait_replicated(tmp_path, url, shrunk_digest)
    t_shrunk = time.time()
    time.sleep(0.3)

    con.execute("BEGIN")
    con.executemany("INSERT INTO t(v) VALUES(randomblob(?))", [(3000,)] * 50)
    con.execute("UPDATE extra SET v = 'x' || v")
    con.execute("COMMIT")
    stop_ok(r)
    con.close()
    assert integrity(db) == "ok"

    out, res = restore(tmp_path, url, "--json")
    assert integrity(out) == "ok"
    assert digest(out) == digest(db)
    assert dump(out) == dump(db)
    assert page_count(out) == page_count(db)
    assert os.path.getsize(out) == page_count(db) * 4096

    out, _ = restore(tmp_path, url, "-timestamp", rfc3339(t_grown))
    assert digest(out) == grown_digest
    assert page_count(out) == grown_pages
    out, _ = restore(tmp_path, url, "-timestamp", rfc3339(t_shrunk))
    assert digest(out) == shrunk_digest
    assert page_count(out) == shrunk_pages
    assert os.path.getsize(out) == shrunk_pages * 4096


# ------------------------------------------------------- 3. a big transaction

def test_transaction_over_100_mib(tmp_path):
    """One commit of ~110 MiB (110 rows of 1 MiB, random, incompressible):
    the WAL grows past SQLite's page cache (frames are spilled before the
    commit frame exists), litesafe must ship it whole and restore it exactly.
    (Not marked: it takes a few seconds here, and the suite registers no
    custom marks.)"""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=3)
    r = started(tmp_path, db, url)
    write(db, prog, txns=1, big_every=1, big_bytes=110 << 20, big_row=1 << 20)
    write(db, prog, txns=10, seed=4)  # small ones after it, in the same or the next index
    stop_ok(r)

    src = check_log(db, want_cks=True)
    assert src.rows >= 110
    assert page_count(db) * 4096 > 100 << 20
    segs = wal_segments(url)
    assert max(s["size"] for s in segs) > 100 << 20, "the big commit should be one segment"
    out, _ = restore(tmp_path, url)
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == digest(db)
    assert integrity(out) == "ok"


# ------------------------------------- 4. the application checkpoints itself

def test_application_checkpoints_while_replicating(tmp_path):
    """The writer runs PRAGMA wal_checkpoint(PASSIVE|FULL|RESTART|TRUNCATE)
    every few commits (busy_timeout 100 ms for them). SQLite may answer busy
    (litesafe's read mark stops RESTART/TRUNCATE from restarting the WAL:
    documented in source.c), but never anything else (the writer exits 3 on any
    other error), and the replica has no hole: the restore equals the source."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=5, seed=5)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 50})
    r = started(tmp_path, "-config", cfg)
    pr = write(db, prog, txns=240, sleep=0.005, checkpoint_every=4, checkpoint_busy_ms=100,
               big_every=60, big_bytes=1 << 20, seed=6)
    wait_replicated(tmp_path, url, digest(db))
    stop_ok(r)

    results = {}
    for mode, res in pr.checkpoints:
        assert res[0] in (0, 1, "locked"), (mode, res)
        results.setdefault(mode, []).append(res[0])
    assert set(results) == {"PASSIVE", "FULL", "RESTART", "TRUNCATE"}, results
    summary = {m: "%d ok, %d busy, %d locked" % (v.count(0), v.count(1), v.count("locked"))
               for m, v in results.items()}
    print("application checkpoints:", summary)
    assert integrity(db) == "ok"
    src = check_log(db, want_cks=True)
    out, _ = restore(tmp_path, url)
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == digest(db)
    assert len(generations(url)) == 1


# ------------------------------------------ 5. stopped, then started again

def _app_while_stopped(case, db, prog, tmp_path):
    """What the application does while litesafe is stopped."""
    if case == "idle":
        return
    if case == "append":
        # commits that stay in the WAL (the writer exits without closing)
        write(db, prog, txns=20, seed=31, autocheckpoint=0, exit_open=True)
    elif case == "truncate":
        write(db, prog, txns=20, seed=31, autocheckpoint=0, exit_open=True)
        con = sqlite3.connect(str(db), isolation_level=None)
        con.execute("PRAGMA busy_timeout=5000")
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        write(db, prog, txns=20, seed=32, autocheckpoint=0, exit_open=True)
        con.close()  # not the last connection's close: the writer's exit left the WAL
    elif case == "close":
        # a normal writer: the last connection to close checkpoints and deletes the WAL
        write(db, prog, txns=20, seed=31)
        assert not os.path.exists(str(db) + "-wal")


@pytest.mark.parametrize("case,hold,new_gen", [
    ("idle", True, False),      # the application keeps its connection, writes nothing
    ("idle", False, False),     # nobody has the database open meanwhile
    ("append", False, False),   # new commits appended to the same WAL: still continuous
    ("truncate", False, True),  # checkpoint(TRUNCATE) + more writes: continuity lost
    ("close", False, True),     # last connection closed: checkpointed, WAL deleted
])
def test_restart_continues_or_starts_a_generation(tmp_path, case, hold, new_gen):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=30)
    holder = None
    if hold:
        holder = sqlite3.connect(str(db), isolation_level=None)
        holder.execute("SELECT count(*) FROM log").fetchone()
    r = started(tmp_path, db, url)
    write(db, prog, txns=30, seed=33)
    d1 = digest(db)  # litesafe's connections are open: this checkpoints nothing
    wait_replicated(tmp_path, url, d1)
    stop_ok(r)
    gen1 = generations(url)[0]["generation"]

    _app_while_stopped(case, db, prog, tmp_path)

    if new_gen:
        r = started(tmp_path, db, url)
    else:
        # its connection must be open before the writer's closes (the last
        # connection to close checkpoints the WAL): a slow start would see a
        # checkpointed WAL and rightly start a new generation
        r = replicator(tmp_path, db, url)
        r.wait_log(r'msg="source open"', timeout=60)
    write(db, prog, txns=30, seed=34)
    wait_replicated(tmp_path, url, digest(db))
    stop_ok(r)
    if holder:
        holder.close()

    gens = generations(url)
    names = [g["generation"] for g in gens]
    if new_gen:
        assert len(gens) == 2 and gen1 in names, gens
        assert "new generation" in r.text()
        # the old generation still restores to the state at the first stop
        out, _ = restore(tmp_path, url, "-generation", gen1)
        assert digest(out) == d1
    else:
        assert names == [gen1], "expected generation %s to continue: %s\n%s" % (
            gen1, gens, r.tail())
        assert "new generation" not in r.text()
    src = check_log(db, want_cks=True)
    out, res = restore(tmp_path, url, "--json")
    if new_gen:
        assert res.json["generation"] != gen1
    else:
        assert res.json["generation"] == gen1
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == digest(db)


def test_restart_after_application_truncate_checkpoint(tmp_path):
    """The application's TRUNCATE checkpoint succeeds while litesafe runs
    (right after one of litesafe's checkpoint cycles); litesafe is then
    restarted and the application writes again: the new rows must reach the
    replica and the final stop must succeed."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=5, seed=40)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 1})
    r = started(tmp_path, "-config", cfg)
    con = sqlite3.connect(str(db), isolation_level=None)
    con.execute("PRAGMA busy_timeout=5000")
    for _ in range(5):
        con.execute("INSERT INTO log(seq, txn, ntx, payload, ck) SELECT max(seq)+1, max(txn)+1, "
                    "1, x'00', 'x' FROM log")
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0:
        assert time.monotonic() < deadline, "the application's TRUNCATE never completed"
        time.sleep(0.1)
    assert os.path.getsize(str(db) + "-wal") == 0
    # Wait until litesafe has noticed the truncated WAL, shipped the old index
    # and trimmed its spool to the new, empty index (its layout: spool.h).
    spool = tmp_path / ".src.db-litesafe" / "generations"
    deadline = time.monotonic() + 30
    while True:
        files = [(f.name, f.stat().st_size) for f in spool.glob("*/wal/*.wal")]
        if len(files) == 1 and files[0][1] == 0:
            break
        assert time.monotonic() < deadline, "spool never trimmed: %s" % files
        time.sleep(0.05)
    stop_ok(r)
    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"source open")
    con.execute("INSERT INTO log(seq, txn, ntx, payload, ck) SELECT max(seq)+1, max(txn)+1, "
                "1, x'01', 'y' FROM log")
    d = digest(db)
    rc = r.stop()
    con.close()
    assert rc == 0, r.tail()
    out, _ = restore(tmp_path, url)
    assert digest(out) == d


def test_timestamp_restore_while_a_new_generation_has_no_snapshot_yet(tmp_path):
    """litesafe restarts after the application checkpointed (TRUNCATE) and
    wrote while it was stopped: a new generation whose index 0 already holds
    frames. Its first segments are uploaded before its snapshot (a 20 MiB
    database: the snapshot takes a while). A point-in-time restore at an
    instant inside that window must still work, from the older generation."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=20, big_every=1, big_bytes=1 << 20, seed=170)
    r = started(tmp_path, db, url)
    write(db, prog, txns=10, seed=171)
    d1 = digest(db)
    wait_replicated(tmp_path, url, d1)
    stop_ok(r)
    (gen1,) = [g["generation"] for g in generations(url)]

    write(db, prog, txns=5, seed=172, autocheckpoint=0, exit_open=True)
    con = sqlite3.connect(str(db), isolation_level=None)
    assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    write(db, prog, txns=5, seed=173, autocheckpoint=0, exit_open=True)  # the WAL keeps these
    time.sleep(0.2)
    r = started(tmp_path, db, url)
    d2 = digest(db)
    wait_replicated(tmp_path, url, d2)
    stop_ok(r)
    con.close()

    (gen2,) = [g["generation"] for g in generations(url) if g["generation"] != gen1]
    first_seg = replica_objects(rep, gen2)[0][2]
    first_snap = replica_objects(rep, gen2, "snapshots")[0][2]
    if first_seg >= first_snap:
        pytest.skip("the snapshot came first this time (no window to test)")
    out, res = restore(tmp_path, url, "-timestamp", rfc3339(first_seg / 1000.0 + 0.0005),
                       expect_ok=False)
    assert res.rc == 0, res
    assert digest(out) == d1


# ------------------------------------------------------------ 6. bad input

@pytest.mark.parametrize("where,key", [("replica", "snapshot-intervall"), ("db", "bogus-key"),
                                       ("top", "dbz")])
def test_unknown_config_key_is_a_usage_error_naming_it(tmp_path, where, key):
    db = tmp_path / "src.db"
    make_db(db, rows=1).close()
    cfg = tmp_path / "ls.yml"
    lines = ["dbs:", "  - path: %s" % db, "    replicas:", "      - url: %s" % file_url(
        tmp_path / "rep")]
    if where == "replica":
        lines.append("        %s: 1s" % key)
    elif where == "db":
        lines.insert(2, "    %s: 1" % key)
    else:
        lines.insert(0, "%s: []" % key)
    cfg.write_text("\n".join(lines) + "\n")
    r = run("replicate", "-config", cfg, timeout=30)
    assert r.rc == 2, r
    assert key in r.err and "unknown key" in r.err, r.err
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("url,words", [
    ("ftp://host/x", ["ftp", "scheme"]),
    ("http://host/x", ["http", "scheme"]),
    ("file://relative/x", ["file://relative/x"]),
    ("file:/x", ["file:/x"]),
    ("file:///", ["empty path"]),
    ("s3://", ["bucket"]),
    ("sftp://host/x", ["user"]),
])
def test_bad_replica_url_is_a_usage_error(tmp_path, url, words):
    db = tmp_path / "src.db"
    make_db(db, rows=1).close()
    r = run("replicate", db, url, timeout=30)
    assert r.rc == 2, r
    for w in words:
        assert w in r.err, r.err


def test_usage_errors(tmp_path):
    db = tmp_path / "src.db"
    make_db(db, rows=1).close()
    r = run("replicate", db, timeout=30)
    assert r.rc == 2 and "must specify at least one replica URL" in r.err, r
    cfg = write_config(tmp_path / "ls.yml", db, tmp_path / "rep")
    r = run("replicate", "-config", cfg, db, file_url(tmp_path / "rep2"), timeout=30)
    assert r.rc == 2, r
    r = run("replicate", "-config", tmp_path / "nope.yml", timeout=30)
    assert r.rc == 1 and "nope.yml" in r.err, r


def test_bare_path_is_a_file_replica(tmp_path):
    """Documented choice (url.c): an argument without "scheme://" is a path
    to a file replica (Litestream 0.3.13 refuses it: "replica url scheme
    required"). A relative one is relative to the working directory."""
    db = tmp_path / "src.db"
    write(db, tmp_path / "progress", txns=10, seed=50)
    r = replicator(tmp_path, db, tmp_path / "abs-rep")
    r.wait_log("snapshot written")
    stop_ok(r)
    out, _ = restore(tmp_path, file_url(tmp_path / "abs-rep"))
    assert digest(out) == digest(db)
    p = start_proc([BIN, "replicate", db, "rel-rep"], tmp_path / "rel.log", cwd=str(tmp_path))
    p.wait_log("snapshot written")
    assert list((tmp_path / "rel-rep").glob("generations/*/snapshots/*.snapshot.lz4"))
    assert p.stop() == 0, p.tail()


def test_unwritable_replica_logs_errors_without_crashing_then_recovers(tmp_path):
    """The replica path lies under a regular file: every upload fails, the
    replicator logs the error and retries (no crash, the database keeps being
    followed). Once the path is fixed, the replica catches up by itself."""
    db, prog = tmp_path / "src.db", tmp_path / "progress"
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file\n")
    url = file_url(blocker / "rep")
    write(db, prog, txns=10, seed=60)
    r = replicator(tmp_path, db, url)
    r.wait_log(r"replica sync failed.*Not a directory", timeout=60)
    write(db, prog, txns=10, seed=61)
    assert r.alive()
    blocker.unlink()
    blocker.mkdir()
    r.wait_log(r"snapshot written", timeout=90)
    d = digest(db)
    wait_replicated(tmp_path, url, d)
    assert r.stop() == 0, r.tail()
    out, _ = restore(tmp_path, url)
    assert digest(out) == d


def test_unwritable_replica_at_stop_exits_1_with_the_reason(tmp_path):
    db = tmp_path / "src.db"
    (tmp_path / "blocker").write_text("x")
    make_db(db, rows=5).close()
    r = replicator(tmp_path, db, file_url(tmp_path / "blocker" / "rep"))
    r.wait_log(r"replica sync failed", timeout=60)
    r.signal(signal.SIGTERM)  # a flush that cannot succeed: cut short by a second signal
    time.sleep(0.5)
    rc = r.stop()
    assert rc == 1, r.tail()
    assert "Not a directory" in r.tail(3) and "blocker" in r.tail(3), r.tail()
    assert integrity(db) == "ok"


def test_two_databases_share_one_replica_directory(tmp_path):
    """Replicating DB2 into DB1's replica directory: litesafe starts its own
    generation next to DB1's (nothing of DB1's is touched), a plain restore
    picks the newest generation -- whichever database wrote last -- and
    -generation reaches the other one. Nothing is mixed within a generation,
    but which database "latest" means is decided by time alone (Litestream
    behaves the same; its docs warn against sharing a replica path)."""
    rep = tmp_path / "rep"
    url = file_url(rep)
    db1, db2 = tmp_path / "one.db", tmp_path / "two.db"
    write(db1, tmp_path / "p1", txns=20, seed=70)
    write(db2, tmp_path / "p2", txns=30, seed=71)

    r = started(tmp_path, db1, url)
    stop_ok(r)
    (gen1,) = [g["generation"] for g in generations(url)]
    files1 = {f: os.path.getmtime(rep / f) for f in replica_files(rep)}
    d1 = digest(db1)
    time.sleep(1.1)  # generation end times are compared in milliseconds; make them differ

    r = started(tmp_path, db2, url)
    stop_ok(r)
    gens = generations(url)
    assert len(gens) == 2, gens
    gen2 = [g["generation"] for g in gens if g["generation"] != gen1][0]
    for f, m in files1.items():  # DB1's objects are untouched
        assert os.path.getmtime(rep / f) == m, f
    d2 = digest(db2)

    out, res = restore(tmp_path, url, "--json")
    assert res.json["generation"] == gen2
    assert digest(out) == d2
    out, _ = restore(tmp_path, url, "-generation", gen1)
    assert digest(out) == d1

    # DB1 replicated again continues its generation, which becomes the newest
    time.sleep(1.1)
    r = replicator(tmp_path, db1, url)
    # Once it has opened the database: a write before that would rightly start a
    # new generation (committed while litesafe was not running).
    r.wait_log(r"source open", timeout=60)
    write(db1, tmp_path / "p1", txns=5, seed=72)
    wait_replicated(tmp_path, url, digest(db1))
    stop_ok(r)
    assert sorted(g["generation"] for g in generations(url)) == sorted([gen1, gen2])
    out, res = restore(tmp_path, url, "--json")
    assert res.json["generation"] == gen1
    assert digest(out) == digest(db1)


def test_two_replicas_one_broken_for_a_while(tmp_path):
    """Two named replicas; the second lies under a regular file, so it fails
    while the WAL restarts several times. The first keeps up; the spool keeps
    what the broken one still needs; once its path is fixed it catches up and
    both restore exactly the source (also through -config/-replica NAME)."""
    db, prog = tmp_path / "src.db", tmp_path / "progress"
    good, blocker = tmp_path / "good", tmp_path / "blocker"
    blocker.write_text("x")
    write(db, prog, txns=10, seed=100)
    cfg = tmp_path / "ls.yml"
    cfg.write_text("dbs:\n  - path: %s\n    min-checkpoint-page-count: 20\n    replicas:\n"
                   "      - name: good\n        url: %s\n"
                   "      - name: late\n        url: %s\n"
                   % (db, file_url(good), file_url(blocker / "rep")))
    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"replica sync failed.*replica=late", timeout=60)
    for phase in range(4):
        write(db, prog, txns=30, sleep=0.005, seed=101 + phase)
        wait_replicated(tmp_path, file_url(good), digest(db))
    assert len({s["index"] for s in wal_segments(file_url(good))}) >= 2
    blocker.unlink()
    blocker.mkdir()
    d = digest(db)
    wait_replicated(tmp_path, file_url(blocker / "rep"), d, timeout=120)
    write(db, prog, txns=10, seed=110)
    assert r.stop() == 0, r.tail()
    src = check_log(db, want_cks=True)
    d = digest(db)
    for name, url in (("good", file_url(good)), ("late", file_url(blocker / "rep"))):
        out, _ = restore(tmp_path, url)
        assert check_log(out, ref=src).rows == src.rows, name
        assert digest(out) == d, name
        out, res = restore(tmp_path, db, "-config", cfg, "-replica", name, "--json")
        assert res.json["replica"] == name
        assert digest(out) == d, name
    r2 = run("generations", "-config", cfg, db, "--json")
    assert sorted(g["name"] for g in r2.json["generations"]) == ["good", "late"], r2


def test_two_file_urls_on_the_command_line_both_replicate(tmp_path):
    """`replicate DB URL URL` with two file URLs: Litestream 0.3.13 refuses it
    ('duplicate replica name: "file"'); litesafe names them file and file2 and
    replicates to both, and each restores the source."""
    db = tmp_path / "src.db"
    make_db(db, rows=50).close()
    a, b = file_url(tmp_path / "a"), file_url(tmp_path / "b")
    p = replicator(tmp_path, db, a, b, level="info")
    for name in ("file", "file2"):
        p.wait_log(r'msg="snapshot written"[^\n]* replica=%s ' % name, timeout=60)
    rc = p.stop()
    err = p.text()
    assert rc == 0, err
    assert "replica=file " in err and "replica=file2 " in err, err
    for i, url in enumerate((a, b)):
        out = tmp_path / ("out-%d.db" % i)
        r = run("restore", "-o", out, url)
        assert r.rc == 0, r
        assert count(out) == 50


def test_restore_from_replica_edge_cases(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    empty = file_url(tmp_path / "empty")
    # nothing there
    r = run("restore", "-o", tmp_path / "x.db", empty)
    assert r.rc == 1 and "no matching backup" in r.err, r
    r = run("restore", "-o", tmp_path / "x.db", "-if-replica-exists", empty)
    assert r.rc == 0 and not (tmp_path / "x.db").exists(), r

    write(db, prog, txns=30, seed=120)
    t_before = time.time() - 5
    r = started(tmp_path, db, url)
    write(db, prog, txns=30, seed=121)
    d = digest(db)
    wait_replicated(tmp_path, url, d)
    stop_ok(r)

    # usage errors
    for args in (["-index", "zz"], ["-index", "1", "-timestamp", rfc3339(time.time())],
                 ["-timestamp", "yesterday"], []):
        r = run("restore", *(args + ([] if args == [] else ["-o", tmp_path / "y.db"])), url)
        assert r.rc == 2, (args, r)
    # before the first snapshot: nothing to restore
    r = run("restore", "-o", tmp_path / "y.db", "-timestamp", rfc3339(t_before), url)
    assert r.rc == 1 and "no matching backup" in r.err, r
    # an index past the end restores everything
    out, _ = restore(tmp_path, url, "-index", "7fffffff")
    assert digest(out) == d
    # a generation that does not exist
    r = run("restore", "-o", tmp_path / "y.db", "-generation", "0123456789abcdef", url)
    assert r.rc == 1 and "0123456789abcdef" in r.err, r
    # never overwrites
    victim = tmp_path / "victim.db"
    victim.write_bytes(b"keep me")
    r = run("restore", "-o", victim, url)
    assert r.rc == 1 and victim.read_bytes() == b"keep me", r
    r = run("restore", "-o", victim, "-if-db-not-exists", url)
    assert r.rc == 0 and victim.read_bytes() == b"keep me", r
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f], os.listdir(tmp_path)


@pytest.mark.parametrize("page_size", [512, 65536])
def test_other_page_sizes(tmp_path, page_size):
    """Frames of 536 and 65560 bytes: replication, the checkpoint cycle and
    restore (-index too) work for the smallest and the largest page size."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=5, page_size=page_size, seed=130)
    assert page_count(db) and sqlite3.connect(str(db)).execute(
        "PRAGMA page_size").fetchone()[0] == page_size
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 50})
    r = started(tmp_path, "-config", cfg)
    for phase in range(3):
        write(db, prog, txns=40, sleep=0.005, big_every=20, big_bytes=1 << 20, seed=131 + phase)
        wait_replicated(tmp_path, url, digest(db))
    stop_ok(r)
    src = check_log(db, want_cks=True)
    out, res = restore(tmp_path, url, "--json")
    assert res.json["page_size"] == page_size
    assert digest(out) == digest(db) and integrity(out) == "ok"
    for i in sorted({s["index"] for s in wal_segments(url)}):
        out, _ = restore(tmp_path, url, "-index", "%x" % i)
        check_log(out, ref=src)
        os.unlink(out)


def test_retention_removes_old_objects_and_keeps_the_replica_restorable(tmp_path):
    """snapshot-interval 1s, retention 3s, checked every second: old
    snapshots and the segments before the oldest retained snapshot go away;
    the latest restore still equals the source; an -index that was removed
    gives a clean error."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=140)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 20},
                       replica_keys={"snapshot-interval": "1s", "retention": "3s",
                                     "retention-check-interval": "1s"})
    r = started(tmp_path, "-config", cfg)
    deadline = time.monotonic() + 90
    seed = 141
    while min(s["index"] for s in snapshots(url)) == 0:
        assert time.monotonic() < deadline, "retention never removed index 0:\n" + r.tail()
        write(db, prog, txns=20, sleep=0.01, seed=seed)
        seed += 1
        time.sleep(0.3)
    d = digest(db)
    wait_replicated(tmp_path, url, d)
    stop_ok(r)
    assert "retention" in r.text()
    first = min(s["index"] for s in snapshots(url))
    assert min(s["index"] for s in wal_segments(url)) >= first
    out, _ = restore(tmp_path, url)
    assert digest(out) == d
    r2 = run("restore", "-o", tmp_path / "gone.db", "-index", "0", url)
    assert r2.rc == 1 and not (tmp_path / "gone.db").exists(), r2


def test_paths_with_spaces_and_non_ascii(tmp_path):
    """A database and a replica directory whose names have spaces and UTF-8:
    the raw and the percent-encoded file URL name the same directory.
    (Litestream 0.3.13 re-encodes file URL paths and finds neither.)"""
    d = tmp_path / "dir with space" / "d\u00e9j\u00e0"
    d.mkdir(parents=True)
    db, prog = d / "my db.db", tmp_path / "progress"
    rep = d / "re plica"
    raw = "file://" + str(rep)
    enc = "file://" + urllib.parse.quote(str(rep))
    assert raw != enc
    write(db, prog, txns=20, seed=150)
    r = started(tmp_path, db, raw)
    write(db, prog, txns=20, seed=151)
    wait_replicated(tmp_path, enc, digest(db))
    stop_ok(r)
    assert (d / ".my db.db-litesafe").is_dir()
    out, _ = restore(tmp_path, enc)
    assert digest(out) == digest(db)
    assert [g["generation"] for g in generations(raw)] == [g["generation"]
                                                            for g in generations(enc)]


def test_second_replicator_on_the_same_database_waits_then_takes_over(tmp_path):
    """Two `litesafe replicate` processes on one database (say a service and
    a forgotten manual run, or a restart while the old process still
    flushes). The second neither breaks the first's replica nor gives up: it
    says once who holds the database and waits; when the first stops it
    takes over. Both replicas end equal to the source."""
    db, prog = tmp_path / "src.db", tmp_path / "progress"
    url1, url2 = file_url(tmp_path / "rep1"), file_url(tmp_path / "rep2")
    write(db, prog, txns=10, seed=160)
    r1 = started(tmp_path, db, url1)
    r2 = replicator(tmp_path, db, url2, level="info")
    r2.wait_log(r"cannot replicate.*another litesafe replicate is running", timeout=30)
    write(db, prog, txns=50, sleep=0.005, seed=161)
    time.sleep(2)
    assert r2.alive() and r2.text().count("cannot replicate") == 1, r2.tail()
    assert "replica sync failed" not in r1.text(), r1.tail()
    d = digest(db)
    wait_replicated(tmp_path, url1, d)
    stop_ok(r1)
    r2.wait_log(r"snapshot written", timeout=60)
    write(db, prog, txns=20, seed=162)
    d = digest(db)
    wait_replicated(tmp_path, url2, d)
    assert r2.stop() == 0, r2.tail()

def test_exec_exit_status_is_passed_through(tmp_path):
    db = tmp_path / "src.db"
    make_db(db, rows=5).close()
    r = run("replicate", "-exec", "sh -c 'exit 3'", db, file_url(tmp_path / "rep"), timeout=60)
    assert r.rc == 3, r
    r = run("replicate", "-exec", "true", db, file_url(tmp_path / "rep"), timeout=60)
    assert r.rc == 0, r


def test_exec_child_writes_then_exits_everything_is_replicated(tmp_path):
    db, prog, rep = tmp_path / "src.db", tmp_path / "progress", tmp_path / "rep"
    write(db, prog, txns=5, seed=80)
    cmd = " ".join("'%s'" % a for a in writer_argv(db, prog, txns=200, seed=81, big_every=50,
                                                    big_bytes=1 << 20))
    r = run("replicate", "-exec", cmd, db, file_url(rep), timeout=300)
    assert r.rc == 0, r
    assert len(read_progress(prog).commits) == 205
    src = check_log(db, want_cks=True)
    out, _ = restore(tmp_path, file_url(rep))
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == digest(db)


def test_exec_sigterm_is_forwarded_to_the_child(tmp_path):
    db, prog, rep = tmp_path / "src.db", tmp_path / "progress", tmp_path / "rep"
    write(db, prog, txns=5, seed=82)
    marker = tmp_path / "child-got-term"
    # -exec runs its command through /bin/sh -c
    child = "trap 'touch %s; exit 0' TERM; while :; do sleep 0.05; done" % marker
    r = replicator(tmp_path, "-exec", child, db, file_url(rep))
    r.wait_log("snapshot written")
    write(db, prog, txns=20, seed=83)  # the application (here another process) writes
    assert r.stop() == 0, r.tail()
    assert marker.exists()
    out, _ = restore(tmp_path, file_url(rep))
    assert digest(out) == digest(db)
    # a child killed by the forwarded signal: litesafe exits 128+15, like a shell
    # (the signal goes once the child runs: one sent before the child starts
    # stops litesafe with no child to forward it to, and the exit is 0)
    started_marker = tmp_path / "child-started"
    r = replicator(tmp_path, "-exec", "touch %s; exec sleep 600" % started_marker, db,
                   file_url(rep))
    deadline = time.time() + 30
    while not started_marker.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert started_marker.exists(), r.tail()
    assert r.stop() == 143, r.tail()


# --------------------------------------------------------- 8. listing commands

def test_generations_snapshots_wal_listings(tmp_path):
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=90)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 20},
                       replica_keys={"snapshot-interval": "1s"})
    r = started(tmp_path, "-config", cfg)
    write(db, prog, txns=100, sleep=0.01, seed=91)
    r.wait_log("snapshot written", count=2, timeout=60)
    write(db, prog, txns=20, seed=92)
    wait_replicated(tmp_path, url, digest(db))
    stop_ok(r)

    (gen,) = os.listdir(rep / "generations")
    snaps = replica_objects(rep, gen, "snapshots")
    segs = replica_objects(rep, gen, "wal")
    assert len(snaps) >= 2 and len(segs) >= 10

    # generations: text and JSON
    rows = [l.split() for l in run("generations", url).out.splitlines() if l.strip()]
    assert rows[0] == ["name", "generation", "lag", "start", "end"]
    assert len(rows) == 2 and rows[1][0] == "file" and rows[1][1] == gen
    assert rows[1][2].endswith("s")
    for ts in rows[1][3:5]:
        assert time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
    (g,) = generations(url)
    assert set(g) == {"name", "generation", "lag_ms", "start", "end", "snapshots",
                      "wal_segments"}, g
    assert (g["name"], g["generation"]) == ("file", gen)
    assert g["snapshots"] == len(snaps) and g["wal_segments"] == len(segs)
    assert g["start"] <= g["end"] and isinstance(g["lag_ms"], int)
    # the same through the config file and the database path
    r2 = run("generations", "-config", cfg, db, "--json")
    assert r2.rc == 0, r2
    assert [x["generation"] for x in r2.json["generations"]] == [gen]

    # snapshots: decimal index, compressed size, creation time
    rows = [l.split() for l in run("snapshots", url).out.splitlines() if l.strip()]
    assert rows[0] == ["replica", "generation", "index", "size", "created"]
    want = sorted((i, os.path.getsize(p)) for i, _, _, p in snaps)
    assert sorted((int(x[2]), int(x[3])) for x in rows[1:]) == want
    js = snapshots(url)
    assert all(set(s) == {"replica", "generation", "index", "size", "created"} for s in js)
    assert sorted((s["index"], s["size"]) for s in js) == want

    # wal: decimal index and offset (the file names are hex)
    rows = [l.split() for l in run("wal", url).out.splitlines() if l.strip()]
    assert rows[0] == ["replica", "generation", "index", "offset", "size", "created"]
    want = sorted((i, o, os.path.getsize(p)) for i, o, _, p in segs)
    assert sorted((int(x[2]), int(x[3]), int(x[4])) for x in rows[1:]) == want
    js = wal_segments(url)
    assert all(set(s) == {"replica", "generation", "index", "offset", "size", "created"}
               for s in js)
    assert sorted((s["index"], s["offset"], s["size"]) for s in js) == want
    assert any(s["offset"] > 9 for s in js)  # decimal, not hex, for big offsets too
    # --json before the subcommand, and -generation filtering
    r2 = run("--json", "wal", url)
    assert r2.rc == 0 and len(r2.json["wal"]) == len(segs), r2
    assert wal_segments(url, "-generation", gen) == js
    r2 = run("wal", url, "-generation", "0123456789abcdef", "--json")
    assert r2.rc in (0, 1), r2
    if r2.rc == 0:
        assert r2.json["wal"] == []


def test_listings_of_an_empty_or_missing_replica(tmp_path):
    url = file_url(tmp_path / "nothing")
    for cmd in ("generations", "snapshots", "wal"):
        r = run(cmd, url)
        assert r.rc in (0, 1), r
        if r.rc == 0:
            lines = [l for l in r.out.splitlines() if l.strip()]
            assert len(lines) <= 1, r.out  # a header at most
        else:
            assert "nothing" in r.err, r
