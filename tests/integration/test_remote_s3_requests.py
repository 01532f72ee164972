"""What litesafe asks of an S3 server in the steady state: nothing it does
not need. Once a replica is running, an upload is one PUT (one WAL segment)
and nothing else: no listing per sync (the position is known locally), no
HEAD, no GET; an idle database makes no request at all. With the remote
default `sync-interval: 1s`, a continuous writer costs at most one PUT a
second (Litestream's rate), yet the first commit after a quiet spell is
shipped at once (the leading edge); with `sync-interval: 0`, each commit is
shipped on its own. Counted from the request log of a private s3rver
(started with its request log on), so no other test's traffic counts.
"""
import re
import sqlite3
import time

import s3_server

from conftest import run

from repl_helpers import (  # noqa: F401  (reaper is an autouse fixture)
    reaper, replicator, write_s3_config, digest, wait_restorable)

LINE = re.compile(r"^info: (PUT|GET|POST|DELETE|HEAD) (/\S*)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def requests(log):
    out = []
    with open(log, errors="replace") as f:
        for line in f:
            m = LINE.match(ANSI.sub("", line))
            if m:
                out.append((m.group(1), m.group(2)))
    return out


def start(tmp_path, srv, extra=None):
    """A database with a table, replicated to `srv` until its first snapshot."""
    db = str(tmp_path / "app.db")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("PRAGMA busy_timeout=5000")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    cfg = write_s3_config(tmp_path / "c.yml", db, srv["env"], "steady/app", extra=extra)
    with open(cfg, "a") as f:  # not the machine's default socket: other tests run at once
        f.write("socket:\n  path: %s\n" % (tmp_path / "ctl.sock"))
    rep = replicator(tmp_path, "-config", cfg, level="info")
    rep.wait_log("snapshot written", timeout=60)
    return db, c, cfg, rep


def segments_only(steady):
    """The WAL segment PUTs of `steady`, which must hold nothing else."""
    assert {m for m, _ in steady} <= {"PUT"}, "unneeded requests in the steady state: %s" % [
        r for r in steady if r[0] != "PUT"]
    segs = [p for _, p in steady if p.endswith(".wal.lz4")]
    assert len(segs) == len(steady), steady
    return segs


def write_paced(c, commits, pause):
    for i in range(commits):
        c.execute("INSERT INTO t(v) VALUES(?)", ("row %d" % i,))
        time.sleep(pause)


def test_one_put_per_commit_and_no_listing(tmp_path):
    srv = s3_server.start(str(tmp_path / "s3"), quiet=False)
    try:
        db, c, cfg, rep = start(tmp_path, srv, extra={"sync-interval": "0s"})
        time.sleep(1.0)
        before = len(requests(srv["log"]))
        commits = 40
        write_paced(c, commits, 0.1)
        time.sleep(1.5)
        steady = requests(srv["log"])[before:]
        assert rep.stop() == 0, rep.tail()
        segs = segments_only(steady)
        # Each commit is shipped on its own (they are 100 ms apart), so one
        # PUT each; on a loaded machine some may share a segment, none may
        # take two.
        assert commits // 2 <= len(segs) <= commits, len(segs)
        c.close()
        wait_restorable("litesafe", tmp_path, cfg, db, digest(db), timeout=30)
    finally:
        s3_server.stop(srv)


def test_default_is_one_put_a_second_and_idle_is_silent(tmp_path):
    """No sync-interval in the config: 50 commits over 5 s make at most one
    PUT per second (plus the leading one), never one per commit; then an
    idle database makes no request at all."""
    srv = s3_server.start(str(tmp_path / "s3"), quiet=False)
    try:
        db, c, cfg, rep = start(tmp_path, srv)
        time.sleep(1.5)
        before = len(requests(srv["log"]))
        t0 = time.monotonic()
        write_paced(c, 50, 0.1)
        elapsed = time.monotonic() - t0
        time.sleep(2.5)  # the last paced upload
        steady = requests(srv["log"])[before:]
        segs = segments_only(steady)
        assert 2 <= len(segs) <= int(elapsed) + 3, (len(segs), elapsed)
        # status projects the last minute's request rate over a month at
        # the default request-price, 0.005 per 1,000 requests
        st = run("status", "-config", cfg, "--json")
        assert st.rc == 0, st
        (r,) = st.json["databases"][0]["replicas"]
        assert r["requests_per_second"] > 0, r
        # (requests_per_second is printed rounded to 6 decimals: compare relatively)
        want = r["requests_per_second"] * 30 * 86400 / 1000 * 0.005
        assert abs(r["monthly_request_cost"] - want) <= 1e-4 * want, r
        assert "cost/month" in run("status", "-config", cfg).out
        wait_restorable("litesafe", tmp_path, cfg, db, digest(db), timeout=30)
        idle_from = len(requests(srv["log"]))
        time.sleep(5)
        idle = requests(srv["log"])[idle_from:]
        assert rep.stop() == 0, rep.tail()
        assert idle == [], "an idle database made requests: %s" % idle
        c.close()
    finally:
        s3_server.stop(srv)


def test_leading_edge_ships_the_first_commit_at_once(tmp_path):
    """sync-interval: 12s. After a quiet spell, one commit is on S3 well
    before 12 s (it is not made to wait for the interval); a second commit
    right behind it waits for the interval, then goes."""
    srv = s3_server.start(str(tmp_path / "s3"), quiet=False)
    try:
        db, c, cfg, rep = start(tmp_path, srv, extra={"sync-interval": "12s"})
        time.sleep(13)  # quiet for longer than the interval since the snapshot
        before = len(requests(srv["log"]))
        c.execute("INSERT INTO t(v) VALUES('first')")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not requests(srv["log"])[before:]:
            time.sleep(0.05)
        first = segments_only(requests(srv["log"])[before:])
        assert len(first) == 1, "the first commit after a quiet spell waited: %s" % first
        shipped = time.monotonic()
        c.execute("INSERT INTO t(v) VALUES('second')")
        time.sleep(3)
        assert len(requests(srv["log"])[before:]) == 1, "the second commit was not paced"
        # it goes once the interval since the first upload has passed
        deadline = shipped + 30
        while time.monotonic() < deadline and len(requests(srv["log"])[before:]) < 2:
            time.sleep(0.1)
        assert len(segments_only(requests(srv["log"])[before:])) == 2
        assert rep.stop() == 0, rep.tail()
        c.close()
        wait_restorable("litesafe", tmp_path, cfg, db, digest(db), timeout=30)
    finally:
        s3_server.stop(srv)
