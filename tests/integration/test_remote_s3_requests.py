"""What litesafe asks of an S3 server in the steady state: nothing it does
not need. Once a replica is running, each commit costs one PUT (one WAL
segment) and nothing else: no listing per sync (the position is known
locally), no HEAD, no GET. Counted from the request log of a private
s3rver (started with its request log on), so no other test's traffic counts.
"""
import re
import sqlite3
import time

import s3_server

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


def test_one_put_per_commit_and_no_listing(tmp_path):
    srv = s3_server.start(str(tmp_path / "s3"), quiet=False)
    try:
        db = str(tmp_path / "app.db")
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode=wal")
        c.execute("PRAGMA busy_timeout=5000")
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        cfg = write_s3_config(tmp_path / "c.yml", db, srv["env"], "steady/app")
        rep = replicator(tmp_path, "-config", cfg, level="info")
        rep.wait_log("snapshot written", timeout=60)
        time.sleep(1.0)
        before = len(requests(srv["log"]))
        commits = 40
        for i in range(commits):
            c.execute("INSERT INTO t(v) VALUES(?)", ("row %d" % i,))
            time.sleep(0.1)
        time.sleep(1.5)
        steady = requests(srv["log"])[before:]
        assert rep.stop() == 0, rep.tail()
        methods = [m for m, _ in steady]
        assert set(methods) <= {"PUT"}, "unneeded requests in the steady state: %s" % [
            r for r in steady if r[0] != "PUT"]
        segs = [p for _, p in steady if p.endswith(".wal.lz4")]
        assert len(segs) == len(steady), steady
        # Each commit is shipped on its own (they are 100 ms apart), so one
        # PUT each; on a loaded machine some may share a segment, none may
        # take two.
        assert commits // 2 <= len(segs) <= commits, len(segs)
        c.close()
        wait_restorable("litesafe", tmp_path, cfg, db, digest(db), timeout=30)
    finally:
        s3_server.stop(srv)
