"""`litesafe replicate` to an SFTP replica on the private sshd (tests/servers/sftp_server.py).

  * a live workload replicated through a config file (key-path, known-hosts,
    an absolute remote path), then restores of the latest state, a point in
    time (-timestamp at a pause point) and an index, compared with the source
    byte for byte; generations / snapshots / wal list the replica;
  * Litestream 0.3.13 restores the same replica (when its binary is installed);
  * a bare URL on the command line (sftp://user@host:port/rel): the key and
    known_hosts come from ~/.ssh as with ssh, and the path is relative to the
    login directory (as Litestream 0.3 resolves URL paths);
  * refusals, each exit 1 with a message naming the replica and no secret:
    a wrong pinned host key and an unknown host (both show the server's real
    SHA256 fingerprint so it can be pinned), no known_hosts at all, a client
    key the server does not accept.

SFTP modification times are whole seconds, so a -timestamp restore point is
followed by a pause of more than a second before anything new is uploaded.
Password authentication is not exercised: the private sshd runs with
UsePAM no, where it would check the account's real password.
"""
import os
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_writer, write, check_log, digest, integrity, fresh, rfc3339,
    LITESTREAM, restore_cfg, wait_restorable, wait_replicated, listing, stop_ok)

SECRET = "s3cr3t-Pa55phrase"


