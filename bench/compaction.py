#!/usr/bin/python3
"""Compaction benchmark (issue 13): a replica of "hours of commits", restored
by litesafe and by Litestream 0.3.13 before and after litesafe compacts it.

  1. litesafe replicates a database (--mb MiB of rows) while a writer commits
     --txns small update transactions, with sync-interval 0 (one segment per
     commit, as a remote replica at sync-interval 1s makes one per second of
     continuous writing: --txns 20000 is about 5.5 hours of it) and a
     checkpoint every --ckpt-pages pages (many WAL indexes). Compaction and
     snapshot-wal-ratio are off. Then it stops.
  2. The replica's objects are counted; both tools restore it --rounds
     times (interleaved), each restore checked equal to the source.
  3. litesafe replicate runs again with compact-after and compact-interval
     1s until every finished WAL index is one object; it stops.
  4. Objects counted and restores timed again.

--target file: a local directory; --target s3: a private s3rver on
127.0.0.1 (tests/servers/s3_server.py). Both tools read one config file.
Usage: bench/compaction.py [--target file|s3] [--litesafe build/litesafe]
                           [--txns 20000] [--mb 32] [--rounds 3]
The machine is shared and noisy: compare the ratios, not absolute numbers.
"""
import argparse
import hashlib
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LITESTREAM = os.path.join(ROOT, "tests/tools/node_modules/@flydotio/litestream-linux-x64/litestream")
sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))


def config(work, db, target, s3, keys):
    cfg = os.path.join(work, "cfg-%d.yml" % len(os.listdir(work)))
    lines = ["dbs:", "  - path: %s" % db, "    min-checkpoint-page-count: %d" % keys.pop("ckpt"),
             "    replicas:"]
    if target == "file":
        lines.append("      - url: file://%s" % os.path.join(work, "rep"))
    else:
        e = s3["env"]
        lines += ["      - type: s3", "        bucket: %s" % e["LS_TEST_S3_BUCKET"],
                  "        path: bench-compaction", "        endpoint: %s" % e["LS_TEST_S3_ENDPOINT"],
                  "        region: %s" % e["LS_TEST_S3_REGION"], "        force-path-style: true",
                  "        access-key-id: %s" % e["LS_TEST_S3_ACCESS_KEY"],
                  "        secret-access-key: %s" % e["LS_TEST_S3_SECRET_KEY"]]
    lines += ["        %s: %s" % kv for kv in keys.items()]
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    return cfg


def digest(path):
    c = sqlite3.connect(path)
    h = hashlib.sha256()
    for row in c.execute("SELECT id, v FROM t ORDER BY id"):
        h.update(repr(row).encode())
    c.close()
    return h.hexdigest()


def objects(binary, cfg, db):
    r = subprocess.run([binary, "wal", "-config", cfg, db, "--json"], capture_output=True,
                       text=True, check=True)
    import json
    wal = json.loads(r.stdout)["wal"]
    return len(wal), len({(x["generation"], x["index"]) for x in wal})


def compacted(binary, cfg, db):
    """1 when every WAL index but the newest of each generation is one object."""
    r = subprocess.run([binary, "wal", "-config", cfg, db, "--json"], capture_output=True,
                       text=True, check=True)
    import json
    per = {}
    for x in json.loads(r.stdout)["wal"]:
        per.setdefault(x["generation"], {}).setdefault(x["index"], 0)
        per[x["generation"]][x["index"]] += 1
    return all(n == 1 for idx in per.values() for i, n in idx.items() if i != max(idx))


def restore(binary, cfg, db, out):
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    r = subprocess.run([binary, "restore", "-config", cfg, "-o", out, db],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("%s restore failed: %s" % (binary, r.stderr[-500:]))
    return dt


def measure(tools, cfg, db, work, rounds, want):
    times = {t: [] for t in tools}
    for rnd in range(rounds):
        for tool, binary in tools.items():
            out = os.path.join(work, "out-%s.db" % tool)
            times[tool].append(restore(binary, cfg, db, out))
            if digest(out) != want:
                raise SystemExit("%s restored something else" % tool)
    return {t: statistics.median(v) for t, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(ROOT, "build/litesafe"))
    ap.add_argument("--target", choices=("file", "s3"), default="file")
    ap.add_argument("--txns", type=int, default=20000)
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--ckpt-pages", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    binary = os.path.abspath(a.litesafe)
    s3 = None
    if a.target == "s3":
        import s3_server
        s3 = s3_server.start(tempfile.mkdtemp(prefix="litesafe-bench-s3-"), quiet=True)
    work = tempfile.mkdtemp(prefix="litesafe-bench-compaction-")
    db = os.path.join(work, "db")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("PRAGMA busy_timeout=5000")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    rows = a.mb * 1024
    c.execute("BEGIN")
    for _ in range(rows):
        c.execute("INSERT INTO t(v) VALUES(hex(randomblob(500)))")
    c.execute("COMMIT")
    base = {"sync-interval": "0s", "compact-after": "0s", "snapshot-wal-ratio": "0",
            "ckpt": a.ckpt_pages}
    cfg = config(work, db, a.target, s3, dict(base))
    p = subprocess.Popen([binary, "replicate", "-config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    for i in range(a.txns):
        c.execute("BEGIN")
        for k in range(4):
            c.execute("UPDATE t SET v = hex(randomblob(500)) WHERE id = ?",
                      (1 + (i * 7919 + k * 104729) % rows,))
        c.execute("COMMIT")
        if i % 20 == 0:
            time.sleep(0.005)  # let commits land as separate segments
    # c stays open to the end: were it (or digest's connection) the last to
    # close, SQLite would checkpoint the WAL away and the second run would
    # begin a new generation, which compaction leaves alone.
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    want = digest(db)
    tools = {"litesafe": binary, "litestream": LITESTREAM}
    n0, idx0 = objects(binary, cfg, db)
    before = measure(tools, cfg, db, work, a.rounds, want)

    keys = dict(base, **{"compact-after": "1s", "compact-interval": "1s"})
    cfg2 = config(work, db, a.target, s3, keys)
    log = os.path.join(work, "compact.log")
    t0 = time.monotonic()
    with open(log, "w") as lf:
        p = subprocess.Popen([binary, "replicate", "--log-level", "info", "-config", cfg2],
                             stdout=lf, stderr=subprocess.STDOUT)
    while True:
        time.sleep(1)
        if compacted(binary, cfg, db) or time.monotonic() - t0 > 600:
            break
    took = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    merged = len(re.findall("compaction merged", open(log).read()))
    n1, idx1 = objects(binary, cfg, db)
    after = measure(tools, cfg, db, work, a.rounds, want)
    print("target=%s txns=%d db=%d MiB WAL indexes=%d" % (a.target, a.txns, a.mb, idx0))
    print("objects (WAL)      before=%d after=%d  (merged %d indexes in %.1f s)"
          % (n0, n1, merged, took))
    for t in tools:
        print("restore %-10s  before=%.2f s after=%.2f s  (after/before %.2f)"
              % (t, before[t], after[t], after[t] / before[t]))
    print("litesafe/litestream before=%.2f after=%.2f"
          % (before["litesafe"] / before["litestream"], after["litesafe"] / after["litestream"]))
    c.close()
    if s3:
        import s3_server
        s3_server.stop(s3)


if __name__ == "__main__":
    main()
