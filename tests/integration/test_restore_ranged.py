"""A large snapshot restored from S3 with parallel ranged GETs (parts of
8 MiB, decoded in order while the next parts download), through the real
binary and a private s3rver that logs every request:

  * a ~48 MiB snapshot of random rows is fetched in several ranged GETs
    (HTTP 206) and the result equals the source; with -parallelism 1 it is
    one plain GET, and equal too;
  * the server is frozen in the middle of the ranged download, killed and
    restarted on the same port: the parts retry and resume, and the result
    still equals the source;
  * the snapshot object corrupted in its middle, or cut short on the
    server: the restore fails naming the snapshot, and leaves no output and
    no temp file beside it.

Each test starts its own server on a copy of one replica built once.
"""
import os
import re
import shutil
import signal
import time

import pytest

import s3_server

from conftest import BIN, run
from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, start_proc, write, check_log, digest, write_s3_config, fresh)

PREFIX = "ranged/app"
PART = 8 << 20
SNAP_RE = re.compile(r"GET\S*\s+\S*(/snapshots/[0-9a-f]{8}\.snapshot\.lz4)\S*\s+\S*?(\d{3})")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A replica of a ~48 MiB database of random rows, its snapshot a few
    parts long; the server's data directory is kept, the server stopped."""
    tmp = tmp_path_factory.mktemp("ranged")
    srv = s3_server.start(str(tmp / "s3"))
    try:
        db = str(tmp / "app.db")
        write(db, tmp / "progress", txns=24, big_every=1, big_bytes=2 << 20, big_row=64 << 10,
              seed=5)
        cfg = write_s3_config(tmp / "ls.yml", db, srv["env"], PREFIX)
        rep = replicator(tmp, "-config", cfg, level="info")
        rep.wait_log("snapshot written", timeout=120)
        assert rep.stop() == 0, rep.tail()
    finally:
        s3_server.stop(srv)
    snaps = [os.path.join(d, f) for d, _, fs in os.walk(str(tmp / "s3" / "data"))
             for f in fs if f.endswith(".snapshot.lz4._S3rver_object")]
    assert len(snaps) == 1 and os.path.getsize(snaps[0]) > 4 * PART, snaps
    return {"dir": str(tmp / "s3"), "db": db, "digest": digest(db), "src": check_log(db, want_cks=True),
            "snap": os.path.relpath(snaps[0], str(tmp / "s3"))}


@pytest.fixture
def server(built, tmp_path):
    """A logging server on a copy of the built replica; yields (srv, cfg, snapshot file)."""
    shutil.copytree(built["dir"], str(tmp_path / "s3"),
                    ignore=shutil.ignore_patterns("s3rver.log"))
    box = {"srv": s3_server.start(str(tmp_path / "s3"), quiet=False)}
    cfg = write_s3_config(tmp_path / "ls.yml", built["db"], box["srv"]["env"], PREFIX)
    box["cfg"] = cfg
    box["snap"] = str(tmp_path / "s3" / built["snap"])
    try:
        yield box
    finally:
        s3_server.stop(box["srv"])


def snapshot_gets(srv):
    """The HTTP statuses of the snapshot GETs the server logged, in order."""
    with open(srv["log"], errors="replace") as f:
        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    return [m.group(2) for m in SNAP_RE.finditer(text)]


def no_leftovers(tmp_path, out):
    assert not os.path.exists(out)
    left = [f for f in os.listdir(str(tmp_path)) if "litesafe" in f or f.startswith(".r")]
    assert not left, left


def test_ranged_snapshot_equals_source(built, server, tmp_path):
    out = fresh(tmp_path)
    r = run("restore", "-config", server["cfg"], "-o", out, built["db"], timeout=300)
    assert r.rc == 0, r
    assert digest(out) == built["digest"]
    assert check_log(out, ref=built["src"]).rows == built["src"].rows
    gets = snapshot_gets(server["srv"])
    assert len(gets) >= 6 and set(gets) == {"206"}, gets  # parts, not one stream

    out1 = fresh(tmp_path)
    r = run("restore", "-parallelism", "1", "-config", server["cfg"], "-o", out1, built["db"],
            timeout=300)
    assert r.rc == 0, r
    assert digest(out1) == built["digest"]
    assert snapshot_gets(server["srv"])[len(gets):] == ["200"], snapshot_gets(server["srv"])


def test_server_killed_during_ranged_download(built, server, tmp_path):
    srv = server["srv"]
    out = str(tmp_path / "restored.db")
    p = start_proc([BIN, "restore", "-parallelism", "2", "-config", server["cfg"], "-o", out,
                    built["db"]], str(tmp_path / "restore.log"))
    deadline = time.monotonic() + 60
    while not snapshot_gets(srv):  # the first part arrived: the ranged download is under way
        assert time.monotonic() < deadline and p.alive(), p.tail()
        time.sleep(0.005)
    for pid in srv["pids"]:
        os.killpg(pid, signal.SIGSTOP)  # frozen mid-download: the restore cannot finish
    time.sleep(0.3)
    assert p.alive(), "the restore finished before the server went away:\n" + p.tail()
    for pid in srv["pids"]:
        os.killpg(pid, signal.SIGKILL)
    s3_server.stop(srv)
    time.sleep(0.5)
    server["srv"] = s3_server.start(str(tmp_path / "s3"), port=srv["port"], quiet=False)
    assert p.wait(120) == 0, p.tail()
    assert "retrying" in p.text(), "no retry was needed?\n" + p.tail()
    assert digest(out) == built["digest"]
    assert check_log(out, ref=built["src"]).rows == built["src"].rows


def corrupt_middle(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = f.read(4096)
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0x5A for b in chunk))


def cut_short(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2 + 12345)


@pytest.mark.parametrize("damage", [corrupt_middle, cut_short])
def test_damaged_part_fails_cleanly(built, server, tmp_path, damage):
    damage(server["snap"])
    out = str(tmp_path / "restored.db")
    r = run("restore", "-config", server["cfg"], "-o", out, built["db"], timeout=300)
    assert r.rc == 1, r
    assert "snapshots/00000000.snapshot.lz4" in r.err, r.err
    assert re.search(r"corrupt|checksum|truncated|shorter", r.err, re.I), r.err
    no_leftovers(tmp_path, out)
