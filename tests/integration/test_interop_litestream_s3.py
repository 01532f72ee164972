"""Interoperability with Litestream 0.3.13 on an S3 replica (the test
s3rver), in both directions, with one config file both tools read:

  * litesafe replicates a live workload; Litestream restores it, at the
    latest position and at an earlier WAL index, and both equal litesafe's
    own restores and the source;
  * Litestream replicates; litesafe restores, and equals the source and
    Litestream's own restore; litesafe lists Litestream's generations.
"""
import os
import signal
import subprocess
import time

import pytest

from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, replicator, litestream_replicator, start_writer, write,
    write_s3_config, check_log, digest, fresh)

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="Litestream 0.3.13 is not installed at %s (run "
                                       "scripts/deps.sh)" % LITESTREAM)


def restore_with(tool, tmp, cfg, db, *opts):
    out = fresh(tmp, "%s-restored" % tool)
    if tool == "litesafe":
        r = run("restore", "-config", cfg, "-o", out, *opts, db, timeout=300)
        return out, r.rc, r.err
    p = subprocess.run([LITESTREAM, "restore", "-config", cfg, "-o", out] + list(opts) + [db],
                       capture_output=True, text=True, timeout=300)
    return out, p.returncode, p.stderr


def wait_restorable(tool, tmp, cfg, db, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        out, rc, err = restore_with(tool, tmp, cfg, db)
        if rc == 0 and digest(out) == want:
            return out
        if os.path.exists(out):
            os.unlink(out)
        if time.monotonic() > deadline:
            raise AssertionError("%s never restored the source's state: rc=%d %s"
                                 % (tool, rc, err))
        time.sleep(0.5)


def test_litestream_restores_litesafe_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, servers, "interop/%d/ls" % os.getpid())
    progress = tmp_path / "progress"
    write(db, progress, txns=50, seed=1)
    rep = replicator(tmp_path, "-config", cfg)
    w = start_writer(tmp_path, db, progress, txns=400, sleep=0.002, seed=2,
                     checkpoint_every=97)
    assert w.wait(300) == 0, w.tail()
    src = check_log(db, want_cks=True)
    want = digest(db)
    mine = wait_restorable("litesafe", tmp_path, cfg, db, want)
    assert rep.stop() == 0, rep.tail()

    theirs, rc, err = restore_with("litestream", tmp_path, cfg, db)
    assert rc == 0, err
    assert digest(theirs) == digest(mine) == want

    # An earlier point: the end of the WAL index before the last one.
    wal = run("wal", "-config", cfg, db, "--json")
    assert wal.rc == 0, wal
    idx = sorted({x["index"] for x in wal.json["wal"]})
    assert len(idx) >= 2, "the workload should have restarted the WAL at least once"
    at = "%x" % idx[-2]
    a, rc, err = restore_with("litestream", tmp_path, cfg, db, "-index", at)
    assert rc == 0, err
    b, rc, err = restore_with("litesafe", tmp_path, cfg, db, "-index", at)
    assert rc == 0, err
    assert digest(a) == digest(b)
    got = check_log(a, ref=src)
    assert 0 < got.rows < src.rows


def test_litesafe_restores_litestream_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, servers, "interop/%d/lt" % os.getpid())
    progress = tmp_path / "progress"
    write(db, progress, txns=30, seed=3)
    lt = litestream_replicator(tmp_path, "-config", cfg)
    w = start_writer(tmp_path, db, progress, txns=300, sleep=0.003, seed=4)
    assert w.wait(300) == 0, w.tail()
    src = check_log(db, want_cks=True)
    # Litestream syncs once a second; it also writes its own tables.
    deadline = time.monotonic() + 60
    while True:
        want = digest(db)
        mine, rc, err = restore_with("litesafe", tmp_path, cfg, db)
        if rc == 0 and digest(mine) == want:
            break
        assert time.monotonic() < deadline, "litesafe never restored Litestream's replica: " + err
        time.sleep(1)
    lt.signal(signal.SIGTERM)
    lt.wait(60)
    theirs, rc, err = restore_with("litestream", tmp_path, cfg, db)
    assert rc == 0, err
    assert digest(theirs) == digest(mine)
    assert check_log(mine, ref=src).rows == src.rows
    gens = run("generations", "-config", cfg, db, "--json")
    assert gens.rc == 0 and len(gens.json["generations"]) >= 1, gens
