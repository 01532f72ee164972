#!/usr/bin/python3
"""Replication benchmark: litesafe against Litestream 0.3.13, side by side.

What it measures, each tool in turn within every round (rounds interleave the
tools, figures are medians over the rounds):
  throughput  a writer commits single-row transactions as fast as it can for
              --seconds; commits/s with no replicator, with litesafe, with
              Litestream (both replicating to a local file replica). Reported as
              the share of the writer's throughput each replicator leaves it.
  rss         the replicator's peak RSS (VmHWM) during that run.
  lag         a writer commits one row every ~20 ms; after each commit it
              waits for the next WAL segment to appear in the replica (the
              file is renamed into place after its fsync, so it is durable):
              commit-to-replica latency, p50 and p90.
  restore     a replica with a 200 MiB snapshot and many WAL segments over
              several WAL indexes (one written by litesafe, one by Litestream),
              restored by both tools.

Usage: bench/replicate.py [--litesafe build/litesafe] [--rounds 3] [--seconds 8]
The machine is shared and noisy: compare the ratios, not absolute numbers.
"""
import argparse
import glob
import os
import shutil
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


def new_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.close()


def start(tool, binary, db, rep):
    if tool == "none":
        return None
    args = [binary, "replicate", db, "file://" + rep]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return p


def peak_rss_kib(p):
    try:
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(p):
    if p is None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def writer_rate(db, seconds):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("PRAGMA busy_timeout=5000")
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c.execute("INSERT INTO t(v) VALUES('x')")
        n += 1
    c.close()
    return n / seconds


def segments(rep):
    return set(glob.glob(os.path.join(rep, "generations", "*", "wal", "*.wal.lz4")))


def lags(db, rep, samples, timeout=5.0):
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    out = []
    seen = segments(rep)
    for _ in range(samples):
        c.execute("INSERT INTO t(v) VALUES('lag')")
        t0 = time.monotonic()
        while True:
            now = segments(rep)
            if now - seen:
                out.append((time.monotonic() - t0) * 1000.0)
                seen = now
                break
            if time.monotonic() - t0 > timeout:
                break
            time.sleep(0.0002)
        time.sleep(0.02)
    c.close()
    return out


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def make_replica(tool, binary, work, txns, mb):
    """A replica with a large snapshot and many WAL segments over several WAL
    indexes, written by `tool`: `mb` MiB of rows first, then `txns` update
    transactions spread over the whole database."""
    db, rep = os.path.join(work, tool + "-src.db"), os.path.join(work, tool + "-rep")
    new_db(db)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA busy_timeout=5000")
    rows = mb * 1024
    c.execute("BEGIN")
    for _ in range(rows):
        c.execute("INSERT INTO t(v) VALUES(hex(randomblob(500)))")
    c.execute("COMMIT")
    p = start(tool, binary, db, rep)
    for i in range(txns):
        c.execute("BEGIN")
        for _ in range(4):
            c.execute("UPDATE t SET v = hex(randomblob(500)) WHERE id = ?",
                      (1 + (i * 7919 + _ * 104729) % rows,))
        c.execute("COMMIT")
        if i % 50 == 0:
            time.sleep(0.02 if tool == "litesafe" else 0)
        if tool == "litestream" and i % 2000 == 1999:
            time.sleep(1.1)  # Litestream ships once a second
    c.close()
    time.sleep(2.5)
    stop(p)
    return db, rep


def time_restore(binary, rep, out):
    if os.path.exists(out):
        os.unlink(out)
    t0 = time.monotonic()
    r = subprocess.run([binary, "restore", "-o", out, "file://" + rep],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("restore failed: %s" % r.stderr)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(ROOT, "build/litesafe"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--lag-samples", type=int, default=150)
    ap.add_argument("--restore-txns", type=int, default=20000)
    ap.add_argument("--restore-mb", type=int, default=200)
    a = ap.parse_args()
    tools = {"none": None, "litesafe": os.path.abspath(a.litesafe), "litestream": LITESTREAM}
    if not os.path.exists(LITESTREAM):
        raise SystemExit("Litestream not installed: run scripts/deps.sh")
    work = tempfile.mkdtemp(prefix="litesafe-bench-")
    rate = {t: [] for t in tools}
    rss = {t: [] for t in tools if t != "none"}
    lag = {t: [] for t in tools if t != "none"}
    try:
        for rnd in range(a.rounds):
            for tool, binary in tools.items():
                d = os.path.join(work, "r%d-%s" % (rnd, tool))
                os.makedirs(d)
                db, rep = os.path.join(d, "db"), os.path.join(d, "rep")
                new_db(db)
                p = start(tool, binary, db, rep)
                rate[tool].append(writer_rate(db, a.seconds))
                if p:
                    lag[tool] += lags(db, rep, a.lag_samples if tool == "litesafe" else
                                      max(10, a.lag_samples // 10))
                    rss[tool].append(peak_rss_kib(p))
                stop(p)
                shutil.rmtree(d)
            print("round %d: %s" % (rnd + 1, ", ".join("%s %.0f/s" % (t, rate[t][-1])
                                                         for t in tools)), file=sys.stderr)
        # Restore: the same replica, restored by both tools.
        restore = {}
        for writer in ("litesafe", "litestream"):
            _, rep = make_replica(writer, tools[writer], work, a.restore_txns, a.restore_mb)
            nseg = len(segments(rep))
            for reader in ("litesafe", "litestream"):
                ts = [time_restore(tools[reader], rep, os.path.join(work, "out.db"))
                      for _ in range(a.rounds)]
                restore[(writer, reader)] = (statistics.median(ts), nseg)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(rate["none"])
    print("\n| measure | no replicator | litesafe | Litestream 0.3.13 |")
    print("|---|---|---|---|")
    print("| writer commits/s (median of %d) | %.0f | %.0f | %.0f |" % (
        a.rounds, base, statistics.median(rate["litesafe"]), statistics.median(rate["litestream"])))
    print("| writer keeps | 100%% | %.0f%% | %.0f%% |" % (
        100 * statistics.median(rate["litesafe"]) / base,
        100 * statistics.median(rate["litestream"]) / base))
    print("| lag commit->replica p50 | | %.1f ms | %.0f ms |" % (
        pct(lag["litesafe"], 0.5), pct(lag["litestream"], 0.5)))
    print("| lag p90 | | %.1f ms | %.0f ms |" % (pct(lag["litesafe"], 0.9),
                                                 pct(lag["litestream"], 0.9)))
    print("| replicator peak RSS (median) | | %.1f MiB | %.1f MiB |" % (
        statistics.median(rss["litesafe"]) / 1024, statistics.median(rss["litestream"]) / 1024))
    print("\n| replica written by | segments | litesafe restore | Litestream restore | "
          "Litestream / litesafe |")
    print("|---|---|---|---|---|")
    for writer in ("litesafe", "litestream"):
        ls_t, n = restore[(writer, "litesafe")]
        lt_t, _ = restore[(writer, "litestream")]
        print("| %s | %d | %.3f s | %.3f s | %.1fx |" % (writer, n, ls_t, lt_t, lt_t / ls_t))


if __name__ == "__main__":
    main()
