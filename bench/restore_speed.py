#!/usr/bin/python3
"""Restore speed from a loopback S3 (the private s3rver of tests/servers),
litesafe and Litestream 0.3.13 side by side (issue 13, "Restore at disk
speed").

Two replicas per writing tool:
  big   a database of --mb MiB of random (incompressible) rows, its first
        snapshot stored, then --big-txns update transactions of WAL;
  many  bench/replicate.py's make_replica: --many-mb MiB of rows, then
        --many-txns small update transactions (many WAL segments over
        several indexes).
Each replica is restored by both tools, interleaved, --rounds times; the
medians are printed with the time of the writer's own tool, the ratio
litesafe / Litestream, and the peak RSS of each restore.

Usage: bench/restore_speed.py [--mb 1024] [--rounds 3] [--only big|many]
"""
import argparse
import glob
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import replicate as rb  # bench/replicate.py: s3rver, configs, make_replica, stop
from snapshot_rss import make_db


def big_replica(tool, binary, work, mb, txns):
    db, rep = os.path.join(work, tool + "-big.db"), os.path.join(work, tool + "-big")
    if not os.path.exists(os.path.join(work, "big.db")):
        make_db(os.path.join(work, "big.db"), mb)
    shutil.copy(os.path.join(work, "big.db"), db)
    p = rb.start(tool, binary, db, rep)
    pattern = os.path.join(rb.s3_dir(rep), "generations", "*", "snapshots",
                           "*.snapshot.lz4._S3rver_metadata.json")
    t0 = time.monotonic()
    while not glob.glob(pattern):
        if p.poll() is not None or time.monotonic() - t0 > 1800:
            raise SystemExit("%s: no snapshot (rc=%s)" % (tool, p.returncode))
        time.sleep(0.1)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    rows = mb * 256
    for i in range(txns):
        c.execute("BEGIN")
        for k in range(8):
            c.execute("UPDATE t SET v = randomblob(4000) WHERE id = ?",
                      (1 + (i * 7919 + k * 104729) % rows,))
        c.execute("COMMIT")
        if i % 100 == 99:
            time.sleep(0.2)
    c.close()
    time.sleep(3)
    rb.stop(p)
    return db, rep


def time_restore(binary, db, rep, out):
    """Seconds and peak RSS (KiB) of one restore; the output is checked, then removed."""
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "restore", "-o", out, "-config", rep + ".yml", db],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, _, ru = os.wait4(p.pid, 0)
    dt = time.monotonic() - t0
    err = p.stderr.read()
    if not os.path.exists(out):
        raise SystemExit("restore failed: %s" % err)
    c = sqlite3.connect(out)
    ok = c.execute("PRAGMA quick_check").fetchone()[0]
    c.close()
    if ok != "ok":
        raise SystemExit("restored database fails quick_check: %s" % ok)
    for f in (out, out + "-wal", out + "-shm"):
        if os.path.exists(f):
            os.unlink(f)
    return dt, ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(rb.ROOT, "build/litesafe"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--big-txns", type=int, default=1000)
    ap.add_argument("--many-mb", type=int, default=200)
    ap.add_argument("--many-txns", type=int, default=20000)
    ap.add_argument("--only", choices=("big", "many"))
    ap.add_argument("--work", help="work directory (default: a temp directory, removed)")
    a = ap.parse_args()
    import s3_server
    tools = {"litesafe": a.litesafe, "litestream": rb.LITESTREAM}
    work = a.work or tempfile.mkdtemp(prefix="ls-restore-bench-")
    rb.S3 = s3_server.start(os.path.join(work, "s3"))
    results = []
    try:
        for kind in ("big", "many"):
            if a.only and a.only != kind:
                continue
            reps = {}
            for writer in tools:
                if kind == "big":
                    reps[writer] = big_replica(writer, tools[writer], work, a.mb, a.big_txns)
                else:
                    reps[writer] = rb.make_replica(writer, tools[writer], work, a.many_txns,
                                                   a.many_mb)
            times = {}
            for _ in range(a.rounds):  # interleaved: every pair once per round
                for writer in tools:
                    for reader in tools:
                        db, rep = reps[writer]
                        t = time_restore(tools[reader], db, rep, os.path.join(work, "out.db"))
                        times.setdefault((writer, reader), []).append(t)
            for writer in tools:
                nobj = len([f for f in glob.glob(os.path.join(rb.s3_dir(reps[writer][1]),
                                                              "generations", "*", "*", "*"))
                            if f.endswith("._S3rver_object")])
                row = [kind, writer, nobj]
                for reader in tools:
                    ts = times[(writer, reader)]
                    row.append((statistics.median(t for t, _ in ts),
                                max(m for _, m in ts) // 1024, [round(t, 2) for t, _ in ts]))
                results.append(row)
                print(row, flush=True)
    finally:
        s3_server.stop(rb.S3)
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| replica | written by | objects | litesafe restore (s, peak MiB) | "
          "Litestream restore (s, peak MiB) | litesafe / Litestream |")
    print("|---|---|---|---|---|---|")
    for kind, writer, nobj, ls, lt in results:
        print("| %s | %s | %d | %.2f (%d) | %.2f (%d) | %.2f |" % (
            kind, writer, nobj, ls[0], ls[1], lt[0], lt[1], ls[0] / lt[0]))
        print("|  | runs | | %s | %s | |" % (ls[2], lt[2]))


if __name__ == "__main__":
    sys.exit(main())
