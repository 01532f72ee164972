#!/usr/bin/python3
"""bench/writer.py - a writer that commits small transactions as fast as it can.

Measures: commits per second of one connection in another process than the
tool under test, each transaction inserting one row into t(id, v) (v: 100
random bytes). The database must already exist (WAL mode).

Usage: writer.py DB SECONDS [--synchronous NORMAL|FULL|OFF] [--ready FILE]
                 [--timeline FILE] [--autocheckpoint PAGES]
Prints one JSON line: {"commits": N, "seconds": S, "per_s": R,
"max_commit_ms": M, "p99_commit_ms": P}. With --ready, the file is created
once the connection is open (so the caller can start its window then). With
--timeline, FILE gets the commits per 10 ms bucket: a first line with the
window's start (Unix time, microseconds), then one count per line.
--autocheckpoint sets PRAGMA wal_autocheckpoint (SQLite's default: 1000).
"""
import argparse
import json
import os
import sqlite3
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--synchronous", default="NORMAL")
    ap.add_argument("--ready")
    ap.add_argument("--timeline")
    ap.add_argument("--autocheckpoint", type=int)
    a = ap.parse_args()
    db = sqlite3.connect(a.db, isolation_level=None, timeout=60)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=%s" % a.synchronous)
    if a.autocheckpoint is not None:
        db.execute("PRAGMA wal_autocheckpoint=%d" % a.autocheckpoint)
    db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    ins = "INSERT INTO t(v) VALUES(randomblob(100))"
    if a.ready:
        open(a.ready, "w").close()
    lat = []
    n = 0
    wall0 = time.time()
    t0 = time.monotonic()
    end = t0 + a.seconds
    now = t0
    while now < end:
        db.execute("BEGIN IMMEDIATE")
        db.execute(ins)
        db.execute("COMMIT")
        t = time.monotonic()
        lat.append(t - now)
        now = t
        n += 1
    el = now - t0
    if a.timeline:
        # lat[i] ends at t0 + sum(lat[:i+1]): bucket the commit end times
        buckets = [0] * (int(el * 100) + 1)
        t = 0.0
        for x in lat:
            t += x
            buckets[min(int(t * 100), len(buckets) - 1)] += 1
        with open(a.timeline, "w") as f:
            f.write("%d\n" % int(wall0 * 1e6))
            f.write("\n".join(map(str, buckets)) + "\n")
    lat.sort()
    print(json.dumps({
        "commits": n, "seconds": round(el, 3), "per_s": round(n / el, 1) if el else 0,
        "max_commit_ms": round(lat[-1] * 1000, 1) if lat else 0,
        "p99_commit_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else 0}))
    db.close()


if __name__ == "__main__":
    main()
