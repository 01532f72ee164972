"""Encrypted replicas (age, issue 10) on file replicas, with the real binary
and Debian's age tools:

  * litesafe replicates with age keys: every object it stores is age
    (Debian's `age -d` then `lz4 -d` turn a snapshot into the database's
    pages and a segment into WAL), and it restores them;
  * what `age -r` encrypted (an unencrypted replica re-encrypted object by
    object with the age tool) restores;
  * wrong identity, no identity, a tampered chunk, a truncated object, a
    plain object where age is expected and an age object where none is:
    exit 1, a message naming the object, no output file;
  * a replica with recipients but no identity (or an identity that is not
    a recipient) replicates across a restart (the newest segment is uploaded
    again, logged; validation is skipped) and restores with the identity;
  * no identity appears in logs, errors, `databases` or `ps`; bad keys are
    config errors (exit 2).
"""
import glob
import os
import subprocess
import time

import pytest

from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, file_url, replicator, write, start_writer, check_log, digest, wait_restorable,
    restore_cfg, stop_ok, replica_files)

AGE = "/usr/bin/age"
KEYGEN = "/usr/bin/age-keygen"

pytestmark = pytest.mark.skipif(not os.access(AGE, os.X_OK),
                                reason="age is not installed (run scripts/deps.sh)")


def keygen(tmp, name):
    """A new identity file from age-keygen: (path, identity line, recipient)."""
    path = str(tmp / ("%s.key" % name))
    subprocess.run([KEYGEN, "-o", path], check=True, capture_output=True)
    ident = [ln for ln in open(path).read().splitlines() if ln.startswith("AGE-SECRET-KEY-1")][0]
    rcpt = subprocess.run([KEYGEN, "-y", path], check=True, capture_output=True,
                          text=True).stdout.strip()
    return path, ident, rcpt


def age_config(path, db, replica_dir, extra=(), **age):
    """A config for db with one file replica (extra: more of its key lines);
    age: its keys (lists by config key)."""
    lines = ["dbs:", "  - path: %s" % db, "    replicas:",
             "      - url: %s" % file_url(replica_dir)]
    lines += ["        %s" % e for e in extra]
    if age:
        lines.append("        age:")
        for k, vs in age.items():
            lines.append("          %s:" % k.replace("_", "-"))
            lines += ["            - %s" % v for v in vs]
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def objects(rep):
    return [os.path.join(str(rep), p) for p in replica_files(rep) if p.endswith(".lz4")]


def opened(rep):
    """rep once it has the database open. A writer's last connection that
    closes before that checkpoints the WAL away, and the replicator then
    rightly begins a new generation from a snapshot, so the segments, the
    positions and the restart a test expects never come (seen under valgrind)."""
    rep.wait_log(r'msg="source open"', timeout=60)
    return rep


def replicate_some(tmp, cfg, db, txns=200, seed=1):
    progress = str(tmp / "progress")
    write(db, progress, txns=30, seed=seed)
    rep = opened(replicator(tmp, "-config", cfg))
    w = start_writer(tmp, db, progress, txns=txns, sleep=0.002, seed=seed + 1,
                     checkpoint_every=67)
    assert w.wait(300) == 0, w.tail()
    return rep


def no_secret(text, *idents):
    for i in idents:
        assert i not in text and i.lower() not in text, "an identity leaked"


