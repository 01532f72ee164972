"""Power cuts of the spool and of a file replica.

`litesafe replicate` runs with the power-cut shim preloaded
(tests/powercut/powercut.c: it records what each fsync makes durable in the
spool and the replica directory), is killed with SIGKILL after a random
delay, and then tests/powercut/powercut.py rebuilds both directories as a
power cut at that moment would leave them: a file holds what it held at its
last fsync (nothing if never synced), a directory the entries it had at its
last fsync (so an unsynced create is gone, an unsynced rename or unlink
undone). The replica is then restored, and the result must be a state the
source really had (the writer's ledger: a prefix of whole transactions with
the source's running checksum at that row count) and hold at least what a
`litesafe sync -wait` that returned before the cut reported stored; the
replicator restarts on what is left. At the end a clean run must bring the replica to the source
itself. The database and its WAL are not cut: the application's disk
survives, the spool's and the replica's do not.

The replica's settings keep every activity busy (as in
test_crash_consistency: a snapshot every 2 s, retention of 4 s, a checkpoint
cycle every 100 pages, one upload per commit, compaction after 1 s).

Cuts: LITESAFE_POWERCUT_KILLS (default 8, what CI runs; `make powercut`
runs more). The seed is printed and LITESAFE_TEST_SEED replays a run. The
shim is LS_POWERCUT_LIB (set by ctest); without it the test is skipped.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, file_url, replicator, write_config, write, start_writer, read_progress, check_log,
    digest, integrity, restore, run, wait_replicated)
from test_replicate_crash import kill_delay, seeded

KILLS = int(os.environ.get("LITESAFE_POWERCUT_KILLS", "8"))
LIB = os.environ.get("LS_POWERCUT_LIB", "")
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "powercut", "powercut.py")
BUSY = {"snapshot-interval": "2s", "retention": "4s", "retention-check-interval": "1s",
        "sync-interval": "0", "compact-after": "1s", "compact-interval": "1s"}


def powercut(cmd, state, *roots):
    """powercut.py arm|cut STATE ROOTS...; cut returns what it dropped."""
    p = subprocess.run([sys.executable, TOOL, cmd, str(state)] + [str(r) for r in roots],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "powercut.py %s failed:\n%s%s" % (cmd, p.stdout, p.stderr)
    return json.loads(p.stdout) if cmd == "cut" else None


@pytest.mark.skipif(not LIB or not os.path.exists(LIB),
                    reason="LS_POWERCUT_LIB (the shim tests/powercut builds) is not set")
def test_power_cut_of_spool_and_file_replica(tmp_path):
    rng = seeded()
    db, prog, stop = tmp_path / "src.db", tmp_path / "progress", tmp_path / "stop-writer"
    rep, spool, state = tmp_path / "rep", tmp_path / ".src.db-litesafe", tmp_path / "powercut"
    write(db, prog, txns=20, seed=1)
    cfg = write_config(tmp_path / "ls.yml", db, rep,
                       db_keys={"min-checkpoint-page-count": 100}, replica_keys=BUSY)
    with open(cfg, "a") as f:  # its own control socket: sync -wait must ask this replicator
        f.write("socket:\n  path: %s\n" % (tmp_path / "control.sock"))
    rep.mkdir()
    spool.mkdir()  # the spool's default place (meta-path)
    powercut("arm", state, spool, rep)
    env = {"LD_PRELOAD": LIB, "LS_POWERCUT_DIRS": "%s:%s" % (spool, rep),
           "LS_POWERCUT_STATE": str(state),
           # an ASan build: the preloaded shim comes before the sanitizer's runtime
           "ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                  "verify_asan_link_order=0"]))}
    # 64 KiB big rows (16 pages, a transaction of many frames), a writer at
    # about 50 transactions a second, and kill_delay's long delays: with 1 MiB
    # rows, 200 a second and delays of at most 1.5 s the database passed 1 GiB
    # within 25 cuts, and from then on every start was cut inside its snapshot
    # (due every 2 s): the replica stood still. (64 KiB rows alone: 1.4 GiB
    # by the 60th cut; with the long delays too: 2.2 GiB, still by the 70th.)
    w = start_writer(tmp_path, db, prog, stop_file=stop, sleep=0.02, big_every=50,
                     big_bytes=1 << 16, rows="1:8", checkpoint_every=300, seed=2)

    seen = []  # (rows, ck) of every restore after a cut
    failed_restores = 0
    dropped = {}
    spool_gone = 0  # restarts that found no spool generation at all
    promised = 0  # rounds where `sync -wait` returned before the cut
    for i in range(KILLS):
        r = replicator(tmp_path, "-config", cfg, level="info", env=env)
        t0, t_kill = time.monotonic(), kill_delay(rng)
        floor = 0  # rows `sync -wait` reported stored on the replica
        if rng.random() < 0.7:
            time.sleep(rng.uniform(0, t_kill))
            pr = read_progress(prog)
            before = pr.commits[-1][1] if pr.commits else 0
            if run("sync", "-wait", "-timeout", "1s", "-config", cfg, timeout=30).rc == 0:
                floor = before
                promised += 1
        time.sleep(max(0, t_kill - (time.monotonic() - t0)))
        assert r.alive(), "replicator died by itself:\n%s" % r.tail()
        r.kill9()
        if i > 0 and 'reason="no generation yet"' in r.text():
            spool_gone += 1
        assert w.alive(), w.tail()
        lost = powercut("cut", state, spool, rep)
        for k, v in lost.items():
            dropped[k] = dropped.get(k, 0) + v
        out, res = restore(tmp_path, file_url(rep), stem="after-cut-%d" % i, expect_ok=False)
        if res.rc != 0:
            # Nothing restorable yet is the only excuse, and only before the
            # first successful restore (and before sync -wait said stored).
            assert not seen and not floor, "cut %d (%s): %r" % (i, lost, res)
            assert "no matching backup found" in res.err, res
            failed_restores += 1
            continue
        assert integrity(out) == "ok", "cut %d (%s)" % (i, lost)
        st = check_log(out)  # whole transactions, an unbroken running checksum
        # What sync -wait reported stored survives the cut.
        assert st.rows >= floor, "cut %d (%s): restored %d rows, sync -wait had %d stored" % (
            i, lost, st.rows, floor)
        seen.append((st.rows, st.ck))
        os.unlink(out)

    r = replicator(tmp_path, "-config", cfg)
    r.wait_log(r"source open", timeout=60)
    stop.write_text("")
    assert w.wait(120) == 0, w.tail()
    src_digest = digest(db)
    wait_replicated(tmp_path, file_url(rep), src_digest, timeout=180)
    assert r.stop() == 0, r.tail()

    src = check_log(db, want_cks=True)
    for rows, ck in seen:  # every restore was a state the source really had
        assert rows == 0 or src.cks.get(rows) == ck, "restore of %d rows: not a source state" % rows
    out, _ = restore(tmp_path, file_url(rep), stem="final")
    assert integrity(out) == "ok"
    assert check_log(out, ref=src).rows == src.rows
    assert digest(out) == src_digest
    print("power cuts=%d restores checked=%d before the first snapshot=%d rows=%s" %
          (KILLS, len(seen), failed_restores, [s[0] for s in seen]))
    print("dropped by the cuts (summed): %s" % dropped)
    print("restarts that found no spool generation: %d of %d" % (spool_gone, KILLS - 1))
    print("cuts after a sync -wait that returned: %d" % promised)
    print("database at the end: %.1f MiB" % (os.path.getsize(str(db)) / 1048576.0))
    # The model must have had something to drop, or the shim was not working.
    assert dropped["names_lost"] + dropped["files_resized"] + dropped["files_emptied"] > 0
    assert len(seen) >= KILLS // 4, "too few restores checked: %d" % len(seen)
    # The spool survives a power cut: its generation file, directories and
    # index files are synced, so a restart finds it (and continues it when
    # the WAL still does). A cut in the middle of a generation switch may
    # leave none, rarely; losing it at most restarts is the old bug.
    assert spool_gone <= (KILLS - 1) // 4, "the spool was lost at %d of %d restarts" % (
        spool_gone, KILLS - 1)
