"""An S3 replica whose server goes away while the application writes.

A private s3rver (not the shared fixture's, which other tests use) is killed
with SIGKILL mid-replication and kept down for LS_OUTAGE_SECONDS (30 by
default) while the writer keeps committing, then restarted on the same port
with the same data. What must hold:

  * the application never blocks: every commit during the outage finishes
    in well under a second of SQLite work (the bound below is loose, 3 s, so
    that only a real stall trips it), and it keeps committing throughout;
  * the WAL stays bounded (litesafe keeps restarting it: committed frames
    wait in the local spool, not in the WAL);
  * the replicator notices (it logs failed syncs) and does not exit;
  * the database's other replica (a local directory) keeps shipping all
    through the outage: a replica that is down holds up no other;
  * after the server returns the replica catches up by itself, and a restore
    equals the source exactly, with nothing lost or torn;
  * a clean stop afterwards exits 0.

And a restore of hundreds of segments survives the server being killed and
restarted under it.
"""
import os
import signal
import sqlite3
import time

import s3_server

from conftest import BIN, run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_writer, start_proc, write, read_progress, write_s3_config,
    check_log, digest, restore_cfg, file_url)

OUTAGE = float(os.environ.get("LS_OUTAGE_SECONDS", "30"))


def test_server_killed_for_a_while(tmp_path):
    srv = s3_server.start(str(tmp_path / "s3"))
    try:
        env = srv["env"]
        db = str(tmp_path / "app.db")
        sqlite3.connect(db).execute("PRAGMA journal_mode=wal").fetchall()
        cfg = write_s3_config(tmp_path / "ls.yml", db, env, "outage/app", name="s3")
        with open(cfg, "a") as f:
            f.write("      - name: local\n        url: %s\n" % file_url(tmp_path / "local"))
        rep = replicator(tmp_path, "-config", cfg)
        stop_file = str(tmp_path / "stop")
        progress = str(tmp_path / "progress")
        w = start_writer(tmp_path, db, progress, stop_file=stop_file, sleep=0.005,
                         payload="200:4000", seed=7)
        time.sleep(3)

        # The outage: SIGKILL, like a crashed server or a cut network.
        for pid in srv["pids"]:
            os.killpg(pid, signal.SIGKILL)
        s3_server.stop(srv)
        t_down = time.time()
        wal_max = 0
        local_checked = False
        while time.time() - t_down < OUTAGE:
            if not local_checked and time.time() - t_down > OUTAGE / 2:
                # What was committed a second ago is on the local replica.
                t = time.time() - 1.0
                want = max(c[1] for c in read_progress(progress).commits if c[3] <= t)
                out, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-replica", "local")
                got = check_log(out).rows
                assert got >= want, "the local replica stalled with S3: %d < %d rows" % (
                    got, want)
                local_checked = True
            try:
                wal_max = max(wal_max, os.path.getsize(db + "-wal"))
            except FileNotFoundError:
                pass
            assert rep.alive(), "the replicator exited during the outage:\n" + rep.tail()
            time.sleep(0.25)
        t_up = time.time()
        srv = s3_server.start(str(tmp_path / "s3"), port=srv["port"])
        time.sleep(2)
        open(stop_file, "w").close()
        assert w.wait(60) == 0, w.tail()

        pr = read_progress(progress)
        during = [c for c in pr.commits if t_down <= c[2] and c[3] <= t_up]
        assert len(during) > 100, "the writer hardly committed while S3 was down: %d" % len(during)
        slowest = max(c[3] - c[2] for c in pr.commits)
        assert slowest < 3.0, "a commit took %.2f s: the application was blocked" % slowest
        gaps = [b[2] - a[3] for a, b in zip(during, during[1:])]
        assert max(gaps) < 3.0, "the writer stalled %.2f s between commits" % max(gaps)
        assert wal_max < 64 << 20, "the WAL grew to %d bytes during the outage" % wal_max

        src = check_log(db, want_cks=True)
        want, deadline = digest(db), time.monotonic() + 90
        while True:  # the S3 replica itself, not whichever replica is newest
            out, r = restore_cfg("litesafe", tmp_path, cfg, db, "-replica", "s3",
                                 expect_ok=False)
            if r.rc == 0 and digest(out) == want:
                break
            assert time.monotonic() < deadline, "S3 never caught up: %s" % (r.err or "differs")
            time.sleep(0.5)
        got = check_log(out, ref=src)
        assert got.rows == src.rows

        rep.signal(signal.SIGTERM)
        assert rep.wait(60) == 0, rep.tail()
        log = rep.text()
        assert "replica sync failed" in log, "the outage went unnoticed?\n" + log[-3000:]
        assert env["LS_TEST_S3_SECRET_KEY"] not in log, "a credential is in the log"
    finally:
        s3_server.stop(srv)


def test_restore_survives_server_restart(tmp_path):
    """A restore of hundreds of segments while the S3 server is killed and
    restarted under it: failed GETs are retried (a cut download resumes
    where it stopped), and the result equals the source."""
    srv = s3_server.start(str(tmp_path / "s3"))
    try:
        db = str(tmp_path / "app.db")
        progress = str(tmp_path / "progress")
        # one segment per commit (sync-interval 0), for hundreds of objects
        cfg = write_s3_config(tmp_path / "ls.yml", db, srv["env"], "restart/app",
                              extra={"sync-interval": "0s"})
        write(db, progress, txns=200, payload="20000:60000", seed=21)  # a ~8 MiB snapshot
        rep = replicator(tmp_path, "-config", cfg, level="info")
        rep.wait_log("snapshot written", timeout=60)
        write(db, progress, txns=500, sleep=0.012, payload="2000:8000", seed=22)
        src = check_log(db, want_cks=True)
        time.sleep(1.0)
        assert rep.stop() == 0, rep.tail()
        assert len(run("wal", "-config", cfg, db, "--json").json["wal"]) >= 300

        out = str(tmp_path / "restored.db")
        p = start_proc([BIN, "restore", "-parallelism", "4", "-config", cfg, "-o", out, db],
                       str(tmp_path / "restore.log"))
        time.sleep(0.3)
        assert p.alive(), "the restore finished before the server went away:\n" + p.tail()
        for pid in srv["pids"]:
            os.killpg(pid, signal.SIGKILL)
        s3_server.stop(srv)
        time.sleep(0.5)
        srv = s3_server.start(str(tmp_path / "s3"), port=srv["port"])
        assert p.wait(120) == 0, p.tail()
        assert "retrying" in p.text(), "no retry was needed?\n" + p.tail()
        assert digest(out) == digest(db)
        assert check_log(out, ref=src).rows == src.rows
    finally:
        s3_server.stop(srv)