def test_encrypted_replica_age_cli_and_restore(tmp_path):
    keyf, ident, rcpt = keygen(tmp_path, "k")
    _, other_ident, other_rcpt = keygen(tmp_path, "other")
    db, rep_dir = str(tmp_path / "app.db"), tmp_path / "replica"
    # identities from a file, two recipients: the identity's and another one
    cfg = age_config(tmp_path / "cfg.yml", db, rep_dir, identity_files=[keyf],
                     recipients=[rcpt, other_rcpt])
    rep = replicate_some(tmp_path, cfg, db)
    src = check_log(db, want_cks=True)
    mine = wait_restorable("litesafe", tmp_path, cfg, db, digest(db), interval=0.5)
    dbs = run("databases", "-config", cfg)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    val = run("validate", "-config", cfg, db)
    assert val.rc == 0, val
    stop_ok(rep)
    assert check_log(mine, ref=src).rows == src.rows
    no_secret(rep.text() + dbs.out + dbs.err + ps, ident, other_ident)

    objs = objects(rep_dir)
    assert any("/snapshots/" in o for o in objs) and any("/wal/" in o for o in objs)
    for o in objs:
        with open(o, "rb") as f:
            assert f.read(22) == b"age-encryption.org/v1\n", o
    # Debian's age decrypts what litesafe wrote: age(LZ4 frame), as Litestream 0.3
    snap = sorted(o for o in objs if "/snapshots/" in o)[0]
    seg = sorted(o for o in objs if "/wal/" in o and o.endswith("00000000.wal.lz4"))[0]
    for path, magic in ((snap, b"SQLite format 3\0"), (seg, None)):
        dec = subprocess.run("%s -d -i %s %s | lz4 -d -c" % (AGE, keyf, path), shell=True,
                             capture_output=True, check=True).stdout
        if magic:
            assert dec.startswith(magic)
        else:  # a segment at offset 0 starts with the WAL header
            assert dec[:4] in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
    # the other recipient's identity opens it too
    other_cfg = age_config(tmp_path / "other.yml", db, rep_dir, identities=[other_ident])
    theirs, _ = restore_cfg("litesafe", tmp_path, other_cfg, db)
    assert digest(theirs) == digest(mine)


def test_restore_failures_name_the_object_and_leave_nothing(tmp_path):
    keyf, ident, rcpt = keygen(tmp_path, "k")
    _, wrong_ident, _ = keygen(tmp_path, "wrong")
    db, rep_dir = str(tmp_path / "app.db"), tmp_path / "replica"
    cfg = age_config(tmp_path / "cfg.yml", db, rep_dir, identities=[ident])
    rep = replicate_some(tmp_path, cfg, db, txns=60)
    wait_restorable("litesafe", tmp_path, cfg, db, digest(db), interval=0.5)
    stop_ok(rep)

    def fails(conf, *want):
        out, r = restore_cfg("litesafe", tmp_path, conf, db, expect_ok=False)
        assert r.rc == 1, r
        for w in want:
            assert w in r.err, r.err
        assert not os.path.exists(out), "an output file was left"
        left = [p for p in os.listdir(str(tmp_path))
                if "tmp" in p or (p.startswith(".") and p != ".app.db-litesafe")]
        assert not left, left
        no_secret(r.err + r.out, ident, wrong_ident)
        return r

    wrong = age_config(tmp_path / "wrong.yml", db, rep_dir, identities=[wrong_ident])
    fails(wrong, "wrong age identity", ".lz4")
    plain = age_config(tmp_path / "plain.yml", db, rep_dir)
    fails(plain, "age-encrypted", ".lz4")
    rcpt_only = age_config(tmp_path / "ro.yml", db, rep_dir, recipients=[rcpt])
    fails(rcpt_only, "no age identity is configured", ".lz4")

    segs = sorted(o for o in objects(rep_dir) if "/wal/" in o)
    last = segs[-1]
    key = "/".join(last.split(os.sep)[-4:])
    with open(last, "rb") as f:
        good = f.read()
    try:
        bad = bytearray(good)
        bad[-5] ^= 0x40  # inside the last chunk's tag
        with open(last, "wb") as f:
            f.write(bad)
        fails(cfg, key, "does not authenticate")
        with open(last, "wb") as f:  # cut inside the payload
            f.write(good[:len(good) - 20])
        fails(cfg, key, "truncated or was modified")
        with open(last, "wb") as f:  # cut inside the header
            f.write(good[:30])
        fails(cfg, key, "truncated object")
    finally:
        with open(last, "wb") as f:
            f.write(good)
    ok, _ = restore_cfg("litesafe", tmp_path, cfg, db)
    assert digest(ok) == digest(db)


