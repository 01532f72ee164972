"""Crashes during replication: kill -9 of the replicator, kill -9 of the
application's writer. A crash at any instant must leave a replica that
restores to a consistent state (a clean prefix of the source, whole
transactions only) and a spool that recovers; after a clean stop the
replica must hold everything.

The writer is repl_helpers.writer_main (running checksum over every row, see
there). Temp files: the file backend writes "<dir>/.<name>.<pid>.<rand>.tmp"
and renames; a kill -9 during an upload leaves that hidden file behind (the
storage layer deliberately never sweeps: a sweep could race another
process's upload). The test checks such leftovers are hidden and harmless:
litesafe's listings and restore, and Litestream 0.3.13's (when installed),
ignore them.
"""
import os
import random
import sqlite3
import time

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, file_url, replicator, write_config, write, start_writer, check_log,
    digest, integrity, restore, litestream_restore, wal_segments, generations,
    replica_files, stray_temp_files, wait_replicated)


def check_temp_files(rep):
    """Leftover temp files must be hidden, so no lister takes them for objects."""
    stray = stray_temp_files(rep)
    for f in stray:
        assert os.path.basename(f).startswith("."), "visible temp file in the replica: %s" % f
    visible = [f for f in replica_files(rep)
               if not any(part.startswith(".") for part in f.split(os.sep))]
    for f in visible:
        assert f.startswith("generations" + os.sep), f
        assert f.endswith(".wal.lz4") or f.endswith(".snapshot.lz4"), f
    return stray


def seeded():
    """A random generator; its seed is printed (shown when a test fails) and
    can be forced with LITESAFE_TEST_SEED to replay a run."""
    seed = int(os.environ.get("LITESAFE_TEST_SEED", time.time() * 1000))
    print("LITESAFE_TEST_SEED=%d" % seed)
    return random.Random(seed)


def kill_delay(rng):
    """Seconds a replicator runs before its kill: mostly 50 ms to 1.5 s (starts,
    uploads, checkpoint cycles), one time in five 1.5 to 8 s, so that the
    snapshot of a database grown large can finish and the replica moves on
    (with short delays only, every start of a long run was cut inside it)."""
    return rng.uniform(0.05, 1.5) if rng.random() < 0.8 else rng.uniform(1.5, 8.0)


def test_kill9_replicator_at_random_moments(tmp_path):
    rng = seeded()
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    stop = tmp_path / "stop-writer"
    write(db, prog, txns=20, seed=1)
    cfg = write_config(tmp_path / "ls.yml", db, rep,
                       db_keys={"min-checkpoint-page-count": 100},
                       replica_keys={"snapshot-interval": "2s"})
    w = start_writer(tmp_path, db, prog, stop_file=stop, sleep=0.004, big_every=40,
                     big_bytes=1 << 20, rows="1:8", seed=2)

    midway = []  # (rows, ck) restored while the replicator was dead
    kills = rng.randint(15, 25)
    for i in range(kills):
        r = replicator(tmp_path, "-config", cfg, level="info")
        time.sleep(rng.uniform(0.05, 1.5))
        assert r.alive(), "replicator died by itself:\n%s" % r.tail()
        r.kill9()
        assert w.alive(), w.tail()
        if i % 4 == 3 and generations(url):
            out, res = restore(tmp_path, url, expect_ok=False)
            assert res.rc == 0, "restore of a crashed replica failed: %r" % res
            assert integrity(out) == "ok"
            st = check_log(out)
            midway.append((st.rows, st.ck))
            os.unlink(out)

    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"source open", timeout=60)
    time.sleep(0.5)
    stop.write_text("")
    assert w.wait(120) == 0, w.tail()
    src_digest = digest(db)  # the replicator has the database open: no checkpoint-on-close
    wait_replicated(tmp_path, url, src_digest, timeout=180)
    assert r.stop() == 0, r.tail()

    assert integrity(db) == "ok"
    src = check_log(db, want_cks=True)
    for rows, ck in midway:  # what was restorable mid-way is the source's prefix, byte for byte
        assert rows == 0 or src.cks.get(rows) == ck, "mid-way restore of %d rows differs" % rows
    out, _ = restore(tmp_path, url)
    assert integrity(out) == "ok"
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == src_digest

    # every generation restores on its own, to a clean prefix of the source
    for g in generations(url):
        if g["snapshots"]:
            out, _ = restore(tmp_path, url, "-generation", g["generation"])
            check_log(out, ref=src)
            os.unlink(out)

    stray = check_temp_files(rep)
    print("kills=%d generations=%d midway=%s leftover temp files=%d"
          % (kills, len(generations(url)), [m[0] for m in midway], len(stray)))
    if os.access(LITESTREAM, os.X_OK):
        out, _ = litestream_restore(tmp_path, url)
        assert digest(out) == src_digest


