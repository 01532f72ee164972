"""Interoperability with Litestream 0.3.13 on an S3 replica (the test
s3rver), in both directions, with one config file both tools read:

  * litesafe replicates a live workload; Litestream restores it, at the
    latest position and at an earlier WAL index, and both equal litesafe's
    own restores and the source;
  * Litestream replicates; litesafe restores, and equals the source and
    Litestream's own restore; litesafe lists Litestream's generations.
"""
import os

import pytest

from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, write_s3_config, check_log, digest, restore_cfg, replicate_workload)

pytestmark = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                reason="Litestream 0.3.13 is not installed at %s (run "
                                       "scripts/deps.sh)" % LITESTREAM)


def test_litestream_restores_litesafe_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, servers, "interop/%d/ls" % os.getpid())
    mine, src = replicate_workload("litesafe", tmp_path, cfg, db, dict(txns=50, seed=1),
                                   dict(txns=400, sleep=0.002, seed=2, checkpoint_every=97),
                                   min_indexes=2)
    want = digest(db)
    theirs, _ = restore_cfg("litestream", tmp_path, cfg, db)
    assert digest(theirs) == digest(mine) == want

    # An earlier point: the end of the WAL index before the last one.
    wal = run("wal", "-config", cfg, db, "--json")
    assert wal.rc == 0, wal
    idx = sorted({x["index"] for x in wal.json["wal"]})
    assert len(idx) >= 2, "the workload should have restarted the WAL at least once"
    at = "%x" % idx[-2]
    a, _ = restore_cfg("litestream", tmp_path, cfg, db, "-index", at)
    b, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-index", at)
    assert digest(a) == digest(b)
    got = check_log(a, ref=src)
    assert 0 < got.rows < src.rows


def test_litesafe_restores_litestream_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, servers, "interop/%d/lt" % os.getpid())
    mine, src = replicate_workload("litestream", tmp_path, cfg, db, dict(txns=30, seed=3),
                                   dict(txns=300, sleep=0.003, seed=4))
    theirs, _ = restore_cfg("litestream", tmp_path, cfg, db)
    assert digest(theirs) == digest(mine)
    assert check_log(mine, ref=src).rows == src.rows
    gens = run("generations", "-config", cfg, db, "--json")
    assert gens.rc == 0 and len(gens.json["generations"]) >= 1, gens