def test_age_cli_encrypted_objects_restore(tmp_path):
    """An unencrypted replica, every object re-encrypted with `age -r`: it
    restores with the identity, and no longer without one."""
    keyf, ident, rcpt = keygen(tmp_path, "k")
    db, rep_dir = str(tmp_path / "app.db"), tmp_path / "replica"
    cfg = age_config(tmp_path / "cfg.yml", db, rep_dir)
    rep = replicate_some(tmp_path, cfg, db, txns=80)
    want = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, want, interval=0.5)
    stop_ok(rep)
    for o in objects(rep_dir):
        subprocess.run([AGE, "-r", rcpt, "-o", o + ".age", o], check=True)
        os.replace(o + ".age", o)
    out, r = restore_cfg("litesafe", tmp_path, cfg, db, expect_ok=False)
    assert r.rc == 1 and "age-encrypted" in r.err, r
    enc = age_config(tmp_path / "enc.yml", db, rep_dir, identity_files=[keyf])
    got, _ = restore_cfg("litesafe", tmp_path, enc, db)
    assert digest(got) == want


@pytest.mark.parametrize("own", ["none", "foreign"])
def test_unreadable_replica_resumes_after_restart(tmp_path, own):
    """Recipients without an identity (own=none), or with an identity that
    is not among them (foreign): the replicator cannot read its objects
    back, and still replicates correctly across a restart."""
    keyf, ident, rcpt = keygen(tmp_path, "k")
    _, foreign, _ = keygen(tmp_path, "foreign")
    db, rep_dir = str(tmp_path / "app.db"), tmp_path / "replica"
    mine = dict(identities=[foreign]) if own == "foreign" else {}
    cfg = age_config(tmp_path / "cfg.yml", db, rep_dir, extra=["validation-interval: 1s"],
                     recipients=[rcpt], **mine)
    rd = age_config(tmp_path / "read.yml", db, rep_dir, identity_files=[keyf])
    progress = str(tmp_path / "progress")
    write(db, progress, txns=40, seed=1)
    rep = opened(replicator(tmp_path, "-config", cfg))
    write(db, progress, txns=40, seed=2)
    wait_restorable("litesafe", tmp_path, rd, db, digest(db), interval=0.5)
    stop_ok(rep)
    # restart: the newest segment cannot be read back; it is uploaded again
    rep = opened(replicator(tmp_path, "-config", cfg))
    write(db, progress, txns=40, seed=3)
    want = digest(db)
    got = wait_restorable("litesafe", tmp_path, rd, db, want, interval=0.5)
    time.sleep(2.5)  # a validation-interval or two
    stop_ok(rep)
    assert "validation ok" not in rep.text(), rep.tail()
    if own == "none":
        assert "validation skipped" in rep.text(), rep.tail()
        assert "replica position without an age identity" in rep.text(), rep.tail()
    else:
        assert "validation could not run" in rep.text(), rep.tail()
        assert "replica object unreadable" in rep.text(), rep.tail()
        assert "wrong age identity" in rep.text(), rep.tail()
    assert "action=upload-again" in rep.text()
    no_secret(rep.text(), ident, foreign)
    assert check_log(got).rows == check_log(db).rows
    # nothing overlaps: Litestream-style listing shows one segment per offset
    segs = sorted(os.path.basename(o) for o in objects(rep_dir) if "/wal/" in o)
    assert len(segs) == len(set(segs))


def test_bad_keys_are_config_errors(tmp_path):
    _, ident, rcpt = keygen(tmp_path, "k")
    db, rep_dir = str(tmp_path / "app.db"), tmp_path / "replica"
    write(db, str(tmp_path / "progress"), txns=2, seed=1)
    bad_id = ident[:-3] + ("q" if ident[-3] != "Q" else "p") + ident[-2:]
    for age, want in ((dict(identities=[bad_id]), "age identities [0], line 1: not an age "
                       "X25519 identity"),
                      (dict(recipients=[ident]), "not an age X25519 recipient"),
                      (dict(recipient_files=[str(tmp_path / "nope.txt")]), "nope.txt")):
        cfg = age_config(tmp_path / "bad.yml", db, rep_dir, **age)
        r = run("replicate", "-config", cfg, timeout=30)
        assert r.rc in (1, 2) and want in r.err, r
        if "recipient_files" not in age:
            assert r.rc == 2, r
        no_secret(r.err + r.out, ident, bad_id)
    assert not glob.glob(str(rep_dir / "*"))