def test_kill9_replicator_during_snapshot_uploads(tmp_path):
    """Kill -9 while a large snapshot is being uploaded (a 40 MiB database,
    snapshot-interval 1s): whatever instant, a restart recovers and the
    replica ends equal to the source."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=40, big_every=1, big_bytes=1 << 20, big_row=256 << 10, seed=3)
    cfg = write_config(tmp_path / "ls.yml", db, rep, replica_keys={"snapshot-interval": "1s"},
                       db_keys={"min-checkpoint-page-count": 1})
    rng = seeded()
    for _ in range(8):
        r = replicator(tmp_path, "-config", cfg, level="info")
        time.sleep(rng.uniform(0.05, 1.2))
        r.kill9()
        write(db, prog, txns=2, seed=rng.randint(0, 1 << 30), exit_open=True)
        # The WAL restarted while litesafe is away: the restart begins a new
        # generation, whose first snapshot is the upload the next kill hits.
        c = sqlite3.connect(str(db))
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
    r = replicator(tmp_path, "-config", cfg)
    # Writes after a cycle begin a new index, where the due snapshot is taken.
    deadline = time.monotonic() + 120
    for i in range(1000):
        write(db, prog, txns=1, seed=4 + i)
        if "snapshot written" in r.text():
            break
        assert time.monotonic() < deadline, "no snapshot written; log:\n" + r.tail()
        time.sleep(0.5)
    src_digest = digest(db)
    wait_replicated(tmp_path, url, src_digest, timeout=180)
    assert r.stop() == 0, r.tail()
    src = check_log(db, want_cks=True)
    out, _ = restore(tmp_path, url)
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == src_digest
    check_temp_files(rep)


def test_kill9_writer_mid_transaction(tmp_path):
    """The application dies (kill -9) in the middle of big transactions,
    several times, while litesafe replicates: uncommitted frames the writer
    spilled into the WAL must never reach the replica; every restore is
    clean and the final one equals the source. LITESAFE_WRITER_KILLS kills
    (default 6; `make crash` runs 100)."""
    db, rep, prog = tmp_path / "src.db", tmp_path / "rep", tmp_path / "progress"
    url = file_url(rep)
    write(db, prog, txns=10, seed=5)
    cfg = write_config(tmp_path / "ls.yml", db, rep, db_keys={"min-checkpoint-page-count": 200})
    r = replicator(tmp_path, "-config", cfg)
    r.wait_log("snapshot written")
    rng = seeded()
    stop = tmp_path / "never"
    kills = int(os.environ.get("LITESAFE_WRITER_KILLS", "6"))
    for i in range(kills):
        # transactions of 1-3 MiB written slowly, with a 256 KiB page cache: the
        # pages of the unfinished transaction are spilled to the WAL early, so
        # when the kill lands, uncommitted frames are usually in the WAL
        w = start_writer(tmp_path, db, prog, stop_file=stop, big_every=1,
                         big_bytes=rng.randint(1, 3) << 20, big_row=32 << 10, row_sleep=0.004,
                         cache_kib=256, seed=rng.randint(0, 1 << 30))
        time.sleep(rng.uniform(0.3, 1.5))
        w.kill9()
        assert integrity(db) == "ok"
        check_log(db)  # the source itself: whole transactions only
        out, res = restore(tmp_path, url, expect_ok=False)
        assert res.rc == 0, res
        check_log(out)
        os.unlink(out)
    write(db, prog, txns=20, seed=6)
    src_digest = digest(db)
    wait_replicated(tmp_path, url, src_digest)
    assert r.stop() == 0, r.tail()
    src = check_log(db, want_cks=True)
    out, _ = restore(tmp_path, url)
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == src_digest
    # A writer killed right after it restarted the WAL leaves a WAL header with
    # no committed frame; the next connection (its own checkpoint count 0)
    # writes a header with random salts, which litesafe cannot tell from a WAL
    # replaced behind its back: it starts a new generation (safe, costs a
    # snapshot). So there may be several generations; each must restore
    # cleanly, at every index sampled.
    gens = generations(url)
    assert 1 <= len(gens) <= kills + 1, gens
    for g in gens:
        segs = wal_segments(url, "-generation", g["generation"])
        indexes = sorted({s["index"] for s in segs})
        for i in sorted(set(indexes[::max(1, len(indexes) // 4)] + indexes[-1:])):
            out, _ = restore(tmp_path, url, "-generation", g["generation"], "-index", "%x" % i)
            check_log(out, ref=src)
            os.unlink(out)
    print("generations after %d writer kills: %d" % (kills, len(gens)))


def test_damaged_newest_segment_is_uploaded_again(tmp_path):
    """A server that crashes mid-upload may keep the cut object (s3rver
    stores bodies in place; the S3 outage test hit it). At start-up the
    newest segment of the generation does not decode: litesafe says so and
    uploads it again from the spool, and the replica restores exactly."""
    db, rep = str(tmp_path / "a.db"), tmp_path / "rep"
    progress = tmp_path / "progress"
    write(db, progress, txns=20, seed=11)
    url = file_url(rep)
    p = replicator(tmp_path, db, url)
    p.wait_log(r'msg="source open"', timeout=60)  # or the WAL may be gone before it looks
    write(db, progress, txns=30, seed=12, sleep=0.01)
    src = check_log(db, want_cks=True)
    wait_replicated(tmp_path, url, digest(db))
    assert p.stop() == 0, p.tail()

    newest = max((s for s in wal_segments(url)), key=lambda s: (s["index"], s["offset"]))
    path = os.path.join(str(rep), "generations", newest["generation"], "wal",
                        "%08x_%08x.wal.lz4" % (newest["index"], newest["offset"]))
    open(path, "w").close()  # the cut upload: an empty object
    r = restore(tmp_path, url, expect_ok=False)[1]
    assert r.rc != 0 and "LZ4" in r.err, r

    p = replicator(tmp_path, db, url)
    p.wait_log("replica object damaged", timeout=30)
    out = wait_replicated(tmp_path, url, digest(db))
    assert check_log(out, ref=src).rows == src.rows
    assert generations(url)[0]["generation"] == newest["generation"]
    assert len(generations(url)) == 1
    assert p.stop() == 0, p.tail()
