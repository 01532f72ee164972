"""End to end on an S3 replica (the test s3rver, SigV4 signatures checked),
through the real litesafe binary:

  * a live workload replicated through a config file (type: s3, endpoint,
    force-path-style, keys), restored at the latest position (equal to the
    source), at a timestamp taken while the replica held an earlier state
    (equal to that state) and at an earlier WAL index (a clean prefix);
    generations / snapshots / wal list it, through the config and through
    the URL s3://BUCKET.localhost:PORT/PATH with the keys from
    LITESAFE_ACCESS_KEY_ID / LITESAFE_SECRET_ACCESS_KEY;
  * a ~20 MiB database of random bytes: its snapshot goes up as a multipart
    upload (parts of 8 MiB) and restores exactly; keys from the environment;
  * a wrong secret: one-shot commands exit non-zero, naming the replica and
    saying the credentials or signature were refused; replicate stays up and
    logs it once; the secret is never printed;
  * a bucket that does not exist: a clear error saying so.
"""
import os
import time

import pytest

from conftest import run, integrity
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_writer, write, check_log, digest, fresh, rfc3339, restore_cfg,
    wait_restorable, listing, stop_ok, write_s3_config)

PART = 8 << 20  # the backend's part size: bigger objects go up as multipart uploads


def s3_url(env, prefix):
    """The replica as a URL: a BUCKET.localhost host means path style on http://localhost:PORT."""
    port = env["LS_TEST_S3_ENDPOINT"].rsplit(":", 1)[1]
    return "s3://%s.localhost:%s/%s" % (env["LS_TEST_S3_BUCKET"], port, prefix)


@pytest.fixture
def s3env(servers, monkeypatch):
    """The server settings, with the keys also in LITESAFE_* (inherited by every litesafe run)."""
    monkeypatch.setenv("LITESAFE_ACCESS_KEY_ID", servers["LS_TEST_S3_ACCESS_KEY"])
    monkeypatch.setenv("LITESAFE_SECRET_ACCESS_KEY", servers["LS_TEST_S3_SECRET_KEY"])
    return servers


def unique_prefix(stem):
    return "e2e-s3/%d-%d/%s" % (os.getpid(), int(time.time() * 1000), stem)


def test_replicate_live_workload_and_restore(tmp_path, s3env):
    db = str(tmp_path / "app.db")
    prefix = unique_prefix("app")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, s3env, prefix, name="s3")
    progress = tmp_path / "progress"
    write(db, progress, txns=20, seed=1)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)

    # A state the replica is seen to hold, and an instant while it holds it.
    write(db, progress, txns=60, seed=2)
    d1 = digest(db)
    os.unlink(wait_restorable("litesafe", tmp_path, cfg, db, d1))
    t1 = time.time()
    time.sleep(1.2)  # s3rver's LastModified has whole seconds: later uploads get a later one

    # A live workload with checkpoints (new WAL indexes), restored while it runs.
    w = start_writer(tmp_path, db, progress, txns=250, sleep=0.003, seed=3, checkpoint_every=60,
                     big_every=80, big_bytes=1 << 20)
    live = None
    while w.alive():
        time.sleep(0.5)
        if live is None:
            out = fresh(tmp_path, "live")
            r = run("restore", "-o", out, s3_url(s3env, prefix), timeout=120)
            assert r.rc == 0, "restore during replication failed: %r" % r
            live = out
    assert w.wait() == 0, w.tail()
    src_digest = digest(db)
    latest = wait_restorable("litesafe", tmp_path, cfg, db, src_digest)
    stop_ok(rep)

    assert integrity(db) == "ok"
    src = check_log(db, want_cks=True)
    assert integrity(latest) == "ok"
    assert check_log(latest, ref=src).rows == src.rows
    assert check_log(live, ref=src).rows <= src.rows

    # Point in time: the state at t1.
    at_t1, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-timestamp", rfc3339(t1))
    assert digest(at_t1) == d1

    # Listings, through the config and through the URL (keys from the environment).
    url = s3_url(s3env, prefix)
    gens = listing("generations", "-config", cfg, db)
    assert [g["generation"] for g in gens] == [g["generation"] for g in listing("generations", url)]
    assert len(gens) == 1 and gens[0]["name"] == "s3", gens
    gen = gens[0]["generation"]
    snaps = listing("snapshots", url)
    assert snaps and all(s["generation"] == gen for s in snaps), snaps
    wal = listing("wal", "-config", cfg, db)
    assert wal == listing("wal", url)
    indexes = sorted({s["index"] for s in wal})
    assert len(indexes) >= 2, "the checkpoints made no new WAL index: %s" % wal

    # An earlier WAL index: a clean prefix of the source, short of its end.
    out, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-index", str(indexes[0]))
    assert integrity(out) == "ok"
    assert check_log(out, ref=src).rows < src.rows

    # Latest through the URL.
    out, _ = restore_cfg("litesafe", tmp_path, cfg, db)
    assert digest(out) == src_digest
    out = fresh(tmp_path, "url")
    r = run("restore", "-o", out, url, timeout=120)
    assert r.rc == 0, r
    assert digest(out) == src_digest


