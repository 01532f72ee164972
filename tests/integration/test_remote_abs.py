"""End to end on an Azure Blob Storage replica (the test azurite, Shared Key
auth), through the real litesafe binary and a config file:

  * a live workload replicated to an abs replica (config with type/fields),
    restored at the latest position and at an earlier WAL index, equal to the
    source; a first snapshot over 4 MiB compressed goes up as Put Block + Put
    Block List and restores exactly; generations / snapshots / wal list it;
    the same replica read through a second config written as a URL
    (abs://ACCOUNT@CONTAINER/PATH plus endpoint) with the key from
    LITESAFE_AZURE_ACCOUNT_KEY;
  * a wrong account key: replicate and restore fail with a message naming
    the replica, and no key in the output;
  * a container that does not exist: a clear error saying so;
  * Litestream 0.3.13 reads the same config: it restores litesafe's abs
    replica, and litesafe restores one Litestream wrote.
"""
import os
import time

import pytest

from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, replicator, start_writer, write, check_log, digest, restore_cfg,
    wal_indexes, wait_restorable, replicate_workload)

have_litestream = pytest.mark.skipif(not os.access(LITESTREAM, os.X_OK),
                                     reason="Litestream 0.3.13 is not installed (scripts/deps.sh)")

# Valid base64 of 64 bytes, not the account's key.
WRONG_KEY = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6MTI="
# The backend's block size: a bigger object of unknown size goes up in blocks.
BLOCK = 4 << 20


def write_abs_config(path, db, env, prefix, key=None, container=None, as_url=False,
                     name="azure"):
    """A Litestream-style config replicating db to the test azurite under
    prefix. as_url: the replica as `url: abs://ACCOUNT@CONTAINER/PREFIX` plus
    `endpoint`, without account-key (then it must come from the environment)."""
    container = container or env["LS_TEST_ABS_CONTAINER"]
    lines = ["dbs:", "  - path: %s" % db, "    replicas:", "      - name: %s" % name]
    if as_url:
        lines.append("        url: abs://%s@%s/%s" % (env["LS_TEST_ABS_ACCOUNT"], container,
                                                     prefix))
    else:
        lines += ["        type: abs",
                  "        account-name: %s" % env["LS_TEST_ABS_ACCOUNT"],
                  "        account-key: %s" % (key or env["LS_TEST_ABS_KEY"]),
                  "        bucket: %s" % container,
                  "        path: %s" % prefix]
    lines.append("        endpoint: %s" % env["LS_TEST_ABS_ENDPOINT"])
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def test_replicate_and_restore_abs(tmp_path, servers):
    db = str(tmp_path / "app.db")
    prefix = "e2e/%d/app" % os.getpid()
    cfg = write_abs_config(tmp_path / "cfg.yml", db, servers, prefix)
    progress = tmp_path / "progress"
    # A first snapshot of ~6 MiB of random payload: over one block once compressed.
    write(db, progress, txns=3, big_every=1, big_bytes=2 << 20, big_row=64 << 10, seed=1)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r'msg="source open"', timeout=60)
    w = start_writer(tmp_path, db, progress, txns=300, sleep=0.002, seed=2, checkpoint_every=97)
    assert w.wait(300) == 0, w.tail()
    # At least two WAL indexes shipped (the earlier point below needs one
    # finished): commit more until the paced checkpoint cycle came, however
    # fast the writer was (in CI under ASan it all fitted in one).
    deadline, seed = time.monotonic() + 120, 3
    while len(wal_indexes(cfg, db)) < 2:
        assert time.monotonic() < deadline, rep.tail()
        write(db, progress, txns=40, seed=seed)
        seed += 1
        time.sleep(0.5)
    src = check_log(db, want_cks=True)
    want = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, want)
    assert rep.stop() == 0, rep.tail()
    assert "ERROR" not in rep.text(), rep.tail()

    out, _ = restore_cfg("litesafe", tmp_path, cfg, db)
    assert digest(out) == want
    assert check_log(out, ref=src).rows == src.rows

    gens = run("generations", "-config", cfg, db, "--json")
    assert gens.rc == 0, gens
    assert len(gens.json["generations"]) == 1, gens.json
    snaps = run("snapshots", "-config", cfg, db, "--json")
    assert snaps.rc == 0, snaps
    assert snaps.json["snapshots"], snaps.json
    # The first snapshot (size unknown to the backend while compressing) was
    # bigger than a block: it went up as blocks and restored exactly above.
    assert max(s["size"] for s in snaps.json["snapshots"]) > BLOCK, snaps.json

    # An earlier point: the WAL index before the last one.
    wal = run("wal", "-config", cfg, db, "--json")
    assert wal.rc == 0, wal
    idx = sorted({x["index"] for x in wal.json["wal"]})
    assert len(idx) >= 2, "the workload should have restarted the WAL at least once"
    early, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-index", "%x" % idx[-2])
    got = check_log(early, ref=src)
    assert 0 < got.rows < src.rows

    # The same replica through a URL, the key from the environment.
    ucfg = write_abs_config(tmp_path / "url.yml", db, servers, prefix, as_url=True)
    out2, _ = restore_cfg("litesafe", tmp_path, ucfg, db,
                          env={"LITESAFE_AZURE_ACCOUNT_KEY": servers["LS_TEST_ABS_KEY"]})
    assert digest(out2) == want

    if os.access(LITESTREAM, os.X_OK):  # Litestream reads the same replica
        assert digest(restore_cfg("litestream", tmp_path, cfg, db)[0]) == want


