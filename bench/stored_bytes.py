#!/usr/bin/python3
"""Bytes a replica stores per 1000 single-row commits, litesafe against
Litestream 0.3.13: a burst of --commits inserts replicated to a file replica
with sync-interval 1s (both tools batch a second of WAL per segment); the
compressed WAL segments' bytes, without the first snapshot. Medians of
--rounds, the tools interleaved.

Usage: bench/stored_bytes.py [--litesafe build/litesafe] [--commits 30000] [--rounds 3]
"""
import argparse
import glob
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LITESTREAM = os.path.join(ROOT, "tests/tools/node_modules/@flydotio/litestream-linux-x64/litestream")


def stored(rep):
    return sum(os.path.getsize(f) for f in glob.glob(rep + "/**/*.lz4", recursive=True))


def run(binary, work, commits):
    db, rep = os.path.join(work, "db"), os.path.join(work, "rep")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=wal")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    with open(rep + ".yml", "w") as f:
        f.write("dbs:\n  - path: %s\n    replicas:\n      - url: file://%s\n"
                "        sync-interval: 1s\n" % (db, rep))
    p = subprocess.Popen([binary, "replicate", "-config", rep + ".yml"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    snap = stored(rep)
    for _ in range(commits):
        c.execute("INSERT INTO t(v) VALUES('x')")
    c.close()
    time.sleep(2.5)
    p.send_signal(signal.SIGTERM)
    p.wait()
    return (stored(rep) - snap) / 1024.0 / (commits / 1000.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(ROOT, "build/litesafe"))
    ap.add_argument("--commits", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    tools = {"litesafe": os.path.abspath(a.litesafe), "Litestream 0.3.13": LITESTREAM}
    kib = {t: [] for t in tools}
    for _ in range(a.rounds):
        for tool, binary in tools.items():
            work = tempfile.mkdtemp(prefix="litesafe-bench-bytes-")
            try:
                kib[tool].append(run(binary, work, a.commits))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print("| KiB stored per 1000 commits (median of %d) | %s |" % (a.rounds, " | ".join(tools)))
    print("|---|" + "---|" * len(tools))
    print("| WAL segments | %s |" % " | ".join("%.1f" % statistics.median(kib[t]) for t in tools))


if __name__ == "__main__":
    main()