def sftp_config(path, db, env, remote, **keys):
    """A config replicating db to the test sshd; keys override or add replica
    settings (underscores become dashes; a None value drops the key)."""
    rk = {"type": "sftp", "host": env["LS_TEST_SFTP_HOST"], "user": env["LS_TEST_SFTP_USER"],
          "key-path": env["LS_TEST_SFTP_KEY"], "known-hosts": env["LS_TEST_SFTP_KNOWN_HOSTS"],
          "path": remote}
    for k, v in keys.items():
        rk[k.replace("_", "-")] = v
    lines = ["dbs:", "  - path: %s" % db, "    replicas:"]
    first = True
    for k, v in rk.items():
        if v is None:
            continue
        lines.append("%s%s: %s" % ("      - " if first else "        ", k, v))
        first = False
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def remote_files(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return out


def test_live_workload_config_file(tmp_path, servers):
    env = servers
    db, prog = str(tmp_path / "src.db"), str(tmp_path / "progress")
    remote = os.path.join(env["LS_TEST_SFTP_ROOT"], "e2e-" + uuid.uuid4().hex[:8])
    write(db, prog, txns=20, seed=1)
    cfg = sftp_config(tmp_path / "ls.yml", db, env, remote)
    rep = replicator(tmp_path, "-config", cfg)
    rep.wait_log(r"snapshot written", timeout=60)

    # A pause point: the writer idle and the replica holding the source exactly.
    write(db, prog, txns=60, big_every=30, big_bytes=1 << 20, seed=2)
    d_pause = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, d_pause)
    t_pause = time.time()
    time.sleep(1.2)  # SFTP mtimes are seconds: later uploads must land in a later second

    # A live workload while replicating.
    w = start_writer(tmp_path, db, prog, txns=250, sleep=0.004, seed=3, big_every=100,
                     big_bytes=1 << 20)
    assert w.wait() == 0, w.tail()
    src = check_log(db, want_cks=True)
    d_end = digest(db)
    wait_restorable("litesafe", tmp_path, cfg, db, d_end)
    stop_ok(rep)
    assert integrity(db) == "ok"

    latest, _ = restore_cfg("litesafe", tmp_path, cfg, db)
    assert integrity(latest) == "ok"
    assert digest(latest) == d_end
    check_log(latest, ref=src)

    at_pause, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-timestamp", rfc3339(t_pause))
    assert digest(at_pause) == d_pause

    gens = listing("generations", "-config", cfg, db)
    assert len(gens) == 1, gens
    assert listing("snapshots", "-config", cfg, db)
    wal = listing("wal", "-config", cfg, db)
    assert wal
    indexes = sorted({int(str(s["index"]), 16) if isinstance(s["index"], str) else s["index"]
                      for s in wal})
    mid, _ = restore_cfg("litesafe", tmp_path, cfg, db, "-index",
                         "%x" % indexes[len(indexes) // 2])
    assert integrity(mid) == "ok"
    check_log(mid, ref=src)

    # On the server: the Litestream layout under the absolute path, no temp files left.
    files = remote_files(remote)
    assert any(f.startswith("generations/%s/snapshots/" % gens[0]["generation"]) for f in files)
    assert any("/wal/" in f for f in files)
    assert not [f for f in files if os.path.basename(f).startswith(".")], files

    # Litestream 0.3.13 restores the same replica (the layout is shared).
    if os.path.exists(LITESTREAM):
        lcfg = tmp_path / "litestream.yml"
        lcfg.write_text("dbs:\n  - path: %s\n    replicas:\n      - type: sftp\n"
                        "        host: %s\n        user: %s\n        key-path: %s\n"
                        "        path: %s\n" % (db, env["LS_TEST_SFTP_HOST"],
                                                env["LS_TEST_SFTP_USER"],
                                                env["LS_TEST_SFTP_KEY"], remote))
        out, _ = restore_cfg("litestream", tmp_path, lcfg, db)
        assert digest(out) == d_end


def test_url_uses_default_key_and_known_hosts(tmp_path, servers):
    env = servers
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(env["LS_TEST_SFTP_KEY"], home / ".ssh" / "id_ed25519")
    os.chmod(home / ".ssh" / "id_ed25519", 0o600)
    shutil.copy(env["LS_TEST_SFTP_KNOWN_HOSTS"], home / ".ssh" / "known_hosts")
    henv = {"HOME": str(home)}
    rel = "url-" + uuid.uuid4().hex[:8]
    url = "sftp://%s@%s/%s" % (env["LS_TEST_SFTP_USER"], env["LS_TEST_SFTP_HOST"], rel)
    db, prog = str(tmp_path / "src.db"), str(tmp_path / "progress")
    write(db, prog, txns=10, seed=4)

    rep = replicator(tmp_path, db, url, env=henv)
    rep.wait_log(r"snapshot written", timeout=60)
    write(db, prog, txns=80, seed=5)
    d = digest(db)
    wait_replicated(tmp_path, url, d, timeout=60, env=henv)
    stop_ok(rep)

    out = fresh(tmp_path, "restored")
    r = run("restore", "-o", out, url, env=henv)
    assert r.rc == 0, r
    assert digest(out) == d
    assert len(listing("generations", url, env=henv)) == 1
    # The URL path is relative to the login directory (the server's -d is the root).
    assert os.path.isdir(os.path.join(env["LS_TEST_SFTP_ROOT"], rel, "generations"))


def other_key(tmp_path):
    key = str(tmp_path / "other_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True,
                   stdout=subprocess.DEVNULL)
    return key


@pytest.mark.parametrize("case", ["wrong-fingerprint", "unknown-host", "no-known-hosts",
                                  "wrong-client-key"])
def test_refused(tmp_path, servers, case):
    env = servers
    db = str(tmp_path / "src.db")
    write(db, str(tmp_path / "progress"), txns=2, seed=6)
    remote = os.path.join(env["LS_TEST_SFTP_ROOT"], "refused-" + uuid.uuid4().hex[:8])
    run_env = None
    if case == "wrong-fingerprint":
        keys = {"known_hosts": None, "host_key": "SHA256:" + "A" * 43, "password": SECRET}
        want = ["host key verification failed", "but host-key pins",
                env["LS_TEST_SFTP_FINGERPRINT"]]
    elif case == "unknown-host":
        empty = tmp_path / "known_hosts"
        empty.write_text("# nothing\n")
        keys = {"known_hosts": str(empty), "password": SECRET}
        want = ["host key verification failed", "is not in", env["LS_TEST_SFTP_FINGERPRINT"]]
    elif case == "no-known-hosts":
        (tmp_path / "home").mkdir()
        run_env = {"HOME": str(tmp_path / "home")}
        keys = {"known_hosts": None, "password": SECRET}
        want = ["cannot verify the host key", env["LS_TEST_SFTP_FINGERPRINT"]]
    else:
        keys = {"key_path": other_key(tmp_path), "password": SECRET}
        want = ["authentication refused for user %s" % env["LS_TEST_SFTP_USER"]]
    cfg = sftp_config(tmp_path / "ls.yml", db, env, remote, **keys)

    for cmd in (["generations", "-config", cfg, db],
                ["restore", "-config", cfg, "-o", str(tmp_path / "out.db"), db]):
        r = run(*cmd, env=run_env)
        assert r.rc == 1, r
        for w in want:
            assert w in r.err, (w, r.err)
        assert "replica sftp (sftp://" in r.err, r.err
        assert SECRET not in r.err + r.out
        assert not os.path.exists(str(tmp_path / "out.db"))

    # replicate reports it too (and never writes anything remotely).
    rep = replicator(tmp_path, "-config", cfg, env=run_env)
    rep.wait_log(want[0], timeout=30)
    rep.stop()
    assert SECRET not in rep.text()
    assert not os.path.exists(remote)