def test_multipart_snapshot_env_credentials(tmp_path, s3env):
    db = str(tmp_path / "big.db")
    prefix = unique_prefix("big")
    cfg = write_s3_config(tmp_path / "cfg.yml", db, s3env, prefix, name="s3", keys=False)
    progress = tmp_path / "progress"
    # ~20 MiB of random rows: the compressed snapshot stays above two parts.
    write(db, progress, txns=10, big_every=1, big_bytes=2 << 20, big_row=64 << 10, seed=7)
    want = digest(db)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=90)
    latest = wait_restorable("litesafe", tmp_path, cfg, db, want, timeout=90)
    stop_ok(rep)
    snaps = listing("snapshots", "-config", cfg, db)
    assert max(s["size"] for s in snaps) > 2 * PART, snaps
    assert integrity(latest) == "ok"
    assert check_log(latest, ref=check_log(db, want_cks=True)).rows == check_log(db).rows


def test_wrong_secret_is_refused_without_printing_it(tmp_path, s3env):
    db = str(tmp_path / "app.db")
    secret = "Wr0ngSecret-%d-xyzzy" % os.getpid()
    write(db, tmp_path / "progress", txns=5, seed=1)
    cfg = write_s3_config(tmp_path / "cfg.yml", db, s3env, unique_prefix("bad"), name="s3-bad",
                    secret=secret)
    for argv in (["generations", "-config", cfg, db],
                 ["restore", "-config", cfg, "-o", fresh(tmp_path, "nope"), db]):
        r = run(*argv, timeout=120)
        assert r.rc != 0, r
        assert "replica s3-bad" in r.err, r.err
        assert "refused the credentials or signature" in r.err, r.err
        assert "SignatureDoesNotMatch" in r.err, r.err
        assert secret not in r.err and secret not in r.out

    # replicate stays up (keys get rotated), logs the refusal once, never the
    # secret, and its stop says the replica holds nothing (exit 1).
    rep = replicator(tmp_path, "-config", cfg, level="info")
    rep.wait_log(r"SignatureDoesNotMatch", timeout=60)
    time.sleep(3)
    assert rep.alive(), rep.tail()
    text = rep.text()
    assert secret not in text
    assert "replica=s3-bad" in text and text.count("SignatureDoesNotMatch") == 1, text
    assert rep.stop() == 1
    assert "replica s3-bad of %s holds nothing-restorable" % db in rep.tail(3), rep.tail()
    assert secret not in rep.text()


def test_missing_bucket(tmp_path, s3env):
    db = str(tmp_path / "app.db")
    write(db, tmp_path / "progress", txns=3, seed=1)
    bucket = "no-such-bucket-%d" % os.getpid()
    cfg = write_s3_config(tmp_path / "cfg.yml", db, s3env, "x", name="s3", bucket=bucket)
    r = run("generations", "-config", cfg, db, timeout=120)
    assert r.rc != 0, r
    assert "replica s3" in r.err and "bucket %s does not exist" % bucket in r.err, r.err
