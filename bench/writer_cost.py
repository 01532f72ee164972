#!/usr/bin/python3
"""bench/writer_cost.py - what a replicator costs the application's writer.

A C writer (bench/paced_writer.c, built here with cc) commits single-row
transactions into a fresh WAL database, alone, next to `litesafe replicate`
and next to Litestream 0.3.13 (both replicating to a file replica), the three
interleaved in each round, for --rounds rounds (--tools may add
litesafe-noguard: litesafe with `checkpoint-guard: false`):

  --rate 0     as fast as it can: commits per second, and the share of the
               writer-alone rate kept next to each replicator;
  --rate 1000  paced at that many commits per second: p50, p99 and p99.9 of
               the commit latency (BEGIN to COMMIT returned).

Both with synchronous=NORMAL and SQLite's default wal_autocheckpoint (1000)
unless --autocheckpoint is given. Prints a Markdown table of medians.

Usage: bench/writer_cost.py [--litesafe build/litesafe] [--rate 0] [--rounds 5]
                            [--seconds 6] [--autocheckpoint N] [--tools alone,litesafe,litestream]
                            [--litesafe-keys sync-interval=1s]
The machine is shared and noisy: compare ratios within one run.
"""
import argparse
import json
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


def build_writer(work):
    exe = os.path.join(work, "paced_writer")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "paced_writer.c"), "-lsqlite3"],
                   check=True)
    return exe


def new_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) "
               "INSERT INTO t(v) SELECT randomblob(100) FROM n")
    db.close()


def start(tool, litesafe, db, rep, keys=""):
    if tool == "alone":
        return None
    ours = tool.startswith("litesafe")
    cfg = rep + ".yml"
    with open(cfg, "w") as f:
        f.write("dbs:\n  - path: %s\n" % db)
        if tool == "litesafe-noguard":
            f.write("    checkpoint-guard: false\n")
        f.write("    replicas:\n      - url: file://%s\n" % rep)
        for kv in (keys.split(",") if keys and ours else []):
            f.write("        %s\n" % kv.replace("=", ": "))
    binary = litesafe if ours else LITESTREAM
    p = subprocess.Popen([binary, "replicate", "-config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    # Running once its first snapshot is on the replica.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snaps = [f for _, _, fs in os.walk(rep) for f in fs if f.endswith(".snapshot.lz4")]
        if snaps:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return p


def stop(p):
    if p is None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(ROOT, "build/litesafe"))
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--autocheckpoint", type=int)
    ap.add_argument("--tools", default="alone,litesafe,litestream")
    ap.add_argument("--litesafe-keys", default="",
                    help="replica keys for litesafe only, e.g. sync-interval=1s")
    a = ap.parse_args()
    litesafe = os.path.abspath(a.litesafe)
    tools = a.tools.split(",")
    work = tempfile.mkdtemp(prefix="litesafe-bench-writer-")
    exe = build_writer(work)
    runs = {t: [] for t in tools}
    try:
        for r in range(a.rounds):
            for t in tools:
                d = os.path.join(work, "%s-%d" % (t, r))
                os.makedirs(d)
                db = os.path.join(d, "app.db")
                new_db(db)
                p = start(t, litesafe, db, os.path.join(d, "rep"), a.litesafe_keys)
                argv = [exe, db, str(a.seconds), str(a.rate), "NORMAL"]
                if a.autocheckpoint is not None:
                    argv.append(str(a.autocheckpoint))
                out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
                stop(p)
                res = json.loads(out)
                res["wal_mb"] = os.path.getsize(db + "-wal") / 1e6 if os.path.exists(db + "-wal") else 0
                runs[t].append(res)
                print("round %d %-10s %s" % (r + 1, t, out.strip()), flush=True)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(t, k):
        return statistics.median(x[k] for x in runs[t])

    base = "alone" if "alone" in tools else tools[0]
    print()
    print("rate=%s rounds=%d seconds=%s autocheckpoint=%s (medians)"
          % (a.rate or "full speed", a.rounds, a.seconds,
             a.autocheckpoint if a.autocheckpoint is not None else "default"))
    print("| writer next to | commits/s | kept | p50 us | p99 us | p99.9 us | p99 vs alone |")
    print("|---|---|---|---|---|---|---|")
    for t in tools:
        kept = statistics.median(x["per_s"] / y["per_s"] for x, y in zip(runs[t], runs[base]))
        p99 = statistics.median(x["p99_us"] / max(y["p99_us"], 1) for x, y in zip(runs[t], runs[base]))
        print("| %s | %.0f | %.0f%% | %.0f | %.0f | %.0f | %+.0f%% |"
              % (t, med(t, "per_s"), 100 * kept, med(t, "p50_us"), med(t, "p99_us"),
                 med(t, "p999_us"), 100 * (p99 - 1)))


if __name__ == "__main__":
    main()
