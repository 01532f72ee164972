"""Crash consistency at many kill points, on the file and S3 backends.

The replicator is killed with SIGKILL after a random delay, again and again,
while an application writes (small transactions, 1 MiB ones, its own
checkpoints), with settings that keep every activity busy: a snapshot every
2 s, retention of 4 s checked every second (so snapshots and segments are
deleted all the time), a checkpoint cycle every 100 pages, per-commit
uploads. A kill therefore lands in snapshot uploads, segment uploads,
checkpoint cycles, retention and spool writes. After every kill the replica
is restored: the result must be a state the source really had (the writer's
ledger: a running SHA-256 over every row, so a restored database is a clean
prefix of whole transactions, and its checksum at that row count must be the
one the source had there). At the end, after a clean stop, it must be the
source itself.

Kills per backend: LITESAFE_CRASH_KILLS (default 12, what CI runs;
`make crash` runs 120). The seed is printed and LITESAFE_TEST_SEED replays a
run.

An open finding (docs/reliability.md): the test S3 server (s3rver) keeps a
PUT whose body was cut short by the kill, where S3 refuses it (its
Content-Length and x-amz-content-sha256 do not match). A segment or snapshot
cut that way is a truncated or empty object on the replica, and restores
fail on it until the replicator, restarted, uploads that segment again or a
newer snapshot. Those restores are counted and printed, not hidden: any
other failure fails the test, and every other restore is still checked
against the ledger.
"""
import os
import time

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, file_url, replicator, write_config, write_s3_config, write, start_writer,
    check_log, digest, integrity, restore, restore_cfg, wait_replicated, wait_restorable)
from test_replicate_crash import kill_delay, seeded

KILLS = int(os.environ.get("LITESAFE_CRASH_KILLS", "12"))
BUSY = {"snapshot-interval": "2s", "retention": "4s", "retention-check-interval": "1s",
        "sync-interval": "0"}


@pytest.fixture
def s3keys(servers, monkeypatch):
    monkeypatch.setenv("LITESAFE_ACCESS_KEY_ID", servers["LS_TEST_S3_ACCESS_KEY"])
    monkeypatch.setenv("LITESAFE_SECRET_ACCESS_KEY", servers["LS_TEST_S3_SECRET_KEY"])
    return servers


def replica_for(backend, tmp_path, db, request):
    """(config path, restore(tag, expect_ok) -> (path, result))."""
    if backend == "file":
        rep = tmp_path / "rep"
        cfg = write_config(tmp_path / "ls.yml", db, rep,
                           db_keys={"min-checkpoint-page-count": 100}, replica_keys=BUSY)

        def rest(stem, expect_ok=True):
            return restore(tmp_path, file_url(rep), stem=stem, expect_ok=expect_ok)
        return cfg, rest
    env = request.getfixturevalue("s3keys")
    prefix = "crash/%d-%d" % (os.getpid(), int(time.time() * 1000))
    cfg = write_s3_config(tmp_path / "ls.yml", db, env, prefix, keys=False, extra=BUSY)
    with open(cfg, "a") as f:  # a db key, after the replica's
        f.write("    min-checkpoint-page-count: 100\n")

    def rest(stem, expect_ok=True):
        return restore_cfg("litesafe", tmp_path, cfg, db, expect_ok=expect_ok)
    return cfg, rest


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_kill9_replicator_at_many_points(tmp_path, backend, request):
    rng = seeded()
    db, prog, stop = tmp_path / "src.db", tmp_path / "progress", tmp_path / "stop-writer"
    write(db, prog, txns=20, seed=1)
    cfg, rest = replica_for(backend, tmp_path, db, request)
    # 64 KiB big rows (a transaction of many frames; 1 MiB ones grew the
    # database to 1 GiB within tens of kills) and kill_delay's long delays.
    w = start_writer(tmp_path, db, prog, stop_file=stop, sleep=0.004, big_every=50,
                     big_bytes=1 << 16, rows="1:8", checkpoint_every=300, seed=2)

    seen = []  # (rows, ck) of every restore after a kill
    failed_restores = 0
    cut_snapshots = []  # restores that met an object s3rver kept cut short (see above)
    for i in range(KILLS):
        r = replicator(tmp_path, "-config", cfg, level="info")
        time.sleep(kill_delay(rng))
        assert r.alive(), "replicator died by itself:\n%s" % r.tail()
        r.kill9()
        assert w.alive(), w.tail()
        out, res = rest("after-kill-%d" % i, expect_ok=False)
        if res.rc != 0:
            if backend == "s3" and ("truncated LZ4 frame" in res.err or
                                    "empty LZ4 stream" in res.err):
                cut_snapshots.append(res.err.strip())
                continue
            # Nothing restorable yet is the only excuse, and only before the
            # first snapshot: once a restore succeeded, every later one must.
            # A slow build (ASan) can be killed before that first snapshot
            # more than once.
            assert not seen and not cut_snapshots, res
            assert "no matching backup found" in res.err, res
            failed_restores += 1
            continue
        assert integrity(out) == "ok"
        st = check_log(out)  # whole transactions, an unbroken running checksum
        seen.append((st.rows, st.ck))
        os.unlink(out)

    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"source open", timeout=60)
    stop.write_text("")
    assert w.wait(120) == 0, w.tail()
    src_digest = digest(db)
    if backend == "file":
        wait_replicated(tmp_path, file_url(tmp_path / "rep"), src_digest, timeout=180)
    else:
        os.unlink(wait_restorable("litesafe", tmp_path, cfg, db, src_digest, timeout=180))
    assert r.stop() == 0, r.tail()

    src = check_log(db, want_cks=True)
    for rows, ck in seen:  # every restore was a state the source really had
        assert rows == 0 or src.cks.get(rows) == ck, "restore of %d rows: not a source state" % rows
    out, _ = rest("final")
    assert integrity(out) == "ok"
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == src_digest
    print("backend=%s kills=%d restores checked=%d before the first snapshot=%d rows=%s" %
          (backend, KILLS, len(seen), failed_restores, [s[0] for s in seen]))
    print("restores that met an object cut short by the kill (s3rver): %d %s" %
          (len(cut_snapshots), cut_snapshots[:3]))
    assert len(seen) >= KILLS // 4, "too few restores checked: %d" % len(seen)
