#!/usr/bin/python3
"""Peak memory of the replicator while it uploads a large first snapshot to
S3 (the private s3rver of tests/servers), litesafe and Litestream 0.3.13
side by side, with the upload time.

A database of --mb MiB of random (incompressible) rows is replicated from
scratch; the replicator's VmHWM is read when its first snapshot object is
stored (s3rver's metadata file appears after the body), then it is stopped.

With --age, litesafe alone is measured with and without age encryption
(issue 10: a replica with `age: recipients:`, a key from age-keygen), the
two interleaved round by round.

Usage: bench/snapshot_rss.py [--mb 1024] [--rounds 2] [--litesafe build/litesafe] [--age]
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

import replicate as rb  # bench/replicate.py: s3rver, configs, RSS, stop


def make_db(path, mb):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    db.execute("BEGIN")
    for _ in range(mb * 256):
        db.execute("INSERT INTO t(v) VALUES(randomblob(4000))")
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def age_recipient(work):
    """A new age recipient (age1...) from age-keygen (Debian's age package)."""
    key = os.path.join(work, "age.key")
    subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", key], check=True, capture_output=True,
                          text=True).stdout.strip()


def run(tool, binary, db, rep, recipient=None):
    cfg = rb.s3_config(db, rep)
    if recipient:
        with open(cfg, "a") as f:
            f.write("        age:\n          recipients: [%s]\n" % recipient)
    p = subprocess.Popen([binary, "replicate", "-config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    pattern = os.path.join(rb.s3_dir(rep), "generations", "*", "snapshots",
                           "*.snapshot.lz4._S3rver_metadata.json")
    peak = 0
    while not glob.glob(pattern):
        peak = max(peak, rb.peak_rss_kib(p))
        if p.poll() is not None or time.monotonic() - t0 > 1800:
            raise SystemExit("%s: no snapshot (rc=%s)" % (tool, p.returncode))
        time.sleep(0.05)
    dt = time.monotonic() - t0
    peak = max(peak, rb.peak_rss_kib(p))
    rb.stop(p)
    return peak, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--litesafe", default=os.path.join(rb.ROOT, "build/litesafe"))
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--age", action="store_true",
                    help="litesafe unencrypted against litesafe with age encryption")
    a = ap.parse_args()
    import s3_server
    rb.S3 = s3_server.start(tempfile.mkdtemp(prefix="litesafe-bench-s3-"))
    work = tempfile.mkdtemp(prefix="litesafe-bench-")
    tools = {"litesafe": os.path.abspath(a.litesafe), "litestream": rb.LITESTREAM}
    if a.age:
        tools = {"litesafe": tools["litesafe"], "litesafe-age": tools["litesafe"]}
    res = {t: [] for t in tools}
    recipient = age_recipient(work) if a.age else None
    try:
        db = os.path.join(work, "big.db")
        make_db(db, a.mb)
        for rnd in range(a.rounds):
            for tool, binary in tools.items():
                d = os.path.join(work, "r%d-%s" % (rnd, tool))
                shutil.copy(db, d + ".db")
                res[tool].append(run(tool, binary, d + ".db", d,
                                     recipient if tool.endswith("-age") else None))
                shutil.rmtree(rb.s3_dir(d), ignore_errors=True)
                os.unlink(d + ".db")
                shutil.rmtree(os.path.join(work, ".r%d-%s.db-litesafe" % (rnd, tool)),
                              ignore_errors=True)
                shutil.rmtree(os.path.join(work, ".r%d-%s.db-litestream" % (rnd, tool)),
                              ignore_errors=True)
                print("round %d %s: peak %.1f MiB, %.1f s" % (
                    rnd + 1, tool, res[tool][-1][0] / 1024, res[tool][-1][1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        s3_server.stop(rb.S3)
        shutil.rmtree(rb.S3["workdir"], ignore_errors=True)
    names = ("litesafe", "litesafe with age") if a.age else ("litesafe", "Litestream 0.3.13")
    print("\n| first snapshot of a %d MiB database to S3 (median of %d) | %s | %s |"
          % ((a.mb, a.rounds) + names))
    print("|---|---|---|")
    print("| replicator peak RSS | %.1f MiB | %.1f MiB |" % tuple(
        statistics.median(r[0] for r in res[t]) / 1024 for t in tools))
    print("| time to the stored snapshot | %.1f s | %.1f s |" % tuple(
        statistics.median(r[1] for r in res[t]) for t in tools))


if __name__ == "__main__":
    main()