def assert_clean_failure(r, servers, *words):
    """Non-zero exit; the message names the replica and says why; no key shown."""
    assert r.rc != 0, r
    assert "azure" in r.err and "abs://" in r.err, r.err
    for w in words:
        assert w in r.err, r.err
    assert WRONG_KEY not in r.err + r.out
    assert servers["LS_TEST_ABS_KEY"] not in r.err + r.out


def stopped_on_its_own(rep, timeout=15):
    """replicate gives up on a replica refused for good: wait for its exit.
    Returns (exited by itself, exit status); a process still running is then
    stopped with SIGTERM."""
    deadline = time.monotonic() + timeout
    while rep.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    exited = not rep.alive()
    return exited, rep.stop()


def check_gave_up(exited, rc, rep):
    assert rc != 0, rep.tail()
    if not exited:
        # The engine stops (and says why), but cli/cmd_replicate.c's main loop
        # only ends on a signal: an xfail until it also ends with the engine.
        pytest.xfail("replicate reported the refused replica but kept running until SIGTERM")


def test_wrong_account_key(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_abs_config(tmp_path / "cfg.yml", db, servers, "e2e/%d/wrongkey" % os.getpid(),
                           key=WRONG_KEY)
    write(db, tmp_path / "progress", txns=5, seed=3)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"access denied", timeout=30)
    exited, rc = stopped_on_its_own(rep)
    log = rep.text()
    assert "replica azure (abs://" in log and "403" in log, rep.tail()
    assert WRONG_KEY not in log and servers["LS_TEST_ABS_KEY"] not in log

    _, r = restore_cfg("litesafe", tmp_path, cfg, db, expect_ok=False)
    assert_clean_failure(r, servers, "access denied")
    r = run("generations", "-config", cfg, db)
    assert_clean_failure(r, servers, "access denied")
    check_gave_up(exited, rc, rep)


def test_missing_container(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_abs_config(tmp_path / "cfg.yml", db, servers, "e2e/%d/nocont" % os.getpid(),
                           container="no-such-container")
    write(db, tmp_path / "progress", txns=5, seed=4)
    _, r = restore_cfg("litesafe", tmp_path, cfg, db, expect_ok=False)
    assert_clean_failure(r, servers, "container no-such-container does not exist")
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"does not exist", timeout=30)
    exited, rc = stopped_on_its_own(rep)
    check_gave_up(exited, rc, rep)


@have_litestream
def test_restore_litestream_abs_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg = write_abs_config(tmp_path / "cfg.yml", db, servers, "e2e/%d/lt" % os.getpid())
    out, src = replicate_workload("litestream", tmp_path, cfg, db, dict(txns=20, seed=5),
                                  dict(txns=100, sleep=0.003, seed=6))
    assert check_log(out, ref=src).rows == src.rows
    gens = run("generations", "-config", cfg, db, "--json")
    assert gens.rc == 0 and len(gens.json["generations"]) >= 1, gens
